"""The Caf side (R-CON-4): organisations, conventions, subscriptions, partner admins.

Only operators write here (policies/admin_policy.csv); partner admins read the contract
(R-ADM-5). Dates follow R-TIME: nothing is deleted, a record ends by its closing date, and no
write changes what was true on a past day (R-TIME-2): openings and closings are never set before
today, and a record that has already ended or started keeps that date.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import (
    Caf,
    Convention,
    Organisation,
    PartnerAdmin,
    Subscription,
    User,
)
from pdp.core.errors import BadRequest, Conflict, NotFound
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.engine.snapshot import STRUCTURE
from pdp.services.admin import store, system_groups
from pdp.services.admin.contract_results import (
    convention_item,
    convention_out,
    designation_item,
    designation_out,
    organisation_item,
    organisation_out,
    subscription_out,
)
from pdp.services.admin.contract_rules import (
    convention,
    edit_dates,
    not_before_today,
    system_groups_of,
)
from pdp.services.admin.network import within_caf
from pdp.services.admin.requests import (
    ConventionNew,
    DatesEdit,
    OrganisationNew,
    UserRef,
)
from pdp.services.admin.responses import (
    AdminEnded,
    AdminWritten,
    ContractOut,
    ConventionItem,
    ConventionWritten,
    OrganisationList,
    OrganisationWritten,
)
from pdp.services.admin.service import AdminService
from pdp.services.admin.users import create_user_in

MAX_PARTNER_ADMINS = 2  # R-ADM-1


def _designations(
    session: Session, org: Organisation, today: dt.date
) -> list[tuple[PartnerAdmin, User]]:
    """The organisation's designations that have not ended (open now or later), with their
    users."""
    return [
        (a, u)
        for a, u in session.execute(
            select(PartnerAdmin, User)
            .join(User, User.id == PartnerAdmin.user_id)
            .where(
                PartnerAdmin.organisation_id == org.id,
                (PartnerAdmin.closes_on.is_(None)) | (PartnerAdmin.closes_on > today),
            )
        )
    ]


# -- Verbs ---------------------------------------------------------------------------------


def create_organisation(
    svc: AdminService, actor: str, data: OrganisationNew
) -> OrganisationWritten:
    """Register a partner organisation (R-CON-4); 409 ORGANISATION_EXISTS if the code is taken."""
    with svc.write(actor, Action.ORGANISATION_CREATE, Target("platform")) as tx:
        taken = tx.session.execute(
            select(Organisation.id).where(Organisation.code == data.code)
        ).first()
        if taken is not None:
            raise Conflict(f"L'organisme {data.code!r} existe déjà.", "ORGANISATION_EXISTS")
        opens_on = data.opens_on or tx.today
        not_before_today(opens_on, tx.today, "Un organisme")
        org = Organisation(code=data.code, name=data.name, kind=data.kind, opens_on=opens_on)
        tx.session.add(org)
        tx.session.flush()
        out = organisation_out(org)
        tx.record(f"organisation:{org.code}", org.code, None, out.model_dump(mode="json"), org.id)
    return OrganisationWritten(organisation=out, revision=tx.revision)


def list_organisations(svc: AdminService, actor: str) -> OrganisationList:
    """Every registered organisation by code, with whether it is open today (operators only,
    ``organisation.list``: 403 with the engine's reason for anyone else)."""
    today = svc.today()
    with svc.read(actor, Action.ORGANISATION_LIST, Target("platform")) as session:
        orgs = [
            organisation_item(org, today)
            for org in session.execute(select(Organisation).order_by(Organisation.code)).scalars()
        ]
    return OrganisationList(organisations=orgs)


def contract(svc: AdminService, actor: str, org_code: str) -> ContractOut:
    """The organisation's contract: conventions, their subscriptions, partner admins (R-CON-4,
    R-ADM-5: operators and the organisation's partner admins)."""
    today = svc.today()
    with svc.read(actor, Action.CONTRACT_READ, Target("organisation", org_code)) as session:
        org = store.organisation(session, org_code)
        conventions: list[ConventionItem] = []
        for conv, caf in session.execute(
            select(Convention, Caf.code)
            .join(Caf, Caf.id == Convention.caf_id)
            .where(Convention.organisation_id == org.id)
            .order_by(Convention.reference)
        ):
            subs = session.execute(
                select(Subscription)
                .where(Subscription.convention_id == conv.id)
                .order_by(Subscription.service, Subscription.opens_on, Subscription.id)
            ).scalars()
            conventions.append(convention_item(conv, caf, subs, today))
        admins = [
            designation_item(a, login, today)
            for a, login in session.execute(
                select(PartnerAdmin, User.login)
                .join(User, User.id == PartnerAdmin.user_id)
                .where(PartnerAdmin.organisation_id == org.id)
                .order_by(User.login, PartnerAdmin.opens_on)
            )
        ]
        out = organisation_item(org, today)
    return ContractOut(organisation=out, conventions=conventions, admins=admins)


def add_convention(
    svc: AdminService, actor: str, org_code: str, data: ConventionNew
) -> ConventionWritten:
    """Register a convention with one Caf (R-CON-1); the reference is unique in the
    organisation (409 CONVENTION_EXISTS); 404 UNKNOWN_CAF."""
    with svc.write(actor, Action.CONTRACT_MANAGE, Target("organisation", org_code)) as tx:
        org = store.organisation(tx.session, org_code)
        caf = tx.session.execute(select(Caf).where(Caf.code == data.caf)).scalar_one_or_none()
        if caf is None:
            raise NotFound(f"Caf inconnue : {data.caf!r}.", code="UNKNOWN_CAF")
        taken = tx.session.execute(
            select(Convention.id).where(
                Convention.organisation_id == org.id, Convention.reference == data.reference
            )
        ).first()
        if taken is not None:
            raise Conflict(
                f"La convention {data.reference!r} existe déjà pour {org.code}.",
                code="CONVENTION_EXISTS",
            )
        opens_on = data.opens_on or tx.today
        not_before_today(opens_on, tx.today, "Une convention")
        store.check_window(opens_on, data.closes_on)
        within_caf(caf, opens_on, data.closes_on)
        conv = Convention(
            organisation_id=org.id,
            caf_id=caf.id,
            reference=data.reference,
            opens_on=opens_on,
            closes_on=data.closes_on,
        )
        tx.session.add(conv)
        tx.session.flush()
        out = convention_out(conv, caf.code)
        tx.record(f"organisation:{org.code}", org.code, None, out.model_dump(mode="json"), org.id)
    return ConventionWritten(convention=out, revision=tx.revision)


def edit_convention(
    svc: AdminService, actor: str, org_code: str, reference: str, data: DatesEdit
) -> ConventionWritten:
    """Change a convention's dates (not retroactively, R-TIME-2). Closing it closes, on the same
    day, its subscriptions that would outlive it (R-CON-2: they grant nothing past it anyway)."""
    if not data.model_fields_set:
        raise BadRequest("Aucune modification demandée.", code="EMPTY_EDIT")
    with svc.write(actor, Action.CONTRACT_MANAGE, Target("organisation", org_code)) as tx:
        org = store.organisation(tx.session, org_code)
        conv = convention(tx.session, org, reference)
        the_caf = tx.session.get_one(Caf, conv.caf_id)
        caf = the_caf.code
        before = convention_out(conv, caf).model_dump(mode="json")
        edit_dates(conv, data, tx.today, "Cette convention")
        opening = "opens_on" in data.model_fields_set
        within_caf(the_caf, conv.opens_on, conv.closes_on, opening=opening)
        subs = list(
            tx.session.execute(
                select(Subscription).where(Subscription.convention_id == conv.id)
            ).scalars()
        )
        for sub in subs:
            if sub.opens_on < conv.opens_on:
                raise Conflict(
                    f"Le bulletin {sub.id} ({sub.service}) commence avant la nouvelle ouverture "
                    "de la convention (R-CON-1).",
                    code="OUTSIDE_CONVENTION",
                )
            ends_later = sub.closes_on is None or (
                conv.closes_on is not None and sub.closes_on > conv.closes_on
            )
            if conv.closes_on is not None and ends_later:
                sub_before = subscription_out(sub, conv.reference).model_dump(mode="json")
                sub.closes_on = max(conv.closes_on, sub.opens_on)
                tx.record(
                    f"organisation:{org.code}",
                    org.code,
                    sub_before,
                    subscription_out(sub, conv.reference).model_dump(mode="json"),
                    org.id,
                )
        out = convention_out(conv, caf)
        tx.record(f"organisation:{org.code}", org.code, before, out.model_dump(mode="json"), org.id)
        for service in sorted({sub.service for sub in subs}):
            system_groups.follow(tx, org, service, system_groups_of(svc, service))
    return ConventionWritten(convention=out, revision=tx.revision)


def designate_admin(svc: AdminService, actor: str, org_code: str, data: UserRef) -> AdminWritten:
    """Designate a partner admin from today (R-CON-4): an open user of the organisation, or one
    created in the same transaction (the guide's shortcut). R-ADM-1: at most two open partner
    admins (409 TOO_MANY_ADMINS); 409 ALREADY_ADMIN, 409 USER_NOT_OPEN.

    The count is race-free: ``svc.write`` holds the revision row lock, so a concurrent
    designation waits for this commit and then counts this one.
    """
    if (data.login is None) == (data.new_user is None):
        raise BadRequest("Donner soit « login », soit « new_user ».", code="VALIDATION_ERROR")
    with svc.write(actor, Action.ADMINS_DESIGNATE, Target("organisation", org_code)) as tx:
        org = store.organisation(tx.session, org_code)
        if data.new_user is not None:
            # The operator's designation covers creating the user (R-CON-4): operators do not
            # hold "user.create" themselves.
            user = create_user_in(tx, org, data.new_user, authorise=False)
        else:
            assert data.login is not None
            user = store.user(tx.session, org, data.login)
        if not store.is_open(user, tx.today):
            raise Conflict(
                f"{user.login} n'est pas un utilisateur ouvert aujourd'hui : il ne peut pas être "
                "désigné administrateur partenaire.",
                code="USER_NOT_OPEN",
            )
        current = _designations(tx.session, org, tx.today)
        if any(u.id == user.id for _, u in current):
            raise Conflict(
                f"{user.login} est déjà administrateur partenaire de {org.code}.", "ALREADY_ADMIN"
            )
        # A closed user is no admin any more (R-USR-4), even if the designation was not ended.
        if sum(store.not_ended(u, tx.today) for _, u in current) >= MAX_PARTNER_ADMINS:
            raise Conflict(
                f"{org.code} a déjà {MAX_PARTNER_ADMINS} administrateurs partenaires ouverts : "
                "en clôturer un d'abord (R-ADM-1).",
                code="TOO_MANY_ADMINS",
            )
        designation = PartnerAdmin(organisation_id=org.id, user_id=user.id, opens_on=tx.today)
        tx.session.add(designation)
        tx.session.flush()
        out = designation_out(designation, user.login)
        tx.record(
            f"user:{user.login}",
            org.code,
            None,
            out.model_dump(mode="json"),
            org.id,
            scope=(STRUCTURE, None),
        )
        created = None
        if data.new_user is not None:
            created = store.user_out(user, org.code)
    return AdminWritten(admin=out, created_user=created, revision=tx.revision)


def end_admin(
    svc: AdminService, actor: str, org_code: str, login: str, data: DatesEdit
) -> AdminEnded:
    """End a partner admin designation on ``closes_on`` (today when the body is empty); not
    retroactively (R-TIME-2). 404 NOT_AN_ADMIN without a designation that has not ended."""
    with svc.write(actor, Action.ADMINS_DESIGNATE, Target("organisation", org_code)) as tx:
        org = store.organisation(tx.session, org_code)
        user = store.user(tx.session, org, login)
        found = [a for a, u in _designations(tx.session, org, tx.today) if u.id == user.id]
        if not found:
            raise NotFound(
                f"{login} n'est pas administrateur partenaire de {org.code}.", "NOT_AN_ADMIN"
            )
        designation = found[0]
        before = designation_out(designation, login).model_dump(mode="json")
        edit_dates(designation, data, tx.today, "Cette désignation")
        if designation.closes_on is not None:
            system_groups.hand_over(tx, org, user, designation.closes_on)
        out = designation_out(designation, login)
        tx.record(
            f"user:{login}",
            org.code,
            before,
            out.model_dump(mode="json"),
            org.id,
            scope=(STRUCTURE, None),
        )
    return AdminEnded(admin=out, revision=tx.revision)
