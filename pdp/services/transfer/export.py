"""The store to transfer lines (docs/transfer-format.md), deterministic: the same store always
gives the same bytes.

Order: the header; the Cafs by code; the operators by login; then each organisation by code:
the organisation, its conventions by reference, subscriptions, users by login, partner admins,
groups (each after its parent: roots by code, each followed by its sub-groups by code), group
roles, group managers, memberships and Afas profiles, each kind sorted on all its fields.

``at`` keeps what is open on that day (R-TIME-1), dates unchanged, together with what those
records name (a manager's user, a group's parent and convention, a convention's Caf, the
subscriptions a top-level group's roles rest on, R-GRP-4), so that the file imports alone.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import (
    AfasProfile,
    Caf,
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
from pdp.services.admin import store
from pdp.services.transfer.format import day, dumps, header

BATCH = 500
Row = tuple[Any, ...]


def _open(row: Row, at: dt.date | None) -> bool:
    """Whether a row ending with (opens_on, closes_on) is open on ``at`` (always, without)."""
    if at is None:
        return True
    opens_on, closes_on = row[-2], row[-1]
    return bool(opens_on <= at and (closes_on is None or at < closes_on))


def _sort_key(row: Row) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in row)


@dataclass
class _Org:
    """One organisation's rows, natural keys only, each ending with its two dates."""

    row: Row  # code, name, kind, opens, closes
    conventions: list[Row] = field(default_factory=list)  # reference, caf, dates
    subscriptions: list[Row] = field(default_factory=list)  # convention, service, dates
    users: list[Row] = field(default_factory=list)  # login, first, last, email, dates
    admins: list[Row] = field(default_factory=list)  # login, dates
    groups: list[Row] = field(default_factory=list)  # id, parent id, code, label, conv, system
    roles: list[Row] = field(default_factory=list)  # group, service, role, dates
    managers: list[Row] = field(default_factory=list)  # group, login, dates
    members: list[Row] = field(default_factory=list)  # group, login, dates
    afas: list[Row] = field(default_factory=list)  # login, profile, dates


def export_store(
    session: Session,
    out: BinaryIO,
    organisation: str | None = None,
    at: dt.date | None = None,
) -> int:
    """Write the store (or one organisation, or what is open on ``at``) to ``out``; return the
    number of lines. Raise NotFound(UNKNOWN_ORGANISATION) for an unknown ``organisation``."""
    if organisation is not None:
        store.organisation(session, organisation)
    lines = 0
    for record in records(session, organisation, at):
        out.write(dumps(record))
        lines += 1
    return lines


def records(
    session: Session, organisation: str | None = None, at: dt.date | None = None
) -> Iterator[dict[str, Any]]:
    """The records of the export, in its order (see the module)."""
    yield header(organisation, at)
    orgs_q = select(
        Organisation.id,
        Organisation.code,
        Organisation.name,
        Organisation.kind,
        Organisation.opens_on,
        Organisation.closes_on,
    ).order_by(Organisation.code)
    if organisation is not None:
        orgs_q = orgs_q.where(Organisation.code == organisation)
    orgs = [r for r in session.execute(orgs_q).all() if _open(tuple(r), at)]
    kept = {o.id for o in orgs}
    used_cafs = (
        {
            c
            for c, org_id in session.execute(
                select(Caf.code, Convention.organisation_id)
                .join(Convention, Convention.caf_id == Caf.id)
                .distinct()
            )
            if org_id in kept
        }
        if organisation is not None or at is not None
        else set()
    )
    caf_rows = session.execute(
        select(Caf.code, Caf.name, Caf.opens_on, Caf.closes_on).order_by(Caf.code)
    ).all()
    for code, name, opens_on, closes_on in caf_rows:
        keep = (
            code in used_cafs
            if organisation is not None
            else at is None or code in used_cafs or _open((opens_on, closes_on), at)
        )
        if keep:
            yield {"record": "caf", "code": code, "name": name, **_dates(opens_on, closes_on)}
    if organisation is None:
        for r in session.execute(
            select(
                User.login,
                User.first_name,
                User.last_name,
                User.email,
                User.opens_on,
                User.closes_on,
            )
            .where(User.organisation_id.is_(None))
            .order_by(User.login)
        ):
            if _open(tuple(r), at):
                yield {
                    "record": "operator",
                    "login": r[0],
                    "first_name": r[1],
                    "last_name": r[2],
                    "email": r[3],
                    **_dates(r[4], r[5]),
                }
    for start in range(0, len(orgs), BATCH):
        batch = orgs[start : start + BATCH]
        loaded = _load(session, batch)
        for org in batch:
            yield from _org_records(loaded[org.id], at)


