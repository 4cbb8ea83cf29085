"""A group's manager ("responsable d'habilitations"): name or replace them (fiches 14, 16,
R-ADM-3, R-AFAS-4)."""

from __future__ import annotations

from pdp.adapters.sql.models import (
    Group,
    GroupManager,
    Organisation,
)
from pdp.core.errors import Conflict
from pdp.engine.actions import Action
from pdp.engine.decision import Query, Reason
from pdp.engine.rules import Target
from pdp.engine.snapshot import GROUP
from pdp.services.admin import store
from pdp.services.admin.group_tree import current_manager, not_system, open_manager
from pdp.services.admin.requests import ManagerSet
from pdp.services.admin.responses import ManagerWritten
from pdp.services.admin.service import AdminService, Tx
from pdp.services.admin.users import resolve_user

# -- fiches 14, 16: managers -------------------------------------------------------------------


def set_manager_in(
    tx: Tx, org: Organisation, grp: Group, data: ManagerSet
) -> tuple[str, str | None]:
    """Fiches 14 and 16 in the open write ``tx`` (R-ADM-3, R-AFAS-4 notice), recorded as
    ``group.manager.set``; return (the manager, the one replaced)."""
    s = tx.session
    code = grp.code
    not_system(grp)
    if not store.not_ended(grp, tx.today):
        raise Conflict(f"Le groupe {code} est clôturé.", code="GROUP_CLOSED")
    current = current_manager(s, grp, tx.today)
    current_login = None if current is None else current[1].login
    if data.replaces is None and current_login is not None:
        raise Conflict(
            f"« replaces » manque : il doit nommer le responsable habilitations actuel de {code} "
            f"({current_login}), pour qu'un remplacement n'en écrase pas un autre (R-ADM-3).",
            code="MANAGER_CHANGED",
            details={"current": current_login, "missing": "replaces"},
        )
    if data.replaces != current_login:
        raise Conflict(
            f"Le responsable habilitations actuel de {code} est "
            f"{current_login or 'personne'}, pas {data.replaces or 'personne'} : la demande "
            "se fonde sur un état périmé (R-ADM-3).",
            code="MANAGER_CHANGED",
            details={"current": current_login},
        )
    manager = resolve_user(tx, org, data.login, data.new_user)
    if manager.login == current_login:
        raise Conflict(f"{manager.login} est déjà responsable de {code}.", "ALREADY_MANAGER")
    open_manager(tx, manager, org, tx.today, grp.closes_on)
    if current is not None:
        current[0].closes_on = tx.today
    s.add(GroupManager(group_id=grp.id, user_id=manager.id, opens_on=tx.today))
    tx.record(
        f"group:{org.code}/{code}",
        org.code,
        {"manager": current_login},
        {"manager": manager.login},
        org.id,
        Action.GROUP_MANAGER_SET,
        related=f"user:{manager.login}",
        scope=(GROUP, grp.id),
    )
    if current_login is not None:
        # engine.check, not index.decide: it never raises (R-DEC-2), so an engine error
        # costs the notice, not the manager change.
        outcome = tx.check(Query(current_login, "afas", "habiliter", None, tx.today))
        if outcome.reason is Reason.ALLOWED:
            via = sorted({g.group for g in outcome.grants if g.group})
            tx.notice(
                "AFAS_HABILITER_KEPT",
                f"{current_login} garde le droit AFAS – Habiliter tant qu'il n'est pas "
                f"détaché de : {', '.join(via)} (R-AFAS-4).",
            )
    return manager.login, current_login


def set_manager(
    svc: AdminService, actor: str, org_code: str, code: str, data: ManagerSet
) -> ManagerWritten:
    """Fiches 14 and 16: name or replace the group's manager (R-ADM-3, R-ADM-5: a manager only
    below their own groups). If the replaced manager still holds afas:habiliter the response
    says so (R-AFAS-4)."""
    with svc.write(actor, Action.GROUP_MANAGER_SET, Target("group", org_code, code)) as tx:
        org = store.organisation(tx.session, org_code)
        grp = store.group(tx.session, org, code)
        manager, current_login = set_manager_in(tx, org, grp, data)
    return ManagerWritten(
        group=code,
        manager=manager,
        previous=current_login,
        notices=tx.notices,
        revision=tx.revision,
    )
