"""The console's Caf side for operators (R-CON-4): "Organismes partenaires", registering an
organisation, its contract (conventions, subscriptions, partner admins), clicked through in
Chromium against a real ``pdp serve``, and the refusals a partner admin meets."""

from __future__ import annotations

import json
import re
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
from support.constants import OPERATOR

__all__ = ["browser", "console_server", "page"]  # fixtures used by name below

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _browser_here() -> None:
    need_browser()


def heading(page: Any) -> Any:
    return page.get_by_role("heading", level=1)


def row(page: Any, text: str) -> Any:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=text, exact=True))


def register(page: Any, code: str, name: str) -> None:
    """As the operator: "Organismes partenaires" → register ``code`` → its contract page."""
    page.get_by_role("navigation", name="Menu principal").get_by_role(
        "link", name="Organismes partenaires"
    ).click()
    expect(heading(page)).to_have_text("Organismes partenaires")
    page.get_by_role("link", name="Enregistrer un organisme partenaire").click()
    page.get_by_label("Code de l'organisme").fill(code)
    page.get_by_label("Raison sociale").fill(name)
    page.get_by_label("Type d'organisme").fill("association")
    page.get_by_role("button", name="Enregistrer").click()
    expect(heading(page)).to_have_text(f"Contrat de l'organisme {code}")
    expect(page.get_by_role("status")).to_contain_text(f"L'organisme {code} est enregistré")


def create_and_designate(page: Any, login: str, first: str, last: str) -> None:
    """On the contract page: designate a partner admin created on the fly."""
    page.get_by_role("link", name="Désigner un administrateur partenaire").click()
    expect(heading(page)).to_have_text("Désigner un administrateur partenaire")
    page.get_by_label("Identifiant (obligatoire)", exact=True).fill(login)
    page.get_by_label("Nom (obligatoire)", exact=True).fill(last)
    page.get_by_label("Prénom").fill(first)
    page.get_by_label("Adresse électronique").fill(f"{login}@example.fr")
    page.get_by_role("button", name="Créer et désigner l'utilisateur").click()


