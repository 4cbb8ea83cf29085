"""Access reviews (revue des habilitations, R-CNIL-20..29): thin views over
``pdp.services.reviews``. Every write may be previewed with ``?dry_run=true``."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, request
from pydantic import BaseModel, ConfigDict, Field

from pdp.services.reviews import campaigns, decisions, reads, results
from pdp.services.reviews.requests import CampaignNew, ItemDecision, ItemsQuery
from pdp.services.reviews.responses import (
    CampaignClosed,
    CampaignDetail,
    CampaignList,
    CampaignOpened,
    CampaignResults,
    ItemDecided,
    ItemList,
)
from pdp.web.api.admin_common import AUTH_ERRORS, actor, answer, body
from pdp.web.api.guard import page_limit
from pdp.web.api.openapi import route
from pdp.web.container import services

bp = Blueprint("admin_reviews", __name__, url_prefix="/v1")


class ResultsQuery(BaseModel):
    """The results' format: ``json`` (the default) or ``csv``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    fmt: Literal["json", "csv"] = Field("json", alias="format")


@route(
    bp,
    "POST",
    "/reviews",
    summary="Open an access review over organisations (operators: any, or all; partner "
    "admins: their own), with a due date (R-CNIL-20)",
    response=CampaignOpened,
    body=CampaignNew,
    errors=AUTH_ERRORS,
    status=201,
    auth=True,
)
def open_review() -> Response:
    """R-CNIL-20, R-CNIL-21: the items are what exists now, each given to its reviewer."""
    who = actor()
    return answer(campaigns.open_campaign(services().admin, who, body(CampaignNew)), 201)


@route(
    bp,
    "GET",
    "/reviews",
    summary="The access reviews the actor follows or reviews in, newest first",
    response=CampaignList,
    errors=AUTH_ERRORS,
    auth=True,
)
def list_reviews() -> Response:
    """R-CNIL-23: a reviewer sees the campaigns where they have items."""
    return answer(reads.list_campaigns(services().admin, actor()))


@route(
    bp,
    "GET",
    "/reviews/<int:campaign>",
    summary="An access review and its progress per reviewer and per organisation (R-CNIL-25)",
    response=CampaignDetail,
    errors=AUTH_ERRORS,
    auth=True,
)
def review(campaign: int) -> Response:
    """R-CNIL-25, limited to what the actor follows (and their own items)."""
    return answer(reads.detail(services().admin, actor(), campaign))


@route(
    bp,
    "GET",
    "/reviews/<int:campaign>/items",
    summary="The actor's own items in an access review, by pages (R-CNIL-23)",
    response=ItemList,
    query=ItemsQuery,
    errors=AUTH_ERRORS,
    auth=True,
)
def review_items(campaign: int) -> Response:
    """R-CNIL-23: never another reviewer's items."""
    who = actor()
    q = ItemsQuery.model_validate(request.args.to_dict())
    found = reads.my_items(services().admin, who, campaign, page_limit(q.limit), q.cursor)
    return answer(found)


@route(
    bp,
    "POST",
    "/reviews/<int:campaign>/items/<int:item>/decision",
    summary="Keep or remove one's item, with an optional comment; removing detaches the user "
    "from the group today (R-CNIL-24; ?dry_run=true previews it)",
    response=ItemDecided,
    body=ItemDecision,
    errors=AUTH_ERRORS,
    auth=True,
)
def decide_item(campaign: int, item: int) -> Response:
    """R-CNIL-24: the reviewer's decision, through the normal write path."""
    who = actor()
    data = body(ItemDecision)
    return answer(decisions.decide(services().admin, who, campaign, item, data))


@route(
    bp,
    "POST",
    "/reviews/<int:campaign>/close",
    summary="Close an access review: what is left unreviewed is reported, and removed if the "
    "review was opened so (R-CNIL-26; ?dry_run=true previews it)",
    response=CampaignClosed,
    errors=AUTH_ERRORS,
    auth=True,
)
def close_review(campaign: int) -> Response:
    """R-CNIL-26."""
    return answer(campaigns.close_campaign(services().admin, actor(), campaign))


@route(
    bp,
    "GET",
    "/reviews/<int:campaign>/results",
    summary="The results of an access review, every item with its outcome, streamed as JSON or "
    "CSV (R-CNIL-27)",
    response=CampaignResults,
    query=ResultsQuery,
    errors=AUTH_ERRORS,
    auth=True,
    content=("application/json", "text/csv"),
)
def review_results(campaign: int) -> Response:
    """R-CNIL-27: over the organisations the actor follows."""
    who = actor()
    q = ResultsQuery.model_validate(request.args.to_dict())
    found = results.results(services().admin, who, campaign)
    return Response(
        found.chunks(q.fmt),
        mimetype=results.MEDIA_TYPES[q.fmt],
        headers={"Content-Disposition": f'attachment; filename="revue-{campaign}.{q.fmt}"'},
    )
