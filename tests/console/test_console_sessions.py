"""The console's sessions: kept in the database, so that signing out, a
closed user, a new secret and the idle and absolute lifetimes end them for every copy of the
cookie and every instance. Flask's test client over the demo, on each database; time is moved
by the session store's injected clock, never by sleeping. The browser test at the end signs
out in Chromium."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import ConsoleSessionRecord
from pdp.core.clock import paris_today
from pdp.core.errors import ConfigurationError
from pdp.services.sessions import PURGE_AFTER, PURGE_EVERY, SessionStore
from pdp.web.console import SESSION_COOKIE
from pdp.web.container import services

from support.actors import Api
from support.browser import browser, console_server, page, sign_in
from support.console_forms import USERS, token
from support.console_forms import sign_in as sign_in_as
from support.constants import SECRET, MakeApp
from support.servers import Served

__all__ = ["browser", "console_server", "page"]  # fixtures used by name below

ENDED = "Votre session a pris fin"
START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)


def frozen_clock(app: Flask) -> list[dt.datetime]:
    """Make the app's console sessions read their time from the list returned (one item)."""
    now = [START]
    store: SessionStore = services(app).console.sessions
    store._clock = lambda: now[0]  # injected time: no sleeping
    return now


def utc(moment: dt.datetime) -> dt.datetime:
    """A stored instant in UTC (SQLite gives it back without its zone)."""
    return moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def records(app: Flask) -> list[Any]:
    """The rows of console_sessions, oldest first."""
    with services(app).db.connect() as conn:
        query = select(ConsoleSessionRecord.__table__).order_by(ConsoleSessionRecord.created_at)
        return list(conn.execute(query))


def cookie_of(client: FlaskClient) -> str:
    """The console cookie ``client`` holds."""
    cookie = client.get_cookie(SESSION_COOKIE, path="/console")
    assert cookie is not None
    return cookie.value


def copy_cookie(source: FlaskClient | str, target: FlaskClient) -> None:
    """Give ``target`` the console cookie ``source`` holds (a stolen or copied cookie)."""
    value = source if isinstance(source, str) else cookie_of(source)
    target.set_cookie(SESSION_COOKIE, value, path="/console")


