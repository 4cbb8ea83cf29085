"""Settings, declared once with their types and documentation (pdp.core.settings_fields,
pydantic-settings), read from the environment (``PDP_*``, a secret also from the file
``PDP_<NAME>_FILE`` names) over defaults, overridable by a mapping, and checked; the production
checks (``refuse_defaults``). Constructing ``Settings(...)`` reads no environment."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from pdp.core.errors import ConfigurationError
from pdp.core.settings_fields import DEFAULT_DATABASE_URL as DEFAULT_DATABASE_URL
from pdp.core.settings_fields import DEFAULT_DECISION_LOG_DIR as DEFAULT_DECISION_LOG_DIR
from pdp.core.settings_fields import SettingsFields
from pdp.core.settings_sources import (
    invalid_value,
    masked_password,
    read_environment,
    refuse_unknown,
    secret_fields,
    setting_variables,
)

DEFAULT_BIND = "127.0.0.1:8000"  # `pdp serve` and `pdp quickstart` (PDP_BIND, --bind)


def default_workers() -> int:
    """Two single-threaded workers per core: the engine is CPU-bound and not shared."""
    return max(2, 2 * (os.cpu_count() or 1))


class Settings(SettingsFields):
    """Every setting of the service (declared in pdp.core.settings_fields), read from the
    environment by ``from_env``; the README's Configuration table is made from the
    declarations (``pdp settings --markdown``)."""

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
