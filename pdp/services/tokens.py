"""Who is acting: the administration API's bearer tokens (JWT, PyJWT).

A token is signed by a configured key: an HS256 shared secret (``PDP_JWT_SECRET``) or an RS256 /
ES256 public key (``PDP_JWT_PUBLIC_KEY``, PEM text or a file path) whose private half belongs to
the portal's identity provider. Issuer, audience and expiry are required and checked; ``sub`` is
the acting user's login. Whether that user exists and is open is the caller's to check (the
engine knows), so that a closed account is refused at once (R-USR-4).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from pdp.core.config import Settings
from pdp.core.errors import ConfigurationError, Unauthorized

ALGORITHMS = ("HS256", "RS256", "ES256")


@dataclass(frozen=True)
class TokenVerifier:
    """Checks bearer tokens against one key, issuer and audience."""

    key: str
    algorithm: str
    issuer: str
    audience: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier | None:
        """Build the verifier the settings describe; None when no key is configured."""
        if settings.jwt_algorithm not in ALGORITHMS:
            raise ConfigurationError(
                f"PDP_JWT_ALGORITHM must be one of {', '.join(ALGORITHMS)}, "
                f"not {settings.jwt_algorithm!r}"
            )
        if settings.jwt_algorithm == "HS256":
            if not settings.jwt_secret:
                return None
            if len(settings.jwt_secret) < 32:
                raise ConfigurationError("PDP_JWT_SECRET must be at least 32 characters long")
            key = settings.jwt_secret
        else:
            key = _pem(settings.jwt_public_key)
            if not key:
                return None
            _check_public_key(key, settings.jwt_algorithm)
        return cls(key, settings.jwt_algorithm, settings.jwt_issuer, settings.jwt_audience)

    def login(self, header: str | None) -> str:
        """Return the login of a valid ``Authorization: Bearer`` header; raise Unauthorized."""
        if not header:
            raise Unauthorized("Authentification requise : en-tête Authorization: Bearer absent.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("En-tête Authorization invalide : « Bearer <jeton> » attendu.")
        try:
            claims = jwt.decode(
                token.strip(),
                self.key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Jeton expiré.", code="TOKEN_EXPIRED") from None
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError) as exc:
            raise Unauthorized(f"Jeton invalide : {exc}.", code="INVALID_TOKEN") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthorized(
                "Jeton invalide : « sub » doit être un identifiant.", "INVALID_TOKEN"
            )
        return sub


def _check_public_key(pem: str, algorithm: str) -> None:
    """Refuse at start-up a key that is not a public key of the algorithm's kind."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    wanted = rsa.RSAPublicKey if algorithm == "RS256" else ec.EllipticCurvePublicKey
    try:
        key = jwt.algorithms.get_default_algorithms()[algorithm].prepare_key(pem)
    except Exception as exc:  # PyJWT and cryptography raise several kinds
        raise ConfigurationError(
            f"PDP_JWT_PUBLIC_KEY is not a usable {algorithm} key: {exc}"
        ) from exc
    if not isinstance(key, wanted):
        raise ConfigurationError(
            f"PDP_JWT_PUBLIC_KEY must be the public key of an {algorithm} pair"
        )


def _pem(value: str) -> str:
    """A PEM given inline, or read from a file path."""
    if not value or "-----BEGIN" in value:
        return value
    try:
        return Path(value).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"PDP_JWT_PUBLIC_KEY: cannot read {value}: {exc}") from exc


def mint(settings: Settings, login: str, ttl: int | None = None) -> str:
    """Sign a short-lived HS256 token for ``login`` (development and tests)."""
    if not settings.jwt_secret:
        raise ConfigurationError("`pdp token` needs PDP_JWT_SECRET (an HS256 signing secret)")
    now = int(time.time())
    claims = {
        "sub": login,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + (settings.token_ttl if ttl is None else ttl),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
