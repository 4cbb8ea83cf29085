"""The README's auditor scenarios, replayed: every decision and audit record they describe is
found through the auditors' API (R-ADM-7).

Operators read everything; a partner admin their own organisation; others nothing (R-ADM-7).
The app runs over the demo with a real decision log (WalLog + Shipper, shipped by hand): the
``portal`` fixture of tests/http/conftest.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pdp.records.audit_trail import AuditChain
from pdp.web.container import services

from support.auditor import Portal, how_to
from support.constants import CONVENTION, MAIRIE

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
