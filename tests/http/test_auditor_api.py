"""The auditors' API over a real decision log (WalLog + Shipper) and the audit trail.

"Who looked at what, under which right, and who granted that right" (R-ADM-7): every decision
(checks, batch items, permissions listings, administrative checks) is found in
``GET /v1/decisions`` with what it was decided on; its explanation names the audit records that
made each step of its grant path; the audit trail answers "who gave <user> <role>, and when".
Operators read everything; a partner admin their own organisation; others nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, update

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import AuditRecord, PolicyRevision
from pdp.core.masking import Masker
from pdp.records.audit_trail import GENESIS, AuditChain
from pdp.records.decision_log import Shipper
from pdp.services.demo import DEMO_ACTOR
from pdp.web.app import create_app
from pdp.web.container import services

from support.actors import Api
from support.constants import CONVENTION, GP, MAIRIE, OPERATOR, SECRET


@pytest.fixture(autouse=True)
def _fresh_audit_head(request: pytest.FixtureRequest, backend: str) -> None:
    """Work around tests/conftest.py ``reset_postgres``, which empties ``audit_log`` but keeps
    the previous test's chain head (see tests/records/test_audit_chain.py). Runs before
    ``demo_db``."""
    if backend == "postgres":
        engine = make_engine(request.getfixturevalue("postgres_database"))
        try:
            with engine.begin() as conn:
                conn.execute(delete(AuditRecord))
                conn.execute(
                    update(PolicyRevision)
                    .where(PolicyRevision.id == 1)
                    .values(audit_seq=0, audit_hash=GENESIS)
                )
        finally:
            engine.dispose()


class Portal(Api):
    """The app with a real decision log, acting as anyone (``Api``), and reading as an
    auditor."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app.test_client())
        self.app = app

    def ship(self) -> None:
        shipper: Shipper = services(self.app).shipper
        shipper.ship_once()

    def decisions(self, who: str = OPERATOR, **query: Any) -> list[dict[str, Any]]:
        """Every page of GET /v1/decisions (after shipping), newest first."""
        self.ship()
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {**query, **({"cursor": cursor} if cursor else {})}
            page = self.get(who, "/v1/decisions", **params)
            out.extend(page["decisions"])
            cursor = page["next_cursor"]
            if cursor is None:
                return out

    def decision(self, decision_id: str, who: str = OPERATOR) -> dict[str, Any]:
        self.ship()
        return self.get(who, f"/v1/decisions/{decision_id}")

    def records(self, path: str, who: str = OPERATOR, **query: Any) -> list[dict[str, Any]]:
        """Every page of an audit listing, newest first."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {**query, **({"cursor": cursor} if cursor else {})}
            page = self.get(who, path, **params)
            out.extend(page["records"])
            cursor = page["next_cursor"]
            if cursor is None:
                return out


@pytest.fixture
def portal(demo_db: str, clean_env: None, tmp_path: Path) -> Iterator[Portal]:
    """The app over the demo, with a WalLog in ``tmp_path`` and its Shipper (shipped by hand:
    the background interval is an hour)."""
    app = create_app(
        {
            "database_url": demo_db,
            "decision_log": "buffered",
            "decision_log_dir": str(tmp_path / "decision-log"),
            "decision_log_ship_interval": 3600,
            "refresh_interval": 0,
            "verify_orgs": 0,
            "jwt_secret": SECRET,
        }
    )
    try:
        yield Portal(app)
    finally:
        services(app).decision_log.close()
        services(app).db.dispose()


def by_id(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["decision_id"]: e for e in entries}


def how_to(p: Portal) -> dict[str, int]:
    """The README's "habiliter un utilisateur": alice creates RSA (manager bruno) and gives it
    T18, creates zoe; bruno, manager of RSA, attaches her. The revisions, by step."""
    return {
        "group": p.write(
            "alice.martin",
            "POST",
            f"{MAIRIE}/groups",
            {
                "code": "RSA",
                "label": "Instruction RSA",
                "convention": CONVENTION,
                "manager": {"login": "bruno.petit"},
            },
            status=201,
            request_id="req-group",
        )["revision"],
        "role": p.write(
            "alice.martin",
            "POST",
            f"{MAIRIE}/groups/RSA/roles",
            {"service": "cdap", "role": "T18"},
            status=201,
            request_id="req-role",
        )["revision"],
        "user": p.write(
            "alice.martin",
            "POST",
            f"{MAIRIE}/users",
            {
                "login": "zoe.durand",
                "first_name": "Zoé",
                "last_name": "Durand",
                "email": "zoe.durand@montreuil.example.fr",
            },
            status=201,
            request_id="req-user",
        )["revision"],
        "membership": p.write(
            "bruno.petit",
            "POST",
            f"{MAIRIE}/users/zoe.durand/memberships",
            {"group": "RSA"},
            status=201,
            request_id="req-attach",
        )["revision"],
    }


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


# -- the explanation: who granted that right --------------------------------------------------


def test_explanation_of_a_demo_decision(portal: Portal) -> None:
    """Each grant of bruno's T18 names the demo load as who attached him to the group and who
    gave the group the role; an Afas profile names who gave it."""
    answer = portal.check(user="bruno.petit", service="cdap", role="T18")
    explained = portal.decision(answer["decision_id"], "alice.martin")
    steps = explained["explanation"]
    assert [s["group"] for s in steps] == ["CCAS-INSTRUCTION", "CCAS"]
    seqs = set()
    for step in steps:
        assert (step["service"], step["role"], step["source"]) == ("cdap", "T18", "group")
        member, role = step["membership_granted"], step["role_granted"]
        assert member["by"] == role["by"] == DEMO_ACTOR
        assert member["action"] == "group.members.edit"
        assert role["action"] == "group.roles.edit"
        assert member["revision"] == role["revision"] == 1
        seqs |= {member["audit_seq"], role["audit_seq"]}
    assert len(seqs) == 4  # four distinct records
    trail = {r["seq"]: r for r in portal.records(f"{MAIRIE}/audit", limit=1000)}
    for step in steps:
        member = trail[step["membership_granted"]["audit_seq"]]
        assert member["target"] == "user:bruno.petit"
        assert member["related"] == f"group:mairie-montreuil/{step['group']}"
        role = trail[step["role_granted"]["audit_seq"]]
        assert role["target"] == f"group:mairie-montreuil/{step['group']}"
        assert (role["after"]["service"], role["after"]["role"]) == ("cdap", "T18")

    afas = portal.check(user="lea.fontaine", service="afas")
    steps = portal.decision(afas["decision_id"])["explanation"]
    by_source = {s["source"]: s for s in steps}
    assert by_source["group"]["membership_granted"]["by"] == DEMO_ACTOR
    profile = by_source["afas_profile"]
    assert profile["role"] == "declaration"
    assert profile["profile_granted"] is not None
    assert profile["profile_granted"]["by"] == DEMO_ACTOR
    assert profile["profile_granted"]["action"] == "afas.profiles.edit"

    denied = portal.check(user="chloe.roux", service="cdap", role="T18")
    assert portal.decision(denied["decision_id"])["explanation"] == []


def test_explanation_names_who_granted_through_the_admin_api(portal: Portal) -> None:
    """After alice gives RSA the role T18 and bruno attaches zoe to RSA, zoe's allowed check is
    explained by those two writes: actor, revision, audit record (with its request id)."""
    before = portal.check(user="zoe.durand", service="cdap", role="T18")
    assert before["reason"]["code"] == "UNKNOWN_USER"
    rev = how_to(portal)
    answer = portal.check(user="zoe.durand", service="cdap", role="T18")
    assert answer["allowed"] and answer["revision"] == rev["membership"]
    explained = portal.decision(answer["decision_id"], "alice.martin")
    assert explained["revision"] == rev["membership"]
    (step,) = explained["explanation"]
    assert step["group"] == "RSA"
    member, role = step["membership_granted"], step["role_granted"]
    assert (member["by"], member["revision"], member["action"]) == (
        "bruno.petit",
        rev["membership"],
        "group.members.edit",
    )
    assert (role["by"], role["revision"], role["action"]) == (
        "alice.martin",
        rev["role"],
        "group.roles.edit",
    )
    trail = {r["seq"]: r for r in portal.records(f"{MAIRIE}/audit", "alice.martin", limit=1000)}
    assert trail[member["audit_seq"]]["request_id"] == "req-attach"
    assert trail[role["audit_seq"]]["request_id"] == "req-role"
    assert trail[member["audit_seq"]]["at"] == member["at"]

    # Detached and attached again by alice: a later decision names the new attachment, the
    # earlier one still its own (explanations are as of the decision's revision).
    r = portal.call("alice.martin", "DELETE", f"{MAIRIE}/users/zoe.durand/memberships/RSA")
    assert r.status_code == 200, r.get_json()
    assert not portal.check(user="zoe.durand", service="cdap", role="T18")["allowed"]
    again = portal.write(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users/zoe.durand/memberships",
        {"group": "RSA"},
        status=201,
        request_id="req-again",
    )["revision"]
    later = portal.check(user="zoe.durand", service="cdap", role="T18")
    step = portal.decision(later["decision_id"])["explanation"][0]
    assert (step["membership_granted"]["by"], step["membership_granted"]["revision"]) == (
        "alice.martin",
        again,
    )
    step = portal.decision(answer["decision_id"])["explanation"][0]
    assert step["membership_granted"]["by"] == "bruno.petit"


# -- the audit trail --------------------------------------------------------------------------


def test_audit_endpoint_filters_and_scoping(portal: Portal) -> None:
    """GET …/audit: the organisation's records newest first, by actor, by target, by period;
    partner admins of the organisation and operators only."""
    rev = how_to(portal)
    everything = portal.records(f"{MAIRIE}/audit", "alice.martin", limit=1000)
    assert {r["organisation"] for r in everything} == {"mairie-montreuil"}
    seqs = [r["seq"] for r in everything]
    assert seqs == sorted(seqs, reverse=True)
    paged = portal.records(f"{MAIRIE}/audit", "alice.martin", limit=3)
    assert [r["seq"] for r in paged] == seqs

    alice = portal.records(f"{MAIRIE}/audit", "alice.martin", actor="alice.martin")
    assert {r["actor"] for r in alice} == {"alice.martin"}
    assert {r["revision"] for r in alice} == {rev["group"], rev["role"], rev["user"]}
    assert {r["request_id"] for r in alice} == {"req-group", "req-role", "req-user"}
    bruno = portal.records(f"{MAIRIE}/audit", OPERATOR, actor="bruno.petit")
    assert [(r["action"], r["revision"]) for r in bruno] == [
        ("group.members.edit", rev["membership"])
    ]
    demo = portal.records(f"{MAIRIE}/audit", OPERATOR, actor=DEMO_ACTOR)
    assert demo and {r["revision"] for r in demo} == {1}
    assert len(demo) + len(alice) + len(bruno) == len(everything)

    zoe = portal.records(f"{MAIRIE}/audit", "alice.martin", target="user:zoe.durand")
    assert [r["action"] for r in zoe] == ["group.members.edit", "user.create"]
    assert zoe[1]["after"]["email"].startswith("masked:")
    assert portal.records(f"{MAIRIE}/audit", OPERATOR, target="user:nobody") == []

    newest = everything[0]
    since = portal.records(f"{MAIRIE}/audit", OPERATOR, **{"from": newest["at"]})
    assert newest["seq"] in {r["seq"] for r in since}
    assert all(r["at"] >= newest["at"] for r in since)
    until = portal.records(f"{MAIRIE}/audit", OPERATOR, to=newest["at"])
    assert newest["seq"] not in {r["seq"] for r in until}
    assert len(until) + len(since) == len(everything)

    # another organisation's admin, or a partner admin on another organisation: 403
    err = portal.get("nadia.benali", f"{MAIRIE}/audit", 403)
    assert err["error"]["code"] == "OTHER_ORGANISATION"
    portal.get("alice.martin", f"{GP}/audit", 403)
    portal.get(None, f"{MAIRIE}/audit", 401)
    gp = portal.records(f"{GP}/audit", "nadia.benali")
    assert gp and {r["organisation"] for r in gp} == {"ccas-grand-paris"}
    assert not {r["seq"] for r in gp} & set(seqs)


def test_user_history_who_gave_the_role(portal: Portal) -> None:
    """ "Who gave zoe T18, and when?": her history with service=cdap&role=T18 holds the role
    given to her group (alice) and her attachment (bruno), and none of the other roles."""
    rev = how_to(portal)
    history = portal.get(
        "alice.martin", f"{MAIRIE}/users/zoe.durand/history", service="cdap", role="T18"
    )
    assert history["target"] == "user:zoe.durand"
    got = {(r["actor"], r["action"], r["target"], r["revision"]) for r in history["records"]}
    assert ("alice.martin", "group.roles.edit", "group:mairie-montreuil/RSA", rev["role"]) in got
    assert ("bruno.petit", "group.members.edit", "user:zoe.durand", rev["membership"]) in got
    assert ("alice.martin", "user.create", "user:zoe.durand", rev["user"]) in got
    for r in history["records"]:
        if r["target"] != "user:zoe.durand" and r["action"] == "group.roles.edit":
            assert (r["after"]["service"], r["after"]["role"]) == ("cdap", "T18")
    full = portal.records(f"{MAIRIE}/users/zoe.durand/history", "alice.martin", limit=1000)
    assert {r["action"] for r in full} >= {"group.create_top", "group.roles.edit"}
    # Her only group (RSA) never held T1: her account's records, none of her memberships.
    assert portal.records(f"{MAIRIE}/users/zoe.durand/history", "alice.martin", role="T1") == [
        r for r in full if r["target"] == "user:zoe.durand" and r["related"] is None
    ]

    # bruno, in CCAS and CCAS-INSTRUCTION since the demo: who gave him T18?
    t18 = portal.records(
        f"{MAIRIE}/users/bruno.petit/history", "alice.martin", role="T18", limit=1000
    )
    given = {r["target"] for r in t18 if r["action"] == "group.roles.edit"}
    assert given == {"group:mairie-montreuil/CCAS", "group:mairie-montreuil/CCAS-INSTRUCTION"}
    assert {r["actor"] for r in t18 if r["action"] == "group.roles.edit"} == {DEMO_ACTOR}
    # the same, a page at a time: nothing skipped, nothing twice
    for limit in (1, 2, 3):
        paged = portal.records(
            f"{MAIRIE}/users/bruno.petit/history", "alice.martin", role="T18", limit=limit
        )
        assert [r["seq"] for r in paged] == [r["seq"] for r in t18], limit

    portal.get("nadia.benali", f"{MAIRIE}/users/zoe.durand/history", 403)
    portal.get("bruno.petit", f"{MAIRIE}/users/zoe.durand/history", 403)


def test_group_history(portal: Portal) -> None:
    """A group's history: its creation, its roles and its memberships, newest first."""
    rev = how_to(portal)
    records = portal.records(f"{MAIRIE}/groups/RSA/history", "alice.martin")
    assert [(r["action"], r["actor"], r["revision"]) for r in records] == [
        ("group.members.edit", "bruno.petit", rev["membership"]),
        ("group.roles.edit", "alice.martin", rev["role"]),
        ("group.create_top", "alice.martin", rev["group"]),
    ]
    ccas = portal.records(f"{MAIRIE}/groups/CCAS/history", OPERATOR, limit=1000)
    members = {r["target"] for r in ccas if r["action"] == "group.members.edit"}
    assert members == {"user:bruno.petit"}
    portal.get("alice.martin", f"{GP}/groups/CONSULTATION/history", 403)


