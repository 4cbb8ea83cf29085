"""``pdp clients``: the front-ends' API keys (``pdp.services.api_keys``): made, listed with
their expiry and the day each was last used, revoked; every change in the audit trail."""

from __future__ import annotations

import sys

import click

from pdp.cli.commands import _client_store, _operator
from pdp.cli.inputs import utc_minute
from pdp.core.errors import PdpError


@click.group()
def clients() -> None:
    """API keys of the front-ends (policy enforcement points)."""


@clients.command("add")
@click.argument("name")
@click.option(
    "--services", required=True, help="Comma-separated services the key may ask about: cdap,afas."
)
@click.option(
    "--expires",
    help="Refuse the key from this day on (YYYY-MM-DD, Europe/Paris), or from this ISO 8601 "
    "date-time with an offset. Default: no expiry.",
)
def clients_add(name: str, services: str, expires: str | None) -> None:
    """Create an API key for front-end NAME, limited to SERVICES; print it (once)."""
    from pdp.services.api_keys import parse_expiry

    wanted = [s.strip() for s in services.split(",") if s.strip()]
    try:
        expires_at = parse_expiry(expires) if expires is not None else None
        key, client = _client_store().add(name, wanted, _operator(), expires_at)
    except PdpError as exc:
        click.echo(f"error {exc.code}: {exc.message}", err=True)
        sys.exit(2)
    services_given = ",".join(sorted(client.services))
    expiry = f", expires {utc_minute(client.expires_at)}" if client.expires_at else ""
    click.echo(
        f"client {client.name}, key id {client.key_id}, services {services_given}{expiry}",
        err=True,
    )
    click.echo("the key is shown once; only its SHA-256 is kept:", err=True)
    click.echo(key)


@clients.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
def clients_list(include_revoked: bool) -> None:
    """List the API keys (names, key ids, services, expiry, the day last used; never the
    keys). Times are in UTC, the day last used in Europe/Paris."""
    from pdp.core.clock import unix_now

    now = unix_now()
    for c in _client_store().list(include_revoked):
        if c.revoked_at:
            state = f"revoked {utc_minute(c.revoked_at)}"
        else:
            state = "expired" if c.expired(now) else "open"
        expiry = f"expires {utc_minute(c.expires_at)}" if c.expires_at else "no expiry"
        used = f"last used {c.last_used_on:%Y-%m-%d}" if c.last_used_on else "never used"
        click.echo(
            f"{c.name}\t{c.key_id}\t{','.join(sorted(c.services))}\t"
            f"created {utc_minute(c.created_at)}\t{state}\t{expiry}\t{used}"
        )


@clients.command("revoke")
@click.argument("name")
@click.option("--key-id", help="Revoke only this key of NAME (default: all its keys).")
def clients_revoke(name: str, key_id: str | None) -> None:
    """Revoke the API keys of NAME; servers refuse them within PDP_REFRESH_INTERVAL."""
    try:
        revoked = _client_store().revoke(name, _operator(), key_id)
    except PdpError as exc:
        click.echo(f"error {exc.code}: {exc.message}", err=True)
        sys.exit(2)
    for c in revoked:
        click.echo(f"revoked {c.name} {c.key_id}")
