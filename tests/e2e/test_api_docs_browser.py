"""The documentation page ``/v1/docs`` in a real Chromium: Swagger UI renders the API's operations
from ``/v1/openapi.json`` with no credentials, loading nothing but this server's files, and
nothing is blocked by the page's Content Security Policy (no inline script or style needed)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from support.browser import browser, console_server, expect, page  # noqa: F401


def test_the_docs_page_renders_the_operations_from_this_server_only(page: Any) -> None:  # noqa: F811
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto("/v1/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("pdp decision API")
    expect(page.locator(".opblock-summary-path", has_text="/v1/check").first).to_be_visible()
    expect(
        page.locator(".opblock-summary-path", has_text="/v1/users/{login}/permissions")
    ).to_be_visible()
    origins = {urlsplit(url).netloc for url in requested if not url.startswith("data:")}
    assert origins == {urlsplit(page.url).netloc}, requested
    assert any(url.endswith("/v1/openapi.json") for url in requested)
    assert problems == [], problems
