"""A person's file (GDPR art. 15, R-CNIL-15): ``GET /v1/users/<login>/file``, operators only.

A streamed answer, like the rights document (``pdp.web.api.access``): the view authorises the
reader and finds the login, so that an error is a plain JSON error before the first byte; the
document itself comes from a generator (``pdp.services.person_file``), never whole in memory.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from pydantic import BaseModel

from pdp.records.audit_trail import RecordJson
from pdp.services.person_file import MEDIA_TYPE
from pdp.web.api.admin_common import AUTH_ERRORS, actor
from pdp.web.api.openapi import route
from pdp.web.container import services

bp = Blueprint("person_file", __name__, url_prefix="/v1")


class Dated(BaseModel):
    """Opening and closing days (closing null: open-ended)."""

    opens_on: str
    closes_on: str | None


class PersonAccount(Dated):
    """The user's record as the store holds it."""

    login: str
    first_name: str
    last_name: str
    email: str
    organisation: str | None
    operator: bool


class GroupRoleOverTime(Dated):
    """A role a group carried, and when."""

    service: str
    role: str


class PersonMembership(Dated):
    """A membership, open or closed, with the roles its group carried over time."""

    organisation: str
    group: str
    label: str
    roles: list[GroupRoleOverTime]


class PersonAfasProfile(Dated):
    """An Afas profile of the user."""

    profile: str


class PersonAdmin(Dated):
    """A designation as partner admin."""

    organisation: str


class PersonManages(Dated):
    """A group the user manages or managed."""

    organisation: str
    group: str


class PersonLastUse(BaseModel):
    """The last day a (service, role) was used (an allowed check)."""

    service: str
    role: str
    day: str


class PersonFileDocument(BaseModel):
    """Everything held about one login: the account, every membership and right over time,
    the last uses, every administrative act by them (``audit_by``) and on them
    (``audit_on``), and the decisions about them the log still holds (``decisions``, as
    logged, within ``retention_months``)."""

    login: str
    generated_at: str
    retention_months: int
    account: PersonAccount
    memberships: list[PersonMembership]
    afas_profiles: list[PersonAfasProfile]
    partner_admin: list[PersonAdmin]
    manages: list[PersonManages]
    last_uses: list[PersonLastUse]
    audit_by: list[RecordJson]
    audit_on: list[RecordJson]
    decisions: list[dict[str, Any]]


@route(
    bp,
    "GET",
    "/users/<login>/file",
    summary="A person's file (GDPR art. 15): account, rights over time, last uses, "
    "administrative acts by and on them, retained decisions; one JSON document, streamed "
    "(operators)",
    response=PersonFileDocument,
    errors=AUTH_ERRORS,
    auth=True,
)
def person_file(login: str) -> Response:
    """R-CNIL-15: authorised and found before the first byte, then streamed."""
    found = services().persons.read(actor(), login)
    return Response(
        found.chunks(),
        mimetype=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )
