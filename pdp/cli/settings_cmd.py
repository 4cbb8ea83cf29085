"""``pdp settings``: the settings in effect (secrets never shown), or with ``--markdown`` the
README's table of every setting, made from their declarations (a test compares the two)."""

from __future__ import annotations

import click
from pydantic import SecretStr

from pdp.core.config import Settings, file_settings
from pdp.core.settings_sources import markdown_table, masked_password


@click.command("settings")
@click.option(
    "--markdown", is_flag=True, help="Print the table of every setting (the README's) instead."
)
def settings_cmd(markdown: bool) -> None:
    """Print the settings in effect, read from the environment as the server reads them
    (secrets shown as ``**********``, the database URL without its password)."""
    if markdown:
        click.echo(markdown_table(Settings, file_settings()), nl=False)
        return
    settings = Settings.from_env()
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "**********" if value.get_secret_value() else ""
        else:
            shown = masked_password(value) if name == "database_url" else str(value)
        click.echo(f"PDP_{name.upper()}={shown}")
