"""Administration API: the Caf network, its Cafs and its operators (operators only, R-CON-4)."""

from __future__ import annotations

from flask import Blueprint, Response

from pdp.services.admin import network
from pdp.services.admin.requests import CafEdit, CafNew, OperatorEdit, OperatorNew
from pdp.web.api.admin_common import AUTH_ERRORS, actor, answer, body
from pdp.web.api.openapi import route
from pdp.web.container import services

bp = Blueprint("admin_network", __name__, url_prefix="/v1")


@route(
    bp,
    "GET",
    "/cafs",
    summary="Every Caf of the network (operators, R-CON-4)",
    response=network.CafList,
    errors=AUTH_ERRORS,
    auth=True,
)
def list_cafs() -> Response:
    """caf.manage."""
    who = actor()
    return answer(network.list_cafs(services().admin, who))


@route(
    bp,
    "POST",
    "/cafs",
    summary="Register a Caf (operators, R-CON-4)",
    response=network.CafWritten,
    body=CafNew,
    errors=AUTH_ERRORS,
    status=201,
    auth=True,
)
def create_caf() -> Response:
    """caf.manage; 409 CAF_EXISTS."""
    who = actor()
    data = body(CafNew)
    return answer(network.create_caf(services().admin, who, data), 201)


@route(
    bp,
    "PATCH",
    "/cafs/<code>",
    summary="Rename or close a Caf (operators; 409 CAF_IN_USE while a convention outlives it)",
    response=network.CafWritten,
    body=CafEdit,
    errors=AUTH_ERRORS,
    auth=True,
)
def edit_caf(code: str) -> Response:
    """caf.manage."""
    who = actor()
    data = body(CafEdit)
    return answer(network.change_caf(services().admin, who, code, data))


@route(
    bp,
    "GET",
    "/operators",
    summary="Every operator (operators, R-CON-4)",
    response=network.OperatorList,
    errors=AUTH_ERRORS,
    auth=True,
)
def list_operators() -> Response:
    """operator.manage."""
    who = actor()
    return answer(network.list_operators(services().admin, who))


@route(
    bp,
    "POST",
    "/operators",
    summary="Register an operator (operators, R-CON-4)",
    response=network.OperatorWritten,
    body=OperatorNew,
    errors=AUTH_ERRORS,
    status=201,
    auth=True,
)
def create_operator() -> Response:
    """operator.manage; 409 LOGIN_TAKEN."""
    who = actor()
    data = body(OperatorNew)
    out = network.create_operator(services().admin, who, data)
    return answer(out, 201)


@route(
    bp,
    "PATCH",
    "/operators/<login>",
    summary="Change or close an operator (operators; 409 LAST_OPERATOR)",
    response=network.OperatorWritten,
    body=OperatorEdit,
    errors=AUTH_ERRORS,
    auth=True,
)
def edit_operator(login: str) -> Response:
    """operator.manage."""
    who = actor()
    data = body(OperatorEdit)
    out = network.change_operator(services().admin, who, login, data)
    return answer(out)
