"""The ``pdp`` command: its groups of subcommands, one module each (``commands``: the database,
the demo, decisions from the shell, the server, the logs, the audit trail; ``clients``: API
keys; ``network``: the Cafs and the operators; ``quickstart``: the demo, served; ``inputs``:
what the commands read, checked; ``transfer``: export and import of the whole store;
``openapi``: the API's document; ``person``: a person's file; ``reviews``: closing the access
reviews at their due date; ``settings``: the settings in effect, or the README's table of
them)."""

from __future__ import annotations

from pdp.cli.clients import clients
from pdp.cli.commands import cli, main
from pdp.cli.network import cafs, operators
from pdp.cli.openapi import openapi_cmd
from pdp.cli.person import person
from pdp.cli.quickstart import quickstart
from pdp.cli.reviews import reviews
from pdp.cli.settings_cmd import settings_cmd
from pdp.cli.transfer import export_cmd, import_cmd

cli.add_command(clients)
cli.add_command(cafs)
cli.add_command(operators)
cli.add_command(quickstart)
cli.add_command(export_cmd)
cli.add_command(import_cmd)
cli.add_command(openapi_cmd)
cli.add_command(person)
cli.add_command(reviews)
cli.add_command(settings_cmd)

__all__ = ["cli", "main"]
