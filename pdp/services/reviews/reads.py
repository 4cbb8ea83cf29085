"""What each actor may read of the campaigns (R-CNIL-23, R-CNIL-25, R-CNIL-27).

- Those who may open a campaign over an organisation (``review.open``: operators, that
  organisation's partner admins) follow it there: the campaign, its progress per reviewer and
  per organisation, its results (``results``), limited to those organisations.
- A reviewer sees the campaigns where they have items, their own progress, and their own items,
  never another reviewer's (R-CNIL-23).
- Anyone else is told the campaign does not exist.

Queries never write.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select

from pdp.adapters.sql.models import ReviewCampaign, ReviewItem
from pdp.core.errors import NotFound
from pdp.engine.actions import Action
from pdp.engine.rules import AdminReason, Target
from pdp.services.admin.service import AdminService
from pdp.services.reviews import records
from pdp.services.reviews.responses import (
    CampaignDetail,
    CampaignList,
    ItemList,
    Progress,
    ReviewItemOut,
)

OUTCOMES = ("pending", "kept", "removed", "reported")


def followed(svc: AdminService, actor: str, codes: list[str], *, first: bool = False) -> list[str]:
    """The organisations of ``codes`` where ``actor`` may open (hence follow) a review (with
    ``first``: the first one only, enough to know whether there is any). A user who is not an
    operator acts only in their own organisation (R-USR-1): only it is asked."""
    svc.engine.refresh()
    user = svc.engine.index.users.get(actor)
    if user is None:
        return []
    if not user.is_operator:
        own = user.org.code if user.org is not None else None
        codes = [own] if own in codes and own is not None else []
    out = []
    for code in codes:
        target = Target("organisation", code)
        if svc.engine.authorise(actor, Action.REVIEW_OPEN, target) is AdminReason.ALLOWED:
            out.append(code)
            if first:
                break
    return out


def involved(svc: AdminService, actor: str) -> bool:
    """Whether ``actor`` may open a campaign (their organisation, or any for an operator) or
    has items to review: whether the console shows them "Revue des habilitations"."""
    svc.engine.refresh()
    user = svc.engine.index.users.get(actor)
    if user is None:
        return False
    if user.is_operator or (user.org is not None and followed(svc, actor, [user.org.code])):
        return True
    with svc.uow.begin() as session:
        found = session.execute(
            select(ReviewItem.id).where(ReviewItem.reviewer == actor).limit(1)
        ).first()
    return found is not None


def _unknown(campaign_id: int) -> NotFound:
    return NotFound(f"Campagne de revue inconnue : {campaign_id}.", code="REVIEW_UNKNOWN")


def list_campaigns(svc: AdminService, actor: str) -> CampaignList:
    """The campaigns ``actor`` follows or reviews in, newest first."""
    today = svc.today()
    with svc.uow.begin() as session:
        reviewing = set(
            session.execute(
                select(ReviewItem.campaign_id).where(ReviewItem.reviewer == actor).distinct()
            ).scalars()
        )
        found = session.execute(select(ReviewCampaign).order_by(ReviewCampaign.id.desc()))
        out = [
            records.campaign_out(c, today)
            for c in found.scalars()
            if c.id in reviewing or followed(svc, actor, records.organisations(c), first=True)
        ]
    return CampaignList(campaigns=out)


def _progress(counts: dict[str | None, dict[str, int]]) -> list[Progress]:
    return [
        Progress(key=key, total=sum(by.values()), **{o: by.get(o, 0) for o in OUTCOMES})
        for key, by in sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    ]


def detail(svc: AdminService, actor: str, campaign_id: int) -> CampaignDetail:
    """R-CNIL-25: the campaign and its progress per reviewer and per organisation, over the
    organisations ``actor`` follows, plus the actor's own items as a reviewer."""
    today = svc.today()
    with svc.uow.begin() as session:
        campaign = records.campaign(session, campaign_id)
        seen = set(followed(svc, actor, records.organisations(campaign)))
        rows = session.execute(
            select(ReviewItem.organisation, ReviewItem.reviewer, ReviewItem.outcome, func.count())
            .where(ReviewItem.campaign_id == campaign_id)
            .group_by(ReviewItem.organisation, ReviewItem.reviewer, ReviewItem.outcome)
        ).all()
        by_reviewer: dict[str | None, dict[str, int]] = defaultdict(dict)
        by_org: dict[str | None, dict[str, int]] = defaultdict(dict)
        own = False
        for org, reviewer, outcome, count in rows:
            if org in seen or reviewer == actor:
                own = own or reviewer == actor
                mine = by_reviewer[reviewer]
                mine[outcome] = mine.get(outcome, 0) + count
            if org in seen:
                theirs = by_org[org]
                theirs[outcome] = theirs.get(outcome, 0) + count
        if not seen and not own:
            raise _unknown(campaign_id)
        return CampaignDetail(
            campaign=records.campaign_out(campaign, today),
            by_reviewer=_progress(by_reviewer),
            by_organisation=_progress(by_org),
        )


def my_items(
    svc: AdminService, actor: str, campaign_id: int, limit: int, cursor: int | None = None
) -> ItemList:
    """R-CNIL-23: a page of ``actor``'s own items, by id; NotFound unless the actor reviews or
    follows the campaign."""
    today = svc.today()
    with svc.uow.begin() as session:
        campaign = records.campaign(session, campaign_id)
        query = select(ReviewItem).where(
            ReviewItem.campaign_id == campaign_id, ReviewItem.reviewer == actor
        )
        if cursor is not None:
            query = query.where(ReviewItem.id > cursor)
        page = list(session.execute(query.order_by(ReviewItem.id).limit(limit + 1)).scalars())
        if (
            not page
            and cursor is None
            and not followed(svc, actor, records.organisations(campaign))
        ):
            raise _unknown(campaign_id)
        more = len(page) > limit
        page = page[:limit]
        return ItemList(
            campaign=records.campaign_out(campaign, today),
            items=[records.item_out(i) for i in page],
            next_cursor=page[-1].id if more else None,
        )


def my_item(svc: AdminService, actor: str, campaign_id: int, item_id: int) -> ReviewItemOut:
    """R-CNIL-23: one of ``actor``'s own items; NotFound(REVIEW_ITEM_UNKNOWN) for any other."""
    with svc.uow.begin() as session:
        item = session.get(ReviewItem, item_id)
        if item is None or item.campaign_id != campaign_id or item.reviewer != actor:
            raise NotFound(f"Élément de revue inconnu : {item_id}.", code="REVIEW_ITEM_UNKNOWN")
        return records.item_out(item)
