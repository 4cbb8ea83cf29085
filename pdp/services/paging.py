"""Keyset pagination: an opaque cursor naming the last item of a page (its sort key), so that
the next page starts after it whatever was written in between."""

from __future__ import annotations

import base64
import binascii

from pdp.core.errors import BadRequest


def encode(key: str) -> str:
    """The cursor after the item whose sort key is ``key``."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode(cursor: str) -> str:
    """The sort key a cursor names; raise BadRequest(INVALID_CURSOR) for any other text."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("Curseur de pagination invalide.", code="INVALID_CURSOR") from None


def like(text: str) -> str:
    """A case-folded LIKE pattern that finds ``text`` anywhere (its wildcards escaped by ``\\``)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
