"""Groups: create, read, edit and close them (fiches 7 to 11, R-GRP, R-ADM-3..6)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import (
    Convention,
    Group,
    GroupManager,
    Membership,
    Organisation,
    User,
)
from pdp.core.errors import BadRequest, Conflict, NotFound
from pdp.engine.actions import Action
from pdp.engine.rules import AdminReason, Target
from pdp.engine.snapshot import GROUP
from pdp.services import paging
from pdp.services.admin import store
from pdp.services.admin.group_tree import (
    closes_first,
    current_manager,
    current_managers,
    descendants,
    held_today,
    not_system,
    open_manager,
    roles_of,
    subscribed,
)
from pdp.services.admin.managers import set_manager_in
from pdp.services.admin.requests import GroupEdit, GroupNew, ManagerSet
from pdp.services.admin.responses import (
    GroupAndManagerEdited,
    GroupDetail,
    GroupDetailOut,
    GroupEdited,
    GroupItem,
    GroupList,
    GroupManagerOut,
    GroupRoles,
    GroupWritten,
    NewGroupOut,
    RoleName,
    UserList,
)
from pdp.services.admin.service import AdminService, Tx
from pdp.services.admin.users import resolve_user

# -- fiche 7: create ---------------------------------------------------------------------------


def create_group(svc: AdminService, actor: str, org_code: str, data: GroupNew) -> GroupWritten:
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
            not_system(parent)
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
        open_manager(tx, manager, org, opens_on, closes_on)
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
        public = store.group_out(grp, org.code, data.parent)
        out = NewGroupOut(**public.model_dump(), manager=manager.login)
        tx.record(
            f"group:{org.code}/{grp.code}",
            org.code,
            None,
            out.model_dump(mode="json"),
            org.id,
            related=f"user:{manager.login}",
            scope=(GROUP, grp.id),
        )
    return GroupWritten(group=out, revision=tx.revision)


# -- what the screens may offer (R-GRP-2, R-GRP-3, R-ADM-3, R-ADM-7) ---------------------------


def _flags(grp: Group, today: dt.date) -> tuple[bool, bool]:
    """What the group's state still allows, whoever acts (who may act is the engine's admin
    check, R-ADM-7), as (editable, closable): a system group is neither edited nor closed, nor
    are its roles (R-GRP-3); a group whose closing day is reached has nothing left to edit or
    close (R-GRP-2)."""
    live = not grp.is_system and store.not_ended(grp, today)
    return live, live


def eligible_managers(
    svc: AdminService, actor: str, org_code: str, code: str | None = None
) -> UserList:
    """The users who may be named the manager (R-ADM-3): the organisation's users open today
    and, for an existing group ``code``, not closing before it; its current manager stays in the
    list (keeping them is no change). The write checks R-ADM-3 again on saving."""
    today = svc.today()
    with svc.read(actor, Action.DIRECTORY_READ, Target("organisation", org_code)) as s:
        org = store.organisation(s, org_code)
        grp = None if code is None else store.group(s, org, code)
        current = None if grp is None else current_manager(s, grp, today)
        keep = None if current is None else current[1].id
        users = s.execute(
            select(User).where(User.organisation_id == org.id).order_by(User.login)
        ).scalars()
        out = [
            store.user_out(u, org.code)
            for u in users
            if u.id == keep
            or (store.is_open(u, today) and (grp is None or not closes_first(u, grp.closes_on)))
        ]
    return UserList(organisation=org_code, group=code, users=out)


def possible_parents(
    svc: AdminService, actor: str, org_code: str, *, required: bool = False
) -> GroupList:
    """The groups under which ``actor`` may create a sub-group today, as ``list_groups`` items:
    neither a system group (R-GRP-3) nor a closed one (R-GRP-2), and the engine's admin check
    allows ``group.create_sub`` on it (R-ADM-4, R-ADM-5, R-ADM-7). With ``required``, finding
    none raises the engine's refusal for the first candidate (Forbidden with its reason), or
    409 NO_PARENT_GROUP when the organisation has no open group at all."""
    candidates = [g for g in list_groups(svc, actor, org_code).groups if g.editable]
    found = [
        g
        for g in candidates
        if svc.decide(actor, Action.GROUP_CREATE_SUB, Target("group", org_code, g.code))[0]
        is AdminReason.ALLOWED
    ]
    if required and not found:
        for g in candidates[:1]:
            svc.require(actor, Action.GROUP_CREATE_SUB, Target("group", org_code, g.code))
        raise Conflict(
            f"Aucun groupe ouvert de {org_code} ne peut recevoir de sous-groupe (R-GRP-2, "
            "R-GRP-3).",
            code="NO_PARENT_GROUP",
        )
    return GroupList(organisation=org_code, groups=found)


# -- fiches 8, 9, 15: read ---------------------------------------------------------------------


def list_groups(
    svc: AdminService,
    actor: str,
    org_code: str,
    *,
    q: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> GroupList:
    """Fiche 8: the organisation's groups by code, with parent and manager (R-GRP-5), and
    whether their state lets them be edited or closed (``editable``, ``closable``: R-GRP-2,
    R-GRP-3); those matching ``q`` (code or label, case ignored); ``limit`` of them after
    ``cursor`` (None: all), with the next page's cursor."""
    today = svc.today()
    with svc.read(actor, Action.DIRECTORY_READ, Target("organisation", org_code)) as s:
        org = store.organisation(s, org_code)
        groups = list(
            s.execute(
                select(Group).where(Group.organisation_id == org.id).order_by(Group.code)
            ).scalars()
        )
        code_of = {g.id: g.code for g in groups}
        if q is not None:
            needle = q.casefold()
            groups = [
                g for g in groups if needle in g.code.casefold() or needle in g.label.casefold()
            ]
        if cursor is not None:
            after = paging.decode(cursor)
            groups = [g for g in groups if g.code > after]
        more = limit is not None and len(groups) > limit
        groups = groups[:limit] if limit is not None else groups
        manager_of = current_managers(s, [g.id for g in groups], today)
        out = []
        for g in groups:
            editable, closable = _flags(g, today)
            out.append(
                GroupItem(
                    **store.group_out(g, org.code, code_of.get(g.parent_id or -1)).model_dump(),
                    manager=manager_of.get(g.id),
                    open=store.is_open(g, today),
                    editable=editable,
                    closable=closable,
                )
            )
    next_cursor = paging.encode(groups[-1].code) if more else None
    return GroupList(organisation=org_code, groups=out, next_cursor=next_cursor)


