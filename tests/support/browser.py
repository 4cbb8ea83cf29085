"""Fixtures for the console's browser tests: a real ``pdp serve`` with the demo, Debian's
Chromium driven by Playwright, and a sign-in helper. Import the fixtures into a test module:

    from support.browser import browser, console_server, page, sign_in  # noqa: F401

Without /usr/bin/chromium or the playwright package the browser tests are skipped, with the
reason, unless ``PDP_TEST_BROWSER=1`` (CI) asks for them: then they fail.
``PDP_SCREENSHOTS_DIR=docs/console`` saves the screenshots of the main screens there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.servers import Served, demo_server

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ENV = "PDP_TEST_BROWSER"
SCREENSHOTS_ENV = "PDP_SCREENSHOTS_DIR"


def need_browser() -> None:
    """Skip (or fail, when PDP_TEST_BROWSER=1) unless Chromium and Playwright are here."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing (pip install -e '.[dev]')"
    if problem is None:
        return
    if os.environ.get(BROWSER_ENV) == "1":
        pytest.fail(f"{BROWSER_ENV}=1 but {problem}", pytrace=False)
    pytest.skip(f"browser tests skipped: {problem}")


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``pdp serve`` (two workers) on a fresh demo database; the console in demo sign-in mode
    (development: its session key is derived from the database URL, the same in each worker)."""
    need_browser()
    with demo_server(tmp_path_factory.mktemp("console")) as served:
        yield served


_SHARED_BROWSER: list[Any] = []  # the session's one Chromium, whichever module started it


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session.

    Each test module imports this fixture, so pytest holds one session fixture per module: the
    first starts Playwright and Chromium, the others reuse it (a second ``sync_playwright()``
    in the same thread fails: "using Playwright Sync API inside the asyncio loop").
    """
    need_browser()
    if _SHARED_BROWSER:
        yield _SHARED_BROWSER[0]
        return
    from playwright.sync_api import expect, sync_playwright

    # A busy 2-core machine (the server's workers and Chromium share it) can take seconds to
    # show a page: wait longer than Playwright's 5 s before calling a step failed.
    expect.set_options(timeout=20_000)

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--no-proxy-server"]
        )
        _SHARED_BROWSER.append(chromium)
        try:
            yield chromium
        finally:
            _SHARED_BROWSER.clear()
            chromium.close()


@pytest.fixture
def page(browser: Any, console_server: Served) -> Iterator[Any]:
    """A fresh browser context (no cookie) on the console server, in French."""
    context = browser.new_context(
        base_url=console_server.server.base_url,
        locale="fr-FR",
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(20_000)
    tab = context.new_page()
    yield tab
    context.close()


def expect(target: Any) -> Any:
    """Playwright's ``expect``, imported only once a browser test runs (the package may be
    missing where the browser tests are skipped)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def day(offset: int) -> str:
    """The day ``offset`` days from today in Europe/Paris, as the forms want it."""
    import datetime as dt

    from pdp.core.clock import paris_today

    return (paris_today() + dt.timedelta(days=offset)).isoformat()


def sign_in(page: Any, login: str) -> None:
    """Sign in as ``login`` on the demo sign-in page; land on the welcome page."""
    from playwright.sync_api import expect

    page.goto("/console/connexion")
    page.get_by_role("button", name=f"Se connecter en tant que {login}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Bienvenue {login}")


def screenshot(page: Any, name: str) -> None:
    """Save ``name``.png into PDP_SCREENSHOTS_DIR when it is set (CI leaves it unset)."""
    where = os.environ.get(SCREENSHOTS_ENV)
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / f"{name}.png"), full_page=True)


def logged_demo_server(workdir: Path) -> Any:
    """Like ``demo_server`` (two workers, the demo, an API key), but with the decision log on
    and shipped to the database every 0.2 s: for the auditors' pages (the journal)."""
    import contextlib

    from support.servers import add_key, run_pdp, running, server_env

    @contextlib.contextmanager
    def serve() -> Iterator[Served]:
        url = f"sqlite:///{workdir / 'pdp.sqlite3'}"
        env = server_env(
            workdir,
            PDP_DATABASE_URL=url,
            PDP_DECISION_LOG="buffered",
            PDP_DECISION_LOG_DIR=str(workdir / "decision-log"),
            PDP_DECISION_LOG_SHIP_INTERVAL="0.2",
        )
        run_pdp(["db", "upgrade"], env, workdir)
        run_pdp(["demo", "load"], env, workdir)
        key = add_key(env, workdir)
        with running(["serve", "--workers", "2"], env, workdir) as server:
            server.api_key = key
            yield Served(server, url)

    return serve()
