"""The administrator's guide, "Les utilisateurs" (fiches 1 to 6, listed in docs/rules.md),
fiche by fiche, through the HTTP administration API on the demo data (``pdp.services.demo``), as
the actor the guide names (the partner admin alice.martin, the manager bruno.petit, ...).

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
from support.constants import ASSO, MAIRIE

# -- Les utilisateurs (fiches 1 to 6) ---------------------------------------------------------


def test_fiche_01_create_user(api: Api, today: dt.date) -> None:
    """Fiche 1: "Mes utilisateurs" → "Créer un utilisateur" → fill in → "Valider". The user has
    no right yet (R-USR-2); a manager may create users too (R-ADM-5, own organisation)."""
    listed = api.read("alice.martin", f"{MAIRIE}/users")["users"]  # steps 1-2
    assert "zoe.durand" not in logins(listed)

    out = api.write("alice.martin", "POST", f"{MAIRIE}/users", new_user("zoe.durand"), 201)
    assert out["user"] == {
        "login": "zoe.durand",
        "organisation": "mairie-montreuil",
        "first_name": "Zoé",
        "last_name": "Durand",
        "email": "zoe.durand@x.fr",
        "opens_on": day(today),  # default: today (R-USR-1)
        "closes_on": None,
    }
    assert [e.action for e in api.audit.events] == ["user.create"]

    listed = api.read("alice.martin", f"{MAIRIE}/users")["users"]
    assert "zoe.durand" in logins(listed)
    detail = api.read("alice.martin", f"{MAIRIE}/users/zoe.durand")["user"]
    assert detail["memberships"] == [] and detail["services"] == []

    # "A ce stade, l'utilisateur n'a aucun droit": the decision point knows them at once.
    assert api.services("zoe.durand") == {}
    assert api.reason("zoe.durand", "cdap", "T1") == "NO_MEMBERSHIP"

    # A manager creates users of their organisation too.
    api.write("bruno.petit", "POST", f"{MAIRIE}/users", new_user("yann.leduc", "Yann"), 201)
    assert api.reason("yann.leduc", "cdap") == "NO_MEMBERSHIP"


def test_fiche_02_edit_user(api: Api) -> None:
    """Fiche 2: the pencil icon → "Modifier un utilisateur partenaire" → save. Details other
    than the dates do not change rights (R-USR-3)."""
    rights = api.services("chloe.roux")
    assert rights == {
        "cdap": {"roles": ["T1"], "cafs": ["931"], "groups": ["CCAS-ACCUEIL"]},
    }
    out = api.write(
        "alice.martin",
        "PATCH",
        f"{MAIRIE}/users/chloe.roux",
        {"last_name": "Roux-Meyer", "email": "chloe.roux-meyer@montreuil.fr"},
    )
    assert out["user"]["last_name"] == "Roux-Meyer"
    assert out["user"]["first_name"] == "Chloé"  # untouched

    detail = api.read("alice.martin", f"{MAIRIE}/users/chloe.roux")["user"]
    assert (detail["last_name"], detail["email"]) == ("Roux-Meyer", "chloe.roux-meyer@montreuil.fr")
    assert api.services("chloe.roux") == rights

    # Her manager may edit her too: her only membership lies in his perimeter (R-USR-5).
    api.write("bruno.petit", "PATCH", f"{MAIRIE}/users/chloe.roux", {"first_name": "Chloë"})
    assert api.read("bruno.petit", f"{MAIRIE}/users/chloe.roux")["user"]["first_name"] == "Chloë"
    assert api.services("chloe.roux") == rights
    assert [e.action for e in api.audit.events] == ["user.edit", "user.edit"]


def test_fiche_03_close_user(api: Api, today: dt.date) -> None:
    """Fiche 3: enter a closing date (not retroactive) → save. From that day on the user is
    denied everything (R-USR-4); an Afas user must lose their profiles first (R-AFAS-3)."""
    # A closing date ahead: still allowed until that day.
    out = api.write(
        "alice.martin", "PATCH", f"{MAIRIE}/users/chloe.roux", {"closes_on": day(today, 15)}
    )
    assert out["user"]["closes_on"] == day(today, 15)
    assert api.allowed("chloe.roux", "cdap", "T1")
    assert api.reason("chloe.roux", "cdap", "T1", at=day(today, 14)) == "ALLOWED"
    assert api.reason("chloe.roux", "cdap", "T1", at=day(today, 15)) == "USER_CLOSED"

    # Closing today takes effect at once (R-TIME-1).
    out = api.write("bruno.petit", "PATCH", f"{MAIRIE}/users/chloe.roux", {"closes_on": day(today)})
    assert out["user"]["closes_on"] == day(today)
    assert api.reason("chloe.roux", "cdap", "T1") == "USER_CLOSED"
    assert api.services("chloe.roux") == {}
    assert [e.action for e in api.audit.events] == ["user.close", "user.close"]
    # The account is closed, not deleted (R-TIME-2): yesterday's answer is kept.
    assert api.reason("chloe.roux", "cdap", "T1", at=day(today, -1)) == "ALLOWED"
    assert api.read("alice.martin", f"{MAIRIE}/users/chloe.roux")["user"]["closes_on"] == day(today)

    # "A noter": an Afas user keeps their profiles → refused with a clear code, nothing written.
    before = api.revision()
    r = api.call("karim.diallo", "PATCH", f"{ASSO}/users/lea.fontaine", {"closes_on": day(today)})
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "AFAS_PROFILES_REMAIN"
    assert r.get_json()["error"]["details"] == {"profiles": ["declaration"]}
    assert api.revision() == before
    assert api.allowed("lea.fontaine", "afas", "declarer")


def test_fiche_04_attach_user(api: Api, today: dt.date) -> None:
    """Fiche 4: the user and the group exist, the group holds the right → "Ajouter à un
    groupe" → choose the group → "Ajouter au groupe" (R-MEM-1)."""
    api.write("alice.martin", "POST", f"{MAIRIE}/users", new_user("zoe.durand"), 201)
    roles = api.read("bruno.petit", f"{MAIRIE}/groups/CCAS-INSTRUCTION/roles")["roles"]
    assert {(r["service"], r["role"]) for r in roles} == {("cdap", "T1"), ("cdap", "T18")}
    assert not api.allowed("zoe.durand", "cdap", "T18")

    out = api.write(
        "bruno.petit",
        "POST",
        f"{MAIRIE}/users/zoe.durand/memberships",
        {"group": "CCAS-INSTRUCTION"},
        201,
    )
    assert out["membership"] == {
        "user": "zoe.durand",
        "group": "CCAS-INSTRUCTION",
        "opens_on": day(today),
        "closes_on": None,
    }
    assert [e.action for e in api.audit.events][-1] == "group.members.edit"

    checked = api.check("zoe.durand", "cdap", "T18", caf="931")
    assert checked["allowed"] is True
    assert checked["grants"] == [
        {"group": "CCAS-INSTRUCTION", "service": "cdap", "role": "T18", "source": "group"}
    ]
    assert api.services("zoe.durand") == {
        "cdap": {"roles": ["T1", "T18"], "cafs": ["931"], "groups": ["CCAS-INSTRUCTION"]},
    }
    members = api.read("bruno.petit", f"{MAIRIE}/users?group=CCAS-INSTRUCTION")["users"]
    assert "zoe.durand" in logins(members)

    # A membership may also start later: no right before its first day.
    api.write("alice.martin", "POST", f"{MAIRIE}/users", new_user("yann.leduc", "Yann"), 201)
    api.write(
        "alice.martin",
        "POST",
        f"{MAIRIE}/users/yann.leduc/memberships",
        {"group": "CCAS-ACCUEIL", "opens_on": day(today, 3)},
        201,
    )
    assert api.reason("yann.leduc", "cdap", "T1") == "NO_MEMBERSHIP"
    assert api.reason("yann.leduc", "cdap", "T1", at=day(today, 3)) == "ALLOWED"


