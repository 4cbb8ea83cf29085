"""The organisation's users and groups by pages, searchable (R-USR-6, R-GRP-5), on every
driver: every page ordered, no user twice or missing across pages, the search finding a text
in the login, the names or the email whatever its case, and bad paging refused."""

from __future__ import annotations

import pytest

from support.actors import Api
from support.constants import MAIRIE, PARTNER_ADMIN, SECRET, MakeApp


@pytest.fixture
def api(make_app: MakeApp) -> Api:
    app, log = make_app(jwt_secret=SECRET)
    return Api(app.test_client(), None, log)


def pages(api: Api, path: str, **query: object) -> list[list[str]]:
    """Every page of the users at ``path``, following next_cursor; the logins of each."""
    out: list[list[str]] = []
    cursor = None
    while True:
        args = {**query, **({"cursor": cursor} if cursor else {})}
        body = api.get(PARTNER_ADMIN, path, **args)
        out.append([user["login"] for user in body["users"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def test_users_by_pages_R_USR_6(api: Api) -> None:
    everyone = [u["login"] for u in api.get(PARTNER_ADMIN, f"{MAIRIE}/users")["users"]]
    assert everyone == sorted(everyone) and len(everyone) > 3
    for size in (1, 2, 3, len(everyone), len(everyone) + 1):
        got = pages(api, f"{MAIRIE}/users", limit=size)
        assert [login for page in got for login in page] == everyone
        assert all(len(page) <= size for page in got)
        assert len(got) in (-(-len(everyone) // size), len(everyone) // size + 1)


def test_users_searched_in_login_names_and_email_R_USR_6(api: Api) -> None:
    def found(q: str) -> list[str]:
        return [u["login"] for u in api.get(PARTNER_ADMIN, f"{MAIRIE}/users", q=q)["users"]]

    assert found("BRUNO") == ["bruno.petit"]  # login, case ignored
    assert found("Petit") == ["bruno.petit"]  # last name
    assert "alice.martin" in found("alice")
    assert found("zzz-nobody") == []
    assert found("%") == [] and found("_") == []  # wildcards are text


def test_search_and_group_filter_combine(api: Api) -> None:
    members = api.get(PARTNER_ADMIN, f"{MAIRIE}/users", group="CCAS")["users"]
    assert members
    first = members[0]["login"]
    only = api.get(PARTNER_ADMIN, f"{MAIRIE}/users", group="CCAS", q=first)["users"]
    assert [u["login"] for u in only] == [first]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"limit": "0"}, "VALIDATION_ERROR"),
        ({"limit": "x"}, "VALIDATION_ERROR"),
        ({"limit": "100000"}, "PAGE_TOO_LARGE"),
        ({"cursor": "***"}, "INVALID_CURSOR"),
        ({"sort": "login"}, "UNKNOWN_FIELD"),
    ],
)
def test_bad_paging_is_refused(api: Api, query: dict[str, str], code: str) -> None:
    r = api.call(PARTNER_ADMIN, "GET", f"{MAIRIE}/users", query=query)
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, code)


def test_groups_by_pages_and_searched_R_GRP_5(api: Api) -> None:
    every = [g["code"] for g in api.get(PARTNER_ADMIN, f"{MAIRIE}/groups")["groups"]]
    assert every == sorted(every) and len(every) > 2
    for size in (1, 2, len(every)):
        cursor, seen = None, []
        while True:
            query = {"limit": size, **({"cursor": cursor} if cursor else {})}
            body = api.get(PARTNER_ADMIN, f"{MAIRIE}/groups", **query)
            assert len(body["groups"]) <= size
            seen += [g["code"] for g in body["groups"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == every
    found = api.get(PARTNER_ADMIN, f"{MAIRIE}/groups", q="ccas")["groups"]
    assert found and all("ccas" in f"{g['code']} {g['label']}".lower() for g in found)
