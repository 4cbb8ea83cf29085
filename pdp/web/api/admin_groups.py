"""Administration API: groups, their roles and managers (fiches 7 to 16)."""

from __future__ import annotations

from flask import Blueprint, Response

from pdp.services.admin import groups
from pdp.services.admin.requests import GroupEdit, GroupNew, ManagerSet, RoleRef
from pdp.services.admin.responses import (
    GroupDetail,
    GroupList,
    GroupRoles,
    GroupWritten,
    ManagerWritten,
    RoleWritten,
)
from pdp.web.api.admin_common import AUTH_ERRORS, actor, admin_service, answer, body
from pdp.web.api.decisions import registry
from pdp.web.api.openapi import Operation

bp = Blueprint("admin_groups", __name__, url_prefix="/v1")
ORG = "/v1/organisations/{org}"
GROUP = f"{ORG}/groups/{{code}}"


def _op(method: str, path: str, summary: str, response: type, **kw: object) -> Operation:
    params = tuple(p.strip("{}") for p in path.split("/") if p.startswith("{"))
    return Operation(
        method,
        path,
        summary,
        response,
        errors=AUTH_ERRORS,
        path_params=params,
        auth=True,
        **kw,  # type: ignore[arg-type]
    )


@bp.get("/organisations/<org>/groups")
@registry.operation(_op("get", f"{ORG}/groups", "Fiche 8: the organisation's groups", GroupList))
def list_groups(org: str) -> Response:
    """R-GRP-5."""
    who = actor()
    return answer(groups.list_groups(admin_service(), who, org))


@bp.post("/organisations/<org>/groups")
@registry.operation(
    _op(
        "post",
        f"{ORG}/groups",
        "Fiche 7: create a group (top-level: admins) or a sub-group, with its manager",
        GroupWritten,
        body=GroupNew,
        status=201,
    )
)
def create_group(org: str) -> Response:
    """R-GRP-1, R-ADM-3."""
    who = actor()
    return answer(groups.create_group(admin_service(), who, org, body(GroupNew)), 201)


@bp.get("/organisations/<org>/groups/<code>")
@registry.operation(
    _op("get", GROUP, "Fiches 8 and 15: a group, its manager, sub-groups, roles", GroupDetail)
)
def group_detail(org: str, code: str) -> Response:
    """R-GRP-5."""
    who = actor()
    return answer(groups.group_detail(admin_service(), who, org, code))


@bp.patch("/organisations/<org>/groups/<code>")
@registry.operation(
    _op(
        "patch",
        GROUP,
        "Fiche 10: edit a group (not a system group, R-GRP-3)",
        GroupWritten,
        body=GroupEdit,
    )
)
def edit_group(org: str, code: str) -> Response:
    """R-GRP-3."""
    who = actor()
    return answer(groups.edit_group(admin_service(), who, org, code, body(GroupEdit)))


@bp.post("/organisations/<org>/groups/<code>/close")
@registry.operation(
    _op(
        "post",
        f"{GROUP}/close",
        "Fiche 11: close a group and its sub-groups (R-GRP-2)",
        GroupWritten,
    )
)
def close_group(org: str, code: str) -> Response:
    """R-GRP-2."""
    who = actor()
    return answer(groups.close_group(admin_service(), who, org, code))


@bp.get("/organisations/<org>/groups/<code>/roles")
@registry.operation(
    _op("get", f"{GROUP}/roles", "Fiche 9: a group's roles and assignable roles", GroupRoles)
)
def group_roles(org: str, code: str) -> Response:
    """R-GRP-4, R-GRP-5."""
    who = actor()
    return answer(groups.group_roles(admin_service(), who, org, code))


@bp.post("/organisations/<org>/groups/<code>/roles")
@registry.operation(
    _op(
        "post",
        f"{GROUP}/roles",
        "Fiche 12: assign a role (R-GRP-4)",
        RoleWritten,
        body=RoleRef,
        status=201,
    )
)
def assign_role(org: str, code: str) -> Response:
    """R-GRP-4."""
    who = actor()
    return answer(groups.assign_role(admin_service(), who, org, code, body(RoleRef)), 201)


@bp.delete("/organisations/<org>/groups/<code>/roles/<service>/<role>")
@registry.operation(
    _op(
        "delete",
        f"{GROUP}/roles/{{service}}/{{role}}",
        "Fiche 13: remove a role from the group and every descendant (R-GRP-4)",
        RoleWritten,
    )
)
def remove_role(org: str, code: str, service: str, role: str) -> Response:
    """R-GRP-4."""
    who = actor()
    return answer(groups.remove_role(admin_service(), who, org, code, service, role))


@bp.put("/organisations/<org>/groups/<code>/manager")
@registry.operation(
    _op(
        "put",
        f"{GROUP}/manager",
        "Fiches 14 and 16: name or replace the manager (R-ADM-3, R-AFAS-4)",
        ManagerWritten,
        body=ManagerSet,
    )
)
def set_manager(org: str, code: str) -> Response:
    """R-ADM-3..5, R-AFAS-4."""
    who = actor()
    return answer(groups.set_manager(admin_service(), who, org, code, body(ManagerSet)))
