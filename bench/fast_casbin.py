"""pycasbin's ``FastEnforcer`` as a peer: the same model and the same day's lines as the plain
``casbin.Enforcer`` (``ReferenceEnforcer``), with ``p`` indexed by (domain, object).

``cache_key_order=[1, 2]`` makes ``enforce`` keep only the ``p`` lines whose second and third
fields equal the request's (domain, service) before it evaluates the matcher: the request and
the ``p`` line both hold the domain at 1 and the service at 2.

A trap, checked on every build: in pycasbin 2.8.0 ``FastModel.add_def`` drops the value
``Model.add_def`` returns, so ``Model._load_section`` stops after the first key of each section
and a model with ``g2`` or ``g3`` loses them without a word (``KeyError: 'g2'`` once the policy
loads). :class:`FixedFastModel` returns it; :func:`add_def_bug` says whether the installed
pycasbin still has the bug (the figures record it), so the day it is fixed upstream shows.

Each query is timed on our engine and on ``FastEnforcer`` one after the other (interleaved), so
that both see the same machine state; every answer is compared.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import casbin
from casbin.model.model import Model
from casbin.model.model_fast import FastModel
from casbin.model.policy_fast import FastPolicy

from bench.stats import summary
from pdp.engine.casbin_lines import caf_name, org_domain, policy_lines, user_subject
from pdp.engine.casbin_model import ANY_ROLE, LinesAdapter
from pdp.engine.decision import Query, Reason
from pdp.engine.index import Index
from pdp.engine.snapshot import Snapshot
from pdp.policies import MODEL_PATH

CACHE_KEY_ORDER = (1, 2)  # (domain, object) of the request and of a p line


class FixedFastModel(FastModel):  # type: ignore[misc]
    """``FastModel`` whose ``add_def`` returns what ``Model.add_def`` returns."""

    def add_def(self, sec: str, key: str, value: Any) -> Any:
        added = Model.add_def(self, sec, key, value)
        if sec == "p" and key == "p":
            self.model[sec][key].policy = FastPolicy(self._cache_key_order)
        return added


class FixedFastEnforcer(casbin.FastEnforcer):  # type: ignore[misc]
    """``FastEnforcer`` over :class:`FixedFastModel`."""

    def new_model(self, path: str = "", text: str = "") -> Model:
        model = FixedFastModel(self._cache_key_order)
        if path:
            model.load_model(path)
        else:
            model.load_model_from_text(text)
        return model


class FastLinesAdapter(LinesAdapter):
    """``LinesAdapter`` for a ``FastPolicy``, which appends but has no ``extend``."""

    def load_policy(self, model: Any) -> None:
        policy = model.model["p"]["p"].policy
        for line in sorted(self._lines.grants):
            policy.append(list(line))
        model.model["g"]["g"].policy.extend([list(r) for r in sorted(self._lines.memberships)])
        model.model["g"]["g2"].policy.extend([list(r) for r in sorted(self._lines.subscriptions)])
        model.model["g"]["g3"].policy.extend([list(r) for r in sorted(self._lines.features)])


def add_def_bug() -> bool:
    """Whether the installed pycasbin's ``FastModel`` loses the second role definition."""
    model = FastModel(list(CACHE_KEY_ORDER))
    model.load_model(str(MODEL_PATH))
    return "g2" not in model.model.get("g", {})


def compare_fast(
    snap: Snapshot,
    index: Index,
    day: dt.date,
    sample: list[Query],
    budget_s: float,
    min_queries: int = 30,
) -> dict[str, Any]:
    """Build a ``FastEnforcer`` over ``snap``'s lines of ``day``; time it and ``index.decide``
    interleaved on ``sample`` (stops after ``budget_s`` seconds once ``min_queries`` are done)."""
    bug = add_def_bug()
    started = time.perf_counter()
    ordinal = day.toordinal()
    lines = policy_lines(snap, ordinal)
    enforcer = FixedFastEnforcer(
        str(MODEL_PATH), FastLinesAdapter(lines), cache_key_order=list(CACHE_KEY_ORDER)
    )
    build_s = time.perf_counter() - started
    codes = {oid: code for oid, code, _ in snap.organisations}
    org_of = {login: org for _, login, org, _, _ in snap.users}
    fast_ns: list[int] = []
    ours_ns: list[int] = []
    agree = first_ns = 0
    disagreements: list[str] = []
    deadline = time.perf_counter() + budget_s
    clock = time.perf_counter_ns
    decide = index.decide
    for q in sample:
        done = len(fast_ns)
        if done >= min_queries and time.perf_counter() > deadline:
            break
        org = org_of.get(q.user)
        request = (
            user_subject(q.user),
            org_domain(codes[org] if org is not None else "-"),
            q.service,
            q.role or ANY_ROLE,
            caf_name(q.caf),
        )
        t0 = clock()
        ours = decide(q.user, q.service, q.role, q.caf, ordinal).reason is Reason.ALLOWED
        t1 = clock()
        theirs = bool(enforcer.enforce(*request))
        t2 = clock()
        if done == 0:
            first_ns = t2 - t1
        ours_ns.append(t1 - t0)
        fast_ns.append(t2 - t1)
        if ours == theirs:
            agree += 1
        elif len(disagreements) < 10:
            disagreements.append(f"{q} ours={ours} fast_enforcer={theirs}")
    return {
        "add_def_bug": bug,
        "build_s": build_s,
        "lines": len(lines.grants) + len(lines.memberships) + len(lines.subscriptions),
        "first_call_ms": first_ns / 1e6,
        "all": summary(fast_ns),
        "ours_interleaved": summary(ours_ns),
        "agree": agree,
        "compared": len(fast_ns),
        "disagreements": disagreements,
        "budget_s": budget_s,
    }
