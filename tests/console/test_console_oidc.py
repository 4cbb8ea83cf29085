"""The console's OpenID Connect sign-in (PDP_CONSOLE_AUTH=oidc) against a real provider
(oidc-provider, tests/support/oidc_provider.py) and a real ``pdp serve``: Chromium signs in at
the provider (authorisation code with PKCE, state and nonce), lands on the console as the user,
signs out here and at the provider (RP-initiated logout). Then, with Flask's test client: a
callback without a flow started by this browser is refused, a closed user is refused (R-USR-4),
and the settings missing are refused at start-up.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from pdp.core.errors import ConfigurationError

from support.browser import browser, expect, need_browser
from support.constants import MakeApp
from support.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, SigningKey, need_node
from support.servers import Served, add_key, run_pdp, running, server_env

__all__ = ["browser"]  # fixture used by name below


def oidc_settings(issuer: str) -> dict[str, str]:
    return {
        "PDP_CONSOLE_AUTH": "oidc",
        "PDP_CONSOLE_OIDC_ISSUER": issuer,
        "PDP_CONSOLE_OIDC_CLIENT_ID": CLIENT_ID,
        "PDP_CONSOLE_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        # The provider gives "name" (here the login) at its userinfo endpoint only, not in the
        # ID token: the console asks it there.
        "PDP_JWT_LOGIN_CLAIM": "name",
    }


@pytest.fixture(scope="module")
def oidc_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Provider]]:
    """``pdp serve`` (two workers, the demo) whose console signs in at a real provider."""
    need_browser()
    need_node()
    workdir = tmp_path_factory.mktemp("oidc-console")
    provider = Provider(workdir)
    url = f"sqlite:///{workdir / 'pdp.sqlite3'}"
    env = server_env(workdir, PDP_DATABASE_URL=url, **oidc_settings(provider.issuer))
    run_pdp(["db", "upgrade"], env, workdir)
    run_pdp(["demo", "load"], env, workdir)
    key = add_key(env, workdir)
    with running(["serve", "--workers", "2"], env, workdir) as server:
        server.api_key = key
        console = f"{server.base_url}/console"
        provider.redirect_uris = (f"{console}/connexion/retour",)
        provider.post_logout_redirect_uris = (f"{console}/connexion",)
        provider.start(SigningKey.rsa("k1"))
        try:
            yield Served(server, url), provider
        finally:
            provider.stop()


@pytest.fixture
def tab(browser: Any, oidc_console: tuple[Served, Provider]) -> Iterator[Any]:
    context = browser.new_context(
        base_url=oidc_console[0].server.base_url,
        locale="fr-FR",
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def sign_in_at_provider(tab: Any, login: str) -> None:
    """On the provider's pages: sign in as ``login``, then consent."""
    tab.locator("input[name=login]").fill(login)
    tab.locator("input[name=password]").fill("any password")
    tab.get_by_role("button", name="Sign-in").click()
    tab.get_by_role("button", name="Continue").click()


def test_sign_in_at_the_provider_then_sign_out_here_and_there(
    tab: Any, oidc_console: tuple[Served, Provider]
) -> None:
    provider = oidc_console[1]
    tab.goto("/console/")
    expect(tab).to_have_url(re.compile(r"/console/connexion$"))
    tab.get_by_role("link", name="Se connecter").click()

    # At the provider: the request is the authorisation code flow with PKCE, state and nonce.
    expect(tab).to_have_url(re.compile(re.escape(provider.issuer) + "/interaction/"))
    sign_in_at_provider(tab, "alice.martin")

    expect(tab.get_by_role("heading", level=1)).to_have_text("Bienvenue alice.martin")
    expect(tab.locator(".compte")).to_contain_text("Connecté(e) : alice.martin")
    assert tab.url.startswith(oidc_console[0].server.base_url)

    # Sign out: here, then at the provider, which asks to confirm and sends the browser back.
    tab.get_by_role("button", name="Se déconnecter").click()
    expect(tab).to_have_url(re.compile(re.escape(provider.issuer) + "/session/end"))
    tab.get_by_role("button", name="Yes, sign me out").click()
    expect(tab).to_have_url(re.compile(r"/console/connexion\?state="))
    expect(tab.get_by_role("status")).to_contain_text("Vous êtes déconnecté(e).")

    # Signed out here: the console sends to the sign-in page; and there: the provider asks
    # for the login again instead of signing the same person straight back in.
    tab.goto("/console/")
    expect(tab).to_have_url(re.compile(r"/console/connexion$"))
    tab.get_by_role("link", name="Se connecter").click()
    expect(tab.locator("input[name=login]")).to_be_visible()


def test_a_closed_user_signed_in_at_the_provider_is_refused(
    tab: Any, oidc_console: tuple[Served, Provider]
) -> None:
    """R-USR-4: the provider knows david.leroy, the console sees his account closed."""
    tab.goto("/console/connexion")
    tab.get_by_role("link", name="Se connecter").click()
    sign_in_at_provider(tab, "david.leroy")
    expect(tab.get_by_role("alert")).to_contain_text("Compte clôturé")
    tab.goto("/console/")
    expect(tab).to_have_url(re.compile(r"/console/connexion$"))


