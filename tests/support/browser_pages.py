"""The console's group screens driven in the browser (Playwright): open, create, choose a
manager, assign roles."""

from __future__ import annotations

import re
from typing import Any

from support.browser import expect
from support.constants import CONVENTION


def open_my_groups(page: Any) -> None:
    """Steps 1-2 of fiches 7 to 16: "Gestion des habilitations" → "Mes groupes" → the screen
    "Groupes utilisateurs"."""
    page.goto("/console/")
    section = page.get_by_role("region", name="Gestion des habilitations")
    section.get_by_role("link", name="Mes groupes").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Groupes utilisateurs")


def row(page: Any, code: str) -> Any:
    return page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=code, exact=True))


def choose_manager(page: Any, login: str) -> None:
    page.get_by_role("combobox", name="Responsable d'habilitations").select_option(login)


def create_group(page: Any, code: str, manager: str, label: str = "") -> None:
    """Fiche 7, steps 1 to 6, by a partner admin already signed in."""
    open_my_groups(page)
    page.get_by_role("link", name="Créer un groupe", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Créer un groupe d'utilisateurs")
    page.get_by_label("Convention").select_option(CONVENTION)
    page.get_by_label("Code du groupe").fill(code)
    page.get_by_label("Libellé du groupe").fill(label or f"Groupe {code}")
    choose_manager(page, manager)
    page.get_by_role("button", name="Créer le groupe").click()
    expect(page.get_by_role("status")).to_contain_text(f"Le groupe {code} a été créé")


def open_roles(page: Any, code: str, service: str = "Cdap") -> None:
    """Fiche 9, steps 1 to 4, then the service selector."""
    open_my_groups(page)
    row(page, code).get_by_role("link", name=f"Habilitations du groupe {code}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Habilitations du groupe")
    expect(page).to_have_title(re.compile(f"^Habilitations du groupe {code} – "))
    page.get_by_label("Service").select_option(label=service)
    page.get_by_role("button", name="Afficher").click()


def available(page: Any) -> Any:
    return page.get_by_role("group", name="Rôles disponibles")


def assigned(page: Any) -> Any:
    return page.get_by_role("group", name="Rôles assignés")


def assign(page: Any, *roles: str) -> None:
    """Fiche 12, steps 5 and 6: tick, "Assigner rôle", "Enregistrer les modifications"."""
    for role in roles:
        available(page).get_by_role("checkbox", name=role, exact=True).check()
    page.get_by_role("button", name="Assigner rôle").click()
    for role in roles:
        expect(assigned(page)).to_contain_text(f"{role} (à enregistrer)")
    page.get_by_role("button", name="Enregistrer les modifications").click()
    expect(page.get_by_role("status")).to_contain_text("sont enregistrées")
