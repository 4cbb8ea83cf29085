"""Lookups and JSON forms shared by the administration verbs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import Dated, Group, GroupRole, Organisation, User
from pdp.core.errors import BadRequest, NotFound
from pdp.services.admin.responses import GroupOut, RoleOut, UserOut


def organisation(session: Session, code: str) -> Organisation:
    """Return the organisation ``code``; raise NotFound(UNKNOWN_ORGANISATION)."""
    org = session.execute(
        select(Organisation).where(Organisation.code == code)
    ).scalar_one_or_none()
    if org is None:
        raise NotFound(f"Organisme inconnu : {code!r}.", code="UNKNOWN_ORGANISATION")
    return org


def user(session: Session, org: Organisation, login: str) -> User:
    """Return the user ``login`` of ``org``; raise NotFound(UNKNOWN_USER) otherwise."""
    found = session.execute(select(User).where(User.login == login)).scalar_one_or_none()
    if found is None or found.organisation_id != org.id:
        raise NotFound(f"Utilisateur inconnu dans {org.code} : {login!r}.", code="UNKNOWN_USER")
    return found


def group(session: Session, org: Organisation, code: str) -> Group:
    """Return the group ``code`` of ``org``; raise NotFound(UNKNOWN_GROUP)."""
    found = session.execute(
        select(Group).where(Group.organisation_id == org.id, Group.code == code)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"Groupe inconnu dans {org.code} : {code!r}.", code="UNKNOWN_GROUP")
    return found


def is_open(row: Dated, day: dt.date) -> bool:
    """Open on ``day``: opening ≤ day < closing (R-TIME-1)."""
    return row.opens_on <= day and (row.closes_on is None or day < row.closes_on)


def not_ended(row: Dated, day: dt.date) -> bool:
    """Open on ``day`` or opening later (a future record can still be edited)."""
    return row.closes_on is None or day < row.closes_on


def not_in_past(day: dt.date | None, today: dt.date, what: str) -> None:
    """Raise BadRequest(RETROACTIVE_DATE) for a closing date before today (R-USR-4, R-MEM-2)."""
    if day is not None and day < today:
        raise BadRequest(
            f"{what} ne peut pas être rétroactive (avant le {today.isoformat()}).",
            code="RETROACTIVE_DATE",
        )


def check_window(opens_on: dt.date, closes_on: dt.date | None) -> None:
    """Raise BadRequest(INVALID_DATES) unless the closing date is after the opening date."""
    if closes_on is not None and closes_on <= opens_on:
        raise BadRequest(
            "La date de clôture doit être postérieure à la date d'ouverture.",
            code="INVALID_DATES",
        )


def check_closing(opens_on: dt.date, closes_on: dt.date | None) -> None:
    """Raise BadRequest(INVALID_DATES) if the closing date is before the opening date (on it
    is allowed: closed at once, never open)."""
    if closes_on is not None and closes_on < opens_on:
        raise BadRequest(
            "La date de clôture ne peut pas précéder la date d'ouverture.", code="INVALID_DATES"
        )


def day(value: dt.date | None) -> str | None:
    """ISO form of an optional day."""
    return None if value is None else value.isoformat()


def dates(row: Dated) -> dict[str, Any]:
    """The opening and closing days of a record."""
    return {"opens_on": day(row.opens_on), "closes_on": day(row.closes_on)}


def user_out(u: User, org_code: str | None) -> UserOut:
    """The public form of a user."""
    return UserOut(
        login=u.login,
        organisation=org_code,
        first_name=u.first_name,
        last_name=u.last_name,
        email=u.email,
        opens_on=u.opens_on,
        closes_on=u.closes_on,
    )


def group_out(g: Group, org_code: str, parent_code: str | None) -> GroupOut:
    """The public form of a group (without its manager and sub-groups)."""
    return GroupOut(
        code=g.code,
        organisation=org_code,
        label=g.label,
        parent=parent_code,
        system=g.is_system,
        opens_on=g.opens_on,
        closes_on=g.closes_on,
    )


def role_out(r: GroupRole) -> RoleOut:
    """The public form of a role a group holds, with its dates."""
    return RoleOut(service=r.service, role=r.role, opens_on=r.opens_on, closes_on=r.closes_on)


def set_details(user: User, data: BaseModel, fields: set[str]) -> None:
    """Copy onto ``user`` the names and email that ``data`` sets (``fields``); BadRequest
    (VALIDATION_ERROR) for one set to null (R-USR-3: details never change rights)."""
    for name in ("first_name", "last_name", "email"):
        if name in fields:
            value = getattr(data, name)
            if value is None:
                raise BadRequest(f"« {name} » ne peut pas être vide.", code="VALIDATION_ERROR")
            setattr(user, name, value)
