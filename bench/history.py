"""The suite's results, kept run after run: a regression shows as a row.

``python -m bench all`` writes its whole JSON into ``bench/history/`` (one file per run, named by
its date, commit and scale; the file records the machine too). ``python -m bench history``
prints one row per kept run, oldest first; ``--write-readme`` puts that table into
``bench/README.md`` between the two ``history`` markers (a test checks that it is up to date, so
the README cannot drift from the files).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HISTORY_DIR = Path(__file__).resolve().parent / "history"
README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- history:start -->", "<!-- history:end -->"

COLUMNS = (
    "date",
    "commit",
    "machine",
    "scale",
    "check median",
    "check p99",
    "FastEnforcer ÷ ours",
    "cedarpy ÷ ours",
    "HTTP share 2 / 16 / 64",
    "HTTP p99 at 16",
    "batch checks/s",
    "log buffered loss",
    "attach (write)",
    "seen by another worker",
    "close group",
    "server PSS (production)",
    "loss under 10 writes/s",
)


def commit() -> str:
    """The checked-out commit (short), ``+`` when the tree has changes; ``unknown`` outside
    git."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+" if dirty else head


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def record(suite: dict[str, Any], directory: Path = HISTORY_DIR) -> Path:
    """Keep ``suite`` (the whole JSON of one ``bench all`` run) with its commit and machine."""
    kept = {**suite, "commit": commit(), "machine_info": machine()}
    stamp = re.sub(r"[^0-9]", "", suite["started"])[:12]  # YYYYMMDDHHMM
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}-{kept['commit'].rstrip('+')}-scale{suite['scale']:g}.json"
    path.write_text(json.dumps(kept, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def load(directory: Path = HISTORY_DIR) -> list[dict[str, Any]]:
    """Every kept run, oldest first."""
    runs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]
    return sorted(runs, key=lambda r: r["started"])


def _us(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value / 1000:.1f} ms" if value >= 1000 else f"{value:.2f} µs"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"


def _get(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def row(run: dict[str, Any]) -> list[str]:
    """One run's cells, in ``COLUMNS``' order (— where the run did not measure it)."""
    top = run["runs"].get(f"{run['scale']:g}", {})
    check = top.get("check", {})
    fast, cedar = top.get("fast_casbin"), top.get("cedar")
    http = run.get("http") or {}
    shares = [
        f"{ours['rps'] / bare['rps']:.0%}"
        for ours, bare in zip(http.get("pdp", []), http.get("bare", []), strict=False)
    ]
    p99_16 = next((r["p99_us"] / 1000 for r in http.get("pdp", []) if r["connections"] == 16), None)
    batch = max((b["rps"] * 1000 for b in http.get("batch", [])), default=None)
    loss = _get(http, "log_cost", "modes", "buffered", "single", "loss_vs_off")
    writes = run.get("writes") or {}
    # The production server's (2 workers a core) when measured, else the 2-worker one's.
    pss = _get(http, "memory_production", "total_pss_mib") or _get(http, "memory", "total_pss_mib")
    under_writes = _get(run, "write_load", "loss")
    info = run.get("machine_info", {})
    return [
        run["started"][:10],
        run.get("commit", "unknown"),
        f"{info.get('cpus', '?')} CPUs, Python {info.get('python', run.get('python', '?'))}",
        f"{run['scale']:g}",
        _us(check.get("median_us")),
        _us(check.get("p99_us")),
        f"{fast['all']['median_us'] / fast['ours_interleaved']['median_us']:,.0f}×"
        if fast and fast.get("compared")
        else "—",
        f"{cedar['all']['median_us'] / cedar['ours_same_sample']['median_us']:,.0f}×"
        if cedar and cedar.get("compared")
        else "—",
        " / ".join(shares) if shares else "—",
        _ms(p99_16),
        f"{batch:,.0f}" if batch is not None else "—",
        f"{loss:.1%}" if loss is not None else "—",
        _us(_get(writes, "attach", "median_us")),
        _us(_get(writes, "visible_other_worker", "attach", "median_us")),
        _us(_get(writes, "close_group_200", "median_us")),
        f"{pss:,.0f} MiB" if pss is not None else "—",
        f"{under_writes:.1%}" if under_writes is not None else "—",
    ]


def table(runs: Iterable[dict[str, Any]]) -> list[str]:
    """The Markdown table, one row per run."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(run)) + " |" for run in runs]
    return lines


def readme_with(text: str, lines: list[str]) -> str:
    """``text`` (the README) with the table between the markers replaced by ``lines``."""
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"bench/README.md has no {START} … {END} block")
    return f"{head}{START}\n" + "\n".join(lines) + f"\n{END}{tail}"


def write_readme(directory: Path = HISTORY_DIR, readme: Path = README) -> None:
    """Regenerate the README's history table from the kept runs."""
    text = readme.read_text(encoding="utf-8")
    readme.write_text(readme_with(text, table(load(directory))), encoding="utf-8")
