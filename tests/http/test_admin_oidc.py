"""The administration API against a real OpenID Connect provider (Node's oidc-provider, started
by the tests: tests/support/oidc_provider.py), its tokens obtained by signing a demo user in
through the authorisation code flow with PKCE.

What is checked: a token accepted (keys found by discovery, or by the key set's URL; RS256 and
ES256, the algorithms being the settings' choice); the login's claim chosen by the settings; key
rotation (the new key fetched on its first token, the old one valid for its tokens while
published, refused once the provider dropped it); an expired token; a token of another audience
or another issuer refused; the provider stopped (cached keys keep working, an unknown key
answers 503 IDENTITY_PROVIDER_UNAVAILABLE, and the service recovers when the provider is back);
the provider's key set read once per key, never per request, and at most once per interval for
made-up key ids; the same through ``pdp serve`` with two workers. Closed or unknown actors are
R-USR-4's (test_admin_auth.py).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from pdp.core.errors import ConfigurationError
from pdp.web.app import create_app

from support.oidc_provider import (
    ES_RESOURCE,
    OTHER_RESOURCE,
    SHORT_RESOURCE,
    Provider,
    SigningKey,
    running_provider,
)

USERS = "/v1/organisations/mairie-montreuil/users"
MakeApp = Callable[..., tuple[Flask, Any]]


@pytest.fixture
def backend() -> str:
    """SQLite only: what is checked here is the tokens, not the store."""
    return "sqlite"


@pytest.fixture(scope="module")
def k1() -> SigningKey:
    return SigningKey.rsa("k1")


@pytest.fixture(scope="module")
def k2() -> SigningKey:
    return SigningKey.rsa("k2")


@pytest.fixture
def provider(tmp_path: Path, k1: SigningKey) -> Iterator[Provider]:
    """A provider of this test's own, signing with k1: for the tests that restart or stop it."""
    with running_provider(tmp_path, k1) as started:
        yield started


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory, k1: SigningKey) -> Iterator[Provider]:
    """One provider signing with k1 for the module's tests that only read from it (tokens,
    discovery, key set): never restarted nor stopped, so starting it once is enough."""
    with running_provider(tmp_path_factory.mktemp("steady-provider"), k1) as started:
        yield started


def provider_app(make_app: MakeApp, provider: Provider, **settings: Any) -> Flask:
    """The app trusting ``provider`` (discovery from its issuer unless told otherwise)."""
    config = {
        "jwt_secret": "",
        "jwt_issuer": provider.issuer,
        "jwt_audience": "pdp-admin",
        "jwt_jwks_min_interval": 0.2,
        **settings,
    }
    app, _ = make_app(**config)
    return app


def ask(app: Flask, token: str) -> tuple[int, str | None]:
    """(status, error code) of the users' list asked with ``token``."""
    answer = app.test_client().get(USERS, headers={"Authorization": f"Bearer {token}"})
    body = answer.get_json(silent=True) or {}
    return answer.status_code, body.get("error", {}).get("code")


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


# -- accepted ----------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["discovery", "jwks-url"])
def test_a_token_of_the_provider_is_accepted(make_app: MakeApp, steady: Provider, by: str) -> None:
    settings = {"jwt_jwks_url": steady.discovery()["jwks_uri"]} if by == "jwks-url" else {}
    app = provider_app(make_app, steady, **settings)
    token = steady.token("alice.martin")
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "alice.martin"
    assert ask(app, token) == (200, None)


def test_es256_tokens_are_accepted_and_refused_when_not_allowed(
    make_app: MakeApp, tmp_path: Path, k1: SigningKey
) -> None:
    """The provider signs with an EC key: accepted with the default PDP_JWT_ALGORITHMS
    (RS256,ES256), refused when the settings allow RS256 only (never the token's choice)."""
    with running_provider(tmp_path, k1, SigningKey.ec("e1")) as ec_provider:
        token = ec_provider.token("alice.martin", resource=ES_RESOURCE)
        assert jwt.get_unverified_header(token)["alg"] == "ES256"
        assert ask(provider_app(make_app, ec_provider), token) == (200, None)
        rs_only = provider_app(make_app, ec_provider, jwt_algorithms="RS256")
        assert ask(rs_only, token) == (401, "INVALID_TOKEN")
        assert ask(rs_only, ec_provider.token("alice.martin")) == (200, None)


