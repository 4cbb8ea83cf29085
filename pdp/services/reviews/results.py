"""The results of a campaign (R-CNIL-27), streamed as JSON or CSV.

The reader is authorised before the first byte (an error is a plain error answer); the items are
then read in batches inside the generator, so that a national campaign's hundreds of thousands
of items are never held in memory at once. The JSON document has the shape of
``CampaignResults``; the CSV has one line per item under ``CSV_COLUMNS``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select

from pdp.adapters.sql.models import ReviewItem
from pdp.core.errors import BadRequest, NotFound
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.services.admin.service import AdminService
from pdp.services.reviews import records
from pdp.services.reviews.reads import followed
from pdp.services.reviews.responses import CampaignOut, ReviewItemOut

MEDIA_TYPES = {"json": "application/json", "csv": "text/csv"}
BATCH = 1000  # items read at once

CSV_COLUMNS = (
    "campagne",
    "organisme",
    "utilisateur",
    "groupe",
    "droits",
    "derniere_utilisation",
    "reviseur",
    "issue",
    "detache",
    "decide_par",
    "decide_le",
    "commentaire",
)


def _cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_row(item: ReviewItemOut) -> list[str]:
    """One item as a CSV line: rights as service:role separated by spaces, their last uses in
    the same order ("-": never), "oui"/"non" for the detach."""
    return [
        str(item.campaign),
        item.organisation,
        item.login,
        item.group,
        " ".join(f"{r.service}:{r.role}" for r in item.rights),
        " ".join(r.last_use.isoformat() if r.last_use else "-" for r in item.rights),
        item.reviewer or "",
        item.outcome,
        "oui" if item.removed else "non",
        item.decided_by or "",
        item.decided_on.isoformat() if item.decided_on else "",
        _cell(item.comment or ""),
    ]


@dataclass(frozen=True)
class Results:
    """An authorised reading of a campaign's results: over ``organisations`` (None: all)."""

    svc: AdminService
    campaign: CampaignOut
    organisations: list[str] | None

    def items(self) -> Iterator[ReviewItemOut]:
        """The items, by organisation, login and group, read in batches."""
        query = select(ReviewItem).where(ReviewItem.campaign_id == self.campaign.id)
        if self.organisations is not None:
            query = query.where(ReviewItem.organisation.in_(self.organisations))
        query = query.order_by(ReviewItem.organisation, ReviewItem.login, ReviewItem.group_code)
        with self.svc.uow.begin() as session:
            for item in session.execute(query.execution_options(yield_per=BATCH)).scalars():
                yield records.item_out(item)

    def chunks(self, fmt: str) -> Iterator[bytes]:
        """The document in ``fmt`` ("json" or "csv"), a batch of items per chunk."""
        if fmt == "csv":
            return self._csv()
        if fmt == "json":
            return self._json()
        raise BadRequest(f"Format inconnu : {fmt!r} (csv ou json).", code="UNKNOWN_FORMAT")

    def _csv(self) -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)  # RFC 4180: comma, double quotes when needed, CRLF
        writer.writerow(CSV_COLUMNS)
        for n, item in enumerate(self.items(), 1):
            writer.writerow(csv_row(item))
            if n % BATCH == 0:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()

    def _json(self) -> Iterator[bytes]:
        head = json.dumps({"campaign": self.campaign.model_dump(mode="json")}, ensure_ascii=False)
        yield (head[:-1] + ',"items":[').encode()
        parts: list[str] = []
        for n, item in enumerate(self.items()):
            parts.append(("," if n else "") + item.model_dump_json())
            if len(parts) >= BATCH:
                yield "".join(parts).encode()
                parts.clear()
        parts.append("]}")
        yield "".join(parts).encode()


def results(svc: AdminService, actor: str, campaign_id: int) -> Results:
    """R-CNIL-27: the results over the organisations ``actor`` follows. A reviewer who follows
    none is refused by the engine (403), anyone else told the campaign does not exist (404)."""
    today = svc.today()
    with svc.uow.begin() as session:
        campaign = records.campaign(session, campaign_id)
        codes = records.organisations(campaign)
        seen = followed(svc, actor, codes)
        if not seen:
            reviewer = session.execute(
                select(ReviewItem.id).where(
                    ReviewItem.campaign_id == campaign_id, ReviewItem.reviewer == actor
                )
            ).first()
            if reviewer is None or not codes:
                raise NotFound(
                    f"Campagne de revue inconnue : {campaign_id}.", code="REVIEW_UNKNOWN"
                )
            svc.require(actor, Action.REVIEW_OPEN, Target("organisation", codes[0]))
        else:  # the reading, in the decision log (R-ADM-7)
            svc.decide(actor, Action.REVIEW_OPEN, Target("organisation", seen[0]))
        out = records.campaign_out(campaign, today)
    return Results(svc, out, None if len(seen) == len(codes) else seen)
