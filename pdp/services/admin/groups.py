"""Groups, their roles and managers: fiches 7 to 16 (R-GRP, R-ADM-3..6, R-AFAS-4)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.sql.models import (
    Convention,
    Group,
    GroupManager,
    GroupRole,
    Membership,
    Organisation,
    Subscription,
    User,
)
from pdp.core.errors import BadRequest, Conflict, NotFound
from pdp.engine.actions import Action
from pdp.engine.decision import Query, Reason
from pdp.engine.rules import AdminReason, Target
from pdp.services.admin import store
from pdp.services.admin.requests import GroupEdit, GroupNew, ManagerSet, RoleRef
from pdp.services.admin.service import AdminService, Tx
from pdp.services.admin.users import resolve_user


def _not_system(grp: Group) -> None:
    if grp.is_system:
        raise Conflict(
            f"Le groupe {grp.code} est généré par le système : il ne peut être ni modifié ni "
            "clôturé (R-GRP-3).",
            code="SYSTEM_GROUP",
        )


def _current(rows: list[Any], today: dt.date) -> list[Any]:
    return [r for r in rows if store.not_ended(r, today)]


def _current_manager(
    session: Session, grp: Group, today: dt.date
) -> tuple[GroupManager, User] | None:
    row = session.execute(
        select(GroupManager, User)
        .join(User, User.id == GroupManager.user_id)
        .where(
            GroupManager.group_id == grp.id,
            (GroupManager.closes_on.is_(None)) | (GroupManager.closes_on > today),
        )
        .order_by(GroupManager.opens_on.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def _closes_first(user: User, until: dt.date | None) -> bool:
    """Whether ``user`` closes before a group closing ``until`` (None: never) does (R-ADM-3)."""
    return user.closes_on is not None and (until is None or until > user.closes_on)


def _open_manager(
    tx: Tx, user: User, org: Organisation, day: dt.date, until: dt.date | None
) -> None:
    """R-ADM-3: the manager is an open user of the group's organisation, from ``day`` and for
    as long as the group (closing ``until``) is open: a user closing earlier would leave the
    group a closed manager (the mirror of USER_MANAGES_GROUPS when closing a manager)."""
    if user.organisation_id != org.id or not store.is_open(user, day) or _closes_first(user, until):
        raise Conflict(
            f"Le responsable habilitations doit être un utilisateur ouvert de {org.code} "
            "(R-ADM-3).",
            code="MANAGER_NOT_OPEN",
        )


def _roles(session: Session, grp: Group, today: dt.date) -> list[GroupRole]:
    return _current(
        list(
            session.execute(
                select(GroupRole)
                .where(GroupRole.group_id == grp.id)
                .order_by(GroupRole.service, GroupRole.role)
            ).scalars()
        ),
        today,
    )


def _held_today(session: Session, grp: Group, today: dt.date) -> set[tuple[str, str]]:
    return {(r.service, r.role) for r in _roles(session, grp, today) if store.is_open(r, today)}


def _subscribed(session: Session, convention_id: int, today: dt.date) -> set[str]:
    """Services with an open subscription under the convention, itself open (R-CON-2)."""
    conv = session.get(Convention, convention_id)
    if conv is None or not store.is_open(conv, today):
        return set()
    subs = session.execute(
        select(Subscription).where(Subscription.convention_id == convention_id)
    ).scalars()
    return {s.service for s in subs if store.is_open(s, today)}


def _descendants(session: Session, grp: Group) -> list[Group]:
    """Every group below ``grp`` in its organisation (a corrupt cycle cannot loop)."""
    groups = list(
        session.execute(select(Group).where(Group.organisation_id == grp.organisation_id)).scalars()
    )
    children: dict[int, list[Group]] = {}
    for g in groups:
        if g.parent_id is not None:
            children.setdefault(g.parent_id, []).append(g)
    found: dict[int, Group] = {}
    todo = list(children.get(grp.id, ()))
    while todo:
        g = todo.pop()
        if g.id not in found and g.id != grp.id:
            found[g.id] = g
            todo.extend(children.get(g.id, ()))
    return sorted(found.values(), key=lambda g: g.code)


# -- fiche 7: create ---------------------------------------------------------------------------


def create_group(svc: AdminService, actor: str, org_code: str, data: GroupNew) -> dict[str, Any]:
    """Fiche 7 and "créer un sous-groupe": a top-level group (partner admins) or a sub-group
    (admins, or a manager whose perimeter holds the parent), with its manager (R-ADM-3)."""
    if data.parent is None:
        action, target = Action.GROUP_CREATE_TOP, Target("organisation", org_code)
    else:
        action, target = Action.GROUP_CREATE_SUB, Target("group", org_code, data.parent)
    with svc.write(actor, action, target) as tx:
        s = tx.session
        org = store.organisation(s, org_code)
        opens_on = data.opens_on or tx.today
        if opens_on < tx.today:
            raise BadRequest("Un groupe ne peut pas ouvrir dans le passé.", "RETROACTIVE_DATE")
        closes_on = data.closes_on
        store.check_window(opens_on, closes_on)
        if s.execute(
            select(Group.id).where(Group.organisation_id == org.id, Group.code == data.code)
        ).first():
            raise Conflict(
                f"Le code {data.code!r} est déjà utilisé dans {org.code} (R-GRP-1).",
                code="GROUP_CODE_TAKEN",
            )
        parent: Group | None = None
        if data.parent is not None:
            parent = store.group(s, org, data.parent)
            _not_system(parent)
            if not store.is_open(parent, opens_on):
                raise Conflict("Le groupe parent n'est pas ouvert à cette date.", "GROUP_NOT_OPEN")
            if parent.closes_on is not None and (closes_on is None or closes_on > parent.closes_on):
                closes_on = parent.closes_on  # R-GRP-2: a sub-group closes with its parent
            convention_id = parent.convention_id
            if data.convention is not None:
                conv = s.get(Convention, convention_id)
                if conv is None or conv.reference != data.convention:
                    raise BadRequest(
                        "Un sous-groupe relève de la convention de son parent (R-GRP-1).",
                        code="SUBGROUP_CONVENTION",
                    )
        else:
            if data.convention is None:
                raise BadRequest(
                    "La convention du groupe est obligatoire (R-GRP-1).", code="MISSING_FIELD"
                )
            conv = s.execute(
                select(Convention).where(
                    Convention.organisation_id == org.id, Convention.reference == data.convention
                )
            ).scalar_one_or_none()
            if conv is None:
                raise NotFound(f"Convention inconnue : {data.convention!r}.", "UNKNOWN_CONVENTION")
            if not store.is_open(conv, opens_on):
                raise Conflict("La convention n'est pas ouverte à cette date.", "CONVENTION_CLOSED")
            convention_id = conv.id
        manager = resolve_user(tx, org, data.manager.login, data.manager.new_user)
        _open_manager(tx, manager, org, opens_on, closes_on)
        grp = Group(
            organisation_id=org.id,
            convention_id=convention_id,
            parent_id=None if parent is None else parent.id,
            code=data.code,
            label=data.label,
            is_system=False,
            opens_on=opens_on,
            closes_on=closes_on,
        )
        s.add(grp)
        s.flush()
        s.add(GroupManager(group_id=grp.id, user_id=manager.id, opens_on=opens_on))
        s.flush()
        out = store.group_json(grp, org.code, data.parent)
        out["manager"] = manager.login
        tx.record(
            f"group:{org.code}/{grp.code}",
            org.code,
            None,
            out,
            org.id,
            related=f"user:{manager.login}",
        )
    return {"group": out, "revision": tx.revision}


# -- what the screens may offer (R-GRP-2, R-GRP-3, R-ADM-3, R-ADM-7) ---------------------------


def _flags(grp: Group, today: dt.date) -> dict[str, bool]:
    """What the group's state still allows, whoever acts (who may act is the engine's admin
    check, R-ADM-7): a system group is neither edited nor closed, nor are its roles (R-GRP-3);
    a group whose closing day is reached has nothing left to edit or close (R-GRP-2)."""
    live = not grp.is_system and store.not_ended(grp, today)
    return {"editable": live, "closable": live}


def eligible_managers(
    svc: AdminService, actor: str, org_code: str, code: str | None = None
) -> dict[str, Any]:
    """The users who may be named the manager (R-ADM-3): the organisation's users open today
    and, for an existing group ``code``, not closing before it; its current manager stays in the
    list (keeping them is no change). The write checks R-ADM-3 again on saving."""
    today = svc.today()
    with svc.read(actor, Action.DIRECTORY_READ, Target("organisation", org_code)) as s:
        org = store.organisation(s, org_code)
        grp = None if code is None else store.group(s, org, code)
        current = None if grp is None else _current_manager(s, grp, today)
        keep = None if current is None else current[1].id
        users = s.execute(
            select(User).where(User.organisation_id == org.id).order_by(User.login)
        ).scalars()
        out = [
            store.user_json(u, org.code)
            for u in users
            if u.id == keep
            or (store.is_open(u, today) and (grp is None or not _closes_first(u, grp.closes_on)))
        ]
    return {"organisation": org_code, "group": code, "users": out}


def possible_parents(
    svc: AdminService, actor: str, org_code: str, *, required: bool = False
) -> dict[str, Any]:
    """The groups under which ``actor`` may create a sub-group today, as ``list_groups`` items:
    neither a system group (R-GRP-3) nor a closed one (R-GRP-2), and the engine's admin check
    allows ``group.create_sub`` on it (R-ADM-4, R-ADM-5, R-ADM-7). With ``required``, finding
    none raises the engine's refusal for the first candidate (Forbidden with its reason), or
    409 NO_PARENT_GROUP when the organisation has no open group at all."""
    candidates = [g for g in list_groups(svc, actor, org_code)["groups"] if g["editable"]]
    found = [
        g
        for g in candidates
        if svc.decide(actor, Action.GROUP_CREATE_SUB, Target("group", org_code, g["code"]))[0]
        is AdminReason.ALLOWED
    ]
    if required and not found:
        for g in candidates[:1]:
            svc.require(actor, Action.GROUP_CREATE_SUB, Target("group", org_code, g["code"]))
        raise Conflict(
            f"Aucun groupe ouvert de {org_code} ne peut recevoir de sous-groupe (R-GRP-2, "
            "R-GRP-3).",
            code="NO_PARENT_GROUP",
        )
    return {"organisation": org_code, "groups": found}


# -- fiches 8, 9, 15: read ---------------------------------------------------------------------


def list_groups(svc: AdminService, actor: str, org_code: str) -> dict[str, Any]:
    """Fiche 8: the organisation's groups with parent and manager (R-GRP-5), and whether
    their state lets them be edited or closed (``editable``, ``closable``: R-GRP-2, R-GRP-3)."""
    today = svc.today()
    with svc.read(actor, Action.DIRECTORY_READ, Target("organisation", org_code)) as s:
        org = store.organisation(s, org_code)
        groups = list(
            s.execute(
                select(Group).where(Group.organisation_id == org.id).order_by(Group.code)
            ).scalars()
        )
        code_of = {g.id: g.code for g in groups}
        out = []
        for g in groups:
            item = store.group_json(g, org.code, code_of.get(g.parent_id or -1))
            found = _current_manager(s, g, today)
            item["manager"] = None if found is None else found[1].login
            item["open"] = store.is_open(g, today)
            item.update(_flags(g, today))
            out.append(item)
    return {"organisation": org_code, "groups": out}


def group_detail(svc: AdminService, actor: str, org_code: str, code: str) -> dict[str, Any]:
    """Fiches 8 and 15: a group, its manager, parent, sub-groups, roles and members, and
    whether its state lets it be edited or closed (R-GRP-2, R-GRP-3)."""
    today = svc.today()
    with svc.read(actor, Action.DIRECTORY_READ, Target("organisation", org_code)) as s:
        org = store.organisation(s, org_code)
        grp = store.group(s, org, code)
        parent = s.get(Group, grp.parent_id) if grp.parent_id is not None else None
        out = store.group_json(grp, org.code, None if parent is None else parent.code)
        conv = s.get(Convention, grp.convention_id)
        out["convention"] = None if conv is None else conv.reference
        found = _current_manager(s, grp, today)
        out["manager"] = (
            None
            if found is None
            else {
                "login": found[1].login,
                "first_name": found[1].first_name,
                "last_name": found[1].last_name,
                **store.dates(found[0]),
            }
        )
        out["subgroups"] = sorted(
            g.code for g in s.execute(select(Group).where(Group.parent_id == grp.id)).scalars()
        )
        out["roles"] = [
            {"service": r.service, "role": r.role, **store.dates(r)} for r in _roles(s, grp, today)
        ]
        out["members"] = sorted(
            u.login
            for m, u in s.execute(
                select(Membership, User)
                .join(User, User.id == Membership.user_id)
                .where(Membership.group_id == grp.id)
            )
            if store.is_open(m, today)
        )
        out["open"] = store.is_open(grp, today)
        out.update(_flags(grp, today))
    return {"group": out}


def group_roles(svc: AdminService, actor: str, org_code: str, code: str) -> dict[str, Any]:
    """Fiche 9: the group's roles, and those it may be given (R-GRP-4)."""
    today = svc.today()
    with svc.read(actor, Action.DIRECTORY_READ, Target("organisation", org_code)) as s:
        org = store.organisation(s, org_code)
        grp = store.group(s, org, code)
        roles = _roles(s, grp, today)
        held = {(r.service, r.role) for r in roles}
        assignable = sorted(_allowed_roles(s, svc, grp, today) - held)
    return {
        "group": code,
        "roles": [{"service": r.service, "role": r.role, **store.dates(r)} for r in roles],
        "assignable": [{"service": sv, "role": ro} for sv, ro in assignable],
    }


