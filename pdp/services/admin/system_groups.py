"""System groups (R-GRP-3): the groups the catalogue says a service makes (Espace Bailleur: one
per housing type, each carrying its role) follow the organisation's subscriptions to it.

- Opening the first subscription creates them, under that subscription's convention, open from
  its first day, each with its role; a later subscription that extends the service's days
  extends them; closing the last one closes them on the same day (their memberships end then,
  as R-GRP-2 does for a closed group); subscribing again reopens them from that day, the past
  left as it was. They open and close with the union of the organisation's subscriptions to
  the service, whichever convention each is under.
- Partners attach and detach their users (fiche 4), and nothing else: no edit, no closing, no
  role change, no sub-group, no other manager (R-GRP-3).
- **Decision, who manages them (R-ADM-3 wants one manager at every moment):** the system, on
  behalf of the organisation's partner admins. Their manager is an open partner admin of the
  organisation (the one designated first) whose designation and account stay open as long as
  the group: an admin already given a closing day is passed over, so that no group is left with
  a closed manager (R-ADM-3 at every moment). Opening the service therefore needs one: without
  such a partner admin, the subscription is refused (409 PARTNER_ADMIN_REQUIRED: designate one
  first). When a subscription makes the groups last longer than their manager, the management
  passes, that day, to one who lasts. When that admin's designation ends, the management passes,
  on the same day, to another such partner admin; without one, the designation cannot end (409
  SYSTEM_GROUPS_NEED_ADMIN: designate the successor first). The admin's account cannot be given
  a closing day while they manage the groups (USER_MANAGES_GROUPS, as for any group). An
  operator does all of this, so none of it blocks anyone for long.

Every change here is recorded in the audit trail within the operator's write that caused it.
"""

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
    Membership,
    Organisation,
    PartnerAdmin,
    Subscription,
    User,
)
from pdp.core.catalogue import SystemGroup
from pdp.core.errors import Conflict
from pdp.engine.actions import Action
from pdp.services.admin import store
from pdp.services.admin.service import Tx


def follow(tx: Tx, org: Organisation, service: str, specs: tuple[SystemGroup, ...]) -> None:
    """Bring ``org``'s system groups of ``service`` in line with its subscriptions to it (see
    the module). Raises Conflict (PARTNER_ADMIN_REQUIRED, GROUP_CODE_TAKEN)."""
    if not specs:
        return
    window = _window(tx.session, org, service)
    if window is None:
        return
    conv, opens_on, closes_on = window
    for spec in specs:
        grp = tx.session.execute(
            select(Group).where(Group.organisation_id == org.id, Group.code == spec.code)
        ).scalar_one_or_none()
        if grp is None:
            if closes_on is None or closes_on > tx.today:
                _create(tx, org, conv, service, spec, max(opens_on, tx.today), closes_on)
        elif not grp.is_system:
            raise Conflict(
                f"Le code {spec.code} est celui d'un groupe système de {service}, mais un groupe "
                f"de {org.code} le porte déjà : le renommer d'abord (R-GRP-3).",
                code="GROUP_CODE_TAKEN",
            )
        else:
            _align(tx, org, grp, opens_on, closes_on)


def _window(
    session: Session, org: Organisation, service: str
) -> tuple[Convention, dt.date, dt.date | None] | None:
    """The convention of the first subscription to ``service``, and the first and last days of
    the organisation's subscriptions to it (None: open-ended); None without any that opens."""
    rows = [
        (sub, conv)
        for sub, conv in session.execute(
            select(Subscription, Convention)
            .join(Convention, Convention.id == Subscription.convention_id)
            .where(Convention.organisation_id == org.id, Subscription.service == service)
            .order_by(Subscription.opens_on, Subscription.id)
        )
        if sub.closes_on is None or sub.closes_on > sub.opens_on
    ]
    if not rows:
        return None
    ends = [sub.closes_on for sub, _ in rows]
    closes_on = None if None in ends else max(e for e in ends if e is not None)
    return rows[0][1], rows[0][0].opens_on, closes_on


def _admin_on(
    session: Session,
    org: Organisation,
    day: dt.date,
    until: dt.date | None,
    *,
    besides: int | None = None,
    only: int | None = None,
) -> User | None:
    """The partner admin of ``org`` designated first who is open on ``day`` and stays open (their
    designation and their account) until ``until`` (None: for good), other than the user
    ``besides``, or the user ``only`` if they are one."""
    for designation, user in session.execute(
        select(PartnerAdmin, User)
        .join(User, User.id == PartnerAdmin.user_id)
        .where(PartnerAdmin.organisation_id == org.id)
        .order_by(PartnerAdmin.opens_on, PartnerAdmin.id)
    ):
        if user.id == besides or (only is not None and user.id != only):
            continue
        if not (store.is_open(designation, day) and store.is_open(user, day)):
            continue
        ends = [e for e in (designation.closes_on, user.closes_on) if e is not None]
        if not ends or (until is not None and min(ends) >= until):
            return user
    return None


def _state(grp: Group, org: Organisation, manager: str | None = None) -> dict[str, Any]:
    out = store.group_out(grp, org.code, None).model_dump(mode="json")
    if manager is not None:
        out["manager"] = manager
    return out


