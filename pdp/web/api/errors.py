"""The one place where errors become HTTP answers: a stable code, a French message, no trace."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from pdp.core.errors import BadRequest, PdpError
from pdp.core.text import INVALID_CHARACTERS, INVALID_CHARACTERS_MESSAGE, has_forbidden
from pdp.services.admin.preview import PreviewReady
from pdp.web.container import services

log = logging.getLogger("pdp.api")

_HTTP_CODES = {
    404: ("NOT_FOUND", "Ressource introuvable."),
    405: ("METHOD_NOT_ALLOWED", "Méthode non autorisée pour cette ressource."),
    413: ("PAYLOAD_TOO_LARGE", "Corps de requête trop volumineux."),
    429: ("RATE_LIMITED", "Trop de requêtes pour ce client : réessayer après le délai indiqué."),
}


_INTERNAL = ("INTERNAL_ERROR", "Erreur interne du service.")


def error_json(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON document of an error: ``{"error": {"code", "message"[, "details"]}}``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    """Build the JSON error answer."""
    response = jsonify(error_json(code, message, details))
    response.status_code = status
    return response


def failure(exc: Exception) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    """What the API answers for ``exc`` raised by a request: status, JSON document and extra
    headers. A PdpError says its own status and code (``Retry-After`` on a 429), a pydantic
    error is a BadRequest (``validation_error``), anything else a 500 that tells nothing of its
    cause (logged here: call it from the ``except`` block). The one translation, used by the
    app's handlers below and by the decision endpoints' lean path (``pdp.web.api.hot_path``)."""
    if isinstance(exc, ValidationError):
        exc = validation_error(exc)
    if isinstance(exc, PdpError):
        retry_after = getattr(exc, "retry_after", None)
        headers = [] if retry_after is None else [("Retry-After", str(retry_after))]
        return exc.status, error_json(exc.code, exc.message, exc.details), headers
    log.exception("unexpected error")
    return 500, error_json(*_INTERNAL), []


def _as_response(status: int, document: dict[str, Any], headers: list[tuple[str, str]]) -> Response:
    response = jsonify(document)
    response.status_code = status
    for name, value in headers:
        response.headers[name] = value
    return response


def with_headers(response: Response, exc: HTTPException) -> Response:
    """``response`` with the headers the HTTP error carries (``Allow`` on a 405, ...) but its
    content type."""
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def validation_error(exc: ValidationError) -> BadRequest:
    """Turn a pydantic error into a BadRequest with a stable code and the fields at fault."""
    details = [
        {
            "field": ".".join(str(p) for p in err["loc"]) or None,
            "problem": err["type"],
            "message": err["msg"],
        }
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    errors = exc.errors()
    kinds = {err["type"] for err in errors}
    if any(
        err["type"] == "string_pattern_mismatch" and has_forbidden(err["input"]) for err in errors
    ):
        return BadRequest(INVALID_CHARACTERS_MESSAGE, INVALID_CHARACTERS, details)
    if "json_invalid" in kinds:
        return BadRequest(
            "Le corps de la requête n'est pas un JSON valide.", "INVALID_JSON", details
        )
    if "extra_forbidden" in kinds:
        return BadRequest("Champ inconnu dans la requête.", "UNKNOWN_FIELD", details)
    if "missing" in kinds:
        return BadRequest("Champ obligatoire manquant.", "MISSING_FIELD", details)
    return BadRequest("Requête invalide.", "VALIDATION_ERROR", details)


def install(app: Flask) -> None:
    """Register the handlers that translate every error to JSON."""

    @app.errorhandler(PdpError)
    def _pdp(exc: PdpError) -> Response:
        status, document, headers = failure(exc)
        page = _page(status)
        if page is not None:
            page.headers.extend(headers)
            return page
        return _as_response(status, document, headers)

    @app.errorhandler(PreviewReady)
    def _preview(exc: PreviewReady) -> Response:
        # Not an error: the consequences of a write asked with ?dry_run=true, nothing written.
        return jsonify(exc.preview)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return _as_response(*failure(exc))

    def _page(status: int) -> Response | None:
        # The console (pdp.web.console) answers its own paths with French HTML pages.
        console = services(app).mounted_console
        return None if console is None else console.error_page(status)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        page = _page(status)
        if page is not None:
            return with_headers(page, exc)
        code, message = _HTTP_CODES.get(status, ("HTTP_ERROR", exc.description or "Erreur."))
        return with_headers(error_response(status, code, message), exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        status, document, headers = failure(exc)  # logs it
        return _page(status) or _as_response(status, document, headers)
