"""The ``pdp`` command line, run in-process with click's CliRunner on a temporary SQLite file."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import inspect

from pdp.adapters.sql.database import make_engine, schema_revision
from pdp.cli import cli, main
from pdp.core.clock import paris_today


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty SQLite file as PDP_DATABASE_URL; no other PDP_* setting of the caller's shell."""
    for name in list(os.environ):
        if name.startswith("PDP_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'pdp.sqlite3'}"
    monkeypatch.setenv("PDP_DATABASE_URL", url)
    monkeypatch.setenv("PDP_DECISION_LOG", "off")
    return url


def pdp(*args: str) -> Result:
    """Run ``pdp ARGS...`` in-process."""
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def demo(database_url: str) -> str:
    """A database at the latest schema with the demo data loaded (today)."""
    assert pdp("db", "upgrade").exit_code == 0
    assert pdp("demo", "load").exit_code == 0
    return database_url


def today() -> str:
    return paris_today().isoformat()


def days_ago(n: int) -> str:
    return (paris_today() - dt.timedelta(days=n)).isoformat()


# -- pdp db upgrade, pdp demo load -----------------------------------------------------------


def test_db_upgrade_creates_the_schema_at_head(database_url: str) -> None:
    result = pdp("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"schema up to date: {database_url}\n"
    engine = make_engine(database_url)
    try:
        current, head = schema_revision(engine)
        assert current == head is not None
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"users", "groups", "memberships", "policy_revision", "policy_changes"} <= tables


def test_db_upgrade_twice_is_a_no_op(database_url: str) -> None:
    assert pdp("db", "upgrade").exit_code == 0
    again = pdp("db", "upgrade")
    assert again.exit_code == 0, again.output
    assert again.stdout == f"schema up to date: {database_url}\n"


def test_demo_load_loads_once_then_says_already_loaded(database_url: str) -> None:
    assert pdp("db", "upgrade").exit_code == 0
    first = pdp("demo", "load")
    assert first.exit_code == 0, first.output
    assert first.stdout == "demo data loaded (revision 1)\n"
    second = pdp("demo", "load")
    assert second.exit_code == 0, second.output
    assert second.stdout == "demo data already loaded\n"
    # The second load wrote nothing: decisions are still at revision 1.
    assert f"(revision 1, {today()})" in pdp("check", "bruno.petit", "cdap").stdout


# -- pdp check: exit 0 allowed, 1 denied, 2 bad input ----------------------------------------


def test_check_allowed_exits_0_and_prints_every_grant_path(demo: str) -> None:
    result = pdp("check", "bruno.petit", "cdap", "T18")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"ALLOWED ALLOWED: Accès autorisé. (revision 1, {today()})",
        "  bruno.petit -> group CCAS-INSTRUCTION -> cdap:T18",
        "  bruno.petit -> group CCAS -> cdap:T18",
    ]


def test_check_denied_exits_1_with_the_reason_code(demo: str) -> None:
    result = pdp("check", "chloe.roux", "cdap", "T18")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1  # a denial lists no grant
    assert lines[0].startswith("DENIED ROLE_NOT_GRANTED: ")
    assert lines[0].endswith(f"(revision 1, {today()})")


@pytest.mark.parametrize(
    ("args", "exit_code", "verdict"),
    [
        (["emma.garnier", "cdap", "T18"], 1, "DENIED GROUP_CLOSED"),
        (["david.leroy", "cdap"], 1, "DENIED USER_CLOSED"),
        (["fabien.morel", "cdap"], 1, "DENIED USER_NOT_YET_OPEN"),
        (["alice.martin", "cdap"], 1, "DENIED NO_MEMBERSHIP"),
        (["nobody.here", "cdap"], 1, "DENIED UNKNOWN_USER"),
        (["bruno.petit", "adonis"], 1, "DENIED NO_SUBSCRIPTION"),
        (["nadia.benali", "cdap", "--caf", "751"], 0, "ALLOWED ALLOWED"),
        (["nadia.benali", "cdap", "--caf", "691"], 1, "DENIED CAF_NOT_SUBSCRIBED"),
        (["lea.fontaine", "afas", "declaration"], 0, "ALLOWED ALLOWED"),
    ],
)
def test_check_reasons(demo: str, args: list[str], exit_code: int, verdict: str) -> None:
    result = pdp("check", *args)
    assert result.exit_code == exit_code, result.output
    assert result.stdout.startswith(f"{verdict}: ")


