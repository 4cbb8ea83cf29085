"""The administrator's guide, "Les groupes d'utilisateurs" (fiches 7 to 13, listed in
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
from support.admin_bodies import day, logins, new_user
from support.constants import CONVENTION, MAIRIE

# -- Les groupes d'utilisateurs (fiches 7 to 13) ----------------------------------------------


def test_fiche_07_create_group(api: Api, today: dt.date) -> None:
    """Fiche 7: "Mes groupes" → "Créer un groupe" → the form, with a manager chosen among the
    existing users → "Créer le groupe". The opening date defaults to today (R-GRP-1, R-ADM-3)."""
    out = api.write(
        "alice.martin",
        "POST",
        f"{MAIRIE}/groups",
        {
            "code": "RSA",
            "label": "Instruction RSA",
            "convention": CONVENTION,
            "manager": {"login": "chloe.roux"},
        },
        201,
    )
    assert out["group"] == {
        "code": "RSA",
        "organisation": "mairie-montreuil",
        "label": "Instruction RSA",
        "parent": None,
        "system": False,
        "opens_on": day(today),
        "closes_on": None,
        "manager": "chloe.roux",
    }
    listed = {g["code"]: g for g in api.read("alice.martin", f"{MAIRIE}/groups")["groups"]}
    assert listed["RSA"]["manager"] == "chloe.roux" and listed["RSA"]["open"] is True
    detail = api.read("alice.martin", f"{MAIRIE}/groups/RSA")["group"]
    assert detail["convention"] == CONVENTION
    assert (detail["roles"], detail["members"], detail["subgroups"]) == ([], [], [])

    # The new manager may administer the group at once (R-ADM-4).
    assert api.may("chloe.roux", "group.members.edit", "group:mairie-montreuil/RSA") == ("ALLOWED")
    # A new group holds no role: its members get nothing yet.
    api.write("chloe.roux", "POST", f"{MAIRIE}/users/chloe.roux/memberships", {"group": "RSA"}, 201)
    assert api.services("chloe.roux")["cdap"]["groups"] == ["CCAS-ACCUEIL"]


def test_fiche_07_manager_created_on_the_fly(api: Api) -> None:
    """Fiche 7 / fiche 14 "A noter": the manager may be created from the group's form, in the
    same call; when that call fails, neither the group nor the user exists (one transaction)."""
    body = {
        "code": "RSA",
        "label": "Instruction RSA",
        "convention": CONVENTION,
        "manager": {"new_user": new_user("yves.blanc", "Yves", "Blanc")},
    }
    # A code already used (R-GRP-1): refused, and the user is not created either.
    before, events = api.revision(), len(api.audit.events)
    r = api.call("alice.martin", "POST", f"{MAIRIE}/groups", {**body, "code": "CCAS"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (409, "GROUP_CODE_TAKEN")
    assert (api.revision(), len(api.audit.events)) == (before, events)
    users = logins(api.read("alice.martin", f"{MAIRIE}/users")["users"])
    assert "yves.blanc" not in users
    r = api.call("alice.martin", "GET", f"{MAIRIE}/users/yves.blanc")
    assert (r.status_code, r.get_json()["error"]["code"]) == (404, "UNKNOWN_USER")
    assert api.reason("yves.blanc", "cdap") == "UNKNOWN_USER"

    # A login already taken on the portal (R-USR-1): the group is not created either.
    taken = {**body, "manager": {"new_user": new_user("jules.lambert")}}
    r = api.call("alice.martin", "POST", f"{MAIRIE}/groups", taken)
    assert (r.status_code, r.get_json()["error"]["code"]) == (409, "LOGIN_TAKEN")
    r = api.call("alice.martin", "GET", f"{MAIRIE}/groups/RSA")
    assert (r.status_code, r.get_json()["error"]["code"]) == (404, "UNKNOWN_GROUP")
    assert api.revision() == before

    # The same call, valid: both exist, in one revision.
    out = api.write("alice.martin", "POST", f"{MAIRIE}/groups", body, 201)
    assert out["group"]["manager"] == "yves.blanc"
    assert sorted(e.action for e in api.audit.events[events:]) == [
        "group.create_top",
        "user.create",
    ]
    detail = api.read("alice.martin", f"{MAIRIE}/users/yves.blanc")["user"]
    assert detail["manages"] == ["RSA"] and detail["services"] == []
    assert api.reason("yves.blanc", "cdap") == "NO_MEMBERSHIP"  # R-USR-2: managing is no right
    assert api.may("yves.blanc", "group.roles.edit", "group:mairie-montreuil/RSA") == ("ALLOWED")


def test_fiche_08_list_groups(api: Api) -> None:
    """Fiche 8: "Mes groupes" lists the groups; "Détail du groupe" shows one (R-GRP-5)."""
    groups = api.read("alice.martin", f"{MAIRIE}/groups")
    assert groups["organisation"] == "mairie-montreuil"
    summary = {(g["code"], g["parent"], g["manager"], g["open"]) for g in groups["groups"]}
    assert summary == {
        ("CCAS", None, "bruno.petit", True),
        ("CCAS-ACCUEIL", "CCAS", "bruno.petit", True),
        ("CCAS-INSTRUCTION", "CCAS", "bruno.petit", True),
        ("CCAS-ARCHIVES", "CCAS", "bruno.petit", False),
    }
    assert api.read("bruno.petit", f"{MAIRIE}/groups") == groups  # a manager reads them too

    detail = api.read("bruno.petit", f"{MAIRIE}/groups/CCAS")["group"]
    assert detail["label"] == "Service social"
    assert detail["convention"] == CONVENTION
    assert detail["parent"] is None
    assert detail["manager"]["login"] == "bruno.petit"
    assert detail["subgroups"] == ["CCAS-ACCUEIL", "CCAS-ARCHIVES", "CCAS-INSTRUCTION"]
    assert detail["members"] == ["bruno.petit"]
    assert detail["open"] is True
    sub = api.read("alice.martin", f"{MAIRIE}/groups/CCAS-INSTRUCTION")["group"]
    assert sub["parent"] == "CCAS" and sub["members"] == ["bruno.petit", "david.leroy"]

    # The system groups of a landlord are listed as such (R-GRP-3).
    landlord = api.read("gilles.bernard", "/v1/organisations/habitat-93/groups")["groups"]
    assert {(g["code"], g["system"]) for g in landlord} == {
        ("EB-PARC-CONVENTIONNE", True),
        ("EB-PARC-PRIVE", True),
    }


def test_fiche_09_group_roles(api: Api) -> None:
    """Fiche 9: "Habilitations du groupe": the assigned roles, and those it may be given
    (R-GRP-4: subscribed services; for a sub-group, its direct parent's roles)."""
    ccas = api.read("alice.martin", f"{MAIRIE}/groups/CCAS/roles")
    assert ccas["group"] == "CCAS"
    assert [(r["service"], r["role"], r["closes_on"]) for r in ccas["roles"]] == [
        ("adonis", "acces", None),  # still assigned, though Adonis's subscription ended
        ("cdap", "T1", None),
        ("cdap", "T18", None),
    ]
    assignable = {(r["service"], r["role"]) for r in ccas["assignable"]}
    assert assignable == {("cdap", f"T{n}") for n in range(1, 22)} - {
        ("cdap", "T1"),
        ("cdap", "T18"),
    }

    accueil = api.read("bruno.petit", f"{MAIRIE}/groups/CCAS-ACCUEIL/roles")
    assert [(r["service"], r["role"]) for r in accueil["roles"]] == [("cdap", "T1")]
    assert accueil["assignable"] == [{"service": "cdap", "role": "T18"}]
    # The group detail shows the same roles.
    detail = api.read("bruno.petit", f"{MAIRIE}/groups/CCAS-ACCUEIL")["group"]
    assert [(r["service"], r["role"]) for r in detail["roles"]] == [("cdap", "T1")]
    # Adonis's subscription has ended (R-CON-2): its role grants nothing.
    assert api.reason("bruno.petit", "adonis", "acces") == "NO_SUBSCRIPTION"


def test_fiche_10_edit_group(api: Api, today: dt.date) -> None:
    """Fiche 10: the pencil icon → "Modifier un groupe utilisateurs" → save. A manager may
    edit the groups strictly below theirs (R-ADM-5, decision)."""
    rights = api.services("chloe.roux")
    out = api.write(
        "alice.martin", "PATCH", f"{MAIRIE}/groups/CCAS-ACCUEIL", {"label": "Accueil du public"}
    )
    assert out["group"]["label"] == "Accueil du public"
    assert out["closed"] == []
    assert api.read("alice.martin", f"{MAIRIE}/groups/CCAS-ACCUEIL")["group"]["label"] == (
        "Accueil du public"
    )
    assert api.services("chloe.roux") == rights
    assert [e.action for e in api.audit.events] == ["group.edit"]

    api.write("bruno.petit", "PATCH", f"{MAIRIE}/groups/CCAS-ACCUEIL", {"label": "Accueil"})
    assert api.read("bruno.petit", f"{MAIRIE}/groups/CCAS-ACCUEIL")["group"]["label"] == "Accueil"

    # A closing date ahead: the group and its rights end that day.
    out = api.write(
        "alice.martin", "PATCH", f"{MAIRIE}/groups/CCAS-ACCUEIL", {"closes_on": day(today, 10)}
    )
    assert out["group"]["closes_on"] == day(today, 10)
    assert out["closed"] == ["CCAS-ACCUEIL"]
    assert api.services("chloe.roux") == rights
    assert api.reason("chloe.roux", "cdap", "T1", at=day(today, 9)) == "ALLOWED"
    assert not api.allowed("chloe.roux", "cdap", "T1", at=day(today, 10))


def test_fiche_11_close_group(api: Api, today: dt.date) -> None:
    """Fiche 11: the delete icon → "Oui": the closing date is set to today; the members are
    not closed, only detached, and lose the group's rights at once (R-GRP-2)."""
    assert api.allowed("chloe.roux", "cdap", "T1")
    out = api.write("alice.martin", "POST", f"{MAIRIE}/groups/CCAS-ACCUEIL/close")
    assert out["group"]["closes_on"] == day(today)
    assert out["closed"] == ["CCAS-ACCUEIL"]
    (event,) = api.audit.events
    assert event.action == "group.close"
    assert event.after is not None
    assert event.after["members_detached"] == ["chloe.roux", "fabien.morel"]

    assert not api.allowed("chloe.roux", "cdap", "T1")
    assert api.services("chloe.roux") == {}
    chloe = api.read("alice.martin", f"{MAIRIE}/users/chloe.roux")["user"]
    assert chloe["closes_on"] is None
    assert [(m["group"], m["closes_on"], m["open"]) for m in chloe["memberships"]] == [
        ("CCAS-ACCUEIL", day(today), False)
    ]
    listed = {g["code"]: g for g in api.read("alice.martin", f"{MAIRIE}/groups")["groups"]}
    assert listed["CCAS-ACCUEIL"]["open"] is False
    assert listed["CCAS"]["open"] is True
    assert api.allowed("bruno.petit", "cdap", "T1")  # the other groups are untouched
    # The history stays (R-TIME-2).
    assert api.allowed("chloe.roux", "cdap", "T1", at=day(today, -1))


def test_fiche_12_assign_role(api: Api, today: dt.date) -> None:
    """Fiche 12: "Habilitations du groupe" → choose the service and role → "Assigner rôle"
    → save. The members get the role at once (R-GRP-4 for what may be assigned)."""
    assert api.reason("chloe.roux", "cdap", "T5") == "ROLE_NOT_GRANTED"
    out = api.write(
        "alice.martin",
        "POST",
        f"{MAIRIE}/groups/CCAS/roles",
        {"service": "cdap", "role": "T5"},
        201,
    )
    assert out["groups"] == ["CCAS"]
    assert api.allowed("bruno.petit", "cdap", "T5")  # a member of CCAS
    # Now the sub-group may hold it too; its manager assigns it.
    accueil = api.read("bruno.petit", f"{MAIRIE}/groups/CCAS-ACCUEIL/roles")
    assert {"service": "cdap", "role": "T5"} in accueil["assignable"]
    api.write(
        "bruno.petit",
        "POST",
        f"{MAIRIE}/groups/CCAS-ACCUEIL/roles",
        {"service": "cdap", "role": "T5"},
        201,
    )
    roles = api.read("bruno.petit", f"{MAIRIE}/groups/CCAS-ACCUEIL/roles")["roles"]
    assert [(r["service"], r["role"], r["opens_on"]) for r in roles] == [
        ("cdap", "T1", roles[0]["opens_on"]),
        ("cdap", "T5", day(today)),
    ]
    checked = api.check("chloe.roux", "cdap", "T5", caf="931")
    assert checked["allowed"] is True
    assert checked["grants"] == [
        {"group": "CCAS-ACCUEIL", "service": "cdap", "role": "T5", "source": "group"}
    ]
    assert api.services("chloe.roux")["cdap"]["roles"] == ["T1", "T5"]
    assert [e.action for e in api.audit.events] == ["group.roles.edit", "group.roles.edit"]


def test_fiche_13_remove_role(api: Api, today: dt.date) -> None:
    """Fiche 13: "Habilitations du groupe" → select the role → "Retirer rôle": it goes back to
    the assignable ones → save. The members lose it at once."""
    out = api.write("bruno.petit", "DELETE", f"{MAIRIE}/groups/CCAS-INSTRUCTION/roles/cdap/T18")
    assert out["groups"] == ["CCAS-INSTRUCTION"]
    roles = api.read("bruno.petit", f"{MAIRIE}/groups/CCAS-INSTRUCTION/roles")
    assert [(r["service"], r["role"]) for r in roles["roles"]] == [("cdap", "T1")]
    assert {"service": "cdap", "role": "T18"} in roles["assignable"]

    # david is closed; a fresh member of CCAS-INSTRUCTION only: T1 stays, T18 is gone.
    api.write("alice.martin", "POST", f"{MAIRIE}/users", new_user("zoe.durand"), 201)
    api.write(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users/zoe.durand/memberships",
        {"group": "CCAS-INSTRUCTION"},
        201,
    )
    assert api.reason("zoe.durand", "cdap", "T18") == "ROLE_NOT_GRANTED"
    assert api.services("zoe.durand")["cdap"]["roles"] == ["T1"]
    # bruno keeps T18 through CCAS, his other group.
    assert api.check("bruno.petit", "cdap", "T18")["grants"] == [
        {"group": "CCAS", "service": "cdap", "role": "T18", "source": "group"}
    ]
    # The role's history is kept: it ended today.
    assert api.allowed("bruno.petit", "cdap", "T18", at=day(today, -1))
