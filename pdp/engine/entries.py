"""The entries an ``Index`` is made of: groups, users and organisation partitions."""

from __future__ import annotations

from dataclasses import dataclass, field

Window = tuple[int, int]  # [start, end) in day ordinals
# A grant path's fields (service, role, group, source): a ``Grant``, or the plain tuple a user
# decoded from the users table holds (``pdp.engine.users_table``); made a ``Grant`` where an
# answer carries it (``tuple.__new__(Grant, path)``), so a check builds only those it returns.
GrantPath = tuple[str, str, str | None, str]
GrantEntry = tuple[int, int, str, GrantPath]  # (start, end, role, the grant path)


@dataclass(slots=True)
class GroupEntry:
    """A group with its effective window (itself ∩ every ancestor), its dated roles, and its
    own window (kept so that a change to one group recomputes the effective windows in memory,
    ``pdp.engine.index_delta``)."""

    id: int
    code: str
    label: str
    parent_id: int | None
    start: int
    end: int
    roles: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)
    own_start: int = 0
    own_end: int = 0


@dataclass(slots=True)
class UserEntry:
    """A user, their window, their memberships (group id, start, end) and Afas profiles."""

    id: int
    login: str
    organisation_id: int | None
    start: int
    end: int
    memberships: list[tuple[int, int, int]] = field(default_factory=list)
    profiles: list[tuple[str, int, int]] = field(default_factory=list)
    org: OrgPartition | None = None
    is_operator: bool = False
    # Groups this user manages: (group id, start, end) (R-ADM-3); a list once there is one.
    managed: list[tuple[int, int, int]] | tuple[()] = ()
    # Per service: (start, end, role, grant), the membership, group (with its ancestors) and
    # role windows already intersected, in membership order, then Afas profiles.
    grants: dict[str, list[GrantEntry]] = field(default_factory=dict)


@dataclass(slots=True)
class OrgPartition:
    """Everything of one organisation (one Casbin domain)."""

    id: int
    code: str
    name: str
    groups: dict[int, GroupEntry] = field(default_factory=dict)
    subscriptions: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)
    logins: list[str] = field(default_factory=list)
    group_by_code: dict[str, int] = field(default_factory=dict)
    # Partner admin designations: (user id, start, end) (R-ADM-1).
    admins: list[tuple[int, int, int]] = field(default_factory=list)
