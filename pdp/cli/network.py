"""``pdp cafs`` and ``pdp operators``: the Caf network from an empty database, without SQL.

Each change is a policy write audited as ``cli:<unix user>`` (see
``pdp.services.admin.network``); servers see it within PDP_REFRESH_INTERVAL.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click
from sqlalchemy.orm import sessionmaker

from pdp.adapters.sql.database import UnitOfWork, make_engine
from pdp.cli.commands import _operator, _settings
from pdp.cli.inputs import parse_day as _day
from pdp.core.clock import paris_today
from pdp.core.errors import PdpError
from pdp.engine.actions import Action

if TYPE_CHECKING:
    from pdp.services.admin.service import Tx

T = TypeVar("T")


def _write(action: Action, verb: Callable[[Tx], T]) -> T:
    """Run ``verb`` in one command-line write; exit 2 with the error's code and message."""
    # The administration services (and their pydantic models) load with the first write.
    from pdp.core.masking import Masker
    from pdp.records.audit_trail import AuditChain
    from pdp.records.policy_write import PolicyWriter
    from pdp.services.admin import network

    settings = _settings()
    db = make_engine(settings.database_url)
    chain = AuditChain(
        settings.audit_key.get_secret_value(),
        Masker(settings.log_mask, settings.log_mask_key.get_secret_value()),
    )
    writer = PolicyWriter(UnitOfWork(sessionmaker(db, expire_on_commit=False)), chain)
    try:
        with network.command_line_write(writer, _operator(), action, paris_today()) as tx:
            return verb(tx)
    except PdpError as exc:
        click.echo(f"error {exc.code}: {exc.message}", err=True)
        sys.exit(2)


def _read(verb: Callable[..., T]) -> T:
    settings = _settings()
    db = make_engine(settings.database_url)
    with UnitOfWork(sessionmaker(db)).begin() as session:
        return verb(session, paris_today())


def _closing(state: str | None, opens_on: str) -> str:
    return f"{opens_on} → {state}" if state else f"since {opens_on}"


@click.group()
def cafs() -> None:
    """The Cafs of the network (R-CON-4)."""


@cafs.command("add")
@click.argument("code")
@click.argument("name")
@click.option("--opens-on", help="Opening day (YYYY-MM-DD), default today.")
def cafs_add(code: str, name: str, opens_on: str | None) -> None:
    """Register the Caf CODE (e.g. 751) named NAME."""
    from pdp.services.admin import network
    from pdp.services.admin.requests import CafNew

    data = _parse(lambda: CafNew(code=code, name=name, opens_on=_day(opens_on)))
    out = _write(Action.CAF_MANAGE, lambda tx: network.add_caf(tx, data))
    click.echo(f"caf {out.code} {out.name!r} opens {out.opens_on}")


@cafs.command("list")
def cafs_list() -> None:
    """Every Caf: code, name, dates, open today or not."""
    from pdp.services.admin import network

    for caf in _read(network.cafs).cafs:
        state = "open" if caf.open else "closed"
        click.echo(f"{caf.code}\t{caf.name}\t{_closing(caf.closes_on, caf.opens_on)}\t{state}")


@cafs.command("close")
@click.argument("code")
@click.option("--on", "day", help="Closing day (YYYY-MM-DD), default today.")
def cafs_close(code: str, day: str | None) -> None:
    """Close the Caf CODE (refused while a convention with it stays open after that day)."""
    from pdp.services.admin import network
    from pdp.services.admin.requests import CafEdit

    data = _parse(lambda: CafEdit(closes_on=_day(day) or paris_today()))
    out = _write(Action.CAF_MANAGE, lambda tx: network.edit_caf(tx, code, data))
    click.echo(f"caf {out.code} closes {out.closes_on}")


@click.group()
def operators() -> None:
    """The operators: Caf-side accounts acting across every organisation (R-CON-4)."""


@operators.command("add")
@click.argument("login")
@click.option("--first-name", required=True)
@click.option("--last-name", required=True)
@click.option("--email", required=True)
@click.option("--opens-on", help="Opening day (YYYY-MM-DD), default today.")
def operators_add(
    login: str, first_name: str, last_name: str, email: str, opens_on: str | None
) -> None:
    """Register the operator LOGIN (the first one is registered this way)."""
    from pdp.services.admin import network
    from pdp.services.admin.requests import OperatorNew

    data = _parse(
        lambda: OperatorNew(
            login=login,
            first_name=first_name,
            last_name=last_name,
            email=email,
            opens_on=_day(opens_on),
        )
    )
    out = _write(Action.OPERATOR_MANAGE, lambda tx: network.add_operator(tx, data))
    click.echo(f"operator {out.login} opens {out.opens_on}")


@operators.command("list")
def operators_list() -> None:
    """Every operator: login, name, dates, open today or not."""
    from pdp.services.admin import network

    for op in _read(network.operators).operators:
        state = "open" if op.open else "closed"
        name = f"{op.first_name} {op.last_name}"
        click.echo(f"{op.login}\t{name}\t{_closing(op.closes_on, op.opens_on)}\t{state}")


@operators.command("close")
@click.argument("login")
@click.option("--on", "day", help="Closing day (YYYY-MM-DD), default today.")
def operators_close(login: str, day: str | None) -> None:
    """Close the operator LOGIN (refused for the last open operator)."""
    from pdp.services.admin import network
    from pdp.services.admin.requests import OperatorEdit

    data = _parse(lambda: OperatorEdit(closes_on=_day(day) or paris_today()))
    out = _write(Action.OPERATOR_MANAGE, lambda tx: network.edit_operator(tx, login, data))
    click.echo(f"operator {out.login} closes {out.closes_on}")


def _parse(build: Callable[[], T]) -> T:
    """A request built from options; exit 2 with the first field's error."""
    from pydantic import ValidationError

    try:
        return build()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        click.echo(f"error VALIDATION_ERROR: {where}: {first['msg']}", err=True)
        sys.exit(2)
