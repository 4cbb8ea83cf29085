"""Opening an access review (R-CNIL-20, R-CNIL-21): a national campaign, every organisation.

On a generated dataset (``bench.generate``; scale 1.0 is the national one: 20,000 organisations,
400,000 users), an operator opens one campaign over all organisations through the service, as
``POST /v1/reviews`` does (authorised organisation by organisation, items read and inserted in
the same transaction, one audit record per organisation), then one reviewer's page of items is
read, the results streamed as CSV, and the campaign closed (every item reported). The database
file is copied first: the generated one is left as it was.

    python -m bench.review --scale 1.0   # generates the scale-1 SQLite file if missing
    python -m bench.review --database-url sqlite:///copy.sqlite3   # modifies that database
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.generate import default_database_url, generate
from pdp.adapters.sql.database import make_engine, upgrade
from pdp.adapters.sql.models import ReviewItem, User
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.policy import PolicyEngine
from pdp.records.audit_trail import AuditChain
from pdp.records.decision_log import MemoryLog
from pdp.services.admin.service import AdminService
from pdp.services.reviews import campaigns, reads, results
from pdp.services.reviews.requests import CampaignNew


def _rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure_review(database_url: str) -> dict[str, Any]:
    """Open a national campaign on ``database_url`` (modified), read a page, close it."""
    db = make_engine(database_url)
    upgrade(db)  # a dataset generated before the reviews' tables existed
    catalogue = load_catalogue()
    engine = PolicyEngine(SqlSnapshotSource(db), catalogue)
    started = time.perf_counter()
    engine.load()
    figures: dict[str, Any] = {
        "engine_load_s": round(time.perf_counter() - started, 1),
        "rss_after_engine_load_mib": _rss_mib(),
    }
    svc = AdminService(db, engine, catalogue, AuditChain(), MemoryLog(), None)
    with svc.uow.begin() as session:
        operator = session.execute(
            select(User.login).where(User.is_operator.is_(True)).limit(1)
        ).scalar_one()
    data = CampaignNew(due_on=svc.today(), all_organisations=True, title="Revue nationale")
    started = time.perf_counter()
    opened = campaigns.open_campaign(svc, operator, data)
    figures["open_national_s"] = round(time.perf_counter() - started, 1)
    figures["organisations"] = len(opened.campaign.organisations)
    figures["items"] = opened.items
    figures["unassigned"] = opened.unassigned
    figures["rss_after_open_mib"] = _rss_mib()  # peak: the engine's index and the opening
    with svc.uow.begin() as session:
        reviewer, count = session.execute(
            select(ReviewItem.reviewer, func.count())
            .where(ReviewItem.reviewer.is_not(None))
            .group_by(ReviewItem.reviewer)
            .order_by(func.count().desc())
            .limit(1)
        ).one()
    assert reviewer is not None
    started = time.perf_counter()
    page = reads.my_items(svc, reviewer, opened.campaign.id, 100)
    figures["busiest_reviewer_items"] = count
    figures["reviewer_page_ms"] = round((time.perf_counter() - started) * 1000, 1)
    assert len(page.items) == min(100, count)
    started = time.perf_counter()
    size = sum(len(c) for c in results.results(svc, operator, opened.campaign.id).chunks("csv"))
    figures["results_csv_s"] = round(time.perf_counter() - started, 1)
    figures["results_csv_mib"] = round(size / 2**20, 1)
    started = time.perf_counter()
    closed = campaigns.close_campaign(svc, operator, opened.campaign.id)
    figures["close_national_s"] = round(time.perf_counter() - started, 1)
    figures["reported"] = closed.reported
    db.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.review", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", help="a database to use (and modify) as it is")
    args = parser.parse_args()
    figures: dict[str, Any] = {"scale": args.scale}
    if args.database_url:
        figures.update(measure_review(args.database_url))
    else:
        source = default_database_url(args.scale, args.seed)
        path = Path(source.removeprefix("sqlite:///"))
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            engine = make_engine(source)
            generate(engine, args.scale, args.seed)
            engine.dispose()
            figures["generate_s"] = round(time.perf_counter() - started, 1)
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / path.name
            shutil.copyfile(path, copy)
            figures.update(measure_review(f"sqlite:///{copy}"))
    print(json.dumps(figures, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