def _allowed_roles(
    s: Session, svc: AdminService, grp: Group, today: dt.date
) -> set[tuple[str, str]]:
    """What R-GRP-4 lets the group hold today: roles of services subscribed under its
    convention, and for a sub-group only those its direct parent holds."""
    services = _subscribed(s, grp.convention_id, today)
    allowed = {
        (name, role)
        for name in services
        if name in svc.catalogue.services
        for role in svc.catalogue.services[name].roles
    }
    if grp.parent_id is not None:
        parent = s.get(Group, grp.parent_id)
        allowed &= _held_today(s, parent, today) if parent is not None else set()
    return allowed


# -- fiches 10, 11: edit and close ---------------------------------------------------------------


def _edit_action(fields: set[str]) -> Action:
    """The admin action of an edit: a closing date closes the group (R-GRP-2)."""
    return Action.GROUP_CLOSE if "closes_on" in fields else Action.GROUP_EDIT


def _edit(tx: Tx, org: Organisation, grp: Group, data: GroupEdit, action: Action) -> list[str]:
    """Fiche 10 in the open write ``tx``: the label and dates in ``data``'s set fields, recorded
    as ``action``; return the groups a closing date closed (R-GRP-2). Never a system group
    (R-GRP-3)."""
    fields = data.model_fields_set
    _not_system(grp)
    before = store.group_json(grp, org.code, None)
    if "label" in fields:
        if data.label is None:
            raise BadRequest("« label » ne peut pas être vide.", code="VALIDATION_ERROR")
        grp.label = data.label
    if "opens_on" in fields:
        if data.opens_on is None or grp.opens_on <= tx.today or data.opens_on < tx.today:
            raise Conflict(
                "Seule l'ouverture d'un groupe à venir peut changer, et pas vers le passé.",
                code="GROUP_STARTED",
            )
        grp.opens_on = data.opens_on
    changed: list[str] = []
    if "closes_on" in fields:
        if data.closes_on is None:
            raise BadRequest("Un groupe clôturé ne se rouvre pas.", code="VALIDATION_ERROR")
        changed = _close_group(tx, org, grp, data.closes_on)
    if "opens_on" in fields:
        store.check_window(grp.opens_on, grp.closes_on)
    tx.record(
        f"group:{org.code}/{grp.code}",
        org.code,
        before,
        store.group_json(grp, org.code, None),
        org.id,
        action,
    )
    return changed


