"""Who acts: the administration API's bearer tokens (pdp.services.tokens) and the actor check
(R-USR-4).

Unit tests of ``TokenVerifier`` for the token itself (HS256, RS256, ES256; expiry, issuer,
audience, required claims, ``alg: none`` and algorithm confusion, each refusal with a stable
code), then a few over HTTP (GET /v1/organisations/mairie-montreuil/users) for what needs the
store: an unknown or closed actor, no key configured, keys given through PDP_JWT_PUBLIC_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from werkzeug.test import TestResponse

from pdp.core.config import Settings
from pdp.core.errors import ConfigurationError, Unauthorized
from pdp.services.tokens import TokenVerifier, mint

from support.constants import SECRET, MakeApp

ISSUER = "pdp"
AUDIENCE = "pdp-admin"
USERS = "/v1/organisations/mairie-montreuil/users"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


# -- keys and tokens -----------------------------------------------------------------------


def _public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _private_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def claims(sub: str | None = "alice.martin", **changes: Any) -> dict[str, Any]:
    """Valid claims for ``sub``; a change to None drops the claim."""
    now = int(time.time())
    out: dict[str, Any] = {
        "sub": sub,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        **changes,
    }
    return {k: v for k, v in out.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any], header: dict[str, Any], key: bytes | None = None) -> str:
    """A token made by hand: ``alg: none`` without ``key``, else HMAC-SHA256 with ``key`` (an
    attacker signing with the public key as if it were a shared secret)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = (
        b"" if key is None else hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    )
    return f"{signing_input}.{_b64(signature)}"


def verifier(**settings: Any) -> TokenVerifier:
    found = TokenVerifier.from_settings(Settings(**settings))
    assert found is not None
    return found


def bearer(token: str) -> str:
    return f"Bearer {token}"


def refused(v: TokenVerifier, header: str | None) -> str:
    """The code of the Unauthorized ``v`` raises for ``header``."""
    with pytest.raises(Unauthorized) as caught:
        v.login(header)
    assert caught.value.status == 401
    assert caught.value.message
    return caught.value.code


# -- HS256 -----------------------------------------------------------------------------------


def test_a_valid_hs256_token_names_the_actor() -> None:
    v = verifier(jwt_secret=SECRET)
    assert v.login(bearer(hs256(claims()))) == "alice.martin"
    assert v.login(f"bearer {hs256(claims('bruno.petit'))}") == "bruno.petit"


def test_mint_makes_tokens_the_verifier_accepts() -> None:
    settings = Settings(jwt_secret=SECRET)
    v = TokenVerifier.from_settings(settings)
    assert v is not None
    assert v.login(bearer(mint(settings, "chloe.roux"))) == "chloe.roux"
    assert refused(v, bearer(mint(settings, "chloe.roux", ttl=-60))) == "TOKEN_EXPIRED"


def test_issuer_and_audience_come_from_the_settings() -> None:
    v = verifier(jwt_secret=SECRET, jwt_issuer="portail", jwt_audience="habilitations")
    token = hs256(claims(iss="portail", aud="habilitations"))
    assert v.login(bearer(token)) == "alice.martin"
    assert refused(v, bearer(hs256(claims()))) == "INVALID_TOKEN"


def test_a_token_expired_within_the_clock_skew_allowance_is_accepted() -> None:
    v = verifier(jwt_secret=SECRET)
    assert v.login(bearer(hs256(claims(exp=int(time.time()) - 1)))) == "alice.martin"