def group_detail(svc: AdminService, actor: str, org_code: str, code: str) -> GroupDetail:
    """Fiches 8 and 15: a group, its manager, parent, sub-groups, roles and members, and
    whether its state lets it be edited or closed (R-GRP-2, R-GRP-3)."""
    today = svc.today()
    with svc.read(actor, Action.DIRECTORY_READ, Target("organisation", org_code)) as s:
        org = store.organisation(s, org_code)
        grp = store.group(s, org, code)
        parent = s.get(Group, grp.parent_id) if grp.parent_id is not None else None
        conv = s.get(Convention, grp.convention_id)
        found = current_manager(s, grp, today)
        manager = (
            None
            if found is None
            else GroupManagerOut(
                login=found[1].login,
                first_name=found[1].first_name,
                last_name=found[1].last_name,
                opens_on=found[0].opens_on,
                closes_on=found[0].closes_on,
            )
        )
        members = sorted(
            u.login
            for m, u in s.execute(
                select(Membership, User)
                .join(User, User.id == Membership.user_id)
                .where(Membership.group_id == grp.id)
            )
            if store.is_open(m, today)
        )
        editable, closable = _flags(grp, today)
        out = GroupDetailOut(
            **store.group_out(grp, org.code, None if parent is None else parent.code).model_dump(),
            convention=None if conv is None else conv.reference,
            manager=manager,
            subgroups=sorted(
                g.code for g in s.execute(select(Group).where(Group.parent_id == grp.id)).scalars()
            ),
            roles=[store.role_out(r) for r in roles_of(s, grp, today)],
            members=members,
            open=store.is_open(grp, today),
            editable=editable,
            closable=closable,
        )
    return GroupDetail(group=out)


