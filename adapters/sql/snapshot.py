"""Read the domain store into plain rows for the engine (full or per organisation).

Dates become day ordinals (int) and open-ended closings ``FOREVER``, so that the engine compares
integers only. Windows that must hold together are intersected here: a subscription is usable
only while it, its convention and its organisation are all open (R-CON-2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, select

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
    PolicyChange,
    PolicyRevision,
    Subscription,
    User,
)
from pdp.core.clock import ordinal_end
from pdp.engine.snapshot import Change, Delta, Snapshot

_CHUNK = 500


def current_revision(conn: Connection) -> int:
    """Return the latest committed policy revision."""
    return int(
        conn.execute(select(PolicyRevision.revision).where(PolicyRevision.id == 1)).scalar_one()
    )


def changes_since(conn: Connection, revision: int) -> list[Change]:
    """Return every change after ``revision``, in order (``Change``: the revision, the
    organisation or None, and what of it changed).

    If the store is behind ``revision`` (restored from a backup, or a failover that lost the
    last commits), the answer is one change (current revision, None): reload everything.
    """
    current = current_revision(conn)
    if current < revision:
        return [Change(current, None)]
    stmt = (
        select(
            PolicyChange.revision,
            PolicyChange.organisation_id,
            PolicyChange.scope,
            PolicyChange.subject_id,
        )
        .where(PolicyChange.revision > revision)
        .order_by(PolicyChange.revision)
    )
    return [Change(int(r), o, scope, subject) for r, o, scope, subject in conn.execute(stmt)]


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _rows(conn: Connection, stmt: Any, column: Any, ids: Sequence[int] | None) -> list[Any]:
    """Run ``stmt``, restricted to ``column IN ids`` (in chunks) when ids are given."""
    if ids is None:
        return list(conn.execute(stmt))
    out: list[Any] = []
    for part in _chunks(ids):
        out.extend(conn.execute(stmt.where(column.in_(part))))
    return out


def load_snapshot(conn: Connection, organisation_ids: Iterable[int] | None = None) -> Snapshot:
    """Read every grant-bearing row (of the given organisations only, when given).

    The revision is read first: rows read afterwards are at least that recent, so a change
    noticed later can only make the engine reload, never miss data.
    """
    ids = None if organisation_ids is None else sorted(set(organisation_ids))
    snap = Snapshot(
        revision=current_revision(conn),
        organisation_ids=None if ids is None else frozenset(ids),
    )
    _structure(conn, snap, ids)
    _people(conn, snap, User.organisation_id, ids)
    snap.group_managers = _managers(conn, Group.organisation_id, ids)
    return snap


def load_delta(
    conn: Connection,
    user_ids: Iterable[int],
    organisation_ids: Iterable[int],
    group_ids: Iterable[int] = (),
) -> Delta:
    """Read the rows of the given users (row, memberships, Afas profiles, operator flag, the
    groups they manage), of the given groups (row, roles, managers, memberships) and the
    structure of the given organisations (``Delta``)."""
    uids = sorted(set(user_ids))
    oids = sorted(set(organisation_ids))
    gids = sorted(set(group_ids))
    revision = current_revision(conn)
    people = Snapshot(revision)
    if uids:
        _people(conn, people, User.id, uids)
        people.group_managers = _managers(conn, GroupManager.user_id, uids)
    structure = Snapshot(revision, organisation_ids=frozenset(oids))
    if oids:
        _structure(conn, structure, oids)
        structure.group_managers = _managers(conn, Group.organisation_id, oids)
    groups = Snapshot(revision)
    if gids:
        _groups(conn, groups, Group.id, gids)
        groups.group_managers = _managers(conn, GroupManager.group_id, gids)
        members = select(
            Membership.user_id, Membership.group_id, Membership.opens_on, Membership.closes_on
        )
        groups.memberships = [
            (uid, gid, s.toordinal(), ordinal_end(e))
            for uid, gid, s, e in _rows(conn, members, Membership.group_id, gids)
        ]
    return Delta(frozenset(uids), people, structure, groups)


def _structure(conn: Connection, snap: Snapshot, ids: Sequence[int] | None) -> None:
    """The organisations' own rows: themselves, subscriptions, partner admins, groups, roles."""
    snap.organisations = [
        (int(i), str(c), str(n))
        for i, c, n in _rows(
            conn,
            select(Organisation.id, Organisation.code, Organisation.name),
            Organisation.id,
            ids,
        )
    ]
    subs = (
        select(
            Convention.organisation_id,
            Subscription.service,
            Caf.code,
            Subscription.opens_on,
            Subscription.closes_on,
            Convention.opens_on,
            Convention.closes_on,
            Organisation.opens_on,
            Organisation.closes_on,
        )
        .join(Convention, Subscription.convention_id == Convention.id)
        .join(Caf, Convention.caf_id == Caf.id)
        .join(Organisation, Convention.organisation_id == Organisation.id)
    )
    for org, service, caf, s1, e1, s2, e2, s3, e3 in _rows(
        conn, subs, Convention.organisation_id, ids
    ):
        start = max(s1.toordinal(), s2.toordinal(), s3.toordinal())
        end = min(ordinal_end(e1), ordinal_end(e2), ordinal_end(e3))
        snap.subscriptions.append((org, service, caf, start, end))

    admins = select(
        PartnerAdmin.organisation_id,
        PartnerAdmin.user_id,
        PartnerAdmin.opens_on,
        PartnerAdmin.closes_on,
    )
    snap.partner_admins = [
        (org, uid, s.toordinal(), ordinal_end(e))
        for org, uid, s, e in _rows(conn, admins, PartnerAdmin.organisation_id, ids)
    ]
    _groups(conn, snap, Group.organisation_id, ids)


