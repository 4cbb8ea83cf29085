"""Settings, read from the environment (``PDP_*``) over defaults, overridable by a mapping."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from pdp.errors import ConfigurationError

DEFAULT_DATABASE_URL = f"sqlite:///{Path.cwd() / 'pdp.sqlite3'}"
DEFAULT_DECISION_LOG_DIR = str(Path.cwd() / "pdp-decision-log")


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
    jwt_secret: str = ""
    jwt_public_key: str = ""
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = "pdp"
    jwt_audience: str = "pdp-admin"
    token_ttl: int = 900

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``PDP_<NAME>`` variables, then apply ``overrides``; raise on bad values."""
        env = os.environ if env is None else env
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
        return replace(settings, **overrides) if overrides else settings


def _convert(kind: object, raw: str) -> Any:
    if kind in ("int", int):
        return int(raw)
    if kind in ("float", float):
        return float(raw)
    return raw