def test_fiche_05_list_group_users(api: Api) -> None:
    """Fiche 5: the users list, filtered by "Sélectionner un groupe", then "Détail de
    l'utilisateur" (R-USR-6)."""
    everyone = api.read("alice.martin", f"{MAIRIE}/users")
    assert everyone["organisation"] == "mairie-montreuil"
    assert logins(everyone["users"]) == [
        "alice.martin",
        "bruno.petit",
        "chloe.roux",
        "david.leroy",
        "emma.garnier",
        "fabien.morel",
    ]
    accueil = api.read("alice.martin", f"{MAIRIE}/users?group=CCAS-ACCUEIL")
    assert accueil["group"] == "CCAS-ACCUEIL"
    assert logins(accueil["users"]) == ["chloe.roux", "fabien.morel"]
    # A manager sees the same lists.
    ccas = api.read("bruno.petit", f"{MAIRIE}/users?group=CCAS")["users"]
    assert logins(ccas) == ["bruno.petit"]

    detail = api.read("bruno.petit", f"{MAIRIE}/users/bruno.petit")
    user = detail["user"]
    assert [(m["group"], m["open"]) for m in user["memberships"]] == [
        ("CCAS", True),
        ("CCAS-INSTRUCTION", True),
    ]
    assert {"CCAS", "CCAS-ACCUEIL", "CCAS-INSTRUCTION"} <= set(user["manages"])
    assert user["partner_admin"] is False
    assert user["services"] == [{"service": "cdap", "roles": ["T1", "T18"], "cafs": ["931"]}]
    assert detail["revision"] == api.revision()
    assert api.read("alice.martin", f"{MAIRIE}/users/alice.martin")["user"]["partner_admin"]

    # The detail's services are the decision point's (R-DEC-4).
    assert {s["service"]: s["roles"] for s in user["services"]} == {
        s: v["roles"] for s, v in api.services("bruno.petit").items()
    }


