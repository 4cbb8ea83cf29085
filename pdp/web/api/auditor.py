"""Auditors' API: the decision log and the audit trail (operators; partner admins, their own
organisation only)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from flask import Blueprint, Response, request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from pdp.core.fields import Allocataire, Code, Login, Name, text
from pdp.records.audit_trail import RecordJson
from pdp.services.audit_pages import ExplainedStep
from pdp.web.api.admin_common import AUTH_ERRORS, actor, answer
from pdp.web.api.guard import page_limit
from pdp.web.api.openapi import route
from pdp.web.container import services

bp = Blueprint("auditor", __name__, url_prefix="/v1")


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}([T ].+)?$")


def _iso_moment(value: Any) -> Any:
    """Only ISO 8601 text: pydantic would also read a number as seconds since the epoch."""
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not _MOMENT.match(value):
        raise ValueError("un jour AAAA-MM-JJ ou une date-heure ISO 8601 est attendue")
    return value


Moment = Annotated[
    dt.datetime,
    BeforeValidator(_iso_moment),
    Field(json_schema_extra={"type": "string", "pattern": _MOMENT.pattern}),
]


class Period(_Query):
    """``from`` (included) and ``to`` (excluded): ISO 8601 date-times (UTC unless an offset is
    given) or days."""

    start: Moment | None = Field(None, alias="from")
    end: Moment | None = Field(None, alias="to")
    limit: int = Field(50, ge=1, le=1000)
    cursor: Annotated[str, text(200)] | None = None


class DecisionsQuery(Period):
    """Filters of the decision log (a service outside the catalogue: 400 UNKNOWN_SERVICE)."""

    user: Login | None = None
    service: Name | None = None
    allowed: bool | None = None
    kind: str | None = Field(None, pattern=r"^(check|permissions|service_users|admin)$")
    organisation: Code | None = None
    allocataire: Allocataire | None = None


class AuditQuery(Period):
    """Filters of the audit trail."""

    actor: Login | None = None
    target: Annotated[str, text(200, 1)] | None = None


class HistoryQuery(_Query):
    """Only the records about this service and/or role (a service or role outside the
    catalogue: 400 UNKNOWN_SERVICE / UNKNOWN_ROLE)."""

    service: Name | None = None
    role: Name | None = None
    limit: int = Field(50, ge=1, le=1000)
    cursor: Annotated[str, text(200)] | None = None


class LoggedDecision(BaseModel):
    """A decision as logged: its id, kind, caller, input, result, reason, grant path
    (``[group, service, role, source]``), revision and evaluation time (µs)."""

    model_config = ConfigDict(extra="allow")
    decision_id: str
    ts: float
    at_time: str
    kind: str
    client: str | None = None
    request_id: str | None = None
    organisation: str | None = None
    user: str | None = None
    allowed: bool
    reason: str
    revision: int
    grants: list[list[str | None]] = []


class ExplainedDecision(LoggedDecision):
    """A logged decision with the audit records behind its grant path."""

    explanation: list[ExplainedStep]


class DecisionPage(BaseModel):
    """A page of decisions, newest first; ``next_cursor`` is null on the last page."""

    decisions: list[LoggedDecision]
    next_cursor: str | None


class AuditPage(BaseModel):
    """A page of audit records, newest first."""

    records: list[RecordJson]
    next_cursor: str | None


class HistoryPage(AuditPage):
    """The history of one user or group."""

    target: str


def _cap(limit: int) -> int:
    return page_limit(limit)


@route(
    bp,
    "GET",
    "/decisions",
    summary="The decision log, newest first (operators; partner admins: their organisation)",
    response=DecisionPage,
    query=DecisionsQuery,
    errors=AUTH_ERRORS,
    auth=True,
)
def list_decisions() -> Response:
    """Filters: user, service, allowed, kind, organisation, allocataire, from, to."""
    who = actor()
    q = DecisionsQuery.model_validate(request.args.to_dict())
    return answer(
        services().auditing.decisions(
            who,
            organisation=q.organisation,
            user=q.user,
            service=q.service,
            allowed=q.allowed,
            kind=q.kind,
            start=q.start,
            end=q.end,
            limit=_cap(q.limit),
            cursor=q.cursor,
            allocataire=q.allocataire,
        )
    )


@route(
    bp,
    "GET",
    "/decisions/<decision_id>",
    summary="One decision with its explanation: who granted each step of its grant path, and when",
    response=ExplainedDecision,
    errors=AUTH_ERRORS,
    auth=True,
)
def get_decision(decision_id: str) -> Response:
    """404 UNKNOWN_DECISION if absent, not yet shipped, or another organisation's."""
    who = actor()
    return answer(services().auditing.decision(who, decision_id))


@route(
    bp,
    "GET",
    "/organisations/<org>/audit",
    summary="The organisation's audit trail, newest first (filters: actor, target, from, to)",
    response=AuditPage,
    query=AuditQuery,
    errors=AUTH_ERRORS,
    auth=True,
)
def audit(org: str) -> Response:
    """Every administrative change of the organisation."""
    who = actor()
    q = AuditQuery.model_validate(request.args.to_dict())
    return answer(
        services().auditing.audit(
            who,
            org,
            by=q.actor,
            target=q.target,
            start=q.start,
            end=q.end,
            limit=_cap(q.limit),
            cursor=q.cursor,
        )
    )


def _history(org: str, target: str) -> Response:
    who = actor()
    q = HistoryQuery.model_validate(request.args.to_dict())
    return answer(
        services().auditing.history(
            who, org, target, service=q.service, role=q.role, limit=_cap(q.limit), cursor=q.cursor
        )
    )


@route(
    bp,
    "GET",
    "/organisations/<org>/users/<login>/history",
    summary="A user's history: changes to the user, their memberships, and the roles of their "
    "groups (?service=&role=: who gave them that role, and when)",
    response=HistoryPage,
    query=HistoryQuery,
    errors=AUTH_ERRORS,
    auth=True,
)
def user_history(org: str, login: str) -> Response:
    """Newest first."""
    return _history(org, f"user:{login}")


@route(
    bp,
    "GET",
    "/organisations/<org>/groups/<code>/history",
    summary="A group's history: its changes, roles, manager and memberships",
    response=HistoryPage,
    query=HistoryQuery,
    errors=AUTH_ERRORS,
    auth=True,
)
def group_history(org: str, code: str) -> Response:
    """Newest first."""
    return _history(org, f"group:{org}/{code}")
