"""Administration API: groups, their roles and managers (fiches 7 to 16)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from pdp.services.admin import grants, groups, managers
from pdp.services.admin.requests import GroupEdit, GroupNew, GroupsQuery, ManagerSet, RoleRef
from pdp.services.admin.responses import (
    GroupDetail,
    GroupEdited,
    GroupList,
    GroupRoles,
    GroupWritten,
    ManagerWritten,
    RoleWritten,
)
from pdp.web.api.admin_common import AUTH_ERRORS, actor, answer, body
from pdp.web.api.guard import page_limit
from pdp.web.api.openapi import route
from pdp.web.container import services

bp = Blueprint("admin_groups", __name__, url_prefix="/v1")


@route(
    bp,
    "GET",
    "/organisations/<org>/groups",
    summary="Fiche 8: the organisation's groups, by pages, searchable (?q=)",
    response=GroupList,
    query=GroupsQuery,
    errors=AUTH_ERRORS,
    auth=True,
)
def list_groups(org: str) -> Response:
    """R-GRP-5: a page of groups by code (``limit``, ``cursor``), searchable (``q``)."""
    who = actor()
    args = GroupsQuery.model_validate(request.args.to_dict())
    listed = groups.list_groups(
        services().admin, who, org, q=args.q, limit=page_limit(args.limit), cursor=args.cursor
    )
    return answer(listed)


@route(
    bp,
    "POST",
    "/organisations/<org>/groups",
    summary="Fiche 7: create a group (top-level: admins) or a sub-group, with its manager",
    response=GroupWritten,
    body=GroupNew,
    errors=AUTH_ERRORS,
    status=201,
    auth=True,
)
def create_group(org: str) -> Response:
    """R-GRP-1, R-ADM-3."""
    who = actor()
    return answer(groups.create_group(services().admin, who, org, body(GroupNew)), 201)


@route(
    bp,
    "GET",
    "/organisations/<org>/groups/<code>",
    summary="Fiches 8 and 15: a group, its manager, sub-groups, roles",
    response=GroupDetail,
    errors=AUTH_ERRORS,
    auth=True,
)
def group_detail(org: str, code: str) -> Response:
    """R-GRP-5."""
    who = actor()
    return answer(groups.group_detail(services().admin, who, org, code))


@route(
    bp,
    "PATCH",
    "/organisations/<org>/groups/<code>",
    summary="Fiche 10: edit a group (not a system group, R-GRP-3)",
    response=GroupEdited,
    body=GroupEdit,
    errors=AUTH_ERRORS,
    auth=True,
)
def edit_group(org: str, code: str) -> Response:
    """R-GRP-3."""
    who = actor()
    return answer(groups.edit_group(services().admin, who, org, code, body(GroupEdit)))


@route(
    bp,
    "POST",
    "/organisations/<org>/groups/<code>/close",
    summary="Fiche 11: close a group and its sub-groups (R-GRP-2)",
    response=GroupEdited,
    errors=AUTH_ERRORS,
    auth=True,
)
def close_group(org: str, code: str) -> Response:
    """R-GRP-2."""
    who = actor()
    return answer(groups.close_group(services().admin, who, org, code))


@route(
    bp,
    "GET",
    "/organisations/<org>/groups/<code>/roles",
    summary="Fiche 9: a group's roles and assignable roles",
    response=GroupRoles,
    errors=AUTH_ERRORS,
    auth=True,
)
def group_roles(org: str, code: str) -> Response:
    """R-GRP-4, R-GRP-5."""
    who = actor()
    return answer(groups.group_roles(services().admin, who, org, code))


@route(
    bp,
    "POST",
    "/organisations/<org>/groups/<code>/roles",
    summary="Fiche 12: assign a role (R-GRP-4)",
    response=RoleWritten,
    body=RoleRef,
    errors=AUTH_ERRORS,
    status=201,
    auth=True,
)
def assign_role(org: str, code: str) -> Response:
    """R-GRP-4."""
    who = actor()
    return answer(grants.assign_role(services().admin, who, org, code, body(RoleRef)), 201)


@route(
    bp,
    "DELETE",
    "/organisations/<org>/groups/<code>/roles/<service>/<role>",
    summary="Fiche 13: remove a role from the group and every descendant (R-GRP-4)",
    response=RoleWritten,
    errors=AUTH_ERRORS,
    auth=True,
)
def remove_role(org: str, code: str, service: str, role: str) -> Response:
    """R-GRP-4."""
    who = actor()
    return answer(grants.remove_role(services().admin, who, org, code, service, role))


@route(
    bp,
    "PUT",
    "/organisations/<org>/groups/<code>/manager",
    summary="Fiches 14 and 16: name or replace the manager (R-ADM-3, R-AFAS-4)",
    response=ManagerWritten,
    body=ManagerSet,
    errors=AUTH_ERRORS,
    auth=True,
)
def set_manager(org: str, code: str) -> Response:
    """R-ADM-3..5, R-AFAS-4."""
    who = actor()
    return answer(managers.set_manager(services().admin, who, org, code, body(ManagerSet)))
