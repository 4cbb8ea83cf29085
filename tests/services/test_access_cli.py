"""``pdp access export``: who may use what, from the shell (R-ADM-8), over the demo on SQLite
and PostgreSQL: the whole nation by default, one organisation, a day, CSV or JSON Lines, to
standard output or a file; the same rows as the API's document."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from flask import Flask

from pdp.cli import cli
from pdp.services.access import COLUMNS, document
from pdp.web.container import services

from support.constants import MakeApp

ORGANISATIONS = ["asso-entraide", "ccas-grand-paris", "habitat-93", "mairie-montreuil", "sip-lyon"]


@pytest.fixture
def shell(demo_db: str, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The demo's database as PDP_DATABASE_URL; no decision log file."""
    monkeypatch.setenv("PDP_DATABASE_URL", demo_db)
    monkeypatch.setenv("PDP_DECISION_LOG", "off")
    return demo_db


@pytest.fixture
def app(shell: str, make_app: MakeApp) -> Iterator[Flask]:
    yield make_app()[0]


def pdp(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_the_whole_nation_as_json_lines_by_default(app: Flask, today: dt.date) -> None:
    result = pdp("access", "export")
    assert result.exit_code == 0, result.output
    objects = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert all(tuple(o) == COLUMNS for o in objects)
    assert sorted({o["organisation"] for o in objects}) == ORGANISATIONS
    assert [(o["organisation"], o["login"]) for o in objects] == sorted(
        (o["organisation"], o["login"]) for o in objects
    )
    # The very rows of the service (and so of the API) over the same store.
    expected = [r._asdict() for r in document(services(app).engine, None, None).rows()]
    assert objects == expected
    assert result.stderr == f"{len(objects)} rows, {today.isoformat()}, revision 1\n"


def test_one_organisation_as_csv_on_a_day(app: Flask, today: dt.date) -> None:
    at = (today - dt.timedelta(days=11)).isoformat()
    result = pdp(
        "access", "export", "--organisation", "mairie-montreuil", "--at", at, "--format", "csv"
    )
    assert result.exit_code == 0, result.output
    parsed = list(csv.reader(io.StringIO(result.stdout)))
    assert tuple(parsed[0]) == COLUMNS
    assert {(r[0], r[7]) for r in parsed[1:]} == {("mairie-montreuil", at)}
    # R-CON-2: eleven days ago Adonis was still subscribed; R-GRP-2: CCAS-ARCHIVES still open.
    assert [
        "mairie-montreuil",
        "bruno.petit",
        "adonis",
        "acces",
        "931",
        "group",
        "CCAS",
        at,
    ] in parsed
    assert "emma.garnier" in {r[1] for r in parsed}


def test_to_a_file(app: Flask, tmp_path: Path) -> None:
    out = tmp_path / "access.jsonl"
    result = pdp("access", "export", "--organisation", "asso-entraide", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(o["login"], o["source"], o["group"]) for o in lines] == [
        ("karim.diallo", "group", "AFAS-HABILITER"),
        ("lea.fontaine", "afas_profile", None),
        ("lea.fontaine", "group", "AFAS-DECLARER"),
        ("marc.chevalier", "afas_profile", None),
    ]
    assert result.stderr.startswith("4 rows, ")


def test_an_unknown_organisation_exits_2_and_writes_no_file(shell: str, tmp_path: Path) -> None:
    out = tmp_path / "access.csv"
    result = pdp("access", "export", "--organisation", "nope", "--output", str(out))
    assert result.exit_code == 2
    assert result.stderr == "error UNKNOWN_ORGANISATION: Organisme inconnu : 'nope'.\n"
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--at", "2026-02-30"], id="no-such-day"),
        pytest.param(["--at", "tomorrow"], id="not-a-day"),
        pytest.param(["--format", "json"], id="the-apis-name"),
        pytest.param(["--format", "xml"], id="unknown-format"),
    ],
)
def test_bad_options_exit_2(shell: str, args: list[str]) -> None:
    result = pdp("access", "export", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