def edit_group(
    svc: AdminService, actor: str, org_code: str, code: str, data: GroupEdit
) -> dict[str, Any]:
    """Fiche 10: label and dates; a closing date closes the group (R-GRP-2); never a system
    group (R-GRP-3)."""
    fields = data.model_fields_set
    if not fields:
        raise BadRequest("Aucune modification demandée.", code="EMPTY_EDIT")
    action = _edit_action(fields)
    with svc.write(actor, action, Target("group", org_code, code)) as tx:
        org = store.organisation(tx.session, org_code)
        grp = store.group(tx.session, org, code)
        changed = _edit(tx, org, grp, data, action)
        out = store.group_json(grp, org.code, None)
    return {"group": out, "closed": changed, "revision": tx.revision}


def edit_group_and_manager(
    svc: AdminService,
    actor: str,
    org_code: str,
    code: str,
    data: GroupEdit,
    manager: ManagerSet | None,
) -> dict[str, Any]:
    """Fiches 10, 14 and 16 from one form ("Modifier un groupe utilisateurs"), in ONE write:
    one transaction, one revision. The manager is named first, ``replaces`` naming the current
    one (R-ADM-3, R-ADM-5, R-AFAS-4 notice), then the label and dates change (R-GRP-2; never a
    system group, R-GRP-3). All or nothing: any refusal (a stale ``replaces``, a date in the
    past, ...) leaves the group, its manager, the revision and the audit trail as they were.
    The audit records are those ``set_manager`` then ``edit_group`` would leave, each with its
    own action; the actor needs both actions (R-ADM-7)."""
    fields = data.model_fields_set
    if not fields and manager is None:
        raise BadRequest("Aucune modification demandée.", code="EMPTY_EDIT")
    edit_action = _edit_action(fields) if fields else None
    target = Target("group", org_code, code)
    with svc.write(actor, edit_action or Action.GROUP_MANAGER_SET, target) as tx:
        if edit_action is not None and manager is not None:
            tx.authorise(Action.GROUP_MANAGER_SET, target)
        org = store.organisation(tx.session, org_code)
        grp = store.group(tx.session, org, code)
        named: str | None = None
        previous: str | None = None
        if manager is not None:
            named, previous = _set_manager(tx, org, grp, manager)
        changed = [] if edit_action is None else _edit(tx, org, grp, data, edit_action)
        out = store.group_json(grp, org.code, None)
    return {
        "group": out,
        "closed": changed,
        "manager": named,
        "previous": previous,
        "notices": tx.notices,
        "revision": tx.revision,
    }


