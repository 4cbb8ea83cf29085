"""Smoke test of the bench: generate a tiny dataset, run every measurement in-process.

No timing is asserted (machines differ); the test checks that every figure is produced and
printed, that the dataset has the shape asked for, and that plain Casbin agrees on its sample.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import func, select

from adapters.sql.database import make_engine
from adapters.sql.models import Group, GroupRole, Membership, Organisation, User
from adapters.sql.snapshot import SqlSnapshotSource
from bench.__main__ import main
from bench.generate import generate
from bench.run import RunOptions, run, write_json

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

    text = "\n".join(printed)
    for label in (
        "cold load",
        "RSS after load",
        "Engine.check (headline)",
        "Index.decide",
        "dict lookup",
        "permissions listing",
        "batch of 1,000",
        "plain casbin.Enforcer",
        "answers agree with Casbin",
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


def test_cli_all_writes_the_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    out = tmp_path / "out.json"
    args = ["all", "--scale", "0.001", "--database-url", url, "--queries", "2000"]
    status = main([*args, "--casbin-queries", "30", "--json", str(out)])
    assert status == 0
    figures = json.loads(out.read_text())
    assert figures["casbin"]["agree"] == figures["casbin"]["compared"] > 0
