"""The rules (docs/rules.md) on naming and replacing group managers (R-ADM-3, R-AFAS-4), one
test per refusal, through the HTTP administration API on the demo data (``pdp.services.demo``).

Each test names the rule it checks. Every refusal is checked to have written nothing: the
revision ``GET /healthz`` serves is unchanged and no audit event was emitted (one write = one
transaction, nothing half done). A 403 carries the engine's reason and the id of the logged
decision (R-ADM-7). The demo's actors and groups are recalled in ``support.admin_bodies``.
"""

from __future__ import annotations

from support.actors import Api
from support.admin_bodies import new_user
from support.constants import ASSO, CONVENTION, MAIRIE

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
    # Omitting ``replaces`` while the group has a manager is stale too, and the error says
    # which field is missing.
    out = api.refused(
        "alice.martin", "PUT", path, {"login": "emma.garnier"}, status=409, code="MANAGER_CHANGED"
    )
    assert out["error"]["details"] == {"current": "bruno.petit", "missing": "replaces"}
    assert "« replaces » manque" in out["error"]["message"]
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
