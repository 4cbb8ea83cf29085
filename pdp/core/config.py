"""Settings, read from the environment (``PDP_*``) over defaults, overridable by a mapping."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from pdp.core.errors import ConfigurationError

DEFAULT_DATABASE_URL = f"sqlite:///{Path.cwd() / 'pdp.sqlite3'}"
DEFAULT_DECISION_LOG_DIR = str(Path.cwd() / "pdp-decision-log")
DEFAULT_BIND = "127.0.0.1:8000"  # `pdp serve` and `pdp quickstart` (PDP_BIND, --bind)


def default_workers() -> int:
    """Two single-threaded workers per core: the engine is CPU-bound and not shared."""
    return max(2, 2 * (os.cpu_count() or 1))


@dataclass(frozen=True)
class Settings:
    """Every setting of the service; see the README's Configuration section."""

    database_url: str = DEFAULT_DATABASE_URL
    catalogue_path: str = ""
    refresh_interval: float = 1.0
    max_staleness: float = 300.0
    batch_max: int = 1000
    max_body_bytes: int = 1_048_576
    page_max: int = 1000
    verify_orgs: int = 5
    decision_log: str = "buffered"
    decision_log_dir: str = DEFAULT_DECISION_LOG_DIR
    decision_log_flush_ms: int = 50
    decision_log_ship_interval: float = 1.0
    log_mask: str = "email"
    log_mask_key: str = ""
    audit_key: str = ""
    # Signed checkpoints of the audit chain's head (pdp.records.checkpoints): "" = none written.
    audit_checkpoint_dir: str = ""
    audit_checkpoint_interval: float = 300.0
    jwt_secret: str = ""
    jwt_public_key: str = ""
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = "pdp"
    jwt_audience: str = "pdp-admin"
    # Tokens of an identity provider (pdp.services.jwks): its key set's URL, or "" to find it
    # by discovery when PDP_JWT_ISSUER is a URL and no static key is set.
    jwt_jwks_url: str = ""
    jwt_algorithms: str = "RS256,ES256"
    jwt_login_claim: str = "sub"
    jwt_jwks_refresh: float = 300.0  # seconds before the key set is read again (background)
    jwt_jwks_min_interval: float = 10.0  # seconds between two reads asked by unknown keys
    token_ttl: int = 900
    env: str = "development"
    rate_limit: str = "1000/second"
    rate_limit_storage: str = "memory://"
    metrics_public: str = "false"  # GET /metrics without credentials: true or false
    log_format: str = "auto"  # text, json, or auto (json under `pdp serve` in production)
    tracing: str = "off"  # off, otlp or console (pdp.observability.tracing; the tracing extra)
    watcher: str = "auto"
    min_revision_wait: float = 2.0
    clock_start: str = ""
    # The administration console (pdp.web.console): demo, trusted-header or off; "" = demo in
    # development, off in production (a production console must be asked for, with a secret).
    console_auth: str = ""
    console_secret: str = ""
    console_user_header: str = "X-Portal-User"
    console_trusted_proxies: str = "127.0.0.1/32"
    # PDP_CONSOLE_AUTH=oidc (pdp.web.console.oidc): the provider and this console's client.
    console_oidc_issuer: str = ""
    console_oidc_client_id: str = ""
    console_oidc_client_secret: str = ""
    console_oidc_scopes: str = "openid email profile"
    console_oidc_redirect_uri: str = ""  # "" = /console/connexion/retour on the request's host
    console_oidc_post_logout_uri: str = ""  # "" = /console/connexion on the request's host
    # Seconds a console session lives without a page asked (idle) and at most (absolute).
    console_session_idle: int = 900
    console_session_max: int = 28800

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, /, **overrides: Any) -> Settings:
        """Read ``PDP_<NAME>`` variables, then apply ``overrides``; raise on bad values."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"PDP_{f.name.upper()}")
            if raw is None:
                continue
            try:
                values[f.name] = _convert(f.type, raw)
            except ValueError:
                raise ConfigurationError(f"PDP_{f.name.upper()}: invalid value {raw!r}") from None
        settings = replace(cls(), **values)
        settings = replace(settings, **overrides) if overrides else settings
        if settings.watcher not in ("auto", "postgres", "off"):
            raise ConfigurationError(
                f"PDP_WATCHER must be auto, postgres or off, not {settings.watcher!r}"
            )
        if settings.metrics_public.strip().lower() not in BOOLEANS:
            raise ConfigurationError(
                f"PDP_METRICS_PUBLIC must be true or false, not {settings.metrics_public!r}"
            )
        if settings.log_format not in LOG_FORMATS:
            raise ConfigurationError(
                f"PDP_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, "
                f"not {settings.log_format!r}"
            )
        if settings.env not in ENVIRONMENTS:
            raise ConfigurationError(
                f"PDP_ENV must be one of {', '.join(ENVIRONMENTS)}, not {settings.env!r}"
            )
        if not 0 < settings.audit_checkpoint_interval <= 86400:  # also refuses nan and inf
            raise ConfigurationError(
                "PDP_AUDIT_CHECKPOINT_INTERVAL must be a number of seconds above 0, at most "
                f"86400, not {settings.audit_checkpoint_interval!r}"
            )
        if settings.console_auth not in CONSOLE_AUTH:
            raise ConfigurationError(
                f"PDP_CONSOLE_AUTH must be one of {', '.join(a for a in CONSOLE_AUTH if a)}, "
                f"not {settings.console_auth!r}"
            )
        if not 0 < settings.console_session_idle <= settings.console_session_max:
            raise ConfigurationError(
                "PDP_CONSOLE_SESSION_IDLE and PDP_CONSOLE_SESSION_MAX must be positive numbers "
                "of seconds, the idle lifetime no longer than the absolute one (not "
                f"{settings.console_session_idle} and {settings.console_session_max})"
            )
        return settings

    @property
    def console_mode(self) -> str:
        """How the console signs users in: ``demo``, ``trusted-header``, ``oidc`` or ``off``
        (``PDP_CONSOLE_AUTH``; unset: demo in development, off in production)."""
        if self.console_auth:
            return self.console_auth
        return "off" if self.production else "demo"

    @property
    def jwt_from_provider(self) -> bool:
        """Whether tokens are checked against an identity provider's published keys
        (``PDP_JWT_JWKS_URL``, or discovery from a URL ``PDP_JWT_ISSUER`` when neither
        ``PDP_JWT_SECRET`` nor ``PDP_JWT_PUBLIC_KEY`` is set) rather than a static key."""
        if self.jwt_jwks_url:
            return True
        by_url = self.jwt_issuer.startswith(("https://", "http://"))
        return by_url and not self.jwt_secret and not self.jwt_public_key

    @property
    def production(self) -> bool:
        """Whether ``PDP_ENV=production``: default secrets are refused (``refuse_defaults``)."""
        return self.env == "production"

    @property
    def metrics_open(self) -> bool:
        """Whether ``GET /metrics`` answers without credentials (``PDP_METRICS_PUBLIC``)."""
        return BOOLEANS.get(self.metrics_public.strip().lower(), False)

    def log_format_of(self, serving: bool) -> str:
        """``text`` or ``json``: ``auto`` is json for a server in production, else text."""
        if self.log_format != "auto":
            return self.log_format
        return "json" if serving and self.production else "text"

    @property
    def rate_limited(self) -> bool:
        """Whether a per-client rate limit applies (``PDP_RATE_LIMIT`` not ``off``)."""
        return self.rate_limit.strip().lower() not in ("", "off")


ENVIRONMENTS = ("development", "production")
CONSOLE_AUTH = ("", "demo", "trusted-header", "oidc", "off")
LOG_FORMATS = ("auto", "text", "json")
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

# Secrets shown in the documentation and the tests: never acceptable in production.
KNOWN_SECRETS = frozenset({"s" * 40, "change-me", "changeme", "secret", "pdp"})


def _weak(secret: str) -> str | None:
    """Why ``secret`` is not fit for production, or None."""
    if not secret:
        return "it is not set"
    if secret in KNOWN_SECRETS or secret.lower().startswith(("change", "example", "demo")):
        return "it is a documented default"
    if len(secret) < 32:
        return "it is shorter than 32 characters"
    if len(set(secret)) < 10:
        return "it has fewer than 10 distinct characters"
    return None


def weak_secret(secret: str) -> str | None:
    """Why ``secret`` is not fit for production, or None (for checks outside this module)."""
    return _weak(secret)


def refuse_defaults(settings: Settings) -> None:
    """In production, raise ConfigurationError for any default or missing secret, and for a
    per-worker (in-memory) rate limit."""
    if not settings.production:
        return
    problems = []
    if settings.jwt_from_provider:
        pass  # the provider's keys: checked when the verifier is built (pdp.services.tokens)
    elif settings.jwt_algorithm == "HS256":
        why = _weak(settings.jwt_secret)
        if why:
            problems.append(f"PDP_JWT_SECRET: {why}")
    elif not settings.jwt_public_key:
        problems.append(f"PDP_JWT_PUBLIC_KEY: it is not set ({settings.jwt_algorithm})")
    if settings.log_mask.strip():
        why = _weak(settings.log_mask_key)
        if why:
            problems.append(f"PDP_LOG_MASK_KEY: {why} (pseudonyms could be recomputed)")
    why = _weak(settings.audit_key)
    if why:
        problems.append(f"PDP_AUDIT_KEY: {why} (the audit chain could be forged)")
    if settings.clock_start:
        problems.append("PDP_CLOCK_START: a shifted clock is for tests only")
    if settings.rate_limited and settings.rate_limit_storage.startswith("memory"):
        problems.append(
            "PDP_RATE_LIMIT_STORAGE: memory:// counts per worker; use redis://host:6379 "
            "(or PDP_RATE_LIMIT=off)"
        )
    if settings.console_mode == "demo":
        problems.append("PDP_CONSOLE_AUTH: demo sign-in lets anyone act as anyone")
    elif settings.console_mode != "off":
        why = _weak(settings.console_secret)
        if why:
            problems.append(f"PDP_CONSOLE_SECRET: {why} (console sessions could be forged)")
    if problems:
        raise ConfigurationError("PDP_ENV=production refuses to start: " + "; ".join(problems))


def _convert(kind: object, raw: str) -> Any:
    if kind in ("int", int):
        return int(raw)
    if kind in ("float", float):
        return float(raw)
    return raw
