"""Settings, declared once with their types and documentation (pydantic-settings), read from
the environment (``PDP_*``, a secret also from the file ``PDP_<NAME>_FILE`` names) over
defaults, overridable by a mapping. Constructing ``Settings(...)`` reads no environment."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pdp.core.errors import ConfigurationError
from pdp.core.settings_sources import (
    invalid_value,
    masked_password,
    read_environment,
    refuse_unknown,
    secret_fields,
    setting,
    setting_variables,
)

DEFAULT_DATABASE_URL = f"sqlite:///{Path.cwd() / 'pdp.sqlite3'}"
DEFAULT_DECISION_LOG_DIR = str(Path.cwd() / "pdp-decision-log")
DEFAULT_BIND = "127.0.0.1:8000"  # `pdp serve` and `pdp quickstart` (PDP_BIND, --bind)
NO_SECRET = SecretStr("")


def default_workers() -> int:
    """Two single-threaded workers per core: the engine is CPU-bound and not shared."""
    return max(2, 2 * (os.cpu_count() or 1))


class Settings(BaseSettings):
    """Every setting of the service; the README's Configuration table is made from these
    declarations (``pdp settings --markdown``)."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_prefix="PDP_")

    database_url: str = setting(
        DEFAULT_DATABASE_URL,
        "SQLAlchemy URL; PostgreSQL: `postgresql+psycopg://user:pw@host/db` (install the "
        "`postgres` extra); its password is never shown",
        "`sqlite:///<cwd>/pdp.sqlite3`",
    )
    catalogue_path: str = setting(
        "",
        "the service catalogue (R-CAT-1), validated at start-up",
        "`policies/catalogue.yaml` (shipped)",
    )
    refresh_interval: float = setting(
        1.0, "seconds between two polls of the change log by a worker (0: before every request)"
    )
    max_staleness: float = setting(
        300.0,
        "seconds a worker may go without reading the change log (store unreachable) before it "
        "denies every check with `POLICY_UNAVAILABLE` and `/readyz` answers `503`",
    )
    batch_max: int = setting(1000, "most checks in one batch")
    max_body_bytes: int = setting(1_048_576, "larger request bodies get `413`")
    page_max: int = setting(
        1000,
        "most items in one page (`/services/<s>/users`, the auditors' listings); a larger "
        "`limit` gets `400 PAGE_TOO_LARGE`",
    )
    verify_orgs: int = setting(
        5, "organisations whose decisions are compared with plain Casbin at start-up (0: off)"
    )
    decision_log: str = setting(
        "buffered",
        "durability of the decision log: `buffered`, `sync` or `off` (benchmarks only); see "
        "[the guarantees](#decision-log-and-audit-trail)",
    )
    decision_log_dir: str = setting(
        DEFAULT_DECISION_LOG_DIR,
        "the local directory of the decision log's segment files (a persistent local disk; one "
        "per instance)",
        "`<cwd>/pdp-decision-log`",
    )
    decision_log_flush_ms: int = setting(
        50, "in `buffered` mode, the most time between a decision and its `fdatasync`"
    )
    decision_log_ship_interval: float = setting(
        1.0, "seconds between two shipments of segment files to the `decision_log` table"
    )
    # pdp.records.decision_log.syslog
    decision_log_syslog: str = setting(
        "",
        "also deliver every decision-log entry to a SIEM: `tcp://host:port` or "
        "`tls://host:port` (RFC 5424, octet counting, at least once; see "
        "[Decision log](#decision-log-and-audit-trail))",
    )
    decision_log_syslog_ca: str = setting(
        "", "the CA file checking the receiver's certificate with `tls://`", "(system)"
    )
    # pdp.records.retention: at most RETENTION_MAX_MONTHS in production.
    decision_log_retention_months: int = setting(
        12,
        "months of decisions kept: the current month and the ones before it, that many in all "
        "(1 to 120; at most 12 in production, R-CNIL-10)",
    )
    decision_log_prune_interval: float = setting(
        3600.0,
        "seconds between two prunings of the decision log by each server (0: only by "
        "`pdp logs prune`)",
    )
    log_mask: str = setting(
        "email",
        "personal data kept out of the decision log and the audit trail: `email` (any email "
        "address, wherever it appears) and/or field names (`first_name,last_name,user`…), "
        "comma-separated; empty: none",
    )
    log_mask_key: SecretStr = setting(
        NO_SECRET,
        "HMAC key of the pseudonyms that replace masked values (set it in production: without "
        "it a pseudonym can be recomputed from a guessed value)",
    )
    audit_key: SecretStr = setting(
        NO_SECRET,
        "HMAC key of the audit chain's hashes (kept outside the database, so that someone who "
        "can write the database cannot forge a chain); without it, plain SHA-256",
    )
    # pdp.records.checkpoints
    audit_checkpoint_dir: str = setting(
        "",
        "an existing directory, on another volume than the database's, where the service and "
        "`pdp audit checkpoint` write signed checkpoints of the audit chain's head and "
        "`pdp audit verify` reads them ([checkpoints](#decision-log-and-audit-trail)); not "
        "created if missing. Without it no checkpoint is written (a warning in production)",
    )
    audit_checkpoint_interval: float = setting(
        300.0,
        "seconds between two checkpoint rounds of each worker (above 0, at most 86400); a "
        "round writes a file only when the head has moved",
    )
    jwt_secret: SecretStr = setting(
        NO_SECRET,
        "HS256 secret (32 characters at least) signing administration tokens; without it or a "
        "public key the administration API answers `401 AUTH_NOT_CONFIGURED`",
    )
    jwt_public_key: str = setting(
        "", "RS256/ES256 public key of the identity provider, PEM text or file path"
    )
    jwt_algorithm: str = setting("HS256", "`HS256`, `RS256` or `ES256`")
    jwt_issuer: str = setting(
        "pdp",
        "required `iss` of tokens. As a URL, without `PDP_JWT_JWKS_URL` nor a static key: the "
        "key set is found by OpenID Connect discovery "
        "(`<issuer>/.well-known/openid-configuration`)",
    )
    jwt_audience: str = setting("pdp-admin", "required `aud` of tokens")
    # pdp.services.jwks
    jwt_jwks_url: str = setting(
        "",
        "the identity provider's key set (JWKS): tokens are checked against its keys, cached "
        "([Identity provider](#identity-provider-oidc)); excludes `PDP_JWT_SECRET` and "
        "`PDP_JWT_PUBLIC_KEY`",
    )
    jwt_algorithms: str = setting(
        "RS256,ES256",
        "the algorithms a provider's tokens may use (public-key ones only); the token's own "
        "`alg` is never trusted",
    )
    jwt_login_claim: str = setting(
        "sub", "the claim holding the user's login (`email`, `preferred_username`, ...)"
    )
    jwt_jwks_refresh: float = setting(
        300.0, "seconds before the key set is read again in the background"
    )
    jwt_jwks_min_interval: float = setting(
        10.0, "seconds between two reads of the key set asked for by tokens naming an unknown key"
    )
    token_ttl: int = setting(900, "lifetime in seconds of the tokens `pdp token` mints")
    env: str = setting(
        "development",
        "`production` refuses to start with a missing, short (< 32 characters), low-variety or "
        "documented default `PDP_JWT_SECRET`, `PDP_LOG_MASK_KEY` (when masking) or "
        "`PDP_AUDIT_KEY`, with an in-memory rate limit, with the demo API key open, or with an "
        "unknown `PDP_*` variable (elsewhere only a warning names it)",
    )
    rate_limit: str = setting(
        "1000/second",
        "requests per client (API key name, JWT subject, else address), in the syntax of the "
        "`limits` library (`100/second;5000/minute`); `off` to disable",
    )
    rate_limit_storage: str = setting(
        "memory://",
        "where the counters live: `memory://` (per worker) or `redis://host:6379/0` (shared by "
        "every worker and instance; required in production)",
    )
    metrics_public: str = setting(
        "false",
        "`true`: `GET /metrics` (Prometheus text format) answers without credentials and is not "
        "rate-limited (expose the port to the scraper only); `false`: it needs an API key or a "
        "JWT, like `/v1/openapi.json`",
    )
    log_format: str = setting(
        "auto",
        "the service's own log on stderr: `text`, or `json` (one object a line: `ts`, `level`, "
        "`logger`, `message`, `request_id`, `client`, `pid`, `exception`); `auto` is `json` "
        "for `pdp serve` with `PDP_ENV=production`, `text` otherwise",
    )
    tracing: str = setting(
        "off",
        "OpenTelemetry spans (extra `tracing`): `off`, `otlp` (OTLP over HTTP to "
        "`OTEL_EXPORTER_OTLP_ENDPOINT`; the SDK's `OTEL_*` variables apply, the sampler's "
        "included) or `console`; see [Tracing](#tracing)",
    )
    watcher: str = setting(
        "auto",
        "propagation between instances by PostgreSQL LISTEN/NOTIFY: `auto` (on with "
        "PostgreSQL), `postgres` (required), `off` (polling only)",
    )
    min_revision_wait: float = setting(
        2.0,
        "seconds a call with `min_revision` may wait for the store before "
        "`503 REVISION_NOT_REACHED`",
    )
    clock_start: str = setting(
        "",
        "tests only (refused in production): the clock of the server and of the `pdp` commands "
        "starts at this ISO 8601 date-time with offset and runs on in real time "
        "(`tests/e2e/test_readme.py` runs the README on the day its outputs were taken)",
    )
    # pdp.web.console
    console_auth: str = setting(
        "",
        "the administration console's sign-in: `demo` (a page listing the demo accounts; "
        "refused in production), `trusted-header`, `oidc` (at the identity provider: "
        "`PDP_CONSOLE_OIDC_*`, [Identity provider](#identity-provider-oidc)), or `off` (no "
        "console)",
        "`demo` in development, `off` in production",
    )
    console_secret: SecretStr = setting(
        NO_SECRET,
        "the key signing the console's session cookie; required in production when the console "
        "is on (32 characters or more, like the other secrets); changing it signs everyone out",
        "derived from `PDP_JWT_SECRET` (development)",
    )
    console_user_header: str = setting(
        "X-Portal-User", "in `trusted-header` mode, the header carrying the signed-in login"
    )
    console_trusted_proxies: str = setting(
        "127.0.0.1/32",
        "in `trusted-header` mode, the addresses (CIDRs, comma-separated) whose header is believed",
    )
    # pdp.web.console.oidc
    console_oidc_issuer: str = setting(
        "", "`PDP_CONSOLE_AUTH=oidc`: the identity provider's issuer URL"
    )
    console_oidc_client_id: str = setting("", "`PDP_CONSOLE_AUTH=oidc`: this console's client")
    console_oidc_client_secret: SecretStr = setting(
        NO_SECRET, "`PDP_CONSOLE_AUTH=oidc`: this console's client secret"
    )
    console_oidc_scopes: str = setting(
        "openid email profile", "`PDP_CONSOLE_AUTH=oidc`: the scopes asked for"
    )
    console_oidc_redirect_uri: str = setting(
        "",
        "`PDP_CONSOLE_AUTH=oidc`: where the provider sends the user back",
        "`/console/connexion/retour` on the request's host",
    )
    console_oidc_post_logout_uri: str = setting(
        "",
        "`PDP_CONSOLE_AUTH=oidc`: where the provider sends the user after signing out",
        "`/console/connexion` on the request's host",
    )
    console_session_idle: int = setting(
        900,
        "seconds a console session lives without a page (checked from the database); positive, "
        "at most `PDP_CONSOLE_SESSION_MAX`",
    )
    console_session_max: int = setting(
        28800, "seconds a console session lives at most after sign-in, however busy"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the keywords: ``Settings(...)`` never reads the process environment (tests rely
        on the defaults); ``from_env`` is the one reader of ``PDP_*`` variables."""
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, /, **overrides: Any) -> Settings:
        """Read ``PDP_<NAME>`` variables (a secret also from the file ``PDP_<NAME>_FILE``
        names), then apply ``overrides``; raise on bad values. Unknown ``PDP_*`` variables are
        named in a warning, and refused in production."""
        env = os.environ if environ is None else environ
        values = read_environment(cls, env, file_settings())
        try:
            settings = cls(**{**values, **overrides})
        except ValidationError as exc:
            raise invalid_value(exc, {**values, **overrides}, file_settings()) from None
        _check(settings)
        refuse_unknown(env, known_variables(), settings.production)
        return settings

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, validated like a new ``Settings`` (``dataclasses.replace``
        of the former dataclass)."""
        current = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**current, **changes})

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """The repr's fields: secrets are SecretStr ('**********'), the database URL's password
        is masked."""
        for name, value in super().__repr_args__():
            yield name, masked_password(value) if name == "database_url" else value

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
        return by_url and not self.jwt_secret.get_secret_value() and not self.jwt_public_key

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


