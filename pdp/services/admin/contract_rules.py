"""What the Caf side's verbs share (R-CON-1, R-TIME-2): date rules, lookups, and what a
subscription must satisfy."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import Convention, Dated, Organisation, Subscription
from pdp.core.catalogue import SystemGroup
from pdp.core.errors import BadRequest, Conflict, NotFound
from pdp.services.admin import store
from pdp.services.admin.requests import DatesEdit
from pdp.services.admin.service import AdminService

# -- Date rules ----------------------------------------------------------------------------


def not_before_today(day: dt.date, today: dt.date, what: str) -> None:
    """Raise BadRequest(RETROACTIVE_DATE) for an opening before today (R-TIME-2)."""
    if day < today:
        raise BadRequest(
            f"{what} ne peut pas commencer dans le passé (R-TIME-2).", code="RETROACTIVE_DATE"
        )


def edit_dates(row: Dated, data: DatesEdit, today: dt.date, what: str) -> None:
    """Apply ``data`` to ``row`` (``what``: "Cette convention"...) without rewriting the past
    (R-TIME-2).

    The opening may change only while it is still to come, and not towards the past; the
    closing may change unless the record ended before today, and not to a day before today.
    An empty body closes the record today.
    """
    fields = data.model_fields_set
    if "opens_on" in fields:
        if data.opens_on is None or row.opens_on <= today or data.opens_on < today:
            raise Conflict(
                f"{what} : seule une date d'ouverture encore à venir peut changer, et pas vers "
                "le passé (R-TIME-2).",
                code="ALREADY_STARTED",
            )
        row.opens_on = data.opens_on
    if "closes_on" in fields or not fields:
        closes_on = data.closes_on if fields else today
        if row.closes_on is not None and row.closes_on < today:
            raise Conflict(
                f"{what} a pris fin le {row.closes_on.isoformat()} : l'historique ne change "
                "pas (R-TIME-2).",
                code="ALREADY_ENDED",
            )
        store.not_in_past(closes_on, today, "La date de clôture")
        row.closes_on = closes_on
    if "opens_on" in fields:
        store.check_window(row.opens_on, row.closes_on)
    else:
        store.check_closing(row.opens_on, row.closes_on)


def overlaps(a: Dated, opens_on: dt.date, closes_on: dt.date | None) -> bool:
    """Whether ``a``'s window meets [opens_on, closes_on)."""
    return (a.closes_on is None or opens_on < a.closes_on) and (
        closes_on is None or a.opens_on < closes_on
    )


# -- Lookups -------------------------------------------------------------------------------


def convention(session: Session, org: Organisation, reference: str) -> Convention:
    found = session.execute(
        select(Convention).where(
            Convention.organisation_id == org.id, Convention.reference == reference
        )
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(
            f"Convention inconnue dans {org.code} : {reference!r}.", code="UNKNOWN_CONVENTION"
        )
    return found


def subscription(
    session: Session, org: Organisation, sub_id: int
) -> tuple[Subscription, Convention]:
    row = session.execute(
        select(Subscription, Convention)
        .join(Convention, Convention.id == Subscription.convention_id)
        .where(Subscription.id == sub_id, Convention.organisation_id == org.id)
    ).first()
    if row is None:
        raise NotFound(
            f"Bulletin d'adhésion inconnu dans {org.code} : {sub_id}.", "UNKNOWN_SUBSCRIPTION"
        )
    return row[0], row[1]


# -- Subscriptions' rules ------------------------------------------------------------------


def check_subscription(
    session: Session,
    conv: Convention,
    service: str,
    opens_on: dt.date,
    closes_on: dt.date | None,
    today: dt.date,
    exclude: int | None = None,
) -> None:
    """Raise Conflict unless [opens_on, closes_on) lies within the convention's window and no
    other subscription to ``service`` under it that has not ended overlaps it (R-CON-1)."""
    inside = conv.opens_on <= opens_on and (
        conv.closes_on is None
        or (opens_on < conv.closes_on and closes_on is not None and closes_on <= conv.closes_on)
    )
    if not inside:
        raise Conflict(
            f"Le bulletin d'adhésion doit être compris dans la période de la convention "
            f"{conv.reference} ({conv.opens_on.isoformat()} – "
            f"{store.day(conv.closes_on) or 'sans fin'}) (R-CON-1).",
            code="OUTSIDE_CONVENTION",
        )
    for other in session.execute(
        select(Subscription).where(
            Subscription.convention_id == conv.id,
            Subscription.service == service,
            (Subscription.closes_on.is_(None)) | (Subscription.closes_on > today),
        )
    ).scalars():
        if other.id != exclude and overlaps(other, opens_on, closes_on):
            raise Conflict(
                f"Le service {service} est déjà souscrit sous la convention {conv.reference} "
                f"sur cette période (bulletin {other.id}, R-CON-1).",
                code="ALREADY_SUBSCRIBED",
                details={"subscription": other.id},
            )


def system_groups_of(svc: AdminService, service: str) -> tuple[SystemGroup, ...]:
    """The system groups ``service`` makes (none for a service the catalogue has dropped)."""
    known = svc.catalogue.services.get(service)
    return () if known is None else known.system_groups
