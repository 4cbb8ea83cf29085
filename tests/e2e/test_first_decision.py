"""The README's "From an empty database to the first decision", run as printed in bash against a
real gunicorn, on SQLite and on PostgreSQL (R-CON-4: Cafs and the first operator from the command
line, then the API): what it prints is what the README shows.

Only three things are adapted: the database URL (PostgreSQL's run), the port (a free one), and,
in the comparison, today's date and the decision id, which differ from the README's run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pdp.core.clock import paris_today

from support.servers import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## From an empty database to the first decision"
README_DAY = "2026-12-01"
SQLITE_URL = "sqlite:///pdp-first.sqlite3"
DECISION_ID = re.compile(r'"decision_id":"[0-9a-f]{32}"')


def blocks() -> tuple[str, str]:
    """The section's shell session and the output it shows."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    script = section.split("```sh\n", 1)[1].split("```", 1)[0]
    shown = section.split("```text\n", 1)[1].split("```", 1)[0]
    return script, shown


def normalised(output: str, today: dt.date, shown: str) -> str:
    readme_id = DECISION_ID.search(shown)
    assert readme_id is not None
    output = output.replace(today.isoformat(), README_DAY)
    return DECISION_ID.sub(readme_id.group(0), output)


def test_from_an_empty_database_to_the_first_decision_R_CON_4(
    db_url: str, backend: str, tmp_path: Path
) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the README's session (apt-get install curl)")
    script, shown = blocks()
    port = free_port()
    assert SQLITE_URL in script and "127.0.0.1:8001" in script
    script = script.replace("127.0.0.1:8001", f"127.0.0.1:{port}")
    if backend == "postgres":
        script = script.replace(SQLITE_URL, db_url)
        shown = shown.replace(SQLITE_URL, db_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDP_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_RUNTIME_DIR"] = str(tmp_path)  # gunicorn's control socket, this test's own
    today = paris_today()
    process = subprocess.Popen(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # the server, if the script did not stop it
    log = (tmp_path / "pdp-serve.log").read_text() if (tmp_path / "pdp-serve.log").exists() else ""
    assert process.returncode == 0, f"{err}\n{log}"
    assert normalised(out, today, shown) == shown, f"stderr: {err}"
