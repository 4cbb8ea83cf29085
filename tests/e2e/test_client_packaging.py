"""The client is installable and importable without the server: ``pip install caf-pdp``
brings urllib3 only, ``caf-pdp[flask]`` adds Flask, and importing ``pdp.client`` loads nothing
of the decision service; the wheel installs one top-level package, ``pdp`` (with
``pdp.adapters`` and ``pdp.policies``), and nothing of the benchmark."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Modules of the server side: none may be imported by the client.
SERVER_MODULES = (
    "sqlalchemy",
    "casbin",
    "pydantic",
    "alembic",
    "gunicorn",
    "orjson",
    "limits",
    "redis",
    "prometheus_client",
    "jwt",
    "yaml",
    "psycopg",
    "pdp.web.app",
    "pdp.engine",
    "pdp.services.decisions",
    "pdp.core.config",
    "pdp.adapters",
)

#: What each install may bring (distribution names, normalised).
FLASK_DISTRIBUTIONS = {"flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click"}
FLASK_DISTRIBUTIONS |= {"blinker"}


def imported_after(statement: str) -> set[str]:
    """The top-level and pdp.* modules loaded by ``statement`` in a fresh interpreter."""
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout))


def loaded_server_modules(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules if any(m == s or m.startswith(s + ".") for s in SERVER_MODULES)
    )


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    modules = imported_after("import pdp.client")
    assert "pdp.client" in modules and "urllib3" in modules
    assert loaded_server_modules(modules) == []
    assert "flask" not in modules  # the extension is a separate module


def test_importing_the_flask_extension_loads_flask_only() -> None:
    modules = imported_after("import pdp.client.flask")
    assert "flask" in modules
    assert loaded_server_modules(modules) == []


def project_copy(tmp_path: Path) -> Path:
    """What the wheel is built from, copied (so that building leaves the checkout alone)."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    for package in ("pdp", "adapters", "policies", "bench"):
        shutil.copytree(
            ROOT / package, project / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return project


def resolved(extra: str, tmp_path: Path) -> set[str]:
    """The distributions ``pip install .{extra}`` would install into an empty environment,
    resolved (not installed) from a copy of the project."""
    project = project_copy(tmp_path)
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--disable-pip-version-check",
            "--report",
            str(report),
            f".{extra}",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"pip could not resolve .{extra}:\n{done.stdout}\n{done.stderr}")
    items = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower().replace("_", "-") for item in items}


def test_pip_install_pdp_brings_the_client_only(tmp_path: Path) -> None:
    assert resolved("", tmp_path) == {"caf-pdp", "urllib3"}


def test_the_flask_extra_adds_flask_and_nothing_of_the_server(tmp_path: Path) -> None:
    assert resolved("[flask]", tmp_path) == {"caf-pdp", "urllib3"} | FLASK_DISTRIBUTIONS


def test_the_server_extra_brings_the_decision_service(tmp_path: Path) -> None:
    names = resolved("[server]", tmp_path)
    assert {"pycasbin", "flask", "sqlalchemy", "gunicorn", "alembic"} <= names


def test_the_console_script_names_the_missing_extra() -> None:
    """With the client only, ``pdp`` says which extra to install instead of a traceback."""
    code = "import sys; sys.modules['sqlalchemy'] = None; from pdp.entry import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "serve"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "pip install 'caf-pdp[server]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_wheel_ships_the_consoles_templates_and_styles(tmp_path: Path) -> None:
    """The console's pages, the migrations and the policies are package data: an installed
    server (the Docker image installs the wheel) renders and upgrades with them."""
    import zipfile

    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=project_copy(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    [wheel] = tmp_path.glob("caf_pdp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # One top-level package: adapters/ and policies/ install under pdp, the bench not at all.
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"pdp"}
    assert "pdp/adapters/sql/models.py" in names and "pdp/policies/catalogue.yaml" in names
    migrations = {p.name for p in (ROOT / "adapters/sql/migrations/versions").glob("*.py")}
    assert {f"pdp/adapters/sql/migrations/versions/{m}" for m in migrations} <= names
    templates = {
        f"pdp/web/console/templates/console/{p.name}"
        for p in (ROOT / "pdp/web/console/templates/console").glob("*.html")
    }
    assert templates and templates <= names
    assert "pdp/web/console/static/console.css" in names
