"""``python -m bench.transfer``: the whole store's round trip at national scale.

Exports a source store (``--source-url``; without it, the national dataset is generated into
``--target-url`` first and used as the source, then wiped), imports the file into an empty
PostgreSQL database (``--target-url``, **wiped**: its name must contain "bench"), exports it
again and compares the two files byte for byte. Prints the records, the export and import times
and the import's records per second, as text and (``--json``) as JSON. Not a test: it asserts
nothing but reports whether the files are identical (exit status 1 if not, or if a line was
refused).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from bench.generate import RESULTS_DIR, generate
from bench.suite import _create_database
from pdp.adapters.sql.database import UnitOfWork, make_engine, upgrade
from pdp.core.catalogue import load_catalogue
from pdp.records.audit_trail import AuditChain
from pdp.services.transfer.export import export_store
from pdp.services.transfer.importer import Importer, file_digest


def _wipe(url: str) -> None:
    if "bench" not in (make_url(url).database or ""):
        raise SystemExit("--target-url: the database is wiped; its name must contain 'bench'")
    _create_database(url)
    db = create_engine(url)
    with db.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    db.dispose()


def _export(url: str, path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    db = make_engine(url)
    try:
        with UnitOfWork(sessionmaker(db)).begin() as session, path.open("wb") as out:
            lines = export_store(session, out)
    finally:
        db.dispose()
    return lines, time.perf_counter() - started


def _sha(path: Path) -> str:
    return file_digest(path)


def round_trip(source_url: str | None, target_url: str, work: Path, scale: float) -> dict[str, Any]:
    """Run the round trip; return its figures."""
    work.mkdir(parents=True, exist_ok=True)
    first, second = work / "transfer-1.jsonl", work / "transfer-2.jsonl"
    figures: dict[str, Any] = {"scale": scale}
    if source_url is None:
        _wipe(target_url)
        started = time.perf_counter()
        db = make_engine(target_url)
        generate(db, scale, 1)
        db.dispose()
        figures["generate_s"] = round(time.perf_counter() - started, 1)
        source_url = target_url
    lines, figures["export_s"] = _export(source_url, first)
    figures["records"] = lines - 1
    figures["file_mib"] = round(first.stat().st_size / 2**20, 1)
    _wipe(target_url)
    db = make_engine(target_url)
    upgrade(db)
    importer = Importer(
        UnitOfWork(sessionmaker(db, expire_on_commit=False)),
        AuditChain(),
        load_catalogue(),
        "bench:transfer",
        file_digest(first),
    )
    started = time.perf_counter()
    with first.open("rb") as source:
        report = importer.run(source)
    figures["import_s"] = round(time.perf_counter() - started, 1)
    db.dispose()
    figures["records_per_s"] = round(figures["records"] / figures["import_s"])
    figures["organisations_written"] = len(report.written)
    figures["refused"] = len(report.refused)
    figures["first_refusals"] = [r.__dict__ for r in report.refused[:5]]
    _lines2, figures["export_again_s"] = _export(target_url, second)
    figures["identical"] = _sha(first) == _sha(second)
    figures["export_s"] = round(figures["export_s"], 1)
    figures["export_again_s"] = round(figures["export_again_s"], 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transfer", description=__doc__)
    parser.add_argument("--source-url", help="The store to export (default: generate one).")
    parser.add_argument(
        "--target-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/pdp_bench_transfer",
        help="PostgreSQL database to wipe and import into (its name must contain 'bench').",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="When generating (1.0: national).")
    parser.add_argument("--work-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--json", type=Path, help="Also write the figures there.")
    args = parser.parse_args(argv)
    figures = round_trip(args.source_url, args.target_url, args.work_dir, args.scale)
    print(
        f"records {figures['records']:,} ({figures['file_mib']} MiB); "
        f"export {figures['export_s']} s; import {figures['import_s']} s "
        f"({figures['records_per_s']:,} records/s, {figures['organisations_written']:,} "
        f"organisations, {figures['refused']} refused); export again "
        f"{figures['export_again_s']} s; identical: {'yes' if figures['identical'] else 'no'}"
    )
    if figures["refused"]:
        print(json.dumps(figures["first_refusals"], ensure_ascii=False, default=str))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0 if figures["identical"] and not figures["refused"] else 1


if __name__ == "__main__":
    sys.exit(main())
