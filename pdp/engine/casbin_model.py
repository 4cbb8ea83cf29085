"""The one module that knows pycasbin: the model, its rules, and the reference enforcer.

The fast index (``pdp.engine.index``) answers checks in production. Casbin defines what the
answer must be: ``policies/rbac_with_domains.conf`` evaluated over the day's lines of
``pdp.engine.casbin_lines``. This module builds a plain ``casbin.Enforcer`` over those lines, used
by the differential tests, by the start-up self-check (``verify``) and by the benchmark.
"""

from __future__ import annotations

import random
from typing import Any

import casbin
from casbin import persist

from pdp.core.catalogue import Catalogue
from pdp.core.errors import ConfigurationError
from pdp.engine.casbin_lines import (
    AdminLines,
    PolicyLines,
    actor_subject,
    admin_lines,
    caf_name,
    feature_name,
    org_domain,
    policy_lines,
    user_subject,
)
from pdp.engine.snapshot import Snapshot
from pdp.policies import ADMIN_MODEL_PATH, MODEL_PATH

ANY_ROLE = "*"  # the model's wildcard for "any role of the service"


def load_model(path: str = str(MODEL_PATH)) -> Any:
    """Parse the Casbin model file; raise ConfigurationError when it is not usable."""
    try:
        model = casbin.Enforcer.new_model(path=path)
    except Exception as exc:  # pycasbin raises bare exceptions of many kinds
        raise ConfigurationError(f"Casbin model {path}: {exc}") from exc
    for sec, key in (("r", "r"), ("p", "p"), ("g", "g"), ("g", "g2"), ("g", "g3"), ("m", "m")):
        if key not in model.model.get(sec, {}):
            raise ConfigurationError(f"Casbin model {path}: section {sec}.{key} missing")
    return model


class LinesAdapter(persist.Adapter):  # type: ignore[misc]
    """A read-only Casbin adapter over one day's lines."""

    def __init__(self, lines: PolicyLines) -> None:
        self._lines = lines

    def load_policy(self, model: Any) -> None:
        """Append every line to the model; lines are already unique."""
        model.model["p"]["p"].policy.extend([list(r) for r in sorted(self._lines.grants)])
        model.model["g"]["g"].policy.extend([list(r) for r in sorted(self._lines.memberships)])
        model.model["g"]["g2"].policy.extend([list(r) for r in sorted(self._lines.subscriptions)])
        model.model["g"]["g3"].policy.extend([list(r) for r in sorted(self._lines.features)])


class ReferenceEnforcer:
    """A plain ``casbin.Enforcer`` over one day's lines, asked with the engine's vocabulary."""

    def __init__(self, lines: PolicyLines, model_path: str = str(MODEL_PATH)) -> None:
        self.enforcer = casbin.Enforcer(model_path, LinesAdapter(lines))
        self.lines = lines

    @classmethod
    def for_day(
        cls, snap: Snapshot, day: int, catalogue: Catalogue | None = None
    ) -> ReferenceEnforcer:
        """Build the reference for the snapshot's organisations on day ordinal ``day`` (with
        the catalogue's features when it is given)."""
        return cls(policy_lines(snap, day, catalogue))

    def allowed(
        self,
        login: str,
        organisation: str,
        service: str,
        role: str | None,
        caf: str | None,
        feature: str | None = None,
    ) -> bool:
        """Return Casbin's answer for a check of user ``login`` of ``organisation`` (asked for
        a role, any role, or a feature)."""
        act = feature_name(feature) if feature is not None else role or ANY_ROLE
        return bool(
            self.enforcer.enforce(
                user_subject(login), org_domain(organisation), service, act, caf_name(caf)
            )
        )

    def line_count(self) -> int:
        """Return how many p/g/g2 rules the enforcer holds."""
        lines = self.lines
        return len(lines.grants) + len(lines.memberships) + len(lines.subscriptions)


def sample_queries(
    snap: Snapshot, services: dict[str, tuple[str, ...]], rng: random.Random, count: int
) -> list[tuple[str, str, str | None, str | None]]:
    """Draw ``count`` (login, service, role, caf) queries over the snapshot's users."""
    users = [(login, org) for _, login, org, _, _ in snap.users if org is not None]
    cafs = sorted({caf for _, _, caf, _, _ in snap.subscriptions}) or ["000"]
    names = sorted(services)
    out: list[tuple[str, str, str | None, str | None]] = []
    for _ in range(count if users else 0):
        login, _org = rng.choice(users)
        service = rng.choice(names)
        role = rng.choice([None, *services[service]])
        caf = rng.choice([None, None, *cafs])
        out.append((login, service, role, caf))
    return out


class AdminLinesAdapter(persist.Adapter):  # type: ignore[misc]
    """A read-only Casbin adapter over the table of rights and one day's admin links."""

    def __init__(self, rules: list[tuple[str, str, str, str]], lines: AdminLines) -> None:
        self._rules = rules
        self._lines = lines

    def load_policy(self, model: Any) -> None:
        """Append the rights as ``p`` and the links as ``g``, ``g2``, ``g3``."""
        model.model["p"]["p"].policy.extend([list(r) for r in self._rules])
        model.model["g"]["g"].policy.extend([list(r) for r in sorted(self._lines.capacities)])
        model.model["g"]["g2"].policy.extend([list(r) for r in sorted(self._lines.perimeter)])
        model.model["g"]["g3"].policy.extend([list(r) for r in sorted(self._lines.below)])


class AdminReferenceEnforcer:
    """Plain Casbin over ``policies/admin.conf``: the reference for administrative decisions."""

    def __init__(self, rules: list[tuple[str, str, str, str]], lines: AdminLines) -> None:
        self.enforcer = casbin.Enforcer(str(ADMIN_MODEL_PATH), AdminLinesAdapter(rules, lines))

    @classmethod
    def for_day(
        cls, snap: Snapshot, day: int, rules: list[tuple[str, str, str, str]]
    ) -> AdminReferenceEnforcer:
        """Build the reference on day ordinal ``day``; afas:habiliter is asked of the decision
        model (R-AFAS-2)."""
        decisions = ReferenceEnforcer.for_day(snap, day)
        codes = {oid: code for oid, code, _ in snap.organisations}
        habiliter = {
            login
            for _, login, org, _s, _e in snap.users
            if org in codes and decisions.allowed(login, codes[org], "afas", "habiliter", None)
        }
        return cls(rules, admin_lines(snap, day, habiliter))

    def allowed(self, actor: str, domain: str, kind: str, obj: str, action: str) -> bool:
        """Casbin's answer: may ``actor`` do ``action`` on ``obj`` (of ``kind``) in ``domain``?

        ``domain`` is the organisation's code, or "*" for the platform.
        """
        dom = "*" if domain == "*" else org_domain(domain)
        return bool(self.enforcer.enforce(actor_subject(actor), dom, kind, obj, action))