def close_group(svc: AdminService, actor: str, org_code: str, code: str) -> dict[str, Any]:
    """Fiche 11: close the group today; its sub-groups close with it and every membership of
    them ends today; members are not closed (R-GRP-2)."""
    with svc.write(actor, Action.GROUP_CLOSE, Target("group", org_code, code)) as tx:
        org = store.organisation(tx.session, org_code)
        grp = store.group(tx.session, org, code)
        _not_system(grp)
        if not store.not_ended(grp, tx.today):
            raise Conflict(f"Le groupe {code} est déjà clôturé.", code="GROUP_CLOSED")
        closed = _close_group(tx, org, grp, tx.today)
        out = store.group_json(grp, org.code, None)
    return {"group": out, "closed": closed, "revision": tx.revision}


def _close_group(tx: Tx, org: Organisation, grp: Group, day: dt.date) -> list[str]:
    store.not_in_past(day, tx.today, "La date de clôture d'un groupe")
    closed: list[str] = []
    for g in [grp, *_descendants(tx.session, grp)]:
        if g.is_system:
            continue
        if g.closes_on is None or g.closes_on > day:
            before = store.group_json(g, org.code, None)
            g.closes_on = day
            closed.append(g.code)
            ended = []
            for m, login in tx.session.execute(
                select(Membership, User.login)
                .join(User, User.id == Membership.user_id)
                .where(
                    Membership.group_id == g.id,
                    (Membership.closes_on.is_(None)) | (Membership.closes_on > day),
                )
            ):
                m.closes_on = day
                ended.append(login)
            after = store.group_json(g, org.code, None)
            after["members_detached"] = sorted(ended)
            tx.record(
                f"group:{org.code}/{g.code}", org.code, before, after, org.id, Action.GROUP_CLOSE
            )
    return closed


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
    if pair in {(r.service, r.role) for r in _roles(s, grp, tx.today)}:
        raise Conflict(f"Le groupe porte déjà {service}:{role}.", "ROLE_ALREADY_ASSIGNED")
    if service not in _subscribed(s, grp.convention_id, tx.today):
        raise Conflict(
            f"Le service {service} n'est pas souscrit sous la convention du groupe (R-GRP-4).",
            code="SERVICE_NOT_SUBSCRIBED",
        )
    if grp.parent_id is not None:
        parent = s.get(Group, grp.parent_id)
        if parent is None or pair not in _held_today(s, parent, tx.today):
            raise Conflict(
                f"Un sous-groupe ne peut porter que les rôles de son parent direct : "
                f"{service}:{role} n'est pas porté par "
                f"{parent.code if parent else '?'} (R-GRP-4).",
                code="SUBGROUP_ROLE_NOT_IN_PARENT",
            )
    s.add(GroupRole(group_id=grp.id, service=service, role=role, opens_on=tx.today))
    after = {"service": service, "role": role, "opens_on": tx.today.isoformat()}
    tx.record(
        f"group:{org.code}/{grp.code}", org.code, None, after, org.id, Action.GROUP_ROLES_EDIT
    )


