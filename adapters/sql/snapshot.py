"""Read the domain store into plain rows for the engine (full or per organisation).

Dates become day ordinals (int) and open-ended closings ``FOREVER``, so that the engine compares
integers only. Windows that must hold together are intersected here: a subscription is usable
only while it, its convention and its organisation are all open (R-CON-2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, Connection, Engine, Select, bindparam, select

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
_Select = Select[*tuple[Any, ...]]
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)


def _in(stmt: _Select, column: Any) -> _Select:
    """``stmt`` restricted to ``column IN :ids``, the list given at each execution."""
    return stmt.where(column.in_(_IDS))


# Every statement is built once, here: built per call, SQLAlchemy's construction of the
# expressions cost three times the queries themselves (a user's rows after an attachment:
# 750 µs, 200 µs with these; the refresh that every other worker pays for each write).
_REVISION = select(PolicyRevision.revision).where(PolicyRevision.id == 1)
_CHANGES = (
    select(
        PolicyChange.revision,
        PolicyChange.organisation_id,
        PolicyChange.scope,
        PolicyChange.subject_id,
    )
    .where(PolicyChange.revision > bindparam("revision"))
    .order_by(PolicyChange.revision)
)
_ORGANISATIONS = select(Organisation.id, Organisation.code, Organisation.name)
_SUBSCRIPTIONS = (
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
_ADMINS = select(
    PartnerAdmin.organisation_id,
    PartnerAdmin.user_id,
    PartnerAdmin.opens_on,
    PartnerAdmin.closes_on,
)
_GROUPS = select(
    Group.id,
    Group.organisation_id,
    Group.parent_id,
    Group.code,
    Group.label,
    Group.opens_on,
    Group.closes_on,
)
_ROLES = select(
    GroupRole.group_id, GroupRole.service, GroupRole.role, GroupRole.opens_on, GroupRole.closes_on
)
_USERS = select(
    User.id, User.login, User.organisation_id, User.opens_on, User.closes_on, User.is_operator
)
_MEMBERS = select(
    Membership.user_id, Membership.group_id, Membership.opens_on, Membership.closes_on
)
_PROFILES = select(
    AfasProfile.user_id, AfasProfile.profile, AfasProfile.opens_on, AfasProfile.closes_on
)
_MANAGERS = select(
    GroupManager.group_id, GroupManager.user_id, GroupManager.opens_on, GroupManager.closes_on
)
_ROLES_BY_ORG = _ROLES.join(Group, GroupRole.group_id == Group.id)
_MEMBERS_BY_ORG = _MEMBERS.join(User, Membership.user_id == User.id)
_PROFILES_BY_ORG = _PROFILES.join(User, AfasProfile.user_id == User.id)
_MANAGERS_BY_ORG = _MANAGERS.join(Group, GroupManager.group_id == Group.id)


class _Query(NamedTuple):
    """A statement whole (every row), and the same restricted to some ids (``:ids``)."""

    whole: _Select
    some: _Select


def _query(stmt: _Select, column: Any) -> _Query:
    return _Query(stmt, _in(stmt, column))


# By organisation (a full load, or some organisations' partitions).
_ORG_ORGANISATIONS = _query(_ORGANISATIONS, Organisation.id)
_ORG_SUBSCRIPTIONS = _query(_SUBSCRIPTIONS, Convention.organisation_id)
_ORG_ADMINS = _query(_ADMINS, PartnerAdmin.organisation_id)
_ORG_GROUPS = _query(_GROUPS, Group.organisation_id)
_ORG_ROLES = _query(_ROLES_BY_ORG, Group.organisation_id)
_ORG_USERS = _query(_USERS, User.organisation_id)
_ORG_MEMBERS = _query(_MEMBERS_BY_ORG, User.organisation_id)
_ORG_PROFILES = _query(_PROFILES_BY_ORG, User.organisation_id)
_ORG_MANAGERS = _query(_MANAGERS_BY_ORG, Group.organisation_id)
# By user, by group (a change): each through the rows' own index, without a join (SQLite
# planned the joins to users as scans).
_USER_USERS = _in(_USERS, User.id)
_USER_MEMBERS = _in(_MEMBERS, Membership.user_id)
_USER_PROFILES = _in(_PROFILES, AfasProfile.user_id)
_USER_MANAGERS = _in(_MANAGERS, GroupManager.user_id)
_GROUP_GROUPS = _in(_GROUPS, Group.id)
_GROUP_ROLES = _in(_ROLES, GroupRole.group_id)
_GROUP_MANAGERS = _in(_MANAGERS, GroupManager.group_id)
_GROUP_MEMBERS = _in(_MEMBERS, Membership.group_id)


def current_revision(conn: Connection) -> int:
    """Return the latest committed policy revision."""
    return int(conn.execute(_REVISION).scalar_one())


def changes_since(conn: Connection, revision: int) -> list[Change]:
    """Return every change after ``revision``, in order (``Change``: the revision, the
    organisation or None, and what of it changed).

    If the store is behind ``revision`` (restored from a backup, or a failover that lost the
    last commits), the answer is one change (current revision, None): reload everything.
    """
    current = current_revision(conn)
    if current < revision:
        return [Change(current, None)]
    rows = conn.execute(_CHANGES, {"revision": revision})
    return [Change(int(r), o, scope, subject) for r, o, scope, subject in rows]


def _rows(conn: Connection, query: _Query | _Select, ids: Sequence[int] | None) -> list[Any]:
    """Run ``query``: whole when ``ids`` is None, else restricted to them (in chunks)."""
    if ids is None:
        assert isinstance(query, _Query)
        return list(conn.execute(query.whole))
    some = query.some if isinstance(query, _Query) else query
    out: list[Any] = []
    for i in range(0, len(ids), _CHUNK):
        out.extend(conn.execute(some, {"ids": ids[i : i + _CHUNK]}))
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
    _people(conn, snap, (_ORG_USERS, _ORG_MEMBERS, _ORG_PROFILES), ids)
    snap.group_managers = _managers(conn, _ORG_MANAGERS, ids)
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
        _people(conn, people, (_USER_USERS, _USER_MEMBERS, _USER_PROFILES), uids)
        people.group_managers = _managers(conn, _USER_MANAGERS, uids)
    structure = Snapshot(revision, organisation_ids=frozenset(oids))
    if oids:
        _structure(conn, structure, oids)
        structure.group_managers = _managers(conn, _ORG_MANAGERS, oids)
    groups = Snapshot(revision)
    if gids:
        _groups(conn, groups, (_GROUP_GROUPS, _GROUP_ROLES), gids)
        groups.group_managers = _managers(conn, _GROUP_MANAGERS, gids)
        groups.memberships = [
            (uid, gid, s.toordinal(), ordinal_end(e))
            for uid, gid, s, e in _rows(conn, _GROUP_MEMBERS, gids)
        ]
    return Delta(frozenset(uids), people, structure, groups)


def _structure(conn: Connection, snap: Snapshot, ids: Sequence[int] | None) -> None:
    """The organisations' own rows: themselves, subscriptions, partner admins, groups, roles."""
    snap.organisations = [
        (int(i), str(c), str(n)) for i, c, n in _rows(conn, _ORG_ORGANISATIONS, ids)
    ]
    for org, service, caf, s1, e1, s2, e2, s3, e3 in _rows(conn, _ORG_SUBSCRIPTIONS, ids):
        start = max(s1.toordinal(), s2.toordinal(), s3.toordinal())
        end = min(ordinal_end(e1), ordinal_end(e2), ordinal_end(e3))
        snap.subscriptions.append((org, service, caf, start, end))
    snap.partner_admins = [
        (org, uid, s.toordinal(), ordinal_end(e))
        for org, uid, s, e in _rows(conn, _ORG_ADMINS, ids)
    ]
    _groups(conn, snap, (_ORG_GROUPS, _ORG_ROLES), ids)


