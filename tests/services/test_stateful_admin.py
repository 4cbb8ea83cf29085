"""A stateful test of the administration API: random actors doing random administrative writes
over HTTP (the in-process Flask test client) on the demo data, with the business rules checked
after every step, straight from the database.

Each example of the state machine starts from a fresh copy of the demo (SQLite: the demo file
copied again; PostgreSQL: emptied and loaded again) and a new app built by conftest's
``make_app``. A step picks an organisation, an actor (operator, partner admin, manager, plain
user, closed user, user of another organisation, unknown login) and an operation with plausible
but random arguments, many of which must be refused (outside the perimeter, a third admin, a
role the parent lacks, unknown things, past dates...).

After each write:

- no answer is a 5xx;
- a refusal (4xx) changed nothing: the digest of every domain table, the revision and the audit
  head are what they were (R-ADM-7; one business action, one transaction);
- a success advanced the revision by one, answered that revision, and left audit records
  carrying it, the actor and the action (R-ADM-7);
- the authorisation agrees with the public ``POST /v1/admin/check``: not allowed there → 403
  with the same reason code (or a 400 the body earned first), or 404 naming what is unknown
  when the reason is UNKNOWN_TARGET; allowed → neither 401 nor 403; a
  closed or unknown actor → 401 (R-USR-4);
- where the outcome is cheap to predict from the state before (a third admin, a past date, a
  taken code, a role the parent lacks...), the answer is the predicted one: a model-free oracle
  written from the rules (docs/rules.md), not from the service's code paths.

After each step (invariants): at most two partner admins per organisation (R-ADM-1), exactly one
open manager, an open user of the organisation, per open group (R-ADM-3), sub-group roles within
the parent's (R-GRP-4) and no open sub-group under a closed parent (R-GRP-2), all today and on
every later day the store changes; closed users denied every service (R-USR-4) and no service
usable without an open subscription (R-CON-2, R-DEC-1), through ``POST /v1/check/batch``.

Counts: every write is counted by kind and outcome (committed / refused); they are exposed as
``hypothesis.event`` (``--hypothesis-show-statistics``) and printed at the end (``-s``), and the
test fails if some main kind was never committed or never refused (it must not pass vacuously).
Size: ``PDP_STATEFUL_EXAMPLES`` / ``PDP_STATEFUL_STEPS`` override the CI defaults. The rules are
explored on SQLite with ``EXAMPLES`` sequences; PostgreSQL runs the same machine, with the same
checks and the same not-vacuous assertion, on ``PG_EXAMPLES`` sequences (a reset of PostgreSQL
and the demo's reload cost more than a file copy): enough to show the driver keeps the rules
alike (``PDP_STATEFUL_PG_EXAMPLES`` raises it).
The sequences are the same on every run unless ``PDP_STATEFUL_RANDOM=1`` asks for new ones.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from hypothesis.statistics import collector, describe_statistics

from support.admin_machine import Harness
from support.admin_machine_caf import CafRules
from support.admin_machine_groups import GroupRules
from support.admin_machine_users import UserRules
from support.constants import MakeApp

EXAMPLES = int(os.environ.get("PDP_STATEFUL_EXAMPLES", "20"))
PG_EXAMPLES = int(os.environ.get("PDP_STATEFUL_PG_EXAMPLES", str(min(EXAMPLES, 8))))
STEPS = int(os.environ.get("PDP_STATEFUL_STEPS", "80"))
# PDP_STATEFUL_SHRINK=0: report the first failure as found (shrinking a long run takes minutes).
PHASES = (
    tuple(Phase)
    if os.environ.get("PDP_STATEFUL_SHRINK", "1") != "0"
    else (Phase.explicit, Phase.reuse, Phase.generate)
)


# The families of operations every run must both commit and refuse at least once (it must not
# pass vacuously); a family rather than each kind, so that the assertion does not depend on how
# Hypothesis happens to spread one run's steps over the rules.
FAMILIES = {
    "users (fiches 1-3)": ("create_user", "edit_user", "close_user"),
    "memberships (fiches 4, 6)": ("attach", "detach"),
    "groups (fiches 7, 10, 11)": ("create_group", "create_subgroup", "close_group", "edit_group"),
    "managers (fiches 14, 16)": ("set_manager",),
    "roles (fiches 12, 13)": ("assign_role", "remove_role"),
    "partner admins (R-ADM-1)": ("designate_admin", "end_admin"),
    "contract (R-CON-4)": ("contract", "create_organisation"),
    "afas profiles (R-AFAS)": ("afas_profile",),
}


class AdminMachine(UserRules, GroupRules, CafRules):
    """Random administrative writes by random actors; the rules checked after each."""


def test_random_administration_keeps_the_rules(
    request: pytest.FixtureRequest,
    backend: str,
    demo_db: str,
    make_app: MakeApp,
    today: dt.date,
) -> None:
    """Random administrative writes by random actors; every rule holds after every step."""
    harness = Harness(request, backend, demo_db, make_app, today)
    started = time.perf_counter()

    def note_statistics(stats: dict[str, Any]) -> None:
        # The machine runs inside a plain test: hand its statistics (the events counted by
        # ``write``) to Hypothesis's pytest plugin, for --hypothesis-show-statistics.
        stats["nodeid"] = request.node.nodeid
        request.node.hypothesis_statistics = describe_statistics(stats)

    with collector.with_value(note_statistics):
        run_state_machine_as_test(
            lambda: AdminMachine(harness),
            settings=settings(
                max_examples=EXAMPLES if backend == "sqlite" else PG_EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,  # no example database written into the tree
                # Reproducible in CI: the same sequences every run; PDP_STATEFUL_RANDOM=1 draws
                # new ones (run it after any change to the administration's rules).
                derandomize=os.environ.get("PDP_STATEFUL_RANDOM", "0") != "1",
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                phases=PHASES,
                print_blob=True,
            ),
        )
    elapsed = time.perf_counter() - started
    kinds = sorted({k for k, _ in harness.outcomes})
    lines = [
        f"{backend}: {harness.examples} examples, {harness.steps} writes in {elapsed:.1f} s "
        f"({sum(n for (_, o), n in harness.outcomes.items() if o == 'committed')} committed)"
    ]
    for kind in kinds:
        lines.append(
            f"  {kind:20} committed {harness.outcomes[(kind, 'committed')]:4}"
            f"  refused {harness.outcomes[(kind, 'refused')]:4}"
        )
    lines.append("  refusals: " + ", ".join(f"{c} ×{n}" for c, n in harness.codes.most_common()))
    print("\n".join(lines))
    # Not vacuous: every family was both committed and refused somewhere in the run.
    missing = [
        f"{family} never {outcome}"
        for family, kinds in FAMILIES.items()
        for outcome in ("committed", "refused")
        if not sum(harness.outcomes[(kind, outcome)] for kind in kinds)
    ]
    assert not missing, "\n".join([*missing, *lines])
