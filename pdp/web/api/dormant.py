"""Dormant rights (R-CNIL-3 … R-CNIL-5): ``GET /v1/dormant-rights`` (operators, every
organisation) and ``GET /v1/organisations/<org>/dormant-rights`` (operators; the organisation's
partner admins), with ``?days=N`` (default 90)."""

from __future__ import annotations

from flask import Blueprint, Response, request
from pydantic import BaseModel, ConfigDict, Field

from pdp.services import dormant
from pdp.web.api.admin_common import AUTH_ERRORS, actor, answer
from pdp.web.api.openapi import route
from pdp.web.container import services

bp = Blueprint("dormant", __name__, url_prefix="/v1")


class DormantQuery(BaseModel):
    """How many days without a use make a right dormant (R-CNIL-4)."""

    model_config = ConfigDict(extra="forbid")
    days: int = Field(dormant.DEFAULT_DAYS, ge=1, le=dormant.MAX_DAYS)


def _days() -> int:
    """``?days``, judged (INVALID_DAYS) before anything else of the query (UNKNOWN_FIELD)."""
    days = dormant.parse_days(request.args.get("days"))
    DormantQuery.model_validate({**request.args.to_dict(), "days": days})
    return days


@route(
    bp,
    "GET",
    "/dormant-rights",
    summary="Users of every organisation holding rights unused for N days (operators)",
    response=dormant.DormantReport,
    query=DormantQuery,
    errors=AUTH_ERRORS,
    auth=True,
)
def national() -> Response:
    """R-CNIL-3: the national report; its counts feed the metrics (R-CNIL-6)."""
    who = actor()
    return answer(dormant.report(services().admin, who, None, _days()))


@route(
    bp,
    "GET",
    "/organisations/<org>/dormant-rights",
    summary="Users of the organisation holding rights unused for N days (operators; partner "
    "admins: their organisation)",
    response=dormant.DormantReport,
    query=DormantQuery,
    errors=AUTH_ERRORS,
    auth=True,
)
def of_organisation(org: str) -> Response:
    """R-CNIL-3: one organisation's report."""
    who = actor()
    return answer(dormant.report(services().admin, who, org, _days()))