_Queries = tuple[_Query | _Select, ...]


def _groups(conn: Connection, snap: Snapshot, queries: _Queries, ids: Sequence[int] | None) -> None:
    """Groups and their roles (``queries``: by organisation or by group)."""
    groups, roles = queries
    snap.groups = [
        (gid, org, parent, code, label, s.toordinal(), ordinal_end(e))
        for gid, org, parent, code, label, s, e in _rows(conn, groups, ids)
    ]
    snap.group_roles = [
        (gid, svc, role, s.toordinal(), ordinal_end(e))
        for gid, svc, role, s, e in _rows(conn, roles, ids)
    ]


def _people(conn: Connection, snap: Snapshot, queries: _Queries, ids: Sequence[int] | None) -> None:
    """Users, their memberships, Afas profiles and operator flags (``queries``: by organisation
    or by user)."""
    users, members, profiles = queries
    for uid, login, org, s, e, operator in _rows(conn, users, ids):
        snap.users.append((uid, login, org, s.toordinal(), ordinal_end(e)))
        if operator:
            snap.operators.append(uid)
    snap.memberships = [
        (uid, gid, s.toordinal(), ordinal_end(e)) for uid, gid, s, e in _rows(conn, members, ids)
    ]
    snap.afas_profiles = [
        (uid, prof, s.toordinal(), ordinal_end(e)) for uid, prof, s, e in _rows(conn, profiles, ids)
    ]


def _managers(conn: Connection, query: _Query | _Select, ids: Sequence[int] | None) -> list[Any]:
    """Group managers (``query``: by organisation, by user or by group)."""
    return [(gid, uid, s.toordinal(), ordinal_end(e)) for gid, uid, s, e in _rows(conn, query, ids)]


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
