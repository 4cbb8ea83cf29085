"""The decision log's writer: every entry written once as a JSON line, never blocking."""

from __future__ import annotations

import json
from pathlib import Path

from pdp.decision_log import JsonLinesLog


def test_entries_are_written_as_json_lines_in_order(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = JsonLinesLog(str(path), interval=0.01)
    for i in range(25_000):  # more than one chunk of 10,000
        log.record({"decision_id": f"{i:032x}", "user": "élodie", "allowed": i % 2 == 0})
    log.flush()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["decision_id"] for x in lines] == [f"{i:032x}" for i in range(25_000)]
    assert json.loads(lines[0]) == {"decision_id": "0" * 32, "user": "élodie", "allowed": True}
    assert log.dropped == 0 and log.failures == 0


def test_a_full_log_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    log = JsonLinesLog(str(tmp_path / "d.jsonl"), queue_size=10, interval=60.0)
    for i in range(15):
        log.record({"i": i})
    assert log.dropped == 5


def test_an_entry_that_cannot_be_encoded_is_counted_and_the_rest_written(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = JsonLinesLog(str(path), interval=0.01)
    log.record({"i": 1})
    log.record({1.5: "a float key is not JSON"})  # type: ignore[dict-item]
    log.record({"i": 2})
    log.flush()
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{"i": 1}, {"i": 2}]
    assert log.failures == 1


def test_off_records_nothing(tmp_path: Path) -> None:
    log = JsonLinesLog("off")
    log.record({"i": 1})
    log.flush()
    assert log.dropped == 0
