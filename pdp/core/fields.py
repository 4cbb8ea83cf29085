"""The types of request fields every entry point shares (pydantic): days, logins, codes,
names, free text, and the strict base of request bodies. What text may hold is ``pdp.core.text``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from pdp.core.text import (
    CAF_PATTERN,
    CODE_PATTERN,
    LOGIN_REF_PATTERN,
    NAME_PATTERN,
    NEW_LOGIN_PATTERN,
    TEXT_PATTERN,
)

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_day(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not _DAY.match(value):
        raise ValueError("une date au format AAAA-MM-JJ est attendue")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("date inexistante") from None


Day = Annotated[
    dt.date,
    BeforeValidator(_parse_day),
    Field(
        description="Calendar day in Europe/Paris, YYYY-MM-DD.",
        json_schema_extra={"type": "string", "format": "date"},
    ),
]
# A login a request names (an existing user); a new user's login is narrower (NewLogin).
Login = Annotated[str, Field(min_length=1, max_length=120, pattern=LOGIN_REF_PATTERN)]
NewLogin = Annotated[str, Field(min_length=1, max_length=120, pattern=NEW_LOGIN_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=40, pattern=NAME_PATTERN)]
CafCode = Annotated[str, Field(min_length=1, max_length=10, pattern=CAF_PATTERN)]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=CODE_PATTERN)]
# The allocataire number of a family's file: what a check is about, logged pseudonymised.
Allocataire = Annotated[
    str,
    Field(
        min_length=1,
        max_length=13,
        pattern=r"^[0-9]+$",
        description="The allocataire number of the file being opened (digits): never used to "
        "decide; logged pseudonymised (PDP_LOG_MASK_KEY), so that auditors can find who opened "
        "a family's file.",
    ),
]


def text(longest: int, shortest: int = 0) -> Any:
    """Free text of ``shortest`` to ``longest`` characters, without control characters."""
    return Field(min_length=shortest, max_length=longest, pattern=TEXT_PATTERN)


MinRevision = Annotated[
    int | None,
    Field(
        ge=0,
        le=2**62,
        description=(
            "Answer from a policy revision at least this fresh (read-your-writes: the revision "
            "a write returned); 503 REVISION_NOT_REACHED if not reached within "
            "PDP_MIN_REVISION_WAIT seconds."
        ),
    ),
]


class Strict(BaseModel):
    """Unknown fields are refused; types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)
