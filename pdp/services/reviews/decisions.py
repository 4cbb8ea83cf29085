"""A reviewer keeps or removes an item (R-CNIL-23, R-CNIL-24).

Only the item's reviewer may decide it, once, while the campaign is open; anyone else is told
the item does not exist (nothing of another reviewer's items leaks). The engine must also allow
the reviewer ``review.decide`` on the item's group now (a manager replaced since the opening no
longer may). Removing is a detach (``group.members.edit``, R-MEM-2: the membership ends today)
through the normal write path: authorised, previewable (``?dry_run=true``) and audited like
fiche 6, in the same transaction as the item's outcome. Keeping changes no right: it is recorded
(item and audit trail) and keeps the policy revision.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import Group, Membership, ReviewItem
from pdp.core.errors import Conflict, NotFound
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.services.admin import store
from pdp.services.admin.service import AdminService, Tx
from pdp.services.reviews import records
from pdp.services.reviews.requests import ItemDecision
from pdp.services.reviews.responses import ItemDecided


def _unknown(item_id: int) -> NotFound:
    return NotFound(f"Élément de revue inconnu : {item_id}.", code="REVIEW_ITEM_UNKNOWN")


def _own_item(session: Session, campaign_id: int, item_id: int, actor: str) -> ReviewItem:
    """The item, if it is ``actor``'s (R-CNIL-23); NotFound(REVIEW_ITEM_UNKNOWN) otherwise,
    whether it does not exist or is someone else's."""
    item = session.get(ReviewItem, item_id)
    if item is None or item.campaign_id != campaign_id or item.reviewer != actor:
        raise _unknown(item_id)
    return item


def decide(
    svc: AdminService, actor: str, campaign_id: int, item_id: int, data: ItemDecision
) -> ItemDecided:
    """R-CNIL-24: keep or remove the item; raises NotFound (REVIEW_ITEM_UNKNOWN), Conflict
    (REVIEW_CLOSED, REVIEW_ITEM_DECIDED), Forbidden (the engine's reason)."""
    with svc.uow.begin() as session:
        item = _own_item(session, campaign_id, item_id, actor)
        target = Target("group", item.organisation, item.group_code)
    remove = data.decision == "remove"
    with svc.write(actor, Action.REVIEW_DECIDE, target, new_revision=remove) as tx:
        campaign = records.campaign(tx.session, campaign_id)
        item = _own_item(tx.session, campaign_id, item_id, actor)
        records.still_open(campaign)
        if item.outcome != "pending":
            raise Conflict(
                f"Cet élément a déjà été revu ({item.outcome}) par {item.decided_by}.",
                code="REVIEW_ITEM_DECIDED",
            )
        before = {
            "item": item.id,
            "login": item.login,
            "group": item.group_code,
            "outcome": item.outcome,
        }
        if remove:
            tx.authorise(Action.GROUP_MEMBERS_EDIT, target)  # a detach, fiche 6
            detach_in(tx, item, Action.GROUP_MEMBERS_EDIT)
        item.outcome = "removed" if remove else "kept"
        item.decided_by = actor
        item.decided_on = tx.today
        item.comment = data.comment or None
        org = store.organisation(tx.session, item.organisation)
        tx.record(
            f"review:{campaign_id}",
            item.organisation,
            before,
            {**before, "outcome": item.outcome, "comment": item.comment},
            org.id,
            related=f"user:{item.login}",
        )
        tx.session.flush()
        out = records.item_out(item)
    return ItemDecided(item=out, revision=tx.revision)


def detach_in(tx: Tx, item: ReviewItem, action: Action) -> bool:
    """End the item's membership today in the write ``tx`` (R-MEM-2), audited as a detach;
    return False if it had already ended (someone detached it since the opening)."""
    membership = tx.session.get(Membership, item.membership_id)
    if membership is None or not store.not_ended(membership, tx.today):
        return False
    grp = tx.session.execute(select(Group).where(Group.id == membership.group_id)).scalar_one()
    before = {
        "user": item.login,
        "group": item.group_code,
        "opens_on": store.day(membership.opens_on),
        "closes_on": store.day(membership.closes_on),
    }
    membership.closes_on = tx.today
    item.removed = True
    tx.record(
        f"user:{item.login}",
        item.organisation,
        before,
        {**before, "closes_on": store.day(membership.closes_on)},
        grp.organisation_id,
        action=action,
        related=f"group:{item.organisation}/{item.group_code}",
    )
    return True