def test_tokens_through_a_real_server_with_two_workers(
    provider: Provider, k1: SigningKey, k2: SigningKey, tmp_path: Path
) -> None:
    """``pdp serve`` (gunicorn, two workers, each with its own cache of the keys read after
    the fork or at the first token): accepted, rotated, then refused with a 503 while the
    provider is down, over HTTP."""
    from support.servers import run_pdp, running, server_env

    url = f"sqlite:///{tmp_path / 'pdp.sqlite3'}"
    env = server_env(
        tmp_path,
        PDP_DATABASE_URL=url,
        PDP_JWT_ISSUER=provider.issuer,
        PDP_JWT_JWKS_MIN_INTERVAL="0.2",
    )
    run_pdp(["db", "upgrade"], env, tmp_path)
    run_pdp(["demo", "load"], env, tmp_path)
    with running(["serve", "--workers", "2"], env, tmp_path) as server:

        def status_with(token: str) -> tuple[int, str | None]:
            request = urllib.request.Request(
                server.base_url + USERS, headers={"Authorization": f"Bearer {token}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return answer.status, None
            except urllib.error.HTTPError as exc:
                with exc:
                    return exc.code, json.loads(exc.read())["error"]["code"]

        old = provider.token("alice.martin")
        assert {status_with(old) for _ in range(10)} == {(200, None)}
        provider.restart(k2, k1)
        new = provider.token("alice.martin")
        time.sleep(0.3)
        assert {status_with(new) for _ in range(10)} == {(200, None)}
        provider.stop()
        assert {status_with(old) for _ in range(10)} == {(200, None)}
        time.sleep(0.3)
        forged = jwt.encode(
            jwt.decode(new, options={"verify_signature": False}),
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            algorithm="RS256",
            headers={"kid": "k3"},
        )
        assert status_with(forged) == (503, "IDENTITY_PROVIDER_UNAVAILABLE")


def test_the_login_is_read_from_the_configured_claim(make_app: MakeApp, steady: Provider) -> None:
    """PDP_JWT_LOGIN_CLAIM=client_id: the login is the client's id, a login the demo does not
    know (R-USR-4: unknown actor), whereas ``sub`` names alice.martin."""
    app = provider_app(make_app, steady, jwt_login_claim="client_id")
    answer = app.test_client().get(
        USERS, headers={"Authorization": f"Bearer {steady.token('alice.martin')}"}
    )
    assert answer.status_code == 401
    assert answer.json["error"]["code"] == "UNKNOWN_ACTOR"
    assert "pdp-console" in answer.json["error"]["message"]


def test_a_discovery_document_naming_another_issuer_is_refused_at_start_up(
    make_app: MakeApp, steady: Provider
) -> None:
    with pytest.raises(ConfigurationError, match="discovery document names"):
        provider_app(make_app, steady, jwt_issuer=steady.issuer + "/")


# -- refused -----------------------------------------------------------------------------------


def test_a_token_for_another_audience_is_refused(make_app: MakeApp, steady: Provider) -> None:
    app = provider_app(make_app, steady)
    token = steady.token("alice.martin", resource=OTHER_RESOURCE)
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "other-api"
    assert ask(app, token) == (401, "INVALID_TOKEN")


def test_a_token_of_another_issuer_signed_by_a_known_key_is_refused(
    make_app: MakeApp, steady: Provider, k1: SigningKey, tmp_path: Path
) -> None:
    """Another provider holding the same key: signature good, issuer wrong."""
    app = provider_app(make_app, steady)
    with running_provider(tmp_path, k1) as other:
        token = other.token("alice.martin")
    assert kid(token) == "k1"
    assert ask(app, token) == (401, "INVALID_TOKEN")
    assert ask(app, steady.token("alice.martin")) == (200, None)


def test_an_expired_token_is_refused(make_app: MakeApp, steady: Provider) -> None:
    app = provider_app(make_app, steady)
    token = steady.token("alice.martin", resource=SHORT_RESOURCE)  # lives 2 seconds
    assert ask(app, token) == (200, None)
    expiry = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert expiry - time.time() <= 3
    time.sleep(max(0.0, expiry + 6 - time.time()))  # past the 5 s clock-skew allowance
    assert ask(app, token) == (401, "TOKEN_EXPIRED")


# -- the request path ----------------------------------------------------------------------------


def test_a_known_key_is_never_fetched_again_and_unknown_kids_are_rate_limited(
    make_app: MakeApp, steady: Provider
) -> None:
    """Tokens with a cached key cost no call to the provider; tokens naming made-up key ids
    (here signed by a key of the test's own) cost one read of the key set per
    PDP_JWT_JWKS_MIN_INTERVAL, however many come."""
    app = provider_app(make_app, steady, jwt_jwks_min_interval=2.0, jwt_jwks_refresh=3600.0)
    token = steady.token("alice.martin")
    reads = steady.jwks_reads()
    for _ in range(30):
        assert ask(app, token) == (200, None)
    assert steady.jwks_reads() == reads

    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = [
        jwt.encode(claims, forger, algorithm="RS256", headers={"kid": f"made-up-{n}"})
        for n in range(30)
    ]
    time.sleep(2.1)  # past the interval since the start-up read: the first one may ask
    for one in forged:
        assert ask(app, one) == (401, "UNKNOWN_SIGNING_KEY")
    assert steady.jwks_reads() == reads + 1
    assert ask(app, token) == (200, None)


# -- rotation ------------------------------------------------------------------------------------


def test_key_rotation(
    make_app: MakeApp, provider: Provider, k1: SigningKey, k2: SigningKey
) -> None:
    """The provider signs with a new key and still publishes the old one; then drops it."""
    app = provider_app(make_app, provider, jwt_jwks_refresh=1.0)
    old = provider.token("alice.martin")
    assert kid(old) == "k1"
    assert ask(app, old) == (200, None)

    provider.restart(k2, k1)  # k2 signs; k1 still published
    new = provider.token("alice.martin")
    assert kid(new) == "k2"
    time.sleep(0.3)  # past PDP_JWT_JWKS_MIN_INTERVAL since the keys were read at start-up
    assert ask(app, new) == (200, None)  # k2 unknown: read at once
    assert ask(app, old) == (200, None)  # k1 still valid for its tokens

    provider.restart(k2)  # k1 retired
    # The key set is older than PDP_JWT_JWKS_REFRESH: a request starts a background read,
    # after which the old key is gone. Wait for it (a deadline, not a timing assertion).
    time.sleep(1.1)
    deadline = time.monotonic() + 15
    answer = ask(app, old)
    while answer == (200, None) and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = ask(app, old)
    assert answer == (401, "UNKNOWN_SIGNING_KEY")
    assert ask(app, new) == (200, None)


# -- outage ------------------------------------------------------------------------------------


def test_provider_stopped(
    make_app: MakeApp, provider: Provider, k1: SigningKey, k2: SigningKey
) -> None:
    """Cached keys keep working with the provider down; a token with a key not yet seen is
    refused with 503 IDENTITY_PROVIDER_UNAVAILABLE (it may be good: retry), never a 500; once
    the provider is back, the same token is accepted."""
    app = provider_app(make_app, provider)
    old = provider.token("alice.martin")
    assert ask(app, old) == (200, None)
    provider.restart(k2, k1)
    new = provider.token("alice.martin")
    provider.stop()

    time.sleep(0.3)
    assert ask(app, old) == (200, None)  # no call to the provider needed
    client = app.test_client()
    answer = client.get(USERS, headers={"Authorization": f"Bearer {new}"})
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "IDENTITY_PROVIDER_UNAVAILABLE"
    assert int(answer.headers["Retry-After"]) >= 1
    assert ask(app, old) == (200, None)

    provider.start(k2, k1)
    time.sleep(0.3)
    assert ask(app, new) == (200, None)


def test_an_app_started_while_the_provider_is_down_recovers(
    provider: Provider, demo_db: str, clean_env: None
) -> None:
    provider.stop()
    app = create_app(
        {
            "database_url": demo_db,
            "decision_log": "off",
            "refresh_interval": 0,
            "verify_orgs": 0,
            "rate_limit": "off",
            "jwt_issuer": provider.issuer,
            "jwt_jwks_min_interval": 0.2,
        }
    )
    provider.start(*provider.keys)
    token = provider.token("alice.martin")
    time.sleep(0.3)
    assert ask(app, token) == (200, None)
