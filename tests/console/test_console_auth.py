"""The console's sign-in (demo accounts, a login header from a trusted proxy), its CSRF
protection, its headers, and what production accepts. Flask's test client over the demo."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from pdp.core.errors import ConfigurationError

from support.console_forms import USERS, sign_in, token
from support.constants import MakeApp

STRONG = "Zq8vT3kLp0Wm2Yx7Rb5Nc1Hd9Gf4Js6A"


def production(**settings: str) -> dict[str, str]:
    values = {
        "env": "production",
        "jwt_secret": STRONG,
        "log_mask_key": STRONG[::-1],
        "audit_key": STRONG[1:] + "Q",
        "rate_limit_storage": "redis://127.0.0.1:6379/0",
    }
    values.update(settings)
    return values


def test_demo_sign_in_lists_open_users_only_and_signs_in(app: Flask) -> None:
    client = app.test_client()
    first = client.get("/console/")
    assert first.status_code == 302
    assert first.headers["Location"].endswith("/console/connexion")
    listing = client.get("/console/connexion").text
    assert "alice.martin" in listing
    assert "administrateur partenaire" in listing
    assert "responsable habilitations" in listing
    assert "op.caf751" in listing
    assert "david.leroy" not in listing  # closed
    assert "fabien.morel" not in listing  # not yet open
    answer = sign_in(client, "alice.martin")
    assert answer.status_code == 302
    welcome = client.get("/console/")
    assert welcome.status_code == 200
    assert "Bienvenue alice.martin" in welcome.text
    assert "Mes utilisateurs" in welcome.text
    out = client.post("/console/deconnexion", data={"csrf_token": token(client, "/console/")})
    assert out.status_code == 302
    assert client.get("/console/").status_code == 302


@pytest.mark.parametrize(
    ("login", "message"),
    [("david.leroy", "clôturé"), ("fabien.morel", "pas encore ouvert"), ("nobody", "inconnu")],
)
def test_a_closed_or_unknown_user_cannot_sign_in(app: Flask, login: str, message: str) -> None:
    client = app.test_client()
    answer = sign_in(client, login)
    assert answer.status_code == 403
    assert message in answer.text
    assert client.get("/console/").status_code == 302


def test_a_form_without_the_csrf_token_is_refused_and_nothing_is_done(app: Flask) -> None:
    client = app.test_client()
    refused = client.post("/console/connexion", data={"login": "alice.martin"})
    assert refused.status_code == 400
    assert "Le formulaire a expiré" in refused.text
    assert client.get("/console/").status_code == 302  # not signed in
    assert sign_in(client, "alice.martin").status_code == 302
    form = {"login": "x.nouveau", "first_name": "X", "last_name": "Y", "email": "x@example.fr"}
    assert client.post(f"{USERS}/nouveau", data=form).status_code == 400
    bad = client.post(f"{USERS}/nouveau", data={**form, "csrf_token": "forged"})
    assert bad.status_code == 400
    assert "x.nouveau" not in client.get(USERS).text
    done = client.post(f"{USERS}/nouveau", data={**form, "csrf_token": token(client, USERS)})
    assert done.status_code == 302
    assert "x.nouveau" in client.get(USERS).text


def test_every_console_page_but_sign_in_needs_a_session(app: Flask) -> None:
    client = app.test_client()
    seen = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/console") or rule.endpoint == "console.static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", "x", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            answer = client.open(path, method=method)
            seen += 1
            if rule.endpoint == "console.sign_in":
                assert answer.status_code == 200
            elif method == "GET":
                assert answer.status_code == 302, rule.rule
                assert answer.headers["Location"].endswith("/console/connexion")
            else:
                assert answer.status_code == 400, rule.rule  # no session, no token
    assert seen >= 12


def test_pages_carry_the_security_headers_and_the_cookie_flags(app: Flask) -> None:
    client = app.test_client()
    answer = client.get("/console/connexion")
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert "script-src" not in answer.headers["Content-Security-Policy"]  # none allowed
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "same-origin"
    assert '<html lang="fr">' in answer.text
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # development: plain http on the loopback


def test_the_trusted_header_is_believed_from_a_trusted_proxy_only(make_app: MakeApp) -> None:
    app, _ = make_app(console_auth="trusted-header", console_trusted_proxies="10.1.0.0/16")
    client = app.test_client()
    proxy = {"REMOTE_ADDR": "10.1.2.3"}
    answer = client.get("/console/", headers={"X-Portal-User": "bruno.petit"}, environ_base=proxy)
    assert answer.status_code == 200
    assert "Bienvenue bruno.petit" in answer.text
    other = {"REMOTE_ADDR": "192.0.2.7"}
    spoofed = client.get("/console/", headers={"X-Portal-User": "alice.martin"}, environ_base=other)
    assert spoofed.status_code == 401
    assert "Connectez-vous au portail" in spoofed.text
    closed = client.get("/console/", headers={"X-Portal-User": "david.leroy"}, environ_base=proxy)
    assert closed.status_code == 403
    assert "clôturé" in closed.text
    assert client.get("/console/", environ_base=proxy).status_code == 401
    # No demo sign-in in this mode.
    assert "alice.martin" not in client.get("/console/connexion", environ_base=proxy).text


def test_a_new_person_behind_the_proxy_gets_a_new_session(make_app: MakeApp) -> None:
    """Trusted header: when the login changes, the previous person's session (its CSRF token)
    does not carry over, and there is no sign-out button (the portal signs people out)."""
    app, _ = make_app(console_auth="trusted-header")
    client = app.test_client()
    as_bruno = {"X-Portal-User": "bruno.petit"}
    page = client.get("/console/", headers=as_bruno).text
    assert "Se déconnecter" not in page
    bruno_token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert bruno_token is not None
    users = client.get(USERS, headers={"X-Portal-User": "alice.martin"})
    assert users.status_code == 200
    form = {"csrf_token": bruno_token.group(1), "login": "x.y", "first_name": "X"}
    posted = client.post(f"{USERS}/nouveau", data=form, headers={"X-Portal-User": "alice.martin"})
    assert posted.status_code == 400
    assert "Rien n&#39;a été modifié" in posted.text


def test_the_header_name_is_a_setting(make_app: MakeApp) -> None:
    app, _ = make_app(console_auth="trusted-header", console_user_header="X-Remote-User")
    client = app.test_client()
    assert client.get("/console/", headers={"X-Remote-User": "chloe.roux"}).status_code == 200
    assert client.get("/console/", headers={"X-Portal-User": "chloe.roux"}).status_code == 401


def test_bad_console_settings_stop_the_start(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match="PDP_CONSOLE_AUTH"):
        make_app(console_auth="password")
    with pytest.raises(ConfigurationError, match="PDP_CONSOLE_TRUSTED_PROXIES"):
        make_app(console_auth="trusted-header", console_trusted_proxies="not-a-network")


def test_production_refuses_the_demo_sign_in_and_a_weak_secret(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match="PDP_CONSOLE_AUTH: demo"):
        make_app(**production(console_auth="demo"))
    with pytest.raises(ConfigurationError, match="PDP_CONSOLE_SECRET: it is not set"):
        make_app(**production(console_auth="trusted-header"))
    with pytest.raises(ConfigurationError, match="PDP_CONSOLE_SECRET: it is shorter"):
        make_app(**production(console_auth="trusted-header", console_secret="short-1234567"))


def test_production_console_is_off_unless_asked_for_and_its_cookie_is_secure(
    make_app: MakeApp,
) -> None:
    app, _ = make_app(**production())
    assert app.test_client().get("/console/").status_code == 404
    app, _ = make_app(**production(console_auth="trusted-header", console_secret=STRONG[::-1]))
    answer = app.test_client().get("/console/", headers={"X-Portal-User": "alice.martin"})
    assert answer.status_code == 200
    assert "Secure" in answer.headers["Set-Cookie"]
