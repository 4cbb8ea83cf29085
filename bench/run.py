"""Measure the engine on a generated database, side by side with plain Casbin and a dict.

Figures (see ``bench/README.md``): cold load of the PolicyEngine through ``SqlSnapshotSource``,
resident
memory after it, check latency (``PolicyEngine.check`` as the headline, ``Index.decide`` under it),
permissions listing, batches of 1,000 checks, a dict lookup as the floor, and a plain
``casbin.Enforcer`` over the same day's policy lines (``ReferenceEnforcer``) on a sample of the
same queries, within a time budget, with the count of answers that agree.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import platform
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench.generate import CAF_CODES
from bench.stats import summary
from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import Catalogue, load_catalogue
from pdp.engine.casbin_model import ReferenceEnforcer
from pdp.engine.decision import Query, Reason
from pdp.engine.index import Index
from pdp.engine.policy import PolicyEngine
from pdp.engine.snapshot import Change, Delta, Snapshot
from pdp.records.decision_log import OffLog, WalLog
from pdp.services.decisions import DecisionService

TARGETS = {"median_us": 10.0, "p99_us": 100.0, "load_s": 60.0, "rss_mib": 2048.0}
PLAUSIBLE = 0.85  # share of queries drawn from the user's own group roles (the rest: uniform)
Out = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    """What to measure and how much."""

    database_url: str
    queries: int = 100_000
    seed: int = 1
    permissions: int = 20_000
    batches: int = 30
    casbin_queries: int = 200
    casbin_min_queries: int = 30
    casbin_budget_s: float = 60.0
    casbin: bool = True
    fast_casbin: bool = True  # pycasbin's FastEnforcer (whatever ``casbin`` says)
    cedar: bool = False
    label: str = ""
    queries_out: str | None = None
    load_only: bool = False


class _TimedSource:
    """A ``SqlSnapshotSource`` that remembers how long its last full read took."""

    def __init__(self, inner: SqlSnapshotSource) -> None:
        self.inner = inner
        self.last_load_s = 0.0

    def load(self, organisation_ids: Iterable[int] | None = None) -> Snapshot:
        """Read a snapshot through the wrapped source, timing it."""
        started = time.perf_counter()
        snap = self.inner.load(organisation_ids)
        self.last_load_s = time.perf_counter() - started
        return snap

    def changes_since(self, revision: int) -> list[Change]:
        """Delegate to the wrapped source."""
        return self.inner.changes_since(revision)

    def load_delta(
        self, user_ids: Iterable[int], organisation_ids: Iterable[int], group_ids: Iterable[int]
    ) -> Delta:
        """Delegate to the wrapped source."""
        return self.inner.load_delta(user_ids, organisation_ids, group_ids)


# -- measuring -------------------------------------------------------------------------------


def rss_mib() -> tuple[float, float]:
    """Return (current RSS from /proc/self/statm, peak RSS from getrusage), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        current = pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        current = float("nan")
    return current, peak


def timed(fn: Callable[[Any], object], args: Sequence[Any]) -> list[int]:
    """Call ``fn`` once per argument; return each call's duration (perf_counter_ns)."""
    clock = time.perf_counter_ns
    out = [0] * len(args)
    for i, arg in enumerate(args):
        t0 = clock()
        fn(arg)
        out[i] = clock() - t0
    return out