@pytest.mark.parametrize(
    ("token", "code"),
    [
        pytest.param(
            lambda: hs256(claims(exp=int(time.time()) - 60)), "TOKEN_EXPIRED", id="expired"
        ),
        pytest.param(lambda: hs256(claims(), "t" * 40), "INVALID_TOKEN", id="wrong-secret"),
        pytest.param(lambda: hs256(claims(iss="intrus")), "INVALID_TOKEN", id="wrong-issuer"),
        pytest.param(lambda: hs256(claims(aud="pdp-public")), "INVALID_TOKEN", id="wrong-audience"),
        pytest.param(lambda: hs256(claims(exp=None)), "INVALID_TOKEN", id="missing-exp"),
        pytest.param(lambda: hs256(claims(iss=None)), "INVALID_TOKEN", id="missing-iss"),
        pytest.param(lambda: hs256(claims(aud=None)), "INVALID_TOKEN", id="missing-aud"),
        pytest.param(lambda: hs256(claims(sub=None)), "INVALID_TOKEN", id="missing-sub"),
        pytest.param(lambda: hs256(claims(sub="")), "INVALID_TOKEN", id="empty-sub"),
        pytest.param(
            lambda: hs256(claims(nbf=int(time.time()) + 600)), "INVALID_TOKEN", id="not-yet-valid"
        ),
        pytest.param(
            lambda: unsigned(claims(), {"alg": "none", "typ": "JWT"}),
            "INVALID_TOKEN",
            id="alg-none",
        ),
        pytest.param(
            lambda: unsigned(claims(), {"alg": "None", "typ": "JWT"}),
            "INVALID_TOKEN",
            id="alg-None",
        ),
        pytest.param(
            lambda: jwt.encode(claims(), SECRET, algorithm="HS512"),
            "INVALID_TOKEN",
            id="hs512",
            marks=pytest.mark.filterwarnings("ignore:The HMAC key is"),
        ),
        pytest.param(
            lambda: hs256(claims())[:-4] + "AAAA", "INVALID_TOKEN", id="tampered-signature"
        ),
        pytest.param(lambda: "not.a.token", "INVALID_TOKEN", id="garbage"),
        pytest.param(lambda: "abc", "INVALID_TOKEN", id="one-segment"),
    ],
)
def test_hs256_refusals_have_stable_codes(token: Callable[[], str], code: str) -> None:
    assert refused(verifier(jwt_secret=SECRET), bearer(token())) == code


def test_the_alg_none_token_is_refused_even_with_an_empty_signature_segment() -> None:
    """Also the ``alg: none`` token with the payload of a real, valid token."""
    valid = hs256(claims())
    header, payload, _ = valid.split(".")
    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    v = verifier(jwt_secret=SECRET)
    assert refused(v, bearer(f"{none_header}.{payload}.")) == "INVALID_TOKEN"
    assert refused(v, bearer(f"{header}.{payload}.")) == "INVALID_TOKEN"


def test_a_tampered_payload_is_refused() -> None:
    header, _, signature = hs256(claims("chloe.roux")).split(".")
    forged = _b64(json.dumps(claims("alice.martin")).encode())
    assert refused(verifier(jwt_secret=SECRET), bearer(f"{header}.{forged}.{signature}")) == (
        "INVALID_TOKEN"
    )


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic YWxpY2U6cHc=", "Token abc"],
)
def test_a_missing_or_malformed_authorization_header(header: str | None) -> None:
    assert refused(verifier(jwt_secret=SECRET), header) == "UNAUTHENTICATED"


# -- the settings --------------------------------------------------------------------------


def test_no_key_configured_means_no_verifier() -> None:
    assert TokenVerifier.from_settings(Settings()) is None
    # An asymmetric algorithm without a public key: a shared secret does not stand in for it.
    assert TokenVerifier.from_settings(Settings(jwt_algorithm="RS256", jwt_secret=SECRET)) is None
    assert TokenVerifier.from_settings(Settings(jwt_algorithm="ES256")) is None


def test_the_hs256_secret_must_be_at_least_32_characters() -> None:
    with pytest.raises(ConfigurationError, match="32"):
        TokenVerifier.from_settings(Settings(jwt_secret="x" * 31))
    assert TokenVerifier.from_settings(Settings(jwt_secret="x" * 32)) is not None


@pytest.mark.parametrize("algorithm", ["none", "HS512", "RS512", "hs256", ""])
def test_only_three_algorithms_are_accepted(algorithm: str) -> None:
    with pytest.raises(ConfigurationError, match="PDP_JWT_ALGORITHM"):
        TokenVerifier.from_settings(Settings(jwt_algorithm=algorithm, jwt_secret=SECRET))


def test_an_unreadable_public_key_path_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PDP_JWT_PUBLIC_KEY"):
        TokenVerifier.from_settings(
            Settings(jwt_algorithm="RS256", jwt_public_key=str(tmp_path / "missing.pem"))
        )


