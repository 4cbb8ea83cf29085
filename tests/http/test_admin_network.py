"""The Caf network over HTTP (R-CON-4): operators register the Cafs and the other operators;
nobody else may, and every change is a policy write with its audit records. On the demo data
(op.caf751 is its one operator; mairie-montreuil has a convention with the Caf 931), on every
driver."""

from __future__ import annotations

import datetime as dt

import pytest

from pdp.records.audit_trail import AuditReader
from pdp.services.admin.network import CafList, CafWritten, OperatorList, OperatorWritten
from pdp.web.container import services

from support.actors import Api
from support.constants import MANAGER, OPERATOR, PARTNER_ADMIN, SECRET, MakeApp

NEW_OPERATOR = {
    "login": "paul.henry",
    "first_name": "Paul",
    "last_name": "Henry",
    "email": "paul.henry@caf.example.fr",
}


@pytest.fixture
def api(make_app: MakeApp) -> Api:
    """The API over a private copy of the demo, its audit trail and decision log."""
    app, log = make_app(jwt_secret=SECRET)
    return Api(app.test_client(), AuditReader(services(app).db), log)


def day(today: dt.date, n: int) -> str:
    return (today + dt.timedelta(days=n)).isoformat()


def test_operator_registers_lists_and_renames_a_caf_R_CON_4(api: Api, today: dt.date) -> None:
    out = api.write(OPERATOR, "POST", "/v1/cafs", {"code": "592", "name": "Caf du Nord"}, 201)
    CafWritten.model_validate(out)
    assert out["caf"] == {
        "code": "592",
        "name": "Caf du Nord",
        "opens_on": today.isoformat(),
        "closes_on": None,
        "open": True,
    }
    assert api.audit is not None
    event = api.audit.events[-1]
    assert (event.target, event.action, event.before) == ("caf:592", "caf.manage", None)
    listed = api.read(OPERATOR, "/v1/cafs")
    CafList.model_validate(listed)
    codes = [c["code"] for c in listed["cafs"]]
    assert codes == sorted(codes) and "592" in codes and "931" in codes
    renamed = api.write(OPERATOR, "PATCH", "/v1/cafs/592", {"name": "Caf du Nord (Lille)"})
    assert renamed["caf"]["name"] == "Caf du Nord (Lille)"


