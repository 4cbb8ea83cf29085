"""The group writes the console's forms make in one go, at the service level
(``pdp.services.admin.groups``), on every backend: "Modifier un groupe utilisateurs" (label, dates
and
manager: fiches 10, 14, 16) and "Habilitations du groupe" (several roles: fiches 12, 13) are
each ONE write, all or nothing: one transaction, one revision, the audit records of the
separate calls, and on any refusal no change, no revision, no audit record. Also what the
screens offer, as the service computes it: ``editable``/``closable`` (R-GRP-2, R-GRP-3), the
users who may be named manager (R-ADM-3) and the possible parents of a sub-group (R-ADM-5,
R-ADM-7)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from pydantic import BaseModel

from pdp.core.errors import BadRequest, Conflict, Forbidden, NotFound, PdpError
from pdp.records.audit_trail import AuditReader
from pdp.services.admin import grants, groups
from pdp.services.admin.requests import GroupEdit, ManagerSet
from pdp.services.admin.service import AdminService
from pdp.web.container import services

from support.actors import Api
from support.constants import MAIRIE_CODE as ORG
from support.constants import MANAGER, SECRET
from support.constants import PARTNER_ADMIN as ADMIN


def js(answer: BaseModel) -> dict[str, Any]:
    """A verb's answer as the API serialises it (JSON types: dates as text)."""
    return answer.model_dump(mode="json")


class World:
    """The service over a private copy of the demo, with what every write check needs."""

    def __init__(self, app: Flask) -> None:
        self.svc: AdminService = services(app).admin
        self.api = Api(app.test_client())
        self.audit = AuditReader(services(app).db)

    def state(self) -> tuple[int, int]:
        """(revision served, number of audit records)."""
        return self.api.revision(), len(self.audit.events)

    def detail(self, code: str, org: str = ORG, who: str = ADMIN) -> dict[str, Any]:
        return js(groups.group_detail(self.svc, who, org, code))["group"]

    def roles(self, code: str) -> set[str]:
        return {f"{r['service']}:{r['role']}" for r in self.detail(code)["roles"]}

    def refused(self, expected: type[PdpError], code: str, call: Any, *args: Any) -> PdpError:
        """``call(*args)`` is refused with ``code``, and leaves revision and audit as they were."""
        before = self.state()
        with pytest.raises(expected) as caught:
            call(*args)
        assert caught.value.code == code, caught.value.message
        assert self.state() == before
        return caught.value

    def written(self, call: Any, *args: Any) -> tuple[dict[str, Any], list[Any]]:
        """``call(*args)`` succeeds as one write: the next revision, served at once, and the
        audit records it left (all carrying it)."""
        revision, events = self.state()
        out = js(call(*args))
        assert out["revision"] == revision + 1 == self.api.revision()
        new = self.audit.events[events:]
        assert new and {e.revision for e in new} == {revision + 1}
        return out, new


@pytest.fixture
def world(make_app: Any) -> World:
    app, _ = make_app(jwt_secret=SECRET)
    return World(app)


def edit(**fields: Any) -> GroupEdit:
    return GroupEdit.model_validate(fields)


def manager(login: str, replaces: str | None) -> ManagerSet:
    return ManagerSet.model_validate({"login": login, "replaces": replaces})


# -- "Modifier un groupe utilisateurs": label, dates and manager in one write ----------------------


def test_edit_and_manager_is_one_write(world: World, today: dt.date) -> None:
    """Fiches 10 and 16 together: the label and the new manager (``replaces`` the current one,
    R-ADM-3) in one transaction: one revision, the records of set_manager then edit_group."""
    out, events = world.written(
        groups.edit_group_and_manager,
        world.svc,
        ADMIN,
        ORG,
        "CCAS-ACCUEIL",
        edit(label="Accueil du public"),
        manager("chloe.roux", MANAGER),
    )
    assert (out["manager"], out["previous"]) == ("chloe.roux", MANAGER)
    assert [e.action for e in events] == ["group.manager.set", "group.edit"]
    assert events[0].before == {"manager": MANAGER}
    assert events[1].after is not None and events[1].after["label"] == "Accueil du public"
    detail = world.detail("CCAS-ACCUEIL")
    assert detail["label"] == "Accueil du public"
    assert detail["manager"]["login"] == "chloe.roux"
    assert detail["manager"]["opens_on"] == today.isoformat()


