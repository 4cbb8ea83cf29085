"""The unnumbered how-to sheets ("fiches pratiques", listed in docs/rules.md), clicked through
in the console against a real ``pdp serve``, each proved by a real decision of the server's
``POST /v1/check``: "Habiliter un utilisateur", "Créer un sous-groupe", and "Consulter un
dossier (service Cdap)" (the only three such sheets; the last is an end user's, not an
administrator's)."""

from __future__ import annotations

from typing import Any

import pytest

from support.browser import browser, console_server, expect, need_browser, page, sign_in
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


@pytest.fixture(autouse=True)
def _browser_here() -> None:
    need_browser()


def user_row(page: Any, login: str) -> Any:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=login, exact=True))


def test_howto_habiliter_un_utilisateur(page: Any, console_server: Served) -> None:
    """ "Habiliter un utilisateur": the partner admin creates a group with its manager
    (R-GRP-1, R-ADM-3), gives it Cdap T18 (R-GRP-4), creates a user (no right yet, R-USR-2)
    and adds her to the group (R-MEM-1): the next decision allows her."""
    server = console_server.server
    sign_in(page, "alice.martin")
    create_group(page, "RSA", "bruno.petit", "Instruction RSA")
    # "Dans la liste des groupes, repérez le groupe que vous venez de créer ... habilitations
    # du groupe"; "Sélectionnez le service concerné, ici Cdap", assign the role, save.
    expect(row(page, "RSA")).to_contain_text("bruno.petit")
    open_roles(page, "RSA")
    assign(page, "T18")
    # "Vous allez maintenant ajouter un utilisateur".
    page.get_by_role("navigation", name="Menu principal").get_by_role(
        "link", name="Mes utilisateurs"
    ).click()
    page.get_by_role("link", name="Créer un utilisateur").click()
    page.get_by_label("Identifiant").fill("zoe.durand")
    page.get_by_label("Nom (obligatoire)", exact=True).fill("Durand")
    page.get_by_label("Prénom").fill("Zoé")
    page.get_by_label("Adresse électronique").fill("zoe.durand@montreuil.example.fr")
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("status")).to_contain_text("L'utilisateur zoe.durand a été créé")
    before = server.check(user="zoe.durand", service="cdap", role="T18")
    assert not before["allowed"]
    assert before["reason"]["code"] == "NO_MEMBERSHIP"
    # "Sélectionnez le groupe auquel affecter votre nouvel utilisateur ... ajouter au groupe".
    user_row(page, "zoe.durand").get_by_role("link", name="Ajouter à un groupe").click()
    page.get_by_label("Groupe d'utilisateurs").select_option("RSA")
    page.get_by_role("button", name="Ajouter au groupe").click()
    expect(page.get_by_role("status")).to_contain_text("zoe.durand est rattaché(e)")
    # "Votre utilisateur est maintenant habilité."
    after = server.check(user="zoe.durand", service="cdap", role="T18")
    assert after["allowed"], after
    assert after["grants"] == [
        {"group": "RSA", "service": "cdap", "role": "T18", "source": "group"}
    ]


def test_howto_creer_un_sous_groupe(page: Any, console_server: Served) -> None:
    """ "Créer un sous-groupe": after the admin created a group (the how-to above), its manager
    creates a sub-group inside it (R-ADM-5); the sub-group is offered only its parent's roles
    (R-GRP-4); its member is allowed those only."""
    server = console_server.server
    sign_in(page, "alice.martin")
    create_group(page, "PMI", "bruno.petit", "Protection maternelle et infantile")
    open_roles(page, "PMI")
    assign(page, "T18")
    sign_in(page, "bruno.petit")
    open_my_groups(page)
    expect(page.get_by_role("link", name="Créer un groupe", exact=True)).to_have_count(0)
    page.get_by_role("link", name="Créer un sous-groupe", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Créer un sous-groupe")
    page.get_by_label("Groupe parent").select_option("PMI")
    page.get_by_label("Code du groupe").fill("PMI-ACCUEIL")
    page.get_by_label("Libellé du groupe").fill("Accueil PMI")
    choose_manager(page, "emma.garnier")
    page.get_by_role("button", name="Créer le groupe").click()
    expect(page.get_by_role("status")).to_contain_text("Le groupe PMI-ACCUEIL a été créé")
    expect(row(page, "PMI-ACCUEIL")).to_contain_text("PMI")
    open_roles(page, "PMI-ACCUEIL")
    # "Un sous-groupe ne peut pas avoir d'autres rôles que ceux possédés par son parent direct."
    expect(available(page).get_by_role("checkbox")).to_have_count(1)
    expect(available(page)).to_contain_text("T18")
    assign(page, "T18")
    expect(assigned(page)).to_contain_text("T18")
    page.goto("/console/organisations/mairie-montreuil/utilisateurs/emma.garnier/groupes/ajouter")
    page.get_by_label("Groupe d'utilisateurs").select_option("PMI-ACCUEIL")
    page.get_by_role("button", name="Ajouter au groupe").click()
    expect(page.get_by_role("status")).to_contain_text("emma.garnier est rattaché(e)")
    allowed = server.check(user="emma.garnier", service="cdap", role="T18")
    assert allowed["allowed"], allowed
    assert {"group": "PMI-ACCUEIL", "service": "cdap", "role": "T18", "source": "group"} in (
        allowed["grants"]
    )
    assert not server.check(user="emma.garnier", service="cdap", role="T1")["allowed"]


def test_howto_consulter_un_dossier_cdap(page: Any, console_server: Served) -> None:
    """ "Consulter un dossier (service Cdap)", profile T1: the user's welcome page shows the
    services her groups give her today (R-DEC-4), and the Cdap front-end's check for the file's
    Caf answers accordingly (R-CON-3)."""
    server = console_server.server
    sign_in(page, "chloe.roux")
    # Her single service: its entries straight away, no tiles (the guide, "La navigation").
    service = page.get_by_role("region", name="Cdap")
    expect(service).to_contain_text("Vos profils : T1")
    expect(service).to_contain_text("Caf : 931")
    expect(page.get_by_role("region", name="Gestion des habilitations")).to_have_count(0)
    assert server.check(user="chloe.roux", service="cdap", role="T1", caf="931")["allowed"]
    other_caf = server.check(user="chloe.roux", service="cdap", role="T1", caf="751")
    assert other_caf["reason"]["code"] == "CAF_NOT_SUBSCRIBED"
