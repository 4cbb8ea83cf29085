"""The example front-end (examples/cdap_front) against a real ``pdp serve``: two
pages guarded by different Cdap profiles, a menu built from the permissions listing, and a
decision point that stops answering denies (R-DEC-2)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from examples.cdap_front.app import create_app

from support.servers import Served, demo_server

pytestmark = pytest.mark.e2e

ROLE_NOT_GRANTED = "Aucun groupe de l'utilisateur ne porte ce rôle pour ce service à cette date."
CAF_NOT_SUBSCRIBED = (
    "L'organisme n'a pas de convention ouverte avec cette Caf pour ce service à cette date."
)
UNREACHABLE = "Le service d'habilitation est injoignable : accès refusé."


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with demo_server(tmp_path_factory.mktemp("front")) as s:
        yield s


def front(served: Served, **config: object) -> Flask:
    app = create_app(
        {
            "TESTING": True,
            "PDP_URL": served.server.base_url,
            "PDP_API_KEY": served.server.api_key,
            **config,
        }
    )
    return app


@contextlib.contextmanager
def signed_in(app: Flask, login: str) -> Iterator[FlaskClient]:
    with app.test_client() as browser:
        answer = browser.post("/connexion", data={"login": login})
        assert answer.status_code == 302
        yield browser


def page(browser: FlaskClient, path: str) -> tuple[int, str]:
    answer = browser.get(path, headers={"Accept": "text/html"})
    return answer.status_code, answer.get_data(as_text=True)


def test_a_user_with_both_profiles_opens_both_pages(served: Served) -> None:
    """bruno.petit holds Cdap T1 and T18 (CCAS, CCAS-INSTRUCTION) under Caf 931."""
    with signed_in(front(served), "bruno.petit") as browser:
        status, html = page(browser, "/")
        assert status == 200
        assert 'id="menu-dossiers"' in html and 'id="menu-instruction"' in html
        for path in ("/dossiers?caf=931", "/instruction?caf=931", "/instruction"):
            status, html = page(browser, path)
            assert status == 200, html
            assert 'id="granted"' in html


def test_a_consultation_profile_is_refused_instruction_with_the_reason(served: Served) -> None:
    """chloe.roux holds T1 only: the instruction page answers 403 with the French reason of the
    denial (R-DEC-3), and the menu does not offer it."""
    with signed_in(front(served), "chloe.roux") as browser:
        _, html = page(browser, "/")
        assert 'id="menu-dossiers"' in html
        assert 'id="menu-instruction"' not in html
        assert page(browser, "/dossiers")[0] == 200
        status, html = page(browser, "/instruction")
        assert status == 403
        assert ROLE_NOT_GRANTED.replace("'", "&#39;") in html
        assert "ROLE_NOT_GRANTED" in html
        assert 'id="granted"' not in html
        # API callers of the front-end get the same refusal as JSON.
        answer = browser.get("/instruction", headers={"Accept": "application/json"})
        assert answer.status_code == 403
        assert answer.get_json() == {
            "error": {"code": "ROLE_NOT_GRANTED", "message": ROLE_NOT_GRANTED}
        }


def test_the_caf_of_the_file_is_decided(served: Served) -> None:
    """nadia.benali's organisation has conventions with Cafs 751 and 931, not 691 (R-CON-3)."""
    with signed_in(front(served), "nadia.benali") as browser:
        assert page(browser, "/dossiers?caf=751")[0] == 200
        status, html = page(browser, "/dossiers?caf=691")
        assert status == 403
        assert CAF_NOT_SUBSCRIBED.replace("'", "&#39;") in html


def test_a_file_shows_the_tabs_and_actions_the_profiles_open(served: Served) -> None:
    """R-DEC-1 with features: in a family's file, chloe.roux (T1) sees and opens the summary
    tabs only, bruno.petit (T1 and T18) the payments, RSA and "Dialogue" too; a tab no profile
    of the user opens answers 403 FEATURE_NOT_GRANTED. The catalogue's example table decides."""
    app = front(served)
    with signed_in(app, "chloe.roux") as browser:
        status, html = page(browser, "/dossiers/1234567/synthese?caf=931")
        assert status == 200, html
        assert 'id="tab-synthese"' in html and 'id="tab-resume"' in html
        assert 'id="tab-paiements"' not in html and 'id="action-dialogue"' not in html
        status, html = page(browser, "/dossiers/1234567/paiements?caf=931")
        assert status == 403 and "FEATURE_NOT_GRANTED" in html
    with signed_in(app, "bruno.petit") as browser:
        status, html = page(browser, "/dossiers/1234567/paiements?caf=931")
        assert status == 200, html
        assert 'id="tab-paiements"' in html and 'id="tab-rsa"' in html
        assert 'id="action-dialogue"' in html and 'id="action-attestation"' in html
        assert 'id="tab-courriers"' not in html  # neither T1 nor T18 opens the letters


def test_closed_users_and_strangers_see_no_menu_and_no_page(served: Served) -> None:
    app = front(served)
    with signed_in(app, "david.leroy") as browser:  # closed 30 days ago (R-USR-4)
        _, html = page(browser, "/")
        assert "menu-dossiers" not in html and "menu-instruction" not in html
        status, html = page(browser, "/dossiers")
        assert status == 403 and "USER_CLOSED" in html
    with app.test_client() as anonymous:
        status, html = page(anonymous, "/dossiers")
        assert status == 401 and "Authentification requise" in html


def test_a_revoked_or_wrong_key_denies(served: Served) -> None:
    app = front(served, PDP_API_KEY="pdp_000000000000_" + "x" * 43)
    with signed_in(app, "bruno.petit") as browser:
        status, html = page(browser, "/instruction")
        assert status == 403 and "INVALID_API_KEY" in html
        _, html = page(browser, "/")
        assert "menu-instruction" not in html


def test_a_stopped_decision_point_denies_every_page(tmp_path: Path) -> None:
    """Allowed while the server answers; once it is stopped, the same pages answer 403 with
    the client's reason and the menu is empty: the front-end fails closed (R-DEC-2)."""
    with demo_server(tmp_path) as served:
        app = front(served)
        with signed_in(app, "bruno.petit") as browser:
            assert page(browser, "/instruction")[0] == 200
            served.server.stop()
            status, html = page(browser, "/instruction")
            assert status == 403, html
            assert "PDP_UNAVAILABLE" in html
            assert UNREACHABLE.replace("'", "&#39;") in html
            status, html = page(browser, "/")
            assert status == 200
            assert "menu-dossiers" not in html and "menu-instruction" not in html
            assert 'id="pdp-error"' in html