def test_edit_and_manager_is_all_or_nothing(world: World, today: dt.date) -> None:
    """A valid manager change with a refused date (the opening of a started group cannot move,
    fiche 10; a closing date in the past, R-GRP-2): nothing changes, neither the manager
    (R-ADM-3) nor the label; no revision, no audit record."""
    before = world.detail("CCAS-ACCUEIL")
    world.refused(
        Conflict,
        "GROUP_STARTED",
        groups.edit_group_and_manager,
        world.svc,
        ADMIN,
        ORG,
        "CCAS-ACCUEIL",
        edit(label="Accueil du public", opens_on=today + dt.timedelta(days=3)),
        manager("chloe.roux", MANAGER),
    )
    world.refused(
        BadRequest,
        "RETROACTIVE_DATE",
        groups.edit_group_and_manager,
        world.svc,
        ADMIN,
        ORG,
        "CCAS-ACCUEIL",
        edit(closes_on=today - dt.timedelta(days=1)),
        manager("chloe.roux", MANAGER),
    )
    assert world.detail("CCAS-ACCUEIL") == before
    assert before["manager"]["login"] == MANAGER


def test_a_stale_manager_refuses_the_edit_too(world: World) -> None:
    """R-ADM-3: a form naming a manager that has since changed (``replaces``) is refused, and
    its label change with it."""
    world.refused(
        Conflict,
        "MANAGER_CHANGED",
        groups.edit_group_and_manager,
        world.svc,
        ADMIN,
        ORG,
        "CCAS-ACCUEIL",
        edit(label="Accueil du public"),
        manager("chloe.roux", "emma.garnier"),
    )
    assert world.detail("CCAS-ACCUEIL")["label"] == "Accueil"


def test_edit_alone_or_manager_alone(world: World) -> None:
    """Either half alone is one write with its own action; nothing at all is refused."""
    _, events = world.written(
        groups.edit_group_and_manager,
        world.svc,
        ADMIN,
        ORG,
        "CCAS-ACCUEIL",
        edit(label="Accueil du public"),
        None,
    )
    assert [e.action for e in events] == ["group.edit"]
    _, events = world.written(
        groups.edit_group_and_manager,
        world.svc,
        ADMIN,
        ORG,
        "CCAS-ACCUEIL",
        edit(),
        manager("emma.garnier", MANAGER),
    )
    assert [e.action for e in events] == ["group.manager.set"]
    world.refused(
        BadRequest,
        "EMPTY_EDIT",
        groups.edit_group_and_manager,
        world.svc,
        ADMIN,
        ORG,
        "CCAS-ACCUEIL",
        edit(),
        None,
    )


def test_edit_and_manager_never_on_a_system_group(world: World) -> None:
    """R-GRP-3: a system group is neither edited nor given another manager."""
    world.refused(
        Conflict,
        "SYSTEM_GROUP",
        groups.edit_group_and_manager,
        world.svc,
        "gilles.bernard",
        "habitat-93",
        "EB-PARC-PRIVE",
        edit(label="Autre"),
        manager("helene.fabre", "gilles.bernard"),
    )


def test_a_manager_needs_both_rights(world: World) -> None:
    """R-ADM-5, R-ADM-7: bruno.petit may not edit CCAS, his own top group: refused by the
    engine before anything is written."""
    world.refused(
        Forbidden,
        world_reason(world, MANAGER, "group.edit", "CCAS"),
        groups.edit_group_and_manager,
        world.svc,
        MANAGER,
        ORG,
        "CCAS",
        edit(label="Autre"),
        manager("chloe.roux", MANAGER),
    )


def world_reason(world: World, who: str, action: str, code: str) -> str:
    """The engine's refusal reason for ``who`` doing ``action`` on the group (R-ADM-7)."""
    answer = world.svc.check(who, action, f"group:{ORG}/{code}")
    assert not answer.allowed
    return str(answer.reason.code.value)


# -- "Habilitations du groupe": several roles in one write -------------------------------------


def test_set_group_roles_is_one_write(world: World) -> None:
    """Fiches 12 and 13 together on CCAS-ACCUEIL: remove cdap:T1 and assign cdap:T18 (its
    parent CCAS holds it, R-GRP-4): one revision, one audit record per change."""
    out, events = world.written(
        grants.set_group_roles,
        world.svc,
        ADMIN,
        ORG,
        "CCAS-ACCUEIL",
        [("cdap", "T18")],
        [("cdap", "T1")],
    )
    assert out["groups"] == ["CCAS-ACCUEIL"]
    assert {e.action for e in events} == {"group.roles.edit"}
    assert len(events) == 2
    assert world.roles("CCAS-ACCUEIL") == {"cdap:T18"}


def test_removing_from_a_parent_removes_from_its_sub_groups(world: World) -> None:
    """R-GRP-4: removing cdap:T18 from CCAS removes it from CCAS-INSTRUCTION in the same
    write."""
    out, _ = world.written(
        grants.set_group_roles, world.svc, ADMIN, ORG, "CCAS", [], [("cdap", "T18")]
    )
    assert "CCAS-INSTRUCTION" in out["groups"]
    assert "cdap:T18" not in world.roles("CCAS-INSTRUCTION")


