"""What the group verbs share: a group's roles, descendants, current manager and the
subscriptions under its convention (R-GRP-3, R-GRP-4, R-ADM-3)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import (
    Convention,
    Group,
    GroupManager,
    GroupRole,
    Organisation,
    Subscription,
    User,
)
from pdp.core.errors import Conflict
from pdp.services.admin import store
from pdp.services.admin.service import Tx


def not_system(grp: Group) -> None:
    if grp.is_system:
        raise Conflict(
            f"Le groupe {grp.code} est généré par le système : il ne peut être ni modifié ni "
            "clôturé (R-GRP-3).",
            code="SYSTEM_GROUP",
        )


def current(rows: list[Any], today: dt.date) -> list[Any]:
    return [r for r in rows if store.not_ended(r, today)]


def current_manager(
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


def current_managers(session: Session, group_ids: list[int], today: dt.date) -> dict[int, str]:
    """The login of each group's current manager (as ``current_manager``), in one query."""
    out: dict[int, str] = {}
    if not group_ids:
        return out
    rows = session.execute(
        select(GroupManager.group_id, User.login)
        .join(User, User.id == GroupManager.user_id)
        .where(
            GroupManager.group_id.in_(group_ids),
            (GroupManager.closes_on.is_(None)) | (GroupManager.closes_on > today),
        )
        .order_by(GroupManager.group_id, GroupManager.opens_on.desc(), GroupManager.id.desc())
    )
    for group_id, login in rows:
        out.setdefault(group_id, login)
    return out


def closes_first(user: User, until: dt.date | None) -> bool:
    """Whether ``user`` closes before a group closing ``until`` (None: never) does (R-ADM-3)."""
    return user.closes_on is not None and (until is None or until > user.closes_on)


def open_manager(
    tx: Tx, user: User, org: Organisation, day: dt.date, until: dt.date | None
) -> None:
    """R-ADM-3: the manager is an open user of the group's organisation, from ``day`` and for
    as long as the group (closing ``until``) is open: a user closing earlier would leave the
    group a closed manager (the mirror of USER_MANAGES_GROUPS when closing a manager)."""
    if user.organisation_id != org.id or not store.is_open(user, day) or closes_first(user, until):
        raise Conflict(
            f"Le responsable habilitations doit être un utilisateur ouvert de {org.code} "
            "(R-ADM-3).",
            code="MANAGER_NOT_OPEN",
        )


def roles_of(session: Session, grp: Group, today: dt.date) -> list[GroupRole]:
    return current(
        list(
            session.execute(
                select(GroupRole)
                .where(GroupRole.group_id == grp.id)
                .order_by(GroupRole.service, GroupRole.role)
            ).scalars()
        ),
        today,
    )


def held_today(session: Session, grp: Group, today: dt.date) -> set[tuple[str, str]]:
    return {(r.service, r.role) for r in roles_of(session, grp, today) if store.is_open(r, today)}


def subscribed(session: Session, convention_id: int, today: dt.date) -> set[str]:
    """Services with an open subscription under the convention, itself open (R-CON-2)."""
    conv = session.get(Convention, convention_id)
    if conv is None or not store.is_open(conv, today):
        return set()
    subs = session.execute(
        select(Subscription).where(Subscription.convention_id == convention_id)
    ).scalars()
    return {s.service for s in subs if store.is_open(s, today)}


def descendants(session: Session, grp: Group) -> list[Group]:
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
