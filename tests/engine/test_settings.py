"""The settings (pdp.core.config): declared once, read from ``PDP_*`` variables and files,
secrets never printed, unknown variables named, and the README's table made from the code."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from pdp.cli import cli
from pdp.core.config import Settings, file_settings, known_variables, secret_fields
from pdp.core.errors import ConfigurationError
from pdp.core.settings_sources import markdown_table

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "jwt_secret": "jwt-0123456789abcdefghijklmnopqrstuvwxyz",
    "console_secret": "console-0123456789abcdefghijklmnopqrstuv",
    "console_oidc_client_secret": "oidc-client-0123456789abcdefghijklmn",
    "audit_key": "audit-0123456789abcdefghijklmnopqrstuvw",
    "log_mask_key": "mask-0123456789abcdefghijklmnopqrstuvwx",
}
DB_PASSWORD = "db-pa55word-Zq"
DB_URL = f"postgresql+psycopg://pdp:{DB_PASSWORD}@db.example:5432/pdp"


@pytest.fixture(autouse=True)
def no_caller_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PDP_* variable of the caller's shell (the tests' own families stay)."""
    for name in list(os.environ):
        if name.startswith("PDP_") and not name.startswith("PDP_TEST_"):
            monkeypatch.delenv(name)


def test_the_secrets_are_the_five_secret_settings() -> None:
    assert set(secret_fields(Settings)) == set(SECRETS)
    assert set(file_settings()) == {*SECRETS, "database_url"}


def test_repr_and_str_never_show_a_secret_nor_the_database_password() -> None:
    """R-CFG-1: the settings' repr and str mask every secret and the URL's password."""
    settings = Settings(database_url=DB_URL, **SECRETS)
    for text in (repr(settings), str(settings), f"{settings}", repr([settings])):
        for secret in (*SECRETS.values(), DB_PASSWORD):
            assert secret not in text
        assert "postgresql+psycopg://pdp:***@db.example:5432/pdp" in text
        assert "SecretStr('**********')" in text or "**********" in text
    assert settings.jwt_secret.get_secret_value() == SECRETS["jwt_secret"]
    assert settings.database_url == DB_URL  # the value itself is whole


def test_keywords_construct_without_reading_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PDP_BATCH_MAX", "7")
    monkeypatch.setenv("PDP_JWT_SECRET", "from-the-environment")
    settings = Settings(jwt_secret="given")
    assert settings.batch_max == 1000
    assert settings.jwt_secret.get_secret_value() == "given"
    assert Settings.from_env().batch_max == 7  # only from_env reads it


def test_from_env_reads_typed_values_then_applies_overrides() -> None:
    env = {"PDP_BATCH_MAX": "12", "PDP_REFRESH_INTERVAL": "0.5", "PDP_JWT_SECRET": "s3"}
    settings = Settings.from_env(env, batch_max=3)
    assert (settings.batch_max, settings.refresh_interval) == (3, 0.5)
    assert isinstance(settings.jwt_secret, SecretStr)
    assert settings.jwt_secret.get_secret_value() == "s3"


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"PDP_BATCH_MAX: invalid value 'many'"):
        Settings.from_env({"PDP_BATCH_MAX": "many"})
    with pytest.raises(ConfigurationError, match="PDP_WATCHER must be auto"):
        Settings.from_env({"PDP_WATCHER": "sometimes"})
    with pytest.raises(ConfigurationError, match="'bogus' is not a setting"):
        Settings.from_env({}, bogus=1)


def test_settings_are_frozen_and_replace_makes_a_checked_copy() -> None:
    settings = Settings(batch_max=5, jwt_secret="k")
    with pytest.raises(ValueError):
        settings.batch_max = 6  # type: ignore[misc]
    copy = settings.replace(page_max=9)
    assert (copy.batch_max, copy.page_max, copy.jwt_secret.get_secret_value()) == (5, 9, "k")
    assert settings.page_max == 1000
    with pytest.raises(ValueError):
        settings.replace(batch_max="many")


@pytest.mark.parametrize("name", sorted({*SECRETS, "database_url"}))
def test_each_secret_reads_from_its_file_without_the_final_newline(
    name: str, tmp_path: Path
) -> None:
    """R-CFG-2: PDP_<NAME>_FILE, the content without its final newline (inner ones kept)."""
    value = DB_URL if name == "database_url" else SECRETS[name] + "  x"
    path = tmp_path / "secret"
    path.write_text(value + "\n", encoding="utf-8")
    settings = Settings.from_env({f"PDP_{name.upper()}_FILE": str(path)})
    got = getattr(settings, name)
    assert (got if isinstance(got, str) else got.get_secret_value()) == value


def test_only_one_final_newline_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "jwt"
    path.write_bytes(b"line one\nline two\r\n\n")
    settings = Settings.from_env({"PDP_JWT_SECRET_FILE": str(path)})
    assert settings.jwt_secret.get_secret_value() == "line one\nline two\r\n"


def test_a_secret_and_its_file_both_set_are_refused(tmp_path: Path) -> None:
    """R-CFG-2: the variable and its _FILE both set: refused, naming both."""
    path = tmp_path / "audit"
    path.write_text("from-file", encoding="utf-8")
    env = {"PDP_AUDIT_KEY": "inline", "PDP_AUDIT_KEY_FILE": str(path)}
    with pytest.raises(ConfigurationError, match="PDP_AUDIT_KEY and PDP_AUDIT_KEY_FILE"):
        Settings.from_env(env)