def _dates(opens_on: dt.date, closes_on: dt.date | None) -> dict[str, Any]:
    return {"opens_on": opens_on.isoformat(), "closes_on": day(closes_on)}


def _load(session: Session, orgs: list[Any]) -> dict[int, _Org]:
    """Every row of these organisations, in a handful of queries."""
    found = {o.id: _Org(tuple(o)[1:]) for o in orgs}
    ids = list(found)

    def rows(query: Any) -> Iterable[Row]:
        return (tuple(r) for r in session.execute(query))

    conv_org = Convention.organisation_id.in_(ids)
    for org_id, *rest in rows(
        select(
            Convention.organisation_id,
            Convention.reference,
            Caf.code,
            Convention.opens_on,
            Convention.closes_on,
        )
        .join(Caf, Caf.id == Convention.caf_id)
        .where(conv_org)
    ):
        found[org_id].conventions.append(tuple(rest))
    for org_id, *rest in rows(
        select(
            Convention.organisation_id,
            Convention.reference,
            Subscription.service,
            Subscription.opens_on,
            Subscription.closes_on,
        )
        .join(Convention, Convention.id == Subscription.convention_id)
        .where(conv_org)
    ):
        found[org_id].subscriptions.append(tuple(rest))
    for org_id, *rest in rows(
        select(
            User.organisation_id,
            User.login,
            User.first_name,
            User.last_name,
            User.email,
            User.opens_on,
            User.closes_on,
        ).where(User.organisation_id.in_(ids))
    ):
        found[org_id].users.append(tuple(rest))
    for org_id, *rest in rows(
        select(
            PartnerAdmin.organisation_id, User.login, PartnerAdmin.opens_on, PartnerAdmin.closes_on
        )
        .join(User, User.id == PartnerAdmin.user_id)
        .where(PartnerAdmin.organisation_id.in_(ids))
    ):
        found[org_id].admins.append(tuple(rest))
    grp_org = Group.organisation_id.in_(ids)
    for org_id, *rest in rows(
        select(
            Group.organisation_id,
            Group.id,
            Group.parent_id,
            Group.code,
            Group.label,
            Convention.reference,
            Group.is_system,
            Group.opens_on,
            Group.closes_on,
        )
        .join(Convention, Convention.id == Group.convention_id)
        .where(grp_org)
    ):
        found[org_id].groups.append(tuple(rest))
    for org_id, *rest in rows(
        select(
            Group.organisation_id,
            Group.code,
            GroupRole.service,
            GroupRole.role,
            GroupRole.opens_on,
            GroupRole.closes_on,
        )
        .join(Group, Group.id == GroupRole.group_id)
        .where(grp_org)
    ):
        found[org_id].roles.append(tuple(rest))
    for org_id, *rest in rows(
        select(
            Group.organisation_id,
            Group.code,
            User.login,
            GroupManager.opens_on,
            GroupManager.closes_on,
        )
        .join(Group, Group.id == GroupManager.group_id)
        .join(User, User.id == GroupManager.user_id)
        .where(grp_org)
    ):
        found[org_id].managers.append(tuple(rest))
    for org_id, *rest in rows(
        select(
            Group.organisation_id, Group.code, User.login, Membership.opens_on, Membership.closes_on
        )
        .join(Group, Group.id == Membership.group_id)
        .join(User, User.id == Membership.user_id)
        .where(grp_org)
    ):
        found[org_id].members.append(tuple(rest))
    for org_id, *rest in rows(
        select(
            User.organisation_id,
            User.login,
            AfasProfile.profile,
            AfasProfile.opens_on,
            AfasProfile.closes_on,
        )
        .join(User, User.id == AfasProfile.user_id)
        .where(User.organisation_id.in_(ids))
    ):
        found[org_id].afas.append(tuple(rest))
    return found