def same_sample(engine: PolicyEngine, sample: list[Query]) -> dict[str, float]:
    """PolicyEngine.check on exactly the queries an alternative answered, in passes totalling at
    least 20,000 checks (the alternative's own loop warmed nothing of ours)."""
    passes = max(1, -(-20_000 // max(1, len(sample))))
    return summary(timed(engine.check, sample * passes))


def timer_floor(n: int = 100_000) -> float:
    """Median cost of two perf_counter_ns calls in a row (µs): included in every sample."""
    clock = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t0 = clock()
        out[i] = clock() - t0
    return statistics.median(out) / 1000


# -- queries ---------------------------------------------------------------------------------


def make_queries(index: Index, catalogue: Catalogue, rng: random.Random, n: int) -> list[Query]:
    """Draw ``n`` queries for today, about half of them allowed.

    Three in four ask for a (service, role) one of the user's groups holds (or that service
    with any role): realistic, and denied only by dates, subscriptions or Cafs. The rest ask
    uniformly over the catalogue; 1% name unknown users.
    """
    users = [u for u in index.users.values() if u.organisation_id in index.orgs]
    services = sorted(catalogue.services)
    asked = {
        s: (*catalogue.services[s].roles, *catalogue.services[s].user_profiles) for s in services
    }
    out: list[Query] = []
    for i in range(n):
        if not users or rng.random() < 0.01:
            out.append(Query(f"inconnu.{i}", rng.choice(services)))
            continue
        user = rng.choice(users)
        org = index.orgs[user.organisation_id]  # type: ignore[index]
        held = [
            (service, role)
            for gid, _s, _e in user.memberships
            if (group := org.groups.get(gid)) is not None
            for service, roles in group.roles.items()
            for role, _rs, _re in roles
        ] + [("afas", profile) for profile, _s, _e in user.profiles]
        role: str | None
        if held and rng.random() < PLAUSIBLE:
            service, role = rng.choice(held)
            if rng.random() < 0.25:
                role = None
        else:
            service = rng.choice(services)
            role = rng.choice([None, *asked[service]])
        caf: str | None = None
        r = rng.random()
        if r < 0.2:
            cafs = [c for c, _s, _e in org.subscriptions.get(service, [])]
            caf = rng.choice(cafs) if cafs else rng.choice(CAF_CODES)
        elif r < 0.3:
            caf = rng.choice(CAF_CODES)
        out.append(Query(user.login, service, role, caf))
    return out


# -- the run ---------------------------------------------------------------------------------


def _casbin(
    source: SqlSnapshotSource, index: Index, day: dt.date, sample: list[Query], opts: RunOptions
) -> dict[str, Any]:
    """Build a plain casbin.Enforcer over the whole dataset's lines of ``day``; time a sample."""
    started = time.perf_counter()
    snap = source.load()
    snapshot_s = time.perf_counter() - started
    started = time.perf_counter()
    reference = ReferenceEnforcer.for_day(snap, day.toordinal())
    build_s = time.perf_counter() - started
    codes = {oid: code for oid, code, _ in snap.organisations}
    org_of = {login: org for _, login, org, _, _ in snap.users}
    del snap
    ordinal = day.toordinal()
    allowed_ns: list[int] = []
    denied_ns: list[int] = []
    agree = 0
    disagreements: list[str] = []
    deadline = time.perf_counter() + opts.casbin_budget_s
    clock = time.perf_counter_ns
    first_ns = 0
    for q in sample:
        done = len(allowed_ns) + len(denied_ns)
        if done >= opts.casbin_min_queries and time.perf_counter() > deadline:
            break
        org = org_of.get(q.user)
        code = codes[org] if org is not None else "-"
        t0 = clock()
        slow = reference.allowed(q.user, code, q.service, q.role, q.caf)
        elapsed = clock() - t0
        if done == 0:
            first_ns = elapsed  # the role manager warms up on the first call
        (allowed_ns if slow else denied_ns).append(elapsed)
        fast = index.decide(q.user, q.service, q.role, q.caf, ordinal).reason is Reason.ALLOWED
        if fast == slow:
            agree += 1
        elif len(disagreements) < 10:
            disagreements.append(f"{q} ours={fast} casbin={slow}")
    both = allowed_ns + denied_ns
    return {
        "snapshot_s": snapshot_s,
        "build_s": build_s,
        "lines": reference.line_count(),
        "first_call_ms": first_ns / 1e6,
        "all": summary(both),
        "allowed": summary(allowed_ns),
        "denied": summary(denied_ns),
        "agree": agree,
        "compared": len(both),
        "disagreements": disagreements,
        "budget_s": opts.casbin_budget_s,
    }


def _dataset(index: Index) -> dict[str, int]:
    """What the loaded index holds."""
    orgs = index.orgs.values()
    return {
        "organisations": len(index.orgs),
        "users": len(index.users),
        "groups": sum(len(o.groups) for o in orgs),
        "memberships": sum(len(u.memberships) for u in index.users.values()),
        "group_roles": sum(
            len(r) for o in orgs for g in o.groups.values() for r in g.roles.values()
        ),
        "revision": index.revision,
    }


def _checks(engine: PolicyEngine, queries: list[Query], ordinal: int) -> dict[str, Any]:
    """Single checks: PolicyEngine.check (headline), Index.decide, and the dict floor."""
    timed(engine.check, queries[:2_000])  # warm up
    figures: dict[str, Any] = {"check": summary(timed(engine.check, queries))}
    decisions = [engine.check(q) for q in queries]
    reasons: dict[str, int] = {}
    for d in decisions:
        reasons[d.reason.value] = reasons.get(d.reason.value, 0) + 1
    figures["allowed_share"] = sum(d.allowed for d in decisions) / max(1, len(decisions))
    figures["reasons"] = dict(sorted(reasons.items(), key=lambda kv: -kv[1]))
    decide = engine.index.decide
    figures["decide"] = summary(
        timed(lambda q: decide(q.user, q.service, q.role, q.caf, ordinal), queries)
    )
    # The floor: the same answers, precomputed, keyed by the query's own fields.
    keys = [(q.user, q.service, q.role, q.caf) for q in queries]
    answers = {key: d.allowed for key, d in zip(keys, decisions, strict=True)}
    figures["dict"] = summary(timed(answers.__getitem__, keys))
    return figures


def _listings_and_batches(
    engine: PolicyEngine,
    catalogue: Catalogue,
    queries: list[Query],
    rng: random.Random,
    opts: RunOptions,
) -> dict[str, Any]:
    """Permissions listings of random users, and batches of 1,000 checks."""
    users = list(engine.index.users)
    logins = rng.sample(users, min(opts.permissions, len(users)))
    perms = engine.permissions
    figures: dict[str, Any] = {
        "permissions": summary(timed(lambda login: perms(login, None), logins))
    }
    count = min(opts.batches, len(queries) // 1000)
    batches = [queries[i * 1000 : (i + 1) * 1000] for i in range(count)]
    check = engine.check
    figures["batch_engine"] = summary(timed(lambda b: [check(q) for q in b], batches))
    service = DecisionService(engine, catalogue, OffLog())
    figures["batch_service"] = summary(timed(lambda b: service.check_many(list(b)), batches))
    # The same batches with the decision log written (no shipping: the disk's cost only).
    for mode in ("buffered", "sync"):
        with tempfile.TemporaryDirectory(prefix="pdp-bench-log-") as tmp:
            wal = WalLog(tmp, mode)
            logged = DecisionService(engine, catalogue, wal)
            figures[f"batch_service_{mode}"] = summary(timed(partial(_check_many, logged), batches))
            wal.close()
    return figures


def _check_many(service: DecisionService, batch: list[Query]) -> object:
    return service.check_many(list(batch))


def run(opts: RunOptions, out: Out = print) -> dict[str, Any]:
    """Measure every figure on the database of ``opts``; print the table; return the figures."""
    catalogue = load_catalogue()
    db = make_engine(opts.database_url)
    source = SqlSnapshotSource(db)
    timed_source = _TimedSource(source)
    # max_staleness is raised only so that a long run never turns checks into
    # POLICY_UNAVAILABLE; the staleness test itself still runs on every check.
    engine = PolicyEngine(timed_source, catalogue, max_staleness=86_400.0)
    rss_before, _ = rss_mib()
    started = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - started
    rss_now, rss_peak = rss_mib()
    today = engine.day(None)
    figures: dict[str, Any] = {
        "label": opts.label,
        "database": db.url.render_as_string(hide_password=True),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "day": today.isoformat(),
        "dataset": _dataset(engine.index),
        "load": {
            "total_s": load_s,
            "snapshot_s": timed_source.last_load_s,
            "index_s": load_s - timed_source.last_load_s,
        },
        "rss_mib": {"before_load": rss_before, "after_load": rss_now, "peak": rss_peak},
        "timer_floor_us": timer_floor(),
    }
    if opts.load_only:
        report_load(figures, out)
        db.dispose()
        return figures
    rng = random.Random(opts.seed)
    queries = make_queries(engine.index, catalogue, rng, opts.queries)
    if opts.queries_out:
        rows_out = [[q.user, q.service, q.role, q.caf] for q in queries[:20_000]]
        Path(opts.queries_out).write_text(json.dumps(rows_out), encoding="utf-8")
    figures.update(_checks(engine, queries, today.toordinal()))
    figures.update(_listings_and_batches(engine, catalogue, queries, rng, opts))
    figures["gc"] = {"counts": list(gc.get_count()), "tracked_objects": len(gc.get_objects())}
    if opts.casbin:
        casbin = _casbin(source, engine.index, today, queries[: opts.casbin_queries], opts)
        casbin["ours_same_sample"] = same_sample(engine, queries[: casbin["compared"]])
        figures["casbin"] = casbin
    if opts.fast_casbin:
        from bench.fast_casbin import compare_fast

        snap = source.load()
        sample = queries[: opts.casbin_queries * 50]
        figures["fast_casbin"] = compare_fast(
            snap, engine.index, today, sample, opts.casbin_budget_s
        )
        del snap
    if opts.cedar:
        from bench.cedar import compare_cedar

        snap = source.load()
        sample = queries[: opts.casbin_queries * 10]
        cedar = compare_cedar(snap, engine.index, today, sample, opts.casbin_budget_s)
        del snap
        cedar["ours_same_sample"] = same_sample(engine, sample[: cedar["compared"]])
        figures["cedar"] = cedar
    report(figures, out)
    db.dispose()
    return figures


# -- the table -------------------------------------------------------------------------------


def _us(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f} s"
    if value >= 1000:
        return f"{value / 1000:.2f} ms"
    return f"{value:.2f} µs"


def _lat(s: dict[str, float]) -> str:
    median, p99, top = _us(s["median_us"]), _us(s["p99_us"]), _us(s["max_us"])
    return f"median {median} · p99 {p99} · max {top} (n={s['count']:,})"


def _ok(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's rows: (figure, value)."""
    load, rss = f["load"], f["rss_mib"]
    out = [
        (
            "cold load (PolicyEngine.load)",
            f"{load['total_s']:.2f} s (snapshot read {load['snapshot_s']:.2f} s"
            f" + index build {load['index_s']:.2f} s)",
        ),
        (
            "RSS after load (current / peak)",
            f"{rss['after_load']:.0f} MiB / {rss['peak']:.0f} MiB"
            f" (before load {rss['before_load']:.0f} MiB)",
        ),
        ("check: PolicyEngine.check (headline)", _lat(f["check"])),
        ("check: Index.decide", _lat(f["decide"])),
        ("floor: dict lookup", _lat(f["dict"])),
        ("timer overhead per sample", _us(f["timer_floor_us"])),
        ("allowed share of the queries", f"{f['allowed_share']:.1%}"),
        ("permissions listing (PolicyEngine.permissions)", _lat(f["permissions"])),
        ("batch of 1,000: PolicyEngine.check loop", _lat(f["batch_engine"])),
        ("batch of 1,000: DecisionService.check_many, log off", _lat(f["batch_service"])),
        *[
            (
                f"batch of 1,000: check_many, log {mode}",
                f"{_lat(f[key])}; {f[key]['median_us'] / f['batch_service']['median_us'] - 1:+.1%}"
                " vs log off",
            )
            for mode in ("buffered", "sync")
            if (key := f"batch_service_{mode}") in f
        ],
    ]
    c = f.get("casbin")
    if c:
        allowed, denied = c["allowed"], c["denied"]
        out += [
            (
                "plain casbin.Enforcer, whole dataset: lines / build",
                f"{c['lines']:,} lines; built in {c['build_s']:.2f} s"
                f" (+ snapshot read {c['snapshot_s']:.2f} s)",
            ),
            (
                "plain casbin.Enforcer: enforce",
                f"{_lat(c['all'])}, first call {c['first_call_ms']:.0f} ms",
            ),
            (
                "plain casbin.Enforcer: allowed / denied",
                f"median {_us(allowed['median_us'])} (n={allowed['count']})"
                f" / {_us(denied['median_us'])} (n={denied['count']})",
            ),
            ("answers agree with Casbin", f"{c['agree']} / {c['compared']}"),
        ]
    fc = f.get("fast_casbin")
    if fc:
        out += [
            (
                "casbin.FastEnforcer (p indexed by domain, service): lines / build",
                f"{fc['lines']:,} lines; built in {fc['build_s']:.2f} s"
                f" (FastModel.add_def bug {'present, patched' if fc['add_def_bug'] else 'absent'})",
            ),
            (
                "casbin.FastEnforcer: enforce",
                f"{_lat(fc['all'])}, first call {fc['first_call_ms']:.0f} ms",
            ),
            ("answers agree with FastEnforcer", f"{fc['agree']:,} / {fc['compared']:,}"),
        ]
    cd = f.get("cedar")
    if cd:
        out += [
            (
                "cedarpy: entities / build",
                f"{cd['entities']:,} entities built in {cd['build_s']:.2f} s",
            ),
            ("cedarpy: is_authorized with the request's slice", _lat(cd["all"])),
            ("cedarpy: building the request's slice (not in the line above)", _lat(cd["slice"])),
            ("answers agree with cedarpy", f"{cd['agree']:,} / {cd['compared']:,}"),
        ]
    return out


def report_load(f: dict[str, Any], out: Out = print) -> None:
    """Print the load figures alone (``run --load-only``)."""
    ds, load, rss = f["dataset"], f["load"], f["rss_mib"]
    out(
        f"\n## pdp load {f['label']} ({f['database']}): {ds['organisations']:,} organisations,"
        f" {ds['users']:,} users: {load['total_s']:.2f} s (snapshot read"
        f" {load['snapshot_s']:.2f} s + index build {load['index_s']:.2f} s),"
        f" RSS {rss['after_load']:.0f} MiB (peak {rss['peak']:.0f} MiB)"
    )


def report(f: dict[str, Any], out: Out = print) -> None:
    """Print the figures as a Markdown table, then the targets and ratios."""
    ds = f["dataset"]
    out(
        f"\n## pdp bench {f['label']}: {ds['organisations']:,} organisations,"
        f" {ds['users']:,} users, {ds['groups']:,} groups, {ds['memberships']:,} memberships,"
        f" {ds['group_roles']:,} group roles"
    )
    out(f"day {f['day']}, Python {f['python']}, {f['cpus']} CPUs, database {f['database']}\n")
    out("| figure | value |")
    out("|---|---|")
    for name, value in rows(f):
        out(f"| {name} | {value} |")
    check, load, peak = f["check"], f["load"]["total_s"], f["rss_mib"]["peak"]
    med, p99 = check["median_us"], check["p99_us"]
    out("")
    out(
        f"targets: median {_us(med)} ≤ 10 µs {_ok(med, TARGETS['median_us'])};"
        f" p99 {_us(p99)} ≤ 100 µs {_ok(p99, TARGETS['p99_us'])};"
        f" cold load {load:.1f} s ≤ 60 s {_ok(load, TARGETS['load_s'])};"
        f" peak RSS {peak:.0f} MiB ≤ 2048 MiB {_ok(peak, TARGETS['rss_mib'])}"
    )
    out(f"ours vs dict floor: Engine.check median = {med / f['dict']['median_us']:.1f}× the dict")
    c = f.get("casbin")
    if c and c["compared"]:
        ratio = c["all"]["median_us"] / med
        same = c["all"]["median_us"] / c["ours_same_sample"]["median_us"]
        out(
            f"ours vs plain Casbin: {ratio:,.0f}× faster (median vs the headline);"
            f" {same:,.0f}× on the same {c['compared']} queries"
        )
        for line in c["disagreements"]:
            out(f"DISAGREEMENT: {line}")
    fc = f.get("fast_casbin")
    if fc and fc["compared"]:
        same = fc["all"]["median_us"] / fc["ours_interleaved"]["median_us"]
        out(
            f"ours vs casbin.FastEnforcer: {fc['all']['median_us'] / med:,.0f}× faster (median vs"
            f" the headline); {same:,.0f}× interleaved on the same {fc['compared']:,} queries"
        )
        for line in fc["disagreements"]:
            out(f"DISAGREEMENT (FastEnforcer): {line}")
    cd = f.get("cedar")
    if cd and cd["compared"]:
        ratio = cd["all"]["median_us"] / med
        same = cd["all"]["median_us"] / cd["ours_same_sample"]["median_us"]
        out(
            f"ours vs cedarpy: {ratio:,.0f}× faster (median vs the headline);"
            f" {same:,.0f}× on the same {cd['compared']:,} queries"
        )
        for line in cd["disagreements"]:
            out(f"DISAGREEMENT (cedar): {line}")
    out(f"reasons: {f['reasons']}")


def write_json(figures: dict[str, Any], path: str) -> None:
    """Write every figure to ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