def test_an_operator_registers_an_organisation_and_its_first_partner_admin(page: Any) -> None:
    """R-CON-4: the operator registers the organisation, a convention with Caf 751 (R-CON-1),
    a subscription to cdap under it (R-CON-2), and designates a partner admin created on the
    fly (R-ADM-1); that admin then signs in and manages the new organisation's users."""
    sign_in(page, OPERATOR)
    section = page.get_by_role("region", name="Gestion des habilitations")
    expect(section.get_by_role("link", name="Organismes partenaires")).to_have_count(1)
    section.get_by_role("link", name="Organismes partenaires").click()
    expect(row(page, "mairie-montreuil")).to_have_count(1)
    screenshot(page, "organismes-partenaires")
    register(page, "centre-social-belleville", "Centre social de Belleville")

    page.get_by_role("link", name="Ajouter une convention").click()
    expect(heading(page)).to_have_text("Ajouter une convention")
    # An unknown Caf: the service's refusal on the form, the values kept.
    page.get_by_label("Caf").fill("999")
    page.get_by_label("Référence de la convention").fill("CONV-BEL-751")
    page.get_by_role("button", name="Enregistrer la convention").click()
    expect(page.get_by_role("alert").first).to_contain_text("Caf inconnue")
    expect(page.get_by_label("Caf")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Référence de la convention")).to_have_value("CONV-BEL-751")
    page.get_by_label("Caf").fill("751")
    page.get_by_role("button", name="Enregistrer la convention").click()
    expect(page.get_by_role("status")).to_contain_text("La convention CONV-BEL-751")
    expect(page.get_by_role("table").first).to_contain_text("Caf 751")

    page.get_by_role(
        "link", name="Ajouter un bulletin d'adhésion à la convention CONV-BEL-751"
    ).click()
    expect(heading(page)).to_have_text("Ajouter un bulletin d'adhésion")
    page.get_by_label("Service").select_option("cdap")
    page.get_by_role("button", name="Souscrire le service").click()
    expect(page.get_by_role("status")).to_contain_text("Le service cdap est souscrit")
    expect(row(page, "Cdap (cdap)")).to_contain_text("oui")
    # Twice: the same service overlaps under the convention (R-CON-1), refused.
    page.get_by_role(
        "link", name="Ajouter un bulletin d'adhésion à la convention CONV-BEL-751"
    ).click()
    page.get_by_label("Service").select_option("cdap")
    page.get_by_role("button", name="Souscrire le service").click()
    expect(page.get_by_role("alert").first).to_contain_text("déjà souscrit")
    page.get_by_role("link", name="Annuler").click()
    # Its dates: never in the past (R-TIME-2), then a closing date in a year.
    page.get_by_role(
        "link", name=re.compile(r"Modifier les dates du bulletin \d+ \(cdap\)")
    ).click()
    page.get_by_label("Date de fin").fill(day(-1))
    page.get_by_role("button", name="Enregistrer les modifications").click()
    expect(page.get_by_role("alert").first).to_contain_text("rétroactive")
    page.get_by_label("Date de fin").fill(day(365))
    page.get_by_role("button", name="Enregistrer les modifications").click()
    expect(page.get_by_role("status")).to_contain_text("sont enregistrées")
    expect(row(page, "Cdap (cdap)")).to_contain_text(day(365))

    create_and_designate(page, "lea.moreau", "Léa", "Moreau")
    expect(page.get_by_role("status")).to_contain_text(
        "L'utilisateur lea.moreau est créé et désigné administrateur partenaire"
    )
    expect(row(page, "lea.moreau")).to_contain_text("oui")
    screenshot(page, "contrat-de-l-organisme")

    # The new partner admin signs in and sees the new organisation's users (R-ADM-5).
    sign_in(page, "lea.moreau")
    section = page.get_by_role("region", name="Gestion des habilitations")
    expect(section.get_by_role("link", name="Organismes partenaires")).to_have_count(0)
    section.get_by_role("link", name="Mes utilisateurs").click()
    expect(heading(page)).to_have_text("Mes utilisateurs")
    expect(page.get_by_text("Organisme : centre-social-belleville")).to_be_visible()
    expect(row(page, "lea.moreau")).to_contain_text("Moreau")


def test_a_third_partner_admin_is_refused_and_a_designation_ends(page: Any) -> None:
    """R-ADM-1: at most two open partner admins; the third is refused with the rule's French
    message, the form kept filled. Ending a designation (R-TIME-2: nothing is deleted) makes
    room again."""
    sign_in(page, OPERATOR)
    register(page, "epicerie-solidaire", "Épicerie solidaire")
    create_and_designate(page, "paul.roy", "Paul", "Roy")
    expect(page.get_by_role("status")).to_contain_text("paul.roy est créé")
    create_and_designate(page, "sara.nguyen", "Sara", "Nguyen")
    expect(page.get_by_role("status")).to_contain_text("sara.nguyen est créé")
    create_and_designate(page, "tom.blanc", "Tom", "Blanc")
    expect(page.get_by_role("alert").first).to_contain_text(
        "epicerie-solidaire a déjà 2 administrateurs partenaires ouverts : en clôturer un "
        "d'abord (R-ADM-1)."
    )
    expect(page.get_by_label("Prénom")).to_have_value("Tom")
    # An existing user who is already an admin: refused on the login field.
    page.get_by_label("Identifiant de l'utilisateur").fill("paul.roy")
    page.get_by_role("button", name="Désigner cet utilisateur").click()
    expect(page.get_by_label("Identifiant de l'utilisateur")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(page.get_by_role("alert").first).to_contain_text("déjà administrateur partenaire")
    page.get_by_role("link", name="Annuler").click()

    page.get_by_role(
        "button", name="Mettre fin aujourd'hui à la désignation de sara.nguyen"
    ).click()
    expect(page.get_by_role("status")).to_contain_text("sara.nguyen")
    expect(row(page, "sara.nguyen")).to_contain_text("non")
    expect(
        page.get_by_role("button", name="Mettre fin aujourd'hui à la désignation de sara.nguyen")
    ).to_have_count(0)
    create_and_designate(page, "tom.blanc", "Tom", "Blanc")
    expect(page.get_by_role("status")).to_contain_text("tom.blanc est créé")


def test_a_partner_admin_has_no_operator_screens(page: Any) -> None:
    """R-ADM-5, R-CON-4: the Caf side is the operators'. A partner admin does not see
    "Organismes partenaires", gets 403 on its pages, and reads their own contract without
    any button to change it (R-ADM-7: what a page shows is what the admin check allows)."""
    sign_in(page, "alice.martin")
    expect(page.get_by_role("link", name="Organismes partenaires")).to_have_count(0)
    answer = page.goto("/console/organismes")
    assert answer.status == 403
    expect(heading(page)).to_have_text("Accès refusé")
    answer = page.goto("/console/organismes/nouveau")
    assert answer.status == 403
    answer = page.goto("/console/organismes/mairie-montreuil/administrateurs/nouveau")
    assert answer.status == 403
    answer = page.goto("/console/organismes/mairie-montreuil")
    assert answer.status == 200
    expect(heading(page)).to_have_text("Contrat de l'organisme mairie-montreuil")
    expect(row(page, "alice.martin")).to_have_count(1)
    expect(page.get_by_role("link", name="Ajouter une convention")).to_have_count(0)
    expect(page.get_by_role("link", name="Désigner un administrateur partenaire")).to_have_count(0)
    answer = page.goto("/console/organismes/habitat-93")
    assert answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("autre organisme")


def test_an_operator_downloads_a_persons_file_R_CNIL_15(page: Any) -> None:
    """ "Dossier d'une personne": an unknown identifier is refused on the form; a known one is
    downloaded, the document the API streams (the account, its rights, its last uses...)."""
    sign_in(page, OPERATOR)
    page.get_by_role("navigation", name="Menu principal").get_by_role(
        "link", name="Dossier d'une personne"
    ).click()
    expect(heading(page)).to_have_text("Dossier d'une personne")
    page.get_by_label("Identifiant de la personne").fill("personne.inconnue")
    page.get_by_role("button", name="Télécharger le dossier").click()
    expect(page.get_by_role("alert").first).to_contain_text("personne.inconnue")
    page.get_by_label("Identifiant de la personne").fill("bruno.petit")
    with page.expect_download() as download:
        page.get_by_role("button", name="Télécharger le dossier").click()
    document = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert document["account"]["login"] == "bruno.petit"
    assert {m["group"] for m in document["memberships"]} >= {"CCAS", "CCAS-INSTRUCTION"}


def test_a_partner_admin_has_no_persons_file_page_R_CNIL_15(page: Any) -> None:
    sign_in(page, "alice.martin")
    expect(
        page.get_by_role("navigation", name="Menu principal").get_by_role(
            "link", name="Dossier d'une personne"
        )
    ).to_have_count(0)
    answer = page.goto("/console/personnes?login=bruno.petit")
    assert answer is not None and answer.status == 403
