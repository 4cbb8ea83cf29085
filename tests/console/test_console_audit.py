"""The console's pages for auditors: the decision log ("Journal des décisions") and the audit
trail ("Historique des modifications"), in Chromium against a real ``pdp serve`` whose decision
log is on and shipped to the database; and the refusals a plain user meets."""

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
    with logged_demo_server(tmp_path_factory.mktemp("console-audit")) as served:
        yield served


@pytest.fixture(autouse=True)
def _browser_here() -> None:
    need_browser()


def heading(page: Any) -> Any:
    return page.get_by_role("heading", level=1)


def shows_decision(page: Any, decision_id: str, timeout: float = 15.0) -> Any:
    """The row of ``decision_id`` on the current journal page, reloading until the decision
    is shipped to the database (within about a second)."""
    deadline = time.monotonic() + timeout
    found = page.get_by_role("row").filter(has_text=decision_id)
    while found.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.3)
        page.reload()
    expect(found).to_have_count(1)
    return found


def test_an_operator_reads_the_decision_of_a_previous_check(
    page: Any, console_server: Served
) -> None:
    """R-ADM-7 and the decision log: every decision is logged with its result, reason and grant
    path; an operator reads it, filtered by user, service, result and type."""
    answer = console_server.server.check(user="bruno.petit", service="cdap", role="T18")
    assert answer["allowed"] is True
    refused = console_server.server.check(user="chloe.roux", service="cdap", role="T18")
    assert refused["allowed"] is False
    sign_in(page, "op.caf751")
    page.get_by_role("navigation", name="Menu principal").get_by_role(
        "link", name="Journal des décisions"
    ).click()
    expect(heading(page)).to_have_text("Journal des décisions")
    page.get_by_label("Utilisateur").fill("bruno.petit")
    page.get_by_label("Service").select_option("cdap")
    page.get_by_label("Type de décision").select_option("check")
    page.get_by_label("Résultat").select_option("oui")
    page.get_by_role("button", name="Filtrer").click()
    found = shows_decision(page, answer["decision_id"])
    expect(found).to_contain_text("Autorisé")
    expect(found).to_contain_text("CCAS-INSTRUCTION → cdap T18")
    expect(found).to_contain_text("bruno.petit")
    expect(page.get_by_role("row").filter(has_text=refused["decision_id"])).to_have_count(0)
    screenshot(page, "journal-des-decisions")
    # The refused one, with its reason (R-DEC: no group grants chloe.roux T18).
    page.get_by_label("Utilisateur").fill("chloe.roux")
    page.get_by_label("Résultat").select_option("non")
    page.get_by_role("button", name="Filtrer").click()
    expect(shows_decision(page, refused["decision_id"])).to_contain_text("Refusé")


def test_an_operator_finds_who_opened_a_familys_file(page: Any, console_server: Served) -> None:
    """Who opened the file of family N, which tab, under which right (R-DEC-3, R-ADM-7): the
    checks naming an allocataire number are found by it, the number never shown in clear."""
    opened = console_server.server.check(
        user="bruno.petit", service="cdap", feature="paiements", allocataire="7700123"
    )
    assert opened["allowed"] is True
    other = console_server.server.check(
        user="bruno.petit", service="cdap", feature="paiements", allocataire="7700999"
    )
    sign_in(page, "op.caf751")
    page.get_by_role("navigation", name="Menu principal").get_by_role(
        "link", name="Journal des décisions"
    ).click()
    page.get_by_label("Numéro d'allocataire").fill("7700123")
    page.get_by_role("button", name="Filtrer").click()
    found = shows_decision(page, opened["decision_id"])
    expect(found).to_contain_text("paiements")
    expect(found).to_contain_text("bruno.petit")
    expect(page.get_by_role("row").filter(has_text=other["decision_id"])).to_have_count(0)
    expect(page.get_by_role("table")).not_to_contain_text("7700123")
    page.get_by_label("Numéro d'allocataire").fill("77-00")
    page.get_by_role("button", name="Filtrer").click()
    expect(page.locator("#allocataire-erreur")).to_contain_text("Un numéro d'allocataire")


