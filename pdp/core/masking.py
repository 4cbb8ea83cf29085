"""Personal data minimisation for the decision log and the audit trail.

Configured by ``PDP_LOG_MASK`` (a comma-separated list; default ``email``):

- ``email``: any value that looks like an email address is replaced, wherever it appears (a login
  that is an email, a target ``user:…``, an ``email`` field of an audit record);
- a field name (``first_name``, ``last_name``, ``user``…): that field's value is replaced.

A replaced value becomes ``masked:<16 hex>``, an HMAC-SHA-256 of the value keyed by
``PDP_LOG_MASK_KEY``: the same value always gives the same pseudonym, so an auditor can still
search the log for a given person (the query API masks the searched value the same way), while
the log itself never holds the value. Without a key the pseudonym is a plain SHA-256, which
anyone can recompute for a guessed value: set a key in production.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

_EMAIL = re.compile(r"[^\s@:/]+@[^\s@:/]+\.[^\s@:/]+")
PREFIX = "masked:"


class Masker:
    """Replaces personal data by keyed pseudonyms (see the module)."""

    def __init__(self, spec: str = "email", key: str = "") -> None:
        names = {part.strip() for part in spec.split(",") if part.strip()}
        self.emails = "email" in names
        self.fields = frozenset(names - {"email"}) | ({"email"} if self.emails else frozenset())
        self._key = key.encode()

    @property
    def active(self) -> bool:
        """Whether anything is masked at all."""
        return bool(self.fields)

    def pseudonym(self, value: str) -> str:
        """The pseudonym of ``value``."""
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:16]

    def mask_value(self, value: str) -> str:
        """``value`` with every email address in it replaced (when emails are masked)."""
        if self.emails and "@" in value:
            return _EMAIL.sub(lambda m: self.pseudonym(m.group(0)), value)
        return value

    def mask_target(self, target: str) -> str:
        """An administrative target (``user:<login>``, ``group:<org>/<code>``…) as it may be
        logged: the login of a user target is masked like the ``user`` field."""
        if target.startswith("user:") and "user" in self.fields:
            login = target[5:]
            return "user:" + (login if login.startswith(PREFIX) else self.pseudonym(login))
        return self.mask_value(target)

    def mask_field(self, name: str, value: Any) -> Any:
        """The value of field ``name`` as it may be logged."""
        if not isinstance(value, str):
            return value
        if name in self.fields:
            return value if value.startswith(PREFIX) or not value else self.pseudonym(value)
        return self.mask_value(value)

    def mask_mapping(self, data: dict[str, Any] | None) -> dict[str, Any] | None:
        """A copy of ``data`` with its fields masked, nested mappings and lists included."""
        if data is None or not self.active:
            return data
        return {key: self._mask_any(key, value) for key, value in data.items()}

    def _mask_any(self, name: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._mask_any(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._mask_any(name, v) for v in value]
        return self.mask_field(name, value)
