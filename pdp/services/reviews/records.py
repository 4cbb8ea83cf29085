"""The campaigns' rows as the API answers them, and the lookups the verbs share."""

from __future__ import annotations

import datetime as dt
import json
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import ReviewCampaign, ReviewItem
from pdp.core.errors import Conflict, NotFound
from pdp.services.reviews.responses import (
    CampaignOut,
    Outcome,
    ReviewItemOut,
    ReviewRight,
    Status,
)

KINDS = ("manager", "partner_admin", "none")


def organisations(campaign: ReviewCampaign) -> list[str]:
    """The codes of the organisations the campaign reviews."""
    return list(json.loads(campaign.organisations))


def status(campaign: ReviewCampaign, today: dt.date) -> Status:
    """closed; overdue (open after its due date, R-CNIL-26); or open."""
    if campaign.closed_on is not None:
        return "closed"
    return "overdue" if today > campaign.due_on else "open"


def campaign_out(campaign: ReviewCampaign, today: dt.date) -> CampaignOut:
    """The public form of a campaign."""
    return CampaignOut(
        id=campaign.id,
        title=campaign.title,
        opened_by=campaign.opened_by,
        opened_on=campaign.opened_on,
        due_on=campaign.due_on,
        remove_unreviewed=campaign.remove_unreviewed,
        organisations=organisations(campaign),
        status=status(campaign, today),
        closed_on=campaign.closed_on,
        closed_by=campaign.closed_by,
    )


def item_out(item: ReviewItem) -> ReviewItemOut:
    """The public form of an item."""
    kind = item.reviewer_kind if item.reviewer_kind in KINDS else "none"
    return ReviewItemOut(
        id=item.id,
        campaign=item.campaign_id,
        organisation=item.organisation,
        login=item.login,
        group=item.group_code,
        reviewer=item.reviewer,
        reviewer_kind=kind,
        rights=[ReviewRight.model_validate(r) for r in json.loads(item.rights)],
        outcome=cast(Outcome, item.outcome),
        removed=item.removed,
        decided_by=item.decided_by,
        decided_on=item.decided_on,
        comment=item.comment,
    )


def campaign(session: Session, campaign_id: int) -> ReviewCampaign:
    """The campaign ``campaign_id``; raise NotFound(REVIEW_UNKNOWN)."""
    found = session.get(ReviewCampaign, campaign_id)
    if found is None:
        raise NotFound(f"Campagne de revue inconnue : {campaign_id}.", code="REVIEW_UNKNOWN")
    return found


def still_open(campaign: ReviewCampaign) -> None:
    """Raise Conflict(REVIEW_CLOSED) once the campaign is closed (R-CNIL-26)."""
    if campaign.closed_on is not None:
        raise Conflict(
            f"La campagne de revue {campaign.id} est close depuis le "
            f"{campaign.closed_on.isoformat()} : plus rien n'y change.",
            code="REVIEW_CLOSED",
        )


def items(session: Session, campaign_id: int) -> list[ReviewItem]:
    """Every item of the campaign, by id."""
    return list(
        session.execute(
            select(ReviewItem).where(ReviewItem.campaign_id == campaign_id).order_by(ReviewItem.id)
        ).scalars()
    )
