"""The API's description, open to anyone: the OpenAPI document (``GET /v1/openapi.json``) and a
documentation page that renders it (``GET /v1/docs``, Swagger UI).

Neither holds data (the document is generated from the code, the same for every deployment), so
neither asks for credentials; both still count against the caller's address in the rate limit
(``pdp.web.api.guard``). Swagger UI's files come from the ``swagger-ui-py`` package, installed
with the server and served from here: the page loads nothing from another site, and its Content
Security Policy says so. The document's ``info.version`` is the installed package's version; the
copy published in the repository (docs/openapi.json) is ``pdp openapi``'s output.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, send_file

from pdp.web.api.openapi import registry

bp = Blueprint("docs", __name__, url_prefix="/v1")

TITLE = "pdp decision API"
PACKAGE = "caf-pdp"
# The endpoints served without credentials (and rate-limited by address): the guard's table.
OPEN_ENDPOINTS = frozenset({"docs.openapi", "docs.page", "docs.asset"})

HERE = Path(__file__).parent / "static"
# The files the page loads, and where each comes from: Swagger UI's own, and its start script.
ASSETS = {
    "swagger-ui.css": "swagger_ui",
    "swagger-ui-bundle.js": "swagger_ui",
    "favicon-32x32.png": "swagger_ui",
    "docs.js": "pdp",
}
# Scripts and styles from here only, no inline script; the document and "Try it out" calls go
# to this server; Swagger UI draws its icons as data: images.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} {version}</title>
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui" data-url="openapi.json"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script src="docs/assets/docs.js"></script>
</body>
</html>
"""


@cache
def version() -> str:
    """The installed package's version (the document's ``info.version``), read once."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def document() -> dict[str, Any]:
    """The OpenAPI document of every operation registered (the view modules imported)."""
    return registry.document(TITLE, version())


def render(doc: dict[str, Any]) -> str:
    """The document as published in the repository: indented JSON, one trailing newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


@cache
def _served() -> bytes:
    # Built on the first request, once every view module has registered its routes; the same
    # for the life of the process. (Building it takes about 0.2 s: never once per request on a
    # route open to anyone.)
    return json.dumps(document(), ensure_ascii=False, separators=(",", ":")).encode()


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 document of this API, generated from the code."""
    return Response(_served(), mimetype="application/json")


@bp.get("/docs")
def page() -> Response:
    """The documentation page (Swagger UI, reading ``openapi.json``)."""
    html = PAGE.format(title=TITLE, version=version())
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.get("/docs/assets/<name>")
def asset(name: str) -> Response:
    """One of the page's files (404 for any other name)."""
    origin = ASSETS.get(name)
    if origin is None:
        abort(404)
    folder = HERE if origin == "pdp" else Path(str(resources.files(origin) / "static"))
    response = send_file(folder / name, max_age=3600, conditional=True)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
