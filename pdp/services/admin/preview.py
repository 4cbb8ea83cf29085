"""What a write will do, before it is made: every administrative write can be previewed.

A preview runs the write itself (the same verb, the same checks, in the same transaction, under
the revision lock), then, instead of committing, reads the touched organisations back from that
transaction, indexes them with the engine's own index, compares them with the engine's index as
it stands (the revision just before the write), and rolls everything back: no revision is taken,
no audit record made, nothing written. Exact by construction: the consequences are what the
decision engine would answer after the write, not a second model of them. The write's
authorisation is a logged decision like any other (R-ADM-7); a write the rules refuse is
refused by its preview with the same error.

Compared for every user of the touched organisations, on today and on every later day on which
the write moves a date: the (service, role, Caf) they may use (R-DEC-1, R-DEC-4) and the
features those roles open (R-CAT-1); for every group, whether it is open (with its ancestors,
R-GRP-2) and the roles it holds. Each difference is reported from the first day it holds
(``from``) until the day it stops (``until``; None: for good).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from pdp.core.catalogue import Catalogue
from pdp.engine.entries import OrgPartition
from pdp.engine.index import Index

# Set for the request when it asks for a preview (``?dry_run=true``): AdminService.write then
# rolls back and raises PreviewReady instead of committing.
previewing: ContextVar[bool] = ContextVar("pdp_previewing", default=False)

Kind = Literal["gain", "loss"]


@dataclass(frozen=True, slots=True)
class AccessChange:
    """A user gains or loses a (service, role, Caf), or a feature of a service, from a day."""

    login: str
    change: Kind
    service: str
    role: str | None  # None for a feature
    caf: str | None
    feature: str | None
    start: dt.date
    until: dt.date | None


@dataclass(frozen=True, slots=True)
class GroupChange:
    """A group closes or reopens, or loses or gains a role, from a day."""

    group: str
    change: Literal["closes", "reopens", "loses_role", "gains_role"]
    service: str | None
    role: str | None
    start: dt.date
    until: dt.date | None


@dataclass(frozen=True, slots=True)
class Preview:
    """The consequences of a write that was not made (``applied`` is always False)."""

    action: str
    target: str
    applied: bool
    users: list[AccessChange]
    groups: list[GroupChange]
    summary: str  # in French, for the console's confirmation pages


class PreviewReady(Exception):
    """Raised out of the write's transaction (which rolls it back) with its preview; the API
    answers it 200, the console shows it on its confirmation pages."""

    def __init__(self, preview: Preview) -> None:
        super().__init__(preview.summary)
        self.preview = preview


# -- computing it ---------------------------------------------------------------------------

Item = tuple[str, ...]


def consequences(
    before: Index,
    after: Index,
    organisation_ids: Iterable[int],
    today: dt.date,
    catalogue: Catalogue,
) -> tuple[list[AccessChange], list[GroupChange]]:
    """Compare the touched organisations of ``before`` (the engine's index) and ``after``
    (indexed from the write's transaction) on today and on every later day a date moved."""
    olds = [before.orgs[i] for i in organisation_ids if i in before.orgs]
    news = [after.orgs[i] for i in organisation_ids if i in after.orgs]
    logins = sorted({login for org in olds + news for login in org.logins})
    first = today.toordinal()
    moved = _facts(before, olds) ^ _facts(after, news)
    last = dt.date.max.toordinal()  # "for ever" is a window's end past every real day
    bounds = {d for fact in moved for d in fact[-2:] if isinstance(d, int) and first < d <= last}
    days = sorted({first} | bounds)

    def access(index: Index, login: str, day: int) -> set[Item]:
        items: set[Item] = set()
        for service, (grants, cafs) in index.permissions(login, day).items():
            spec = catalogue.services.get(service)
            for grant in grants:
                items.update(("role", service, grant.role, caf) for caf in cafs)
                for feature in spec.opens.get(grant.role, ()) if spec is not None else ():
                    items.add(("feature", service, feature))
        return items

    users: list[AccessChange] = []
    for login in logins:
        old = {day: access(before, login, day) for day in days}
        new = {day: access(after, login, day) for day in days}
        for item, change, start, until in _runs(days, old.__getitem__, new.__getitem__):
            role, caf, feature = (
                (item[2], item[3], None) if item[0] == "role" else (None, None, item[2])
            )
            users.append(AccessChange(login, change, item[1], role, caf, feature, start, until))
    groups: list[GroupChange] = []
    group_runs = _runs(days, lambda day: _groups(olds, day), lambda day: _groups(news, day))
    # A group that closes takes its roles with it: its closing says so, not one line a role.
    closing = {
        (item[1], start)
        for item, change, start, _ in group_runs
        if item[0] == "open" and change == "loss"
    }
    for item, change, start, until in group_runs:
        if item[0] == "role" and (item[1], start) in closing:
            continue
        if item[0] == "open":
            kind: Literal["closes", "reopens", "loses_role", "gains_role"]
            kind = "closes" if change == "loss" else "reopens"
            groups.append(GroupChange(item[1], kind, None, None, start, until))
        else:
            kind = "loses_role" if change == "loss" else "gains_role"
            groups.append(GroupChange(item[1], kind, item[2], item[3], start, until))
    return users, groups


def _facts(index: Index, orgs: list[OrgPartition]) -> set[tuple[object, ...]]:
    """Every dated record of the organisations, as comparable tuples ending with its window."""
    out: set[tuple[object, ...]] = set()
    for org in orgs:
        for service, subs in org.subscriptions.items():
            out.update(("sub", service, caf, s, e) for caf, s, e in subs)
        for gid, group in org.groups.items():
            out.add(("group", gid, group.start, group.end))
            for service, roles in group.roles.items():
                out.update(("role", gid, service, r, s, e) for r, s, e in roles)
        for login in org.logins:
            user = index.users.get(login)
            if user is None:
                continue
            out.add(("user", login, user.start, user.end))
            out.update(("member", login, g, s, e) for g, s, e in user.memberships)
            out.update(("profile", login, p, s, e) for p, s, e in user.profiles)
    return out


def _groups(orgs: list[OrgPartition], day: int) -> set[Item]:
    """The groups open on ``day`` (with their ancestors: their effective window) and the roles
    they hold then."""
    items: set[Item] = set()
    for org in orgs:
        for group in org.groups.values():
            if not group.start <= day < group.end:
                continue
            items.add(("open", group.code))
            for service, roles in group.roles.items():
                items.update(("role", group.code, service, r) for r, s, e in roles if s <= day < e)
    return items


def _runs(
    days: list[int],
    old: Callable[[int], set[Item]],
    new: Callable[[int], set[Item]],
) -> list[tuple[Item, Kind, dt.date, dt.date | None]]:
    """For each item that differs on some day: each run of days on which it is gained (new
    only) or lost (old only), from its first day until the first day it no longer differs."""
    open_runs: dict[tuple[Item, Kind], int] = {}
    out: list[tuple[Item, Kind, dt.date, dt.date | None]] = []
    loss: Kind = "loss"
    gain: Kind = "gain"
    for day in days:
        was, now = old(day), new(day)
        current = {(i, loss) for i in was - now} | {(i, gain) for i in now - was}
        for key in [k for k in open_runs if k not in current]:
            start = open_runs.pop(key)
            out.append((key[0], key[1], dt.date.fromordinal(start), dt.date.fromordinal(day)))
        for key in current:
            open_runs.setdefault(key, day)
    for (item, change), start in open_runs.items():
        out.append((item, change, dt.date.fromordinal(start), None))
    return sorted(out, key=lambda r: (r[2], r[0], r[1]))


def summary(users: list[AccessChange], groups: list[GroupChange], catalogue: Catalogue) -> str:
    """One French sentence: who loses or gains what, which groups close or lose roles."""
    parts: list[str] = []
    for change, verb in (("loss", "perdront"), ("gain", "obtiendront")):
        by_right: dict[tuple[str, str], set[str]] = {}
        for u in users:
            if u.change == change and u.role is not None:
                by_right.setdefault((u.service, u.role), set()).add(u.login)
        for (service, role), logins in sorted(by_right.items()):
            label = catalogue.services[service].label if service in catalogue.services else service
            who = "1 utilisateur" if len(logins) == 1 else f"{len(logins)} utilisateurs"
            verb_ = verb[:-3] + "a" if len(logins) == 1 else verb
            parts.append(f"{who} {verb_} l'accès à {label} ({role})")
    for g in groups:
        if g.change == "closes":
            parts.append(f"le groupe {g.group} sera clôturé")
        elif g.change == "reopens":
            parts.append(f"le groupe {g.group} sera rouvert")
        elif g.change == "loses_role":
            parts.append(f"le groupe {g.group} perdra le rôle {g.service} {g.role}")
        else:
            parts.append(f"le groupe {g.group} recevra le rôle {g.service} {g.role}")
    if not parts:
        return "Aucun accès ne change."
    text = " ; ".join(parts)
    return text[0].upper() + text[1:] + "."
