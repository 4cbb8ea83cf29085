"""The administrator's guide, fiche by fiche, through the HTTP administration API.

Each test follows the steps of one "fiche pratique" of the guide (fiches 1 to 16) or one of the
three unnumbered how-to sheets ("habiliter un utilisateur", "créer un sous-groupe", "consulter
un dossier"), all listed in docs/rules.md, on the demo data (``pdp.services.demo``), as the actor
the
guide names (the partner admin alice.martin, the manager bruno.petit, ...). For every write it
checks:

- the outcome, read back through the administration API;
- that decisions see the change at once (``POST /v1/check``, ``GET /v1/users/<login>/permissions``);
- that the write answers a ``revision`` equal to the one ``GET /healthz`` serves afterwards, one
  more than before (one write, one transaction), and that the write left audit events carrying it.

Rule refusals (403, 409, ...) are the business of ``test_admin_rules.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pdp.records.audit_trail import AuditReader
from pdp.web.container import services

from support.actors import Api
from support.constants import ASSO, CONVENTION, MAIRIE, SECRET, MakeApp


@pytest.fixture
def api(make_app: MakeApp) -> Api:
    """The API over a private copy of the demo (sqlite, and postgres when asked)."""
    app, log = make_app(jwt_secret=SECRET)
    audit = AuditReader(services(app).db)
    return Api(app.test_client(), audit, log)


def day(today: dt.date, n: int = 0) -> str:
    """ISO day ``n`` days from ``today``."""
    return (today + dt.timedelta(days=n)).isoformat()


def new_user(login: str, first: str = "Zoé", last: str = "Durand") -> dict[str, str]:
    """The body of fiche 1's form."""
    return {"login": login, "first_name": first, "last_name": last, "email": f"{login}@x.fr"}


def logins(users: list[dict[str, Any]]) -> list[str]:
    """The logins of a user listing."""
    return sorted(u["login"] for u in users)


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


# -- The three how-to sheets -------------------------------------------------------------------


def test_howto_habiliter_un_utilisateur(api: Api) -> None:
    """ "Habiliter un utilisateur": the admin creates a group with its manager, assigns Cdap T18
    ("habilitations du groupe"), creates a user and adds them to the group: the user may use
    Cdap T18. The manager may then change the group's roles and members at any time."""
    api.write(
        "alice.martin",
        "POST",
        f"{MAIRIE}/groups",
        {
            "code": "RSA",
            "label": "Instruction RSA",
            "convention": CONVENTION,
            "manager": {"new_user": new_user("yves.blanc", "Yves", "Blanc")},
        },
        201,
    )
    roles = api.read("alice.martin", f"{MAIRIE}/groups/RSA/roles")
    assert roles["roles"] == []
    assert {"service": "cdap", "role": "T18"} in roles["assignable"]
    api.write(
        "alice.martin",
        "POST",
        f"{MAIRIE}/groups/RSA/roles",
        {"service": "cdap", "role": "T18"},
        201,
    )
    api.write("alice.martin", "POST", f"{MAIRIE}/users", new_user("zoe.durand"), 201)
    assert not api.allowed("zoe.durand", "cdap", "T18")
    api.write(
        "alice.martin", "POST", f"{MAIRIE}/users/zoe.durand/memberships", {"group": "RSA"}, 201
    )
    checked = api.check("zoe.durand", "cdap", "T18", caf="931")
    assert checked["allowed"] is True
    assert checked["grants"] == [
        {"group": "RSA", "service": "cdap", "role": "T18", "source": "group"}
    ]
    assert api.services("zoe.durand") == {
        "cdap": {"roles": ["T18"], "cafs": ["931"], "groups": ["RSA"]}
    }
    assert api.reason("zoe.durand", "cdap", "T1") == "ROLE_NOT_GRANTED"

    # "A tout moment, en tant que responsable des habilitations, vous pouvez modifier les rôles
    # ou les effectifs de vos groupes."
    api.write(
        "yves.blanc", "POST", f"{MAIRIE}/groups/RSA/roles", {"service": "cdap", "role": "T1"}, 201
    )
    assert api.allowed("zoe.durand", "cdap", "T1")
    api.write("yves.blanc", "DELETE", f"{MAIRIE}/users/zoe.durand/memberships/RSA")
    assert api.services("zoe.durand") == {}


