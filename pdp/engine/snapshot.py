"""What the engine reads from the store: plain rows of one revision (``Snapshot``).

Dates are day ordinals (int) and an open-ended closing is ``FOREVER``, so that the engine
compares integers only. The SQL adapter (``pdp.adapters.sql.snapshot``) fills them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

# What a change touched within its organisation (``Change.scope``); None: all of it.
USER = "user"  # one user (``Change.subject_id``): their row, memberships, Afas profiles
STRUCTURE = "structure"  # the organisation's own rows: itself, subscriptions, partner admins,
# groups, their roles and managers; not its users
GROUP = "group"  # one group (``Change.subject_id``): its row, roles, managers, memberships

# (id, code, name)
OrgRow = tuple[int, str, str]
# (organisation_id, service, caf_code, start, end)
SubscriptionRow = tuple[int, str, str, int, int]
# (id, login, organisation_id or None, start, end)
UserRow = tuple[int, str, int | None, int, int]
# (id, organisation_id, parent_id, code, label, start, end)
GroupRow = tuple[int, int, int | None, str, str, int, int]
# (group_id, service, role, start, end)
GroupRoleRow = tuple[int, str, str, int, int]
# (user_id, group_id, start, end)
MembershipRow = tuple[int, int, int, int]
# (user_id, profile, start, end)
ProfileRow = tuple[int, str, int, int]
# (organisation_id, user_id, start, end): a partner admin designation
AdminRow = tuple[int, int, int, int]
# (group_id, user_id, start, end): a group's manager
ManagerRow = tuple[int, int, int, int]


@dataclass
class Snapshot:
    """Rows of the domain store at one revision; ``organisation_ids`` None means all of them."""

    revision: int
    organisation_ids: frozenset[int] | None = None
    organisations: list[OrgRow] = field(default_factory=list)
    subscriptions: list[SubscriptionRow] = field(default_factory=list)
    users: list[UserRow] = field(default_factory=list)
    groups: list[GroupRow] = field(default_factory=list)
    group_roles: list[GroupRoleRow] = field(default_factory=list)
    memberships: list[MembershipRow] = field(default_factory=list)
    afas_profiles: list[ProfileRow] = field(default_factory=list)
    operators: list[int] = field(default_factory=list)
    partner_admins: list[AdminRow] = field(default_factory=list)
    group_managers: list[ManagerRow] = field(default_factory=list)


class Change(NamedTuple):
    """One entry of the change log: the revision, the organisation (None: every one) and what
    of it changed (``scope`` None: all of it; ``USER`` with the user's id; ``STRUCTURE``)."""

    revision: int
    organisation_id: int | None
    scope: str | None = None
    subject_id: int | None = None


@dataclass
class Delta:
    """Rows of some users (by id), groups (by id) and organisations' structure (no users),
    read after the changes that named them: ``users`` holds the users' rows, memberships, Afas
    profiles, operator flags and managed groups; ``groups`` the groups' rows, roles, managers
    and memberships; ``structure`` the organisations' rows, subscriptions, groups, group roles,
    partner admins and every manager of their groups."""

    user_ids: frozenset[int]
    users: Snapshot
    structure: Snapshot
    groups: Snapshot = field(default_factory=lambda: Snapshot(0))
