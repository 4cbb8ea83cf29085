"""The administration-writes benchmark on a tiny generated dataset.

No timing is asserted (machines differ): the test checks that every figure is produced, that
each timed write really changed the decision on the writing instance and on a second worker,
and that the fixtures have the shape asked for (50 descendants, 200 members: the largest
organisation at scale 0.01 has about 240 open users).
"""

from __future__ import annotations

from pathlib import Path

from bench.generate import generate
from bench.writes import measure_writes, write_rows
from pdp.adapters.sql.database import make_engine

WRITES = ("attach", "assign_role_50", "close_group_200")


def test_measure_writes_times_each_write_and_sees_decisions_flip(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'writes.sqlite3'}"
    db = make_engine(url)
    generate(db, 0.01, seed=1)
    db.dispose()

    f = measure_writes(url, repeats=2)

    assert (f["repeats"], f["heavy_repeats"], f["members"], f["descendants"]) == (2, 2, 200, 50)
    for name in WRITES:
        for key in (name, f"{name}_refresh"):
            s = f[key]
            assert s["count"] == 2, key
            assert 0 < s["median_us"] <= s["p99_us"] <= s["max_us"], key
        # The refresh is part of the write, after its commit.
        assert f[f"{name}_refresh"]["max_us"] < f[name]["max_us"]
        # Denied then allowed (attach, assign), allowed then denied (close): at once on the
        # writing instance, after one refresh on the other worker.
        assert f[f"{name}_flips"] == {"n": 2, "writer": 2, "other_worker": 2}, name
        assert f["visible_other_worker"][name]["count"] == 2
    assert f["visible_same_instance"]["count"] == 6
    assert f["visible_other_worker"]["refresh_interval_s"] == 1.0
    assert f["close_group_200_cascade"] == 2  # sub-groups closed, 200 members detached

    org = f["organisation"]
    assert org["partner_admin"] and org["convention"] and len(set(org["roles"])) == 2
    assert org["open_ended_users"] >= 200
    after = org["after"]
    # Groups: the attach target, the tree (1 + 50), and per close one group and 2 sub-groups.
    assert after["groups"] == org["groups"] + 1 + 51 + 2 * 3
    # Memberships: 2 attached, the tree's member, 200 per closed group (kept, closed).
    assert after["memberships"] == org["memberships"] + 2 + 1 + 2 * 200
    assert after["users"] == org["users"]

    rows = dict(write_rows(f))
    assert "write: attach a user to a group" in rows
    assert "write: assign a role to a group with 50 descendants" in rows
    assert "write: close a group with 200 members" in rows
    assert "(flipped 2/2)" in rows["write: close a group with 200 members"]
    assert rows["visible on another server"].startswith("within refresh_interval 1 s + ")
    assert "visible on the writing instance" in rows