# -- the README, replayed ---------------------------------------------------------------------


def test_readme_scenarios_are_all_found(portal: Portal, today: dt.date) -> None:
    """Every call of the README's examples, replayed: each decision it made (checks, batch
    items, permissions, service listing, admin checks, refusals) is found by its id with its
    outcome, and each administrative change in the audit trail with its actor and revision;
    the refused writes left no record."""
    ids: dict[str, tuple[bool, str]] = {}

    def check(expect: str, **body: Any) -> dict[str, Any]:
        out = portal.check(**body)
        assert out["reason"]["code"] == expect, (body, out)
        ids[out["decision_id"]] = (out["allowed"], expect)
        return out

    check("ALLOWED", user="bruno.petit", service="cdap", role="T18")
    check("ROLE_NOT_GRANTED", user="chloe.roux", service="cdap", role="T18")
    check("CAF_NOT_SUBSCRIBED", user="nadia.benali", service="cdap", caf="691")
    check(
        "ALLOWED",
        user="david.leroy",
        service="cdap",
        at=(today - dt.timedelta(days=313)).isoformat(),
    )
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
    )
    for item, expect in zip(r.get_json()["results"][:2], ("ALLOWED", "GROUP_CLOSED"), strict=True):
        ids[item["decision_id"]] = (item["allowed"], expect)
    perm = portal.call(None, "GET", "/v1/users/nadia.benali/permissions").get_json()
    ids[perm["decision_id"]] = (True, "ALLOWED")
    page = portal.call(None, "GET", "/v1/services/cdap/users", query={"limit": 2}).get_json()
    ids[page["decision_id"]] = (True, "ALLOWED")
    page = portal.call(
        None, "GET", "/v1/services/cdap/users", query={"limit": 2, "cursor": page["next_cursor"]}
    ).get_json()
    ids[page["decision_id"]] = (True, "ALLOWED")

    rev = how_to(portal)  # with the denied check in the middle, as in the README
    assert rev == {"group": 2, "role": 3, "user": 4, "membership": 5}
    check("ALLOWED", user="zoe.durand", service="cdap", role="T18")
    r = portal.call(
        None,
        "POST",
        "/v1/admin/check",
        body={
            "actor": "bruno.petit",
            "action": "group.roles.edit",
            "target": "group:mairie-montreuil/RSA",
        },
    )
    ids[r.get_json()["decision_id"]] = (True, "ALLOWED")
    sub = portal.write(
        "bruno.petit",
        "POST",
        f"{MAIRIE}/groups",
        {
            "code": "RSA-ACCUEIL",
            "label": "Accueil RSA",
            "parent": "RSA",
            "manager": {"login": "chloe.roux"},
        },
        status=201,
        request_id="req-sub",
    )["revision"]
    assert sub == 6
    r = portal.call(
        "bruno.petit",
        "POST",
        f"{MAIRIE}/groups/RSA-ACCUEIL/roles",
        {"service": "cdap", "role": "T1"},
    )
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "SUBGROUP_ROLE_NOT_IN_PARENT"
    r = portal.call(
        "bruno.petit",
        "POST",
        f"{MAIRIE}/groups",
        {
            "code": "TOP",
            "label": "x",
            "convention": CONVENTION,
            "manager": {"login": "bruno.petit"},
        },
    )
    assert r.status_code == 403
    refused = r.get_json()["error"]["details"]["decision_id"]
    ids[refused] = (False, "NOT_PERMITTED")

    for decision_id, (allowed, reason) in ids.items():
        entry = portal.decision(decision_id)
        assert (entry["allowed"], entry["reason"]) == (allowed, reason), entry
    assert portal.decision(refused)["action"] == "group.create_top"

    # each write was itself an allowed administrative decision, found by actor and kind
    admin = portal.decisions(kind="admin", user="alice.martin")
    assert {("group.create_top", True), ("group.roles.edit", True), ("user.create", True)} <= {
        (e["action"], e["allowed"]) for e in admin
    }

    trail = portal.records(f"{MAIRIE}/audit", "alice.martin", limit=1000)
    changes = {(r["revision"], r["actor"], r["action"]) for r in trail if r["revision"] > 1}
    assert changes == {
        (2, "alice.martin", "group.create_top"),
        (3, "alice.martin", "group.roles.edit"),
        (4, "alice.martin", "user.create"),
        (5, "bruno.petit", "group.members.edit"),
        (6, "bruno.petit", "group.create_sub"),
    }
    assert portal.get(None, "/healthz")["revision"] == 6  # the refusals wrote nothing
    assert AuditChain().verify(services(portal.app).db).ok


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