def test_check_at_decides_a_past_day(demo: str) -> None:
    # david.leroy was closed 30 days ago (demo data): allowed 60 days ago, denied today.
    past = pdp("check", "david.leroy", "cdap", "T18", "--at", days_ago(60))
    assert past.exit_code == 0, past.output
    assert past.stdout.startswith("ALLOWED ALLOWED: ")
    assert f"(revision 1, {days_ago(60)})" in past.stdout
    assert pdp("check", "david.leroy", "cdap", "T18").exit_code == 1


def test_check_afas_profile_grant_is_printed(demo: str) -> None:
    result = pdp("check", "lea.fontaine", "afas")
    assert result.exit_code == 0, result.output
    assert "  lea.fontaine -> group AFAS-DECLARER -> afas:declarer" in result.stdout
    assert "  lea.fontaine -> Afas profile -> afas:declaration" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bruno.petit", "nosuchservice"], "error UNKNOWN_SERVICE: "),
        (["bruno.petit", "cdap", "T99"], "error UNKNOWN_ROLE: "),
        (["bruno.petit", "cdap", "--at", "2026-02-30"], "the day does not exist"),
        (["bruno.petit"], "Missing argument 'SERVICE'"),
    ],
)
def test_check_bad_input_exits_2(demo: str, args: list[str], message: str) -> None:
    result = pdp("check", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "ALLOWED" not in result.output and "DENIED" not in result.output


# -- pdp permissions ---------------------------------------------------------------------------


def test_permissions_prints_json_like_the_api(demo: str) -> None:
    result = pdp("permissions", "bruno.petit")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["user"] == "bruno.petit"
    assert body["at"] == today()
    assert body["revision"] == 1
    # The Adonis subscription expired 10 days ago (demo data): only Cdap is open, under Caf 931.
    assert [s["service"] for s in body["services"]] == ["cdap"]
    cdap = body["services"][0]
    assert cdap["roles"] == ["T1", "T18"]
    assert cdap["cafs"] == ["931"]
    assert {(g["group"], g["role"], g["source"]) for g in cdap["grants"]} == {
        ("CCAS-INSTRUCTION", "T1", "group"),
        ("CCAS-INSTRUCTION", "T18", "group"),
        ("CCAS", "T1", "group"),
        ("CCAS", "T18", "group"),
    }


def test_permissions_of_a_user_with_nothing_open(demo: str) -> None:
    result = pdp("permissions", "david.leroy")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["services"] == []
    past = json.loads(pdp("permissions", "david.leroy", "--at", days_ago(60)).stdout)
    assert past["at"] == days_ago(60)
    assert [s["service"] for s in past["services"]] == ["cdap"]


def test_permissions_of_an_unknown_user_exits_2(demo: str) -> None:
    result = pdp("permissions", "nobody.here")
    assert result.exit_code == 2, result.output
    assert "error UNKNOWN_USER: " in result.output


# -- the console script's entry point ----------------------------------------------------------


def test_check_on_a_database_without_schema_exits_2_with_advice(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["pdp", "check", "bruno.petit", "cdap"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error CONFIGURATION_ERROR: ")
    assert "pdp db upgrade" in err


# -- pdp reviews close-due -------------------------------------------------------------------


def test_reviews_close_due_closes_the_reviews_past_their_due_date(demo: str) -> None:
    """R-CNIL-26: the daily command closes, as its opener, a review past its due date."""
    from sqlalchemy.orm import sessionmaker

    from pdp.adapters.sql.models import ReviewCampaign

    assert pdp("reviews", "close-due").output == ""
    engine = make_engine(demo)
    with sessionmaker(engine).begin() as session:
        session.add(
            ReviewCampaign(
                title="Revue",
                opened_by="alice.martin",
                opened_on=paris_today() - dt.timedelta(days=40),
                due_on=paris_today() - dt.timedelta(days=10),
                remove_unreviewed=False,
                organisations='["mairie-montreuil"]',
            )
        )
    engine.dispose()
    result = pdp("reviews", "close-due")
    assert (result.exit_code, result.output) == (0, "review 1: closed, 0 reported, 0 removed\n")
    assert pdp("reviews", "close-due").output == ""