def test_set_group_roles_is_all_or_nothing(world: World) -> None:
    """R-GRP-4: among several roles, one its parent does not hold (cdap:T21) refuses them all:
    neither cdap:T18 (allowed alone) nor the removal of cdap:T1 is applied; no revision, no
    audit record, the rule's French message."""
    before = world.roles("CCAS-ACCUEIL")
    err = world.refused(
        Conflict,
        "SUBGROUP_ROLE_NOT_IN_PARENT",
        grants.set_group_roles,
        world.svc,
        ADMIN,
        ORG,
        "CCAS-ACCUEIL",
        [("cdap", "T18"), ("cdap", "T21")],
        [("cdap", "T1")],
    )
    assert "(R-GRP-4)" in err.message
    assert world.roles("CCAS-ACCUEIL") == before == {"cdap:T1"}
    world.refused(
        NotFound,
        "ROLE_NOT_ASSIGNED",
        grants.set_group_roles,
        world.svc,
        ADMIN,
        ORG,
        "CCAS-ACCUEIL",
        [("cdap", "T18")],
        [("cdap", "T1"), ("cdap", "T2")],
    )
    assert world.roles("CCAS-ACCUEIL") == before


def test_set_group_roles_refusals_before_writing(world: World) -> None:
    """Nothing asked, one role both assigned and removed, a role out of the catalogue, a
    system group (R-GRP-3): refused, nothing written."""
    call = grants.set_group_roles
    world.refused(BadRequest, "EMPTY_EDIT", call, world.svc, ADMIN, ORG, "CCAS", [], [])
    world.refused(
        BadRequest,
        "VALIDATION_ERROR",
        call,
        world.svc,
        ADMIN,
        ORG,
        "CCAS",
        [("cdap", "T1")],
        [("cdap", "T1")],
    )
    world.refused(
        BadRequest, "UNKNOWN_ROLE", call, world.svc, ADMIN, ORG, "CCAS", [("cdap", "T99")], []
    )
    world.refused(
        Conflict,
        "SYSTEM_GROUP",
        call,
        world.svc,
        "gilles.bernard",
        "habitat-93",
        "EB-PARC-PRIVE",
        [],
        [("espace_bailleur", "parc_prive")],
    )


# -- what the screens offer ------------------------------------------------------------------


def test_flags_of_system_closed_and_live_groups(world: World) -> None:
    """R-GRP-3: a system group is neither editable nor closable; R-GRP-2: a closed group
    (CCAS-ARCHIVES, or one just closed) neither; a live one both. The JSON API answers them
    too."""
    listing = js(groups.list_groups(world.svc, "gilles.bernard", "habitat-93"))["groups"]
    assert {(g["code"], g["editable"], g["closable"]) for g in listing} == {
        ("EB-PARC-CONVENTIONNE", False, False),
        ("EB-PARC-PRIVE", False, False),
    }
    flags = {
        g["code"]: (g["editable"], g["closable"])
        for g in js(groups.list_groups(world.svc, ADMIN, ORG))["groups"]
    }
    assert flags["CCAS"] == flags["CCAS-ACCUEIL"] == (True, True)
    assert flags["CCAS-ARCHIVES"] == (False, False)
    groups.close_group(world.svc, ADMIN, ORG, "CCAS-ACCUEIL")
    detail = world.detail("CCAS-ACCUEIL")
    assert (detail["editable"], detail["closable"]) == (False, False)
    body = world.api.ok(ADMIN, "GET", f"/v1/organisations/{ORG}/groups/CCAS")
    assert (body["group"]["editable"], body["group"]["closable"]) == (True, True)
    body = world.api.ok(ADMIN, "GET", f"/v1/organisations/{ORG}/groups")
    assert {g["code"]: g["closable"] for g in body["groups"]}["CCAS-ACCUEIL"] is False


def test_eligible_managers(world: World) -> None:
    """R-ADM-3: users of the organisation open today (not david.leroy, closed; not
    fabien.morel, opening later), and for a group its current manager."""
    found = js(groups.eligible_managers(world.svc, ADMIN, ORG))["users"]
    assert [u["login"] for u in found] == [
        "alice.martin",
        "bruno.petit",
        "chloe.roux",
        "emma.garnier",
    ]
    found = js(groups.eligible_managers(world.svc, ADMIN, ORG, "CCAS"))["users"]
    assert MANAGER in {u["login"] for u in found}


def test_possible_parents(world: World) -> None:
    """R-ADM-7: the groups the engine lets the actor create a sub-group under, neither closed
    (R-GRP-2) nor system groups (R-GRP-3); none is the service's refusal when required."""
    found = js(groups.possible_parents(world.svc, ADMIN, ORG))["groups"]
    assert [g["code"] for g in found] == ["CCAS", "CCAS-ACCUEIL", "CCAS-INSTRUCTION"]
    assert js(groups.possible_parents(world.svc, "gilles.bernard", "habitat-93"))["groups"] == []
    world.refused(
        Conflict,
        "NO_PARENT_GROUP",
        lambda: groups.possible_parents(world.svc, "gilles.bernard", "habitat-93", required=True),
    )
