"""Reading the settings from an environment: ``PDP_<NAME>`` by pydantic-settings' own source, a
secret also from the file ``PDP_<NAME>_FILE`` names (container secrets), the ``PDP_*``
variables no setting reads named (a misspelt setting is otherwise silently dropped), and the
README's table of settings made from the fields' declarations."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic.config import JsonDict
from pydantic_settings import BaseSettings, EnvSettingsSource

from pdp.core.errors import ConfigurationError

log = logging.getLogger("pdp.config")

# ``PDP_*`` variables that are not settings, shown in the README's table after the settings:
# (name, default, meaning).
OTHER_VARIABLES = (
    ("PDP_BIND", "`127.0.0.1:8000`", "`pdp serve` address (`--bind` overrides)"),
    ("PDP_WORKERS", "2 × cores", "`pdp serve` worker processes (`--workers` overrides)"),
    (
        "PDP_KEY",
        "(none)",
        "not read by the service: the demo API key `pdp quickstart` writes to its environment "
        "file, for the examples' `curl` calls",
    ),
    (
        "PDP_URL`, `PDP_API_KEY`, `PDP_TIMEOUT`, `PDP_RETRIES`, `PDP_CACHE_TTL",
        "",
        "not read by the service: the Flask extension's keys in a front-end's `app.config` "
        "([The Flask extension](#the-flask-extension))",
    ),
    (
        "PROMETHEUS_MULTIPROC_DIR",
        "(none)",
        "an empty, writable directory (a tmpfs) where each `pdp serve` process (the workers, "
        "the decision log's shipper) keeps its metrics, so that `/metrics` sums them; emptied "
        "when the server starts. Without it, `/metrics` shows only the worker that answers the "
        "scrape, and none of the shipper's figures (`pdp_decision_log_shipped_total`, backlog)",
    ),
)
OTHER_NAMES = frozenset(
    {"PDP_BIND", "PDP_WORKERS", "PDP_KEY", "PDP_URL", "PDP_API_KEY", "PDP_TIMEOUT"}
    | {"PDP_RETRIES", "PDP_CACHE_TTL"}
)
# The tests', the benchmark's and CI's own variables: never a setting, never warned about.
TOOLING_PREFIXES = ("PDP_TEST_", "PDP_BENCH_", "PDP_STATEFUL_", "PDP_FUZZ_", "PDP_CI_")
TOOLING_NAMES = frozenset({"PDP_README_WRITE", "PDP_SCREENSHOTS_DIR"})


def setting(default: Any, description: str, shown: str | None = None) -> Any:
    """A setting's field: its default, its description (the README's), and the default as the
    README shows it (``shown``; else the default itself, ``(none)`` when empty)."""
    extra: JsonDict | None = {"shown": shown} if shown is not None else None
    return Field(default, description=description, json_schema_extra=extra)


def secret_fields(settings_cls: type[BaseSettings]) -> tuple[str, ...]:
    """The settings held as SecretStr: never printed (repr, str, ``pdp settings``)."""
    fields = settings_cls.model_fields.items()
    return tuple(name for name, field in fields if field.annotation is SecretStr)


def setting_variables(
    settings_cls: type[BaseSettings], from_files: Collection[str]
) -> frozenset[str]:
    """Every ``PDP_*`` variable a setting reads (``PDP_<NAME>`` and the ``*_FILE`` ones)."""
    names = {f"PDP_{name.upper()}" for name in settings_cls.model_fields}
    return frozenset(names | {f"PDP_{name.upper()}_FILE" for name in from_files})


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``
    (``PDP_`` prefix; only upper-case names, as the former reader)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls, case_sensitive=False, env_prefix="PDP_")

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = self._environ
        return {k.lower(): v for k, v in env.items() if k.startswith("PDP_") and k.isupper()}


def read_environment(
    settings_cls: type[BaseSettings], environ: Mapping[str, str], from_files: Collection[str]
) -> dict[str, Any]:
    """The settings' raw values in ``environ``: ``PDP_<NAME>``, or for a setting of
    ``from_files`` the content of the file ``PDP_<NAME>_FILE`` names, its final newline
    dropped. Both set, or a file that cannot be read: ConfigurationError naming it."""
    values = dict(_MappingSource(settings_cls, environ)())
    for name in from_files:
        variable = f"PDP_{name.upper()}"
        path = environ.get(f"{variable}_FILE")
        if path is None:
            continue
        if variable in environ:
            raise ConfigurationError(
                f"{variable} and {variable}_FILE are both set: keep one of them"
            )
        try:
            with Path(path).open(encoding="utf-8", newline="") as file:  # "\r" kept as is
                text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigurationError(f"{variable}_FILE: cannot read {path!r} ({why})") from None
        values[name] = text.removesuffix("\n").removesuffix("\r")
    return values


def unknown_variables(environ: Mapping[str, str], known: Collection[str]) -> list[str]:
    """The ``PDP_*`` names of ``environ`` that no setting reads and that are neither a
    documented other variable nor the tests', the benchmark's or CI's."""
    return sorted(
        name
        for name in environ
        if name.startswith("PDP_")
        and name not in known
        and name not in OTHER_NAMES
        and name not in TOOLING_NAMES
        and not name.startswith(TOOLING_PREFIXES)
    )


def refuse_unknown(environ: Mapping[str, str], known: Collection[str], production: bool) -> None:
    """Name the unknown ``PDP_*`` variables of ``environ`` in a warning; in production, raise
    ConfigurationError listing them (a misspelt setting would silently keep its default)."""
    unknown = unknown_variables(environ, known)
    if not unknown:
        return
    listed = ", ".join(unknown)
    if production:
        raise ConfigurationError(
            f"PDP_ENV=production refuses to start: unknown variables {listed} (misspelt "
            "settings? see `pdp settings --markdown`)"
        )
    log.warning("unknown variables, not read (misspelt settings?): %s", listed)


def invalid_value(
    exc: ValidationError, values: Mapping[str, Any], hidden: Collection[str]
) -> ConfigurationError:
    """The ConfigurationError of a value the settings' types refuse, naming its variable (the
    value itself unless it is one of ``hidden``)."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "extra_forbidden":
        return ConfigurationError(f"{name!r} is not a setting (no PDP_{name.upper()})")
    shown = "(hidden)" if name in hidden else repr(values.get(name))
    return ConfigurationError(f"PDP_{name.upper()}: invalid value {shown}")


def masked_password(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***``."""
    return re.sub(r"^([\w+.-]+://[^/@:]*:)[^/@]*@", r"\1***@", url)


def markdown_table(settings_cls: type[BaseSettings], from_files: Collection[str]) -> str:
    """The README's table of settings: one row a setting (its variable, its default as the
    README shows it, its description), then the other ``PDP_*`` variables."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in settings_cls.model_fields.items():
        variable = f"PDP_{name.upper()}"
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        shown = extra.get("shown")
        default = field.default
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        if shown is None:
            shown = f"`{default}`" if default != "" else "(none)"
        meaning = field.description or ""
        if name in from_files:
            meaning += f"; or `{variable}_FILE`, a file holding it (its final newline dropped)"
        rows.append(f"| `{variable}` | {shown} | {meaning} |")
    rows += [f"| `{name}` | {shown} | {meaning} |" for name, shown, meaning in OTHER_VARIABLES]
    return "\n".join(rows) + "\n"
