"""The decision API's health and description (``GET /healthz``, ``GET /v1/openapi.json``), and
every verb on every driver (split from test_api.py; same app, same helpers)."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient

from pdp.records.decision_log import MemoryLog
from pdp.web.api.openapi import Registry
from pdp.web.api.schemas import (
    HealthResponse,
)

from support.decision_api import (
    DRIVERS,
    check,
    days,
    js,
    pages,
    sqlite_backend,  # noqa: F401 (the fixture: SQLite here)
    valid,
)

# -- GET /healthz, GET /v1/openapi.json ----------------------------------------------------


def test_health(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert valid(HealthResponse, response) == {"status": "ok", "revision": 1}


def test_openapi_documents_every_route(app: Flask, client: FlaskClient) -> None:
    doc = js(client.get("/v1/openapi.json"))
    assert doc["openapi"].startswith("3.")
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if (
            rule.rule.startswith(("/v1/", "/healthz", "/readyz"))
            and rule.rule != "/v1/openapi.json"
        ):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
            routes.setdefault(path, set()).update(methods)
    assert {p: set(ops) for p, ops in doc["paths"].items()} == routes
    schemas = doc["components"]["schemas"]
    for ops in doc["paths"].values():
        for op in ops.values():
            for answer in op["responses"].values():
                # JSON, except a streamed document's lines (GET …/access: JSON Lines, CSV).
                for media in answer["content"].values():
                    found = media["schema"]
                    for ref in [found["$ref"]] if "$ref" in found else found["anyOf"]:
                        name = ref if isinstance(ref, str) else ref["$ref"]
                        assert name.removeprefix("#/components/schemas/") in schemas
    check_body = doc["paths"]["/v1/check"]["post"]["requestBody"]["content"]["application/json"]
    assert check_body["schema"]["$ref"].endswith("/CheckRequest")
    assert set(schemas["CheckRequest"]["properties"]) == {
        "user",
        "service",
        "role",
        "feature",
        "caf",
        "at",
        "allocataire",
        "min_revision",
    }


def test_openapi_declares_the_preview_of_every_write(client: FlaskClient) -> None:
    """Every administrative write takes ``?dry_run=true`` and answers its preview (200) then;
    the checks and the admin check, which write nothing, do not (R-ADM-7)."""
    doc = js(client.get("/v1/openapi.json"))
    preview = "#/components/schemas/PreviewAnswer"
    writes = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            names = {p["name"] for p in op.get("parameters", [])}
            ok = json.dumps(op["responses"].get("200", {}))
            if path in ("/v1/check", "/v1/check/batch", "/v1/admin/check") or method == "get":
                assert "dry_run" not in names and preview not in ok, (method, path)
                continue
            writes += 1
            assert "dry_run" in names and preview in ok, (method, path)
    assert writes >= 25
    assert set(doc["components"]["schemas"]["Preview"]["properties"]) == {
        "action",
        "target",
        "applied",
        "users",
        "groups",
        "summary",
    }


def test_openapi_declares_the_errors_routes_answer(client: FlaskClient) -> None:
    doc = js(client.get("/v1/openapi.json"))
    users = doc["paths"]["/v1/users/{login}/permissions"]["get"]
    assert {"200", "400", "404"} <= set(users["responses"])
    params = {p["name"]: p["in"] for p in users["parameters"]}
    assert params == {"login": "path", "at": "query", "min_revision": "query"}
    listing = doc["paths"]["/v1/services/{service}/users"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "service",
        "organisation",
        "role",
        "feature",
        "at",
        "limit",
        "cursor",
        "min_revision",
    }
    assert {"400", "413"} <= set(doc["paths"]["/v1/check/batch"]["post"]["responses"])


# -- Every verb on every driver --------------------------------------------------------------


@pytest.mark.parametrize("backend", DRIVERS)
def test_every_verb_on_every_driver(
    client: FlaskClient, decision_log: MemoryLog, backend: str, today: dt.date
) -> None:
    assert js(client.get("/healthz")) == {"status": "ok", "revision": 1}
    assert check(client, user="chloe.roux", service="cdap", role="T1")["allowed"] is True
    assert check(client, user="david.leroy", service="cdap")["reason"]["code"] == "USER_CLOSED"
    past = check(client, user="bruno.petit", service="adonis", at=days(today, -11))
    assert past["allowed"] is True
    batch = js(
        client.post(
            "/v1/check/batch",
            json={"checks": [{"user": "nadia.benali", "service": "cdap", "caf": "931"}, {}]},
        )
    )["results"]
    assert batch[0]["allowed"] is True and batch[1]["error"]["code"] == "MISSING_FIELD"
    assert len(decision_log.entries) == 4
    lea = js(client.get("/v1/users/lea.fontaine/permissions"))
    assert [(s["service"], s["roles"]) for s in lea["services"]] == [
        ("afas", ["declaration", "declarer"])
    ]
    listed = [u["login"] for p in pages(client, "/v1/services/cdap/users", 2) for u in p["users"]]
    assert listed == ["nadia.benali", "bruno.petit", "chloe.roux"]


def test_openapi_declares_413_on_every_route_with_a_body(client: FlaskClient) -> None:
    doc = js(client.get("/v1/openapi.json"))
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                assert "413" in op["responses"], f"{method} {path}"


def test_openapi_document_is_valid_openapi_3(client: FlaskClient) -> None:
    # Checked by an independent validator, not by our own reading of the spec.
    from openapi_spec_validator import validate

    validate(js(client.get("/v1/openapi.json")))


def test_one_declaration_gives_the_flask_rule_and_the_operation() -> None:
    registry = Registry()
    prefixed, bare = Blueprint("t", __name__, url_prefix="/v1/"), Blueprint("u", __name__)

    @registry.route(
        prefixed,
        "PATCH",
        "/orgs/<org>/subs/<int:subscription_id>",
        summary="s",
        response=HealthResponse,
    )
    def edit(org: str, subscription_id: int) -> str:
        return f"{org} {subscription_id}"

    @registry.route(bare, "GET", "/ping", summary="p", response=HealthResponse, public=True)
    def ping() -> str:
        return "pong"

    app = Flask(__name__)
    app.register_blueprint(prefixed)
    app.register_blueprint(bare)
    rules = {r.endpoint: (r.rule, r.methods) for r in app.url_map.iter_rules()}
    assert rules["t.edit"] == ("/v1/orgs/<org>/subs/<int:subscription_id>", {"PATCH", "OPTIONS"})
    assert rules["u.ping"] == ("/ping", {"GET", "HEAD", "OPTIONS"})
    assert app.test_client().patch("/v1/orgs/o/subs/7").text == "o 7"
    assert [(o.method, o.path, o.path_params) for o in registry.operations] == [
        ("patch", "/v1/orgs/{org}/subs/{subscription_id}", ("org", "subscription_id")),
        ("get", "/ping", ()),
    ]
    with pytest.raises(ValueError, match="GET /ping is declared twice"):
        registry.route(bare, "GET", "/ping", summary="p", response=HealthResponse)(ping)