def _remove(tx: Tx, org: Organisation, grp: Group, service: str, role: str) -> list[str]:
    """Fiche 13 in the open write ``tx``: end the role today on ``grp`` and every descendant
    (R-GRP-4); return the groups changed."""
    s = tx.session
    if not [r for r in _roles(s, grp, tx.today) if (r.service, r.role) == (service, role)]:
        raise NotFound(f"Le groupe {grp.code} ne porte pas {service}:{role}.", "ROLE_NOT_ASSIGNED")
    changed = []
    for g in [grp, *_descendants(s, grp)]:
        rows = [r for r in _roles(s, g, tx.today) if (r.service, r.role) == (service, role)]
        for r in rows:
            before = {"service": service, "role": role, **store.dates(r)}
            r.closes_on = tx.today
            tx.record(
                f"group:{org.code}/{g.code}",
                org.code,
                before,
                {"service": service, "role": role, **store.dates(r)},
                org.id,
                Action.GROUP_ROLES_EDIT,
            )
        if rows:
            changed.append(g.code)
    return changed


def assign_role(
    svc: AdminService, actor: str, org_code: str, code: str, data: RoleRef
) -> dict[str, Any]:
    """Fiche 12: give the group a role (R-GRP-4, R-ADM-6)."""
    _known_role(svc, data.service, data.role)
    with svc.write(actor, Action.GROUP_ROLES_EDIT, Target("group", org_code, code)) as tx:
        org = store.organisation(tx.session, org_code)
        grp = store.group(tx.session, org, code)
        _not_system(grp)
        _assign(tx, org, grp, data.service, data.role)
    return {"groups": [code], "revision": tx.revision}


