"""``pdp export`` and ``pdp import``: the whole store as JSON Lines (docs/transfer-format.md),
written by ``pdp.services.transfer``; the import is audited as ``cli:<unix user>`` with the
file's SHA-256."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

import click
from sqlalchemy.orm import sessionmaker

from pdp.adapters.sql.database import UnitOfWork, make_engine
from pdp.cli.commands import _operator, _settings
from pdp.cli.inputs import parse_day
from pdp.core.catalogue import load_catalogue
from pdp.core.errors import PdpError
from pdp.core.masking import Masker
from pdp.policies import CATALOGUE_PATH
from pdp.records.audit_trail import AuditChain
from pdp.services.transfer.export import export_store
from pdp.services.transfer.importer import Importer, file_digest


@click.command("export")
@click.option("--organisation", help="Only this organisation (and the Cafs it names).")
@click.option("--at", "at", help="Only what is open on this day (YYYY-MM-DD).")
@click.option(
    "-o", "--output", type=click.File("wb", lazy=True), default="-", help="Default: stdout."
)
def export_cmd(organisation: str | None, at: str | None, output: BinaryIO) -> None:
    """Write the store (every record, history included) as transfer lines."""
    settings = _settings()
    db = make_engine(settings.database_url)
    try:
        with UnitOfWork(sessionmaker(db)).begin() as session:
            lines = export_store(session, output, organisation, parse_day(at, "--at"))
    except PdpError as exc:
        click.echo(f"error {exc.code}: {exc.message}", err=True)
        sys.exit(2)
    finally:
        db.dispose()
    output.flush()
    click.echo(f"{lines} lines", err=True)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every line and count, write nothing.")
def import_cmd(file: Path, dry_run: bool) -> None:
    """Import FILE (transfer lines): one transaction per organisation; exit 1 if a line is
    refused (its organisation is then left as it was)."""
    settings = _settings()
    db = make_engine(settings.database_url)
    chain = AuditChain(
        settings.audit_key.get_secret_value(),
        Masker(settings.log_mask, settings.log_mask_key.get_secret_value()),
    )
    catalogue = load_catalogue(
        Path(settings.catalogue_path) if settings.catalogue_path else CATALOGUE_PATH
    )
    importer = Importer(
        UnitOfWork(sessionmaker(db, expire_on_commit=False)),
        chain,
        catalogue,
        _operator(),
        file_digest(file),
        dry_run=dry_run,
    )
    try:
        with file.open("rb") as source:
            report = importer.run(source)
    except PdpError as exc:
        click.echo(f"error {exc.code}: {exc.message}", err=True)
        sys.exit(2)
    finally:
        db.dispose()
    for r in report.refused:
        click.echo(f"line {r.line}: {r.code}: {r.message}", err=True)
    added = ", ".join(f"{k} {v}" for k, v in sorted(report.added.items())) or "nothing"
    verb = "would add" if dry_run else "added"
    click.echo(
        f"{report.lines} lines, sha256 {report.digest}: {verb} {added}; "
        f"updated {report.updated}, unchanged {report.unchanged}, refused {len(report.refused)}"
        + (f" (untouched: {', '.join(report.untouched)})" if report.untouched else "")
    )
    if report.refused:
        sys.exit(1)
