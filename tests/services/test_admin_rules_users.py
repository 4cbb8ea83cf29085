"""The rules (docs/rules.md) on users and memberships that refuse an administrative action
(R-USR, R-MEM, R-TIME-2), one test per refusal, through the HTTP administration API on the demo
data (``pdp.services.demo``).

Each test names the rule it checks. Every refusal is checked to have written nothing: the
revision ``GET /healthz`` serves is unchanged and no audit event was emitted (one write = one
transaction, nothing half done). A 403 carries the engine's reason and the id of the logged
decision (R-ADM-7). The demo's actors and groups are recalled in ``support.admin_bodies``.
"""

from __future__ import annotations

import datetime as dt

from support.actors import Api
from support.admin_bodies import day, make_chloe_manager_of_accueil, new_user
from support.constants import MAIRIE

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
