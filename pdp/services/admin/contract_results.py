"""The Caf side's typed results (R-CON-4) built from its rows: what the verbs of
``pdp.services.admin.contracts`` answer, and (dumped to JSON) what the audit trail records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pdp.adapters.sql.models import Convention, Organisation, PartnerAdmin, Subscription
from pdp.services.admin import store
from pdp.services.admin.responses import (
    ConventionItem,
    ConventionOut,
    DesignationItem,
    DesignationOut,
    OrganisationItem,
    OrganisationOut,
    SubscriptionItem,
    SubscriptionOut,
)


def organisation_out(org: Organisation) -> OrganisationOut:
    """The public form of an organisation."""
    return OrganisationOut(
        code=org.code,
        name=org.name,
        kind=org.kind,
        opens_on=org.opens_on.isoformat(),
        closes_on=store.day(org.closes_on),
    )


def organisation_item(org: Organisation, today: dt.date) -> OrganisationItem:
    """An organisation as listed: its public form, and whether it is open ``today``."""
    return OrganisationItem(
        code=org.code,
        name=org.name,
        kind=org.kind,
        opens_on=org.opens_on.isoformat(),
        closes_on=store.day(org.closes_on),
        open=store.is_open(org, today),
    )


def convention_out(conv: Convention, caf_code: str) -> ConventionOut:
    """The public form of a convention (without its subscriptions)."""
    return ConventionOut(
        reference=conv.reference,
        caf=caf_code,
        opens_on=conv.opens_on.isoformat(),
        closes_on=store.day(conv.closes_on),
    )


def convention_item(
    conv: Convention, caf_code: str, subscriptions: Iterable[Subscription], today: dt.date
) -> ConventionItem:
    """A convention of the contract: its public form, whether it is open ``today``, and its
    ``subscriptions`` (in the order given)."""
    return ConventionItem(
        reference=conv.reference,
        caf=caf_code,
        opens_on=conv.opens_on.isoformat(),
        closes_on=store.day(conv.closes_on),
        open=store.is_open(conv, today),
        subscriptions=[subscription_item(s, conv.reference, today) for s in subscriptions],
    )


def subscription_out(sub: Subscription, reference: str) -> SubscriptionOut:
    """The public form of a subscription under the convention ``reference``."""
    return SubscriptionOut(
        id=sub.id,
        convention=reference,
        service=sub.service,
        opens_on=sub.opens_on.isoformat(),
        closes_on=store.day(sub.closes_on),
    )


def subscription_item(sub: Subscription, reference: str, today: dt.date) -> SubscriptionItem:
    """A subscription of the contract: its public form, and whether it is open ``today``."""
    return SubscriptionItem(
        id=sub.id,
        convention=reference,
        service=sub.service,
        opens_on=sub.opens_on.isoformat(),
        closes_on=store.day(sub.closes_on),
        open=store.is_open(sub, today),
    )


def designation_out(designation: PartnerAdmin, login: str) -> DesignationOut:
    """The public form of a partner admin designation."""
    return DesignationOut(
        login=login,
        opens_on=designation.opens_on.isoformat(),
        closes_on=store.day(designation.closes_on),
    )


def designation_item(designation: PartnerAdmin, login: str, today: dt.date) -> DesignationItem:
    """A designation of the contract: its public form, whether it is open ``today``, and
    whether it is current (not ended: it may still end, R-TIME-2)."""
    return DesignationItem(
        login=login,
        opens_on=designation.opens_on.isoformat(),
        closes_on=store.day(designation.closes_on),
        open=store.is_open(designation, today),
        current=store.not_ended(designation, today),
    )