def remove_role(
    svc: AdminService, actor: str, org_code: str, code: str, service: str, role: str
) -> dict[str, Any]:
    """Fiche 13: remove a role today from the group and from every descendant, in the same
    transaction (R-GRP-4)."""
    with svc.write(actor, Action.GROUP_ROLES_EDIT, Target("group", org_code, code)) as tx:
        org = store.organisation(tx.session, org_code)
        grp = store.group(tx.session, org, code)
        _not_system(grp)
        changed = _remove(tx, org, grp, service, role)
    return {"groups": changed, "revision": tx.revision}


def set_group_roles(
    svc: AdminService,
    actor: str,
    org_code: str,
    code: str,
    assign: list[tuple[str, str]],
    remove: list[tuple[str, str]],
) -> dict[str, Any]:
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
        _not_system(grp)
        changed: set[str] = set()
        for service, role in remove:
            changed.update(_remove(tx, org, grp, service, role))
        for service, role in assign:
            _assign(tx, org, grp, service, role)
            changed.add(code)
    return {
        "groups": sorted(changed),
        "assigned": [{"service": sv, "role": ro} for sv, ro in assign],
        "removed": [{"service": sv, "role": ro} for sv, ro in remove],
        "revision": tx.revision,
    }


# -- fiches 14, 16: managers -------------------------------------------------------------------


def _set_manager(tx: Tx, org: Organisation, grp: Group, data: ManagerSet) -> tuple[str, str | None]:
    """Fiches 14 and 16 in the open write ``tx`` (R-ADM-3, R-AFAS-4 notice), recorded as
    ``group.manager.set``; return (the manager, the one replaced)."""
    s = tx.session
    code = grp.code
    _not_system(grp)
    if not store.not_ended(grp, tx.today):
        raise Conflict(f"Le groupe {code} est clôturé.", code="GROUP_CLOSED")
    current = _current_manager(s, grp, tx.today)
    current_login = None if current is None else current[1].login
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
    _open_manager(tx, manager, org, tx.today, grp.closes_on)
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
    )
    if current_login is not None:
        # engine.check, not index.decide: it never raises (R-DEC-2), so an engine error
        # costs the notice, not the manager change.
        outcome = tx.service.engine.check(Query(current_login, "afas", "habiliter", None, tx.today))
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
) -> dict[str, Any]:
    """Fiches 14 and 16: name or replace the group's manager (R-ADM-3, R-ADM-5: a manager only
    below their own groups). If the replaced manager still holds afas:habiliter the response
    says so (R-AFAS-4)."""
    with svc.write(actor, Action.GROUP_MANAGER_SET, Target("group", org_code, code)) as tx:
        org = store.organisation(tx.session, org_code)
        grp = store.group(tx.session, org, code)
        manager, current_login = _set_manager(tx, org, grp, data)
    return {
        "group": code,
        "manager": manager,
        "previous": current_login,
        "notices": tx.notices,
        "revision": tx.revision,
    }