def page_token(text: str) -> str:
    """The CSRF token in a page's form."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert found is not None
    return found.group(1)


def signed_in(client: FlaskClient, login: str) -> bool:
    """Whether the welcome page answers as ``login`` (False: sent to the sign-in page)."""
    answer = client.get("/console/")
    if answer.status_code == 302:
        assert answer.headers["Location"].endswith("/console/connexion")
        return False
    assert answer.status_code == 200, answer.text
    assert f"Bienvenue {login}" in answer.text
    return True


def sign_out(client: FlaskClient) -> None:
    answer = client.post("/console/deconnexion", data={"csrf_token": token(client, "/console/")})
    assert answer.status_code == 302


def test_the_cookie_carries_the_session_id_only_and_the_record_a_hash_of_it(app: Flask) -> None:
    client = app.test_client()
    answer = sign_in_as(client, "alice.martin")
    assert answer.status_code == 302
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires" not in cookie and "Max-Age" not in cookie  # gone with the browser
    with client.session_transaction("/console/") as held:
        sid = held["sid"]
        assert "login" not in held
        assert set(held) <= {"sid", "csrf", "_flashes"}
    [row] = records(app)
    assert row.login == "alice.martin"
    assert row.mode == "demo"
    assert row.ended_at is None
    assert sid not in row.id_hash and len(row.id_hash) == 64


def test_a_cookie_copied_before_sign_out_is_refused_after(app: Flask) -> None:
    client, thief = app.test_client(), app.test_client()
    assert sign_in_as(client, "alice.martin").status_code == 302
    stolen = cookie_of(client)
    copy_cookie(stolen, thief)
    assert signed_in(thief, "alice.martin")
    stolen_token = token(thief, USERS)
    stolen = cookie_of(thief)
    sign_out(client)
    assert not signed_in(client, "alice.martin")
    assert not signed_in(thief, "alice.martin")
    assert ENDED in thief.get("/console/connexion").text
    # The copy's form token died with it: nothing is done.
    copy_cookie(stolen, thief)
    form = {"login": "x.vole", "first_name": "X", "last_name": "Y", "email": "x@example.fr"}
    refused = thief.post(f"{USERS}/nouveau", data={**form, "csrf_token": stolen_token})
    assert refused.status_code == 400
    [row] = records(app)
    assert row.end_reason == "signed_out"
    assert sign_in_as(client, "alice.martin").status_code == 302
    assert "x.vole" not in client.get(USERS).text


def test_sign_out_on_one_instance_ends_the_session_on_another(make_app: MakeApp) -> None:
    """Two apps on one database (two instances, or two gunicorn workers): the session lives
    in the database, not in a process."""
    first, _ = make_app()
    second, _ = make_app()
    client, elsewhere = first.test_client(), second.test_client()
    assert sign_in_as(client, "alice.martin").status_code == 302
    copy_cookie(client, elsewhere)
    assert signed_in(elsewhere, "alice.martin")
    sign_out(client)
    assert not signed_in(elsewhere, "alice.martin")


def test_a_user_closed_while_signed_in_is_refused_at_the_next_page(make_app: MakeApp) -> None:
    app, _ = make_app(jwt_secret=SECRET)
    client, copy = app.test_client(), app.test_client()
    assert sign_in_as(client, "chloe.roux").status_code == 302
    copy_cookie(client, copy)
    assert signed_in(client, "chloe.roux")
    Api(app.test_client()).ok(
        "alice.martin",
        "PATCH",
        "/v1/organisations/mairie-montreuil/users/chloe.roux",
        {"closes_on": paris_today().isoformat()},
    )
    answer = client.get("/console/", follow_redirects=True)
    assert answer.request.path == "/console/connexion"
    assert "Compte clôturé" in answer.text
    assert not signed_in(copy, "chloe.roux")
    [row] = records(app)
    assert row.end_reason == "refused"


def test_a_session_ends_after_the_idle_lifetime_without_a_page(make_app: MakeApp) -> None:
    app, _ = make_app(console_session_idle=600, console_session_max=3600)
    now = frozen_clock(app)
    client = app.test_client()
    assert sign_in_as(client, "alice.martin").status_code == 302
    for _ in range(3):  # a page now and then keeps it: 3 × 599 s > 600 s since sign-in
        now[0] += 599 * SECOND
        assert signed_in(client, "alice.martin")
    now[0] += 600 * SECOND
    answer = client.get("/console/", follow_redirects=True)
    assert answer.request.path == "/console/connexion"
    assert ENDED in answer.text
    [row] = records(app)
    assert row.end_reason == "idle"
    now[0] -= 300 * SECOND  # ended stays ended, whatever the clock says
    assert not signed_in(client, "alice.martin")


def test_the_last_page_is_noted_at_most_once_a_minute(make_app: MakeApp) -> None:
    app, _ = make_app(console_session_idle=900)
    now = frozen_clock(app)
    client = app.test_client()
    assert sign_in_as(client, "alice.martin").status_code == 302
    for _ in range(5):
        now[0] += 10 * SECOND
        assert signed_in(client, "alice.martin")
    assert utc(records(app)[0].last_seen_at) == START
    now[0] += 20 * SECOND  # a minute since the last note
    assert signed_in(client, "alice.martin")
    assert utc(records(app)[0].last_seen_at) == START + 70 * SECOND


def test_a_session_ends_after_the_absolute_lifetime_however_busy(make_app: MakeApp) -> None:
    app, _ = make_app(console_session_idle=60, console_session_max=300)
    now = frozen_clock(app)
    client = app.test_client()
    assert sign_in_as(client, "alice.martin").status_code == 302
    for _ in range(11):  # a page every 27 s until 297 s
        now[0] += 27 * SECOND
        assert signed_in(client, "alice.martin")
    now[0] += 3 * SECOND
    assert not signed_in(client, "alice.martin")
    assert records(app)[0].end_reason == "expired"
    assert sign_in_as(client, "alice.martin").status_code == 302  # signing in again works
    assert signed_in(client, "alice.martin")


def test_a_new_secret_refuses_the_cookies_signed_with_the_old_one(make_app: MakeApp) -> None:
    old, _ = make_app(console_secret="A" * 16 + "b" * 16)
    same, _ = make_app(console_secret="A" * 16 + "b" * 16)
    new, _ = make_app(console_secret="C" * 16 + "d" * 16)
    client = old.test_client()
    assert sign_in_as(client, "alice.martin").status_code == 302
    with_same, with_new = same.test_client(), new.test_client()
    copy_cookie(client, with_same)
    copy_cookie(client, with_new)
    assert signed_in(with_same, "alice.martin")  # the session itself is still live
    assert not signed_in(with_new, "alice.martin")
    answer = with_new.post(f"{USERS}/nouveau", data={"csrf_token": token(client, USERS)})
    assert answer.status_code == 400


@pytest.mark.parametrize(
    "held",
    [12, None, "", "x" * 43, "../../etc", ["x" * 43], {"sid": "x"}, "é" * 43, "x" * 5000],
    ids=repr,
)
def test_a_refused_session_never_answers_500(app: Flask, held: object) -> None:
    client = app.test_client()
    with client.session_transaction("/console/") as session:
        session["sid"] = held
    assert not signed_in(client, "alice.martin")
    with client.session_transaction("/console/") as session:
        session["sid"] = held
        session["csrf"] = "known"
    answer = client.post(f"{USERS}/nouveau", data={"csrf_token": "known"})
    assert answer.status_code in (302, 400)
    assert records(app) == []


def test_an_unreachable_database_answers_503_not_500(app: Flask, tmp_path: Path) -> None:
    client = app.test_client()
    assert sign_in_as(client, "alice.martin").status_code == 302
    store: SessionStore = services(app).console.sessions
    store._db = make_engine(f"sqlite:///{tmp_path / 'missing' / 'pdp.sqlite3'}")
    answer = client.get("/console/")
    assert answer.status_code == 503
    assert "<html" in answer.text and "Traceback" not in answer.text


def test_a_forged_or_garbled_cookie_is_no_session(app: Flask) -> None:
    client = app.test_client()
    for value in ["garbage", "eyJzaWQiOiJ4In0.Zz.forged", "." * 300]:
        client.set_cookie(SESSION_COOKIE, value, path="/console")
        assert not signed_in(client, "alice.martin")
        assert client.post("/console/deconnexion").status_code == 400


def test_behind_the_proxy_a_session_belongs_to_one_login_and_expires_too(
    make_app: MakeApp,
) -> None:
    app, _ = make_app(
        console_auth="trusted-header", console_session_idle=60, console_session_max=300
    )
    now = frozen_clock(app)
    client = app.test_client()
    as_bruno, as_alice = {"X-Portal-User": "bruno.petit"}, {"X-Portal-User": "alice.martin"}
    bruno_token = page_token(client.get("/console/", headers=as_bruno).text)
    now[0] += SECOND
    assert client.get(USERS, headers=as_alice).status_code == 200
    first, second = records(app)
    assert (first.login, first.mode, first.end_reason) == (
        "bruno.petit",
        "trusted-header",
        "replaced",
    )
    assert (second.login, second.ended_at) == ("alice.martin", None)
    posted = client.post(f"{USERS}/nouveau", data={"csrf_token": bruno_token}, headers=as_alice)
    assert posted.status_code == 400
    # Idle past the lifetime: the form's token is refused; the portal still vouches for the
    # person, so the next page starts a new session.
    alice_token = page_token(client.get(USERS, headers=as_alice).text)
    now[0] += 61 * SECOND
    posted = client.post(f"{USERS}/nouveau", data={"csrf_token": alice_token}, headers=as_alice)
    assert posted.status_code == 400
    assert client.get("/console/", headers=as_alice).status_code == 200
    assert [r.end_reason for r in records(app)] == ["replaced", "idle", None]


def test_a_demo_session_is_no_session_in_trusted_header_mode(make_app: MakeApp) -> None:
    demo, _ = make_app()
    proxied, _ = make_app(console_auth="trusted-header")
    client = demo.test_client()
    assert sign_in_as(client, "alice.martin").status_code == 302
    behind = proxied.test_client()
    copy_cookie(client, behind)
    assert behind.get("/console/").status_code == 401  # no header: no one
    copy_cookie(client, behind)
    answer = behind.get("/console/", headers={"X-Portal-User": "alice.martin"})
    assert answer.status_code == 200
    assert [(r.login, r.mode) for r in records(proxied)] == [
        ("alice.martin", "demo"),
        ("alice.martin", "trusted-header"),
    ]


def test_records_are_deleted_a_week_after_they_can_last_have_been_live(
    make_app: MakeApp,
) -> None:
    app, _ = make_app(console_session_idle=600, console_session_max=3600)
    now = frozen_clock(app)
    client = app.test_client()
    assert sign_in_as(client, "alice.martin").status_code == 302
    sign_out(client)
    now[0] += 3600 * SECOND + PURGE_AFTER
    assert sign_in_as(client, "bruno.petit").status_code == 302
    assert [r.login for r in records(app)] == ["alice.martin", "bruno.petit"]  # just kept
    # One purge per process every PURGE_EVERY: not at the next sign-in a second later...
    now[0] += SECOND
    assert sign_in_as(client, "chloe.roux").status_code == 302
    assert [r.login for r in records(app)] == ["alice.martin", "bruno.petit", "chloe.roux"]
    # ... but once PURGE_EVERY has passed.
    now[0] += PURGE_EVERY
    assert sign_in_as(client, "nadia.benali").status_code == 302
    assert [r.login for r in records(app)] == ["bruno.petit", "chloe.roux", "nadia.benali"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"console_session_idle": 0}, "PDP_CONSOLE_SESSION_IDLE"),
        ({"console_session_max": -5}, "PDP_CONSOLE_SESSION_MAX"),
        ({"console_session_idle": 7200, "console_session_max": 3600}, "no longer than"),
    ],
)
def test_bad_session_lifetimes_stop_the_start(
    make_app: MakeApp, settings: dict[str, int], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_app(**settings)


# -- In the browser -------------------------------------------------------------------------


@pytest.mark.e2e
def test_browser_sign_out_ends_the_session_for_a_copy_of_the_cookie(
    browser: Any, page: Any, console_server: Served
) -> None:
    """Signing out in one browser refuses the same cookie in another (copied before)."""
    from support.browser import expect

    sign_in(page, "alice.martin")
    cookies = page.context.cookies()
    assert [c["name"] for c in cookies] == [SESSION_COOKIE]
    assert cookies[0]["httpOnly"]
    other = browser.new_context(base_url=console_server.server.base_url, locale="fr-FR")
    try:
        other.add_cookies(cookies)
        copy = other.new_page()
        copy.goto("/console/")
        expect(copy.get_by_role("heading", level=1)).to_have_text("Bienvenue alice.martin")
        page.get_by_role("button", name="Se déconnecter").click()
        expect(page.get_by_role("status")).to_contain_text("Vous êtes déconnecté(e).")
        copy.goto("/console/")
        expect(copy).to_have_url(re.compile(r"/console/connexion$"))
        expect(copy.get_by_role("alert")).to_contain_text(ENDED)
    finally:
        other.close()
