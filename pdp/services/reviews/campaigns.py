"""Opening and closing a campaign (R-CNIL-20, R-CNIL-21, R-CNIL-26).

Both are administrative writes (``AdminService.write``): serialised by the revision lock,
authorised by the engine for every organisation reviewed (``review.open``), audited in the same
transaction. Opening changes no right and keeps the policy revision; a closing that removes what
is left unreviewed takes a new one, each removal authorised on its group (``review.close``) and
audited like any detach.
"""

from __future__ import annotations

import functools
import json

from sqlalchemy import func, insert, select, update

from pdp.adapters.sql.models import Organisation, ReviewCampaign, ReviewItem
from pdp.core.errors import BadRequest, PdpError
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.records.last_use import last_uses
from pdp.services.admin.service import AdminService, Tx
from pdp.services.reviews import records
from pdp.services.reviews.decisions import detach_in
from pdp.services.reviews.opening import plan_items
from pdp.services.reviews.requests import CampaignNew
from pdp.services.reviews.responses import CampaignClosed, CampaignOpened

CHUNK = 500  # rows per bulk statement


def _codes(svc: AdminService, data: CampaignNew) -> list[str] | None:
    """The organisations named (None: every organisation); BadRequest for none or both."""
    if data.all_organisations:
        if data.organisations:
            raise BadRequest(
                "Nommer des organismes ou demander tous les organismes, pas les deux.",
                code="REVIEW_SCOPE",
            )
        return None
    if not data.organisations:
        raise BadRequest(
            "Une campagne de revue porte sur au moins un organisme (R-CNIL-20).",
            code="REVIEW_SCOPE",
        )
    return sorted(set(data.organisations))


def open_campaign(svc: AdminService, actor: str, data: CampaignNew) -> CampaignOpened:
    """R-CNIL-20: open a campaign over the organisations named (an operator: any, or all of
    them; a partner admin: their own), due on ``due_on`` (today or later). Its items are what
    exists now (R-CNIL-21), each given to its reviewer (R-CNIL-22). Raises BadRequest
    (REVIEW_SCOPE, RETROACTIVE_DATE), Forbidden, NotFound (UNKNOWN_ORGANISATION)."""
    today = svc.today()
    if data.due_on < today:
        raise BadRequest(
            f"L'échéance d'une revue ne peut pas être passée (avant le {today.isoformat()}).",
            code="RETROACTIVE_DATE",
        )
    named = _codes(svc, data)
    if named is None:
        svc.engine.refresh()
        codes = sorted(svc.engine.index.org_by_code)
        if not codes:
            raise BadRequest("Aucun organisme à revoir.", code="REVIEW_SCOPE")
    else:
        codes = named
    first = Target("organisation", codes[0])
    with svc.write(actor, Action.REVIEW_OPEN, first, new_revision=False) as tx:
        for code in codes[1:]:
            tx.authorise(Action.REVIEW_OPEN, Target("organisation", code))
        query = select(Organisation.id, Organisation.code)
        if named is not None:
            query = query.where(Organisation.code.in_(codes))
        orgs = dict(tx.session.execute(query).all())
        for code in sorted(set(orgs.values()) - set(codes)):  # created since the engine's index
            tx.authorise(Action.REVIEW_OPEN, Target("organisation", code))
        codes = sorted(orgs.values())  # every organisation, as of this transaction
        campaign = ReviewCampaign(
            title=data.title,
            opened_by=actor,
            opened_on=today,
            due_on=data.due_on,
            remove_unreviewed=data.remove_unreviewed,
            organisations=json.dumps(codes),
        )
        tx.session.add(campaign)
        tx.session.flush()
        used = functools.partial(last_uses, masker=svc.masker)  # R-CNIL-1's pseudonyms
        scope = None if named is None else orgs
        planned = plan_items(tx.session, scope, today, used, svc.catalogue)
        for start in range(0, len(planned), CHUNK):
            chunk = [p.row(campaign.id) for p in planned[start : start + CHUNK]]
            tx.session.execute(insert(ReviewItem), chunk)
        per_org: dict[str, int] = dict.fromkeys(codes, 0)
        for p in planned:
            per_org[p.organisation] += 1
        for org_id, code in sorted(orgs.items(), key=lambda o: o[1]):
            tx.record(
                f"review:{campaign.id}",
                code,
                None,
                {
                    "campaign": campaign.id,
                    "title": data.title,
                    "due_on": data.due_on.isoformat(),
                    "remove_unreviewed": data.remove_unreviewed,
                    "items": per_org[code],
                },
                org_id,
            )
    unassigned = sum(1 for p in planned if p.reviewer is None)
    return CampaignOpened(
        campaign=records.campaign_out(campaign, today), items=len(planned), unassigned=unassigned
    )