# -- RS256 and ES256 -----------------------------------------------------------------------


@pytest.mark.parametrize("given_as", ["pem", "path"])
@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_asymmetric_keys_as_pem_text_or_file(
    request: pytest.FixtureRequest, tmp_path: Path, algorithm: str, given_as: str
) -> None:
    """A token signed by the identity provider's private key is accepted; one signed by
    another key of the same kind is refused."""
    prefix = "rsa" if algorithm == "RS256" else "ec"
    key: PrivateKey = request.getfixturevalue(f"{prefix}_key")
    other: PrivateKey = request.getfixturevalue(f"other_{prefix}_key")
    pem = _public_pem(key)
    if given_as == "path":
        path = tmp_path / "idp.pem"
        path.write_text(pem, encoding="utf-8")
        configured = str(path)
    else:
        configured = pem
    v = verifier(jwt_algorithm=algorithm, jwt_public_key=configured)
    assert v.key == pem
    assert v.login(bearer(jwt.encode(claims(), key, algorithm=algorithm))) == "alice.martin"
    assert refused(v, bearer(jwt.encode(claims(), other, algorithm=algorithm))) == "INVALID_TOKEN"
    expired = claims(exp=int(time.time()) - 60)
    assert refused(v, bearer(jwt.encode(expired, key, algorithm=algorithm))) == "TOKEN_EXPIRED"
    wrong_aud = claims(aud="autre")
    assert refused(v, bearer(jwt.encode(wrong_aud, key, algorithm=algorithm))) == "INVALID_TOKEN"


