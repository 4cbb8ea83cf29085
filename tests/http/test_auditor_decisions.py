"""The auditors' API over a real decision log: every decision (checks, batch items, permissions
listings, administrative checks) is found in ``GET /v1/decisions`` with what it was decided on,
by its filters, page by page, newest first, within the reader's scope (R-ADM-7).

Operators read everything; a partner admin their own organisation; others nothing (R-ADM-7).
The app runs over the demo with a real decision log (WalLog + Shipper, shipped by hand): the
``portal`` fixture of tests/http/conftest.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pdp.core.masking import Masker

from support.auditor import Portal, by_id
from support.constants import MAIRIE, OPERATOR

# -- the decision log -------------------------------------------------------------------------


def test_every_decision_is_logged_and_found(portal: Portal) -> None:
    """Checks, batch items, permissions listings and administrative checks are all found in
    GET /v1/decisions with what they were decided on; a bad batch item is no decision."""
    allowed = portal.check(request_id="req-a", user="bruno.petit", service="cdap", role="T18")
    denied = portal.check(request_id="req-b", user="chloe.roux", service="cdap", role="T18")
    r = portal.call(
        None,
        "POST",
        "/v1/check/batch",
        body={
            "checks": [
                {"user": "lea.fontaine", "service": "afas"},
                {"user": "emma.garnier", "service": "cdap", "role": "T18"},
                {"user": "chloe.roux", "service": "cdap", "role": "T99"},
            ]
        },
        request_id="req-batch",
    )
    assert r.status_code == 200
    batch = r.get_json()["results"]
    assert "error" in batch[2]
    r = portal.call(None, "GET", "/v1/users/nadia.benali/permissions", request_id="req-perm")
    assert r.status_code == 200
    permissions = r.get_json()
    r = portal.call(
        None,
        "POST",
        "/v1/admin/check",
        body={
            "actor": "bruno.petit",
            "action": "group.roles.edit",
            "target": "group:mairie-montreuil/CCAS-ACCUEIL",
        },
        request_id="req-admin",
    )
    assert r.status_code == 200
    admin_check = r.get_json()

    logged = by_id(portal.decisions(limit=1000))
    expected = [
        (allowed, "req-a", "check", "bruno.petit", "cdap", True, "ALLOWED"),
        (denied, "req-b", "check", "chloe.roux", "cdap", False, "ROLE_NOT_GRANTED"),
        (batch[0], "req-batch", "check", "lea.fontaine", "afas", True, "ALLOWED"),
        (batch[1], "req-batch", "check", "emma.garnier", "cdap", False, "GROUP_CLOSED"),
        (permissions, "req-perm", "permissions", "nadia.benali", None, True, "ALLOWED"),
        (admin_check, "req-admin", "admin", "bruno.petit", None, True, "ALLOWED"),
    ]
    for answer, request_id, kind, user, service, ok, reason in expected:
        entry = logged[answer["decision_id"]]
        assert entry["kind"] == kind
        assert entry["request_id"] == request_id
        # The client is the name of the API key the call carried (conftest's "tests").
        assert entry["client"] == "tests"
        assert entry["user"] == user
        assert entry.get("service") == service
        assert entry["allowed"] is ok
        assert entry["reason"] == reason
        assert entry["revision"] == 1
        assert entry["at_time"].endswith("Z")
        if kind != "permissions":
            assert entry["eval_us"] >= 0
        if kind == "check":
            grants = [[g["group"], g["service"], g["role"], g["source"]] for g in answer["grants"]]
            assert entry["grants"] == grants
        # the single read gives the same entry
        one = portal.decision(answer["decision_id"])
        assert {k: one[k] for k in entry} == entry
    assert logged[allowed["decision_id"]]["grants"] == [
        ["CCAS-INSTRUCTION", "cdap", "T18", "group"],
        ["CCAS", "cdap", "T18", "group"],
    ]
    assert logged[permissions["decision_id"]]["grants"] == [["CONSULTATION", "cdap", "T1", "group"]]
    assert logged[admin_check["decision_id"]]["action"] == "group.roles.edit"
    # The reads are decisions too (R-ADM-7): the operator's log.read, logged and found.
    reads = portal.decisions(kind="admin", user=OPERATOR)
    assert reads and {e["action"] for e in reads} == {"log.read"}
    assert all(e["allowed"] for e in reads)


def test_masked_user_is_found_by_its_plain_value(portal: Portal) -> None:
    """A login that is an email is logged masked; the query masks the searched value the same
    way, so the auditor still finds it (and the email is not in the answer)."""
    email = "someone@example.fr"
    answer = portal.check(user=email, service="cdap")
    assert answer["reason"]["code"] == "UNKNOWN_USER"
    found = portal.decisions(user=email)
    assert [e["decision_id"] for e in found] == [answer["decision_id"]]
    assert found[0]["user"] == Masker().pseudonym(email)
    assert email not in str(found)


def test_filters(portal: Portal) -> None:
    """user, service, allowed, kind, organisation and from/to each narrow the log (and keep
    what they should)."""
    ids = [
        portal.check(user="bruno.petit", service="cdap", role="T18")["decision_id"],
        portal.check(user="chloe.roux", service="cdap", role="T18")["decision_id"],
        portal.check(user="helene.fabre", service="espace_bailleur")["decision_id"],
        portal.check(user="nadia.benali", service="cdap", caf="691")["decision_id"],
        portal.check(user="bruno.petit", service="adonis")["decision_id"],
    ]
    assert portal.call(None, "GET", "/v1/users/bruno.petit/permissions").status_code == 200
    everything = portal.decisions(limit=1000)
    assert set(ids) <= set(by_id(everything))

    def ids_of(**query: Any) -> set[str]:
        return {e["decision_id"] for e in portal.decisions(**query)}

    bruno = portal.decisions(user="bruno.petit")
    assert {e["user"] for e in bruno} == {"bruno.petit"}
    assert {ids[0], ids[4]} <= {e["decision_id"] for e in bruno}
    assert {e["kind"] for e in bruno} >= {"check", "permissions"}
    cdap = portal.decisions(service="cdap")
    assert {e["service"] for e in cdap} == {"cdap"} and {ids[0], ids[1], ids[3]} <= ids_of(
        service="cdap"
    )
    assert ids[2] not in ids_of(service="cdap")
    denied = portal.decisions(allowed="false", kind="check")
    assert {e["allowed"] for e in denied} == {False}
    assert {ids[1], ids[3], ids[4]} <= {e["decision_id"] for e in denied}
    assert ids[0] not in {e["decision_id"] for e in denied}
    assert ids_of(allowed="true", kind="check") == {ids[0], ids[2]}
    assert {e["kind"] for e in portal.decisions(kind="permissions")} == {"permissions"}
    assert ids_of(organisation="habitat-93", kind="check") == {ids[2]}
    assert ids_of(organisation="ccas-grand-paris", kind="check") == {ids[3]}

    # from (included) / to (excluded): around the third check
    checks = sorted(
        (e for e in everything if e["decision_id"] in ids),
        key=lambda e: (e["ts"], e["decision_id"]),
    )
    pivot = checks[2]
    later = ids_of(kind="check", **{"from": pivot["at_time"]})
    earlier = ids_of(kind="check", to=pivot["at_time"])
    assert pivot["decision_id"] in later and pivot["decision_id"] not in earlier
    assert {c["decision_id"] for c in checks[:2]} <= earlier
    assert not {c["decision_id"] for c in checks[:2]} & later
    assert {c["decision_id"] for c in checks[3:]} <= later
    # an offset is honoured: the same instant written in Paris time
    paris = dt.datetime.fromisoformat(pivot["at_time"].replace("Z", "+00:00")).astimezone(
        dt.timezone(dt.timedelta(hours=1))
    )
    assert ids_of(kind="check", **{"from": paris.isoformat()}) == later
    assert ids_of(kind="check", **{"from": "2099-01-01"}) == set()


def test_pagination_newest_first(portal: Portal) -> None:
    """Pages of the log are newest first, chained by next_cursor, with no entry twice and none
    missing, the last page's cursor null."""
    made = {portal.check(user="bruno.petit", service="cdap")["decision_id"] for _ in range(23)}
    whole = portal.decisions(kind="check", limit=1000)
    assert {e["decision_id"] for e in whole} == made
    keys = [(e["ts"], e["decision_id"]) for e in whole]
    assert keys == sorted(keys, reverse=True)
    for limit in (1, 5, 7, 23, 24):
        paged = portal.decisions(kind="check", limit=limit)
        assert [e["decision_id"] for e in paged] == [e["decision_id"] for e in whole], limit
    first = portal.get(OPERATOR, "/v1/decisions", kind="check", limit=23)
    assert len(first["decisions"]) == 23 and first["next_cursor"] is None
    first = portal.get(OPERATOR, "/v1/decisions", kind="check", limit=22)
    assert first["next_cursor"] is not None


