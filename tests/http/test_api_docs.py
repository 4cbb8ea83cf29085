"""The API's description: ``GET /v1/openapi.json`` and the page ``GET /v1/docs``, open to anyone
(they hold no data), counted by address in the rate limit, the page's files served from the
installed package (nothing from another site); the document's version is the package's, and the
copy published in the repository (docs/openapi.json) is what the server serves."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

from flask.testing import FlaskClient

from pdp.web.api.docs import ASSETS, CSP, document, render

from support.api_clients import error_code
from support.constants import MakeApp

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "docs" / "openapi.json"
REGENERATE = "pdp openapi -o docs/openapi.json"


def test_the_published_document_is_the_one_served(client: FlaskClient) -> None:
    served = client.get("/v1/openapi.json").get_json()
    published = PUBLISHED.read_text(encoding="utf-8")
    assert json.loads(published) == served, f"docs/openapi.json is stale: run {REGENERATE}"
    assert published == render(document()), f"docs/openapi.json is stale: run {REGENERATE}"


def test_the_comparison_fails_on_a_changed_document(client: FlaskClient) -> None:
    published = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    published["paths"]["/v1/check"]["post"]["summary"] += "."
    assert published != client.get("/v1/openapi.json").get_json()
    assert render(published) != render(document())


def test_the_document_version_is_the_package_version(client: FlaskClient) -> None:
    doc = client.get("/v1/openapi.json").get_json()
    assert doc["info"]["version"] == metadata.version("caf-pdp")


def test_the_docs_page_loads_only_this_server_files(make_app: MakeApp) -> None:
    client = make_app()[0].test_client()
    client.environ_base.pop("HTTP_X_API_KEY")  # no credentials at all
    page = client.get("/v1/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"] == CSP
    assert "default-src 'none'" in CSP and "script-src 'self';" in CSP
    html = page.get_data(as_text=True)
    assert "<script>" not in html  # no inline script (the policy would block it)
    links = re.findall(r'(?:src|href|data-url)="([^"]+)"', html)
    assert links and all("//" not in link for link in links), links
    for link in links:
        answer = client.get(f"/v1/{link}")
        assert answer.status_code == 200, link
        assert answer.get_data(), link
    loaded = {link.removeprefix("docs/assets/") for link in links} - {"openapi.json"}
    assert loaded == set(ASSETS)
    bundle = client.get("/v1/docs/assets/swagger-ui-bundle.js")
    assert bundle.mimetype in ("text/javascript", "application/javascript")
    assert b"SwaggerUIBundle" in bundle.get_data()
    assert client.get("/v1/docs/assets/swagger-ui.css").mimetype == "text/css"


def test_only_the_page_files_are_served(client: FlaskClient) -> None:
    for name in ("index.html", "..%2Fcore.py", "swagger-editor-bundle.js", "LICENSE"):
        answer = client.get(f"/v1/docs/assets/{name}")
        assert (answer.status_code, error_code(answer)) == (404, "NOT_FOUND"), name
    assert client.get("/v1/docs/assets/../../core.py").status_code == 404


def test_the_description_counts_against_the_caller_address(make_app: MakeApp) -> None:
    client = make_app(rate_limit="3/minute")[0].test_client()
    client.environ_base.pop("HTTP_X_API_KEY")
    statuses = [client.get(p).status_code for p in ("/v1/openapi.json", "/v1/docs") * 2]
    assert statuses == [200, 200, 200, 429]
    over = client.get("/v1/openapi.json")
    assert (over.status_code, error_code(over)) == (429, "RATE_LIMITED")
