"""Smoke test of the bench: generate a tiny dataset, run every measurement in-process.

No timing is asserted (machines differ); the test checks that every figure is produced and
printed, that the dataset has the shape asked for, and that plain Casbin agrees on its sample.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bench import history, log_cpu, shipper
from bench.__main__ import main
from bench.generate import generate
from bench.run import RunOptions, run, write_json
from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import Group, GroupRole, Membership, Organisation, User
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.records.audit_trail import AuditChain

SCALE = 0.002  # 40 organisations, ~800 users


def test_generate_then_run_prints_and_returns_every_figure(db_url: str, tmp_path: Path) -> None:
    # db_url: an empty store on SQLite, and on PostgreSQL when PDP_TEST_POSTGRES_URL is set.
    url = db_url
    db = make_engine(url)
    stats = generate(db, SCALE, seed=3)
    db.dispose()
    assert stats.counts["organisations"] == 40
    assert stats.counts["users"] >= 800  # plus a few Caf operators
    assert stats.counts["memberships"] > 1000 and stats.counts["group_roles"] > 100
    assert stats.revision == 1  # one record_change for the whole load

    printed: list[str] = []
    opts = RunOptions(database_url=url, queries=3_000, permissions=200, batches=2, seed=3)
    figures = run(opts, out=printed.append)

    for key in ("check", "decide", "dict", "permissions", "batch_engine", "batch_service"):
        assert figures[key]["count"] > 0, key
        assert 0 < figures[key]["median_us"] <= figures[key]["p99_us"] <= figures[key]["max_us"]
    assert figures["check"]["count"] == 3_000
    assert figures["load"]["total_s"] > 0 and figures["rss_mib"]["peak"] > 0
    assert figures["dataset"]["organisations"] == 40
    assert 0.25 < figures["allowed_share"] < 0.75  # about half of the queries are allowed

    casbin = figures["casbin"]
    assert casbin["compared"] >= 30 and casbin["lines"] > 0
    assert casbin["agree"] == casbin["compared"], casbin["disagreements"]
    # pycasbin's FastEnforcer on the same lines (its add_def bug patched): the same answers.
    fast = figures["fast_casbin"]
    assert fast["compared"] >= 30 and fast["lines"] == casbin["lines"]
    assert fast["agree"] == fast["compared"], fast["disagreements"]

    text = "\n".join(printed)
    for label in (
        "cold load",
        "RSS after load",
        "PolicyEngine.check (headline)",
        "Index.decide",
        "dict lookup",
        "permissions listing",
        "batch of 1,000",
        "plain casbin.Enforcer",
        "answers agree with Casbin",
        "casbin.FastEnforcer",
        "ours vs casbin.FastEnforcer",
        "targets:",
        "ours vs plain Casbin",
        "ours vs dict floor",
    ):
        assert label in text, label
    assert "DISAGREEMENT" not in text

    out = tmp_path / "figures.json"
    write_json(figures, str(out))
    assert json.loads(out.read_text())["casbin"]["agree"] == casbin["agree"]


def test_generated_data_respects_the_domain_rules(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'rules.sqlite3'}")
    today = dt.date(2026, 1, 15)
    generate(db, SCALE, seed=4, today=today)
    # The load's revision has its audit record: `pdp audit verify` passes on a bench database.
    report = AuditChain().verify(db)
    assert report.ok and report.checked == 1, report.message
    snap = SqlSnapshotSource(db).load()
    groups = {gid: (org, parent, s, e) for gid, org, parent, _c, _l, s, e in snap.groups}
    roles: dict[int, set[tuple[str, str]]] = {}
    for gid, service, role, _s, _e in snap.group_roles:
        roles.setdefault(gid, set()).add((service, role))
    for gid, (org, parent, start, end) in groups.items():
        depth, node = 0, parent
        while node is not None:
            depth, node = depth + 1, groups[node][1]
        assert depth <= 4  # sub-groups up to depth 4
        if parent is not None:
            assert groups[parent][0] == org
            assert roles.get(gid, set()) <= roles.get(parent, set())  # R-GRP-4
            assert groups[parent][2] <= start and end <= groups[parent][3]  # R-GRP-2
    user_org = {uid: org for uid, _login, org, _s, _e in snap.users}
    for uid, gid, _s, _e in snap.memberships:
        assert user_org[uid] == groups[gid][0]  # R-MEM-1: same organisation
    with db.connect() as conn:
        count = conn.execute(select(func.count()).select_from(Organisation)).scalar_one()
        closed = conn.execute(
            select(func.count()).select_from(User).where(User.closes_on <= today)
        ).scalar_one()
        future = conn.execute(
            select(func.count()).select_from(Membership).where(Membership.opens_on > today)
        ).scalar_one()
        assert count == 40 and closed > 0 and future > 0
        assert conn.execute(select(func.count()).select_from(Group)).scalar_one() > 0
        assert conn.execute(select(func.count()).select_from(GroupRole)).scalar_one() > 0


def test_the_whole_suite_runs_end_to_end_and_agrees_with_casbin_and_cedar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m bench all`` at scale 0.01: every part runs (HTTP only where wrk is
    installed), the alternatives agree with us on every query, and the summary is printed."""
    out = tmp_path / "suite.json"
    args = ["all", "--scale", "0.01", "--queries", "3000", "--data-dir", str(tmp_path)]
    args += ["--http-duration", "1", "--http-rounds", "1", "--write-repeats", "2"]
    args += ["--history-dir", str(tmp_path / "history")]
    if shutil.which("wrk") is None:
        args += ["--no-http", "--no-write-load"]
    assert main([*args, "--json", str(out)]) == 0
    suite = json.loads(out.read_text())

    assert set(suite["runs"]) == {"0.005", "0.01"}  # 100 organisations, and the target
    alt = suite["runs"]["0.005"]
    assert alt["dataset"]["organisations"] == 100
    assert alt["casbin"]["compared"] >= 30
    assert alt["casbin"]["agree"] == alt["casbin"]["compared"], alt["casbin"]["disagreements"]
    for figures in suite["runs"].values():
        cedar = figures["cedar"]
        assert cedar["compared"] >= 30 and cedar["errors"] == 0
        assert cedar["agree"] == cedar["compared"], cedar["disagreements"]
        assert figures["check"]["count"] == 3000
    writes = suite["writes"]
    for name in ("attach", "assign_role_50", "close_group_200"):
        assert writes[f"{name}_flips"]["writer"] == writes[f"{name}_flips"]["n"] == 2
    if shutil.which("wrk") is not None:
        http = suite["http"]
        for result in (*http["pdp"], *http["bare"], *http["batch"]):
            assert result["requests"] > 0 and result["errors"] == 0, result
        assert [r["connections"] for r in http["pdp"]] == [2, 16, 64]
        assert len(http["memory"]["workers"]) == 2
        assert http["decision_log"] == "buffered"  # pdp serve as in production
        cost = http["log_cost"]
        assert set(cost["modes"]) == {"off", "buffered", "sync"}
        for mode, figures in cost["modes"].items():
            for kind in ("single", "batch"):
                run = figures[kind]
                assert run["requests"] > 0 and run["errors"] == 0, (mode, kind, run)
                assert 0 < run["p50_us"] <= run["p99_us"], (mode, kind, run)
                assert "loss_vs_off" in run
            assert cost["modes"]["off"]["single"]["loss_vs_off"] == 0
        # Every decision answered by a logging server reached the decision_log table.
        shipping = http["shipping"]
        assert shipping["answered"] > 0 and shipping["unshipped_bytes"] == 0, shipping
        assert shipping["rows_added"] >= shipping["answered"], shipping
        # Checks while writes arrive: the writes went through (each one attaching a user).
        load = suite["write_load"]
        assert load["writes"] > 0 and load["write_failed"] == 0, load
        assert load["quiet_rps"] > 0 and load["loaded_rps"] > 0
    # The run is kept, with its commit and machine, and is one row of the history's table.
    (kept,) = history.load(tmp_path / "history")
    assert kept["commit"] and kept["machine_info"]["cpus"] and kept["runs"] == suite["runs"]
    _, _, first = history.table([kept])
    assert first.startswith(f"| {suite['started'][:10]} | {kept['commit']} |"), first
    assert "—" not in first.split(" | ")[4:8], first  # the check's and the peers' figures
    printed = capsys.readouterr().out
    for heading in ("## Alternatives", "## Growth", "## Targets", "vs plain Casbin", "cedarpy"):
        assert heading in printed, heading
    if shutil.which("wrk") is not None:
        for label in (
            "## Decision log cost",
            "| buffered |",
            "| sync |",
            "log buffered: throughput",
            "writes/s arrive",
        ):
            assert label in printed, label


