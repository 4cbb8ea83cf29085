"""The console's "Revue des habilitations" through Flask's test client: who sees the menu, and
what a reviewer may not see or do (R-CNIL-20, R-CNIL-23, R-CNIL-26). The whole journey is
clicked through in Chromium by ``test_console_reviews.py``."""

from __future__ import annotations

import datetime as dt
import re

from flask import Flask
from flask.testing import FlaskClient

from support.console_forms import sign_in, token

REVIEWS = "/console/revues"


def signed_in(app: Flask, login: str) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, login).status_code == 302
    return client


def test_review_pages_show_each_reviewer_their_own(app: Flask, today: dt.date) -> None:
    alice = signed_in(app, "alice.martin")
    assert "Revue des habilitations" in alice.get("/console/").text  # may open (R-CNIL-20)
    due = (today + dt.timedelta(days=10)).isoformat()
    form = {"title": "Revue 2026", "due_on": due, "csrf_token": token(alice, f"{REVIEWS}/nouvelle")}
    opened = alice.post(f"{REVIEWS}/nouvelle", data=form)
    assert opened.status_code == 302 and opened.headers["Location"].endswith(f"{REVIEWS}/1")
    assert len(re.findall(r'id="element-\d+"', alice.get(f"{REVIEWS}/1").text)) == 2

    bruno = signed_in(app, "bruno.petit")
    assert "Revue des habilitations" in bruno.get("/console/").text  # has an item
    page = bruno.get(f"{REVIEWS}/1").text
    assert re.findall(r'id="element-(\d+)"', page) == ["3"]  # chloe.roux's only (R-CNIL-23)
    assert "Clôturer la campagne" not in page and "Résultats (CSV)" not in page
    assert bruno.get(f"{REVIEWS}/1/elements/1/retirer").status_code == 404
    assert bruno.get(f"{REVIEWS}/1/elements/3/retirer").status_code == 200
    kept = bruno.post(
        f"{REVIEWS}/1/elements/1/conserver", data={"csrf_token": token(bruno, f"{REVIEWS}/1")}
    )
    assert kept.status_code == 404
    closing = bruno.post(f"{REVIEWS}/1/cloturer", data={"csrf_token": token(bruno, f"{REVIEWS}/1")})
    assert closing.status_code == 403  # R-CNIL-26: those who may open it
    assert bruno.get(f"{REVIEWS}/1/resultats.csv").status_code == 403
    assert bruno.get(f"{REVIEWS}/abc").status_code == 404

    chloe = signed_in(app, "chloe.roux")
    assert "Revue des habilitations" not in chloe.get("/console/").text
    assert chloe.get(f"{REVIEWS}/1").status_code == 404