def _groups(conn: Connection, snap: Snapshot, column: Any, ids: Sequence[int] | None) -> None:
    """Groups and their roles, restricted by ``column IN ids`` (Group.organisation_id or
    Group.id)."""
    groups = select(
        Group.id,
        Group.organisation_id,
        Group.parent_id,
        Group.code,
        Group.label,
        Group.opens_on,
        Group.closes_on,
    )
    snap.groups = [
        (gid, org, parent, code, label, s.toordinal(), ordinal_end(e))
        for gid, org, parent, code, label, s, e in _rows(conn, groups, column, ids)
    ]
    roles = select(
        GroupRole.group_id,
        GroupRole.service,
        GroupRole.role,
        GroupRole.opens_on,
        GroupRole.closes_on,
    )
    if column is Group.id:  # by group: through the roles' own group_id index, no join
        column = GroupRole.group_id
    else:
        roles = roles.join(Group, GroupRole.group_id == Group.id)
    snap.group_roles = [
        (gid, svc, role, s.toordinal(), ordinal_end(e))
        for gid, svc, role, s, e in _rows(conn, roles, column, ids)
    ]


def _people(conn: Connection, snap: Snapshot, column: Any, ids: Sequence[int] | None) -> None:
    """Users (restricted by ``column IN ids``: User.organisation_id or User.id), their
    memberships, Afas profiles and operator flags. By user id, the rows are found through their
    own ``user_id`` index, without the join to users (SQLite planned that join as a scan)."""
    by_user = column is User.id
    users = select(
        User.id, User.login, User.organisation_id, User.opens_on, User.closes_on, User.is_operator
    )
    for uid, login, org, s, e, operator in _rows(conn, users, column, ids):
        snap.users.append((uid, login, org, s.toordinal(), ordinal_end(e)))
        if operator:
            snap.operators.append(uid)
    members = select(
        Membership.user_id, Membership.group_id, Membership.opens_on, Membership.closes_on
    )
    if not by_user:
        members = members.join(User, Membership.user_id == User.id)
    snap.memberships = [
        (uid, gid, s.toordinal(), ordinal_end(e))
        for uid, gid, s, e in _rows(conn, members, Membership.user_id if by_user else column, ids)
    ]
    profiles = select(
        AfasProfile.user_id, AfasProfile.profile, AfasProfile.opens_on, AfasProfile.closes_on
    )
    if not by_user:
        profiles = profiles.join(User, AfasProfile.user_id == User.id)
    snap.afas_profiles = [
        (uid, prof, s.toordinal(), ordinal_end(e))
        for uid, prof, s, e in _rows(
            conn, profiles, AfasProfile.user_id if by_user else column, ids
        )
    ]


def _managers(conn: Connection, column: Any, ids: Sequence[int] | None) -> list[Any]:
    """Group managers, restricted by ``column IN ids`` (Group.organisation_id or user_id)."""
    managers = select(
        GroupManager.group_id, GroupManager.user_id, GroupManager.opens_on, GroupManager.closes_on
    )
    if column is not GroupManager.user_id and column is not GroupManager.group_id:
        managers = managers.join(Group, GroupManager.group_id == Group.id)
    return [
        (gid, uid, s.toordinal(), ordinal_end(e))
        for gid, uid, s, e in _rows(conn, managers, column, ids)
    ]


class SqlSnapshotSource:
    """Reads snapshots and the change log from a SQL database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def load(self, organisation_ids: Iterable[int] | None = None) -> Snapshot:
        """Read a consistent snapshot (one REPEATABLE READ transaction where supported)."""
        conn_engine: Engine = self._engine
        if self._engine.dialect.name == "postgresql":
            conn_engine = self._engine.execution_options(isolation_level="REPEATABLE READ")
        with conn_engine.connect() as conn, conn.begin():
            return load_snapshot(conn, organisation_ids)

    def changes_since(self, revision: int) -> list[Change]:
        """Return the changes after ``revision``, oldest first."""
        with self._engine.connect() as conn:
            return changes_since(conn, revision)

    def load_delta(
        self,
        user_ids: Iterable[int],
        organisation_ids: Iterable[int],
        group_ids: Iterable[int] = (),
    ) -> Delta:
        """Read some users' and groups' rows and some organisations' structure (one
        transaction, REPEATABLE READ where supported, as ``load``)."""
        conn_engine: Engine = self._engine
        if self._engine.dialect.name == "postgresql":
            conn_engine = self._engine.execution_options(isolation_level="REPEATABLE READ")
        with conn_engine.connect() as conn, conn.begin():
            return load_delta(conn, user_ids, organisation_ids, group_ids)
