"""The settings' declarations: each once, with its type, its default and its description (the
README's Configuration table is made from them: ``pdp settings --markdown``). ``Settings``
(pdp.core.config) adds how they are read and checked; a new setting is declared here."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pdp.core.settings_sources import setting

DEFAULT_DATABASE_URL = f"sqlite:///{Path.cwd() / 'pdp.sqlite3'}"
DEFAULT_DECISION_LOG_DIR = str(Path.cwd() / "pdp-decision-log")
NO_SECRET = SecretStr("")


class SettingsFields(BaseSettings):
    """Every setting of the service, typed; secrets are SecretStr (never printed)."""

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
    # pdp.web.proxy_trust.ForwardedFor
    trusted_proxies: str = setting(
        "",
        "reverse proxies (CIDRs, comma-separated) whose `X-Forwarded-For` and "
        "`X-Forwarded-Proto` are believed: the caller's address for the rate limit and the logs "
        '(R-OPS-1, section "Operations")',
    )
    build_commit: str = setting(
        "",
        "the source commit of the running build, shown by `pdp_build_info` (the Docker image "
        "sets it from its `PDP_BUILD_COMMIT` build argument)",
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
