"""The "Profils Afas" section of the console's user detail (R-AFAS-1, R-AFAS-2), clicked through
in Chromium against a real ``pdp serve``, each change proved by the server's ``POST /v1/check``;
and the refusal met in an organisation without Afas."""

from __future__ import annotations

from typing import Any

import pytest

from support.browser import browser, console_server, expect, need_browser, page, sign_in
from support.servers import Served

__all__ = ["browser", "console_server", "page"]  # fixtures used by name below

pytestmark = pytest.mark.e2e

ASSO = "asso-entraide"


@pytest.fixture(autouse=True)
def _browser_here() -> None:
    need_browser()


def row(scope: Any, name: str) -> Any:
    """The row of ``scope`` (a page or a locator) with a cell ``name``."""
    root = getattr(scope, "page", scope)  # ``has`` is relative to the row: a page's locator
    return scope.get_by_role("row").filter(has=root.get_by_role("cell", name=name, exact=True))


def open_detail(page: Any, login: str) -> Any:
    """ "Mes utilisateurs" → "Détail de l'utilisateur" of ``login``; its "Profils Afas"."""
    section = page.get_by_role("region", name="Gestion des habilitations")
    section.get_by_role("link", name="Mes utilisateurs").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes utilisateurs")
    row(page, login).get_by_role("link", name="Détail de l'utilisateur").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Visualiser un utilisateur partenaire"
    )
    return page.get_by_role("region", name="Profils Afas")


def afas_grants(server: Any, login: str) -> tuple[bool, list[dict[str, Any]]]:
    """The server's real decision: may ``login`` use afas today, and through what."""
    answer = server.check(user=login, service="afas")
    return answer["allowed"], answer.get("grants") or []


def test_a_partner_admin_holding_afas_habiliter_adds_and_removes_a_profile(
    page: Any, console_server: Served
) -> None:
    """R-AFAS-2: karim.diallo, partner admin of asso-entraide and member of "AFAS – Habiliter",
    manages marc.chevalier's Afas profiles from the user's detail; each change decides at once
    (R-AFAS-1: a profile alone grants the use of afas). The demo gives marc "consultation":
    adding it again is the service's refusal; removed, then added again, then removed."""
    server = console_server.server
    sign_in(page, "karim.diallo")
    section = open_detail(page, "marc.chevalier")
    expect(row(section, "consultation")).to_have_count(1)
    # Already held: the service's 409 (PROFILE_EXISTS), in French, nothing changed.
    section.get_by_role("combobox", name="Profil Afas").select_option("consultation")
    section.get_by_role("button", name="Ajouter le profil Afas").click()
    expect(page.get_by_role("alert").first).to_contain_text("a déjà le profil Afas consultation")
    assert afas_grants(server, "marc.chevalier")[0]
    # Removed: it closes today (R-TIME-2), the next decision denies.
    section = page.get_by_role("region", name="Profils Afas")
    section.get_by_role("button", name="Retirer le profil Afas consultation").click()
    expect(page.get_by_role("status")).to_contain_text("retiré à compter d'aujourd'hui")
    expect(row(section, "consultation")).to_have_count(0)
    assert afas_grants(server, "marc.chevalier") == (False, [])
    # Added: listed, confirmed, and the check allows through the afas_profile grant.
    section.get_by_role("combobox", name="Profil Afas").select_option("consultation")
    section.get_by_role("button", name="Ajouter le profil Afas").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Le profil Afas consultation est attribué à marc.chevalier"
    )
    expect(row(section, "consultation")).to_contain_text("oui")
    allowed, grants = afas_grants(server, "marc.chevalier")
    assert allowed, grants
    assert {"group": None, "service": "afas", "role": "consultation", "source": "afas_profile"} in (
        grants
    )
    # Removed again: denied.
    section.get_by_role("button", name="Retirer le profil Afas consultation").click()
    expect(page.get_by_role("status")).to_contain_text("retiré à compter d'aujourd'hui")
    expect(section).to_contain_text("Aucun profil Afas.")
    assert afas_grants(server, "marc.chevalier") == (False, [])


def test_no_afas_profiles_form_in_an_organisation_without_afas(
    page: Any, console_server: Served
) -> None:
    """R-AFAS-2: alice.martin (partner admin of mairie-montreuil, which does not subscribe to
    Afas) sees no "Profils Afas" on chloe.roux's detail; a forged form (with a valid CSRF
    token) is refused by the service, in French, and gives nothing."""
    sign_in(page, "alice.martin")
    open_detail(page, "chloe.roux")
    expect(page.get_by_role("heading", name="Profils Afas")).to_have_count(0)
    expect(page.get_by_role("combobox", name="Profil Afas")).to_have_count(0)
    expect(page.get_by_role("button", name="Ajouter le profil Afas")).to_have_count(0)
    token = page.locator("input[name=csrf_token]").first.input_value()
    answer = page.request.post(
        "/console/organisations/mairie-montreuil/utilisateurs/chloe.roux/profils-afas",
        form={"csrf_token": token, "profile": "consultation"},
    )
    assert answer.status == 403
    assert "AFAS – Habiliter (R-AFAS-2)" in answer.text()
    allowed, _ = afas_grants(console_server.server, "chloe.roux")
    assert not allowed
