""" "Who looked at what, under which right, and who granted that right" (R-ADM-7): a decision's
explanation names the audit records that made each step of its grant path (R-DEC-3); the audit
trail, its filters and scoping, and a user's or group's history answer "who gave <user> <role>,
and when".

Operators read everything; a partner admin their own organisation; others nothing (R-ADM-7).
The app runs over the demo with a real decision log (WalLog + Shipper, shipped by hand): the
``portal`` fixture of tests/http/conftest.py.
"""

from __future__ import annotations

from pdp.services.demo import DEMO_ACTOR

from support.auditor import Portal, how_to
from support.constants import GP, MAIRIE, OPERATOR

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
