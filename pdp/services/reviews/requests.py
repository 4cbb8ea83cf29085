"""The access reviews' request bodies (pydantic; unknown fields refused)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pdp.core.fields import Code, Day, Strict, text

Title = Annotated[str, text(200, 1)]
Comment = Annotated[str, text(500)]


class CampaignNew(Strict):
    """A campaign to open (R-CNIL-20): the organisations reviewed (or every organisation, for
    operators), its due date, and whether the closing removes what is left unreviewed."""

    title: Title = "Revue des habilitations"
    organisations: list[Code] = Field(default_factory=list, max_length=1000)
    all_organisations: bool = False
    due_on: Day
    remove_unreviewed: bool = False


class ItemDecision(Strict):
    """A reviewer's decision on one item (R-CNIL-24): keep or remove, with an optional comment."""

    decision: Literal["keep", "remove"]
    comment: Comment | None = None


class ItemsQuery(Strict):
    """A page of the reviewer's items, by id (``cursor``: the last id of the previous page)."""

    model_config = Strict.model_config | {"strict": False}
    limit: int = Field(default=100, ge=1)
    cursor: int | None = Field(default=None, ge=0)
