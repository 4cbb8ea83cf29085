"""The console never answers a stack trace or a JSON error to a browser: unknown pages, wrong
methods, odd numbers and out-of-range dates in its URLs, and unexpected exceptions all give a
French page with the console's headers (and the API keeps its JSON)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pdp.web.container import services

from support.console_forms import sign_in

ORG = "/console/organismes/mairie-montreuil"


@pytest.fixture
def operator(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, "op.caf751").status_code == 302
    return client


def french_page(answer: object, status: int, title: str) -> str:
    text: str = answer.text  # type: ignore[attr-defined]
    assert answer.status_code == status, text  # type: ignore[attr-defined]
    assert answer.mimetype == "text/html"  # type: ignore[attr-defined]
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")  # type: ignore[attr-defined]
    assert f"<h1>{title}</h1>" in text
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize(
    "path",
    [
        f"{ORG}/bulletins/%C2%B2/modifier",  # "²" is a digit to str.isdigit, not to int()
        f"{ORG}/bulletins/99999999999999999999999/modifier",  # beyond any database integer
        f"{ORG}/bulletins/987654/modifier",  # no such subscription in this contract
        f"{ORG}/conventions/CONV-NOWHERE/modifier",
        f"{ORG}/administrateurs/nobody.here/fin",
    ],
)
def test_unknown_objects_in_urls_are_a_french_404(operator: FlaskClient, path: str) -> None:
    french_page(operator.get(path), 404, "Page introuvable")


def test_a_huge_number_posted_is_a_404_not_a_500(operator: FlaskClient) -> None:
    page = operator.get(f"{ORG}/conventions/CONV-mairie-montreuil-931/modifier").text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = operator.post(
        f"{ORG}/bulletins/99999999999999999999999/modifier",
        data={"csrf_token": token, "closes_on": "2099-01-01"},
    )
    french_page(answer, 404, "Page introuvable")


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_dates_at_the_end_of_the_calendar_are_a_field_error(
    operator: FlaskClient, day: str
) -> None:
    answer = operator.get(f"/console/journal/decisions?to={day}")
    assert answer.status_code == 400, answer.text
    assert "Date invalide" in answer.text


def test_unknown_pages_and_methods_are_french_pages(operator: FlaskClient) -> None:
    french_page(operator.get("/console/nulle-part"), 404, "Page introuvable")
    french_page(operator.put("/console/"), 405, "Méthode non autorisée")
    # The API keeps answering JSON.
    api = operator.get("/v1/nowhere")
    assert api.status_code == 404 and api.get_json()["error"]["code"] == "NOT_FOUND"


def test_an_unexpected_exception_is_a_french_500(
    operator: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(services(operator.application).decisions, "permissions", broken)
    text = french_page(operator.get("/console/"), 500, "Erreur interne")
    assert "boom" not in text