def test_fiche_06_detach_user(api: Api, today: dt.date) -> None:
    """Fiche 6: "Gérer l'appartenance de l'utilisateur" → enter the closing date → save
    (R-MEM-2). Nothing is deleted: the membership stays in the detail, closed."""
    path = f"{MAIRIE}/users/chloe.roux/memberships/CCAS-ACCUEIL"
    out = api.write("bruno.petit", "PATCH", path, {"closes_on": day(today, 7)})
    assert out["membership"] == {
        "user": "chloe.roux",
        "group": "CCAS-ACCUEIL",
        "opens_on": out["membership"]["opens_on"],
        "closes_on": day(today, 7),
    }
    assert api.allowed("chloe.roux", "cdap", "T1")
    assert api.reason("chloe.roux", "cdap", "T1", at=day(today, 7)) == "NO_MEMBERSHIP"

    # Detaching today (DELETE, or a closing date of today) takes effect at once.
    out = api.write("bruno.petit", "DELETE", path)
    assert out["membership"]["closes_on"] == day(today)
    assert api.reason("chloe.roux", "cdap", "T1") == "NO_MEMBERSHIP"
    assert api.services("chloe.roux") == {}
    assert api.reason("chloe.roux", "cdap", "T1", at=day(today, -1)) == "ALLOWED"

    detail = api.read("alice.martin", f"{MAIRIE}/users/chloe.roux")["user"]
    assert detail["memberships"] == [
        {
            "group": "CCAS-ACCUEIL",
            "opens_on": out["membership"]["opens_on"],
            "closes_on": day(today),
            "open": False,
            "editable": False,  # ended today: its dates no longer change (R-TIME-2)
        }
    ]
    assert detail["closes_on"] is None  # the user is not closed
    members = api.read("bruno.petit", f"{MAIRIE}/users?group=CCAS-ACCUEIL")["users"]
    assert "chloe.roux" not in logins(members)
    # Nothing left to detach.
    before = api.revision()
    r = api.call("bruno.petit", "DELETE", path)
    assert (r.status_code, r.get_json()["error"]["code"]) == (404, "NOT_A_MEMBER")
    assert api.revision() == before
