"""Subscriptions (bulletins d'adhésion): each opens one service under a convention (R-CON-1,
R-CON-2), addressed by its id or by its convention and service; the system groups of the
service follow them (R-GRP-3)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import Convention, Organisation, Subscription
from pdp.core.errors import BadRequest, Conflict, NotFound
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.engine.snapshot import STRUCTURE
from pdp.services.admin import store, system_groups
from pdp.services.admin.contract_results import subscription_out
from pdp.services.admin.contract_rules import (
    check_subscription,
    convention,
    edit_dates,
    not_before_today,
    subscription,
    system_groups_of,
)
from pdp.services.admin.requests import DatesEdit, SubscriptionNew
from pdp.services.admin.responses import SubscriptionOut, SubscriptionWritten
from pdp.services.admin.service import AdminService, Tx


def add_subscription(
    svc: AdminService, actor: str, org_code: str, reference: str, data: SubscriptionNew
) -> SubscriptionWritten:
    """Open a service under a convention (a bulletin d'adhésion, R-CON-1, R-CON-2).

    The service must be in the catalogue (400 UNKNOWN_SERVICE); the window must lie within the
    convention's (409 OUTSIDE_CONVENTION; without a closing date under a convention that closes,
    the subscription closes with it); no other subscription to the service under the convention
    may overlap it (409 ALREADY_SUBSCRIBED).
    """
    with svc.write(actor, Action.CONTRACT_MANAGE, Target("organisation", org_code)) as tx:
        service = svc.catalogue.service(data.service).name
        org = store.organisation(tx.session, org_code)
        conv = convention(tx.session, org, reference)
        opens_on = data.opens_on or max(tx.today, conv.opens_on)
        not_before_today(opens_on, tx.today, "Un bulletin d'adhésion")
        closes_on = data.closes_on if data.closes_on is not None else conv.closes_on
        check_subscription(tx.session, conv, service, opens_on, closes_on, tx.today)
        store.check_window(opens_on, closes_on)
        sub = Subscription(
            convention_id=conv.id, service=service, opens_on=opens_on, closes_on=closes_on
        )
        tx.session.add(sub)
        tx.session.flush()
        out = subscription_out(sub, conv.reference)
        tx.record(
            f"organisation:{org.code}",
            org.code,
            None,
            out.model_dump(mode="json"),
            org.id,
            scope=(STRUCTURE, None),
        )
        system_groups.follow(tx, org, service, svc.catalogue.service(service).system_groups)
    return SubscriptionWritten(subscription=out, revision=tx.revision)


def edit_subscription(
    svc: AdminService, actor: str, org_code: str, subscription_id: int, data: DatesEdit
) -> SubscriptionWritten:
    """Change a subscription's dates (not retroactively, R-TIME-2); it stays within its
    convention and overlaps no other subscription to the same service (R-CON-1)."""
    if not data.model_fields_set:
        raise BadRequest("Aucune modification demandée.", code="EMPTY_EDIT")
    with svc.write(actor, Action.CONTRACT_MANAGE, Target("organisation", org_code)) as tx:
        org = store.organisation(tx.session, org_code)
        sub, conv = subscription(tx.session, org, subscription_id)
        out = _edit(svc, tx, org, sub, conv, data)
    return SubscriptionWritten(subscription=out, revision=tx.revision)


def edit_service_subscription(
    svc: AdminService, actor: str, org_code: str, reference: str, service: str, data: DatesEdit
) -> SubscriptionWritten:
    """The same change, the subscription named by its convention and service: the one that has
    not ended (open, or to come). 404 UNKNOWN_SUBSCRIPTION without one; 409
    AMBIGUOUS_SUBSCRIPTION when one is open and another is to come (name it by its id)."""
    if not data.model_fields_set:
        raise BadRequest("Aucune modification demandée.", code="EMPTY_EDIT")
    with svc.write(actor, Action.CONTRACT_MANAGE, Target("organisation", org_code)) as tx:
        org = store.organisation(tx.session, org_code)
        conv = convention(tx.session, org, reference)
        sub = _current(tx.session, conv, service, tx.today)
        out = _edit(svc, tx, org, sub, conv, data)
    return SubscriptionWritten(subscription=out, revision=tx.revision)


def _current(session: Session, conv: Convention, service: str, today: dt.date) -> Subscription:
    found = list(
        session.execute(
            select(Subscription)
            .where(
                Subscription.convention_id == conv.id,
                Subscription.service == service,
                Subscription.closes_on.is_(None) | (Subscription.closes_on > today),
            )
            .order_by(Subscription.opens_on)
        ).scalars()
    )
    if not found:
        raise NotFound(
            f"Aucun bulletin d'adhésion en cours à {service} sous la convention {conv.reference}.",
            "UNKNOWN_SUBSCRIPTION",
        )
    if len(found) > 1:
        raise Conflict(
            f"Plusieurs bulletins d'adhésion à {service} sous {conv.reference} n'ont pas pris "
            f"fin ({', '.join(str(s.id) for s in found)}) : le désigner par son numéro.",
            code="AMBIGUOUS_SUBSCRIPTION",
            details={"subscriptions": [s.id for s in found]},
        )
    return found[0]


def _edit(
    svc: AdminService,
    tx: Tx,
    org: Organisation,
    sub: Subscription,
    conv: Convention,
    data: DatesEdit,
) -> SubscriptionOut:
    before = subscription_out(sub, conv.reference).model_dump(mode="json")
    edit_dates(sub, data, tx.today, "Ce bulletin d'adhésion")
    check_subscription(
        tx.session, conv, sub.service, sub.opens_on, sub.closes_on, tx.today, exclude=sub.id
    )
    out = subscription_out(sub, conv.reference)
    tx.record(
        f"organisation:{org.code}",
        org.code,
        before,
        out.model_dump(mode="json"),
        org.id,
        scope=(STRUCTURE, None),
    )
    system_groups.follow(tx, org, sub.service, system_groups_of(svc, sub.service))
    return out
