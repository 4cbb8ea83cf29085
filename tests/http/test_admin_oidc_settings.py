"""The identity provider's settings (pdp.services.tokens, pdp.services.jwks): what is refused at
start-up, and what a provider that cannot be reached from the start means for a token.

The tokens of a real provider (oidc-provider), its key rotation and its outage are in
test_admin_oidc.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from pdp.core.config import Settings, refuse_defaults
from pdp.core.errors import ConfigurationError
from pdp.services.tokens import TokenVerifier

from support.constants import SECRET
from support.servers import free_port

USERS = "/v1/organisations/mairie-montreuil/users"


@pytest.fixture
def backend() -> str:
    """SQLite only: what is checked here is the tokens, not the store."""
    return "sqlite"


def closed_url() -> str:
    """A URL nothing listens on (a provider down)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param(
            {"jwt_jwks_url": "http://idp.test/jwks", "jwt_secret": SECRET},
            "exclude each other",
            id="jwks-and-secret",
        ),
        pytest.param(
            {"jwt_jwks_url": "http://idp.test/jwks", "jwt_algorithms": "HS256"},
            "PDP_JWT_ALGORITHMS",
            id="shared-secret-algorithm",
        ),
        pytest.param(
            {"jwt_jwks_url": "http://idp.test/jwks", "jwt_algorithms": "none"},
            "PDP_JWT_ALGORITHMS",
            id="alg-none",
        ),
        pytest.param(
            {"jwt_jwks_url": "http://idp.test/jwks", "jwt_algorithms": " , "},
            "PDP_JWT_ALGORITHMS",
            id="no-algorithm",
        ),
        pytest.param({"jwt_jwks_url": "file:///etc/passwd"}, "PDP_JWT_JWKS_URL", id="not-http"),
        pytest.param(
            {"jwt_jwks_url": "http://idp.test/jwks", "env": "production"},
            "https:// URL in production",
            id="plain-http-in-production",
        ),
        pytest.param(
            {"jwt_issuer": "http://idp.test/realms/caf", "env": "production"},
            "PDP_JWT_ISSUER",
            id="plain-http-issuer-in-production",
        ),
        pytest.param(
            {"jwt_jwks_url": "http://idp.test/jwks", "jwt_login_claim": " "},
            "PDP_JWT_LOGIN_CLAIM",
            id="no-login-claim",
        ),
        pytest.param(
            {"jwt_jwks_url": "http://idp.test/jwks", "jwt_audience": ""},
            "PDP_JWT_AUDIENCE",
            id="no-audience",
        ),
        pytest.param(
            {"jwt_jwks_url": "http://idp.test/jwks", "jwt_jwks_min_interval": 0},
            "PDP_JWT_JWKS_MIN_INTERVAL",
            id="no-rate-limit",
        ),
    ],
)
def test_a_wrong_provider_setting_is_refused_at_start_up(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TokenVerifier.from_settings(Settings(**settings))


def test_discovery_is_chosen_by_an_issuer_url_without_a_static_key() -> None:
    assert Settings(jwt_issuer="https://idp.test/realms/caf").jwt_from_provider
    assert Settings(jwt_jwks_url="https://idp.test/jwks").jwt_from_provider
    # A static key keeps the static mode, whatever the issuer looks like.
    assert not Settings(
        jwt_issuer="https://idp.test/realms/caf", jwt_secret=SECRET
    ).jwt_from_provider
    assert not Settings().jwt_from_provider


def test_production_needs_no_shared_secret_with_a_provider() -> None:
    settings = Settings(
        env="production",
        jwt_jwks_url="https://idp.test/jwks",
        log_mask_key="mask-Key-0123456789-abcdefghijklmnop",
        audit_key="audit-Key-0123456789-abcdefghijklmnop",
        rate_limit="off",
        console_auth="off",
    )
    refuse_defaults(settings)  # does not raise
    with pytest.raises(ConfigurationError, match="PDP_JWT_SECRET"):
        refuse_defaults(Settings(**{**settings.__dict__, "jwt_jwks_url": ""}))


def _token(kid: str | None, alg: str = "RS256") -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = {"kid": kid} if kid else {}
    claims = {"sub": "alice.martin", "iss": "idp", "aud": "pdp-admin", "exp": 2_000_000_000}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def test_a_provider_down_from_the_start_is_no_start_up_error_but_a_503(
    make_app: Callable[..., tuple[Flask, Any]],
) -> None:
    """The provider cannot be reached when the service starts: it starts, and a token answers
    503 IDENTITY_PROVIDER_UNAVAILABLE with a Retry-After (never a 500, never a 401: the token
    may be good)."""
    app, _ = make_app(jwt_jwks_url=f"{closed_url()}/jwks", jwt_issuer="idp", jwt_secret="")
    answer = app.test_client().get(USERS, headers={"Authorization": f"Bearer {_token('k1')}"})
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "IDENTITY_PROVIDER_UNAVAILABLE"
    assert answer.headers["Retry-After"] == "10"


def test_discovery_against_a_provider_down_from_the_start_answers_503(
    make_app: Callable[..., tuple[Flask, Any]],
) -> None:
    app, _ = make_app(jwt_issuer=closed_url(), jwt_secret="")
    answer = app.test_client().get(USERS, headers={"Authorization": f"Bearer {_token('k1')}"})
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "IDENTITY_PROVIDER_UNAVAILABLE"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: jwt.encode({"sub": "x"}, SECRET, algorithm="HS256"), id="hs256"),
        pytest.param(lambda: _token("k1", "RS512"), id="rs512-not-allowed"),
        pytest.param(lambda: "not.a.token", id="garbage"),
    ],
)
def test_a_token_of_a_refused_algorithm_is_401_without_asking_the_provider(
    make_app: Callable[..., tuple[Flask, Any]], token: Callable[[], str]
) -> None:
    """The algorithm allowed is the settings' (RS256, ES256 by default), never the token's:
    such a token is refused before any key is looked for (a 401, not a 503)."""
    app, _ = make_app(jwt_jwks_url=f"{closed_url()}/jwks", jwt_issuer="idp", jwt_secret="")
    answer = app.test_client().get(USERS, headers={"Authorization": f"Bearer {token()}"})
    assert answer.status_code == 401
    assert answer.json["error"]["code"] == "INVALID_TOKEN"
