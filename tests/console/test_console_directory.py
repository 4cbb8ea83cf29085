"""The console's user list by pages and searchable (R-USR-6): "Rechercher" finds a text in the
login, the names or the email; "Utilisateurs suivants" walks the pages; through Flask's client
signed in as the demo's partner admin."""

from __future__ import annotations

import io
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pdp.web.console import groups as console_groups
from pdp.web.console import users as console_users

from support.console_forms import USERS, sign_in


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, "alice.martin").status_code == 302
    return client


def logins(html: str) -> list[str]:
    return re.findall(r"<tr>\s*<td>([^<]+)</td>", html)


def test_search_finds_a_user_by_any_of_their_fields_R_USR_6(admin: FlaskClient) -> None:
    page = admin.get(USERS, query_string={"recherche": "PETIT"})
    assert page.status_code == 200
    assert logins(page.text) == ["bruno.petit"]
    assert "contenant « PETIT »" in page.text


def test_pages_follow_one_another_R_USR_6(
    admin: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    everyone = logins(admin.get(USERS).text)
    assert len(everyone) > 2
    monkeypatch.setattr(console_users, "USERS_PAGE", 2)
    seen: list[str] = []
    path: str | None = USERS
    while path is not None:
        html = admin.get(path).text
        page = logins(html)
        assert 0 < len(page) <= 2
        seen += page
        found = re.search(r'href="([^"]+suite=[^"]+)">Utilisateurs suivants', html)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert seen == everyone


IMPORT = "/console/organisations/mairie-montreuil/utilisateurs/import"
CSV = (
    "login;first_name;last_name;email;groups\n"
    "ines.roy;Inès;Roy;ines.roy@montreuil.fr;CCAS-ACCUEIL\n"
    "gilles.bernard;Gilles;Bernard;g@x.fr;CCAS\n"
)


def test_import_previews_then_applies_as_one_write(admin: FlaskClient) -> None:
    """ "Importer des utilisateurs": the preview lists each line's effect and refusals; a file
    with a refused line offers no "Appliquer"; a clean one, applied, creates the users."""
    form = admin.get(IMPORT)
    assert form.status_code == 200 and 'type="file"' in form.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None
    data = {"csrf_token": csrf.group(1), "fichier": (io.BytesIO(CSV.encode()), "u.csv")}
    preview = admin.post(IMPORT, data=data, content_type="multipart/form-data")
    assert preview.status_code == 200
    assert "1 création(s)" in preview.text and "1 ligne(s) refusée(s)" in preview.text
    assert "déjà utilisé sur le portail" in preview.text
    assert "Appliquer l'import" not in preview.text
    clean = CSV.splitlines(keepends=True)[:2]
    data = {"csrf_token": csrf.group(1), "fichier": (io.BytesIO("".join(clean).encode()), "u.csv")}
    preview = admin.post(IMPORT, data=data, content_type="multipart/form-data")
    assert "Appliquer l'import" in preview.text
    applied = admin.post(
        f"{IMPORT}/appliquer", data={"csrf_token": csrf.group(1), "csv": "".join(clean)}
    )
    assert applied.status_code == 302
    assert "ines.roy" in logins(admin.get(USERS).text)


GROUPS = "/console/organisations/mairie-montreuil/groupes"


def group_codes(html: str) -> list[str]:
    return re.findall(
        r'<th scope="row" class="niveau-\d">(?:<span[^>]*>[^<]*</span>)?([^<]+)</th>', html
    )


def test_group_search_finds_code_or_label_R_GRP_5(admin: FlaskClient) -> None:
    everyone = group_codes(admin.get(GROUPS).text)
    assert "CCAS-ACCUEIL" in everyone
    page = admin.get(GROUPS, query_string={"recherche": "accueil"})
    assert page.status_code == 200
    assert group_codes(page.text) == [c for c in everyone if "ACCUEIL" in c]
    assert "contenant « accueil »" in page.text


def test_group_pages_follow_one_another_in_tree_order_R_GRP_5(
    admin: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    everyone = group_codes(admin.get(GROUPS).text)
    assert len(everyone) > 2
    monkeypatch.setattr(console_groups, "GROUPS_PAGE", 2)
    seen: list[str] = []
    path: str | None = GROUPS
    while path is not None:
        html = admin.get(path).text
        page = group_codes(html)
        assert 0 < len(page) <= 2
        seen += page
        found = re.search(r'href="([^"]+page=\d+)">Groupes suivants', html)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert seen == everyone
    past_the_end = admin.get(GROUPS, query_string={"page": "999"})
    last = (len(everyone) - 1) // 2 * 2  # a page past the end shows the last one
    assert group_codes(past_the_end.text) == everyone[last:]
    assert group_codes(admin.get(GROUPS, query_string={"page": "x"}).text) == everyone[:2]
