"""The administrator's guide's three unnumbered how-to sheets ("habiliter un utilisateur",
"créer un sous-groupe", "consulter un dossier", listed in docs/rules.md), step by step, through
the HTTP administration API on the demo data (``pdp.services.demo``), as the actor the guide
names (the partner admin alice.martin, the manager bruno.petit, ...).

For every write it checks:

- the outcome, read back through the administration API;
- that decisions see the change at once (``POST /v1/check``, ``GET /v1/users/<login>/permissions``);
- that the write answers a ``revision`` equal to the one ``GET /healthz`` serves afterwards, one
  more than before (one write, one transaction), and that the write left audit events carrying it.

Rule refusals (403, 409, ...) are the business of the ``test_admin_rules_*.py`` files.
"""

from __future__ import annotations

from support.actors import Api
from support.admin_bodies import new_user
from support.constants import CONVENTION, MAIRIE

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
