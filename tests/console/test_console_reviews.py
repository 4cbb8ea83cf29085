"""The console's "Revue des habilitations" (R-CNIL-20..27), clicked through in Chromium against a
real ``pdp serve`` on the demo: the partner admin opens a campaign, the manager reviews his
item (removing it after the confirmation that shows what the detach will do), the partner admin
keeps one of hers and closes the campaign, what was left unreviewed reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.browser import (
    browser,
    console_server,
    day,
    expect,
    need_browser,
    page,
    screenshot,
    sign_in,
)

__all__ = ["browser", "console_server", "page"]  # fixtures used by name below

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _browser_here() -> None:
    need_browser()


def open_reviews(page: Any) -> None:
    page.get_by_role("navigation", name="Menu principal").get_by_role(
        "link", name="Revue des habilitations"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Revue des habilitations")


def test_open_review_as_a_manager_and_close(page: Any) -> None:
    """R-CNIL-20 (open), R-CNIL-23 and R-CNIL-24 (the manager sees and removes only his item,
    after its preview), R-CNIL-25 (progress), R-CNIL-26 (close: the rest is reported)."""
    sign_in(page, "alice.martin")
    open_reviews(page)
    page.get_by_role("link", name="Ouvrir une campagne").click()
    page.get_by_label("Intitulé").fill("Revue annuelle 2026")
    page.get_by_label("Échéance").fill(day(-1))
    page.get_by_role("button", name="Ouvrir la campagne").click()
    expect(page.get_by_role("alert").first).to_contain_text("ne peut pas être passée")
    page.get_by_label("Échéance").fill(day(30))
    page.get_by_role("button", name="Ouvrir la campagne").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Revue annuelle 2026")
    expect(page.get_by_role("status").first).to_contain_text("3 élément(s) à revoir")
    mine = page.locator("#elements")
    expect(mine.get_by_role("row")).to_have_count(3)  # the header and bruno's two memberships
    screenshot(page, "revue-campagne")

    sign_in(page, "bruno.petit")
    open_reviews(page)
    page.get_by_role("link", name="Revue annuelle 2026").click()
    rows = page.locator("#elements").get_by_role("row")
    expect(rows).to_have_count(2)  # only chloe.roux's membership: his own go to alice
    expect(rows.nth(1)).to_contain_text("chloe.roux")
    expect(page.get_by_role("link", name="Clôturer la campagne")).to_have_count(0)
    page.get_by_role("link", name="Retirer chloe.roux de CCAS-ACCUEIL").click()
    question = page.get_by_role("region", name="Voulez-vous retirer chloe.roux du groupe")
    expect(question.locator("#consequences")).to_contain_text("chloe.roux")
    question.get_by_label("Commentaire (facultatif)").fill("A quitté l'accueil")
    question.get_by_role("button", name="Oui, retirer").click()
    expect(page.get_by_role("status").first).to_contain_text("chloe.roux est détaché(e)")
    expect(page.locator("#elements")).to_contain_text("Retiré le")
    expect(page.locator("#par-reviseur")).to_contain_text("bruno.petit")

    sign_in(page, "alice.martin")
    open_reviews(page)
    page.get_by_role("link", name="Revue annuelle 2026").click()
    page.get_by_label("Commentaire (facultatif)").first.fill("Toujours responsable")
    page.get_by_role("button", name="Conserver bruno.petit dans CCAS").first.click()
    expect(page.get_by_role("status").first).to_contain_text("Conservé : bruno.petit")
    by_org = page.locator("#par-organisme")
    expect(by_org).to_contain_text("mairie-montreuil")
    page.get_by_role("link", name="Clôturer la campagne").click()
    question = page.get_by_role("region", name="Voulez-vous clôturer la campagne")
    expect(question).to_contain_text("1 élément(s) n'ont pas été revus")
    question.get_by_role("button", name="Oui, clôturer").click()
    expect(page.get_by_role("status").first).to_contain_text("1 élément(s) non revu(s) signalé(s)")
    expect(page.locator("#etat")).to_contain_text("Close le")
    expect(page.locator("#elements")).to_contain_text("Non revu (signalé)")
    screenshot(page, "revue-close")
    with page.expect_download() as download:
        page.get_by_role("link", name="Résultats (CSV)").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert "chloe.roux,CCAS-ACCUEIL" in text and "removed" in text and "reported" in text
