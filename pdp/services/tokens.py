"""Who is acting: the administration API's bearer tokens (JWT, PyJWT).

A token is signed either by a static key, for development and simple set-ups: an HS256 shared
secret (``PDP_JWT_SECRET``) or an RS256 / ES256 public key (``PDP_JWT_PUBLIC_KEY``, PEM text or a
file path); or by one of the keys an identity provider publishes (``PDP_JWT_JWKS_URL``, or found
by OpenID Connect discovery from ``PDP_JWT_ISSUER``; cached, see ``pdp.services.jwks``), with the
algorithms of ``PDP_JWT_ALGORITHMS`` only (never the token's say). Issuer, audience and expiry
are required and checked; the login is the ``sub`` claim, or the one ``PDP_JWT_LOGIN_CLAIM``
names. Whether that user exists and is open is the caller's to check (the engine knows), so that
a closed account is refused at once (R-USR-4).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from pdp.core.config import Settings
from pdp.core.errors import ConfigurationError, Unauthorized
from pdp.services.jwks import JwksCache, check_url

ALGORITHMS = ("HS256", "RS256", "ES256")
# What a provider's keys may sign with: public-key algorithms only (a shared secret in a
# published key set would be no secret).
PROVIDER_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


@dataclass(frozen=True)
class TokenVerifier:
    """Checks bearer tokens against a static key or a provider's keys, an issuer and an
    audience."""

    key: str
    algorithm: str
    issuer: str
    audience: str
    login_claim: str = "sub"
    jwks: JwksCache | None = None
    algorithms: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier | None:
        """Build the verifier the settings describe; None when no key is configured."""
        if settings.jwt_from_provider:
            return cls.from_provider(settings)
        if settings.jwt_algorithm not in ALGORITHMS:
            raise ConfigurationError(
                f"PDP_JWT_ALGORITHM must be one of {', '.join(ALGORITHMS)}, "
                f"not {settings.jwt_algorithm!r}"
            )
        if settings.jwt_algorithm == "HS256":
            if not settings.jwt_secret.get_secret_value():
                return None
            if len(settings.jwt_secret.get_secret_value()) < 32:
                raise ConfigurationError("PDP_JWT_SECRET must be at least 32 characters long")
            key = settings.jwt_secret.get_secret_value()
        else:
            key = _pem(settings.jwt_public_key)
            if not key:
                return None
            _check_public_key(key, settings.jwt_algorithm)
        return cls(
            key,
            settings.jwt_algorithm,
            settings.jwt_issuer,
            settings.jwt_audience,
            _login_claim(settings),
            None,
            (settings.jwt_algorithm,),
        )

    @classmethod
    def from_provider(cls, settings: Settings) -> TokenVerifier:
        """The verifier of an identity provider's tokens; its keys are read now (a provider
        unreachable now is not fatal: the first token asks again)."""
        if settings.jwt_secret.get_secret_value() or settings.jwt_public_key:
            raise ConfigurationError(
                "PDP_JWT_JWKS_URL and a static key (PDP_JWT_SECRET or PDP_JWT_PUBLIC_KEY) "
                "exclude each other: set one"
            )
        algorithms = tuple(a.strip() for a in settings.jwt_algorithms.split(",") if a.strip())
        wrong = [a for a in algorithms if a not in PROVIDER_ALGORITHMS]
        if not algorithms or wrong:
            raise ConfigurationError(
                "PDP_JWT_ALGORITHMS must list algorithms among "
                f"{', '.join(PROVIDER_ALGORITHMS)}, not {settings.jwt_algorithms!r}"
            )
        if settings.jwt_jwks_url:
            check_url("PDP_JWT_JWKS_URL", settings.jwt_jwks_url, settings.production)
        else:
            check_url("PDP_JWT_ISSUER", settings.jwt_issuer, settings.production)
        if not settings.jwt_audience:
            raise ConfigurationError("PDP_JWT_AUDIENCE must name this service's audience")
        if not 0 < settings.jwt_jwks_min_interval <= settings.jwt_jwks_refresh:
            raise ConfigurationError(
                "PDP_JWT_JWKS_MIN_INTERVAL and PDP_JWT_JWKS_REFRESH must be positive numbers of "
                "seconds, the first no larger than the second"
            )
        jwks = JwksCache(
            jwks_url=settings.jwt_jwks_url,
            issuer=settings.jwt_issuer,
            algorithms=algorithms,
            max_age=settings.jwt_jwks_refresh,
            min_interval=settings.jwt_jwks_min_interval,
        )
        jwks.refresh()  # raises ConfigurationError when discovery names another issuer
        return cls(
            "",
            "",
            settings.jwt_issuer,
            settings.jwt_audience,
            _login_claim(settings),
            jwks,
            algorithms,
        )

    def login(self, header: str | None) -> str:
        """Return the login of a valid ``Authorization: Bearer`` header; raise Unauthorized
        (or, for a provider's token whose key cannot be fetched, IdentityProviderUnavailable)."""
        if not header:
            raise Unauthorized("Authentification requise : en-tête Authorization: Bearer absent.")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("En-tête Authorization invalide : « Bearer <jeton> » attendu.")
        key: str | jwt.PyJWK = self.key
        try:
            if self.jwks is not None:
                key = self.jwks.key(self._kid(token))
            claims = jwt.decode(
                token,
                key,
                algorithms=list(self.algorithms),
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iss", "aud"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Jeton expiré.", code="TOKEN_EXPIRED") from None
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError) as exc:
            raise Unauthorized(f"Jeton invalide : {exc}.", code="INVALID_TOKEN") from None
        login = claims.get(self.login_claim)
        if not isinstance(login, str) or not login:
            raise Unauthorized(
                f"Jeton invalide : « {self.login_claim} » doit être un identifiant.",
                "INVALID_TOKEN",
            )
        return login

    def _kid(self, token: str) -> str | None:
        """The header's key id, once its algorithm is one we allow (nothing is fetched for a
        token we would refuse anyway)."""
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in self.algorithms:
            raise jwt.InvalidAlgorithmError("The specified alg value is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise jwt.InvalidTokenError("kid must be a string")
        return kid


def _login_claim(settings: Settings) -> str:
    claim = settings.jwt_login_claim.strip()
    if not claim:
        raise ConfigurationError("PDP_JWT_LOGIN_CLAIM must name a claim (default: sub)")
    return claim


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
    if not settings.jwt_secret.get_secret_value():
        raise ConfigurationError("`pdp token` needs PDP_JWT_SECRET (an HS256 signing secret)")
    now = int(time.time())
    claims = {
        "sub": login,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + (settings.token_ttl if ttl is None else ttl),
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
