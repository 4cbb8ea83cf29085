"""The rules (docs/rules.md) that refuse an administrative action, one test per refusal, through
the HTTP administration API on the demo data (``pdp.services.demo``).

Each test names the rule it checks. Every refusal is checked to have written nothing: the
revision ``GET /healthz`` serves is unchanged and no audit event was emitted (one write = one
transaction, nothing half done). A 403 carries the engine's reason and the id of the logged
decision (R-ADM-7).

Demo reminders: mairie-montreuil's partner admin is alice.martin (in no group); bruno.petit
manages CCAS and its sub-groups CCAS-ACCUEIL, CCAS-INSTRUCTION, CCAS-ARCHIVES (closed), and is a
member of CCAS and CCAS-INSTRUCTION; chloe.roux is a member of CCAS-ACCUEIL; david.leroy is
closed, fabien.morel not yet open. habitat-93 has the system groups EB-PARC-*; asso-entraide's
admin karim.diallo manages AFAS-DECLARER and AFAS-HABILITER.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask

from pdp.core.config import Settings
from pdp.records.audit_trail import AuditReader
from pdp.services.tokens import mint
from pdp.web.container import services

from support.actors import Api
from support.constants import ASSO, CONVENTION, HABITAT, MAIRIE, SECRET, MakeApp


@pytest.fixture
def api(make_app: MakeApp) -> Api:
    """The API over a private copy of the demo (sqlite, and postgres when asked)."""
    app, log = make_app(jwt_secret=SECRET)
    audit = AuditReader(services(app).db)
    return Api(app.test_client(), audit, log)


def day(today: dt.date, n: int = 0) -> str:
    """ISO day ``n`` days from ``today``."""
    return (today + dt.timedelta(days=n)).isoformat()


def new_user(login: str) -> dict[str, str]:
    """A user to create."""
    return {"login": login, "first_name": "Zoé", "last_name": "Durand", "email": f"{login}@x.fr"}


def role(service: str, name: str) -> dict[str, str]:
    """A role body."""
    return {"service": service, "role": name}


def make_chloe_manager_of_accueil(api: Api) -> None:
    """alice names chloe.roux manager of CCAS-ACCUEIL (a sub-group of CCAS)."""
    api.write(
        "alice.martin",
        "PUT",
        f"{MAIRIE}/groups/CCAS-ACCUEIL/manager",
        {"login": "chloe.roux", "replaces": "bruno.petit"},
    )


# -- Perimeters (R-ADM-4, R-ADM-6) -------------------------------------------------------------


def test_r_adm_4_manager_of_subgroup_cannot_act_on_parent_or_sibling(api: Api) -> None:
    make_chloe_manager_of_accueil(api)
    api.write("alice.martin", "POST", f"{MAIRIE}/users", new_user("zoe.durand"), 201)
    # The parent and a sibling lie outside chloe's perimeter.
    for group in ("CCAS", "CCAS-INSTRUCTION"):
        api.refused(
            "chloe.roux",
            "POST",
            f"{MAIRIE}/users/zoe.durand/memberships",
            {"group": group},
            status=403,
            code="OUTSIDE_PERIMETER",
        )
        api.refused(
            "chloe.roux",
            "POST",
            f"{MAIRIE}/groups/{group}/roles",
            role("cdap", "T5"),
            status=403,
            code="OUTSIDE_PERIMETER",
        )
        api.refused(
            "chloe.roux",
            "DELETE",
            f"{MAIRIE}/groups/{group}/roles/cdap/T1",
            status=403,
            code="OUTSIDE_PERIMETER",
        )
        api.refused(
            "chloe.roux",
            "POST",
            f"{MAIRIE}/groups",
            {"code": "SUB", "label": "Sub", "parent": group, "manager": {"login": "chloe.roux"}},
            status=403,
            code="OUTSIDE_PERIMETER",
        )
    api.refused(
        "chloe.roux",
        "DELETE",
        f"{MAIRIE}/users/bruno.petit/memberships/CCAS-INSTRUCTION",
        status=403,
        code="OUTSIDE_PERIMETER",
    )
    # Her own group is hers.
    api.write(
        "chloe.roux",
        "POST",
        f"{MAIRIE}/users/zoe.durand/memberships",
        {"group": "CCAS-ACCUEIL"},
        201,
    )
    assert api.reason("zoe.durand", "cdap", "T1") == "ALLOWED"


def test_r_adm_6_manager_cannot_act_in_another_organisation(api: Api) -> None:
    api.refused(
        "bruno.petit",
        "POST",
        f"{HABITAT}/users",
        new_user("zoe.durand"),
        status=403,
        code="OTHER_ORGANISATION",
    )
    api.refused(
        "bruno.petit",
        "POST",
        "/v1/organisations/sip-lyon/users/jules.lambert/memberships",
        {"group": "DGFIP-ENQUETE"},
        status=403,
        code="OTHER_ORGANISATION",
    )
    api.refused(
        "bruno.petit",
        "PATCH",
        "/v1/organisations/sip-lyon/users/jules.lambert",
        {"email": "j@x.fr"},
        status=403,
        code="OTHER_ORGANISATION",
    )
    api.refused(
        "bruno.petit",
        "GET",
        "/v1/organisations/sip-lyon/groups",
        status=403,
        code="OTHER_ORGANISATION",
    )
    # A partner admin is one only in their own organisation.
    api.refused(
        "alice.martin",
        "POST",
        "/v1/organisations/sip-lyon/groups/DGFIP-ENQUETE/roles",
        role("dgfip", "recouvrement"),
        status=403,
        code="OTHER_ORGANISATION",
    )
    assert api.may("bruno.petit", "group.edit", "group:sip-lyon/DGFIP-ENQUETE") == (
        "OTHER_ORGANISATION"
    )


# -- The table of rights (R-ADM-5) -------------------------------------------------------------


def test_r_adm_5_manager_names_managers_only_strictly_below(api: Api) -> None:
    # bruno's own top group: not his to hand over (decision: strict descendants only).
    api.refused(
        "bruno.petit",
        "PUT",
        f"{MAIRIE}/groups/CCAS/manager",
        {"login": "chloe.roux", "replaces": "bruno.petit"},
        status=403,
        code="OUTSIDE_PERIMETER",
    )
    # Nor edit or close it.
    api.refused(
        "bruno.petit",
        "PATCH",
        f"{MAIRIE}/groups/CCAS",
        {"label": "x"},
        status=403,
        code="OUTSIDE_PERIMETER",
    )
    api.refused(
        "bruno.petit", "POST", f"{MAIRIE}/groups/CCAS/close", status=403, code="OUTSIDE_PERIMETER"
    )
    # A sub-group of it: allowed.
    out = api.write(
        "bruno.petit",
        "PUT",
        f"{MAIRIE}/groups/CCAS-ACCUEIL/manager",
        {"login": "chloe.roux", "replaces": "bruno.petit"},
    )
    assert out["manager"] == "chloe.roux"
    # chloe, now manager of CCAS-ACCUEIL only, may not hand it over in turn.
    api.refused(
        "chloe.roux",
        "PUT",
        f"{MAIRIE}/groups/CCAS-ACCUEIL/manager",
        {"login": "emma.garnier", "replaces": "chloe.roux"},
        status=403,
        code="OUTSIDE_PERIMETER",
    )


def test_r_adm_5_manager_cannot_create_top_level_group(api: Api) -> None:
    body = {"code": "RSA", "label": "RSA", "convention": CONVENTION}
    api.refused(
        "bruno.petit",
        "POST",
        f"{MAIRIE}/groups",
        {**body, "manager": {"login": "bruno.petit"}},
        status=403,
        code="NOT_PERMITTED",
    )
    # A plain user may not either; nor create users or read the directory.
    api.refused(
        "chloe.roux",
        "POST",
        f"{MAIRIE}/groups",
        {**body, "manager": {"login": "chloe.roux"}},
        status=403,
        code="NOT_PERMITTED",
    )
    api.refused(
        "chloe.roux", "POST", f"{MAIRIE}/users", new_user("x.y"), status=403, code="NOT_PERMITTED"
    )
    api.refused("chloe.roux", "GET", f"{MAIRIE}/users", status=403, code="NOT_PERMITTED")
    # A manager may create a sub-group in the perimeter (✓*).
    out = api.write(
        "bruno.petit",
        "POST",
        f"{MAIRIE}/groups",
        {"code": "CCAS-RSA", "label": "RSA", "parent": "CCAS", "manager": {"login": "chloe.roux"}},
        201,
    )
    assert out["group"]["parent"] == "CCAS"


# -- Group roles (R-GRP-4) ---------------------------------------------------------------------


def test_r_grp_4_subgroup_role_not_in_parent(api: Api) -> None:
    out = api.refused(
        "bruno.petit",
        "POST",
        f"{MAIRIE}/groups/CCAS-ACCUEIL/roles",
        role("cdap", "T5"),
        status=409,
        code="SUBGROUP_ROLE_NOT_IN_PARENT",
    )
    assert "CCAS" in out["error"]["message"]
    # Not even a partner admin may (R-GRP-4 binds everyone; R-ADM-6 for managers).
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/groups/CCAS-ACCUEIL/roles",
        role("cdap", "T5"),
        status=409,
        code="SUBGROUP_ROLE_NOT_IN_PARENT",
    )
    # A role the parent holds is fine.
    api.write(
        "bruno.petit", "POST", f"{MAIRIE}/groups/CCAS-ACCUEIL/roles", role("cdap", "T18"), 201
    )
    assert api.reason("chloe.roux", "cdap", "T18") == "ALLOWED"


def test_r_grp_4_service_not_subscribed(api: Api) -> None:
    # Dgfip was never subscribed by the town hall.
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/groups/CCAS/roles",
        role("dgfip", "enquete"),
        status=409,
        code="SERVICE_NOT_SUBSCRIBED",
    )
    # Adonis was, but the subscription has ended (R-CON-2).
    api.write("alice.martin", "DELETE", f"{MAIRIE}/groups/CCAS/roles/adonis/acces")
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/groups/CCAS/roles",
        role("adonis", "acces"),
        status=409,
        code="SERVICE_NOT_SUBSCRIBED",
    )
    # A role that the catalogue does not know is malformed.
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/groups/CCAS/roles",
        role("cdap", "T99"),
        status=400,
        code="UNKNOWN_ROLE",
    )


def test_r_grp_4_removing_a_role_removes_it_from_descendants(api: Api) -> None:
    api.write("alice.martin", "POST", f"{MAIRIE}/users", new_user("zoe.durand"), 201)
    api.write(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users/zoe.durand/memberships",
        {"group": "CCAS-INSTRUCTION"},
        201,
    )
    assert api.reason("chloe.roux", "cdap", "T1") == "ALLOWED"
    assert api.reason("zoe.durand", "cdap", "T1") == "ALLOWED"
    events = len(api.audit.events)

    out = api.write("alice.martin", "DELETE", f"{MAIRIE}/groups/CCAS/roles/cdap/T1")
    assert out["groups"] == ["CCAS", "CCAS-ACCUEIL", "CCAS-INSTRUCTION"]  # one revision for all
    new = api.audit.events[events:]
    assert sorted(e.target for e in new) == [
        "group:mairie-montreuil/CCAS",
        "group:mairie-montreuil/CCAS-ACCUEIL",
        "group:mairie-montreuil/CCAS-INSTRUCTION",
    ]
    assert {e.revision for e in new} == {out["revision"]}
    for group in ("CCAS", "CCAS-ACCUEIL", "CCAS-INSTRUCTION"):
        roles = api.read("alice.martin", f"{MAIRIE}/groups/{group}/roles")["roles"]
        assert ("cdap", "T1") not in {(r["service"], r["role"]) for r in roles}
    assert api.reason("chloe.roux", "cdap", "T1") == "ROLE_NOT_GRANTED"
    assert api.reason("zoe.durand", "cdap", "T1") == "ROLE_NOT_GRANTED"
    assert api.reason("zoe.durand", "cdap", "T18") == "ALLOWED"  # the other role stays
    # And it cannot come back below while the parent lacks it.
    api.refused(
        "bruno.petit",
        "POST",
        f"{MAIRIE}/groups/CCAS-ACCUEIL/roles",
        role("cdap", "T1"),
        status=409,
        code="SUBGROUP_ROLE_NOT_IN_PARENT",
    )


# -- Groups (R-GRP-2, R-GRP-3) ----------------------------------------------------------------


def test_r_grp_3_system_group_cannot_be_edited_or_closed(api: Api, today: dt.date) -> None:
    group = f"{HABITAT}/groups/EB-PARC-PRIVE"
    api.refused("gilles.bernard", "PATCH", group, {"label": "x"}, status=409, code="SYSTEM_GROUP")
    api.refused(
        "gilles.bernard",
        "PATCH",
        group,
        {"closes_on": day(today, 5)},
        status=409,
        code="SYSTEM_GROUP",
    )
    api.refused("gilles.bernard", "POST", f"{group}/close", status=409, code="SYSTEM_GROUP")
    api.refused(
        "gilles.bernard",
        "DELETE",
        f"{group}/roles/espace_bailleur/parc_prive",
        status=409,
        code="SYSTEM_GROUP",
    )
    api.refused(
        "gilles.bernard",
        "PUT",
        f"{group}/manager",
        {"login": "helene.fabre", "replaces": "gilles.bernard"},
        status=409,
        code="SYSTEM_GROUP",
    )
    api.refused(
        "gilles.bernard",
        "POST",
        f"{HABITAT}/groups",
        {
            "code": "SUB",
            "label": "Sub",
            "parent": "EB-PARC-CONVENTIONNE",
            "manager": {"login": "gilles.bernard"},
        },
        status=409,
        code="SYSTEM_GROUP",
    )
    assert api.reason("helene.fabre", "espace_bailleur", "parc_prive") == "ALLOWED"
    # Its members are the partner's business (fiche 4): attaching works.
    api.write(
        "gilles.bernard",
        "POST",
        f"{HABITAT}/users/gilles.bernard/memberships",
        {"group": "EB-PARC-CONVENTIONNE"},
        201,
    )


def test_r_grp_2_closing_group_closes_subgroups_ends_memberships_not_users(
    api: Api, today: dt.date
) -> None:
    out = api.write("alice.martin", "POST", f"{MAIRIE}/groups/CCAS/close")
    # CCAS-ARCHIVES was closed already: it keeps its own closing date.
    assert out["closed"] == ["CCAS", "CCAS-ACCUEIL", "CCAS-INSTRUCTION"]
    groups = {g["code"]: g for g in api.read("alice.martin", f"{MAIRIE}/groups")["groups"]}
    for code in ("CCAS", "CCAS-ACCUEIL", "CCAS-INSTRUCTION"):
        assert (groups[code]["open"], groups[code]["closes_on"]) == (False, day(today))
    assert groups["CCAS-ARCHIVES"]["closes_on"] == day(today, -5)
    for login in ("bruno.petit", "chloe.roux"):
        user = api.read("alice.martin", f"{MAIRIE}/users/{login}")["user"]
        assert user["closes_on"] is None  # the user is not closed
        assert user["memberships"]
        assert all(m["closes_on"] == day(today) and not m["open"] for m in user["memberships"])
        assert api.permissions(login) == []
        assert api.reason(login, "cdap", "T1") == "NO_MEMBERSHIP"
    # bruno's account is open (he authenticates), but he manages no open group any more.
    api.refused("bruno.petit", "GET", f"{MAIRIE}/users", status=403, code="NOT_PERMITTED")
    # Closed once: closing again, or attaching to it, is refused.
    api.refused(
        "alice.martin", "POST", f"{MAIRIE}/groups/CCAS/close", status=409, code="GROUP_CLOSED"
    )
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users/chloe.roux/memberships",
        {"group": "CCAS-ACCUEIL"},
        status=409,
        code="GROUP_NOT_OPEN",
    )


# -- Users (R-USR) -----------------------------------------------------------------------------


def test_r_usr_4_retroactive_user_closing_date(api: Api, today: dt.date) -> None:
    for actor in ("alice.martin", "bruno.petit"):
        api.refused(
            actor,
            "PATCH",
            f"{MAIRIE}/users/chloe.roux",
            {"closes_on": day(today, -1)},
            status=400,
            code="RETROACTIVE_DATE",
        )
    assert api.read("alice.martin", f"{MAIRIE}/users/chloe.roux")["user"]["closes_on"] is None
    assert api.reason("chloe.roux", "cdap", "T1") == "ALLOWED"
    # Not at creation either.
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users",
        {**new_user("zoe.durand"), "opens_on": day(today, -10), "closes_on": day(today, -1)},
        status=400,
        code="RETROACTIVE_DATE",
    )


def test_r_mem_2_retroactive_membership_closing_date(api: Api, today: dt.date) -> None:
    path = f"{MAIRIE}/users/chloe.roux/memberships/CCAS-ACCUEIL"
    api.refused(
        "bruno.petit",
        "PATCH",
        path,
        {"closes_on": day(today, -1)},
        status=400,
        code="RETROACTIVE_DATE",
    )
    api.refused(
        "alice.martin",
        "PATCH",
        path,
        {"closes_on": day(today, -30)},
        status=400,
        code="RETROACTIVE_DATE",
    )
    # Nor a membership that starts in the past.
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users/chloe.roux/memberships",
        {"group": "CCAS-INSTRUCTION", "opens_on": day(today, -1)},
        status=400,
        code="RETROACTIVE_DATE",
    )
    assert api.reason("chloe.roux", "cdap", "T1") == "ALLOWED"
    assert api.reason("chloe.roux", "cdap", "T1", at=day(today, -1)) == "ALLOWED"


def test_r_usr_4_closed_user_is_denied_administration(api: Api, today: dt.date) -> None:
    # The demo's closed user.
    api.refused("david.leroy", "GET", f"{MAIRIE}/users", status=401, code="ACTOR_CLOSED")
    api.refused(
        "david.leroy", "POST", f"{MAIRIE}/users", new_user("x.y"), status=401, code="ACTOR_CLOSED"
    )
    assert api.may("david.leroy", "directory.read", "organisation:mairie-montreuil") == (
        "ACTOR_CLOSED"
    )
    # A user not yet open is refused likewise.
    api.refused("fabien.morel", "GET", f"{MAIRIE}/users", status=401, code="ACTOR_CLOSED")

    # A manager closed today: refused from today on. A manager cannot be closed before being
    # replaced (R-ADM-3: every group has a manager).
    make_chloe_manager_of_accueil(api)
    api.read("chloe.roux", f"{MAIRIE}/users")
    out = api.refused(
        "alice.martin",
        "PATCH",
        f"{MAIRIE}/users/chloe.roux",
        {"closes_on": day(today)},
        status=409,
        code="USER_MANAGES_GROUPS",
    )
    assert out["error"]["details"] == {"groups": ["CCAS-ACCUEIL"]}
    api.write(
        "alice.martin",
        "PUT",
        f"{MAIRIE}/groups/CCAS-ACCUEIL/manager",
        {"login": "bruno.petit", "replaces": "chloe.roux"},
    )
    api.write("alice.martin", "PATCH", f"{MAIRIE}/users/chloe.roux", {"closes_on": day(today)})
    api.refused("chloe.roux", "GET", f"{MAIRIE}/users", status=401, code="ACTOR_CLOSED")
    assert api.may("chloe.roux", "user.create", "organisation:mairie-montreuil") == "ACTOR_CLOSED"
    assert api.reason("chloe.roux", "cdap", "T1") == "USER_CLOSED"


def test_r_usr_4_a_user_opened_today_can_be_closed_today(api: Api, today: dt.date) -> None:
    """R-USR-4 (and R-TIME-1): a user created by mistake is closed the same day, at once: from
    that moment they are denied everything, including administration. A closing date before
    the opening date stays refused."""
    api.write("alice.martin", "POST", f"{MAIRIE}/users", new_user("zoe.durand"), status=201)
    api.write(
        "bruno.petit",
        "POST",
        f"{MAIRIE}/users/zoe.durand/memberships",
        {"group": "CCAS-ACCUEIL"},
        status=201,
    )
    assert api.reason("zoe.durand", "cdap", "T1") == "ALLOWED"
    out = api.write(
        "alice.martin", "PATCH", f"{MAIRIE}/users/zoe.durand", {"closes_on": day(today)}
    )
    assert (out["user"]["opens_on"], out["user"]["closes_on"]) == (day(today), day(today))
    assert api.reason("zoe.durand", "cdap", "T1") == "USER_CLOSED"
    assert api.permissions("zoe.durand") == []
    api.refused("zoe.durand", "GET", f"{MAIRIE}/users", status=401, code="ACTOR_CLOSED")
    # Editing the closed user's names afterwards is not refused for its dates.
    api.write("alice.martin", "PATCH", f"{MAIRIE}/users/zoe.durand", {"first_name": "Zoé"})
    # A user opening in 10 days may be closed on that day, not before.
    future = {**new_user("yann.petit"), "opens_on": day(today, 10)}
    api.write("alice.martin", "POST", f"{MAIRIE}/users", future, status=201)
    api.refused(
        "alice.martin",
        "PATCH",
        f"{MAIRIE}/users/yann.petit",
        {"closes_on": day(today, 9)},
        status=400,
        code="INVALID_DATES",
    )
    api.write("alice.martin", "PATCH", f"{MAIRIE}/users/yann.petit", {"closes_on": day(today, 10)})


def test_r_time_2_closed_user_cannot_be_reopened(api: Api, today: dt.date) -> None:
    """Reopening a closed account, or moving its closing date, would rewrite the days it was
    closed: "was X allowed on day D?" must keep its answer (R-TIME-2)."""
    past = day(today, -20)
    assert api.reason("david.leroy", "cdap", "T1", at=past) == "USER_CLOSED"
    for body in ({"closes_on": None}, {"closes_on": day(today, 5)}, {"closes_on": day(today)}):
        api.refused(
            "alice.martin",
            "PATCH",
            f"{MAIRIE}/users/david.leroy",
            body,
            status=409,
            code="USER_CLOSED",
        )
    assert api.reason("david.leroy", "cdap", "T1", at=past) == "USER_CLOSED"
    # A closing date still ahead may move, or be dropped.
    api.write("alice.martin", "PATCH", f"{MAIRIE}/users/chloe.roux", {"closes_on": day(today, 5)})
    api.write("alice.martin", "PATCH", f"{MAIRIE}/users/chloe.roux", {"closes_on": None})
    assert api.reason("chloe.roux", "cdap", "T1", at=day(today, 6)) == "ALLOWED"


def test_r_usr_4_opening_date_of_an_open_user_cannot_move(api: Api, today: dt.date) -> None:
    """Moving an open user's opening date ahead would close them without fiche 3's checks (a
    manager left unreplaced, R-ADM-3); moving it back would rewrite the past (R-TIME-2)."""
    for opens_on in (day(today, 100), day(today, -1000)):
        api.refused(
            "alice.martin",
            "PATCH",
            f"{MAIRIE}/users/bruno.petit",
            {"opens_on": opens_on},
            status=409,
            code="USER_STARTED",
        )
    assert api.reason("bruno.petit", "cdap", "T1") == "ALLOWED"
    # A user not yet open: the opening may move, not to the past.
    api.refused(
        "alice.martin",
        "PATCH",
        f"{MAIRIE}/users/fabien.morel",
        {"opens_on": day(today, -1)},
        status=409,
        code="USER_STARTED",
    )
    out = api.write(
        "alice.martin", "PATCH", f"{MAIRIE}/users/fabien.morel", {"opens_on": day(today)}
    )
    assert out["user"]["opens_on"] == day(today)
    assert api.reason("fabien.morel", "cdap", "T1") == "ALLOWED"


def test_r_usr_5_manager_cannot_edit_partner_admin(api: Api, today: dt.date) -> None:
    for body in ({"email": "a@b.fr"}, {"closes_on": day(today, 10)}):
        api.refused(
            "bruno.petit",
            "PATCH",
            f"{MAIRIE}/users/alice.martin",
            body,
            status=403,
            code="TARGET_IS_PARTNER_ADMIN",
        )
    # Even as a member of the manager's group (R-ADM-2: how an admin gets business roles).
    api.write(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users/alice.martin/memberships",
        {"group": "CCAS-ACCUEIL"},
        201,
    )
    api.refused(
        "bruno.petit",
        "PATCH",
        f"{MAIRIE}/users/alice.martin",
        {"first_name": "Al"},
        status=403,
        code="TARGET_IS_PARTNER_ADMIN",
    )
    assert api.may("bruno.petit", "user.edit", "user:alice.martin") == "TARGET_IS_PARTNER_ADMIN"


def test_r_usr_5_manager_cannot_edit_user_with_membership_outside_perimeter(api: Api) -> None:
    make_chloe_manager_of_accueil(api)
    # bruno's memberships (CCAS, CCAS-INSTRUCTION) lie outside chloe's perimeter.
    api.refused(
        "chloe.roux",
        "PATCH",
        f"{MAIRIE}/users/bruno.petit",
        {"email": "b@x.fr"},
        status=403,
        code="OUTSIDE_PERIMETER",
    )
    # A user of both CCAS-ACCUEIL and CCAS-INSTRUCTION: one membership is outside.
    api.write("alice.martin", "POST", f"{MAIRIE}/users", new_user("zoe.durand"), 201)
    for group in ("CCAS-ACCUEIL", "CCAS-INSTRUCTION"):
        api.write(
            "alice.martin", "POST", f"{MAIRIE}/users/zoe.durand/memberships", {"group": group}, 201
        )
    api.refused(
        "chloe.roux",
        "PATCH",
        f"{MAIRIE}/users/zoe.durand",
        {"last_name": "X"},
        status=403,
        code="OUTSIDE_PERIMETER",
    )
    # Once detached from the outside group, zoe is chloe's to edit.
    api.write("alice.martin", "DELETE", f"{MAIRIE}/users/zoe.durand/memberships/CCAS-INSTRUCTION")
    out = api.write("chloe.roux", "PATCH", f"{MAIRIE}/users/zoe.durand", {"last_name": "X"})
    assert out["user"]["last_name"] == "X"


def test_r_usr_3_editing_names_does_not_change_rights(api: Api) -> None:
    before = api.permissions("bruno.petit")
    assert before
    api.write(
        "alice.martin",
        "PATCH",
        f"{MAIRIE}/users/bruno.petit",
        {"first_name": "Bruno-Marie", "last_name": "Petit-Jean", "email": "bpj@montreuil.fr"},
    )
    assert api.permissions("bruno.petit") == before
    assert api.may("bruno.petit", "group.edit", "group:mairie-montreuil/CCAS-ACCUEIL") == (
        "ALLOWED"
    )


def test_r_usr_2_new_user_has_no_rights(api: Api) -> None:
    for actor, login in (("alice.martin", "zoe.durand"), ("bruno.petit", "yann.leduc")):
        api.write(actor, "POST", f"{MAIRIE}/users", new_user(login), 201)
        assert api.permissions(login) == []
        assert api.reason(login, "cdap") == "NO_MEMBERSHIP"
        assert api.may(login, "directory.read", "organisation:mairie-montreuil") == (
            "NOT_PERMITTED"
        )
        api.refused(login, "GET", f"{MAIRIE}/groups", status=403, code="NOT_PERMITTED")
    # A login is unique in the whole portal (R-USR-1).
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users",
        new_user("jules.lambert"),
        status=409,
        code="LOGIN_TAKEN",
    )


# -- Memberships (R-MEM-1) ---------------------------------------------------------------------


def test_r_mem_1_attach_needs_open_group(api: Api) -> None:
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users/chloe.roux/memberships",
        {"group": "CCAS-ARCHIVES"},
        status=409,
        code="GROUP_NOT_OPEN",
    )
    assert api.reason("chloe.roux", "cdap", "T18") == "ROLE_NOT_GRANTED"


def test_r_mem_1_attach_needs_open_user_of_same_organisation(api: Api) -> None:
    # A user of another organisation is not found in this one.
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users/jules.lambert/memberships",
        {"group": "CCAS"},
        status=404,
        code="UNKNOWN_USER",
    )
    # A closed user.
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users/david.leroy/memberships",
        {"group": "CCAS"},
        status=409,
        code="USER_NOT_OPEN",
    )
    # A group of another organisation: no such group here, refused before anything is read
    # (the engine answers UNKNOWN_TARGET, fail closed; the API says what is unknown: 404).
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users/chloe.roux/memberships",
        {"group": "DGFIP-ENQUETE"},
        status=404,
        code="UNKNOWN_GROUP",
    )
    # Twice the same group.
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users/chloe.roux/memberships",
        {"group": "CCAS-ACCUEIL"},
        status=409,
        code="ALREADY_MEMBER",
    )


# -- Managers (R-ADM-3, R-AFAS-4) --------------------------------------------------------------


def test_r_adm_3_manager_must_be_open_user_of_same_organisation(api: Api) -> None:
    path = f"{MAIRIE}/groups/CCAS-ACCUEIL/manager"
    for login in ("david.leroy", "fabien.morel"):  # closed, not yet open
        api.refused(
            "alice.martin",
            "PUT",
            path,
            {"login": login, "replaces": "bruno.petit"},
            status=409,
            code="MANAGER_NOT_OPEN",
        )
    # A user of another organisation is not one of this organisation's users.
    api.refused(
        "alice.martin",
        "PUT",
        path,
        {"login": "jules.lambert", "replaces": "bruno.petit"},
        status=404,
        code="UNKNOWN_USER",
    )
    # At creation too; the group is not created.
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/groups",
        {
            "code": "RSA",
            "label": "RSA",
            "convention": CONVENTION,
            "manager": {"login": "david.leroy"},
        },
        status=409,
        code="MANAGER_NOT_OPEN",
    )
    r = api.call("alice.martin", "GET", f"{MAIRIE}/groups/RSA")
    assert r.status_code == 404
    # A manager is required (R-ADM-3): a body naming none is malformed.
    api.refused(
        "alice.martin",
        "POST",
        f"{MAIRIE}/groups",
        {"code": "RSA", "label": "RSA", "convention": CONVENTION, "manager": {}},
        status=400,
        code="VALIDATION_ERROR",
    )
    detail = api.read("alice.martin", f"{MAIRIE}/groups/CCAS-ACCUEIL")["group"]
    assert detail["manager"]["login"] == "bruno.petit"


def test_r_adm_3_stale_replaces_gives_manager_changed(api: Api) -> None:
    path = f"{MAIRIE}/groups/CCAS-ACCUEIL/manager"
    out = api.refused(
        "alice.martin",
        "PUT",
        path,
        {"login": "emma.garnier", "replaces": "chloe.roux"},
        status=409,
        code="MANAGER_CHANGED",
    )
    assert out["error"]["details"] == {"current": "bruno.petit"}
    # Omitting ``replaces`` while the group has a manager is stale too.
    api.refused(
        "alice.martin", "PUT", path, {"login": "emma.garnier"}, status=409, code="MANAGER_CHANGED"
    )
    # Two admins racing: the second, based on the same state, is refused.
    api.write("alice.martin", "PUT", path, {"login": "chloe.roux", "replaces": "bruno.petit"})
    out = api.refused(
        "alice.martin",
        "PUT",
        path,
        {"login": "emma.garnier", "replaces": "bruno.petit"},
        status=409,
        code="MANAGER_CHANGED",
    )
    assert out["error"]["details"] == {"current": "chloe.roux"}
    # A stale request that would create its manager on the fly creates nobody.
    api.refused(
        "alice.martin",
        "PUT",
        path,
        {"new_user": new_user("zoe.durand"), "replaces": "bruno.petit"},
        status=409,
        code="MANAGER_CHANGED",
    )
    assert api.reason("zoe.durand", "cdap") == "UNKNOWN_USER"


def test_r_afas_4_replaced_manager_keeps_afas_habiliter_with_notice(api: Api) -> None:
    group = f"{ASSO}/groups/AFAS-HABILITER"
    target = "group:asso-entraide/AFAS-HABILITER"
    # lea becomes manager of AFAS-HABILITER and a member of it (not a partner admin).
    api.write(
        "karim.diallo",
        "PUT",
        f"{group}/manager",
        {"login": "lea.fontaine", "replaces": "karim.diallo"},
    )
    api.write(
        "karim.diallo",
        "POST",
        f"{ASSO}/users/lea.fontaine/memberships",
        {"group": "AFAS-HABILITER"},
        201,
    )
    assert api.may("lea.fontaine", "group.members.edit", target) == "ALLOWED"
    assert api.reason("lea.fontaine", "afas", "habiliter") == "ALLOWED"

    out = api.write(
        "karim.diallo",
        "PUT",
        f"{group}/manager",
        {"login": "marc.chevalier", "replaces": "lea.fontaine"},
    )
    assert (out["manager"], out["previous"]) == ("marc.chevalier", "lea.fontaine")
    assert [n["code"] for n in out["notices"]] == ["AFAS_HABILITER_KEPT"]
    assert "lea.fontaine" in out["notices"][0]["message"]
    # lea is no longer a manager, but keeps afas:habiliter (and so Afas profile management).
    assert api.may("lea.fontaine", "group.members.edit", target) == "NOT_PERMITTED"
    assert api.may("marc.chevalier", "group.members.edit", target) == "ALLOWED"
    assert api.reason("lea.fontaine", "afas", "habiliter") == "ALLOWED"
    assert api.may("lea.fontaine", "afas.profiles.edit", "user:marc.chevalier") == "ALLOWED"
    api.refused(
        "lea.fontaine",
        "DELETE",
        f"{ASSO}/users/lea.fontaine/memberships/AFAS-HABILITER",
        status=403,
        code="NOT_PERMITTED",
    )
    # Replacing karim (who holds afas:habiliter) says so; replacing marc (who does not)
    # says nothing.
    out = api.write(
        "karim.diallo",
        "PUT",
        f"{ASSO}/groups/AFAS-DECLARER/manager",
        {"login": "marc.chevalier", "replaces": "karim.diallo"},
    )
    assert [n["code"] for n in out["notices"]] == ["AFAS_HABILITER_KEPT"]  # karim holds it
    out = api.write(
        "karim.diallo",
        "PUT",
        f"{ASSO}/groups/AFAS-DECLARER/manager",
        {"login": "karim.diallo", "replaces": "marc.chevalier"},
    )
    assert out["notices"] == []


# -- Administrative decisions (R-ADM-7) and authentication -------------------------------------


def test_r_adm_7_public_admin_check(api: Api) -> None:
    before = api.revision()
    ccas, accueil = "group:mairie-montreuil/CCAS", "group:mairie-montreuil/CCAS-ACCUEIL"
    cases = [
        ("bruno.petit", "group.edit", accueil, "ALLOWED"),
        ("bruno.petit", "group.edit", ccas, "OUTSIDE_PERIMETER"),
        ("bruno.petit", "group.members.edit", ccas, "ALLOWED"),
        ("alice.martin", "group.edit", ccas, "ALLOWED"),
        ("chloe.roux", "group.edit", accueil, "NOT_PERMITTED"),
        ("bruno.petit", "group.create_top", "organisation:mairie-montreuil", "NOT_PERMITTED"),
        ("bruno.petit", "user.edit", "user:chloe.roux", "ALLOWED"),
        ("bruno.petit", "user.edit", "user:alice.martin", "TARGET_IS_PARTNER_ADMIN"),
        ("bruno.petit", "group.edit", "group:habitat-93/EB-PARC-PRIVE", "OTHER_ORGANISATION"),
        ("david.leroy", "group.edit", accueil, "ACTOR_CLOSED"),
        ("nobody.here", "group.edit", accueil, "UNKNOWN_ACTOR"),
        ("alice.martin", "group.edit", "group:mairie-montreuil/NOPE", "UNKNOWN_TARGET"),
        ("op.caf751", "contract.manage", "organisation:mairie-montreuil", "ALLOWED"),
        ("alice.martin", "contract.manage", "organisation:mairie-montreuil", "NOT_PERMITTED"),
    ]
    for actor, action, target, expected in cases:
        out = api.admin_check(actor, action, target)
        assert out["reason"]["code"] == expected, (actor, action, target)
        assert out["allowed"] is (expected == "ALLOWED")
        assert out["reason"]["message"]
        assert out["revision"] == before
        # Every answer is logged under its id (R-ADM-7).
        entry = next(e for e in api.log.entries if e["decision_id"] == out["decision_id"])
        assert (entry["user"], entry["action"], entry["target"], entry["reason"]) == (
            actor,
            action,
            target,
            expected,
        )
    assert len({e["decision_id"] for e in api.log.entries}) == len(cases)
    assert api.revision() == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"actor": "bruno.petit", "action": "group.fly", "target": "group:m/X"}, "UNKNOWN_ACTION"),
        ({"actor": "bruno.petit", "action": "group.edit", "target": "grp:x"}, "INVALID_TARGET"),
        (
            {"actor": "bruno.petit", "action": "group.edit", "target": "user:chloe.roux"},
            "ACTION_TARGET_MISMATCH",
        ),
        ({"actor": "bruno.petit", "action": "group.edit"}, "MISSING_FIELD"),
        (
            {"actor": "bruno.petit", "action": "group.edit", "target": "platform", "x": 1},
            "UNKNOWN_FIELD",
        ),
    ],
)
def test_r_adm_7_admin_check_bad_question_is_400(api: Api, body: dict[str, Any], code: str) -> None:
    before = len(api.log.entries)
    r = api.client.post("/v1/admin/check", json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["code"] == code
    assert len(api.log.entries) == before  # no decision was taken


def test_r_adm_7_admin_api_requires_a_valid_token(api: Api) -> None:
    write = ("POST", f"{MAIRIE}/users", new_user("zoe.durand"))
    api.refused(None, *write, status=401, code="UNAUTHENTICATED")
    api.refused(
        None,
        *write,
        headers={"Authorization": "Basic YWxpY2U6eA=="},
        status=401,
        code="UNAUTHENTICATED",
    )
    api.refused(
        None,
        *write,
        headers={"Authorization": "Bearer not-a-jwt"},
        status=401,
        code="INVALID_TOKEN",
    )
    forged = mint(Settings(jwt_secret="f" * 40), "alice.martin")
    api.refused(
        None,
        *write,
        headers={"Authorization": f"Bearer {forged}"},
        status=401,
        code="INVALID_TOKEN",
    )
    other_audience = mint(Settings(jwt_secret=SECRET, jwt_audience="other"), "alice.martin")
    api.refused(
        None,
        *write,
        headers={"Authorization": f"Bearer {other_audience}"},
        status=401,
        code="INVALID_TOKEN",
    )
    expired = mint(api.settings, "alice.martin", ttl=-60)
    api.refused(
        None,
        *write,
        headers={"Authorization": f"Bearer {expired}"},
        status=401,
        code="TOKEN_EXPIRED",
    )
    api.refused("nobody.here", *write, status=401, code="UNKNOWN_ACTOR")
    # Reads too.
    api.refused(None, "GET", f"{MAIRIE}/groups", status=401, code="UNAUTHENTICATED")
    api.refused("nobody.here", "GET", f"{MAIRIE}/groups", status=401, code="UNKNOWN_ACTOR")
    assert api.reason("zoe.durand", "cdap") == "UNKNOWN_USER"
    # The same request with a valid token goes through.
    api.write("alice.martin", *write, status=201)


@pytest.mark.parametrize("actor", ["op.caf751", "alice.martin"])
def test_an_unknown_organisation_is_404_on_every_read(api: Api, app: Flask, actor: str) -> None:
    """One behaviour everywhere: an organisation nobody knows answers 404 UNKNOWN_ORGANISATION
    on every route under /v1/organisations/<org>, for an operator and a partner admin alike
    (never 403 UNKNOWN_TARGET on some and 404 on others); a group unknown in a known
    organisation answers 404 UNKNOWN_GROUP."""
    fill = {"<org>": "nulle-part", "<login>": "bruno.petit", "<code>": "CCAS"}
    routes = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1/organisations/<org>") and "GET" in (rule.methods or ())
    ]
    assert len(routes) >= 10, routes
    for route in routes:
        path = route
        for name, value in fill.items():
            path = path.replace(name, value)
        api.refused(actor, "GET", path, status=404, code="UNKNOWN_ORGANISATION")
    for path in (f"{MAIRIE}/groups/NOPE", f"{MAIRIE}/groups/NOPE/roles"):
        api.refused("alice.martin", "GET", path, status=404, code="UNKNOWN_GROUP")
