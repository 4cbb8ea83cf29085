"""The rules (docs/rules.md) on groups that refuse an administrative action: group roles
(R-GRP-4), system groups and closing (R-GRP-2, R-GRP-3), one test per refusal, through the HTTP
administration API on the demo data (``pdp.services.demo``).

Each test names the rule it checks. Every refusal is checked to have written nothing: the
revision ``GET /healthz`` serves is unchanged and no audit event was emitted (one write = one
transaction, nothing half done). A 403 carries the engine's reason and the id of the logged
decision (R-ADM-7). The demo's actors and groups are recalled in ``support.admin_bodies``.
"""

from __future__ import annotations

import datetime as dt

from support.actors import Api
from support.admin_bodies import day, new_user, role
from support.constants import HABITAT, MAIRIE

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
