"""The rules (docs/rules.md) that bound who may act where: a manager's perimeter (R-ADM-4,
R-ADM-6) and the table of rights (R-ADM-5), one test per refusal, through the HTTP
administration API on the demo data (``pdp.services.demo``).

Each test names the rule it checks. Every refusal is checked to have written nothing: the
revision ``GET /healthz`` serves is unchanged and no audit event was emitted (one write = one
transaction, nothing half done). A 403 carries the engine's reason and the id of the logged
decision (R-ADM-7). The demo's actors and groups are recalled in ``support.admin_bodies``.
"""

from __future__ import annotations

from support.actors import Api
from support.admin_bodies import make_chloe_manager_of_accueil, new_user, role
from support.constants import CONVENTION, HABITAT, MAIRIE

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
