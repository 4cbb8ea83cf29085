"""The console's "Mes utilisateurs" screens (fiches 1 to 6 of the guide), clicked through in
Chromium against a real ``pdp serve``, and the refusals a manager and a plain user meet."""

from __future__ import annotations

import re
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

ORG = "mairie-montreuil"


@pytest.fixture(autouse=True)
def _browser_here() -> None:
    need_browser()


def open_my_users(page: Any) -> None:
    """Steps 1-2 of fiches 1 to 6: "Gestion des habilitations" → "Mes utilisateurs"."""
    section = page.get_by_role("region", name="Gestion des habilitations")
    section.get_by_role("link", name="Mes utilisateurs").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes utilisateurs")


def row(page: Any, login: str) -> Any:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=login, exact=True))


def test_fiche_1_create_a_user(page: Any) -> None:
    sign_in(page, "alice.martin")
    screenshot(page, "accueil")
    open_my_users(page)
    screenshot(page, "mes-utilisateurs")
    page.get_by_role("link", name="Créer un utilisateur").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Créer un utilisateur partenaire")
    # A login already taken: the service's refusal on the form, the values kept.
    page.get_by_label("Identifiant").fill("chloe.roux")
    page.get_by_label("Nom", exact=False).first.fill("Blanc")
    page.get_by_label("Prénom").fill("Nina")
    page.get_by_label("Adresse électronique").fill("nina.blanc@example.fr")
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("alert").first).to_contain_text("déjà utilisé")
    expect(page.get_by_label("Prénom")).to_have_value("Nina")
    expect(page.get_by_label("Identifiant")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Identifiant").fill("nina.blanc")
    screenshot(page, "creer-un-utilisateur")
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes utilisateurs")
    expect(page.get_by_role("status")).to_contain_text("L'utilisateur nina.blanc a été créé")
    expect(row(page, "nina.blanc")).to_contain_text("Nina")


def test_fiche_2_edit_a_user(page: Any) -> None:
    sign_in(page, "alice.martin")
    open_my_users(page)
    page.get_by_role("link", name="Modifier l'utilisateur emma.garnier").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Modifier un utilisateur partenaire")
    page.get_by_label("Adresse électronique").fill("emma.garnier@montreuil.example.fr")
    page.get_by_role("button", name="Enregistrer les modifications").click()
    expect(page.get_by_role("status")).to_contain_text("Les modifications de emma.garnier")
    expect(row(page, "emma.garnier")).to_contain_text("emma.garnier@montreuil.example.fr")


def test_fiche_3_close_a_user(page: Any) -> None:
    sign_in(page, "alice.martin")
    open_my_users(page)
    page.get_by_role("link", name="Modifier l'utilisateur emma.garnier").click()
    # Not in the past (R-USR-4): refused on the form.
    page.get_by_label("Date de clôture").fill(day(-1))
    page.get_by_role("button", name="Enregistrer les modifications").click()
    expect(page.get_by_role("alert").first).to_contain_text("rétroactive")
    page.get_by_label("Date de clôture").fill(day(60))
    page.get_by_role("button", name="Enregistrer les modifications").click()
    # Closing asks first, with what it will do from that day (the write's own preview).
    question = page.get_by_role("region", name="Voulez-vous clôturer l'utilisateur emma.garnier")
    expect(question.locator("#consequences")).to_be_visible()
    question.get_by_role("button", name="Oui").click()
    expect(page.get_by_role("status")).to_contain_text("emma.garnier sera clôturé")
    expect(row(page, "emma.garnier")).to_contain_text(day(60))


def test_fiche_4_attach_a_user_to_a_group(page: Any) -> None:
    sign_in(page, "alice.martin")
    open_my_users(page)
    # R-MEM-2 with the guide's caution, before chloe.roux is attached below: she holds Cdap T1
    # through CCAS-ACCUEIL alone, so detaching her asks first and says she will lose it; "Non"
    # leaves her attached (R-DEC-1).
    row(page, "chloe.roux").get_by_role("link", name="Gérer l'appartenance").click()
    page.get_by_role("link", name="Détacher aujourd'hui du groupe CCAS-ACCUEIL").click()
    question = page.get_by_role("region", name="Voulez-vous détacher chloe.roux")
    expect(question).to_contain_text("1 utilisateur perdra l'accès à Cdap (T1).")
    question.get_by_role("link", name="Non").click()
    expect(page.get_by_role("table")).to_contain_text("CCAS-ACCUEIL")
    sign_in(page, "alice.martin")
    open_my_users(page)
    row(page, "chloe.roux").get_by_role("link", name="Ajouter à un groupe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ajouter un utilisateur au groupe")
    page.get_by_label("Groupe d'utilisateurs").select_option("CCAS-INSTRUCTION")
    page.get_by_role("button", name="Ajouter au groupe").click()
    expect(page.get_by_role("status")).to_contain_text("chloe.roux est rattaché(e)")
    # Again: already a member, the service's 409 on the form.
    row(page, "chloe.roux").get_by_role("link", name="Ajouter à un groupe").click()
    page.get_by_label("Groupe d'utilisateurs").select_option("CCAS-INSTRUCTION")
    page.get_by_role("button", name="Ajouter au groupe").click()
    expect(page.get_by_role("alert").first).to_contain_text("déjà rattaché")


def test_fiche_5_users_of_a_group_and_a_users_detail(page: Any) -> None:
    sign_in(page, "alice.martin")
    open_my_users(page)
    page.get_by_label("Sélectionner un groupe").select_option("CCAS-ACCUEIL")
    page.get_by_role("button", name="Filtrer").click()
    expect(page.get_by_role("table")).to_contain_text("Membres du groupe CCAS-ACCUEIL")
    expect(row(page, "chloe.roux")).to_have_count(1)
    expect(row(page, "alice.martin")).to_have_count(0)
    row(page, "chloe.roux").get_by_role("link", name="Détail de l'utilisateur").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Visualiser un utilisateur partenaire"
    )
    expect(page.get_by_role("table")).to_contain_text("CCAS-ACCUEIL")
    expect(page.get_by_text(re.compile("Cdap|cdap")).first).to_be_visible()
    screenshot(page, "detail-de-l-utilisateur")


