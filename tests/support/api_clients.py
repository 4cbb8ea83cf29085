"""What the tests of callers and limits (tests/http/test_api_keys*.py, test_rate_limits.py,
test_production_mode.py) share: the store of API keys, the error code of an answer, and the
settings of an app in production mode."""

from __future__ import annotations

from typing import Any

from pdp.adapters.sql.database import make_engine
from pdp.core.catalogue import load_catalogue
from pdp.records.audit_trail import AuditChain
from pdp.services.api_keys import ClientStore

STRONG = "Zq8vT3kLp0Wm2Yx7Rb5Nc1Hd9Gf4Js6A"  # 32 characters, 32 distinct: not a default


def store(url: str) -> ClientStore:
    """The API keys of the database at ``url`` (``pdp clients``)."""
    return ClientStore(make_engine(url), AuditChain(), load_catalogue().services)


def error_code(response: Any) -> str:
    """The code of a JSON error answer."""
    body = response.get_json()
    assert isinstance(body, dict) and "error" in body, body
    return str(body["error"]["code"])


def production(**settings: str) -> dict[str, str]:
    """The settings of an app in production mode, with real secrets, overridden by
    ``settings``."""
    values = {
        "env": "production",
        "jwt_secret": STRONG,
        "log_mask_key": STRONG[::-1],
        "audit_key": STRONG[1:] + "Q",
        "rate_limit": "1000/second",
        "rate_limit_storage": "redis://127.0.0.1:6379/0",
    }
    values.update(settings)
    return values
