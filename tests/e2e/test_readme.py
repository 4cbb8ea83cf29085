"""README.md cannot drift: its examples are run, in order, against a real ``pdp quickstart``, and
what each prints is compared with what the README shows (``support.readme``: ids, keys, tokens,
hashes and timestamps masked; JSON field by field; text line by line).

The quickstart runs as the README says (its own directory, ``./pdp-demo.env`` for the second
shell, every block run in one bash session that sourced it), on a free port (the README's
commands read the address from ``$U``), with its clock set to the day the README's outputs were
taken (``PDP_CLOCK_START``: the demo's dates are relative to the day it is loaded).

``PDP_README_WRITE=1`` writes what was printed into README.md where it differs (then read the
diff: an abridged answer, ``…``, must be abridged again by hand).
"""

from __future__ import annotations

import contextlib
import doctest
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from support.readme import (
    NOT_RUN,
    RUN_BY,
    Block,
    blocks,
    compare,
    console_commands,
    mask,
)
from support.servers import free_port, running

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_NOT_RUN = 7  # blocks the README may leave unrun (deployment, Docker…): few, each with a reason
COMMAND_TIMEOUT = 30.0
WRITE = os.environ.get("PDP_README_WRITE") == "1"


def readme_day(text: str) -> str:
    m = re.search(r"taken from `pdp quickstart` on (\d{4}-\d{2}-\d{2})", text)
    assert m, "the README says on which day its outputs were taken"
    return m.group(1)


class Bash:
    """One bash session, as the reader's second shell: commands run one after the other and
    share variables; each command's stdout and stderr are read together."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.times: list[tuple[float, str]] = []  # seconds per command, for the figures
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")

    def run(self, command: str) -> tuple[int, str]:
        """Run ``command`` (its stdin is /dev/null); return its exit status and output."""
        started = time.monotonic()
        try:
            return self._run(command)
        finally:
            self.times.append((time.monotonic() - started, command.split("\n")[0][:80]))

    def _run(self, command: str) -> tuple[int, str]:
        assert self.process.stdin is not None
        end = f"__readme_end_{uuid.uuid4().hex}__"
        self.process.stdin.write(f"{{\n{command}\n}} </dev/null\necho; echo {end} $?\n")
        self.process.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no end within {COMMAND_TIMEOUT} s: {command}\n{''.join(out)}")
            if line == "":
                pytest.fail(f"bash ended during: {command}\n{''.join(out)}")
            if line.startswith(end):
                text = "".join(out)
                return int(line.split()[1]), text[:-1] if text.endswith("\n") else text
            out.append(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()


def env_file_values(path: Path) -> dict[str, str]:
    done = subprocess.run(
        ["bash", "-c", f". {path} && env -0"], capture_output=True, text=True, check=True
    )
    pairs = (item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)
    return dict(pairs)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The newcomer's clone: a directory with .venv (this interpreter's environment) where
    ``pdp quickstart`` runs, as the README's first block says."""
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the README's examples (apt-get install curl)")
    cwd = tmp_path_factory.mktemp("readme")
    venv = Path(sys.prefix)
    if (venv / "bin" / "activate").is_file():
        (cwd / ".venv").symlink_to(venv)
    else:  # not in a virtualenv: an activate script that puts this interpreter first
        (cwd / ".venv" / "bin").mkdir(parents=True)
        bindir = Path(sys.executable).parent
        (cwd / ".venv" / "bin" / "activate").write_text(f'export PATH="{bindir}:$PATH"\n')
    yield cwd


