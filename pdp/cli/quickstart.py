"""``pdp quickstart``: a fresh demo database served at once, and ``./pdp-demo.env``, the settings
another shell sources so that its ``pdp`` commands and ``curl`` calls reach the same database
and server (``. .venv/bin/activate && . ./pdp-demo.env``)."""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import shutil
from pathlib import Path

import click

from pdp.adapters.sql.database import make_engine, upgrade
from pdp.cli.commands import _client_store, _load_demo, _operator, cli
from pdp.cli.inputs import DEMO_ENV_FILE, bind_option
from pdp.core.config import DEFAULT_BIND
from pdp.services.api_keys import DEMO_CLIENT

QUICKSTART_DB = "pdp-demo.sqlite3"
# Settings the server runs with that a second shell must share, when they are set.
_SHARED = ("PDP_CATALOGUE_PATH", "PDP_LOG_MASK", "PDP_LOG_MASK_KEY", "PDP_AUDIT_KEY")


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Write ``export NAME=value`` lines (shell-quoted), readable by its owner only: the file
    holds the demo's API key and token secret."""
    lines = [
        "# Written by `pdp quickstart`: the demo's settings, for another shell:",
        "#   . .venv/bin/activate && . ./pdp-demo.env",
    ]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


@cli.command()
@click.option("--bind", default=DEFAULT_BIND, show_default=True, callback=bind_option)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
def quickstart(bind: str, workers: int) -> None:
    """Create a fresh SQLite file (pdp-demo.sqlite3), load the demo data, write ./pdp-demo.env
    for other shells, and serve it."""
    path = Path.cwd() / QUICKSTART_DB
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    os.environ["PDP_DATABASE_URL"] = url
    # A fresh database gets a fresh decision log: segments left by an earlier quickstart
    # belong to the database it replaced.
    log_dir = Path.cwd() / "pdp-demo-decision-log"
    shutil.rmtree(log_dir, ignore_errors=True)
    os.environ.setdefault("PDP_DECISION_LOG_DIR", str(log_dir))
    os.environ.setdefault("PDP_JWT_SECRET", secrets.token_urlsafe(32))
    upgrade(make_engine(url))
    click.echo(f"schema created: {path}")
    click.echo(_load_demo(url))
    store = _client_store()
    key, _ = store.add(DEMO_CLIENT, store.services, _operator())
    base = f"http://{bind}"
    values = {
        "PDP_DATABASE_URL": url,
        "PDP_DECISION_LOG_DIR": os.environ["PDP_DECISION_LOG_DIR"],
        "PDP_JWT_SECRET": os.environ["PDP_JWT_SECRET"],
        "PDP_KEY": key,
        "U": base,
    }
    values |= {name: os.environ[name] for name in _SHARED if os.environ.get(name)}
    if os.environ.get("PDP_CLOCK_START"):
        values["PDP_CLOCK_START"] = os.environ["PDP_CLOCK_START"]
    env_file = Path.cwd() / DEMO_ENV_FILE
    write_env_file(env_file, values)
    click.echo(
        f"settings for another shell written to {env_file}: the database, the demo's API key "
        "(client 'demo', every service) as PDP_KEY, the token secret (PDP_JWT_SECRET), "
        "the server's address as U. In another shell, from this directory:\n"
        f"  . .venv/bin/activate && . ./{DEMO_ENV_FILE}\n"
        '  curl -s -X POST $U/v1/check -H "X-Api-Key: $PDP_KEY" '
        """-d '{"user": "bruno.petit", "service": "cdap"}'\n"""
        "  pdp token alice.martin"
    )
    click.echo(
        f"administration console (French, demo sign-in): {base}/console/"
        if os.environ.get("PDP_CONSOLE_AUTH", "") in ("", "demo")
        else "administration console: off (PDP_CONSOLE_AUTH)"
    )
    click.echo(f"serving on {base}  (try: curl -s {base}/readyz)")
    from pdp.web.app import create_app
    from pdp.web.server import serve as run

    logging.getLogger("pdp").setLevel(logging.INFO)
    run(create_app(), bind, workers)
