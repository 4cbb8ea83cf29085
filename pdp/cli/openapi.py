"""``pdp openapi``: the API's OpenAPI document, as published in the repository (docs/openapi.json,
which a test compares with what the server serves)."""

from __future__ import annotations

from pathlib import Path

import click

from pdp.web import app as _views  # noqa: F401 (its view modules register the operations)
from pdp.web.api.docs import document, render


@click.command("openapi")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the document to this file instead of printing it.",
)
def openapi_cmd(output: Path | None) -> None:
    """Print the OpenAPI document of the decision API (regenerate the published copy with
    ``pdp openapi -o docs/openapi.json``)."""
    text = render(document())
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