def _tree_order(groups: list[Row]) -> list[Row]:
    """Parents first: roots by code, each followed by its sub-groups by code (depth first);
    groups no root reaches (a corrupt cycle) last, by code."""
    by_id = {g[0]: g for g in groups}
    children: dict[int | None, list[Row]] = defaultdict(list)
    for g in groups:
        children[g[1] if g[1] in by_id else None].append(g)
    out: list[Row] = []
    seen: set[int] = set()
    todo = sorted(children[None], key=lambda g: g[2], reverse=True)
    while todo:
        g = todo.pop()
        if g[0] in seen:
            continue
        seen.add(g[0])
        out.append(g)
        todo.extend(sorted(children.get(g[0], ()), key=lambda c: c[2], reverse=True))
    out.extend(sorted((g for g in groups if g[0] not in seen), key=lambda g: g[2]))
    return out


def _org_records(org: _Org, at: dt.date | None) -> Iterator[dict[str, Any]]:
    code = org.row[0]
    groups = {g[0]: g for g in org.groups}
    code_of = {g[0]: g[2] for g in org.groups}
    subs = [r for r in org.subscriptions if _open(r, at)]
    admins = [r for r in org.admins if _open(r, at)]
    roles = [r for r in org.roles if _open(r, at)]
    managers = [r for r in org.managers if _open(r, at)]
    members = [r for r in org.members if _open(r, at)]
    afas = [r for r in org.afas if _open(r, at)]
    kept_groups = {g[2] for g in org.groups if _open(g, at)}
    kept_groups |= {r[0] for r in (*roles, *managers, *members)}
    by_code = {g[2]: g for g in org.groups}
    for g in list(kept_groups):  # ancestors (R-GRP-1)
        parent = by_code[g][1] if g in by_code else None
        while parent is not None and parent in groups and code_of[parent] not in kept_groups:
            kept_groups.add(code_of[parent])
            parent = groups[parent][1]
    kept_users = {u[0] for u in org.users if _open(u, at)}
    kept_users |= {r[1] for r in (*managers, *members)} | {r[0] for r in (*admins, *afas)}
    kept_convs = {c[0] for c in org.conventions if _open(c, at)}
    kept_convs |= {r[0] for r in subs} | {by_code[g][4] for g in kept_groups if g in by_code}
    if at is not None:  # the subscriptions a kept top-level role rests on (R-GRP-4)
        rests = {(by_code[r[0]][4], r[1]) for r in roles if by_code[r[0]][1] not in groups}
        subs = [r for r in org.subscriptions if _open(r, at) or (r[0], r[1]) in rests]
    yield {
        "record": "organisation",
        "organisation": code,
        "name": org.row[1],
        "kind": org.row[2],
        **_dates(org.row[3], org.row[4]),
    }
    for ref, caf, o, c in sorted(org.conventions, key=_sort_key):
        if ref in kept_convs:
            yield {
                "record": "convention",
                "organisation": code,
                "reference": ref,
                "caf": caf,
                **_dates(o, c),
            }
    for conv, service, o, c in sorted(subs, key=_sort_key):
        yield {
            "record": "subscription",
            "organisation": code,
            "convention": conv,
            "service": service,
            **_dates(o, c),
        }
    for login, first, last, email, o, c in sorted(org.users, key=_sort_key):
        if login in kept_users:
            yield {
                "record": "user",
                "organisation": code,
                "login": login,
                "first_name": first,
                "last_name": last,
                "email": email,
                **_dates(o, c),
            }
    for login, o, c in sorted(admins, key=_sort_key):
        yield {"record": "partner_admin", "organisation": code, "login": login, **_dates(o, c)}
    for _id, parent, gcode, label, conv, system, o, c in _tree_order(org.groups):
        if gcode in kept_groups:
            yield {
                "record": "group",
                "organisation": code,
                "code": gcode,
                "label": label,
                "convention": conv,
                "parent": code_of.get(parent) if parent else None,
                "system": bool(system),
                **_dates(o, c),
            }
    for gcode, service, role, o, c in sorted(roles, key=_sort_key):
        yield {
            "record": "group_role",
            "organisation": code,
            "group": gcode,
            "service": service,
            "role": role,
            **_dates(o, c),
        }
    for gcode, login, o, c in sorted(managers, key=_sort_key):
        yield {
            "record": "group_manager",
            "organisation": code,
            "group": gcode,
            "login": login,
            **_dates(o, c),
        }
    for gcode, login, o, c in sorted(members, key=_sort_key):
        yield {
            "record": "membership",
            "organisation": code,
            "group": gcode,
            "login": login,
            **_dates(o, c),
        }
    for login, profile, o, c in sorted(afas, key=_sort_key):
        yield {
            "record": "afas_profile",
            "organisation": code,
            "login": login,
            "profile": profile,
            **_dates(o, c),
        }
