"""The administrative actions: the enumeration ``Action`` and the table of rights
``policies/admin_policy.csv`` name the same actions, checked when the table is loaded at
start-up (R-ADM-5): an action one of them lacks stops the start, naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdp.core.errors import ConfigurationError
from pdp.engine.actions import Action
from pdp.engine.rules import load_rights
from pdp.policies import ADMIN_POLICY_PATH


def _table(tmp_path: Path, text: str) -> Path:
    """A copy of the table of rights with ``text`` as its content."""
    path = tmp_path / "admin_policy.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _shipped() -> list[str]:
    return ADMIN_POLICY_PATH.read_text(encoding="utf-8").splitlines()


def test_shipped_table_names_exactly_the_actions() -> None:
    rights = load_rights()
    assert rights.actions == frozenset(Action)
    assert {r.action.value for r in rights.rules} == {a.value for a in Action}


def test_action_the_enumeration_lacks_stops_the_start(tmp_path: Path) -> None:
    lines = [*_shipped(), "p, operator, platform, group.fly, domain"]
    path = _table(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ConfigurationError, match=rf"'group\.fly' \(line {len(lines)}\)"):
        load_rights(path)


def test_member_no_line_names_stops_the_start(tmp_path: Path) -> None:
    lines = [line for line in _shipped() if "log.read" not in line]
    path = _table(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ConfigurationError, match=r"no line names: log\.read$"):
        load_rights(path)


def test_renamed_action_names_both_sides(tmp_path: Path) -> None:
    text = ADMIN_POLICY_PATH.read_text(encoding="utf-8").replace("group.close", "group.shut")
    with pytest.raises(ConfigurationError) as caught:
        load_rights(_table(tmp_path, text))
    message = str(caught.value)
    assert "'group.shut' (line" in message
    assert "no line names: group.close" in message
