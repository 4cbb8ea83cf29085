"""The administrator's guide, "Les responsables d'habilitations" (fiches 14 to 16, listed in
docs/rules.md), fiche by fiche, through the HTTP administration API on the demo data
(``pdp.services.demo``), as the actor the guide names (the partner admin alice.martin, the
manager bruno.petit, ...).

For every write it checks:

- the outcome, read back through the administration API;
- that decisions see the change at once (``POST /v1/check``, ``GET /v1/users/<login>/permissions``);
- that the write answers a ``revision`` equal to the one ``GET /healthz`` serves afterwards, one
  more than before (one write, one transaction), and that the write left audit events carrying it.

Rule refusals (403, 409, ...) are the business of the ``test_admin_rules_*.py`` files.
"""

from __future__ import annotations

import datetime as dt

from support.actors import Api
from support.admin_bodies import day, new_user
from support.constants import ASSO, CONVENTION, MAIRIE

# -- Les responsables d'habilitations (fiches 14 to 16) ---------------------------------------


def test_fiche_14_name_manager(api: Api) -> None:
    """Fiche 14: the group's pencil icon → change the manager → save; "si l'utilisateur n'est
    pas encore créé, vous pouvez le créer directement depuis cet écran"."""
    out = api.write(
        "alice.martin",
        "PUT",
        f"{MAIRIE}/groups/CCAS-ACCUEIL/manager",
        {"new_user": new_user("yves.blanc", "Yves", "Blanc"), "replaces": "bruno.petit"},
    )
    assert (out["group"], out["manager"], out["previous"]) == (
        "CCAS-ACCUEIL",
        "yves.blanc",
        "bruno.petit",
    )
    assert out["notices"] == []
    assert sorted(e.action for e in api.audit.events) == ["group.manager.set", "user.create"]
    detail = api.read("alice.martin", f"{MAIRIE}/groups/CCAS-ACCUEIL")["group"]
    assert detail["manager"]["login"] == "yves.blanc"

    # The new manager administers the group at once: attaches a user, who gets its role.
    api.write("yves.blanc", "POST", f"{MAIRIE}/users", new_user("zoe.durand"), 201)
    api.write(
        "yves.blanc",
        "POST",
        f"{MAIRIE}/users/zoe.durand/memberships",
        {"group": "CCAS-ACCUEIL"},
        201,
    )
    assert api.allowed("zoe.durand", "cdap", "T1")
    # Being a manager is no business right (R-USR-2, R-ADM-2).
    assert api.services("yves.blanc") == {}
    # bruno, who manages the parent, still manages it through his perimeter (R-ADM-4).
    target = "group:mairie-montreuil/CCAS-ACCUEIL"
    assert api.may("bruno.petit", "group.members.edit", target) == "ALLOWED"
    assert api.may("yves.blanc", "group.members.edit", target) == "ALLOWED"
    assert api.may("yves.blanc", "group.edit", target) == "OUTSIDE_PERIMETER"


def test_fiche_15_view_manager(api: Api, today: dt.date) -> None:
    """Fiche 15: "Détail du groupe" shows the designated manager."""
    manager = api.read("alice.martin", f"{MAIRIE}/groups/CCAS-INSTRUCTION")["group"]["manager"]
    assert manager == {
        "login": "bruno.petit",
        "first_name": "Bruno",
        "last_name": "Petit",
        "opens_on": day(today, -730),
        "closes_on": None,
    }
    api.write(
        "bruno.petit",
        "PUT",
        f"{MAIRIE}/groups/CCAS-INSTRUCTION/manager",
        {"login": "chloe.roux", "replaces": "bruno.petit"},
    )
    manager = api.read("bruno.petit", f"{MAIRIE}/groups/CCAS-INSTRUCTION")["group"]["manager"]
    assert manager == {
        "login": "chloe.roux",
        "first_name": "Chloé",
        "last_name": "Roux",
        "opens_on": day(today),
        "closes_on": None,
    }
    listed = {g["code"]: g["manager"] for g in api.read("chloe.roux", f"{MAIRIE}/groups")["groups"]}
    assert listed["CCAS-INSTRUCTION"] == "chloe.roux"
    assert api.read("chloe.roux", f"{MAIRIE}/users/chloe.roux")["user"]["manages"] == [
        "CCAS-INSTRUCTION"
    ]
    assert (
        "CCAS-INSTRUCTION"
        not in api.read("alice.martin", f"{MAIRIE}/users/bruno.petit")["user"]["manages"]
    )


def test_fiche_16_replace_manager(api: Api) -> None:
    """Fiche 16: change the manager → save. The replaced manager loses the group's
    administration; "Point spécifique Afas": they keep afas:habiliter until detached from the
    group that carries it, and the answer says so (R-AFAS-4)."""
    # A group managed by chloe, then handed over to emma.
    api.write(
        "alice.martin",
        "POST",
        f"{MAIRIE}/groups",
        {
            "code": "RSA",
            "label": "RSA",
            "convention": CONVENTION,
            "manager": {"login": "chloe.roux"},
        },
        201,
    )
    target = "group:mairie-montreuil/RSA"
    assert api.may("chloe.roux", "group.members.edit", target) == "ALLOWED"
    out = api.write(
        "alice.martin",
        "PUT",
        f"{MAIRIE}/groups/RSA/manager",
        {"login": "emma.garnier", "replaces": "chloe.roux"},
    )
    assert (out["manager"], out["previous"], out["notices"]) == ("emma.garnier", "chloe.roux", [])
    assert api.may("chloe.roux", "group.members.edit", target) == "NOT_PERMITTED"
    assert api.may("emma.garnier", "group.members.edit", target) == "ALLOWED"
    r = api.call("chloe.roux", "POST", f"{MAIRIE}/users/chloe.roux/memberships", {"group": "RSA"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (403, "NOT_PERMITTED")

    # The Afas point: karim manages AFAS-HABILITER and is a member of it.
    assert api.allowed("karim.diallo", "afas", "habiliter")
    out = api.write(
        "karim.diallo",
        "PUT",
        f"{ASSO}/groups/AFAS-HABILITER/manager",
        {"login": "lea.fontaine", "replaces": "karim.diallo"},
    )
    assert out["manager"] == "lea.fontaine"
    assert [n["code"] for n in out["notices"]] == ["AFAS_HABILITER_KEPT"]
    assert "AFAS-HABILITER" in out["notices"][0]["message"]
    assert api.allowed("karim.diallo", "afas", "habiliter")  # kept, as the notice says
    # "Il faut également le détacher du groupe qui porte le droit AFAS-Habiliter".
    api.write("karim.diallo", "DELETE", f"{ASSO}/users/karim.diallo/memberships/AFAS-HABILITER")
    assert api.reason("karim.diallo", "afas", "habiliter") == "NO_MEMBERSHIP"
    assert api.may("karim.diallo", "afas.profiles.edit", "user:lea.fontaine") == (
        "AFAS_HABILITER_REQUIRED"
    )