def test_howto_creer_un_sous_groupe(api: Api) -> None:
    """ "Créer un sous-groupe": a sub-group may only hold roles of its direct parent (R-GRP-4);
    the parent's manager manages every group and sub-group below (R-ADM-4)."""
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
    for role in ("T1", "T18"):
        api.write(
            "alice.martin",
            "POST",
            f"{MAIRIE}/groups/RSA/roles",
            {"service": "cdap", "role": role},
            201,
        )
    # The manager of RSA creates a sub-group (R-ADM-5 ✓*): it takes RSA's convention.
    out = api.write(
        "chloe.roux",
        "POST",
        f"{MAIRIE}/groups",
        {
            "code": "RSA-INSTR",
            "label": "Instruction",
            "parent": "RSA",
            "manager": {"login": "emma.garnier"},
        },
        201,
    )
    assert (out["group"]["parent"], out["group"]["manager"]) == ("RSA", "emma.garnier")
    assert api.read("chloe.roux", f"{MAIRIE}/groups/RSA-INSTR")["group"]["convention"] == CONVENTION
    assignable = api.read("chloe.roux", f"{MAIRIE}/groups/RSA-INSTR/roles")["assignable"]
    assert assignable == [{"service": "cdap", "role": "T1"}, {"service": "cdap", "role": "T18"}]
    api.write(
        "emma.garnier",
        "POST",
        f"{MAIRIE}/groups/RSA-INSTR/roles",
        {"service": "cdap", "role": "T18"},
        201,
    )
    # One level deeper: only the direct parent's roles count, not the grandparent's.
    api.write(
        "emma.garnier",
        "POST",
        f"{MAIRIE}/groups",
        {
            "code": "RSA-INSTR-2",
            "label": "Equipe 2",
            "parent": "RSA-INSTR",
            "manager": {"login": "emma.garnier"},
        },
        201,
    )
    deep = f"{MAIRIE}/groups/RSA-INSTR-2/roles"
    assert api.read("emma.garnier", deep)["assignable"] == [{"service": "cdap", "role": "T18"}]
    before = api.revision()
    r = api.call("chloe.roux", "POST", deep, {"service": "cdap", "role": "T1"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (409, "SUBGROUP_ROLE_NOT_IN_PARENT")
    assert api.revision() == before
    # The manager of RSA acts on every group below: roles and members.
    api.write("chloe.roux", "POST", deep, {"service": "cdap", "role": "T18"}, 201)
    api.write("alice.martin", "POST", f"{MAIRIE}/users", new_user("zoe.durand"), 201)
    api.write(
        "chloe.roux",
        "POST",
        f"{MAIRIE}/users/zoe.durand/memberships",
        {"group": "RSA-INSTR-2"},
        201,
    )
    assert api.services("zoe.durand") == {
        "cdap": {"roles": ["T18"], "cafs": ["931"], "groups": ["RSA-INSTR-2"]}
    }
    assert api.read("alice.martin", f"{MAIRIE}/groups/RSA")["group"]["subgroups"] == ["RSA-INSTR"]


def test_howto_consulter_un_dossier(api: Api) -> None:
    """ "Consulter un dossier (service Cdap)": a T1 user of Cdap chooses the allocataire's Caf
    among those they may consult (R-CON-3) and opens the file."""
    # A new T1 user, habilitated by the manager of CCAS-ACCUEIL (which carries cdap:T1).
    api.write("bruno.petit", "POST", f"{MAIRIE}/users", new_user("zoe.durand"), 201)
    api.write(
        "bruno.petit",
        "POST",
        f"{MAIRIE}/users/zoe.durand/memberships",
        {"group": "CCAS-ACCUEIL"},
        201,
    )
    # The welcome page: Cdap, profile T1, for the Cafs of the conventions (here only 931).
    assert api.services("zoe.durand") == {
        "cdap": {"roles": ["T1"], "cafs": ["931"], "groups": ["CCAS-ACCUEIL"]}
    }
    allowed = api.check("zoe.durand", "cdap", "T1", caf="931")
    assert allowed["allowed"] is True and allowed["reason"]["code"] == "ALLOWED"
    # A Caf the organisation has no convention with: refused, with a stable reason.
    refused = api.check("zoe.durand", "cdap", "T1", caf="751")
    assert refused["allowed"] is False
    assert refused["reason"]["code"] == "CAF_NOT_SUBSCRIBED"
    assert refused["grants"] == []
    # Both decisions are logged under the ids returned.
    logged = {e["decision_id"] for e in api.log.entries}
    assert {allowed["decision_id"], refused["decision_id"]} <= logged
    # A profile the user does not hold.
    assert api.reason("zoe.durand", "cdap", "T18", caf="931") == "ROLE_NOT_GRANTED"
    # "si vous avez accès aux dossiers de plusieurs Caf": a partner with two conventions.
    assert api.services("nadia.benali")["cdap"]["cafs"] == ["751", "931"]
    for caf in ("751", "931"):
        assert api.allowed("nadia.benali", "cdap", "T1", caf=caf)
    assert api.reason("nadia.benali", "cdap", "T1", caf="691") == "CAF_NOT_SUBSCRIBED"
