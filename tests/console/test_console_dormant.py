"""The console's "Droits non utilisés" (R-CNIL-3 … R-CNIL-5) and each right's last use on the
user's page (R-CNIL-1), through Flask's client signed in as the demo's partner admin: the list,
the number of days judged on the form, and "Clôturer", which asks first with the closing's
preview, then closes the user today."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pdp.records.last_use import LastUseWriter
from pdp.web.container import services

from support.console_forms import USERS, sign_in

DORMANT = "/console/organisations/mairie-montreuil/droits-non-utilises"


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, "alice.martin").status_code == 302
    return client


def used(app: Flask, uses: dict[tuple[str, str, str], dt.date]) -> None:
    db = services(app).db
    with db.begin() as conn:
        LastUseWriter(db.dialect.name).write(conn, uses)


def listed(text: str) -> list[str]:
    return re.findall(r'<th scope="row"[^>]*>([^<]+)</th>', text)


def test_the_list_and_the_last_uses_R_CNIL_3(
    app: Flask, admin: FlaskClient, today: dt.date
) -> None:
    used(app, {("chloe.roux", "cdap", "T1"): today - dt.timedelta(days=91)})
    page = admin.get(DORMANT)
    assert page.status_code == 200
    assert listed(page.text) == ["bruno.petit", "chloe.roux"]
    assert "jamais" in page.text  # bruno never used his
    assert (today - dt.timedelta(days=91)).strftime("%d/%m/%Y") in page.text
    assert "Clôturer l'utilisateur chloe.roux" in html.unescape(page.text)
    # The menu offers the page to the partner admin.
    assert "Droits non utilisés</a>" in admin.get(USERS).text
    # A use within the days: chloe is no longer listed.
    used(app, {("chloe.roux", "cdap", "T1"): today})
    assert listed(admin.get(DORMANT).text) == ["bruno.petit"]
    # Her page shows the last use of each of her rights.
    detail = admin.get(f"{USERS}/chloe.roux").text
    assert f"T1 : utilisé pour la dernière fois le {today:%d/%m/%Y}" in detail


@pytest.mark.parametrize("days", ["0", "abc", "99999"])
def test_a_bad_number_of_days_is_refused_on_the_form_R_CNIL_4(
    admin: FlaskClient, days: str
) -> None:
    page = admin.get(DORMANT, query_string={"jours": days})
    assert page.status_code == 400
    assert 'aria-invalid="true"' in page.text and "Nombre de jours invalide" in html.unescape(
        page.text
    )
    assert listed(page.text) == []


def test_a_manager_may_not_read_it_R_CNIL_5(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "bruno.petit")
    assert client.get(DORMANT).status_code == 403
    assert "Droits non utilisés</a>" not in client.get(USERS).text


def test_close_asks_first_with_the_preview_then_closes(admin: FlaskClient, today: dt.date) -> None:
    link = re.search(r'href="([^"]+/chloe.roux/cloturer)"', admin.get(DORMANT).text)
    assert link is not None
    confirm = admin.get(link.group(1))
    assert confirm.status_code == 200
    text = html.unescape(confirm.text)
    assert f"Voulez-vous clôturer l'utilisateur chloe.roux le {today:%d/%m/%Y}" in text
    assert "Conséquences :" in text and "chloe.roux : perd cdap T1" in text
    assert f'href="{DORMANT}">Non</a>' in confirm.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', confirm.text)
    assert csrf is not None
    done = admin.post(
        link.group(1),
        data={"csrf_token": csrf.group(1), "closes_on": today.isoformat(), "confirmer": "oui"},
    )
    assert done.status_code == 302 and done.headers["Location"].endswith(DORMANT)
    after = admin.get(DORMANT).text
    assert "chloe.roux sera clôturé" in html.unescape(after)
    assert listed(after) == ["bruno.petit"]  # closed today: holds nothing any more
