"""Request and response bodies of the decision API (pydantic): validation and OpenAPI schemas."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from pdp.core.fields import (
    Allocataire,
    CafCode,
    Code,
    Day,
    Login,
    MinRevision,
    Name,
    Strict,
    text,
)
from pdp.engine.decision import Reason


class CheckRequest(Strict):
    """May ``user`` use ``service`` (with ``role``, for ``caf``) on ``at`` (default today)?"""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"user": "bruno.petit", "service": "cdap", "role": "T18"},
                {"user": "nadia.benali", "service": "cdap", "caf": "751"},
                {"user": "chloe.roux", "service": "cdap", "at": "2026-01-15"},
                {"user": "bruno.petit", "service": "cdap", "feature": "paiements"},
            ]
        },
    )

    user: Login
    service: Name
    role: Name | None = None
    feature: Name | None = Field(
        default=None,
        description="A feature of the service (GET /v1/catalogue): allowed through any role "
        "that opens it. Not with ``role`` (400 ROLE_AND_FEATURE).",
    )
    caf: CafCode | None = None
    at: Day | None = None
    allocataire: Allocataire | None = None
    min_revision: MinRevision = None


class BatchRequest(Strict):
    """Several checks answered in order; each item is validated on its own."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "checks": [
                        {"user": "bruno.petit", "service": "cdap", "role": "T18"},
                        {"user": "lea.fontaine", "service": "afas"},
                    ]
                }
            ]
        },
    )
    checks: list[Any] = Field(description="Items of the CheckRequest shape.")
    min_revision: MinRevision = None


class GrantOut(BaseModel):
    """One path that grants access."""

    group: str | None = Field(description="Group code; null for an Afas profile.")
    service: str
    role: str
    source: str = Field(description="'group' or 'afas_profile'.")


class ReasonOut(BaseModel):
    """A stable reason code (R-DEC-3) and a French message for the portal's users."""

    code: Reason
    message: str


class CheckResponse(BaseModel):
    """The decision."""

    allowed: bool
    reason: ReasonOut
    grants: list[GrantOut]
    decision_id: str
    revision: int
    at: dt.date


class ErrorBody(BaseModel):
    """A stable error code, a French message and optional details."""

    code: str
    message: str
    details: Any | None = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer."""

    error: ErrorBody


class BatchItem(BaseModel):
    """A decision, or the error of an invalid item."""

    allowed: bool | None = None
    reason: ReasonOut | None = None
    grants: list[GrantOut] | None = None
    decision_id: str | None = None
    revision: int | None = None
    at: dt.date | None = None
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    """One result per check, in the order asked."""

    results: list[BatchItem]


class PermissionsQuery(Strict):
    """Query string of the permissions listing."""

    model_config = ConfigDict(extra="forbid", strict=False)
    at: Day | None = None
    min_revision: MinRevision = None


class ServicePermission(BaseModel):
    """A service the user may use, with the roles and Cafs it is open for."""

    service: str
    roles: list[str]
    features: list[str] | None = Field(
        description="The features the user's roles open, in the catalogue's order; null for a "
        "service that declares none (its roles open the whole service)."
    )
    cafs: list[str]
    grants: list[GrantOut]


class PermissionsResponse(BaseModel):
    """Everything the user may use on the day (R-DEC-4)."""

    user: str
    at: dt.date
    revision: int
    services: list[ServicePermission]
    decision_id: str


class ServiceUsersQuery(Strict):
    """Query string of the service users listing."""

    model_config = ConfigDict(extra="forbid", strict=False)
    organisation: Code | None = None
    role: Name | None = None
    feature: Name | None = None
    at: Day | None = None
    limit: int = Field(default=100, ge=1, description="At most PDP_PAGE_MAX (default 1,000).")
    cursor: Annotated[str, text(400)] | None = None
    min_revision: MinRevision = None


class ServiceUser(BaseModel):
    """A user who may use the service."""

    login: str
    organisation: str
    roles: list[str]


class ServiceUsersResponse(BaseModel):
    """A page of users; ``next_cursor`` is null on the last page."""

    service: str
    role: str | None
    at: dt.date
    revision: int
    users: list[ServiceUser]
    next_cursor: str | None
    decision_id: str


class HealthResponse(BaseModel):
    """Liveness and the revision served."""

    status: str
    revision: int


class ReadyResponse(BaseModel):
    """Readiness: "ready" or "not_ready", and each check's state."""

    status: str
    revision: int
    checks: dict[str, str]