def test_the_readme_runs_as_printed(workdir: Path) -> None:
    text = README.read_text(encoding="utf-8")
    day = readme_day(text)
    found = blocks(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDP_")}
    env.update(
        PDP_CLOCK_START=f"{day}T10:00:00+01:00",
        XDG_RUNTIME_DIR=str(workdir),  # gunicorn's control socket, this test's own
        LC_ALL="C.UTF-8",
    )
    port = free_port()
    assert port != 8000
    problems: list[str] = []
    edits: list[tuple[Block, str]] = []
    ran = {"sh": 0, "console": 0, "pycon": 0}
    with running(["quickstart", "--workers", "2"], env, workdir) as server:
        settings = env_file_values(workdir / "pdp-demo.env")
        assert settings["U"] == server.base_url
        bash = Bash(workdir, env)
        try:
            for block in found:
                if block.marker and (NOT_RUN.match(block.marker) or RUN_BY.match(block.marker)):
                    continue
                where = f"README.md:{block.line}"
                if block.lang == "sh":
                    ran["sh"] += 1
                    status, printed = bash.run(block.text)
                    if block.output is None:
                        if status != 0:
                            problems.append(f"{where}: exit {status}\n{printed}")
                        continue
                    diff = compare(block.output.text, printed)
                    if diff:
                        problems.append(f"{where}:\n" + "\n".join(diff))
                        edits.append((block.output, printed))
                elif block.lang == "console":
                    ran["console"] += 1
                    new_lines: list[str] = []
                    changed = False
                    for n, cmd in enumerate(console_commands(block.text)):
                        _status, printed = bash.run(cmd.command)
                        diff = compare("\n".join(cmd.shown), printed)
                        if n and _spaced(block):
                            new_lines.append("")
                        new_lines.append(f"$ {cmd.command}")
                        if diff:
                            changed = True
                            problems.append(f"{where}: $ {cmd.command}\n" + "\n".join(diff))
                            new_lines += printed.rstrip("\n").split("\n") if printed else []
                        else:
                            new_lines += cmd.shown
                    if changed:
                        edits.append((block, "\n".join(new_lines).rstrip("\n")))
                elif block.lang == "pycon":
                    ran["pycon"] += 1
                    failures = run_doctest(block, settings, day)
                    if failures:
                        problems.append(f"{where}: doctest\n{failures}")
        finally:
            bash.close()
            slowest = sorted(bash.times, reverse=True)[:5]
            print(
                f"\n{len(bash.times)} commands in {sum(t for t, _ in bash.times):.1f} s; slowest:"
            )
            for seconds, command in slowest:
                print(f"  {seconds:5.2f} s  {command}")
    if WRITE and edits:
        write_back(text, edits)
    assert not problems, "\n\n".join(problems)
    assert ran["sh"] >= 10 and ran["console"] >= 5 and ran["pycon"] >= 1, ran


def _spaced(block: Block) -> bool:
    """Whether the console block separates its commands with a blank line."""
    return "\n\n$ " in block.text


def write_back(text: str, edits: list[tuple[Block, str]]) -> None:
    lines = text.split("\n")
    for block, printed in sorted(edits, key=lambda e: e[0].line, reverse=True):
        lines[block.line : block.end - 1] = printed.rstrip("\n").split("\n")
    README.write_text("\n".join(lines), encoding="utf-8")


class MaskedChecker(doctest.OutputChecker):
    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        return super().check_output(mask(want), mask(got), optionflags)


def run_doctest(block: Block, settings: dict[str, str], day: str) -> str:
    """Run a pycon block as a doctest, with the demo's settings in ``os.environ`` and the
    client's "today" on the server's clock (``day``, as PDP_CLOCK_START set it); the report of
    its failures, empty when it passes."""
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update({k: v for k, v in settings.items() if k in ("U", "PDP_KEY")})
    try:
        test = doctest.DocTestParser().get_doctest(
            block.text, {}, f"README.md:{block.line}", str(README), block.line
        )
        out: list[str] = []
        runner = doctest.DocTestRunner(checker=MaskedChecker(), optionflags=doctest.ELLIPSIS)
        with mock.patch("pdp.client.cache.paris_today", lambda: day):
            runner.run(test, out=out.append)
        return "".join(out)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_few_blocks_are_left_unrun_and_each_says_why() -> None:
    """Every example is run here or by the test it names; the few that cannot be (production,
    Docker…) say why, and no transcript hides in a block that is not run."""
    found = blocks(README.read_text(encoding="utf-8"))
    not_run = [b for b in found if b.marker and NOT_RUN.match(b.marker)]
    assert len(not_run) <= MAX_NOT_RUN, [b.line for b in not_run]
    for b in found:
        if b.marker and RUN_BY.match(b.marker):
            m = RUN_BY.match(b.marker)
            assert m and (ROOT / m.group("test")).is_file(), b.marker
        elif b.marker:
            assert NOT_RUN.match(b.marker), f"README.md:{b.line}: unknown marker {b.marker}"
        transcript = any(ln.startswith("$ ") for ln in b.text.split("\n"))
        if transcript and b.lang != "console":
            assert b.marker, f"README.md:{b.line}: a transcript in a {b.lang!r} block is not run"


def test_the_comparison_fails_on_a_changed_field_and_ignores_only_masked_values() -> None:
    shown = '{"allowed":true,"decision_id":"0123456789abcdef0123456789abcdef","revision":1}'
    same = '{"revision":1,"allowed":true,"decision_id":"ffffffffffffffffffffffffffffffff"}'
    assert compare(shown, same) == []
    changed = same.replace('"revision":1', '"revision":2')
    assert compare(shown, changed) == ["line 1: $.revision: shown 1, printed 2"]
    assert compare("client demo", "client 127.0.0.1") != []
    assert compare("a …, c", "a b, c") == [] and compare("a …, c", "a b, d") != []
    assert compare("one\ntwo", "one") == [
        "2 lines shown, 1 printed",
    ]
