"""The console's "Droits non utilisés" in Chromium against a real ``pdp serve`` whose decision
log is on and shipped to the database (R-CNIL-1, R-CNIL-3 … R-CNIL-5): a partner admin lists
the organisation's dormant rights, a bad number of days is refused on the form, "Clôturer" asks
first with the closing's preview (or the refusal it would meet), and a check answered by the
service wakes the right it used once shipped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from support.browser import (
    browser,
    expect,
    logged_demo_server,
    need_browser,
    page,
    screenshot,
    sign_in,
)
from support.servers import Served

__all__ = ["browser", "page"]  # fixtures used by name below

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """This module's server (the ``page`` fixture's): the decision log on, shipped each 0.2 s."""
    need_browser()
    with logged_demo_server(tmp_path_factory.mktemp("console-dormant")) as served:
        yield served


@pytest.fixture(autouse=True)
def _browser_here() -> None:
    need_browser()


def user_rows(page: Any, login: str) -> Any:
    return page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=login))


def test_list_refuse_close_and_wake_R_CNIL_3(page: Any, console_server: Served) -> None:
    sign_in(page, "alice.martin")
    page.get_by_role("navigation", name="Menu principal").get_by_role(
        "link", name="Droits non utilisés"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Droits non utilisés")
    table = page.get_by_role("table")
    expect(table).to_contain_text("bruno.petit")
    expect(table).to_contain_text("chloe.roux")
    expect(table).to_contain_text("jamais")
    screenshot(page, "droits-non-utilises")

    # R-CNIL-4: refused on the form, nothing listed.
    page.get_by_label("Non utilisés depuis (jours)").fill("0")
    page.get_by_role("button", name="Afficher").click()
    expect(page.get_by_role("alert")).to_contain_text("Nombre de jours invalide")
    expect(page.get_by_label("Non utilisés depuis (jours)")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(page.get_by_role("table")).to_have_count(0)
    page.get_by_label("Non utilisés depuis (jours)").fill("90")
    page.get_by_role("button", name="Afficher").click()
    expect(page.get_by_role("table")).to_contain_text("chloe.roux")

    # Closing bruno.petit, who manages groups, would be refused (R-USR-4): said before "Oui".
    page.get_by_role("link", name="Clôturer l'utilisateur bruno.petit").click()
    question = page.get_by_role("region", name="Voulez-vous clôturer l'utilisateur bruno.petit")
    expect(question.locator("#consequences")).to_contain_text("Refusé")
    question.get_by_role("link", name="Non").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Droits non utilisés")

    # Closing chloe.roux: what it will do, then done; she holds nothing any more.
    page.get_by_role("link", name="Clôturer l'utilisateur chloe.roux").click()
    question = page.get_by_role("region", name="Voulez-vous clôturer l'utilisateur chloe.roux")
    expect(question.locator("#consequences")).to_contain_text("Conséquences")
    question.get_by_role("button", name="Oui").click()
    expect(page.get_by_role("status").first).to_contain_text("chloe.roux sera clôturé")
    expect(user_rows(page, "chloe.roux")).to_have_count(0)

    # R-CNIL-1: bruno.petit uses cdap T18; once shipped, only his T1 is left dormant.
    answer = console_server.server.check(user="bruno.petit", service="cdap", role="T18")
    assert answer["allowed"] is True
    deadline = time.monotonic() + 15
    while "T18" in page.get_by_role("table").inner_text() and time.monotonic() < deadline:
        time.sleep(0.3)
        page.reload()
    expect(page.get_by_role("table")).not_to_contain_text("T18")
    expect(page.get_by_role("table")).to_contain_text("cdap T1")
