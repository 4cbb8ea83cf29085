"""The decision API's listings: ``GET /v1/users/<login>/permissions`` and ``GET
/v1/services/<service>/users`` (split from test_api.py; same app, same helpers)."""

from __future__ import annotations

import datetime as dt

import pytest
from flask.testing import FlaskClient

from pdp.core.catalogue import load_catalogue
from pdp.web.api.schemas import (
    PermissionsResponse,
    ServiceUsersResponse,
)

from support.constants import MakeApp
from support.decision_api import (
    DEMO_LOGINS,
    check,
    days,
    error,
    grant_set,
    js,
    pages,
    sqlite_backend,  # noqa: F401 (the fixture: SQLite here)
    valid,
)

# -- GET /v1/users/<login>/permissions -------------------------------------------------------


def test_permissions_of_a_user_now(client: FlaskClient, today: dt.date) -> None:
    # R-DEC-4: one call gives every service, role and Caf usable now; adonis expired.
    response = client.get("/v1/users/bruno.petit/permissions")
    body = valid(PermissionsResponse, response)
    assert (body["user"], body["at"], body["revision"]) == ("bruno.petit", today.isoformat(), 1)
    assert [s["service"] for s in body["services"]] == ["cdap"]
    cdap = body["services"][0]
    assert (cdap["roles"], cdap["cafs"]) == (["T1", "T18"], ["931"])
    assert grant_set(cdap["grants"]) == {
        ("CCAS", "cdap", "T1", "group"),
        ("CCAS", "cdap", "T18", "group"),
        ("CCAS-INSTRUCTION", "cdap", "T1", "group"),
        ("CCAS-INSTRUCTION", "cdap", "T18", "group"),
    }


def test_permissions_at_a_past_day(client: FlaskClient, today: dt.date) -> None:
    # R-TIME-2, R-DEC-4: 11 days ago adonis was still subscribed; 6 days ago the closed
    # CCAS-ARCHIVES still gave emma cdap T18.
    bruno = valid(
        PermissionsResponse, client.get(f"/v1/users/bruno.petit/permissions?at={days(today, -11)}")
    )
    assert [s["service"] for s in bruno["services"]] == ["adonis", "cdap"]
    assert bruno["services"][0]["roles"] == ["acces"]
    emma_now = js(client.get("/v1/users/emma.garnier/permissions"))
    assert emma_now["services"] == []
    emma_then = js(client.get(f"/v1/users/emma.garnier/permissions?at={days(today, -6)}"))
    assert emma_then["at"] == days(today, -6)
    assert [(s["service"], s["roles"]) for s in emma_then["services"]] == [("cdap", ["T18"])]


def test_permissions_agree_with_check(client: FlaskClient) -> None:
    # R-DEC-4 must say exactly what R-DEC-1 says, role by role, for every demo user.
    catalogue = load_catalogue()
    for login in DEMO_LOGINS:
        listed = {
            (s["service"], role)
            for s in js(client.get(f"/v1/users/{login}/permissions"))["services"]
            for role in s["roles"]
        }
        checked = {
            (name, role)
            for name, svc in catalogue.services.items()
            for role in svc.roles + svc.user_profiles
            if check(client, user=login, service=name, role=role)["allowed"]
        }
        assert listed == checked, login


def test_permissions_afas_profiles_and_cafs(client: FlaskClient) -> None:
    lea = js(client.get("/v1/users/lea.fontaine/permissions"))
    assert [(s["service"], s["roles"], s["cafs"]) for s in lea["services"]] == [
        ("afas", ["declaration", "declarer"], ["751"])
    ]
    nadia = js(client.get("/v1/users/nadia.benali/permissions"))
    assert [(s["service"], s["cafs"]) for s in nadia["services"]] == [("cdap", ["751", "931"])]


@pytest.mark.parametrize("login", ["alice.martin", "david.leroy", "fabien.morel", "op.caf751"])
def test_permissions_of_users_with_nothing(client: FlaskClient, login: str) -> None:
    # R-ADM-2 (admin in no group), R-USR-4 (closed), not yet open, operator: known, nothing.
    response = client.get(f"/v1/users/{login}/permissions")
    assert response.status_code == 200
    assert valid(PermissionsResponse, response)["services"] == []


def test_permissions_unknown_user_is_a_404(client: FlaskClient) -> None:
    error(client.get("/v1/users/nobody/permissions"), 404, "UNKNOWN_USER")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("at=2026-02-30", "VALIDATION_ERROR"),
        ("at=yesterday", "VALIDATION_ERROR"),
        ("at=", "VALIDATION_ERROR"),
        ("day=2026-01-01", "UNKNOWN_FIELD"),
    ],
)
def test_permissions_bad_query(client: FlaskClient, query: str, code: str) -> None:
    error(client.get(f"/v1/users/bruno.petit/permissions?{query}"), 400, code)


# -- GET /v1/services/<service>/users --------------------------------------------------------


