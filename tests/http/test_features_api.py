"""Features of a service through the decision API (R-DEC-1, R-CAT-1, R-DEC-4): a check, a batch
item and the service-users listing may ask for a feature instead of a role; the permissions
listing says which features each service opens to the user; the decision log keeps the feature
asked. On the demo: bruno.petit holds Cdap T1 and T18, chloe.roux T1 only (the catalogue's
example table: T1 opens the summary tabs, T18 the payments, RSA, "dialogue" and more)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from pdp.core.catalogue import load_catalogue
from pdp.records.decision_log import MemoryLog
from pdp.web.api.schemas import PermissionsResponse, ServiceUsersResponse

from support.decision_api import (
    check,
    error,
    grant_set,
    pages,
    sqlite_backend,  # noqa: F401 (the fixture: SQLite here)
    valid,
)

CDAP = load_catalogue().services["cdap"]


def test_r_dec_1_a_feature_is_allowed_through_a_role_that_opens_it(client: FlaskClient) -> None:
    out = check(client, user="bruno.petit", service="cdap", feature="paiements")
    assert out["allowed"] is True and out["reason"]["code"] == "ALLOWED"
    # R-DEC-3: the grant path names the role that opens it (T18), not every role held (T1).
    t18 = check(client, user="bruno.petit", service="cdap", role="T18")
    assert grant_set(out["grants"]) == grant_set(t18["grants"])
    assert {g["role"] for g in out["grants"]} == {"T18"}


def test_r_dec_1_a_feature_no_role_of_the_user_opens_is_denied(client: FlaskClient) -> None:
    out = check(client, user="chloe.roux", service="cdap", feature="paiements")
    assert (out["allowed"], out["reason"]["code"]) == (False, "FEATURE_NOT_GRANTED")
    assert out["grants"] == []
    assert check(client, user="chloe.roux", service="cdap", feature="synthese")["allowed"]


def test_r_dec_1_every_other_condition_still_holds(client: FlaskClient) -> None:
    # The Caf asked must be one of the convention's (R-CON-3), whatever the feature.
    out = check(client, user="bruno.petit", service="cdap", feature="paiements", caf="751")
    assert out["reason"]["code"] == "CAF_NOT_SUBSCRIBED"
    assert check(client, user="bruno.petit", service="cdap", feature="paiements", caf="931")[
        "allowed"
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"service": "cdap", "feature": "bulletins"}, "UNKNOWN_FEATURE"),
        ({"service": "adonis", "feature": "synthese"}, "UNKNOWN_FEATURE"),
        ({"service": "cdap", "role": "T18", "feature": "paiements"}, "ROLE_AND_FEATURE"),
        ({"service": "cdap", "feature": 7}, "VALIDATION_ERROR"),
    ],
)
def test_r_cat_1_a_bad_feature_is_refused(
    client: FlaskClient, body: dict[str, object], code: str
) -> None:
    error(client.post("/v1/check", json={"user": "bruno.petit", **body}), 400, code)


def test_r_dec_1_batch_items_ask_for_features(client: FlaskClient) -> None:
    response = client.post(
        "/v1/check/batch",
        json={
            "checks": [
                {"user": "bruno.petit", "service": "cdap", "feature": "dialogue"},
                {"user": "chloe.roux", "service": "cdap", "feature": "dialogue"},
                {"user": "chloe.roux", "service": "cdap", "feature": "nope"},
            ]
        },
    )
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert results[0]["allowed"] is True
    assert results[1]["reason"]["code"] == "FEATURE_NOT_GRANTED"
    assert results[2]["error"]["code"] == "UNKNOWN_FEATURE"


def test_r_dec_4_permissions_list_the_features_open_to_the_user(client: FlaskClient) -> None:
    bruno = valid(PermissionsResponse, client.get("/v1/users/bruno.petit/permissions"))
    cdap = next(s for s in bruno["services"] if s["service"] == "cdap")
    opened = set(CDAP.opens["T1"]) | set(CDAP.opens["T18"])
    assert cdap["features"] == [f for f in CDAP.features if f in opened]  # the catalogue's order
    assert "courriers" not in cdap["features"]
    chloe = valid(PermissionsResponse, client.get("/v1/users/chloe.roux/permissions"))
    assert next(s for s in chloe["services"] if s["service"] == "cdap")["features"] == list(
        CDAP.opens["T1"]
    )
    # A service that declares no features: its roles open all of it (null, not an empty list).
    lea = valid(PermissionsResponse, client.get("/v1/users/lea.fontaine/permissions"))
    assert lea["services"] and all(s["features"] is None for s in lea["services"])


def test_r_dec_1_service_users_by_feature(client: FlaskClient) -> None:
    def logins(query: str) -> set[str]:
        found = pages(client, f"/v1/services/cdap/users?{query}", 50)
        for page in found:
            ServiceUsersResponse.model_validate(page)
        return {u["login"] for page in found for u in page["users"]}

    everyone = logins("")
    payments = logins("feature=paiements")
    assert "bruno.petit" in payments and "chloe.roux" not in payments
    assert payments < everyone
    # Exactly the users a check of that feature allows.
    for login in everyone:
        allowed = check(client, user=login, service="cdap", feature="paiements")["allowed"]
        assert allowed is (login in payments), login
    error(client.get("/v1/services/cdap/users?feature=T18"), 400, "UNKNOWN_FEATURE")
    error(client.get("/v1/services/cdap/users?feature=rsa&role=T18"), 400, "ROLE_AND_FEATURE")


def test_r_dec_3_the_decision_log_keeps_the_feature_asked(
    client: FlaskClient, decision_log: MemoryLog
) -> None:
    out = check(client, user="bruno.petit", service="cdap", feature="rsa")
    entry = next(e for e in decision_log.entries if e["decision_id"] == out["decision_id"])
    assert (entry["service"], entry["role"], entry.get("feature")) == ("cdap", None, "rsa")
    plain = check(client, user="bruno.petit", service="cdap")
    entry = next(e for e in decision_log.entries if e["decision_id"] == plain["decision_id"])
    assert "feature" not in entry  # only asked features are logged