def test_a_network_write_previewed_writes_nothing_R_CON_4(api: Api) -> None:
    """``?dry_run=true`` on a write outside any organisation: its preview (no access changes),
    then the Caf is not there, no revision taken, no audit record."""
    before, events = api.revision(), len(api.audit.events) if api.audit else 0
    r = api.call(
        OPERATOR, "POST", "/v1/cafs", {"code": "593", "name": "x"}, query={"dry_run": "true"}
    )
    assert r.status_code == 200, r.get_json()
    answer = r.get_json()
    assert (answer["action"], answer["applied"], answer["users"]) == ("caf.manage", False, [])
    assert api.revision() == before
    assert (len(api.audit.events) if api.audit else 0) == events
    assert "593" not in [c["code"] for c in api.read(OPERATOR, "/v1/cafs")["cafs"]]
    bad = api.call(OPERATOR, "POST", "/v1/cafs", {"code": "593"}, query={"dry_run": "peut-etre"})
    assert (bad.status_code, bad.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR")


def test_a_caf_may_be_registered_with_its_real_opening_day(api: Api) -> None:
    out = api.write(
        OPERATOR,
        "POST",
        "/v1/cafs",
        {"code": "01", "name": "Caf de l'Ain", "opens_on": "1990-01-01"},
        201,
    )
    assert out["caf"]["opens_on"] == "1990-01-01"


def test_caf_code_taken_or_malformed_is_refused(api: Api) -> None:
    api.refused(
        OPERATOR, "POST", "/v1/cafs", {"code": "751", "name": "x"}, status=409, code="CAF_EXISTS"
    )
    api.refused(
        OPERATOR,
        "POST",
        "/v1/cafs",
        {"code": "75 1", "name": "x"},
        status=400,
        code="VALIDATION_ERROR",
    )
    api.refused(OPERATOR, "PATCH", "/v1/cafs/999", {"name": "x"}, status=404, code="UNKNOWN_CAF")
    api.refused(OPERATOR, "PATCH", "/v1/cafs/751", {}, status=400, code="EMPTY_EDIT")


def test_a_caf_closes_only_once_no_convention_outlives_it_R_CON_1(api: Api, today: dt.date) -> None:
    """A convention is with one Caf (R-CON-1): the Caf cannot close under an open one."""
    err = api.refused(
        OPERATOR,
        "PATCH",
        "/v1/cafs/931",
        {"closes_on": day(today, 30)},
        status=409,
        code="CAF_IN_USE",
    )
    assert "mairie-montreuil/CONV-mairie-montreuil-931" in err["error"]["details"]["conventions"]
    api.write(OPERATOR, "POST", "/v1/cafs", {"code": "592", "name": "Caf du Nord"}, 201)
    api.refused(
        OPERATOR,
        "PATCH",
        "/v1/cafs/592",
        {"closes_on": day(today, -1)},
        status=400,
        code="RETROACTIVE_DATE",
    )
    closed = api.write(OPERATOR, "PATCH", "/v1/cafs/592", {"closes_on": today.isoformat()})
    assert (closed["caf"]["closes_on"], closed["caf"]["open"]) == (today.isoformat(), False)
    api.refused(
        OPERATOR,
        "PATCH",
        "/v1/cafs/592",
        {"closes_on": day(today, 5)},
        status=409,
        code="ALREADY_CLOSED",
    )


@pytest.mark.parametrize("who", [PARTNER_ADMIN, MANAGER])
def test_only_operators_manage_the_network_R_CON_4(api: Api, who: str) -> None:
    api.refused(
        who, "POST", "/v1/cafs", {"code": "592", "name": "x"}, status=403, code="NOT_PERMITTED"
    )
    api.refused(who, "POST", "/v1/operators", NEW_OPERATOR, status=403, code="NOT_PERMITTED")
    assert api.call(who, "GET", "/v1/cafs").status_code == 403
    assert api.call(who, "GET", "/v1/operators").status_code == 403
    assert api.call(None, "GET", "/v1/cafs").status_code == 401


def test_a_new_operator_acts_at_once_and_stops_when_closed_R_USR_4(
    api: Api, today: dt.date
) -> None:
    out = api.write(OPERATOR, "POST", "/v1/operators", NEW_OPERATOR, 201)
    OperatorWritten.model_validate(out)
    assert out["operator"] == {
        **NEW_OPERATOR,
        "opens_on": today.isoformat(),
        "closes_on": None,
        "open": True,
    }
    listed = api.read("paul.henry", "/v1/operators")
    OperatorList.model_validate(listed)
    assert [o["login"] for o in listed["operators"]] == ["op.caf751", "paul.henry"]
    api.write("paul.henry", "POST", "/v1/cafs", {"code": "592", "name": "Caf du Nord"}, 201)
    api.write(OPERATOR, "PATCH", "/v1/operators/paul.henry", {"closes_on": today.isoformat()})
    api.refused("paul.henry", "GET", "/v1/cafs", status=401, code="ACTOR_CLOSED")


def test_the_last_open_operator_cannot_be_closed(api: Api, today: dt.date) -> None:
    api.refused(
        OPERATOR,
        "PATCH",
        f"/v1/operators/{OPERATOR}",
        {"closes_on": day(today, 10)},
        status=409,
        code="LAST_OPERATOR",
    )
    api.write(OPERATOR, "POST", "/v1/operators", NEW_OPERATOR, 201)
    api.write("paul.henry", "PATCH", f"/v1/operators/{OPERATOR}", {"closes_on": day(today, 10)})


def test_operator_logins_are_the_portals_R_USR_1(api: Api) -> None:
    api.refused(
        OPERATOR,
        "POST",
        "/v1/operators",
        {**NEW_OPERATOR, "login": PARTNER_ADMIN},
        status=409,
        code="LOGIN_TAKEN",
    )
    # A partner's account is not an operator's: it cannot be edited here.
    api.refused(
        OPERATOR,
        "PATCH",
        f"/v1/operators/{PARTNER_ADMIN}",
        {"first_name": "X"},
        status=404,
        code="UNKNOWN_OPERATOR",
    )


def test_a_convention_lies_within_its_cafs_days_R_CON_1(api: Api, today: dt.date) -> None:
    """A convention is with a Caf that exists (R-CON-1): not before it opens, not after it
    closes."""
    api.write(
        OPERATOR,
        "POST",
        "/v1/cafs",
        {"code": "592", "name": "Caf du Nord", "opens_on": day(today, 10)},
        201,
    )
    conventions = "/v1/organisations/mairie-montreuil/conventions"
    api.refused(
        OPERATOR,
        "POST",
        conventions,
        {"caf": "592", "reference": "C-592"},
        status=409,
        code="CAF_CLOSED",
    )
    api.write(
        OPERATOR,
        "POST",
        conventions,
        {
            "caf": "592",
            "reference": "C-592",
            "opens_on": day(today, 10),
            "closes_on": day(today, 40),
        },
        201,
    )
    api.write(OPERATOR, "PATCH", "/v1/cafs/592", {"closes_on": day(today, 40)})
    api.refused(
        OPERATOR,
        "PATCH",
        f"{conventions}/C-592",
        {"closes_on": None},
        status=409,
        code="CAF_CLOSED",
    )
    api.refused(
        OPERATOR,
        "POST",
        conventions,
        {"caf": "592", "reference": "C-592-B", "opens_on": day(today, 20)},
        status=409,
        code="CAF_CLOSED",
    )
