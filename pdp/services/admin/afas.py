"""Afas profiles of users (R-AFAS): only members of a group holding ``afas:habiliter`` manage
them (R-AFAS-2, decided by the engine); removing one closes it today (R-TIME-2)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import AfasProfile, User
from pdp.core.errors import BadRequest, Conflict, NotFound
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.engine.snapshot import USER
from pdp.services.admin import store
from pdp.services.admin.requests import AfasProfileNew
from pdp.services.admin.responses import (
    AfasProfileItem,
    AfasProfileOut,
    AfasProfiles,
    AfasProfileWritten,
)
from pdp.services.admin.service import AdminService

AFAS = "afas"


def profile_out(p: AfasProfile, login: str) -> AfasProfileOut:
    """The public form of an Afas profile."""
    return AfasProfileOut(
        user=login,
        profile=p.profile,
        opens_on=p.opens_on.isoformat(),
        closes_on=store.day(p.closes_on),
    )


def profile_item(p: AfasProfile, login: str, today: dt.date) -> AfasProfileItem:
    """An Afas profile as listed: its public form, and whether it is open ``today``."""
    return AfasProfileItem(
        user=login,
        profile=p.profile,
        opens_on=p.opens_on.isoformat(),
        closes_on=store.day(p.closes_on),
        open=store.is_open(p, today),
    )


def _current(session: Session, user: User, today: dt.date) -> list[AfasProfile]:
    """The user's profiles that have not ended (open now or later)."""
    return list(
        session.execute(
            select(AfasProfile)
            .where(
                AfasProfile.user_id == user.id,
                (AfasProfile.closes_on.is_(None)) | (AfasProfile.closes_on > today),
            )
            .order_by(AfasProfile.profile, AfasProfile.opens_on)
        ).scalars()
    )


def list_profiles(svc: AdminService, actor: str, org_code: str, login: str) -> AfasProfiles:
    """The user's Afas profiles that have not ended (R-AFAS-1, R-AFAS-2)."""
    today = svc.today()
    with svc.read(actor, Action.AFAS_PROFILES_READ, Target("organisation", org_code)) as session:
        org = store.organisation(session, org_code)
        user = store.user(session, org, login)
        profiles = [profile_item(p, login, today) for p in _current(session, user, today)]
    return AfasProfiles(organisation=org.code, user=login, profiles=profiles)


def add_profile(
    svc: AdminService, actor: str, org_code: str, login: str, data: AfasProfileNew
) -> AfasProfileWritten:
    """Give the user an Afas profile of the catalogue (R-AFAS-1; 400 UNKNOWN_PROFILE) from
    ``opens_on`` (default today, not in the past); the user must be open then (409
    USER_NOT_OPEN) and not already hold it (409 PROFILE_EXISTS)."""
    with svc.write(actor, Action.AFAS_PROFILES_EDIT, Target("user", login=login)) as tx:
        allowed = svc.catalogue.service(AFAS).user_profiles
        if data.profile not in allowed:
            raise BadRequest(
                f"Profil Afas inconnu : {data.profile!r} (attendu : {', '.join(allowed)}).",
                code="UNKNOWN_PROFILE",
            )
        org = store.organisation(tx.session, org_code)
        user = store.user(tx.session, org, login)
        opens_on = data.opens_on or tx.today
        if opens_on < tx.today:
            raise BadRequest(
                "Un profil Afas ne peut pas commencer dans le passé (R-TIME-2).",
                code="RETROACTIVE_DATE",
            )
        store.check_window(opens_on, data.closes_on)
        if not store.is_open(user, opens_on):
            raise Conflict(
                f"{login} n'est pas un utilisateur ouvert à cette date (R-AFAS-1).",
                code="USER_NOT_OPEN",
            )
        if any(p.profile == data.profile for p in _current(tx.session, user, tx.today)):
            raise Conflict(f"{login} a déjà le profil Afas {data.profile}.", code="PROFILE_EXISTS")
        profile = AfasProfile(
            user_id=user.id, profile=data.profile, opens_on=opens_on, closes_on=data.closes_on
        )
        tx.session.add(profile)
        tx.session.flush()
        out = profile_out(profile, login)
        tx.record(
            f"user:{login}",
            org.code,
            None,
            out.model_dump(mode="json"),
            org.id,
            scope=(USER, user.id),
        )
    return AfasProfileWritten(profile=out, revision=tx.revision)


def remove_profile(
    svc: AdminService, actor: str, org_code: str, login: str, profile: str
) -> AfasProfileWritten:
    """Remove an Afas profile: it closes today, nothing is deleted (R-TIME-2); a profile not yet
    started gets the empty window [today, today). 404 NO_SUCH_PROFILE."""
    with svc.write(actor, Action.AFAS_PROFILES_EDIT, Target("user", login=login)) as tx:
        org = store.organisation(tx.session, org_code)
        user = store.user(tx.session, org, login)
        found = [p for p in _current(tx.session, user, tx.today) if p.profile == profile]
        if not found:
            raise NotFound(f"{login} n'a pas le profil Afas {profile!r}.", "NO_SUCH_PROFILE")
        for p in found:
            before = profile_out(p, login).model_dump(mode="json")
            p.opens_on = min(p.opens_on, tx.today)
            p.closes_on = tx.today
            after = profile_out(p, login).model_dump(mode="json")
            tx.record(f"user:{login}", org.code, before, after, org.id, scope=(USER, user.id))
        out = profile_out(found[0], login)
    return AfasProfileWritten(profile=out, revision=tx.revision)
