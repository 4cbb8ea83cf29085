"""What the ``pdp`` command reads from its user (``pdp.cli.inputs``), and the errors a newcomer
meets: a day that does not exist, a bad server address, an unknown login, a database that is not
the one meant (named in the error, without its password), ``pdp --version``, and the settings
file ``pdp quickstart`` leaves for another shell."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from pdp.cli import cli, main
from pdp.cli.inputs import database_error, masked_url, parse_bind, parse_day
from pdp.cli.quickstart import write_env_file

from support.servers import pdp_command


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in list(os.environ):
        if name.startswith("PDP_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'pdp.sqlite3'}"
    monkeypatch.setenv("PDP_DATABASE_URL", url)
    monkeypatch.setenv("PDP_DECISION_LOG", "off")
    return url


def pdp(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr("sys.argv", ["pdp", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    code = exited.value.code
    return code if isinstance(code, int) else 1


# -- days --------------------------------------------------------------------------------------


def test_a_day_is_read_as_a_date() -> None:
    assert parse_day("2028-02-29") == dt.date(2028, 2, 29)
    assert parse_day(None) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-02-30", "'2026-02-30': the day does not exist (February 2026 has 28 days)"),
        ("2027-02-29", "'2027-02-29': the day does not exist (February 2027 has 28 days)"),
        ("2026-04-31", "(April 2026 has 30 days)"),
        ("2026-13-01", "the day does not exist (there is no month 13)"),
        ("2026-00-10", "the day does not exist (there is no month 0)"),
        ("2026-01-00", "the day does not exist (January 2026 has 31 days)"),
        ("0000-01-01", "the day does not exist (no year 0)"),
    ],
)
def test_a_day_that_does_not_exist_is_named_so(value: str, message: str) -> None:
    with pytest.raises(click.BadParameter) as refused:
        parse_day(value, "--at")
    assert message in refused.value.format_message()
    assert refused.value.param_hint == "--at"


@pytest.mark.parametrize("value", ["26-02-01", "2026/02/01", "tomorrow", "2026-2-1", ""])
def test_a_value_that_is_not_a_day_asks_for_yyyy_mm_dd(value: str) -> None:
    with pytest.raises(click.BadParameter, match="is not a day: expected YYYY-MM-DD"):
        parse_day(value)


def test_pdp_check_refuses_a_day_that_does_not_exist_before_opening_the_store(
    database_url: str,
) -> None:
    # The database has no schema: the day is refused first, and that is all that is said.
    result = pdp("check", "bruno.petit", "cdap", "--at", "2026-02-30")
    assert result.exit_code == 2
    assert "Invalid value for --at: '2026-02-30': the day does not exist" in result.output
    assert "schema" not in result.output


# -- the server's address ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["127.0.0.1:8000", "0.0.0.0:80", "localhost:65535", "[::1]:8000", "unix:/tmp/s"]
)
def test_a_good_address_is_kept(value: str) -> None:
    assert parse_bind(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bad", "'bad' is not an address: expected HOST:PORT"),
        ("127.0.0.1", "is not an address"),
        (":8000", "is not an address"),
        ("127.0.0.1:0", "the port must be between 1 and 65535"),
        ("127.0.0.1:70000", "the port must be between 1 and 65535"),
        ("unix:", "is not an address"),
        ("host name:80", "is not an address"),
    ],
)
def test_a_bad_address_is_refused(value: str, message: str) -> None:
    with pytest.raises(click.BadParameter, match=message):
        parse_bind(value)


@pytest.mark.parametrize("command", ["serve", "quickstart"])
def test_pdp_serve_refuses_a_bad_bind_at_once_exit_2(command: str, tmp_path: Path) -> None:
    """The address is checked before the index is loaded, and not tried five times: the real
    console script, in a directory with no database at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDP_")}
    env["PDP_DATABASE_URL"] = f"sqlite:///{tmp_path / 'absent.sqlite3'}"
    started = time.monotonic()
    done = subprocess.run(
        [*pdp_command(), command, "--bind", "bad", "--workers", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert "Invalid value for '--bind': 'bad' is not an address" in done.stderr
    assert "Traceback" not in done.stderr and "Retrying" not in done.stderr
    assert not (tmp_path / "absent.sqlite3").exists()  # nothing was opened
    assert not (tmp_path / "pdp-demo.sqlite3").exists()  # quickstart made nothing
    print(f"pdp {command} --bind bad: refused in {elapsed:.2f} s")


# -- pdp --version -------------------------------------------------------------------------------


def test_pdp_version_names_the_installed_distribution() -> None:
    from importlib.metadata import version

    result = pdp("--version")
    assert result.exit_code == 0
    assert result.output == f"pdp {version('caf-pdp')}\n"


# -- pdp token -------------------------------------------------------------------------------------


def test_pdp_token_refuses_an_unknown_login(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PDP_JWT_SECRET", "s" * 16 + "T" * 16 + "0123456789")
    assert pdp("db", "upgrade").exit_code == 0
    assert pdp("demo", "load").exit_code == 0
    refused = pdp("token", "nobody.here")
    assert refused.exit_code == 2
    assert refused.stdout == ""  # no token
    assert refused.stderr.startswith("error UNKNOWN_LOGIN: no user 'nobody.here'")
    minted = pdp("token", "alice.martin")
    assert minted.exit_code == 0
    assert minted.stdout.count(".") == 2  # a JWT: header.claims.signature
    assert pdp("token", "op.caf751").exit_code == 0  # an operator is a user too


# -- database errors name the database ---------------------------------------------------------


def test_the_url_shown_never_holds_the_password() -> None:
    shown = masked_url("postgresql+psycopg://pdp:s3cret@db.internal/pdp")
    assert shown == "postgresql+psycopg://pdp:***@db.internal/pdp"
    assert masked_url("not a url") == "(not a database URL)"


def test_pdp_db_upgrade_does_not_print_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("PDP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PDP_DATABASE_URL", "postgresql+psycopg://pdp:s3cret@127.0.0.1:1/pdp")
    assert run_main(monkeypatch, "db", "upgrade") == 2
    err = capsys.readouterr().err
    assert "(database postgresql+psycopg://pdp:***@127.0.0.1:1/pdp)" in err
    assert "s3cret" not in err


def test_a_missing_table_gets_a_hint() -> None:
    message = database_error("sqlite:////srv/pdp.sqlite3", "no such table: policy_revision")
    assert message.startswith(
        "no such table: policy_revision (database sqlite:////srv/pdp.sqlite3)\nhint: "
    )
    assert ". ./pdp-demo.env" in message and "pdp db upgrade" in message
    other = database_error("sqlite:////srv/pdp.sqlite3", "database is locked")
    assert "hint" not in other


def test_pdp_clients_add_on_the_wrong_database_names_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The newcomer's case: the server runs on pdp-demo.sqlite3, this shell opened pdp.sqlite3."""
    assert run_main(monkeypatch, "clients", "add", "afas-front", "--services", "afas") == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error DATABASE_ERROR: no such table: policy_revision (database {database_url})\n"
    )
    assert "hint: this database has no pdp tables" in err
    assert "[SQL:" not in err and "sqlalche.me" not in err


def test_pdp_check_on_a_database_without_schema_names_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(monkeypatch, "check", "bruno.petit", "cdap") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error CONFIGURATION_ERROR: database {database_url} has no pdp schema")
    assert ". ./pdp-demo.env" in err and "pdp db upgrade" in err


def test_a_database_error_never_shows_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("PDP_"):
            monkeypatch.delenv(name)
    # Nothing listens on port 1: the connection is refused.
    monkeypatch.setenv("PDP_DATABASE_URL", "postgresql+psycopg://pdp:s3cret@127.0.0.1:1/pdp")
    assert run_main(monkeypatch, "clients", "list") == 2
    err = capsys.readouterr().err
    assert err.startswith("error DATABASE_ERROR: ")
    assert "(database postgresql+psycopg://pdp:***@127.0.0.1:1/pdp)" in err
    assert "s3cret" not in err


# -- the settings file of pdp quickstart ---------------------------------------------------------


def test_the_env_file_is_shell_quoted_and_private(tmp_path: Path) -> None:
    path = tmp_path / "pdp-demo.env"
    path.write_text("old")
    write_env_file(path, {"PDP_KEY": "pdp_ab_c-d", "U": "http://127.0.0.1:8000", "X": "a b'c"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sourced = subprocess.run(
        ["bash", "-c", f'. {path} && printf "%s|%s|%s" "$PDP_KEY" "$U" "$X"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sourced.stdout == "pdp_ab_c-d|http://127.0.0.1:8000|a b'c"


def test_the_env_file_is_ignored_by_git_and_the_image_build() -> None:
    root = Path(__file__).resolve().parents[2]
    assert "pdp-demo.env" in (root / ".gitignore").read_text().splitlines()
    assert "pdp-demo.env" in (root / ".dockerignore").read_text().splitlines()