def test_the_decision_log_is_paginated_with_the_cursor(page: Any, console_server: Served) -> None:
    """The journal shows 25 decisions a page, newest first; "Page suivante" follows the query's
    cursor and "Première page" comes back."""
    ids = [
        console_server.server.check(user="bruno.petit", service="cdap", role="T1")["decision_id"]
        for _ in range(30)
    ]
    sign_in(page, "op.caf751")
    page.goto("/console/journal/decisions?user=bruno.petit&service=cdap&kind=check")
    shows_decision(page, ids[-1])  # the newest, on the first page
    expect(page.get_by_role("row").filter(has_text=ids[0])).to_have_count(0)
    page.get_by_role("link", name="Page suivante").click()
    expect(page.get_by_role("row").filter(has_text=ids[0])).to_have_count(1)
    expect(page.get_by_role("row").filter(has_text=ids[-1])).to_have_count(0)
    page.get_by_role("link", name="Première page").click()
    expect(page.get_by_role("row").filter(has_text=ids[-1])).to_have_count(1)


def test_a_partner_admin_reads_the_audit_trail_of_a_user_after_an_edit(page: Any) -> None:
    """The audit trail (R-ADM-7: every administrative action is recorded): after alice.martin
    edits emma.garnier (fiche 2), the user's history shows who, what, before/after and the
    revision; a partner admin reads their own organisation only (log.read, decision)."""
    sign_in(page, "alice.martin")
    page.goto("/console/organisations/mairie-montreuil/utilisateurs/emma.garnier/modifier")
    page.get_by_label("Nom", exact=False).first.fill("Garnier-Lefèvre")
    page.get_by_role("button", name="Enregistrer les modifications").click()
    expect(page.get_by_role("status")).to_contain_text("Les modifications de emma.garnier")

    section = page.get_by_role("region", name="Gestion des habilitations")
    page.get_by_role("link", name="Accueil").click()
    section.get_by_role("link", name="Historique des modifications").click()
    expect(heading(page)).to_have_text("Historique des modifications")
    expect(page.get_by_label("Organisme")).to_have_count(0)  # their own, no choice
    page.get_by_label("Historique de").select_option("user")
    page.get_by_label("Identifiant ou code du groupe").fill("emma.garnier")
    page.get_by_role("button", name="Afficher l'historique").click()
    expect(page.get_by_role("table")).to_contain_text("Historique de user:emma.garnier")
    edit = page.get_by_role("row").filter(has_text="user.edit").first
    expect(edit).to_contain_text("alice.martin")
    expect(edit).to_contain_text("last_name : Garnier")
    expect(edit).to_contain_text("last_name : Garnier-Lefèvre")

    answer = page.goto("/console/journal/historique?organisation=habitat-93&type=user&id=gilles")
    assert answer.status == 200  # the organisation parameter is not a partner admin's choice
    answer = page.goto("/console/journal/decisions?organisation=habitat-93")
    assert answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("autre organisme")


def test_a_plain_user_has_no_journal(page: Any) -> None:
    """log.read (policies/admin_policy.csv): neither the decision log nor the audit trail for a
    user who is neither operator nor partner admin (R-ADM-5, R-ADM-7)."""
    sign_in(page, "chloe.roux")
    expect(page.get_by_role("link", name="Journal des décisions")).to_have_count(0)
    expect(page.get_by_role("link", name="Historique des modifications")).to_have_count(0)
    answer = page.goto("/console/journal/decisions")
    assert answer.status == 403
    expect(heading(page)).to_have_text("Accès refusé")
    answer = page.goto("/console/journal/historique?type=user&id=chloe.roux")
    assert answer.status == 403