def test_an_unreadable_secret_file_is_refused_naming_it(tmp_path: Path) -> None:
    """R-CFG-2: a missing file, a directory, or bytes that are not UTF-8: refused, named."""
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigurationError, match=f"PDP_LOG_MASK_KEY_FILE: .*{missing.name}"):
        Settings.from_env({"PDP_LOG_MASK_KEY_FILE": str(missing)})
    with pytest.raises(ConfigurationError, match=f"PDP_JWT_SECRET_FILE: .*{tmp_path.name}"):
        Settings.from_env({"PDP_JWT_SECRET_FILE": str(tmp_path)})
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigurationError, match=r"PDP_CONSOLE_SECRET_FILE: .*binary"):
        Settings.from_env({"PDP_CONSOLE_SECRET_FILE": str(binary)})


def test_unknown_variables_are_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """R-CFG-3: a misspelt setting is named; the tests' families and the other documented
    variables are not."""
    env = {
        "PDP_JWT_SECRTE": "typo",
        "PDP_BATCHMAX": "5",
        "PDP_TEST_POSTGRES_URL": "x",
        "PDP_BENCH_POSTGRES_URL": "x",
        "PDP_STATEFUL_STEPS": "1",
        "PDP_FUZZ_EXAMPLES": "1",
        "PDP_CI_PYTHON": "3.11",
        "PDP_README_WRITE": "1",
        "PDP_BIND": "127.0.0.1:9000",
        "PDP_WORKERS": "2",
        "PDP_KEY": "pdp_x",
        "PDP_AUDIT_KEY_FILE": os.devnull,
        "OTHER": "x",
    }
    with caplog.at_level(logging.WARNING, logger="pdp.config"):
        settings = Settings.from_env(env)
    assert settings.batch_max == 1000  # the misspelt one did nothing
    warnings = [r.getMessage() for r in caplog.records if r.name == "pdp.config"]
    assert len(warnings) == 1
    assert "PDP_BATCHMAX, PDP_JWT_SECRTE" in warnings[0]
    for quiet in set(env) - {"PDP_JWT_SECRTE", "PDP_BATCHMAX"}:
        assert quiet not in warnings[0]


def test_no_warning_when_every_variable_is_a_setting(caplog: pytest.LogCaptureFixture) -> None:
    env = {"PDP_JWT_SECRET": "x", "PDP_LOG_MASK": "", "PDP_AUDIT_KEY_FILE": os.devnull}
    assert set(env) <= known_variables()
    with caplog.at_level(logging.WARNING, logger="pdp.config"):
        Settings.from_env(env)
    assert not [r for r in caplog.records if r.name == "pdp.config"]


def test_production_refuses_unknown_variables_listing_them() -> None:
    """R-CFG-3: in production a misspelt setting stops the start, every one listed."""
    env = {"PDP_ENV": "production", "PDP_JWT_SECERT": "x", "PDP_AUDITKEY": "y"}
    with pytest.raises(ConfigurationError, match="unknown variables PDP_AUDITKEY, PDP_JWT_SECERT"):
        Settings.from_env(env)
    with pytest.raises(ConfigurationError, match="PDP_JWT_SECERT"):
        Settings.from_env({"PDP_JWT_SECERT": "x"}, env="production")


def test_every_setting_is_described() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"PDP_{name.upper()} has no description"


def test_the_readme_table_is_the_one_the_code_prints() -> None:
    """The README's Configuration table, between its markers, is `pdp settings --markdown`
    (regenerate it with that command when a setting changes)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(
        r"<!-- settings-table:begin[^\n]*-->\n(.*?)<!-- settings-table:end -->", readme, re.S
    )
    assert found, "README.md has no settings-table markers"
    printed = CliRunner().invoke(cli, ["settings", "--markdown"])
    assert printed.exit_code == 0, printed.output
    assert printed.output == markdown_table(Settings, file_settings())
    assert found[1] == printed.output, (
        "README's settings table differs: run pdp settings --markdown"
    )
    for name in Settings.model_fields:
        assert f"| `PDP_{name.upper()}` |" in found[1]


def test_pdp_settings_prints_the_settings_in_effect_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """R-CFG-1: `pdp settings` shows every setting, never a secret's value."""
    monkeypatch.setenv("PDP_DATABASE_URL", DB_URL)
    monkeypatch.setenv("PDP_BATCH_MAX", "42")
    for name, value in SECRETS.items():
        monkeypatch.setenv(f"PDP_{name.upper()}", value)
    result = CliRunner().invoke(cli, ["settings"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(Settings.model_fields)
    assert "PDP_BATCH_MAX=42" in lines
    assert "PDP_DATABASE_URL=postgresql+psycopg://pdp:***@db.example:5432/pdp" in lines
    assert "PDP_JWT_SECRET=**********" in lines
    assert "PDP_CONSOLE_SECRET=**********" in lines
    for secret in (*SECRETS.values(), DB_PASSWORD):
        assert secret not in result.output