def test_fiche_6_membership_dates_and_detach(page: Any) -> None:
    sign_in(page, "alice.martin")
    open_my_users(page)
    row(page, "bruno.petit").get_by_role("link", name="Gérer l'appartenance").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Gérer l'appartenance de l'utilisateur"
    )
    page.get_by_role(
        "link", name="Modifier les dates d'appartenance au groupe CCAS-INSTRUCTION"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Modifier les dates d'appartenance au groupe"
    )
    page.get_by_label("Date de fin").fill(day(10))
    page.get_by_role("button", name="Enregistrer les modifications").click()
    # An end date detaches then: asked first, with what it will do from that day.
    question = page.get_by_role("region", name="Voulez-vous détacher bruno.petit du groupe")
    expect(question).to_contain_text("Conséquences : Aucun accès ne change.")
    question.get_by_role("button", name="Oui").click()
    expect(page.get_by_role("status")).to_contain_text("sont enregistrées")
    row(page, "bruno.petit").get_by_role("link", name="Détail de l'utilisateur").click()
    expect(row(page, "CCAS-INSTRUCTION")).to_contain_text(day(10))
    # Detaching asks first, with what it will do (the write's own preview): bruno.petit keeps
    # Cdap T1 and T18 through CCAS, so no access changes; then "Oui" detaches him today.
    sign_in(page, "alice.martin")
    open_my_users(page)
    row(page, "bruno.petit").get_by_role("link", name="Gérer l'appartenance").click()
    page.get_by_role("link", name="Détacher aujourd'hui du groupe CCAS-INSTRUCTION").click()
    question = page.get_by_role("region", name="Voulez-vous détacher bruno.petit")
    expect(question).to_contain_text("Conséquences : Aucun accès ne change.")
    question.get_by_role("button", name="Oui").click()
    expect(page.get_by_role("status")).to_contain_text("détaché(e) du groupe CCAS-INSTRUCTION")


def test_a_manager_cannot_edit_a_partner_admin_nor_another_organisation(page: Any) -> None:
    sign_in(page, "bruno.petit")
    open_my_users(page)
    expect(page.get_by_role("link", name="Modifier l'utilisateur chloe.roux")).to_have_count(1)
    expect(page.get_by_role("link", name="Modifier l'utilisateur alice.martin")).to_have_count(0)
    answer = page.goto(f"/console/organisations/{ORG}/utilisateurs/alice.martin/modifier")
    assert answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("administrateur partenaire")
    answer = page.goto("/console/organisations/habitat-93/utilisateurs")
    assert answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("autre organisme")


def test_the_welcome_page_shows_a_single_service_straight_away(page: Any) -> None:
    """R-DEC-4 and the guide's "La navigation": several services, one tile each (bruno.petit:
    Cdap and the habilitations he manages); a single one, its entries at once (alice.martin:
    the habilitations module only; chloe.roux: Cdap only)."""
    sign_in(page, "bruno.petit")
    tiles = page.get_by_role("region", name="Mes services")
    expect(tiles.get_by_role("heading", name="Cdap")).to_have_count(1)
    expect(page.get_by_role("region", name="Gestion des habilitations")).to_have_count(1)
    sign_in(page, "alice.martin")
    expect(page.get_by_role("region", name="Mes services")).to_have_count(0)
    habilitations = page.get_by_role("region", name="Gestion des habilitations")
    expect(habilitations.get_by_role("link", name="Mes utilisateurs")).to_have_count(1)
    expect(habilitations.get_by_role("link", name="Mes groupes")).to_have_count(1)
    sign_in(page, "chloe.roux")
    expect(page.get_by_role("region", name="Mes services")).to_have_count(0)
    expect(page.get_by_role("region", name="Cdap")).to_contain_text("Vos profils : T1")


def test_a_plain_user_sees_the_welcome_page_only(page: Any) -> None:
    sign_in(page, "chloe.roux")
    expect(page.get_by_role("region", name="Cdap")).to_contain_text("Vos profils : T1")
    expect(page.get_by_role("region", name="Gestion des habilitations")).to_have_count(0)
    expect(page.get_by_role("link", name="Mes utilisateurs")).to_have_count(0)
    answer = page.goto(f"/console/organisations/{ORG}/utilisateurs")
    assert answer.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Accès refusé")
    expect(page.get_by_role("alert")).to_contain_text("Votre profil ne permet pas")
