"""The auditors' API refuses bad input clearly: bad filters, limits and cursors are 400 with a
stable code (never a 500), unknown organisations 404, filters outside the catalogue 400.

Operators read everything; a partner admin their own organisation; others nothing (R-ADM-7).
The app runs over the demo with a real decision log (WalLog + Shipper, shipped by hand): the
``portal`` fixture of tests/http/conftest.py.
"""

from __future__ import annotations

import base64

import pytest

from support.auditor import Portal
from support.constants import MAIRIE, OPERATOR

# -- bad input --------------------------------------------------------------------------------


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BAD_QUERIES = [
    ("/v1/decisions", {"limit": "0"}),
    ("/v1/decisions", {"limit": "1001"}),
    ("/v1/decisions", {"limit": "many"}),
    ("/v1/decisions", {"allowed": "maybe"}),
    ("/v1/decisions", {"kind": "everything"}),
    ("/v1/decisions", {"service": "CDAP; drop"}),
    ("/v1/decisions", {"organisation": "../etc"}),
    ("/v1/decisions", {"from": "yesterday"}),
    ("/v1/decisions", {"to": "2026-02-30"}),
    ("/v1/decisions", {"colour": "blue"}),
    ("/v1/decisions", {"user": ""}),
    ("/v1/decisions", {"cursor": "%%%"}),
    ("/v1/decisions", {"cursor": "x" * 201}),
    ("/v1/decisions", {"cursor": _cursor("notanumber\x00x")}),
    ("/v1/decisions", {"cursor": _cursor("1\x00a\x00b")}),
    ("/v1/decisions", {"cursor": _cursor("9" * 30 + "\x00x")}),
    ("/v1/decisions", {"cursor": _cursor("-" + "9" * 30 + "\x00x")}),
    ("/v1/decisions", {"cursor": base64.urlsafe_b64encode(b"\xff\xfe\x00").decode()}),
    (f"{MAIRIE}/audit", {"limit": "-1"}),
    (f"{MAIRIE}/audit", {"from": "never"}),
    (f"{MAIRIE}/audit", {"actor": "x" * 121}),
    (f"{MAIRIE}/audit", {"cursor": _cursor("9" * 30 + "\x00")}),
    (f"{MAIRIE}/audit", {"cursor": "!!"}),
    (f"{MAIRIE}/audit", {"unknown": "1"}),
    (f"{MAIRIE}/users/bruno.petit/history", {"service": "Cdap!"}),
    (f"{MAIRIE}/users/bruno.petit/history", {"from": "2026-01-01"}),
    (f"{MAIRIE}/users/bruno.petit/history", {"cursor": _cursor("9" * 30 + "\x00")}),
    (f"{MAIRIE}/groups/CCAS/history", {"limit": "0"}),
    (f"{MAIRIE}/groups/CCAS/history", {"cursor": "abc"}),
]


@pytest.mark.parametrize(("path", "query"), BAD_QUERIES)
def test_invalid_query_parameters_are_400(portal: Portal, path: str, query: dict[str, str]) -> None:
    """Bad filters, limits and cursors: 400 with a stable code, never a 500."""
    r = portal.call(OPERATOR, "GET", path, query=query)
    assert r.status_code == 400, (query, r.status_code, r.get_json())
    assert r.get_json()["error"]["code"] in {
        "VALIDATION_ERROR",
        "UNKNOWN_FIELD",
        "INVALID_CURSOR",
    }


def test_unknown_organisation_or_user_in_the_audit_paths(portal: Portal) -> None:
    """An organisation nobody knows: 404 UNKNOWN_ORGANISATION, to a partner admin and to an
    operator alike; a user nobody knows has an empty history."""
    r = portal.call("alice.martin", "GET", "/v1/organisations/nowhere/audit")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "UNKNOWN_ORGANISATION"
    r = portal.call(OPERATOR, "GET", "/v1/organisations/nowhere/audit")
    assert r.status_code == 404, r.get_json()
    assert r.get_json()["error"]["code"] == "UNKNOWN_ORGANISATION"
    r = portal.call(OPERATOR, "GET", f"{MAIRIE}/users/nobody/history")
    assert r.status_code == 200 and r.get_json()["records"] == []


UNKNOWN_FILTERS = [
    ("/v1/decisions", {"service": "nope"}, "UNKNOWN_SERVICE"),
    (f"{MAIRIE}/users/bruno.petit/history", {"service": "nope"}, "UNKNOWN_SERVICE"),
    (f"{MAIRIE}/users/bruno.petit/history", {"role": "T99"}, "UNKNOWN_ROLE"),
    (f"{MAIRIE}/users/bruno.petit/history", {"service": "cdap", "role": "T99"}, "UNKNOWN_ROLE"),
    (f"{MAIRIE}/users/bruno.petit/history", {"service": "afas", "role": "T18"}, "UNKNOWN_ROLE"),
    (f"{MAIRIE}/groups/CCAS/history", {"service": "nope"}, "UNKNOWN_SERVICE"),
    (f"{MAIRIE}/groups/CCAS/history", {"role": "T99"}, "UNKNOWN_ROLE"),
]


@pytest.mark.parametrize(("path", "query", "code"), UNKNOWN_FILTERS)
def test_filters_outside_the_catalogue_are_refused(
    portal: Portal, path: str, query: dict[str, str], code: str
) -> None:
    """A service or role filter outside the catalogue: 400 UNKNOWN_SERVICE / UNKNOWN_ROLE, as
    on every other endpoint (not an empty page that looks like "nothing happened")."""
    r = portal.call(OPERATOR, "GET", path, query=query)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["code"] == code
    # Authorisation first: a partner admin of another organisation learns nothing about them.
    if path.startswith(MAIRIE):
        assert portal.call("nadia.benali", "GET", path, query=query).status_code == 403
