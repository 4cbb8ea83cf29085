"""A reference evaluator of R-DEC-1, written from its text (docs/rules.md) alone.

It knows nothing of Casbin, of the engine's index or of the SQL store: the world is a handful of
plain frozen dataclasses, and ``decide`` reads R-DEC-1 clause by clause:

    User U may use service S (optionally with role R, optionally for Caf C) on day d iff:
    U is open on d; U's organisation has an open subscription to S (R-CON-2; with Caf C when
    given); and U has an open membership on d in a group that is open on d (and all its
    ancestors are open) and that holds (S, R) — any role of S when R is omitted — or, for afas,
    an Afas profile.

with R-TIME-1 for "open" (opening ≤ d < closing, no closing = open for ever), R-CON-2 for an
open subscription (open, under an open convention), R-CON-3 for the Cafs (those of the open
conventions under which the service is subscribed) and R-AFAS-1 for the Afas profiles (a
per-user profile P is the user's own (afas, P): it grants afas when no role is asked, or when P
itself is asked).

Besides the boolean, ``decide`` returns the set of reason codes (R-DEC-3) the rule text allows
for the answer. The clauses are read in the order R-DEC-1 states them (user, subscription,
membership/group/role), so the first failing clause names the denial. Where the text leaves the
code open, the set holds every defensible code (see ``_membership_reasons``), and a test
compares the service's code against the set: a singleton is a strict comparison.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

AFAS = "afas"  # the one service with per-user profiles (R-AFAS-1)

ALLOWED = "ALLOWED"
UNKNOWN_USER = "UNKNOWN_USER"
USER_NOT_YET_OPEN = "USER_NOT_YET_OPEN"
USER_CLOSED = "USER_CLOSED"
NO_ORGANISATION = "NO_ORGANISATION"
NO_SUBSCRIPTION = "NO_SUBSCRIPTION"
CAF_NOT_SUBSCRIBED = "CAF_NOT_SUBSCRIBED"
NO_MEMBERSHIP = "NO_MEMBERSHIP"
GROUP_CLOSED = "GROUP_CLOSED"
ROLE_NOT_GRANTED = "ROLE_NOT_GRANTED"

# Every outcome a world of this module can produce (ENGINE_ERROR and POLICY_UNAVAILABLE are
# failures of the machine, not of the rules: R-DEC-2).
OUTCOMES = (
    ALLOWED,
    UNKNOWN_USER,
    USER_NOT_YET_OPEN,
    USER_CLOSED,
    NO_ORGANISATION,
    NO_SUBSCRIPTION,
    CAF_NOT_SUBSCRIBED,
    NO_MEMBERSHIP,
    GROUP_CLOSED,
    ROLE_NOT_GRANTED,
)


@dataclass(frozen=True)
class Window:
    """Opening and optional closing day (R-TIME-1)."""

    opens: dt.date
    closes: dt.date | None = None

    def open_on(self, day: dt.date) -> bool:
        """R-TIME-1: open on d when opening ≤ d and (no closing date or d < closing)."""
        return self.opens <= day and (self.closes is None or day < self.closes)


@dataclass(frozen=True)
class Convention:
    """A convention of ``organisation`` with the Caf ``caf`` (R-CON-1)."""

    reference: str
    organisation: str
    caf: str
    window: Window


@dataclass(frozen=True)
class Subscription:
    """A subscription to ``service`` under the convention ``convention`` (R-CON-1)."""

    convention: str
    service: str
    window: Window


@dataclass(frozen=True)
class User:
    """A user of ``organisation`` (None: a Caf operator, of no organisation)."""

    login: str
    organisation: str | None
    window: Window


@dataclass(frozen=True)
class Group:
    """A group (``parent`` None) or sub-group; ``code`` is unique in the world."""

    code: str
    organisation: str
    convention: str
    parent: str | None
    window: Window


@dataclass(frozen=True)
class Membership:
    """The user ``login`` in the group ``group`` (R-MEM-1)."""

    login: str
    group: str
    window: Window


@dataclass(frozen=True)
class GroupRole:
    """The group ``group`` holds (``service``, ``role``) (R-GRP-4)."""

    group: str
    service: str
    role: str
    window: Window


@dataclass(frozen=True)
class AfasProfile:
    """A per-user Afas profile (R-AFAS-1)."""

    login: str
    profile: str
    window: Window


@dataclass(frozen=True)
class World:
    """Everything R-DEC-1 reads. Organisations are open for ever (R-DEC-1 does not read them)."""

    organisations: tuple[str, ...] = ()
    cafs: tuple[str, ...] = ()
    conventions: tuple[Convention, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()
    memberships: tuple[Membership, ...] = ()
    group_roles: tuple[GroupRole, ...] = ()
    afas_profiles: tuple[AfasProfile, ...] = ()
    _users: dict[str, User] = field(default_factory=dict, init=False, compare=False, repr=False)
    _groups: dict[str, Group] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._users.update((u.login, u) for u in self.users)
        self._groups.update((g.code, g) for g in self.groups)

    def user(self, login: str) -> User | None:
        """The user named ``login``, or None."""
        return self._users.get(login)

    def group(self, code: str) -> Group:
        """The group of code ``code`` (KeyError when none)."""
        return self._groups[code]


@dataclass(frozen=True)
class Verdict:
    """The reference answer: ``allowed``, and the reason codes the rule text allows."""

    allowed: bool
    reasons: frozenset[str]


def _verdict(*reasons: str) -> Verdict:
    return Verdict(reasons == (ALLOWED,), frozenset(reasons))


# -- the clauses of R-DEC-1 ------------------------------------------------------------------


def open_cafs(world: World, organisation: str, service: str, day: dt.date) -> set[str]:
    """R-CON-2, R-CON-3: the Cafs of the organisation's open conventions under which ``service``
    has an open subscription on ``day`` (empty: the service is not usable)."""
    conventions = {
        c.reference: c
        for c in world.conventions
        if c.organisation == organisation and c.window.open_on(day)
    }
    return {
        conventions[s.convention].caf
        for s in world.subscriptions
        if s.service == service and s.convention in conventions and s.window.open_on(day)
    }


def group_and_ancestors_open(world: World, code: str, day: dt.date) -> bool:
    """R-DEC-1 (and R-GRP-2): the group is open on ``day``, and so is every ancestor."""
    seen: set[str] = set()
    current: str | None = code
    while current is not None:
        if current in seen:  # a cycle is no tree: nothing of it is open
            return False
        seen.add(current)
        group = world.group(current)
        if not group.window.open_on(day):
            return False
        current = group.parent
    return True


def _holds(world: World, group: str, service: str, role: str | None, day: dt.date) -> bool:
    """The group holds (S, R) on ``day`` — any role of S when R is omitted (R-DEC-1)."""
    return any(
        r.group == group
        and r.service == service
        and (role is None or r.role == role)
        and r.window.open_on(day)
        for r in world.group_roles
    )


def _has_profile(world: World, login: str, role: str | None, day: dt.date) -> bool:
    """R-AFAS-1: an open Afas profile of the user that is the role asked (any when omitted)."""
    return any(
        p.login == login and (role is None or p.profile == role) and p.window.open_on(day)
        for p in world.afas_profiles
    )


def _membership_reasons(
    world: World, login: str, service: str, role: str | None, day: dt.date
) -> Verdict:
    """The third clause of R-DEC-1, and the denial code when it fails (R-DEC-3).

    - ALLOWED: an open membership in a group open with all its ancestors, holding (S, R); or,
      for afas, an open Afas profile that is (afas, R).
    - GROUP_CLOSED: a group the user is (openly) a member of holds (S, R) on the day, but it or
      an ancestor is closed. When, besides, the user is in no group open with its ancestors,
      NO_MEMBERSHIP is as true: both are accepted.
    - NO_MEMBERSHIP: the user is in no open group on the day ("n'appartient à aucun groupe
      ouvert"). A group that is open but under a closed ancestor is "open" for one reading and
      not for the other (R-DEC-1 says "open (and all its ancestors are open)"): then
      ROLE_NOT_GRANTED is accepted too; so is it when an Afas profile makes the user hold some
      afas role without any group.
    - ROLE_NOT_GRANTED: the user is in an open group (open ancestors) but none holds (S, R).
    """
    groups = [m.group for m in world.memberships if m.login == login and m.window.open_on(day)]
    active = [g for g in groups if group_and_ancestors_open(world, g, day)]
    if any(_holds(world, g, service, role, day) for g in active):
        return _verdict(ALLOWED)
    if service == AFAS and _has_profile(world, login, role, day):
        return _verdict(ALLOWED)
    codes: set[str] = set()
    # Every holder among ``groups`` is closed here (an active one would have allowed).
    closed_holder = any(_holds(world, g, service, role, day) for g in groups)
    if closed_holder:
        codes.add(GROUP_CLOSED)
    if not active:
        codes.add(NO_MEMBERSHIP)
        half_open = any(world.group(g).window.open_on(day) for g in groups)
        profiled = service == AFAS and _has_profile(world, login, None, day)
        if not closed_holder and (half_open or profiled):
            codes.add(ROLE_NOT_GRANTED)
    elif not closed_holder:
        codes.add(ROLE_NOT_GRANTED)
    return _verdict(*sorted(codes))


def decide(
    world: World,
    login: str,
    service: str,
    role: str | None = None,
    caf: str | None = None,
    day: dt.date | None = None,
) -> Verdict:
    """R-DEC-1 clause by clause; the first clause that fails names the denial (R-DEC-3).
    Deny by default (R-DEC-2): every path that does not reach the end denies."""
    if day is None:
        raise ValueError("the reference needs an explicit day")
    user = world.user(login)
    if user is None:
        return _verdict(UNKNOWN_USER)
    # "U is open on d" (R-TIME-1, R-USR-4).
    if not user.window.open_on(day):
        codes = []
        if day < user.window.opens:
            codes.append(USER_NOT_YET_OPEN)
        if user.window.closes is not None and day >= user.window.closes:
            codes.append(USER_CLOSED)  # both, for an empty window: the text does not choose
        return _verdict(*codes)
    # "U's organisation has an open subscription to S (R-CON-2; with Caf C when given)".
    if user.organisation is None:
        return _verdict(NO_ORGANISATION)
    cafs = open_cafs(world, user.organisation, service, day)
    if not cafs:
        return _verdict(NO_SUBSCRIPTION)
    if caf is not None and caf not in cafs:
        return _verdict(CAF_NOT_SUBSCRIBED)
    # "and U has an open membership on d in a group ... that holds (S, R)".
    return _membership_reasons(world, login, service, role, day)


Path = tuple[str | None, str, str, str]  # (group or None, service, role, "group"/"afas_profile")


def paths(world: World, login: str, service: str, role: str | None, day: dt.date) -> set[Path]:
    """R-DEC-3: the paths that grant (S, R) on ``day`` — user → group → role, through an open
    membership in a group open with its ancestors, or an Afas profile — whatever the user's own
    dates and the subscriptions (``decide`` checks those)."""
    found: set[Path] = set()
    for m in world.memberships:
        if m.login != login or not m.window.open_on(day):
            continue
        if not group_and_ancestors_open(world, m.group, day):
            continue
        found.update(
            (m.group, service, r.role, "group")
            for r in world.group_roles
            if r.group == m.group
            and r.service == service
            and (role is None or r.role == role)
            and r.window.open_on(day)
        )
    if service == AFAS:
        found.update(
            (None, AFAS, p.profile, "afas_profile")
            for p in world.afas_profiles
            if p.login == login and (role is None or p.profile == role) and p.window.open_on(day)
        )
    return found


def allowed(
    world: World,
    login: str,
    service: str,
    role: str | None = None,
    caf: str | None = None,
    day: dt.date | None = None,
) -> bool:
    """Whether R-DEC-1 lets ``login`` use ``service`` (with ``role``, for ``caf``) on ``day``."""
    return decide(world, login, service, role, caf, day).allowed


def permissions(
    world: World, login: str, day: dt.date, catalogue: Mapping[str, Iterable[str]]
) -> dict[str, tuple[set[str], set[str]]]:
    """R-DEC-4 from R-DEC-1: for each service of ``catalogue`` (service → every role and
    profile it accepts) that the user may use on ``day``, the roles allowed and the Cafs (R-CON-3).
    """
    found: dict[str, tuple[set[str], set[str]]] = {}
    for service, roles in catalogue.items():
        if not allowed(world, login, service, None, None, day):
            continue
        user = world.user(login)
        assert user is not None and user.organisation is not None
        granted = {r for r in roles if allowed(world, login, service, r, None, day)}
        found[service] = (granted, open_cafs(world, user.organisation, service, day))
    return found
