"""Front-ends' API keys, and who may call what without one.

- A key is created by ``pdp clients add NAME --services …``, shown once, stored as a SHA-256
  only; ``pdp clients revoke`` makes servers refuse it within PDP_REFRESH_INTERVAL. Both are
  recorded in the audit chain (without the key).
- A key asks only about its services: the Afas front-end cannot query Cdap rights (403
  SERVICE_NOT_ALLOWED), its permissions listing shows Afas only.
- Only /healthz and /readyz answer without credentials; the administration API wants a JWT.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import ApiClientRecord, AuditRecord
from pdp.services.api_keys import key_digest
from pdp.web.container import services

from support.actors import bearer
from support.api_clients import error_code, store
from support.constants import API_KEY, SECRET, MakeApp

# -- Keys: stored hashed, shown once, audited --------------------------------------------------


def test_a_key_is_stored_as_its_digest_only_and_audited(demo_db: str) -> None:
    key, client = store(demo_db).add("afas-front", ["afas"], "cli:tester")
    assert re.fullmatch(r"pdp_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
    db = make_engine(demo_db)
    with db.connect() as conn:
        row = conn.execute(
            select(ApiClientRecord).where(ApiClientRecord.key_id == client.key_id)
        ).one()
        assert row.key_hash == key_digest(key) and row.services == "afas"
        secret_part = key.split("_", 2)[2]  # the 43 characters after pdp_<key id>_ (may hold "_")
        for table in ("api_clients", "audit_log"):
            dump = json.dumps(
                [list(r) for r in conn.execute(text(f"SELECT * FROM {table}"))], default=str
            )
            assert secret_part not in dump, table
        audit = conn.execute(
            select(AuditRecord.actor, AuditRecord.action, AuditRecord.target).where(
                AuditRecord.action.like("client.%")
            )
        ).all()
    assert [tuple(a) for a in audit] == [("cli:tester", "client.add", "client:afas-front")]
    db.dispose()


@pytest.mark.parametrize(
    ("name", "services", "code"),
    [
        ("afas-front", ["cdap", "nope"], "UNKNOWN_SERVICE"),
        ("afas-front", [], "UNKNOWN_SERVICE"),
        ("Afas Front", ["afas"], "INVALID_CLIENT_NAME"),
        ("x" * 65, ["afas"], "INVALID_CLIENT_NAME"),
    ],
)
def test_bad_client_definitions_are_refused(
    demo_db: str, name: str, services: list[str], code: str
) -> None:
    with pytest.raises(Exception) as caught:
        store(demo_db).add(name, services, "cli:tester")
    assert getattr(caught.value, "code", None) == code
    assert store(demo_db).list() == [c for c in store(demo_db).list() if c.name == "tests"]


def test_a_revoked_key_is_refused(make_app: MakeApp, demo_db: str) -> None:
    app, _ = make_app()
    key, _ = store(demo_db).add("cdap-front", ["cdap"], "cli:tester")
    client = app.test_client()
    body = {"user": "bruno.petit", "service": "cdap"}
    assert client.post("/v1/check", json=body, headers={"X-Api-Key": key}).status_code == 200
    revoked = store(demo_db).revoke("cdap-front", "cli:tester")
    assert [c.name for c in revoked] == ["cdap-front"]
    refused = client.post("/v1/check", json=body, headers={"X-Api-Key": key})
    assert (refused.status_code, error_code(refused)) == (401, "INVALID_API_KEY")
    with pytest.raises(Exception) as caught:  # nothing open left to revoke
        store(demo_db).revoke("cdap-front", "cli:tester")
    assert getattr(caught.value, "code", None) == "UNKNOWN_CLIENT"


def test_revocation_waits_at_most_the_refresh_interval(make_app: MakeApp, demo_db: str) -> None:
    now = [0.0]
    app, _ = make_app(refresh_interval=1.0)
    registry = services(app).api_keys
    registry._clock = lambda: now[0]  # injected time: no sleeping
    key, _ = store(demo_db).add("cdap-front", ["cdap"], "cli:tester")
    registry.load()
    client = app.test_client()
    body = {"user": "bruno.petit", "service": "cdap"}
    store(demo_db).revoke("cdap-front", "cli:tester")
    now[0] = 0.5  # within the interval, the copy held still has the key
    assert client.post("/v1/check", json=body, headers={"X-Api-Key": key}).status_code == 200
    now[0] = 1.01
    assert client.post("/v1/check", json=body, headers={"X-Api-Key": key}).status_code == 401


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "API_KEY_REQUIRED"),
        ({"X-Api-Key": "not-a-key"}, "INVALID_API_KEY"),
        ({"X-Api-Key": API_KEY[:-1] + ("u" if API_KEY[-1] != "u" else "v")}, "INVALID_API_KEY"),
        ({"X-Api-Key": f"pdp_ffffffffffff_{'t' * 43}"}, "INVALID_API_KEY"),
        ({"Authorization": "Bearer " + API_KEY}, "API_KEY_REQUIRED"),
    ],
)
def test_the_decision_api_wants_a_valid_key(
    make_app: MakeApp, headers: dict[str, str], code: str
) -> None:
    client = make_app()[0].test_client()
    client.environ_base.pop("HTTP_X_API_KEY")
    for method, path, body in (
        ("POST", "/v1/check", {"user": "bruno.petit", "service": "cdap"}),
        ("POST", "/v1/check/batch", {"checks": [{"user": "bruno.petit", "service": "cdap"}]}),
        ("GET", "/v1/users/bruno.petit/permissions", None),
        ("GET", "/v1/services/cdap/users", None),
    ):
        response = client.open(path, method=method, json=body, headers=headers)
        assert (response.status_code, error_code(response)) == (401, code), path


def test_probes_answer_without_credentials(make_app: MakeApp) -> None:
    client = make_app()[0].test_client()
    client.environ_base.pop("HTTP_X_API_KEY")
    assert client.get("/healthz").get_json() == {"status": "ok", "revision": 1}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"policy": "ok", "database": "ok", "api_keys": "ok"}


def test_the_openapi_document_is_served_without_credentials(make_app: MakeApp) -> None:
    """It holds no data: no key or token is asked for, and whatever is sent is not read."""
    client = make_app(jwt_secret=SECRET)[0].test_client()
    assert client.get("/v1/openapi.json").status_code == 200  # the tests' key
    client.environ_base.pop("HTTP_X_API_KEY")
    for headers in (
        {},
        bearer("op.caf751"),
        {"Authorization": "Bearer x.y.z"},
        {"X-Api-Key": "not-a-key"},
    ):
        for path in ("/v1/openapi.json", "/v1/docs", "/v1/docs/assets/docs.js"):
            assert client.get(path, headers=headers).status_code == 200, (path, headers)


def test_the_administration_api_does_not_take_an_api_key(make_app: MakeApp) -> None:
    client = make_app(jwt_secret=SECRET)[0].test_client()  # sends the tests' key
    response = client.get("/v1/organisations/mairie-montreuil/users")
    assert response.status_code == 401
    assert client.get("/v1/organisations/mairie-montreuil/users", headers=bearer("alice.martin"))


# -- A key asks about its services only --------------------------------------------------------


@pytest.fixture
def afas_only(make_app: MakeApp, demo_db: str) -> Iterator[Any]:
    """A client of the app holding an Afas-only key."""
    app, _ = make_app()
    key, _ = store(demo_db).add("afas-front", ["afas"], "cli:tester")
    client = app.test_client()
    client.environ_base["HTTP_X_API_KEY"] = key
    yield client


def test_the_afas_front_end_cannot_query_cdap_rights(afas_only: Any) -> None:
    refused = afas_only.post("/v1/check", json={"user": "bruno.petit", "service": "cdap"})
    assert (refused.status_code, error_code(refused)) == (403, "SERVICE_NOT_ALLOWED")
    allowed = afas_only.post("/v1/check", json={"user": "lea.fontaine", "service": "afas"})
    assert allowed.status_code == 200 and allowed.get_json()["allowed"] is True
    # An unknown service is refused as unknown, as it is for any key.
    unknown = afas_only.post("/v1/check", json={"user": "lea.fontaine", "service": "nope"})
    assert (unknown.status_code, error_code(unknown)) == (400, "UNKNOWN_SERVICE")
    users = afas_only.get("/v1/services/cdap/users")
    assert (users.status_code, error_code(users)) == (403, "SERVICE_NOT_ALLOWED")
    assert afas_only.get("/v1/services/afas/users").status_code == 200


def test_a_batch_refuses_only_the_items_about_other_services(afas_only: Any) -> None:
    checks = [
        {"user": "lea.fontaine", "service": "afas"},
        {"user": "bruno.petit", "service": "cdap", "role": "T18"},
    ]
    results = afas_only.post("/v1/check/batch", json={"checks": checks}).get_json()["results"]
    assert results[0]["allowed"] is True
    assert results[1]["error"]["code"] == "SERVICE_NOT_ALLOWED"


def test_the_permissions_listing_shows_the_keys_services_only(
    afas_only: Any, make_app: MakeApp
) -> None:
    # R-DEC-4, seen by the Afas front-end: only Afas, though the user may use more.
    everything = make_app()[0].test_client().get("/v1/users/nadia.benali/permissions")
    assert {s["service"] for s in everything.get_json()["services"]} - {"afas"}
    listing = afas_only.get("/v1/users/nadia.benali/permissions").get_json()
    assert {s["service"] for s in listing["services"]} <= {"afas"}


def test_the_decision_log_names_the_client(afas_only: Any, make_app: MakeApp) -> None:
    app, log = make_app()
    client = app.test_client()
    client.post("/v1/check", json={"user": "bruno.petit", "service": "cdap"})
    assert log.entries[-1]["client"] == "tests"


# -- Without a key: the probes only; a token for the administration API --------------------------


def test_every_route_but_the_probes_refuses_a_call_without_credentials(make_app: MakeApp) -> None:
    """Only the probes (/healthz, /readyz) and the API's description (/v1/openapi.json, the
    page /v1/docs and its files: no data) answer without credentials: every other route of the
    app, with any method, answers 401 to a call carrying neither an API key nor a token."""
    app, _ = make_app(jwt_secret=SECRET)
    client = app.test_client()
    client.environ_base.pop("HTTP_X_API_KEY")
    open_routes = {"/healthz", "/readyz", "/v1/openapi.json", "/v1/docs"}
    # Its one file path, asked with a name that is none of its files.
    missing = {"/v1/docs/assets/<name>"}
    seen = 0
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/static", "/console")):
            # The console's pages want a signed-in session instead (its sign-in page is open):
            # test_console_auth.test_every_console_page_but_sign_in_needs_a_session.
            continue
        path = re.sub(
            r"<(?:\w+:)?(\w+)>", lambda m: "1" if "int:" in m.group(0) else "x", rule.rule
        )
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method, json={})
            seen += 1
            if rule.rule in open_routes:
                assert response.status_code == 200, rule.rule
            elif rule.rule in missing:
                assert response.status_code == 404, rule.rule
            else:
                assert response.status_code == 401, (method, rule.rule, response.get_json())
    assert seen >= 30


def test_the_admin_check_takes_a_key_or_the_actors_own_token(make_app: MakeApp) -> None:
    client = make_app(jwt_secret=SECRET)[0].test_client()
    question = {
        "actor": "bruno.petit",
        "action": "group.edit",
        "target": "group:mairie-montreuil/CCAS",
    }
    assert client.post("/v1/admin/check", json=question).status_code == 200  # a front-end's key
    client.environ_base.pop("HTTP_X_API_KEY")
    own = client.post("/v1/admin/check", json=question, headers=bearer("bruno.petit"))
    assert own.status_code == 200
    other = client.post("/v1/admin/check", json=question, headers=bearer("alice.martin"))
    assert (other.status_code, error_code(other)) == (403, "ACTOR_MISMATCH")
