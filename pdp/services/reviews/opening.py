"""What a campaign reviews, and who reviews it, read from the store in the opening's
transaction (R-CNIL-21, R-CNIL-22).

The items are the memberships open on the opening day, of users open that day, in groups open
that day with all their ancestors: the memberships that bring rights. Each item carries the
roles its group holds that day and, for each, the last day it was used. Its reviewer is the
group's manager; if the user reviewed manages the group, the nearest manager above who is
someone else; where no manager covers it, an open partner admin of the organisation other than
the user (the first by login); otherwise nobody (the item is reported at the closing).

A handful of queries whatever the number of organisations: the national campaign reads every
table once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import (
    Dated,
    Group,
    GroupManager,
    GroupRole,
    Membership,
    Organisation,
    PartnerAdmin,
    User,
)
from pdp.core.catalogue import Catalogue

# (login, service, role) -> the last day an allowed check used it (pdp.records.last_use).
LastUses = Callable[[Session, list[str]], dict[tuple[str, str, str], dt.date]]


def _open(model: type[Dated], day: dt.date) -> ColumnElement[bool]:
    return and_(
        model.opens_on <= day,
        or_(model.closes_on.is_(None), model.closes_on > day),
    )


@dataclass(frozen=True, slots=True)
class Planned:
    """One item to insert."""

    organisation: str
    login: str
    group_code: str
    membership_id: int
    reviewer: str | None
    reviewer_kind: str
    rights: str  # JSON: [{"service", "role", "features", "last_use"}, ...]

    def row(self, campaign_id: int) -> dict[str, Any]:
        """The item's row for a bulk insert."""
        return {
            "campaign_id": campaign_id,
            "organisation": self.organisation,
            "login": self.login,
            "group_code": self.group_code,
            "membership_id": self.membership_id,
            "reviewer": self.reviewer,
            "reviewer_kind": self.reviewer_kind,
            "rights": self.rights,
            "outcome": "pending",
            "removed": False,
        }


def _in(column: Any, ids: Collection[int] | None) -> ColumnElement[bool]:
    return column.in_(sorted(ids)) if ids is not None else true()


def _in_groups(column: Any, org_ids: Collection[int] | None) -> ColumnElement[bool]:
    """``column`` (a group id) names a group of ``org_ids`` (a subquery: one parameter per
    organisation, never one per group)."""
    if org_ids is None:
        return true()
    inside: ColumnElement[bool] = column.in_(
        select(Group.id).where(Group.organisation_id.in_(sorted(org_ids)))
    )
    return inside


def plan_items(
    session: Session,
    org_ids: Collection[int] | None,
    day: dt.date,
    last_uses: LastUses,
    catalogue: Catalogue | None = None,
) -> list[Planned]:
    """The items of a campaign over ``org_ids`` (None: every organisation) opened on ``day``,
    ordered by organisation, login and group; each right with the features it opens (the
    ``catalogue``'s, when given)."""
    orgs = dict(session.execute(select(Organisation.id, Organisation.code)).all())
    users = {
        uid: (login, org_id)
        for uid, login, org_id in session.execute(
            select(User.id, User.login, User.organisation_id).where(
                _open(User, day), _in(User.organisation_id, org_ids)
            )
        ).all()
    }
    groups: dict[int, tuple[str, int | None, int, bool]] = {}
    for gid, code, parent, org_id, opens, closes in session.execute(
        select(
            Group.id,
            Group.code,
            Group.parent_id,
            Group.organisation_id,
            Group.opens_on,
            Group.closes_on,
        ).where(_in(Group.organisation_id, org_ids))
    ).all():
        groups[gid] = (code, parent, org_id, opens <= day and (closes is None or day < closes))
    managers = dict(
        session.execute(
            select(GroupManager.group_id, GroupManager.user_id).where(
                _open(GroupManager, day), _in_groups(GroupManager.group_id, org_ids)
            )
        ).all()
    )
    admins: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for org_id, uid in session.execute(
        select(PartnerAdmin.organisation_id, PartnerAdmin.user_id).where(
            _open(PartnerAdmin, day), _in(PartnerAdmin.organisation_id, org_ids)
        )
    ).all():
        if uid in users:
            admins[org_id].append((users[uid][0], uid))
    roles: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for gid, service, role in session.execute(
        select(GroupRole.group_id, GroupRole.service, GroupRole.role).where(
            _open(GroupRole, day), _in_groups(GroupRole.group_id, org_ids)
        )
    ).all():
        roles[gid].append((service, role))

    def effective(gid: int) -> bool:  # open with every ancestor (R-DEC-1)
        seen = 0
        current: int | None = gid
        while current is not None and seen < 10_000:
            _code, parent, _org, open_ = groups[current]
            if not open_:
                return False
            current, seen = parent, seen + 1
        return True

    open_groups = {gid for gid in groups if effective(gid)}
    found = session.execute(
        select(Membership.id, Membership.user_id, Membership.group_id).where(
            _open(Membership, day), _in_groups(Membership.group_id, org_ids)
        )
    ).all()
    kept = [(mid, uid, gid) for mid, uid, gid in found if uid in users and gid in open_groups]
    used = last_uses(session, sorted({users[uid][0] for _m, uid, _g in kept}))
    planned = []
    for mid, uid, gid in kept:
        login = users[uid][0]
        code, _parent, org_id, _ = groups[gid]
        reviewer, kind = _reviewer(gid, uid, groups, managers, users, admins[org_id])
        rights = json.dumps(
            [
                {
                    "service": s,
                    "role": r,
                    "features": _features(catalogue, s, r),
                    "last_use": _iso(used.get((login, s, r))),
                }
                for s, r in sorted(set(roles[gid]))
            ],
            separators=(",", ":"),
        )
        planned.append(Planned(orgs[org_id], login, code, mid, reviewer, kind, rights))
    planned.sort(key=lambda p: (p.organisation, p.login, p.group_code))
    return planned


def _features(catalogue: Catalogue | None, service: str, role: str) -> list[str]:
    """The features ``role`` opens in ``service`` (none declared: the whole service, [])."""
    found = catalogue.services.get(service) if catalogue is not None else None
    return list(found.opens.get(role, ())) if found is not None else []


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _reviewer(
    gid: int,
    uid: int,
    groups: dict[int, tuple[str, int | None, int, bool]],
    managers: dict[int, int],
    users: dict[int, tuple[str, int | None]],
    admins: list[tuple[str, int]],
) -> tuple[str | None, str]:
    """R-CNIL-22: the group's manager, or the nearest manager above who is not the user
    reviewed; else a partner admin who is not the user; else nobody."""
    current: int | None = gid
    while current is not None:
        manager = managers.get(current)
        if manager is not None and manager != uid and manager in users:
            return users[manager][0], "manager"
        current = groups[current][1] if current in groups else None
    others = sorted(login for login, admin in admins if admin != uid)
    if others:
        return others[0], "partner_admin"
    return None, "none"
