"""The console's "Mes groupes" screens (fiches 7 to 16 of the guide), clicked through in
Chromium against a real ``pdp serve``, and the refusals a manager meets. Each test that writes
works on its own group codes, so the module shares one server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from pdp.core.clock import paris_today

from support.browser import browser, console_server, expect, need_browser, page, screenshot, sign_in
from support.browser_pages import (
    assign,
    assigned,
    available,
    choose_manager,
    create_group,
    open_my_groups,
    open_roles,
    row,
)
from support.servers import Served

__all__ = ["browser", "console_server", "page"]  # fixtures used by name below

pytestmark = pytest.mark.e2e

ORG = "mairie-montreuil"


@pytest.fixture(autouse=True)
def _browser_here() -> None:
    need_browser()


@pytest.fixture
def other_page(browser: Any, console_server: Served) -> Iterator[Any]:
    """A second browser (its own cookies): another user acting at the same time."""
    context = browser.new_context(base_url=console_server.server.base_url, locale="fr-FR")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def today() -> str:
    return paris_today().isoformat()


def closing(page: Any, code: str) -> Any:
    """The "Clôture" cell of the group's row."""
    return row(page, code).get_by_role("cell").nth(4)


def new_manager(page: Any, login: str, first: str, last: str) -> None:
    """The manager picker's "Créer l'utilisateur": the user is created with the group."""
    page.get_by_role("combobox", name="Responsable d'habilitations").select_option(
        label="Créer l'utilisateur (saisir ci-dessous)"
    )
    block = page.get_by_role("group", name="Créer l'utilisateur")
    block.get_by_label("Identifiant").fill(login)
    block.get_by_label("Nom", exact=True).fill(last)
    block.get_by_label("Prénom").fill(first)
    block.get_by_label("Adresse électronique").fill(f"{login}@montreuil.example.fr")


def create_subgroup(page: Any, parent: str, code: str, manager: str) -> None:
    """ "Créer un sous-groupe" from the parent's row ("Autres actions")."""
    open_my_groups(page)
    row(page, parent).get_by_role("link", name=f"Créer un sous-groupe de {parent}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Créer un sous-groupe")
    expect(page.get_by_label("Groupe parent")).to_have_value(parent)
    page.get_by_label("Code du groupe").fill(code)
    page.get_by_label("Libellé du groupe").fill(f"Sous-groupe {code}")
    choose_manager(page, manager)
    page.get_by_role("button", name="Créer le groupe").click()
    expect(page.get_by_role("status")).to_contain_text(f"Le groupe {code} a été créé")


