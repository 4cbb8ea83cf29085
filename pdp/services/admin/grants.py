"""A group's roles: assign, remove, or set them in one write (fiches 12, 13, R-GRP-4)."""

from __future__ import annotations

from pdp.adapters.sql.models import (
    Group,
    GroupRole,
    Organisation,
)
from pdp.core.errors import BadRequest, Conflict, NotFound
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.engine.snapshot import GROUP
from pdp.services.admin import store
from pdp.services.admin.group_tree import descendants, held_today, not_system, roles_of, subscribed
from pdp.services.admin.requests import RoleRef
from pdp.services.admin.responses import RoleName, RolesWritten, RoleWritten
from pdp.services.admin.service import AdminService, Tx

# -- fiches 12, 13: roles ------------------------------------------------------------------------


def _known_role(svc: AdminService, service_name: str, role: str) -> None:
    """Raise unless (service, role) is in the catalogue (UNKNOWN_SERVICE, UNKNOWN_ROLE)."""
    service = svc.catalogue.service(service_name)
    if role not in service.roles:
        raise BadRequest(
            f"Rôle inconnu pour le service {service_name} : {role!r}.", code="UNKNOWN_ROLE"
        )


def _assign(tx: Tx, org: Organisation, grp: Group, service: str, role: str) -> None:
    """Fiche 12 in the open write ``tx`` (R-GRP-4, R-ADM-6); ``grp`` is not a system group."""
    s = tx.session
    pair = (service, role)
    if not store.is_open(grp, tx.today):
        raise Conflict(f"Le groupe {grp.code} n'est pas ouvert.", code="GROUP_CLOSED")
    if pair in {(r.service, r.role) for r in roles_of(s, grp, tx.today)}:
        raise Conflict(f"Le groupe porte déjà {service}:{role}.", "ROLE_ALREADY_ASSIGNED")
    if service not in subscribed(s, grp.convention_id, tx.today):
        raise Conflict(
            f"Le service {service} n'est pas souscrit sous la convention du groupe (R-GRP-4).",
            code="SERVICE_NOT_SUBSCRIBED",
        )
    if grp.parent_id is not None:
        parent = s.get(Group, grp.parent_id)
        if parent is None or pair not in held_today(s, parent, tx.today):
            raise Conflict(
                f"Un sous-groupe ne peut porter que les rôles de son parent direct : "
                f"{service}:{role} n'est pas porté par "
                f"{parent.code if parent else '?'} (R-GRP-4).",
                code="SUBGROUP_ROLE_NOT_IN_PARENT",
            )
    s.add(GroupRole(group_id=grp.id, service=service, role=role, opens_on=tx.today))
    after = {"service": service, "role": role, "opens_on": tx.today.isoformat()}
    tx.record(
        f"group:{org.code}/{grp.code}",
        org.code,
        None,
        after,
        org.id,
        Action.GROUP_ROLES_EDIT,
        scope=(GROUP, grp.id),
    )


def _remove(tx: Tx, org: Organisation, grp: Group, service: str, role: str) -> list[str]:
    """Fiche 13 in the open write ``tx``: end the role today on ``grp`` and every descendant
    (R-GRP-4); return the groups changed."""
    s = tx.session
    if not [r for r in roles_of(s, grp, tx.today) if (r.service, r.role) == (service, role)]:
        raise NotFound(f"Le groupe {grp.code} ne porte pas {service}:{role}.", "ROLE_NOT_ASSIGNED")
    changed = []
    for g in [grp, *descendants(s, grp)]:
        rows = [r for r in roles_of(s, g, tx.today) if (r.service, r.role) == (service, role)]
        for r in rows:
            before = store.role_out(r).model_dump(mode="json")
            r.closes_on = tx.today
            tx.record(
                f"group:{org.code}/{g.code}",
                org.code,
                before,
                store.role_out(r).model_dump(mode="json"),
                org.id,
                Action.GROUP_ROLES_EDIT,
                scope=(GROUP, g.id),
            )
        if rows:
            changed.append(g.code)
    return changed


def assign_role(
    svc: AdminService, actor: str, org_code: str, code: str, data: RoleRef
) -> RoleWritten:
    """Fiche 12: give the group a role (R-GRP-4, R-ADM-6)."""
    _known_role(svc, data.service, data.role)
    with svc.write(actor, Action.GROUP_ROLES_EDIT, Target("group", org_code, code)) as tx:
        org = store.organisation(tx.session, org_code)
        grp = store.group(tx.session, org, code)
        not_system(grp)
        _assign(tx, org, grp, data.service, data.role)
    return RoleWritten(groups=[code], revision=tx.revision)


def remove_role(
    svc: AdminService, actor: str, org_code: str, code: str, service: str, role: str
) -> RoleWritten:
    """Fiche 13: remove a role today from the group and from every descendant, in the same
    transaction (R-GRP-4)."""
    with svc.write(actor, Action.GROUP_ROLES_EDIT, Target("group", org_code, code)) as tx:
        org = store.organisation(tx.session, org_code)
        grp = store.group(tx.session, org, code)
        not_system(grp)
        changed = _remove(tx, org, grp, service, role)
    return RoleWritten(groups=changed, revision=tx.revision)


def set_group_roles(
    svc: AdminService,
    actor: str,
    org_code: str,
    code: str,
    assign: list[tuple[str, str]],
    remove: list[tuple[str, str]],
) -> RolesWritten:
    """Fiches 12 and 13 from one screen ("Habilitations du groupe" → "Enregistrer les
    modifications"): remove the ``remove`` (service, role) pairs from the group and its
    descendants, then assign the ``assign`` ones, in ONE write (one transaction, one revision).
    All or nothing: one refused pair (R-GRP-4: a service not subscribed, a role the parent does
    not hold; R-GRP-3: a system group; R-ADM-6) and none is applied, the refusal's message
    raised. The audit records are those of the separate ``remove_role``/``assign_role``."""
    assign = list(dict.fromkeys(assign))
    remove = list(dict.fromkeys(remove))
    if not assign and not remove:
        raise BadRequest("Aucune modification demandée.", code="EMPTY_EDIT")
    both = sorted(set(assign) & set(remove))
    if both:
        raise BadRequest(
            "Un rôle ne peut être à la fois assigné et retiré : "
            + ", ".join(f"{sv}:{ro}" for sv, ro in both)
            + ".",
            code="VALIDATION_ERROR",
        )
    for service, role in assign:
        _known_role(svc, service, role)
    with svc.write(actor, Action.GROUP_ROLES_EDIT, Target("group", org_code, code)) as tx:
        org = store.organisation(tx.session, org_code)
        grp = store.group(tx.session, org, code)
        not_system(grp)
        changed: set[str] = set()
        for service, role in remove:
            changed.update(_remove(tx, org, grp, service, role))
        for service, role in assign:
            _assign(tx, org, grp, service, role)
            changed.add(code)
    return RolesWritten(
        groups=sorted(changed),
        assigned=[RoleName(service=sv, role=ro) for sv, ro in assign],
        removed=[RoleName(service=sv, role=ro) for sv, ro in remove],
        revision=tx.revision,
    )
