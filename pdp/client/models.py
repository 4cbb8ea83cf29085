"""The client's answers: plain frozen dataclasses, with no dependency."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ALLOWED = "ALLOWED"


@dataclass(frozen=True, slots=True)
class Reason:
    """A stable reason code (the server's, or one of ``pdp.client.errors``) and a French
    message fit for the portal's users."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Grant:
    """One path that grants access: a group's role, or an Afas profile (``group`` is None)."""

    group: str | None
    service: str
    role: str
    source: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to a check. ``bool(decision)`` is ``decision.allowed``.

    ``decision_id`` and ``revision`` are None when the client failed closed without an answer;
    ``cached`` is True when the answer came from the client's local cache (its ``decision_id``
    is then that of the call that decided it)."""

    allowed: bool
    reason: Reason
    grants: tuple[Grant, ...] = ()
    decision_id: str | None = None
    revision: int | None = None
    at: str | None = None
    cached: bool = False

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def failed(self) -> bool:
        """True when the client denied because the call failed, not because the rules said so."""
        return self.decision_id is None


@dataclass(frozen=True, slots=True)
class ServicePermissions:
    """A service the user may use, with the roles and Cafs it is open for, and the features
    their roles open (None: the service declares none, its roles open all of it)."""

    service: str
    roles: tuple[str, ...]
    cafs: tuple[str, ...]
    grants: tuple[Grant, ...] = ()
    features: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Permissions:
    """Everything a user may use on a day (R-DEC-4), for the welcome page and menus.

    When the call failed, ``services`` is empty (nothing is shown) and ``error`` says why."""

    user: str
    services: tuple[ServicePermissions, ...] = ()
    at: str | None = None
    revision: int | None = None
    decision_id: str | None = None
    error: Reason | None = None
    _by_service: Mapping[str, ServicePermissions] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_service", {s.service: s for s in self.services})

    def allows(
        self,
        service: str,
        role: str | None = None,
        caf: str | None = None,
        feature: str | None = None,
    ) -> bool:
        """True if the listing opens ``service`` (with ``role``, for ``caf``, opening
        ``feature`` when given). The listing tells features apart, not which role opens which
        for which Caf: a feature and a Caf asked together are decided by a check."""
        found = self._by_service.get(service)
        if found is None:
            return False
        if role is not None and role not in found.roles:
            return False
        if feature is not None and (found.features is None or feature not in found.features):
            return False
        return caf is None or caf in found.cafs

    def service_names(self) -> tuple[str, ...]:
        """The services the user may use, in the server's order."""
        return tuple(s.service for s in self.services)


@dataclass(frozen=True, slots=True)
class CheckQuery:
    """One question: may ``user`` use ``service`` (with ``role``, or opening ``feature``, for
    ``caf``) on ``at``?"""

    user: str
    service: str
    role: str | None = None
    caf: str | None = None
    at: str | None = None
    feature: str | None = None
    allocataire: str | None = None  # the file the check is about: logged, never cached

    def body(self) -> dict[str, Any]:
        """The JSON body of the question, without the absent fields."""
        out: dict[str, Any] = {"user": self.user, "service": self.service}
        if self.role is not None:
            out["role"] = self.role
        if self.caf is not None:
            out["caf"] = self.caf
        if self.at is not None:
            out["at"] = self.at
        if self.feature is not None:
            out["feature"] = self.feature
        if self.allocataire is not None:
            out["allocataire"] = self.allocataire
        return out