def _create(
    tx: Tx,
    org: Organisation,
    conv: Convention,
    service: str,
    spec: SystemGroup,
    opens_on: dt.date,
    closes_on: dt.date | None,
) -> None:
    manager = _admin_on(tx.session, org, opens_on, closes_on)
    if manager is None:
        raise Conflict(
            f"{service} crée des groupes système, gérés par un administrateur partenaire de "
            f"{org.code} ouvert du {opens_on} à leur clôture (sans date de fin avant elle) : en "
            "désigner un d'abord (R-GRP-3, R-ADM-3).",
            code="PARTNER_ADMIN_REQUIRED",
        )
    grp = Group(
        organisation_id=org.id,
        convention_id=conv.id,
        parent_id=None,
        code=spec.code,
        label=spec.label,
        is_system=True,
        opens_on=opens_on,
        closes_on=closes_on,
    )
    tx.session.add(grp)
    tx.session.flush()
    tx.session.add(GroupRole(group_id=grp.id, service=service, role=spec.role, opens_on=opens_on))
    tx.session.add(GroupManager(group_id=grp.id, user_id=manager.id, opens_on=opens_on))
    tx.session.flush()
    after = {**_state(grp, org, manager.login), "roles": [f"{service}:{spec.role}"]}
    tx.record(f"group:{org.code}/{grp.code}", org.code, None, after, org.id, related=manager.login)


def _align(
    tx: Tx, org: Organisation, grp: Group, opens_on: dt.date, closes_on: dt.date | None
) -> None:
    """Move a system group's days to its subscriptions' (never into the past)."""
    before = _state(grp, org)
    changed = False
    if grp.opens_on > tx.today and opens_on != grp.opens_on:
        grp.opens_on = max(opens_on, tx.today)
        changed = True
    if closes_on != grp.closes_on:
        if closes_on is not None and (grp.closes_on is None or closes_on < grp.closes_on):
            detached = _close(tx, grp, max(closes_on, tx.today))
            after = {**_state(grp, org), "members_detached": detached}
            tx.record(f"group:{org.code}/{grp.code}", org.code, before, after, org.id)
            return
        grp.closes_on = closes_on
        changed = True
        # Reopened, or lasting longer: its manager must last as long (R-ADM-3).
        _manage_from(tx, org, grp, max(tx.today, grp.opens_on))
    if changed:
        tx.record(f"group:{org.code}/{grp.code}", org.code, before, _state(grp, org), org.id)


def _close(tx: Tx, grp: Group, day: dt.date) -> list[str]:
    """Close ``grp`` on ``day``; end its memberships then (R-GRP-2); the members detached."""
    grp.closes_on = day
    detached = []
    for membership, login in tx.session.execute(
        select(Membership, User.login)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.group_id == grp.id,
            Membership.closes_on.is_(None) | (Membership.closes_on > day),
        )
    ):
        membership.closes_on = max(day, membership.opens_on)
        detached.append(login)
    return sorted(detached)


def _manage_from(tx: Tx, org: Organisation, grp: Group, day: dt.date) -> None:
    """A reopened or extended group keeps its manager if they are a partner admin who stays open
    as long as it; otherwise the management passes, on ``day``, to the one designated first who
    does (PARTNER_ADMIN_REQUIRED without one)."""
    current = tx.session.execute(
        select(GroupManager).where(
            GroupManager.group_id == grp.id,
            GroupManager.closes_on.is_(None) | (GroupManager.closes_on > day),
        )
    ).scalar_one_or_none()
    if current is not None and _admin_on(tx.session, org, day, grp.closes_on, only=current.user_id):
        return
    admin = _admin_on(tx.session, org, day, grp.closes_on)
    if admin is None:
        raise Conflict(
            f"Les groupes système de {org.code} rouvrent ou durent plus longtemps : un "
            "administrateur partenaire ouvert jusqu'à leur clôture doit les gérer, en désigner un "
            "d'abord (R-GRP-3, R-ADM-3).",
            code="PARTNER_ADMIN_REQUIRED",
        )
    before = None
    if current is not None:
        before = tx.session.get(User, current.user_id)
        if current.opens_on >= day:
            tx.session.delete(current)
        else:
            current.closes_on = day
    tx.session.add(GroupManager(group_id=grp.id, user_id=admin.id, opens_on=day))
    if before is not None:
        tx.record(
            f"group:{org.code}/{grp.code}",
            org.code,
            {"manager": before.login},
            {"manager": admin.login},
            org.id,
            Action.GROUP_MANAGER_SET,
            related=admin.login,
        )


def hand_over(tx: Tx, org: Organisation, leaving: User, day: dt.date) -> list[str]:
    """The partner admin ``leaving`` stops on ``day``: the system groups they manage pass to
    another open partner admin from that day. Raises Conflict(SYSTEM_GROUPS_NEED_ADMIN) if
    there is none. Returns the groups handed over."""
    rows = tx.session.execute(
        select(GroupManager, Group)
        .join(Group, Group.id == GroupManager.group_id)
        .where(
            Group.organisation_id == org.id,
            Group.is_system.is_(True),
            GroupManager.user_id == leaving.id,
            GroupManager.closes_on.is_(None) | (GroupManager.closes_on > day),
            Group.closes_on.is_(None) | (Group.closes_on > day),
        )
        .order_by(Group.code)
    )
    handed: list[str] = []
    for managed, grp in rows:
        successor = _admin_on(tx.session, org, day, grp.closes_on, besides=leaving.id)
        if successor is None:
            raise Conflict(
                f"{leaving.login} gère les groupes système de {org.code} : désigner d'abord un "
                "autre administrateur partenaire, ouvert jusqu'à leur clôture, qui les gérera "
                "(R-GRP-3, R-ADM-3).",
                code="SYSTEM_GROUPS_NEED_ADMIN",
            )
        managed.closes_on = max(day, managed.opens_on)
        tx.session.add(GroupManager(group_id=grp.id, user_id=successor.id, opens_on=day))
        tx.record(
            f"group:{org.code}/{grp.code}",
            org.code,
            {"manager": leaving.login},
            {"manager": successor.login},
            org.id,
            Action.GROUP_MANAGER_SET,
            related=successor.login,
        )
        handed.append(grp.code)
    return handed