def allowed_logins(client: FlaskClient, service: str, role: str | None = None) -> set[str]:
    """Who /v1/check allows, asked one by one (the listing's independent oracle)."""
    extra = {"role": role} if role else {}
    return {
        login
        for login in DEMO_LOGINS
        if check(client, user=login, service=service, **extra)["allowed"]
    }


@pytest.mark.parametrize("limit", [1, 2, 3, 1000])
def test_service_users_pagination_covers_everyone_once(client: FlaskClient, limit: int) -> None:
    every = [u for p in pages(client, "/v1/services/cdap/users", limit) for u in p["users"]]
    keys = [(u["organisation"], u["login"]) for u in every]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert {u["login"] for u in every} == allowed_logins(client, "cdap")
    assert keys == [
        ("ccas-grand-paris", "nadia.benali"),
        ("mairie-montreuil", "bruno.petit"),
        ("mairie-montreuil", "chloe.roux"),
    ]


def test_service_users_last_page_has_no_cursor(client: FlaskClient) -> None:
    # Exactly as many users as the limit: one page, no empty second page.
    only = pages(client, "/v1/services/cdap/users", 3)
    assert len(only) == 1 and only[0]["next_cursor"] is None


def test_service_users_role_filter(client: FlaskClient) -> None:
    page = valid(ServiceUsersResponse, client.get("/v1/services/cdap/users?role=T18"))
    assert page["role"] == "T18"
    assert [(u["login"], u["roles"]) for u in page["users"]] == [("bruno.petit", ["T18"])]
    assert {u["login"] for u in page["users"]} == allowed_logins(client, "cdap", "T18")


def test_service_users_afas_includes_profiles(client: FlaskClient) -> None:
    page = js(client.get("/v1/services/afas/users"))
    assert [(u["login"], u["roles"]) for u in page["users"]] == [
        ("karim.diallo", ["habiliter"]),
        ("lea.fontaine", ["declaration", "declarer"]),
        ("marc.chevalier", ["consultation"]),
    ]


def test_service_users_organisation_filter(client: FlaskClient) -> None:
    url = "/v1/services/cdap/users?organisation=mairie-montreuil"
    every = [u for p in pages(client, url, 1) for u in p["users"]]
    assert [(u["organisation"], u["login"]) for u in every] == [
        ("mairie-montreuil", "bruno.petit"),
        ("mairie-montreuil", "chloe.roux"),
    ]
    none = js(client.get("/v1/services/cdap/users?organisation=sip-lyon"))
    assert none["users"] == [] and none["next_cursor"] is None


def test_service_users_at_a_past_day(client: FlaskClient, today: dt.date) -> None:
    # R-TIME-2: 31 days ago david was open, and emma's group too.
    page = js(client.get(f"/v1/services/cdap/users?role=T18&at={days(today, -31)}"))
    assert page["at"] == days(today, -31)
    assert [u["login"] for u in page["users"]] == ["bruno.petit", "david.leroy", "emma.garnier"]


def test_service_users_limit_is_capped_by_page_max(make_app: MakeApp) -> None:
    app, _ = make_app(page_max=2)
    page = js(app.test_client().get("/v1/services/cdap/users?limit=2"))
    assert len(page["users"]) == 2 and page["next_cursor"] is not None
    refused = app.test_client().get("/v1/services/cdap/users?limit=3")  # a clear 400, not less
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "PAGE_TOO_LARGE"
    app, _ = make_app(page_max=5000)  # above 1,000 too: the setting decides
    page = js(app.test_client().get("/v1/services/cdap/users?limit=1001"))
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/v1/services/cdap/users?organisation=nowhere", 404, "UNKNOWN_ORGANISATION"),
        ("/v1/services/nope/users", 400, "UNKNOWN_SERVICE"),
        ("/v1/services/cdap/users?role=T99", 400, "UNKNOWN_ROLE"),
        ("/v1/services/cdap/users?cursor=!!!!", 400, "INVALID_CURSOR"),
        ("/v1/services/cdap/users?cursor=YWJj", 400, "INVALID_CURSOR"),  # "abc": no separator
        ("/v1/services/cdap/users?cursor=a", 400, "INVALID_CURSOR"),
        ("/v1/services/cdap/users?cursor=_w", 400, "INVALID_CURSOR"),  # not UTF-8
        ("/v1/services/cdap/users?limit=0", 400, "VALIDATION_ERROR"),
        ("/v1/services/cdap/users?limit=abc", 400, "VALIDATION_ERROR"),
        ("/v1/services/cdap/users?limit=-5", 400, "VALIDATION_ERROR"),
        ("/v1/services/cdap/users?at=2026-13-01", 400, "VALIDATION_ERROR"),
        ("/v1/services/cdap/users?page=2", 400, "UNKNOWN_FIELD"),
    ],
)
def test_service_users_bad_query(client: FlaskClient, url: str, status: int, code: str) -> None:
    error(client.get(url), status, code)
