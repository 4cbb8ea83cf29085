"""The TypeScript client (clients/typescript), for JavaScript front-ends: its types are generated
from the published OpenAPI document (docs/openapi.json) by openapi-typescript, and its tests run
with Node's test runner (``node --test``) against a real ``pdp serve`` on the demo data; the
README's example is compiled and run against the same server.

The packages (TypeScript, openapi-typescript, Node's types) are installed by ``npm ci`` in that
folder: ``.ci/run`` does it, and these tests do it when ``node_modules`` is missing. Without node
(or npm) they are skipped, with the reason, unless ``PDP_TEST_TSCLIENT=1`` (CI): then they fail.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.readme import blocks, compare
from support.servers import Served, demo_server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "clients" / "typescript"
README = ROOT / "README.md"
ENV = "PDP_TEST_TSCLIENT"
SECTION = "## For JavaScript front-ends: the TypeScript client"


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a node tool to completion; its output, or the test fails with it."""
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, (
        f"{shlex.join(args)} ({done.returncode}):\n{done.stdout}{done.stderr}"
    )
    return done.stdout


def bin_(tool: str) -> str:
    return str(HERE / "node_modules" / ".bin" / tool)


@pytest.fixture(scope="module")
def built() -> Path:
    """The client compiled (``tsc``), its packages installed by ``npm ci`` if missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        problem = "node and npm are needed (apt-get install nodejs npm)"
        if os.environ.get(ENV) == "1":
            pytest.fail(f"{ENV}=1 but {problem}", pytrace=False)
        pytest.skip(f"TypeScript client tests skipped: {problem}")
    if not (HERE / "node_modules" / "typescript").is_dir():
        out = run(["npm", "ci", "--no-audit", "--no-fund"], HERE)
        assert re.search(r"added \d+ packages", out), out
    assert run([bin_("tsc"), "-p", "."], HERE) == ""  # no type error
    return HERE


@pytest.fixture(scope="module")
def served(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with demo_server(tmp_path_factory.mktemp("tsclient")) as s:
        yield s


def test_the_types_are_generated_from_the_published_document(built: Path, tmp_path: Path) -> None:
    """src/schema.ts is what ``npm run generate`` makes of docs/openapi.json today."""
    script = json.loads((built / "package.json").read_text())["scripts"]["generate"]
    args = shlex.split(script)
    assert args[:2] == ["openapi-typescript", "../../docs/openapi.json"]
    assert args[-2:] == ["-o", "src/schema.ts"]
    fresh = tmp_path / "schema.ts"
    run([bin_(args[0]), *args[1:-1], str(fresh)], built)
    committed = (built / "src" / "schema.ts").read_text(encoding="utf-8")
    assert fresh.read_text(encoding="utf-8") == committed, (
        "clients/typescript/src/schema.ts is stale: run `npm run generate` there"
    )
    assert '"/v1/check": {' in committed and "CheckResponse: {" in committed


def test_the_client_against_a_real_server(built: Path, served: Served) -> None:
    """``node --test``: the client's questions answered by pdp serve, and its failures (R-DEC-2)
    against Node servers that hang, cut, or answer HTML."""
    server = served.server
    assert server.api_key is not None
    env = {**os.environ, "PDP_URL": server.base_url, "PDP_KEY": server.api_key}
    done = subprocess.run(
        ["node", "--test", "--test-reporter=tap", "dist/test/"],
        cwd=built,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    counts = {k: int(v) for k, v in re.findall(r"^# (pass|fail|skipped|todo) (\d+)$", out, re.M)}
    assert counts.get("fail") == 0 and counts.get("skipped") == 0 and counts.get("todo") == 0, out
    assert counts.get("pass", 0) >= 20, out
    assert "# Subtest: against a real pdp serve" in out


def readme_example() -> tuple[str, str]:
    """The TypeScript example of the README's section, and the output shown under it."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text
    section = text[text.index(SECTION) :]
    section = section[: section.find("\n## ", 1)]
    found = blocks(section)
    ts = [n for n, b in enumerate(found) if b.lang == "ts"]
    assert len(ts) == 1, "the section has one TypeScript example"
    code, shown = found[ts[0]], found[ts[0] + 1]
    assert code.marker == "<!-- readme: run by tests/e2e/test_typescript_client.py -->"
    assert shown.lang == "text"
    return code.text, shown.text


def test_the_readme_example_runs_as_printed(built: Path, served: Served, tmp_path: Path) -> None:
    """The README's example, compiled by tsc as a front-end would (the package installed in its
    node_modules) and run against the demo server: it prints what the README shows."""
    code, shown = readme_example()
    (tmp_path / "package.json").write_text('{"type": "module"}\n')
    modules = tmp_path / "node_modules"
    (modules / "@caf").mkdir(parents=True)
    (modules / "@caf" / "pdp-client").symlink_to(built)
    (modules / "@types").symlink_to(built / "node_modules" / "@types")
    (tmp_path / "example.ts").write_text(code + "\n", encoding="utf-8")
    tsc = [bin_("tsc"), "--strict", "--module", "nodenext", "--target", "es2022"]
    run([*tsc, "--types", "node", "--outDir", "out", "example.ts"], tmp_path)
    server = served.server
    assert server.api_key is not None
    env = {**os.environ, "U": server.base_url, "PDP_KEY": server.api_key}
    printed = run(["node", "out/example.js"], tmp_path, env)
    assert compare(shown, printed) == [], printed