def test_scoping_of_the_log(portal: Portal) -> None:
    """Operators read every organisation; a partner admin their own (another one named: 403);
    a manager, a plain user: 403; no token: 401. A partner admin asking for a decision of
    another organisation, or of none, gets 404 as if it did not exist."""
    mairie = portal.check(user="bruno.petit", service="cdap")["decision_id"]
    gp = portal.check(user="nadia.benali", service="cdap")["decision_id"]
    operator = portal.check(user=OPERATOR, service="cdap")["decision_id"]  # no organisation
    listing = portal.call(None, "GET", "/v1/services/cdap/users").get_json()["decision_id"]

    seen = by_id(portal.decisions(limit=1000))
    assert {mairie, gp, operator, listing} <= set(seen)
    assert {e["organisation"] for e in seen.values()} >= {
        "mairie-montreuil",
        "ccas-grand-paris",
        None,
    }

    alice = portal.decisions("alice.martin", limit=1000)
    assert alice and {e["organisation"] for e in alice} == {"mairie-montreuil"}
    assert mairie in by_id(alice) and gp not in by_id(alice)
    assert by_id(portal.decisions("alice.martin", organisation="mairie-montreuil")).keys() >= {
        mairie
    }
    nadia = portal.decisions("nadia.benali")
    assert {e["organisation"] for e in nadia} == {"ccas-grand-paris"} and gp in by_id(nadia)

    err = portal.get("alice.martin", "/v1/decisions", 403, organisation="ccas-grand-paris")
    assert err["error"]["code"] == "OTHER_ORGANISATION"
    for who in ("bruno.petit", "chloe.roux"):  # a manager, a plain user
        assert portal.get(who, "/v1/decisions", 403)["error"]["code"] == "NOT_PERMITTED"
        portal.get(who, f"{MAIRIE}/audit", 403)
    assert portal.get(None, "/v1/decisions", 401)["error"]["code"]

    assert portal.decision(mairie, "alice.martin")["decision_id"] == mairie
    for other in (gp, operator, listing):
        err = portal.get("alice.martin", f"/v1/decisions/{other}", 404)
        assert err["error"]["code"] == "UNKNOWN_DECISION", other
        assert portal.decision(other)["decision_id"] == other  # the operator reads it
    assert portal.get(OPERATOR, f"/v1/decisions/{'0' * 32}", 404)["error"]["code"] == (
        "UNKNOWN_DECISION"
    )
    assert portal.get(None, f"/v1/decisions/{mairie}", 401)["error"]["code"]
