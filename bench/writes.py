"""Latency of typical administration writes, and the time until decisions see them.

The writes run through the real code path minus HTTP: ``pdp.services.admin.users.attach``,
``pdp.services.admin.grants.assign_role`` and ``close_group`` on an ``AdminService`` built as
``pdp.web.app.create_app`` builds it, acting as an open partner admin of the organisation, so that
authorisation by the engine (R-ADM-7), the transaction, the commit and the synchronous
``PolicyEngine.notify`` refresh all run. The engine is the real ``PolicyEngine`` with only
``notify`` timed (``_TimedEngine``): "of which engine refresh" is that call, i.e. the part after
the commit, in which the engine reads and applies just what the change log names (a user, a
group: ``pdp.engine.index_delta``).

Fixtures are not timed. Groups, sub-groups and roles are made by the partner admin through the
same service; the members of each group to close are inserted in one transaction with
``record_change`` like ``bench.generate`` (open-ended open users of the organisation, R-MEM-1):
hundreds of admin writes per repeat would only slow the run down. Closes are fewer
(``heavy_repeats``): each leaves ``members`` closed memberships that every later refresh of the
organisation reads again (history is kept, R-TIME-2), so the organisation grows as they run.

"Visible to decisions": on the writing instance the check right after the write must already
reflect it. Another worker of the same server shares the ``_written`` revision (shared memory
made before gunicorn forks): a second ``PolicyEngine`` loaded beforehand, sharing it, pays one
``refresh()`` on its next request; that refresh and a check are timed. Another server does the
same work at its next poll, so it sees the change within ``refresh_interval`` + that time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from bench.run import _lat, _us
from bench.stats import summary
from pdp.adapters.sql.database import make_engine, record_change
from pdp.adapters.sql.models import Convention, Group, Membership, Organisation, Subscription, User
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.core.clock import FOREVER
from pdp.core.config import Settings
from pdp.engine.decision import Query
from pdp.engine.policy import PolicyEngine
from pdp.records.audit_trail import AuditChain, AuditReader
from pdp.records.decision_log import MemoryLog
from pdp.services.admin import grants, groups, store, users
from pdp.services.admin.requests import GroupNew, MembershipNew, RoleRef, UserRef
from pdp.services.admin.responses import GroupEdited, MembershipWritten, RoleWritten
from pdp.services.admin.service import AdminService

Pair = tuple[str, str]
Timed = MembershipWritten | RoleWritten | GroupEdited  # what the timed writes answer


class _TimedEngine(PolicyEngine):
    """The real PolicyEngine; ``notify`` (the synchronous refresh after a commit) is timed."""

    last_notify_ns = 0

    def notify(self, revision: int) -> None:
        """Apply the write at once, as ``PolicyEngine.notify`` does, and time it."""
        started = time.perf_counter_ns()
        super().notify(revision)
        self.last_notify_ns = time.perf_counter_ns() - started


def _choose(svc: AdminService, need: int) -> tuple[int, str, str, str, list[Pair], list[str]]:
    """The largest organisation (open-ended open users) with an open partner admin and an open
    convention subscribing services with two roles or more: (id, code, admin, convention,
    pairs ordered by how few users hold them, those users)."""
    index, today = svc.engine.index, svc.today()
    day = today.toordinal()
    sized = []
    for part in index.orgs.values():
        people = [index.users[login] for login in part.logins]
        ok = [u.login for u in people if u.start <= day and u.end == FOREVER]
        login_of = {u.id: u.login for u in people if u.start <= day < u.end}
        admins = [login_of[a] for a, s, e in part.admins if s <= day < e and a in login_of]
        if admins and len(ok) >= need:
            sized.append((len(ok), part.id, part.code, admins[0], ok))
    with Session(svc.db) as s:
        for _n, org_id, code, admin, ok in sorted(sized, reverse=True):
            org = s.get(Organisation, org_id)
            if org is None or not store.is_open(org, today):
                continue
            for conv in s.scalars(select(Convention).where(Convention.organisation_id == org_id)):
                subs = s.scalars(select(Subscription).where(Subscription.convention_id == conv.id))
                pairs = [
                    (sub.service, role)
                    for sub in subs
                    if store.is_open(sub, today) and sub.service in svc.catalogue.services
                    for role in svc.catalogue.services[sub.service].roles
                ]
                if store.is_open(conv, today) and len(pairs) >= 2:
                    held = {p: sum(_allowed(svc.engine, u, p) for u in ok) for p in pairs}
                    pairs.sort(key=lambda p: held[p])
                    return org_id, code, admin, conv.reference, pairs, ok
    raise ValueError(f"no organisation with an open partner admin and {need} open users")


def _allowed(engine: PolicyEngine, login: str, pair: Pair) -> bool:
    return engine.check(Query(login, *pair)).allowed


def _size(db: SqlEngine, org_id: int) -> dict[str, int]:
    """Rows of the organisation (any dates): what every refresh of its partition reads."""
    mine = User.organisation_id == org_id
    with db.connect() as c:
        return {
            name: int(c.scalar(select(func.count()).select_from(q.subquery())) or 0)
            for name, q in (
                ("users", select(User.id).where(mine)),
                ("groups", select(Group.id).where(Group.organisation_id == org_id)),
                ("memberships", select(Membership.id).join(User).where(mine)),
            )
        }


def measure_writes(
    database_url: str,
    repeats: int = 20,
    seed: int = 1,
    *,
    members: int = 200,
    descendants: int = 50,
    close_subgroups: int = 2,
    heavy_repeats: int = 5,
) -> dict[str, Any]:
    """Time attach and assign a role to a group with ``descendants`` sub-groups (``repeats``
    times each), close a group with ``members`` members and ``close_subgroups`` sub-groups
    (``min(repeats, heavy_repeats)`` times), on a generated database that this call modifies
    (pass a copy); see the module for what is timed and how."""
    settings = Settings.from_env(database_url=database_url)
    catalogue, db = load_catalogue(), make_engine(database_url)
    kw: dict[str, Any] = {"refresh_interval": settings.refresh_interval}
    kw["max_staleness"] = settings.max_staleness
    engine = _TimedEngine(SqlSnapshotSource(db), catalogue, **kw)
    other = PolicyEngine(SqlSnapshotSource(db), catalogue, **kw)
    other._written = engine._written  # two workers of one server: one shared value
    engine.load()
    other.load()
    audit = AuditReader(db)
    svc = AdminService(db, engine, catalogue, AuditChain(), MemoryLog(), None)
    org_id, org, admin, convention, pairs, open_users = _choose(svc, members)
    p1, p2 = pairs[0], pairs[1]
    pool = [
        u for u in open_users if u != admin and not any(_allowed(engine, u, p) for p in pairs[:2])
    ]
    random.Random(seed).shuffle(pool)
    if len(pool) < repeats + 2:
        raise ValueError(f"{org}: {len(pool)} users without {p1} and {p2}, {repeats + 2} needed")
    attached, tree_user, close_user = pool[:repeats], pool[repeats], pool[repeats + 1]
    info = {"code": org, "partner_admin": admin, "convention": convention, **_size(db, org_id)}
    info |= {"open_ended_users": len(open_users), "roles": [":".join(p1), ":".join(p2)]}
    manager = UserRef(login=admin)

    def group(code: str, parent: str | None) -> None:
        """Create a group (managed by the admin) holding p1, through the service."""
        conv = None if parent else convention
        data = GroupNew(code=code, label=code, convention=conv, parent=parent, manager=manager)
        groups.create_group(svc, admin, org, data)
        grants.assign_role(svc, admin, org, code, RoleRef(service=p1[0], role=p1[1]))

    figures: dict[str, Any] = {"repeats": repeats, "heavy_repeats": min(repeats, heavy_repeats)}
    figures |= {"members": members, "descendants": descendants}
    same_ns: list[int] = []
    seen = {"n": 0, "writer": 0, "other_worker": 0}

    def timed(name: str, write: Callable[[], Timed], probe: Query, before: bool) -> int:
        """One timed write: decisions before, the write, the check on each instance after."""
        engine.refresh(force=True)
        other.refresh(force=True)
        flips = figures.setdefault(f"{name}_flips", dict.fromkeys(seen, 0))
        was = engine.check(probe).allowed == before and other.check(probe).allowed == before
        started = time.perf_counter_ns()
        revision = write().revision
        figures.setdefault(name, []).append(time.perf_counter_ns() - started)
        figures.setdefault(f"{name}_refresh", []).append(engine.last_notify_ns)
        started = time.perf_counter_ns()
        mine = engine.check(probe).allowed
        same_ns.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        other.refresh()  # not forced: triggered by the shared revision, as on a real worker
        theirs = other.check(probe).allowed
        figures.setdefault(f"{name}_other", []).append(time.perf_counter_ns() - started)
        flips["n"] += 1
        flips["writer"] += was and mine != before
        flips["other_worker"] += was and theirs != before and other.revision == revision
        return revision

    # (a) attach a user to a group holding p1.
    group("BW-A", None)
    for login in attached:
        attach = partial(users.attach, svc, admin, org, login, MembershipNew(group="BW-A"))
        timed("attach", attach, Query(login, *p1), False)

    # (b) a role for a top-level group with `descendants` sub-groups (5 children, the rest below).
    group("BW-T", None)
    children = [f"BW-T.{i}" for i in range(min(5, descendants))]
    for child in children:
        group(child, "BW-T")
    for i in range(descendants - len(children)):
        group(f"BW-T.{i % len(children)}.{i}", children[i % len(children)])
    users.attach(svc, admin, org, tree_user, MembershipNew(group="BW-T"))
    role = RoleRef(service=p2[0], role=p2[1])
    for _ in range(repeats):
        assign = partial(grants.assign_role, svc, admin, org, "BW-T", role)
        timed("assign_role_50", assign, Query(tree_user, *p2), False)
        grants.remove_role(svc, admin, org, "BW-T", *p2)  # undone, not timed

    # (c) close a group of `members` members and `close_subgroups` sub-groups, fresh each time.
    chosen = [close_user, *[u for u in open_users if u != close_user][: members - 1]]
    ids = [engine.index.users[login].id for login in chosen]
    cascade = 0  # closes that closed every sub-group and detached every member (R-GRP-2)
    for k in range(figures["heavy_repeats"]):
        code = f"BW-C{k}"
        group(code, None)
        for j in range(close_subgroups):
            group(f"{code}.{j}", code)
        gid = engine.index.orgs[org_id].group_by_code[code]
        with Session(db) as s, s.begin():
            rows = [{"user_id": u, "group_id": gid, "opens_on": svc.today()} for u in ids]
            s.execute(insert(Membership), rows)
            record_change(s, [org_id], "bench fixture: members")
        close = partial(groups.close_group, svc, admin, org, code)
        revision = timed("close_group_200", close, Query(close_user, *p1), True)
        done = [e.after for e in audit.events if e.revision == revision and e.after]
        detached = sum(len(after.get("members_detached", ())) for after in done)
        cascade += len(done) == 1 + close_subgroups and detached == members

    for name in ("attach", "assign_role_50", "close_group_200"):
        other_ns = figures.pop(f"{name}_other")
        figures[name] = summary(figures[name])
        figures[f"{name}_refresh"] = summary(figures[f"{name}_refresh"])
        figures.setdefault("visible_other_worker", {})[name] = summary(other_ns)
    figures["visible_other_worker"]["refresh_interval_s"] = engine.refresh_interval
    figures["visible_same_instance"] = summary(same_ns)
    figures["close_group_200_cascade"] = cascade
    figures["organisation"] = info | {"after": _size(db, org_id)}
    db.dispose()
    return figures


def write_rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's rows for ``measure_writes`` figures: (figure, value)."""
    other, names = f["visible_other_worker"], ("attach", "assign_role_50", "close_group_200")
    what = (
        "attach a user to a group",
        f"assign a role to a group with {f['descendants']} descendants",
        f"close a group with {f['members']} members",
    )
    out = []
    for name, label in zip(names, what, strict=True):
        flips, refresh = f[f"{name}_flips"], _us(f[f"{name}_refresh"]["median_us"])
        value = f"{_lat(f[name])}; of which engine refresh {refresh}"
        out.append((f"write: {label}", f"{value} (flipped {flips['writer']}/{flips['n']})"))
        out.append((f"visible on another worker ({name}): refresh + check", _lat(other[name])))
    late = f"within refresh_interval {other['refresh_interval_s']:g} s + "
    late += _us(max(other[name]["median_us"] for name in names))
    out.append(("visible on the writing instance", f"at once: {_lat(f['visible_same_instance'])}"))
    out.append(("visible on another server", late))
    return out
