"""The access reviews' response bodies (the API answers their fields in this order)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

Outcome = Literal["pending", "kept", "removed", "reported"]
Status = Literal["open", "overdue", "closed"]


class ReviewRight(BaseModel):
    """A right a reviewed membership brings, the features it opens (empty: the whole service),
    and the last day it was used (null: never, or not known)."""

    service: str
    role: str
    features: list[str] = Field(default_factory=list)
    last_use: dt.date | None


class ReviewItemOut(BaseModel):
    """One reviewed membership and what became of it (R-CNIL-21, R-CNIL-24)."""

    id: int
    campaign: int
    organisation: str
    login: str
    group: str
    reviewer: str | None = Field(description="Null: nobody may review it (R-CNIL-22).")
    reviewer_kind: Literal["manager", "partner_admin", "none"]
    rights: list[ReviewRight]
    outcome: Outcome
    removed: bool = Field(
        description="The membership was detached (by its reviewer, or at "
        "the closing of a campaign opened with remove_unreviewed)."
    )
    decided_by: str | None
    decided_on: dt.date | None
    comment: str | None


class CampaignOut(BaseModel):
    """A campaign (R-CNIL-20)."""

    id: int
    title: str
    opened_by: str
    opened_on: dt.date
    due_on: dt.date
    remove_unreviewed: bool
    organisations: list[str]
    status: Status
    closed_on: dt.date | None
    closed_by: str | None


class Progress(BaseModel):
    """How far the review of one reviewer or one organisation is (R-CNIL-25)."""

    key: str | None = Field(description="The reviewer's login, or the organisation's code.")
    total: int
    pending: int
    kept: int
    removed: int
    reported: int


class CampaignOpened(BaseModel):
    """The campaign as opened, with the number of its items (and of those nobody may review)."""

    campaign: CampaignOut
    items: int
    unassigned: int


class CampaignDetail(BaseModel):
    """A campaign and its progress, limited to what the actor may see (R-CNIL-23, R-CNIL-25)."""

    campaign: CampaignOut
    by_reviewer: list[Progress]
    by_organisation: list[Progress]


class CampaignList(BaseModel):
    """The campaigns the actor opens, reviews or may follow, newest first."""

    campaigns: list[CampaignOut]


class ItemList(BaseModel):
    """A page of the actor's own items in a campaign (R-CNIL-23)."""

    campaign: CampaignOut
    items: list[ReviewItemOut]
    next_cursor: int | None = Field(default=None, description="Null on the last page.")


class ItemDecided(BaseModel):
    """The item after its reviewer's decision; the policy revision the write produced (a keep
    changes no right and keeps the current revision)."""

    item: ReviewItemOut
    revision: int


class CampaignClosed(BaseModel):
    """The closing (R-CNIL-26): how many items were left unreviewed, how many were removed."""

    campaign: CampaignOut
    reported: int
    removed: int
    revision: int


class CampaignResults(BaseModel):
    """Every item of the campaign the actor may see, with its outcome (R-CNIL-27)."""

    campaign: CampaignOut
    items: list[ReviewItemOut]