def group_roles(svc: AdminService, actor: str, org_code: str, code: str) -> GroupRoles:
    """Fiche 9: the group's roles, and those it may be given (R-GRP-4)."""
    today = svc.today()
    with svc.read(actor, Action.DIRECTORY_READ, Target("organisation", org_code)) as s:
        org = store.organisation(s, org_code)
        grp = store.group(s, org, code)
        roles = roles_of(s, grp, today)
        held = {(r.service, r.role) for r in roles}
        assignable = sorted(_allowed_roles(s, svc, grp, today) - held)
    return GroupRoles(
        group=code,
        roles=[store.role_out(r) for r in roles],
        assignable=[RoleName(service=sv, role=ro) for sv, ro in assignable],
    )


def _allowed_roles(
    s: Session, svc: AdminService, grp: Group, today: dt.date
) -> set[tuple[str, str]]:
    """What R-GRP-4 lets the group hold today: roles of services subscribed under its
    convention, and for a sub-group only those its direct parent holds."""
    services = subscribed(s, grp.convention_id, today)
    allowed = {
        (name, role)
        for name in services
        if name in svc.catalogue.services
        for role in svc.catalogue.services[name].roles
    }
    if grp.parent_id is not None:
        parent = s.get(Group, grp.parent_id)
        allowed &= held_today(s, parent, today) if parent is not None else set()
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
    not_system(grp)
    before = store.group_out(grp, org.code, None).model_dump(mode="json")
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
        store.group_out(grp, org.code, None).model_dump(mode="json"),
        org.id,
        action,
        scope=(GROUP, grp.id),
    )
    return changed


def edit_group(
    svc: AdminService, actor: str, org_code: str, code: str, data: GroupEdit
) -> GroupEdited:
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
        out = store.group_out(grp, org.code, None)
    return GroupEdited(group=out, closed=changed, revision=tx.revision)


def edit_group_and_manager(
    svc: AdminService,
    actor: str,
    org_code: str,
    code: str,
    data: GroupEdit,
    manager: ManagerSet | None,
) -> GroupAndManagerEdited:
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
            named, previous = set_manager_in(tx, org, grp, manager)
        changed = [] if edit_action is None else _edit(tx, org, grp, data, edit_action)
        out = store.group_out(grp, org.code, None)
    return GroupAndManagerEdited(
        group=out,
        closed=changed,
        manager=named,
        previous=previous,
        notices=tx.notices,
        revision=tx.revision,
    )


def close_group(svc: AdminService, actor: str, org_code: str, code: str) -> GroupEdited:
    """Fiche 11: close the group today; its sub-groups close with it and every membership of
    them ends today; members are not closed (R-GRP-2)."""
    with svc.write(actor, Action.GROUP_CLOSE, Target("group", org_code, code)) as tx:
        org = store.organisation(tx.session, org_code)
        grp = store.group(tx.session, org, code)
        not_system(grp)
        if not store.not_ended(grp, tx.today):
            raise Conflict(f"Le groupe {code} est déjà clôturé.", code="GROUP_CLOSED")
        closed = _close_group(tx, org, grp, tx.today)
        out = store.group_out(grp, org.code, None)
    return GroupEdited(group=out, closed=closed, revision=tx.revision)


def _close_group(tx: Tx, org: Organisation, grp: Group, day: dt.date) -> list[str]:
    store.not_in_past(day, tx.today, "La date de clôture d'un groupe")
    closed: list[str] = []
    for g in [grp, *descendants(tx.session, grp)]:
        if g.is_system:
            continue
        if g.closes_on is None or g.closes_on > day:
            before = store.group_out(g, org.code, None).model_dump(mode="json")
            g.closes_on = day
            closed.append(g.code)
            # One UPDATE for every membership still open on the day (hundreds in a large
            # group: loading and flushing them one by one was most of the write).
            still_open = (Membership.group_id == g.id) & (
                Membership.closes_on.is_(None) | (Membership.closes_on > day)
            )
            ended = list(
                tx.session.scalars(
                    select(User.login)
                    .join(Membership, Membership.user_id == User.id)
                    .where(still_open)
                )
            )
            tx.session.execute(update(Membership).where(still_open).values(closes_on=day))
            # The audit record names the members the closing detached.
            after = store.group_out(g, org.code, None).model_dump(mode="json")
            after["members_detached"] = sorted(ended)
            tx.record(
                f"group:{org.code}/{g.code}",
                org.code,
                before,
                after,
                org.id,
                Action.GROUP_CLOSE,
                scope=(GROUP, g.id),
            )
    return closed
