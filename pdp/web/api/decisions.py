"""Decision API: check, batch check, permissions, service users, health, OpenAPI."""

from __future__ import annotations

from typing import IO, Any

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from pdp.core.errors import BadRequest, PayloadTooLarge, PdpError
from pdp.engine.decision import Query
from pdp.services.api_keys import ApiClient
from pdp.services.decisions import Checked, grant_json
from pdp.web.api.errors import error_json, validation_error
from pdp.web.api.guard import check_service, client, page_limit, path_value, require_service
from pdp.web.api.openapi import route
from pdp.web.api.schemas import (
    BatchRequest,
    BatchResponse,
    CheckRequest,
    CheckResponse,
    PermissionsQuery,
    PermissionsResponse,
    ServiceUsersQuery,
    ServiceUsersResponse,
)
from pdp.web.container import Services, services

bp = Blueprint("decisions", __name__, url_prefix="/v1")


def _query(body: CheckRequest) -> Query:
    return Query(
        body.user, body.service, body.role, body.caf, body.at, body.feature, body.allocataire
    )


def _checked_json(checked: Checked) -> dict[str, Any]:
    d = checked.decision
    return {
        "allowed": d.allowed,
        "reason": {"code": d.reason.value, "message": d.message},
        "grants": [grant_json(g) for g in d.grants],
        "decision_id": checked.decision_id,
        "revision": d.revision,
        "at": d.day.isoformat() if d.day else None,
    }


def read_body() -> bytes:
    """The request body, refused with 413 above ``max_body_bytes`` whether or not a
    Content-Length was sent (a chunked body must not be silently cut)."""
    limit = services().settings.max_body_bytes
    length = request.content_length
    if length is not None:
        # The common case, read straight from the server's input: Werkzeug's stream wrappers
        # cost more than the decision itself (bench/README.md, "Where the time went").
        return read_sized(request.environ["wsgi.input"], length, limit)
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(_TOO_LARGE)
    return data


def read_sized(stream: IO[bytes], length: int, limit: int) -> bytes:
    """A body of ``length`` bytes (its Content-Length) from ``stream``, refused with 413 above
    ``limit``."""
    if length > limit:
        raise PayloadTooLarge(_TOO_LARGE)
    return stream.read(length)


_TOO_LARGE = "Corps de requête trop volumineux."


def _error_json(err: PdpError) -> dict[str, Any]:
    return error_json(err.code, err.message, err.details)


@route(
    bp,
    "POST",
    "/check",
    summary="Decide whether a user may use a service",
    response=CheckResponse,
    body=CheckRequest,
    errors=(400, 409, 413, 503),
    api_key=True,
)
def check() -> Response:
    """Decide one check (R-DEC-1)."""
    return jsonify(answer_check(services(), client(), read_body()))


def answer_check(found: Services, caller: ApiClient | None, data: bytes) -> dict[str, Any]:
    """The answer to ``POST /v1/check`` with body ``data`` from ``caller``: this view's and the
    lean path's (``pdp.web.api.hot_path``) one definition."""
    body = CheckRequest.model_validate_json(data)
    check_service(caller, body.service, found.decisions.catalogue)
    _fresh_enough(found, body.min_revision)
    return _checked_json(found.decisions.check(_query(body)))


@route(
    bp,
    "POST",
    "/check/batch",
    summary="Decide several checks, in order",
    response=BatchResponse,
    body=BatchRequest,
    errors=(400, 409, 413, 503),
    api_key=True,
)
def check_batch() -> Response:
    """Decide up to ``batch_max`` checks; a bad item answers its own error."""
    return jsonify(answer_batch(services(), client(), read_body()))


def answer_batch(found: Services, caller: ApiClient | None, data: bytes) -> dict[str, Any]:
    """The answer to ``POST /v1/check/batch`` (as ``answer_check``)."""
    body = BatchRequest.model_validate_json(data)
    cap = found.settings.batch_max
    if len(body.checks) > cap:
        raise BadRequest(f"Un lot contient au plus {cap} vérifications.", code="BATCH_TOO_LARGE")
    catalogue = found.decisions.catalogue
    items: list[Query | PdpError] = []
    wanted = body.min_revision
    for raw in body.checks:
        try:
            item = (
                CheckRequest.model_validate(raw, strict=False)
                if isinstance(raw, dict)
                else _not_object()
            )
            check_service(caller, item.service, catalogue)
            items.append(_query(item))
            if item.min_revision is not None:  # the whole batch answers from the freshest asked
                wanted = max(wanted or 0, item.min_revision)
        except ValidationError as exc:
            items.append(validation_error(exc))
        except PdpError as exc:
            items.append(exc)
    _fresh_enough(found, wanted)
    results = [
        _error_json(r) if isinstance(r, PdpError) else _checked_json(r)
        for r in found.decisions.check_many(items)
    ]
    return {"results": results}


def _fresh_enough(found: Services, revision: int | None) -> None:
    """Honour ``min_revision`` (read-your-writes), waiting at most PDP_MIN_REVISION_WAIT."""
    if revision is not None:
        found.decisions.at_least(revision, found.settings.min_revision_wait)


def _not_object() -> CheckRequest:
    raise BadRequest("Chaque vérification doit être un objet JSON.", code="VALIDATION_ERROR")


@route(
    bp,
    "GET",
    "/users/<login>/permissions",
    summary="Every service and role a user may use",
    response=PermissionsResponse,
    query=PermissionsQuery,
    errors=(400, 404, 409, 503),
    api_key=True,
)
def permissions(login: str) -> Response:
    """The welcome page's one call (R-DEC-4), limited to the services the calling front-end
    may ask about."""
    path_value(login, "login", 120)
    args = PermissionsQuery.model_validate(request.args.to_dict())
    _fresh_enough(services(), args.min_revision)
    caller = client()
    return jsonify(
        services().decisions.permissions(
            login, args.at, caller.services if caller is not None else None
        )
    )


@route(
    bp,
    "GET",
    "/services/<service>/users",
    summary="Who may use a service, paginated",
    response=ServiceUsersResponse,
    query=ServiceUsersQuery,
    errors=(400, 404, 409, 503),
    api_key=True,
)
def service_users(service: str) -> Response:
    """Users allowed to use the service, ordered by organisation and login."""
    path_value(service, "service", 40)
    require_service(service)
    args = ServiceUsersQuery.model_validate(request.args.to_dict())
    _fresh_enough(services(), args.min_revision)
    return jsonify(
        services().decisions.service_users(
            service,
            args.role,
            args.organisation,
            args.at,
            page_limit(args.limit),
            args.cursor,
            args.feature,
        )
    )
