"""README.md as a script: its example blocks in order, what each shows, and the comparison of
what was shown with what the code printed (ids, keys, tokens, hashes and timestamps masked; the
rest compared exactly, JSON field by field).

Blocks (fenced code, by language):

- ``sh``: run in one bash session (variables carry over to later blocks); the ``json`` or
  ``text`` block right after it is its output. Without one, it must succeed.
- ``console``: each ``$ `` line (with its ``\\``-continued lines) is run in the same session;
  the lines up to the next ``$ `` are its output.
- ``pycon``: run as a doctest.
- A block preceded by ``<!-- readme: not run (reason) -->`` is not run (nor its output block);
  ``<!-- readme: run by tests/e2e/FILE.py -->``: another test runs it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

NOT_RUN = re.compile(r"^<!-- readme: not run \((?P<reason>[^)]+)\) -->$")
RUN_BY = re.compile(r"^<!-- readme: run by (?P<test>tests/\S+\.py) -->$")
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[a-z]*)\s*$")
OUTPUT_LANGS = ("json", "text")
ELLIPSIS = "…"


@dataclass
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the opening fence
    end: int  # 1-based line of the closing fence
    marker: str | None = None  # the <!-- readme: … --> line right before it
    output: Block | None = None  # an sh block's output block


@dataclass
class Command:
    """One ``$`` command of a console block and the output shown under it."""

    command: str
    shown: list[str] = field(default_factory=list)


def blocks(text: str) -> list[Block]:
    """Every fenced block of the README, in order, with the marker line before it; an ``sh``
    block's output block attached to it (and not listed on its own)."""
    lines = text.split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        before = [ln.strip() for ln in lines[:start] if ln.strip()][-1:]
        marker = before[0] if before and before[0].startswith("<!-- readme:") else None
        found.append(
            Block(m.group("lang"), "\n".join(lines[start + 1 : j]), start + 1, j + 1, marker)
        )
        i = j + 1
    attached: list[Block] = []
    for block in found:
        previous = attached[-1] if attached else None
        if (
            block.lang in OUTPUT_LANGS
            and previous is not None
            and previous.lang == "sh"
            and previous.output is None
            and block.marker is None
            and all(not ln.strip() for ln in lines[previous.end : block.line - 1])
        ):
            previous.output = block
            continue
        attached.append(block)
    return attached


def console_commands(text: str) -> list[Command]:
    """The commands of a console block, each with the lines shown under it (trailing blank
    lines dropped)."""
    commands: list[Command] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if commands:
                commands[-1].shown.append(line)
            elif line.strip():
                raise ValueError(f"a console block starts with output: {line!r}")
            i += 1
            continue
        parts = [line[2:]]
        while parts[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            parts.append(lines[i])
        commands.append(Command("\n".join(parts)))
        i += 1
    for c in commands:
        while c.shown and not c.shown[-1].strip():
            c.shown.pop()
    return commands


# -- masks -------------------------------------------------------------------------------------

_MASKS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"pdp_[0-9a-f]{12}_[A-Za-z0-9_-]{43}"), "<api-key>"),
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), "<token>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<hash>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<id>"),
    (re.compile(r"\b[0-9a-f]{24}\b"), "<request-id>"),
    (re.compile(r"\b[0-9a-f]{16}\b"), "<hash16>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<key-id>"),
    (re.compile(r"\b[0-9a-f]{8}…"), "<hash8>…"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?"), "<time>"),
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}"), "<time>"),
    (re.compile(r'"(ts|eval_us)":\s*[0-9.]+'), r'"\1":"<number>"'),
]


def mask(text: str) -> str:
    """``text`` with what differs from run to run replaced by a placeholder."""
    for pattern, placeholder in _MASKS:
        text = pattern.sub(placeholder, text)
    return text


# -- comparison --------------------------------------------------------------------------------


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _differences(shown: Any, got: Any, path: str) -> list[str]:
    if isinstance(shown, dict) and isinstance(got, dict):
        out = [f"{path}.{k}: shown, not printed" for k in shown if k not in got]
        out += [f"{path}.{k}: printed, not shown" for k in got if k not in shown]
        for k in shown:
            if k in got:
                out += _differences(shown[k], got[k], f"{path}.{k}")
        return out
    if isinstance(shown, list) and isinstance(got, list):
        if len(shown) != len(got):
            return [f"{path}: {len(shown)} items shown, {len(got)} printed"]
        out = []
        for n, (a, b) in enumerate(zip(shown, got, strict=True)):
            out += _differences(a, b, f"{path}[{n}]")
        return out
    if shown != got or type(shown) is not type(got):
        return [f"{path}: shown {shown!r}, printed {got!r}"]
    return []


def _line_matches(shown: str, got: str) -> bool:
    if ELLIPSIS not in shown:
        return shown == got
    pattern = ".*?".join(re.escape(part) for part in shown.split(ELLIPSIS))
    return re.fullmatch(pattern, got, re.S) is not None


def compare(shown: str, printed: str) -> list[str]:
    """What differs between the output shown and the output printed, masked: JSON field by field
    (a whole JSON block, or line by line), text line by line; ``…`` in a shown line stands for
    any text (an abridged answer). Empty when they agree."""
    shown_m, printed_m = mask(shown).strip("\n"), mask(printed).strip("\n")
    whole_a, whole_b = _json(shown_m), _json(printed_m)
    if whole_a is not None and whole_b is not None and "\n" in shown_m.strip():
        return _differences(whole_a, whole_b, "$")
    a_lines, b_lines = shown_m.split("\n"), printed_m.split("\n")
    problems: list[str] = []
    if len(a_lines) != len(b_lines):
        problems.append(f"{len(a_lines)} lines shown, {len(b_lines)} printed")
    for n, (a, b) in enumerate(zip(a_lines, b_lines, strict=False), 1):
        ja, jb = _json(a), _json(b)
        if ja is not None and jb is not None and ELLIPSIS not in a:
            problems += [f"line {n}: {d}" for d in _differences(ja, jb, "$")]
        elif not _line_matches(a, b):
            problems.append(f"line {n}:\n  shown   {a}\n  printed {b}")
    return problems
