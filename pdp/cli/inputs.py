"""What the ``pdp`` command reads from its user, checked before any work: days, the server's
address, and the database named in errors (its URL without the password)."""

from __future__ import annotations

import calendar
import datetime as dt
import re

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")

# Where `pdp quickstart` writes the settings a second shell needs (`. ./pdp-demo.env`).
DEMO_ENV_FILE = "pdp-demo.env"


def parse_day(value: str | None, option: str | None = None) -> dt.date | None:
    """A day ``YYYY-MM-DD``, or None; a malformed value and a day that does not exist (February
    30th) are refused with their own message, naming ``option``."""
    if value is None:
        return None
    m = _DAY.match(value)
    if m is None:
        raise click.BadParameter(f"{value!r} is not a day: expected YYYY-MM-DD", param_hint=option)
    year, month, day = (int(part) for part in m.groups())
    if year < 1:
        raise click.BadParameter(
            f"{value!r}: the day does not exist (no year 0)", param_hint=option
        )
    if not 1 <= month <= 12:
        raise click.BadParameter(
            f"{value!r}: the day does not exist (there is no month {month})", param_hint=option
        )
    last = calendar.monthrange(year, month)[1]
    if not 1 <= day <= last:
        raise click.BadParameter(
            f"{value!r}: the day does not exist ({calendar.month_name[month]} {year} has "
            f"{last} days)",
            param_hint=option,
        )
    return dt.date(year, month, day)


def utc_minute(moment: dt.datetime) -> str:
    """A stored instant, in UTC to the minute (SQLite gives them back naive, in UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    return f"{aware.astimezone(dt.UTC):%Y-%m-%d %H:%M}"


def parse_bind(value: str) -> str:
    """A server address gunicorn can bind: ``HOST:PORT`` (port 1-65535; ``[::1]:8000`` for
    IPv6) or ``unix:PATH``; refused before anything is loaded."""
    if value.startswith("unix:") and len(value) > len("unix:"):
        return value
    m = _HOST_PORT.match(value)
    if m is None:
        raise click.BadParameter(
            f"{value!r} is not an address: expected HOST:PORT (127.0.0.1:8000, 0.0.0.0:8000) "
            "or unix:PATH"
        )
    port = int(m.group("port"))
    if not 1 <= port <= 65535:
        raise click.BadParameter(f"{value!r}: the port must be between 1 and 65535")
    return value


def bind_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Click callback of ``--bind``."""
    return parse_bind(value)


def masked_url(url: str) -> str:
    """The database URL as errors show it: never its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def database_error(url: str, problem: str) -> str:
    """The message of a database error: what failed, which database, and a hint when the
    database has no pdp schema (a table is missing)."""
    first = problem.strip().splitlines()[0] if problem.strip() else "error"
    text = f"{first} (database {masked_url(url)})"
    lowered = problem.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        text += (
            "\nhint: this database has no pdp tables. Is PDP_DATABASE_URL the database you meant? "
            "After `pdp quickstart`, run `. ./pdp-demo.env` in this shell; for a new, empty "
            "database, `pdp db upgrade`."
        )
    return text
