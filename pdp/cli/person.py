"""``pdp person export LOGIN``: a person's file (GDPR art. 15, R-CNIL-15), as the API's
``GET /v1/users/<login>/file`` answers it, streamed to standard output or a file."""

from __future__ import annotations

import sys
from typing import BinaryIO

import click

from pdp.adapters.sql.database import make_engine
from pdp.cli.commands import _settings
from pdp.core.errors import PdpError
from pdp.core.masking import Masker
from pdp.services.person_file import open_file


@click.group()
def person() -> None:
    """What the store holds about one person (GDPR art. 15)."""


@person.command("export")
@click.argument("login")
@click.option(
    "-o", "--output", type=click.File("wb", lazy=True), default="-", help="Default: stdout."
)
def person_export(login: str, output: BinaryIO) -> None:
    """Write LOGIN's file: account, rights over time, last uses, administrative acts by and on
    them, decisions still retained; one JSON document, streamed."""
    settings = _settings()
    masker = Masker(settings.log_mask, settings.log_mask_key.get_secret_value())
    db = make_engine(settings.database_url)
    try:
        found = open_file(db, masker, login, settings.decision_log_retention_months)
    except PdpError as exc:
        click.echo(f"error {exc.code}: {exc.message}", err=True)
        sys.exit(2)
    for chunk in found.chunks():
        output.write(chunk)
    output.flush()