def close_campaign(svc: AdminService, actor: str, campaign_id: int) -> CampaignClosed:
    """R-CNIL-26: close the campaign (those who may open it, for each of its organisations):
    every item still pending is reported; if the campaign was opened with
    ``remove_unreviewed``, its membership is also detached today, each removal authorised on
    its group (``review.close``) and audited. Raises NotFound (REVIEW_UNKNOWN), Conflict
    (REVIEW_CLOSED), Forbidden."""
    today = svc.today()
    with svc.uow.begin() as session:
        found = records.campaign(session, campaign_id)
        codes, remove = records.organisations(found), found.remove_unreviewed
    target = Target("organisation", codes[0]) if codes else Target("platform")
    with svc.write(actor, Action.REVIEW_OPEN, target, new_revision=remove) as tx:
        for code in codes[1:]:
            tx.authorise(Action.REVIEW_OPEN, Target("organisation", code))
        session = tx.session
        campaign = records.campaign(session, campaign_id)
        records.still_open(campaign)
        is_pending = (ReviewItem.campaign_id == campaign_id) & (ReviewItem.outcome == "pending")
        reported: dict[str, int] = dict.fromkeys(codes, 0)
        counted = select(ReviewItem.organisation, func.count()).where(is_pending)
        for org, count in session.execute(counted.group_by(ReviewItem.organisation)).all():
            reported[org] = count
        removed = 0
        if remove:
            pending = session.execute(select(ReviewItem).where(is_pending).order_by(ReviewItem.id))
            removed = _remove_reported(tx, list(pending.scalars()))
            session.flush()
        session.execute(update(ReviewItem).where(is_pending).values(outcome="reported"))
        campaign.closed_on = today
        campaign.closed_by = actor
        wanted = set(codes)
        orgs = {
            code: oid
            for code, oid in session.execute(select(Organisation.code, Organisation.id)).all()
            if code in wanted
        }
        for code in codes:
            tx.record(
                f"review:{campaign_id}",
                code,
                {"campaign": campaign_id, "status": "open"},
                {"campaign": campaign_id, "status": "closed", "reported": reported[code]},
                orgs.get(code),
                action=Action.REVIEW_CLOSE,
            )
        session.flush()
    session.expire_all()
    return CampaignClosed(
        campaign=records.campaign_out(campaign, today),
        reported=sum(reported.values()),
        removed=removed,
        revision=tx.revision,
    )


def _remove_reported(tx: Tx, pending: list[ReviewItem]) -> int:
    """Detach the memberships of the items left unreviewed (R-CNIL-26), each authorised on
    its group; return how many were still to detach."""
    for target in sorted({Target("group", i.organisation, i.group_code) for i in pending}):
        tx.authorise(Action.REVIEW_CLOSE, target)
    return sum(detach_in(tx, item, Action.REVIEW_CLOSE) for item in pending)


def close_due(svc: AdminService) -> list[tuple[int, CampaignClosed | PdpError]]:
    """R-CNIL-26 at the due date: close every open campaign whose due date has passed, each as
    the one who opened it (with their rights today); return each campaign's closing, or the
    refusal it met (e.g. its opener since closed: an operator or partner admin closes it)."""
    today = svc.today()
    with svc.uow.begin() as session:
        due = session.execute(
            select(ReviewCampaign.id, ReviewCampaign.opened_by)
            .where(ReviewCampaign.closed_on.is_(None), ReviewCampaign.due_on < today)
            .order_by(ReviewCampaign.id)
        ).all()
    out: list[tuple[int, CampaignClosed | PdpError]] = []
    for campaign_id, opener in due:
        try:
            out.append((campaign_id, close_campaign(svc, svc.open_actor(opener), campaign_id)))
        except PdpError as refused:
            out.append((campaign_id, refused))
    return out