# -- without a browser -------------------------------------------------------------------------


def oidc_app(make_app: MakeApp, issuer: str) -> Flask:
    app, _ = make_app(
        console_auth="oidc",
        console_oidc_issuer=issuer,
        console_oidc_client_id=CLIENT_ID,
        console_oidc_client_secret=CLIENT_SECRET,
    )
    return app


def test_a_callback_not_started_by_this_browser_is_refused(
    make_app: MakeApp, tmp_path: Path
) -> None:
    """A code and state this browser did not ask for (a forged or replayed callback): no
    session, a French page, no 500."""
    need_node()
    provider = Provider(tmp_path)
    provider.start(SigningKey.rsa("k1"))
    try:
        client = oidc_app(make_app, provider.issuer).test_client()
        # Every page's sign-out form may be sent on to the provider (RP-initiated logout).
        csp = client.get("/console/connexion").headers["Content-Security-Policy"]
        assert f"form-action 'self' {provider.issuer};" in csp
        answer = client.get("/console/connexion/retour?code=abc&state=forged")
        assert answer.status_code == 401
        assert "La connexion n'a pas abouti" in html.unescape(answer.get_data(as_text=True))
        assert client.get("/console/").status_code == 302

        # The flow started here goes to the provider with PKCE (S256), a state and a nonce.
        start = client.get("/console/connexion/oidc")
        assert start.status_code == 302
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(start.headers["Location"]).query)
        assert query["code_challenge_method"] == ["S256"]
        assert query["state"] and query["nonce"] and query["code_challenge"]
        # A callback with another state than the one this browser holds is refused too.
        answer = client.get("/console/connexion/retour?code=abc&state=" + query["state"][0] + "x")
        assert answer.status_code == 401
    finally:
        provider.stop()


@pytest.mark.parametrize("userinfo", ["json", "signed-jwt"])
def test_the_login_from_the_userinfo_answer_json_or_signed(
    make_app: MakeApp, tmp_path: Path, userinfo: str
) -> None:
    """The login claim ("name" here) is not in the ID token but at the userinfo endpoint, as
    JSON or, like ProConnect's, as a JWT signed by the provider's keys. The flow is driven over
    HTTP (the provider's pages, then the console's callback with Flask's client); the callback
    replayed is refused (its state was used)."""
    need_node()
    provider = Provider(tmp_path, signed_userinfo=userinfo == "signed-jwt")
    provider.start(SigningKey.rsa("k1"))
    try:
        app, _ = make_app(
            console_auth="oidc",
            console_oidc_issuer=provider.issuer,
            console_oidc_client_id=CLIENT_ID,
            console_oidc_client_secret=CLIENT_SECRET,
            console_oidc_redirect_uri=provider.redirect_uris[0],
            jwt_login_claim="name",
        )
        client = app.test_client()
        start = client.get("/console/connexion/oidc")
        back = provider.sign_in(start.headers["Location"], "alice.martin")
        callback = "/console/connexion/retour?" + urllib.parse.urlsplit(back).query
        answer = client.get(callback)
        assert answer.status_code == 302, html.unescape(answer.get_data(as_text=True))
        assert answer.headers["Location"].endswith("/console/")
        assert "Bienvenue alice.martin" in client.get("/console/").get_data(as_text=True)

        replayed = app.test_client().get(callback)
        assert replayed.status_code == 401
    finally:
        provider.stop()


def test_a_provider_down_makes_the_sign_in_page_say_so(make_app: MakeApp) -> None:
    from support.servers import free_port

    client = oidc_app(make_app, f"http://127.0.0.1:{free_port()}").test_client()
    answer = client.get("/console/connexion/oidc")
    assert answer.status_code == 503
    assert "fournisseur d'identité est injoignable" in html.unescape(answer.get_data(as_text=True))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"console_oidc_client_id": ""}, "PDP_CONSOLE_OIDC_CLIENT_ID"),
        ({"console_oidc_client_secret": ""}, "PDP_CONSOLE_OIDC_CLIENT_SECRET"),
        ({"console_oidc_issuer": ""}, "PDP_CONSOLE_OIDC_ISSUER"),
        ({"console_oidc_issuer": "idp.test"}, "PDP_CONSOLE_OIDC_ISSUER"),
        ({"console_oidc_scopes": "email"}, "openid"),
    ],
)
def test_missing_or_wrong_settings_are_refused_at_start_up(
    make_app: MakeApp, settings: dict[str, str], message: str
) -> None:
    config = {
        "console_auth": "oidc",
        "console_oidc_issuer": "https://idp.test/realms/caf",
        "console_oidc_client_id": CLIENT_ID,
        "console_oidc_client_secret": CLIENT_SECRET,
        **settings,
    }
    with pytest.raises(ConfigurationError, match=message):
        make_app(**config)