def file_settings() -> tuple[str, ...]:
    """The settings also readable from a file (``PDP_<NAME>_FILE``): the secrets, and the
    database URL (its password)."""
    return (*secret_fields(Settings), "database_url")


def known_variables() -> frozenset[str]:
    """Every ``PDP_*`` variable a setting reads (``PDP_<NAME>`` and the ``*_FILE`` ones)."""
    return setting_variables(Settings, file_settings())


def _check(settings: Settings) -> None:
    """The checks of values a type does not express (a choice, a range, two settings)."""
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
            f"PDP_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {settings.log_format!r}"
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
    if not 1 <= settings.decision_log_retention_months <= RETENTION_LIMIT_MONTHS:
        raise ConfigurationError(
            "PDP_DECISION_LOG_RETENTION_MONTHS must be a number of months from 1 to "
            f"{RETENTION_LIMIT_MONTHS}, not {settings.decision_log_retention_months!r}"
        )
    if not 0 <= settings.decision_log_prune_interval <= 86400:  # refuses nan and inf too
        raise ConfigurationError(
            "PDP_DECISION_LOG_PRUNE_INTERVAL must be a number of seconds from 0 (never) to "
            f"86400, not {settings.decision_log_prune_interval!r}"
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


ENVIRONMENTS = ("development", "production")
CONSOLE_AUTH = ("", "demo", "trusted-header", "oidc", "off")
LOG_FORMATS = ("auto", "text", "json")
# The CNIL's recommendation on logging: six months to a year. Above it, production refuses to
# start; any environment refuses more than the limit (a typo, not a policy).
RETENTION_MAX_MONTHS = 12
RETENTION_LIMIT_MONTHS = 120
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
    """In production, raise ConfigurationError for any default or missing secret, for a
    per-worker (in-memory) rate limit, and for a decision log kept longer than
    ``RETENTION_MAX_MONTHS``."""
    if not settings.production:
        return
    problems = []
    if settings.jwt_from_provider:
        pass  # the provider's keys: checked when the verifier is built (pdp.services.tokens)
    elif settings.jwt_algorithm == "HS256":
        why = _weak(settings.jwt_secret.get_secret_value())
        if why:
            problems.append(f"PDP_JWT_SECRET: {why}")
    elif not settings.jwt_public_key:
        problems.append(f"PDP_JWT_PUBLIC_KEY: it is not set ({settings.jwt_algorithm})")
    if settings.log_mask.strip():
        why = _weak(settings.log_mask_key.get_secret_value())
        if why:
            problems.append(f"PDP_LOG_MASK_KEY: {why} (pseudonyms could be recomputed)")
    why = _weak(settings.audit_key.get_secret_value())
    if why:
        problems.append(f"PDP_AUDIT_KEY: {why} (the audit chain could be forged)")
    why = retention_problem(settings)
    if why:
        problems.append(why)
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
        why = _weak(settings.console_secret.get_secret_value())
        if why:
            problems.append(f"PDP_CONSOLE_SECRET: {why} (console sessions could be forged)")
    if problems:
        raise ConfigurationError("PDP_ENV=production refuses to start: " + "; ".join(problems))


def retention_problem(settings: Settings) -> str | None:
    """Why the decision log's retention is refused in production (R-CNIL-10), or None."""
    if settings.production and settings.decision_log_retention_months > RETENTION_MAX_MONTHS:
        return (
            f"PDP_DECISION_LOG_RETENTION_MONTHS: {settings.decision_log_retention_months} months "
            f"is above the {RETENTION_MAX_MONTHS} months decisions may be kept"
        )
    return None