def test_rs256_refuses_other_algorithms(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    """Algorithm confusion: the public key used as an HS256 secret, an ES256 token, an HS256
    token with the shared secret, ``alg: none``: all refused."""
    pem = _public_pem(rsa_key)
    v = verifier(jwt_algorithm="RS256", jwt_public_key=pem, jwt_secret=SECRET)
    confused = unsigned(claims(), {"alg": "HS256", "typ": "JWT"}, key=pem.encode())
    assert refused(v, bearer(confused)) == "INVALID_TOKEN"
    assert refused(v, bearer(jwt.encode(claims(), ec_key, algorithm="ES256"))) == "INVALID_TOKEN"
    assert refused(v, bearer(hs256(claims()))) == "INVALID_TOKEN"
    assert refused(v, bearer(unsigned(claims(), {"alg": "none"}))) == "INVALID_TOKEN"
    assert refused(v, bearer(jwt.encode(claims(), rsa_key, algorithm="PS256"))) == ("INVALID_TOKEN")


def test_hs256_refuses_asymmetric_tokens(rsa_key: rsa.RSAPrivateKey) -> None:
    v = verifier(jwt_secret=SECRET)
    assert refused(v, bearer(jwt.encode(claims(), rsa_key, algorithm="RS256"))) == ("INVALID_TOKEN")


@pytest.mark.parametrize("case", ["garbage-pem", "private-key", "rsa-key-for-es256"])
def test_a_public_key_that_is_not_one_is_refused_at_start_up(
    rsa_key: rsa.RSAPrivateKey, case: str
) -> None:
    algorithm, pem = {
        "garbage-pem": (
            "RS256",
            "-----BEGIN PUBLIC KEY-----\nZ2FyYmFnZQ==\n-----END PUBLIC KEY-----\n",
        ),
        "private-key": ("RS256", _private_pem(rsa_key)),
        "rsa-key-for-es256": ("ES256", _public_pem(rsa_key)),
    }[case]
    with pytest.raises(ConfigurationError):
        TokenVerifier.from_settings(Settings(jwt_algorithm=algorithm, jwt_public_key=pem))


# -- over HTTP: the actor ----------------------------------------------------------------------


def get_users(app: Flask, token: str | None) -> TestResponse:
    headers = {} if token is None else {"Authorization": bearer(token)}
    return app.test_client().get(USERS, headers=headers)


def error_code(response: TestResponse) -> str:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"]
    return str(body["error"]["code"])


def test_http_a_valid_token_of_an_open_admin(make_app: MakeApp) -> None:
    app, _ = make_app(jwt_secret=SECRET)
    response = get_users(app, mint(Settings(jwt_secret=SECRET), "alice.martin"))
    assert response.status_code == 200, response.get_json()
    logins = {u["login"] for u in response.get_json()["users"]}
    assert {"alice.martin", "bruno.petit", "david.leroy"} <= logins


@pytest.mark.parametrize(
    ("login", "ttl", "status", "code"),
    [
        pytest.param("nobody.here", None, 401, "UNKNOWN_ACTOR", id="unknown-user"),
        pytest.param("david.leroy", None, 401, "ACTOR_CLOSED", id="closed-user"),
        pytest.param("fabien.morel", None, 401, "ACTOR_CLOSED", id="not-yet-open-user"),
        pytest.param("alice.martin", -60, 401, "TOKEN_EXPIRED", id="expired"),
        # Authenticated but without the right: 403, not 401.
        pytest.param("chloe.roux", None, 403, None, id="open-user-without-rights"),
    ],
)
def test_http_actor_refusals(
    make_app: MakeApp, login: str, ttl: int | None, status: int, code: str | None
) -> None:
    app, _ = make_app(jwt_secret=SECRET)
    response = get_users(app, mint(Settings(jwt_secret=SECRET), login, ttl=ttl))
    assert response.status_code == status, response.get_json()
    found = error_code(response)
    if code is not None:
        assert found == code


def test_http_without_a_token(make_app: MakeApp) -> None:
    app, _ = make_app(jwt_secret=SECRET)
    response = get_users(app, None)
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHENTICATED"
    forged = get_users(app, unsigned(claims(), {"alg": "none", "typ": "JWT"}))
    assert forged.status_code == 401
    assert error_code(forged) == "INVALID_TOKEN"


def test_http_no_key_configured(make_app: MakeApp) -> None:
    """The decision API works without a key; the administration API answers 401."""
    app, _ = make_app()
    response = get_users(app, mint(Settings(jwt_secret=SECRET), "alice.martin"))
    assert response.status_code == 401
    assert error_code(response) == "AUTH_NOT_CONFIGURED"
    assert get_users(app, None).status_code == 401


def test_http_a_short_secret_stops_the_app(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match="PDP_JWT_SECRET"):
        make_app(jwt_secret="trop-court")


def test_http_rs256_from_the_environment_as_pem_text(
    make_app: MakeApp,
    monkeypatch: pytest.MonkeyPatch,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
) -> None:
    monkeypatch.setenv("PDP_JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("PDP_JWT_PUBLIC_KEY", _public_pem(rsa_key))
    monkeypatch.setenv("PDP_JWT_SECRET", SECRET)  # not used for RS256
    app, _ = make_app()
    ok = get_users(app, jwt.encode(claims(), rsa_key, algorithm="RS256"))
    assert ok.status_code == 200, ok.get_json()
    for token in (
        jwt.encode(claims(), other_rsa_key, algorithm="RS256"),
        mint(Settings(jwt_secret=SECRET), "alice.martin"),
    ):
        response = get_users(app, token)
        assert response.status_code == 401
        assert error_code(response) == "INVALID_TOKEN"
    closed = get_users(app, jwt.encode(claims("david.leroy"), rsa_key, algorithm="RS256"))
    assert closed.status_code == 401
    assert error_code(closed) == "ACTOR_CLOSED"


def test_http_es256_from_a_file(
    make_app: MakeApp,
    tmp_path: Path,
    ec_key: ec.EllipticCurvePrivateKey,
    other_ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    path = tmp_path / "idp-es256.pem"
    path.write_text(_public_pem(ec_key), encoding="utf-8")
    app, _ = make_app(jwt_algorithm="ES256", jwt_public_key=str(path))
    ok = get_users(app, jwt.encode(claims(), ec_key, algorithm="ES256"))
    assert ok.status_code == 200, ok.get_json()
    other = get_users(app, jwt.encode(claims(), other_ec_key, algorithm="ES256"))
    assert other.status_code == 401
    assert error_code(other) == "INVALID_TOKEN"
    unknown = get_users(app, jwt.encode(claims("nobody.here"), ec_key, algorithm="ES256"))
    assert unknown.status_code == 401
    assert error_code(unknown) == "UNKNOWN_ACTOR"
