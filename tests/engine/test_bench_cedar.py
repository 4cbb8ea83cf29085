"""Cedar (cedarpy) as the bench's alternative engine: it must answer exactly as ours does.

On a tiny generated dataset every drawn query is compared with ``Index.decide``; small
hand-built snapshots pin the mapping of the Casbin model (Afas grants to a user, Cafs, "any
role", domains). No timing is asserted.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

pytest.importorskip("cedarpy")

from bench.cedar import CedarReference, compare_cedar
from bench.generate import generate
from bench.run import make_queries
from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.casbin_model import ReferenceEnforcer
from pdp.engine.decision import Reason
from pdp.engine.index import Index
from pdp.engine.snapshot import Snapshot

SCALE = 0.002  # 40 organisations, ~800 users
TODAY = dt.date(2026, 1, 15)
DAY = TODAY.toordinal()
OPEN, FOREVER = DAY - 30, DAY + 3650


def test_cedar_agrees_with_the_engine_on_generated_queries(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'cedar.sqlite3'}")
    generate(db, SCALE, seed=5, today=TODAY)
    snap = SqlSnapshotSource(db).load()
    db.dispose()
    index = Index.build(snap)
    queries = make_queries(index, load_catalogue(), random.Random(5), 1_500)

    figures = compare_cedar(snap, index, TODAY, queries, budget_s=3_600.0)

    assert figures["compared"] == len(queries)
    assert figures["agree"] == figures["compared"], figures["disagreements"]
    assert figures["allowed"]["count"] > 0.1 * len(queries)  # both answers are exercised
    assert figures["denied"]["count"] > 0.1 * len(queries)
    assert figures["errors"] == 0  # no denial comes from a Cedar evaluation error
    assert figures["entities"] > 0 and figures["slice"]["count"] == len(queries)


def _snapshot() -> Snapshot:
    """Two organisations. 100 uses cdap under Caf 751 and afas under 751 and 752; 200 alone
    uses dgfip. alice (100) is in group 10 (cdap T1) and 11 (dgfip enquete); bob (100) holds
    the Afas profile "declaration" and no group; carol has no organisation."""
    return Snapshot(
        revision=1,
        organisations=[(1, "100", "Org 100"), (2, "200", "Org 200")],
        subscriptions=[
            (1, "cdap", "751", OPEN, FOREVER),
            (1, "afas", "751", OPEN, FOREVER),
            (1, "afas", "752", OPEN, FOREVER),
            (2, "dgfip", "751", OPEN, FOREVER),
        ],
        users=[
            (1, "alice", 1, OPEN, FOREVER),
            (2, "bob", 1, OPEN, FOREVER),
            (3, "carol", None, OPEN, FOREVER),
        ],
        groups=[
            (10, 1, None, "G10", "Group 10", OPEN, FOREVER),
            (11, 1, None, "G11", "Group 11", OPEN, FOREVER),
        ],
        group_roles=[(10, "cdap", "T1", OPEN, FOREVER), (11, "dgfip", "enquete", OPEN, FOREVER)],
        memberships=[(1, 10, OPEN, FOREVER), (1, 11, OPEN, FOREVER)],
        afas_profiles=[(2, "declaration", OPEN, FOREVER)],
    )


@pytest.mark.parametrize(
    ("login", "service", "role", "caf", "expected"),
    [
        # An Afas profile is a grant to the user itself: Casbin links a user to itself.
        ("bob", "afas", "declaration", None, True),
        ("bob", "afas", None, "752", True),  # role None: any role, here the profile
        ("bob", "afas", "consultation", None, False),
        ("bob", "afas", "declaration", "753", False),  # Caf not subscribed for afas
        ("bob", "cdap", None, None, False),
        # Group grants, roles and Cafs.
        ("alice", "cdap", "T1", "751", True),
        ("alice", "cdap", None, None, True),  # any role, some Caf
        ("alice", "cdap", "T2", None, False),
        ("alice", "cdap", "T1", "752", False),  # 752 is subscribed, but for afas only
        ("alice", "afas", None, None, False),  # subscribed, but no grant
        # A grant in the user's organisation needs the subscription of that organisation.
        ("alice", "dgfip", "enquete", None, False),
        ("alice", "dgfip", "enquete", "751", False),
        # Nobody to be in: no organisation, unknown user.
        ("carol", "cdap", None, None, False),
        ("nobody", "cdap", "T1", "751", False),
    ],
)
def test_hand_built_cases_match_casbin_and_the_engine(
    login: str, service: str, role: str | None, caf: str | None, expected: bool
) -> None:
    snap = _snapshot()
    cedar = CedarReference.for_day(snap, DAY)
    casbin = ReferenceEnforcer.for_day(snap, DAY)
    ours = Index.build(snap).decide(login, service, role, caf, DAY).reason is Reason.ALLOWED
    code = {"alice": "100", "bob": "100"}.get(login, "-")
    assert casbin.allowed(login, code, service, role, caf) is expected
    assert ours is expected
    assert cedar.allowed(login, service, role, caf) is expected


def test_a_closed_membership_or_profile_grants_nothing() -> None:
    snap = _snapshot()
    snap.memberships = [(1, 10, OPEN, DAY), (1, 11, OPEN, FOREVER)]  # closes today
    snap.afas_profiles = [(2, "declaration", DAY + 1, FOREVER)]  # opens tomorrow
    cedar = CedarReference.for_day(snap, DAY)
    assert not cedar.allowed("alice", "cdap", "T1", "751")
    assert not cedar.allowed("bob", "afas", None, None)
    assert CedarReference.for_day(snap, DAY + 1).allowed("bob", "afas", None, None)