def test_a_filtered_history_holds_only_what_concerns_the_role(portal: Portal) -> None:
    """R-DEC-3's grant path, told by the audit trail: filtered on a role, a user's history holds
    the records that gave or took that role, the memberships of groups that held it, and the
    records of the user and of those groups themselves; never a membership of a group that
    never held the role, nor another role's records."""
    how_to(portal)  # zoe.durand joins RSA, which holds cdap T18 only
    full = portal.records(f"{MAIRIE}/users/zoe.durand/history", limit=1000)
    memberships = [r for r in full if (r["related"] or "").startswith("group:")]
    assert memberships, "the how-to attaches zoe to RSA"
    for role, held in (("T18", True), ("T1", False)):
        got = portal.records(f"{MAIRIE}/users/zoe.durand/history", service="cdap", role=role)
        seqs = {r["seq"] for r in got}
        assert all((m["seq"] in seqs) is held for m in memberships), role
        for r in got:
            rights = [s for s in (r["before"], r["after"]) if isinstance(s, dict) and "role" in s]
            assert all(s["role"] == role for s in rights), (role, r)
    # bruno: member of CCAS (T1, T18) and CCAS-INSTRUCTION (T1, T18); filtered on cdap T1, the
    # role records are T1's only, and every membership kept is of a group that held T1.
    t1 = portal.records(f"{MAIRIE}/users/bruno.petit/history", service="cdap", role="T1")
    given = {r["target"] for r in t1 if r["action"] == "group.roles.edit"}
    assert given
    for r in t1:
        if r["action"] == "group.roles.edit":
            assert r["after"]["role"] == "T1"
        elif (r["related"] or "").startswith("group:") and r["target"].startswith("user:"):
            assert r["related"] in given
    # A group's history filtered on a role it never held: no role record, no membership.
    rsa = portal.records(f"{MAIRIE}/groups/RSA/history", service="cdap", role="T1")
    assert [r["action"] for r in rsa] == ["group.create_top"]
