"""What a text value may hold: one definition for request bodies, path parameters and query
strings, the same whatever the database behind.

No text the service accepts holds a control character (C0 ``U+0000``–``U+001F``, DEL
``U+007F``, C1 ``U+0080``–``U+009F``) or a lone surrogate (``U+D800``–``U+DFFF``): PostgreSQL
refuses NUL in text columns, SQLite stores it, logs and terminals misread the others. Such a
value is refused with 400 ``INVALID_CHARACTERS`` wherever it arrives. Identifiers are restricted
further by their own patterns (a login, a code, a service or role name, a Caf number), which
exclude these characters by construction.

The patterns below are pydantic's (the Rust ``regex`` crate); JSON text cannot carry a lone
surrogate at all (the parser refuses it), so the pattern for free text names the control
characters only, and ``has_forbidden`` checks everything else that reaches the service.
"""

from __future__ import annotations

import re

# The control characters, as a regular expression's class body (both engines read it alike).
CONTROLS = r"\x00-\x1f\x7f-\x9f"

# Free text: names, labels, free-form filters. Any character but the control characters.
TEXT_PATTERN = rf"^[^{CONTROLS}]*$"
# A login a request refers to: what any stored login may hold (no space, no control character).
LOGIN_REF_PATTERN = rf"^[^\s{CONTROLS}]+$"
# A new login: letters and digits of ASCII, then also . _ @ + - (an email address fits).
NEW_LOGIN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$"
# Codes and references chosen by people (organisations, groups, conventions).
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# Names of the catalogue (services, roles, Afas profiles).
NAME_PATTERN = r"^[A-Za-z0-9_]+$"
# A Caf's number.
CAF_PATTERN = r"^[0-9A-Za-z]+$"
# An email address: something, @, a domain with a dot; no space, no control character.
_ADDRESS_PART = rf"[^@\s{CONTROLS}]+"
EMAIL_PATTERN = rf"^{_ADDRESS_PART}@{_ADDRESS_PART}\.{_ADDRESS_PART}$"

# Lone surrogates too: a Python string can hold them (a JSON body cannot, a URL's bytes decode
# to U+FFFD), and no database should receive one.
_FORBIDDEN = re.compile(f"[{CONTROLS}\ud800-\udfff]")

INVALID_CHARACTERS = "INVALID_CHARACTERS"
INVALID_CHARACTERS_MESSAGE = (
    "Caractères non autorisés : caractères de contrôle et caractères Unicode isolés refusés."
)


def has_forbidden(value: str) -> bool:
    """Whether ``value`` holds a control character or a lone surrogate."""
    return _FORBIDDEN.search(value) is not None
