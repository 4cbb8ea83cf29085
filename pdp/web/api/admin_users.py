"""Administration API: the public admin check, users and memberships (fiches 1 to 6)."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from pdp.core.errors import Forbidden
from pdp.services.admin import user_imports, users
from pdp.services.admin.requests import (
    AdminCheckRequest,
    DirectoryQuery,
    MembershipEdit,
    MembershipNew,
    NewUser,
    UserEdit,
    UserImportRequest,
)
from pdp.services.admin.responses import (
    AdminCheckResponse,
    MembershipWritten,
    UserDetail,
    UserList,
    UserWritten,
)
from pdp.services.admin.user_imports import ImportReport
from pdp.web.api.admin_common import AUTH_ERRORS, actor, answer, body
from pdp.web.api.guard import page_limit
from pdp.web.api.openapi import route
from pdp.web.container import services

bp = Blueprint("admin_users", __name__, url_prefix="/v1")


@route(
    bp,
    "POST",
    "/admin/check",
    summary="May an actor do an administrative action on a target? (R-ADM-7)",
    response=AdminCheckResponse,
    body=AdminCheckRequest,
    errors=(400, 413, 503),
    auth=True,
    api_key=True,
    previewable=False,  # a question, not a write
)
def admin_check() -> Response:
    """Answer for front-ends that show or hide buttons; every answer is logged. A front-end
    (API key) may ask about any actor; a signed-in user (JWT) about themselves only."""
    data = body(AdminCheckRequest)
    login = g.get("pdp_login")
    if login is not None and data.actor != login:
        raise Forbidden(
            "Un utilisateur ne peut interroger que ses propres droits.", "ACTOR_MISMATCH"
        )
    return answer(services().admin.check(data.actor, data.action, data.target))


@route(
    bp,
    "GET",
    "/organisations/<org>/users",
    summary="Fiche 5: users of the organisation, or members of a group (?group=CODE), by pages, "
    "searchable (?q=)",
    response=UserList,
    query=DirectoryQuery,
    errors=AUTH_ERRORS,
    auth=True,
)
def list_users(org: str) -> Response:
    """R-USR-6: a page of users by login (``limit``, ``cursor``), searchable (``q``)."""
    who = actor()
    args = DirectoryQuery.model_validate(request.args.to_dict())
    listed = users.list_users(
        services().admin,
        who,
        org,
        args.group,
        q=args.q,
        limit=page_limit(args.limit),
        cursor=args.cursor,
    )
    return answer(listed)


@route(
    bp,
    "POST",
    "/organisations/<org>/users",
    summary="Fiche 1: create a user (no rights yet, R-USR-2)",
    response=UserWritten,
    body=NewUser,
    errors=AUTH_ERRORS,
    status=201,
    auth=True,
)
def create_user(org: str) -> Response:
    """R-USR-1."""
    who = actor()
    return answer(users.create_user(services().admin, who, org, body(NewUser)), 201)


@route(
    bp,
    "GET",
    "/organisations/<org>/users/<login>",
    summary="Fiche 5: a user's detail (memberships, groups managed, services)",
    response=UserDetail,
    errors=AUTH_ERRORS,
    auth=True,
)
def user_detail(org: str, login: str) -> Response:
    """R-USR-6."""
    who = actor()
    return answer(users.user_detail(services().admin, who, org, login))


@route(
    bp,
    "GET",
    "/users/<login>",
    summary="A user found by login alone (logins are unique in the portal, R-USR-1)",
    response=UserDetail,
    errors=AUTH_ERRORS,
    auth=True,
)
def find_user(login: str) -> Response:
    """Operators, and the user's organisation's partner admins and managers (directory.read)."""
    who = actor()
    return answer(users.find_user(services().admin, who, login))


@route(
    bp,
    "PATCH",
    "/organisations/<org>/users/<login>",
    summary="Fiches 2 and 3: edit a user; closes_on closes them (R-USR-3, R-USR-4, R-AFAS-3)",
    response=UserWritten,
    body=UserEdit,
    errors=AUTH_ERRORS,
    auth=True,
)
def edit_user(org: str, login: str) -> Response:
    """R-USR-3..5."""
    who = actor()
    return answer(users.edit_user(services().admin, who, org, login, body(UserEdit)))


@route(
    bp,
    "POST",
    "/organisations/<org>/users/<login>/memberships",
    summary="Fiche 4: attach a user to a group (R-MEM-1)",
    response=MembershipWritten,
    body=MembershipNew,
    errors=AUTH_ERRORS,
    status=201,
    auth=True,
)
def attach(org: str, login: str) -> Response:
    """R-MEM-1."""
    who = actor()
    return answer(users.attach(services().admin, who, org, login, body(MembershipNew)), 201)


@route(
    bp,
    "PATCH",
    "/organisations/<org>/users/<login>/memberships/<group>",
    summary="Fiche 6: change a membership's dates; closes_on detaches (R-MEM-2)",
    response=MembershipWritten,
    body=MembershipEdit,
    errors=AUTH_ERRORS,
    auth=True,
)
def edit_membership(org: str, login: str, group: str) -> Response:
    """R-MEM-2."""
    who = actor()
    data = body(MembershipEdit)
    return answer(users.edit_membership(services().admin, who, org, login, group, data))


@route(
    bp,
    "DELETE",
    "/organisations/<org>/users/<login>/memberships/<group>",
    summary="Fiche 6: detach a user from a group today (R-MEM-2)",
    response=MembershipWritten,
    errors=AUTH_ERRORS,
    auth=True,
)
def detach(org: str, login: str, group: str) -> Response:
    """R-MEM-2: the membership ends today; nothing is deleted (R-TIME-2)."""
    who = actor()
    return answer(users.edit_membership(services().admin, who, org, login, group, MembershipEdit()))


@route(
    bp,
    "POST",
    "/organisations/<org>/imports",
    summary="A CSV of users and their groups: previewed, or applied as one write (fiches 1, 4)",
    response=ImportReport,
    body=UserImportRequest,
    errors=AUTH_ERRORS,
    auth=True,
)
def import_users(org: str) -> Response:
    """user.create, and group.members.edit on each group named (R-ADM-4); 409 IMPORT_REFUSED
    when applying a file with refused lines (the report in the details)."""
    who = actor()
    data = body(UserImportRequest)
    return answer(user_imports.import_users(services().admin, who, org, data.csv, apply=data.apply))