def test_the_readme_history_table_is_the_kept_runs() -> None:
    """bench/README.md's history table is generated from bench/history/ (``python -m bench
    history --write-readme``): it cannot drift from the kept runs."""
    text = history.README.read_text(encoding="utf-8")
    assert history.readme_with(text, history.table(history.load())) == text


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_the_decision_logs_cpu_per_decision_is_measured_by_process(
    tmp_path: Path, batch: bool
) -> None:
    """``python -m bench.log_cpu``: a server with the log off and one buffered, loaded in turn
    (single checks, or batches of 1,000 with ``--batch``); the CPU per decision of the workers,
    the shipper process and the machine."""
    url = f"sqlite:///{tmp_path / 'bench.sqlite3'}"
    db = make_engine(url)
    generate(db, SCALE, seed=3)
    db.dispose()
    printed: list[str] = []
    figures = log_cpu.measure(
        url, workers=2, rounds=1, duration_s=1, batch=batch, out=printed.append
    )

    assert figures["checks_per_request"] == (1000 if batch else 1)

    off, buffered = figures["runs"]["off"][0], figures["runs"]["buffered"][0]
    for run_ in (off, buffered):
        assert run_["checks_per_s"] > 0
        assert 0 < run_["workers_kernel_us"] < run_["workers_us"]
        assert run_["machine_us"] > 0
    assert off["shipper_us"] == off["shipper_with_tail_us"] == 0  # no shipper process
    assert buffered["shipper_with_tail_us"] > 0  # it shipped the run's decisions
    assert buffered["shipper_with_tail_us"] >= buffered["shipper_us"]
    assert len(printed) == 2
    table = log_cpu.table(figures)
    assert [line.split(" | ")[0] for line in table[2:]] == ["| off", "| buffered"]


@pytest.mark.parametrize("by_user", [False, True], ids=["as-written", "by-user-no-user-indexes"])
def test_the_shippers_rounds_are_measured_on_a_filled_table(tmp_path: Path, by_user: bool) -> None:
    """``python -m bench.shipper --rounds-of``: the table filled through the shipper, then each
    round size shipped in turn, its CPU per entry reported; the rows all arrive."""
    url = f"sqlite:///{tmp_path / 'rounds.sqlite3'}"
    printed: list[str] = []
    figures = shipper.measure_rounds(
        url,
        [300, 600],
        table_rows=2_500,
        users=200,
        organisations=20,
        repeats=2,
        by_user=by_user,
        without_user_indexes=by_user,
        out=printed.append,
    )

    assert [figures[size]["cpu_us_per_entry"] > 0 for size in ("300", "600")] == [True, True]
    assert [len(figures[size]["rounds"]) for size in ("300", "600")] == [2, 2]
    assert len(printed) == 2
    db = make_engine(url)
    try:
        with db.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM decision_log")).scalar_one()
            indexes = {
                name
                for (name,) in conn.execute(
                    text("SELECT name FROM sqlite_master WHERE tbl_name = 'decision_log'")
                )
            }
    finally:
        db.dispose()
    assert rows == 2_500 + 2 * 300 + 2 * 600
    assert ("ix_decision_log_user_ts" in indexes) is not by_user
