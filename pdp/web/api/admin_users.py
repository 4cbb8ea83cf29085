"""Administration API: the public admin check, users and memberships (fiches 1 to 6)."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from pdp.core.errors import Forbidden
from pdp.services.admin import users
from pdp.services.admin.requests import (
    AdminCheckRequest,
    MembershipEdit,
    MembershipNew,
    NewUser,
    UserEdit,
)
from pdp.services.admin.responses import (
    AdminCheckResponse,
    MembershipWritten,
    UserDetail,
    UserList,
    UserWritten,
)
from pdp.web.api.admin_common import AUTH_ERRORS, actor, admin_service, answer, body
from pdp.web.api.decisions import registry
from pdp.web.api.openapi import Operation

bp = Blueprint("admin_users", __name__, url_prefix="/v1")
ORG = "/v1/organisations/{org}"


@bp.post("/admin/check")
@registry.operation(
    Operation(
        "post",
        "/v1/admin/check",
        "May an actor do an administrative action on a target? (R-ADM-7)",
        AdminCheckResponse,
        body=AdminCheckRequest,
        errors=(400, 413, 503),
        auth=True,
        api_key=True,
    )
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
    return answer(admin_service().check(data.actor, data.action, data.target))


@bp.get("/organisations/<org>/users")
@registry.operation(
    Operation(
        "get",
        f"{ORG}/users",
        "Fiche 5: users of the organisation, or members of a group (?group=CODE)",
        UserList,
        errors=AUTH_ERRORS,
        path_params=("org",),
        auth=True,
    )
)
def list_users(org: str) -> Response:
    """R-USR-6."""
    who = actor()
    return answer(users.list_users(admin_service(), who, org, request.args.get("group")))


@bp.post("/organisations/<org>/users")
@registry.operation(
    Operation(
        "post",
        f"{ORG}/users",
        "Fiche 1: create a user (no rights yet, R-USR-2)",
        UserWritten,
        body=NewUser,
        errors=AUTH_ERRORS,
        path_params=("org",),
        status=201,
        auth=True,
    )
)
def create_user(org: str) -> Response:
    """R-USR-1."""
    who = actor()
    return answer(users.create_user(admin_service(), who, org, body(NewUser)), 201)


@bp.get("/organisations/<org>/users/<login>")
@registry.operation(
    Operation(
        "get",
        f"{ORG}/users/{{login}}",
        "Fiche 5: a user's detail (memberships, groups managed, services)",
        UserDetail,
        errors=AUTH_ERRORS,
        path_params=("org", "login"),
        auth=True,
    )
)
def user_detail(org: str, login: str) -> Response:
    """R-USR-6."""
    who = actor()
    return answer(users.user_detail(admin_service(), who, org, login))


@bp.patch("/organisations/<org>/users/<login>")
@registry.operation(
    Operation(
        "patch",
        f"{ORG}/users/{{login}}",
        "Fiches 2 and 3: edit a user; closes_on closes them (R-USR-3, R-USR-4, R-AFAS-3)",
        UserWritten,
        body=UserEdit,
        errors=AUTH_ERRORS,
        path_params=("org", "login"),
        auth=True,
    )
)
def edit_user(org: str, login: str) -> Response:
    """R-USR-3..5."""
    who = actor()
    return answer(users.edit_user(admin_service(), who, org, login, body(UserEdit)))


@bp.post("/organisations/<org>/users/<login>/memberships")
@registry.operation(
    Operation(
        "post",
        f"{ORG}/users/{{login}}/memberships",
        "Fiche 4: attach a user to a group (R-MEM-1)",
        MembershipWritten,
        body=MembershipNew,
        errors=AUTH_ERRORS,
        path_params=("org", "login"),
        status=201,
        auth=True,
    )
)
def attach(org: str, login: str) -> Response:
    """R-MEM-1."""
    who = actor()
    return answer(users.attach(admin_service(), who, org, login, body(MembershipNew)), 201)


@bp.patch("/organisations/<org>/users/<login>/memberships/<group>")
@registry.operation(
    Operation(
        "patch",
        f"{ORG}/users/{{login}}/memberships/{{group}}",
        "Fiche 6: change a membership's dates; closes_on detaches (R-MEM-2)",
        MembershipWritten,
        body=MembershipEdit,
        errors=AUTH_ERRORS,
        path_params=("org", "login", "group"),
        auth=True,
    )
)
def edit_membership(org: str, login: str, group: str) -> Response:
    """R-MEM-2."""
    who = actor()
    data = body(MembershipEdit)
    return answer(users.edit_membership(admin_service(), who, org, login, group, data))


@bp.delete("/organisations/<org>/users/<login>/memberships/<group>")
@registry.operation(
    Operation(
        "delete",
        f"{ORG}/users/{{login}}/memberships/{{group}}",
        "Fiche 6: detach a user from a group today (R-MEM-2)",
        MembershipWritten,
        errors=AUTH_ERRORS,
        path_params=("org", "login", "group"),
        auth=True,
    )
)
def detach(org: str, login: str, group: str) -> Response:
    """R-MEM-2: the membership ends today; nothing is deleted (R-TIME-2)."""
    who = actor()
    return answer(users.edit_membership(admin_service(), who, org, login, group, MembershipEdit()))
