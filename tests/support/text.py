"""Text the store must never hold (``pdp.core.text``): a scan of every text column of a database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, Text, create_engine, select

from pdp.adapters.sql.models import Base
from pdp.core.text import has_forbidden


def forbidden_in_store(url: str) -> list[tuple[str, str]]:
    """(table, value) for every stored text value holding a control character."""
    found = []
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                columns = [c for c in table.columns if isinstance(c.type, String | Text)]
                if not columns:
                    continue
                for row in conn.execute(select(*columns)):
                    found.extend(
                        (table.name, v) for v in row if isinstance(v, str) and has_forbidden(v)
                    )
    finally:
        engine.dispose()
    return found


def holds_forbidden(value: Any) -> bool:
    """Whether a decoded JSON value holds a control character in any string, key or value."""
    if isinstance(value, str):
        return has_forbidden(value)
    if isinstance(value, dict):
        return any(holds_forbidden(k) or holds_forbidden(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(holds_forbidden(v) for v in value)
    return False
