"""A state-machine property test of the access reviews (R-CNIL-23, R-CNIL-24, R-CNIL-26):
whatever the order of the reviewers' actions, every item ends kept, removed or reported, no
reviewer ever sees or acts on another's item, and the store afterwards equals the store before
minus exactly the removals. The machine is ``support.review_machine``.

The sequences are the same on every run unless ``PDP_STATEFUL_RANDOM=1`` asks for new ones;
``PDP_STATEFUL_EXAMPLES`` / ``PDP_STATEFUL_STEPS`` override the sizes, ``PDP_STATEFUL_SHRINK=0``
skips shrinking a failure. PostgreSQL runs the same machine and checks on fewer sequences
(``PDP_STATEFUL_PG_EXAMPLES``) than SQLite, which explores the orders with ``EXAMPLES``.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from support.admin_machine import Harness
from support.constants import MakeApp
from support.review_machine import ReviewMachine

EXAMPLES = int(os.environ.get("PDP_STATEFUL_EXAMPLES", "12"))
PG_EXAMPLES = int(os.environ.get("PDP_STATEFUL_PG_EXAMPLES", str(min(EXAMPLES, 5))))
STEPS = int(os.environ.get("PDP_STATEFUL_STEPS", "40"))
# PDP_STATEFUL_SHRINK=0: report the first failure as found (shrinking takes minutes).
PHASES = (
    tuple(Phase)
    if os.environ.get("PDP_STATEFUL_SHRINK", "1") != "0"
    else (Phase.explicit, Phase.reuse, Phase.generate)
)


def test_reviews_end_whole_whatever_the_order(
    request: pytest.FixtureRequest,
    backend: str,
    demo_db: str,
    make_app: MakeApp,
    today: dt.date,
) -> None:
    """R-CNIL-23, R-CNIL-24, R-CNIL-26 (see the module)."""
    harness = Harness(request, backend, demo_db, make_app, today)
    started = time.perf_counter()
    run_state_machine_as_test(
        lambda: ReviewMachine(harness),
        settings=settings(
            max_examples=EXAMPLES if backend == "sqlite" else PG_EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            derandomize=os.environ.get("PDP_STATEFUL_RANDOM", "0") != "1",
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            phases=PHASES,
            print_blob=True,
        ),
    )
    outcomes = harness.outcomes
    print(
        f"{backend}: {harness.examples} examples, {harness.steps} steps in "
        f"{time.perf_counter() - started:.1f} s; "
        + ", ".join(f"{k} {o} ×{n}" for (k, o), n in sorted(outcomes.items()))
    )
    # Not vacuous: decisions of each kind were made, refused, previewed; closings refused.
    for kind, outcome in (
        ("decide (keep)", "200"),
        ("decide (remove)", "200"),
        ("decide (preview)", "200"),
        ("decide (keep)", "404"),
        ("decide (remove)", "409"),
        ("close", "403"),
        ("look", "200"),
    ):
        assert outcomes[(kind, outcome)], f"never {kind} → {outcome}: {dict(outcomes)}"
    assert outcomes[("items", "removed")], "no membership was ever removed"
