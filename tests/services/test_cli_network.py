"""``pdp cafs`` and ``pdp operators`` on an empty database, on every driver (R-CON-4): the Caf
network registered without SQL, each change a policy write with its audit record naming the
command line's user."""

from __future__ import annotations

import datetime as dt
import getpass
import os

import pytest
from click.testing import CliRunner, Result

from pdp.adapters.sql.database import make_engine
from pdp.cli import cli
from pdp.records.audit_trail import iter_records


@pytest.fixture
def database(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty database at the latest schema as PDP_DATABASE_URL, no other PDP_* setting."""
    for name in list(os.environ):
        if name.startswith("PDP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PDP_DATABASE_URL", db_url)
    monkeypatch.setenv("PDP_DECISION_LOG", "off")
    return db_url


def pdp(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def events(url: str) -> list[tuple[str, str, str]]:
    engine = make_engine(url)
    try:
        return [(r["actor"], r["action"], r["target"]) for r in iter_records(engine, 0)]
    finally:
        engine.dispose()


def test_cafs_add_list_close_R_CON_4(database: str, today: dt.date) -> None:
    added = pdp("cafs", "add", "751", "Caf de Paris")
    assert added.exit_code == 0, added.output
    assert added.stdout == f"caf 751 'Caf de Paris' opens {today}\n"
    assert (
        pdp("cafs", "add", "131", "Caf des Bouches-du-Rhône", "--opens-on", "1990-01-01").exit_code
        == 0
    )
    listed = pdp("cafs", "list")
    assert listed.stdout == (
        "131\tCaf des Bouches-du-Rhône\tsince 1990-01-01\topen\n"
        f"751\tCaf de Paris\tsince {today}\topen\n"
    )
    closed = pdp("cafs", "close", "751")
    assert closed.stdout == f"caf 751 closes {today}\n"
    assert pdp("cafs", "list").stdout.splitlines()[1] == (
        f"751\tCaf de Paris\t{today} → {today}\tclosed"
    )
    actor = f"cli:{getpass.getuser()}"
    assert events(database) == [
        (actor, "caf.manage", "caf:751"),
        (actor, "caf.manage", "caf:131"),
        (actor, "caf.manage", "caf:751"),
    ]


def test_cafs_errors_exit_2_with_code_and_nothing_written(database: str) -> None:
    assert pdp("cafs", "add", "751", "Caf de Paris").exit_code == 0
    taken = pdp("cafs", "add", "751", "Autre")
    assert (taken.exit_code, taken.stderr) == (2, "error CAF_EXISTS: La Caf '751' existe déjà.\n")
    bad = pdp("cafs", "add", "7 51", "Caf")
    assert bad.exit_code == 2 and bad.stderr.startswith("error VALIDATION_ERROR: code:")
    unknown = pdp("cafs", "close", "999")
    assert (unknown.exit_code, unknown.stderr) == (2, "error UNKNOWN_CAF: Caf inconnue : '999'.\n")
    assert len(events(database)) == 1


def test_the_first_operator_comes_from_the_command_line(database: str, today: dt.date) -> None:
    first = pdp(
        "operators",
        "add",
        "marie.durand",
        "--first-name",
        "Marie",
        "--last-name",
        "Durand",
        "--email",
        "marie.durand@caf.example.fr",
    )
    assert first.exit_code == 0, first.output
    assert first.stdout == f"operator marie.durand opens {today}\n"
    assert pdp("operators", "list").stdout == (f"marie.durand\tMarie Durand\tsince {today}\topen\n")
    last = pdp("operators", "close", "marie.durand")
    assert last.exit_code == 2 and last.stderr.startswith("error LAST_OPERATOR:")
    taken = pdp(
        "operators",
        "add",
        "marie.durand",
        "--first-name",
        "M",
        "--last-name",
        "D",
        "--email",
        "m@caf.example.fr",
    )
    assert taken.exit_code == 2 and taken.stderr.startswith("error LOGIN_TAKEN:")
    assert (
        pdp(
            "operators",
            "add",
            "paul.henry",
            "--first-name",
            "Paul",
            "--last-name",
            "Henry",
            "--email",
            "paul.henry@caf.example.fr",
        ).exit_code
        == 0
    )
    closed = pdp("operators", "close", "marie.durand", "--on", str(today + dt.timedelta(days=3)))
    assert closed.stdout == f"operator marie.durand closes {today + dt.timedelta(days=3)}\n"
    assert [target for _, _, target in events(database)] == [
        "user:marie.durand",
        "user:paul.henry",
        "user:marie.durand",
    ]