def test_fiche_7_create_a_group(page: Any) -> None:
    """Fiche 7 by the partner admin: a top-level group with its manager (R-GRP-1, R-ADM-3);
    a code already used is refused on the form, the values kept; the manager may be created on
    the fly ("Créer l'utilisateur")."""
    sign_in(page, "alice.martin")
    open_my_groups(page)
    screenshot(page, "mes-groupes")
    page.get_by_role("link", name="Créer un groupe", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Créer un groupe d'utilisateurs")
    page.get_by_label("Code du groupe").fill("CCAS")
    page.get_by_label("Libellé du groupe").fill("Aide sociale")
    choose_manager(page, "bruno.petit")
    page.get_by_role("button", name="Créer le groupe").click()
    expect(page.get_by_role("alert").first).to_contain_text("déjà utilisé")
    expect(page.get_by_label("Code du groupe")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Libellé du groupe")).to_have_value("Aide sociale")
    page.get_by_label("Code du groupe").fill("AIDE-SOCIALE")
    new_manager(page, "nora.vidal", "Nora", "Vidal")
    screenshot(page, "creer-un-groupe")
    page.get_by_role("button", name="Créer le groupe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Groupes utilisateurs")
    expect(page.get_by_role("status")).to_contain_text("Le groupe AIDE-SOCIALE a été créé")
    expect(row(page, "AIDE-SOCIALE")).to_contain_text("nora.vidal")
    expect(row(page, "AIDE-SOCIALE")).to_contain_text(today())


def test_fiche_8_the_groups_in_tree_order_and_a_groups_detail(page: Any) -> None:
    """Fiche 8: the organisation's groups, sub-groups under their parent (R-GRP-5), then
    "Détail du groupe" → "Visualiser un groupe utilisateurs"."""
    sign_in(page, "alice.martin")
    open_my_groups(page)
    codes = [c.strip("└ ").strip() for c in page.locator("tbody tr th").all_inner_texts()]
    ccas = codes.index("CCAS")
    assert codes[ccas + 1 : ccas + 4] == ["CCAS-ACCUEIL", "CCAS-ARCHIVES", "CCAS-INSTRUCTION"]
    expect(row(page, "CCAS-ACCUEIL").get_by_role("rowheader")).to_have_class("niveau-1")
    expect(row(page, "CCAS")).to_contain_text("bruno.petit")
    row(page, "CCAS").get_by_role("link", name="Détail du groupe CCAS").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Visualiser un groupe utilisateurs")
    expect(page.get_by_text("CCAS-INSTRUCTION", exact=True)).to_be_visible()
    expect(page.get_by_role("table")).to_contain_text("T18")
    expect(page.get_by_role("listitem").filter(has_text="bruno.petit")).to_have_count(1)
    screenshot(page, "detail-du-groupe")


def test_fiche_9_the_roles_of_a_group(page: Any) -> None:
    """Fiche 9: "Habilitations du groupe": the assigned roles in the right-hand block, the
    assignable ones (those of the parent, R-GRP-4) on the left."""
    sign_in(page, "alice.martin")
    open_roles(page, "CCAS-ACCUEIL")
    expect(assigned(page)).to_contain_text("T1")
    expect(available(page)).to_contain_text("T18")
    expect(available(page)).not_to_contain_text("T21")  # CCAS does not hold it
    # R-CAT-1: each Cdap role says which tabs and actions of a file it opens.
    expect(assigned(page).locator('small[data-role="T1"]')).to_have_text(
        "— ouvre : synthese, resume"
    )
    expect(available(page).locator('small[data-role="T18"]')).to_contain_text("paiements")
    screenshot(page, "habilitations-du-groupe")


def test_fiche_10_edit_a_group(page: Any) -> None:
    """Fiche 10: the pencil → "Modifier un groupe utilisateurs" → "Enregistrer les
    modifications"; an opening date of a started group cannot change."""
    sign_in(page, "alice.martin")
    open_my_groups(page)
    page.get_by_role("link", name="Modifier le groupe CCAS-ACCUEIL").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Modifier un groupe utilisateurs")
    page.get_by_label("Libellé du groupe").fill("Accueil du public")
    page.get_by_label("Date d'ouverture").fill(today())
    page.get_by_role("button", name="Enregistrer les modifications").click()
    expect(page.get_by_role("alert").first).to_contain_text("Seule l'ouverture d'un groupe à venir")
    expect(page.get_by_label("Libellé du groupe")).to_have_value("Accueil du public")
    page.goto(f"/console/organisations/{ORG}/groupes/CCAS-ACCUEIL/modifier")
    page.get_by_label("Libellé du groupe").fill("Accueil du public")
    page.get_by_role("button", name="Enregistrer les modifications").click()
    expect(page.get_by_role("status")).to_contain_text("Les modifications du groupe CCAS-ACCUEIL")
    expect(row(page, "CCAS-ACCUEIL")).to_contain_text("Accueil du public")


def test_fiche_11_close_a_group_after_confirmation(page: Any) -> None:
    """Fiche 11: the close icon asks for confirmation; "Non" changes nothing; "Oui" closes the
    group today with its sub-group (R-GRP-2)."""
    sign_in(page, "alice.martin")
    create_group(page, "G11", "bruno.petit")
    create_subgroup(page, "G11", "G11-SUB", "chloe.roux")
    open_my_groups(page)
    row(page, "G11").get_by_role("link", name="Clôturer le groupe G11").click()
    expect(page).to_have_title(re.compile("^Clôturer le groupe G11 – "))
    dialog = page.get_by_role("region", name="Voulez-vous clôturer le groupe G11")
    expect(dialog).to_contain_text("Voulez-vous clôturer le groupe G11")
    expect(dialog).to_contain_text("G11-SUB")
    dialog.get_by_role("link", name="Non").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Groupes utilisateurs")
    expect(closing(page, "G11")).to_have_text("")
    expect(row(page, "G11").get_by_role("link", name="Clôturer le groupe G11")).to_have_count(1)
    row(page, "G11").get_by_role("link", name="Clôturer le groupe G11").click()
    page.get_by_role("region", name="Voulez-vous clôturer le groupe G11").get_by_role(
        "button", name="Oui"
    ).click()
    expect(page.get_by_role("status")).to_contain_text("Le groupe G11 est clôturé")
    expect(closing(page, "G11")).to_have_text(today())
    expect(closing(page, "G11-SUB")).to_have_text(today())
    expect(row(page, "G11").get_by_role("link", name="Clôturer le groupe G11")).to_have_count(0)


def test_fiche_11_the_confirmation_shows_what_closing_will_do(page: Any) -> None:
    """Fiche 11's caution ("la plus grande prudence"): before "Oui", the consequences computed
    by the write's own preview, in French, with the users behind a link; "Non" writes nothing
    (R-GRP-2, R-DEC-1)."""
    sign_in(page, "alice.martin")
    open_my_groups(page)
    row(page, "CCAS-ACCUEIL").get_by_role("link", name="Clôturer le groupe CCAS-ACCUEIL").click()
    found = page.locator("#consequences")
    expect(found).to_contain_text(
        "1 utilisateur perdra l'accès à Cdap (T1) ; le groupe CCAS-ACCUEIL sera clôturé."
    )
    expect(found.get_by_text("chloe.roux : perd cdap T1")).to_be_hidden()
    found.get_by_text("Voir le détail").click()
    expect(found.get_by_text("chloe.roux : perd cdap T1 (Caf 931)")).to_be_visible()
    screenshot(page, "cloture-consequences")
    page.get_by_role("link", name="Non", exact=True).click()
    expect(closing(page, "CCAS-ACCUEIL")).to_have_text("")


def test_fiche_10_a_closing_date_asks_first_with_what_it_will_do(page: Any) -> None:
    """Fiche 10 with a closing date: before "Oui", what the closing will do from that day (its
    preview: the member loses the group's role, the group closes), as fiche 11 (R-GRP-2)."""
    sign_in(page, "alice.martin")
    open_my_groups(page)
    page.get_by_role("link", name="Modifier le groupe CCAS-ACCUEIL").click()
    page.get_by_label("Date de clôture").fill(today())
    page.get_by_role("button", name="Enregistrer les modifications").click()
    confirm = page.get_by_role("region", name="Voulez-vous enregistrer ces modifications")
    expect(confirm).to_contain_text("Le groupe sera clôturé le")
    expect(page.locator("#consequences")).to_contain_text(
        "1 utilisateur perdra l'accès à Cdap (T1) ; le groupe CCAS-ACCUEIL sera clôturé."
    )
    confirm.get_by_role("link", name="Non").click()
    open_my_groups(page)
    expect(closing(page, "CCAS-ACCUEIL")).to_have_text("")


def test_fiche_12_assign_a_role(page: Any, console_server: Served) -> None:
    """Fiche 12 by the manager bruno.petit, in his perimeter (R-ADM-5): Cdap T18 to
    CCAS-ACCUEIL, which its parent CCAS holds (R-GRP-4); its member is allowed at once."""
    assert not console_server.server.check(user="chloe.roux", service="cdap", role="T18")["allowed"]
    sign_in(page, "bruno.petit")
    open_roles(page, "CCAS-ACCUEIL")
    assign(page, "T18")
    expect(assigned(page)).to_contain_text("T18")
    expect(assigned(page)).not_to_contain_text("à enregistrer")
    answer = console_server.server.check(user="chloe.roux", service="cdap", role="T18")
    assert answer["allowed"], answer
    assert {"group": "CCAS-ACCUEIL", "service": "cdap", "role": "T18", "source": "group"} in (
        answer["grants"]
    )


def test_fiche_13_remove_a_role(page: Any) -> None:
    """Fiche 13: tick the role in "Rôles assignés", "Retirer rôle" (it moves to the left-hand
    block), "Enregistrer les modifications" (R-GRP-4)."""
    sign_in(page, "alice.martin")
    open_roles(page, "CCAS-INSTRUCTION")
    assigned(page).get_by_role("checkbox", name="T18", exact=True).check()
    page.get_by_role("button", name="Retirer rôle").click()
    expect(available(page)).to_contain_text("T18 (retrait à enregistrer)")
    expect(assigned(page)).not_to_contain_text("T18")
    # Before saving, what the save will do (its preview): the group loses the role.
    expect(page.locator("#consequences")).to_contain_text(
        "Le groupe CCAS-INSTRUCTION perdra le rôle cdap T18."
    )
    page.get_by_role("button", name="Enregistrer les modifications").click()
    expect(page.get_by_role("status")).to_contain_text("T18 retiré")
    expect(assigned(page)).not_to_contain_text("T18")
    expect(available(page)).to_contain_text("T18")


def test_fiche_14_name_a_manager_created_on_the_fly(page: Any) -> None:
    """Fiche 14: the pencil → "Modifier un groupe utilisateurs" → a new responsable
    d'habilitations, created from this screen (R-ADM-3)."""
    sign_in(page, "alice.martin")
    create_group(page, "G14", "bruno.petit")
    page.get_by_role("link", name="Modifier le groupe G14").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Modifier un groupe utilisateurs")
    new_manager(page, "olga.perez", "Olga", "Perez")
    page.get_by_role("button", name="Enregistrer les modifications").click()
    confirm = page.get_by_role("region", name="Voulez-vous enregistrer ces modifications")
    expect(confirm).to_contain_text(
        "bruno.petit ne sera plus responsable d'habilitations du groupe ; olga.perez le deviendra"
    )
    confirm.get_by_role("button", name="Oui").click()
    expect(page.get_by_role("status")).to_contain_text("Les modifications du groupe G14")
    expect(row(page, "G14")).to_contain_text("olga.perez")


def test_fiche_15_the_manager_on_the_groups_detail(page: Any) -> None:
    """Fiche 15: "Détail du groupe" shows the designated responsable d'habilitations."""
    sign_in(page, "alice.martin")
    open_my_groups(page)
    row(page, "CCAS-INSTRUCTION").get_by_role("link", name="Détail du groupe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Visualiser un groupe utilisateurs")
    expect(page.get_by_role("definition").filter(has_text="bruno.petit")).to_contain_text(
        "Bruno Petit (bruno.petit)"
    )


def test_fiche_16_replace_a_manager(page: Any, other_page: Any) -> None:
    """Fiche 16: replace the manager (``replaces`` the current one, R-ADM-3); a form opened
    before someone else's replacement is refused instead of overwriting it."""
    sign_in(page, "alice.martin")
    create_group(page, "G16", "bruno.petit")
    page.get_by_role("link", name="Modifier le groupe G16").click()
    sign_in(other_page, "alice.martin")
    other_page.goto(f"/console/organisations/{ORG}/groupes/G16/modifier")
    choose_manager(page, "chloe.roux")
    page.get_by_role("button", name="Enregistrer les modifications").click()
    # Asked first (what the replacement will do: nobody's access changes); "Non" writes nothing.
    confirm = page.get_by_role("region", name="Voulez-vous enregistrer ces modifications")
    expect(confirm).to_contain_text("bruno.petit ne sera plus responsable d'habilitations")
    expect(page.locator("#consequences")).to_contain_text("Conséquences")
    confirm.get_by_role("link", name="Non").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Modifier un groupe utilisateurs")
    open_my_groups(page)
    expect(row(page, "G16")).to_contain_text("bruno.petit")
    row(page, "G16").get_by_role("link", name="Modifier le groupe G16").click()
    choose_manager(page, "chloe.roux")
    page.get_by_role("button", name="Enregistrer les modifications").click()
    page.get_by_role("button", name="Oui").click()
    expect(row(page, "G16")).to_contain_text("chloe.roux")
    row(page, "G16").get_by_role("link", name="Détail du groupe").click()
    expect(page.get_by_role("definition").filter(has_text="chloe.roux")).to_contain_text(
        "Chloé Roux"
    )
    # The stale form still says bruno.petit is the manager: refused, nothing overwritten.
    choose_manager(other_page, "emma.garnier")
    other_page.get_by_role("button", name="Enregistrer les modifications").click()
    expect(other_page.get_by_role("alert").first).to_contain_text("état périmé")
    open_my_groups(page)
    expect(row(page, "G16")).to_contain_text("chloe.roux")


def test_a_manager_cannot_create_a_top_level_group(page: Any) -> None:
    """R-ADM-5: top-level groups are the partner admins'; a manager creates sub-groups only."""
    sign_in(page, "bruno.petit")
    open_my_groups(page)
    expect(page.get_by_role("link", name="Créer un groupe", exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="Créer un sous-groupe", exact=True)).to_have_count(1)
    answer = page.goto(f"/console/organisations/{ORG}/groupes/nouveau")
    assert answer.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Accès refusé")
    expect(page.get_by_role("alert")).to_contain_text("Votre profil ne permet pas cette action")


def test_a_manager_cannot_edit_a_group_outside_his_perimeter(page: Any) -> None:
    """R-ADM-5 (decision): a manager edits strictly below his own groups only; another
    organisation's groups are out of reach (R-ADM-6)."""
    sign_in(page, "bruno.petit")
    open_my_groups(page)
    expect(page.get_by_role("link", name="Modifier le groupe CCAS-ACCUEIL")).to_have_count(1)
    expect(page.get_by_role("link", name="Modifier le groupe CCAS", exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="Clôturer le groupe CCAS", exact=True)).to_have_count(0)
    answer = page.goto(f"/console/organisations/{ORG}/groupes/CCAS/modifier")
    assert answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("périmètre")
    answer = page.goto("/console/organisations/habitat-93/groupes")
    assert answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("autre organisme")


def test_a_sub_group_holds_only_roles_of_its_parent(page: Any, other_page: Any) -> None:
    """R-GRP-4: bruno.petit prepares Cdap T1 and T18 for a sub-group while alice.martin removes
    T1 from the parent; saving is refused with the rule's French message and, all or nothing,
    neither role is assigned (T18 alone would have been allowed); the pending moves stay on the
    form."""
    sign_in(page, "alice.martin")
    create_group(page, "G4", "bruno.petit")
    open_roles(page, "G4")
    assign(page, "T1", "T18")
    create_subgroup(page, "G4", "G4-SUB", "chloe.roux")
    sign_in(other_page, "bruno.petit")
    open_roles(other_page, "G4-SUB")
    expect(available(other_page)).to_contain_text("T1")
    available(other_page).get_by_role("checkbox", name="T1", exact=True).check()
    available(other_page).get_by_role("checkbox", name="T18", exact=True).check()
    other_page.get_by_role("button", name="Assigner rôle").click()
    expect(assigned(other_page)).to_contain_text("T1 (à enregistrer)")
    expect(assigned(other_page)).to_contain_text("T18 (à enregistrer)")
    open_roles(page, "G4")
    assigned(page).get_by_role("checkbox", name="T1", exact=True).check()
    page.get_by_role("button", name="Retirer rôle").click()
    page.get_by_role("button", name="Enregistrer les modifications").click()
    expect(page.get_by_role("status")).to_contain_text("T1 retiré")
    with other_page.expect_response(re.compile("habilitations$")) as answer:
        other_page.get_by_role("button", name="Enregistrer les modifications").click()
    assert answer.value.status == 409
    expect(other_page.get_by_role("alert")).to_contain_text(
        "Un sous-groupe ne peut porter que les rôles de son parent direct"
    )
    expect(other_page.get_by_role("alert")).to_contain_text("(R-GRP-4)")
    expect(other_page.get_by_text("Déjà enregistré")).to_have_count(0)
    expect(assigned(other_page)).to_contain_text("T18 (à enregistrer)")
    open_roles(other_page, "G4-SUB")
    expect(assigned(other_page)).to_contain_text("Aucun rôle assigné")
