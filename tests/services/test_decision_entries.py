"""The decision log's entry (R-DEC-3: the reason and the grant path of every decision; R-ADM-7:
every administrative question): every kind of decision leaves an entry with the fields
``pdp.records.decision_log.entry.Entry`` declares, no others, and the kind's own details; the
shipper's row of an entry names each column (cut to its size in the table, whole in ``entry``).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pdp.adapters.sql.models import DecisionRecord
from pdp.records.decision_log.entry import Details, Entry, Row

from support.actors import Api

HEAD = set(Entry.__required_keys__)
DECLARED = HEAD | set(Details.__annotations__)

# Each kind's details, beside the head every entry has.
DETAILS = {
    "check": {"service", "role", "caf", "at", "grants", "eval_us"},
    "admin": {"action", "target", "eval_us"},
    "permissions": {"at", "grants"},
    "service_users": {"service", "role", "at", "count"},
}


def _logged(api: Api, decision_id: str) -> dict[str, Any]:
    assert api.log is not None
    entry = next(e for e in api.log.entries if e["decision_id"] == decision_id)
    return dict(entry)


def test_r_dec_3_r_adm_7_each_kind_logs_its_declared_fields(api: Api) -> None:
    check = api.check("chloe.roux", "afas", request_id="req-entry-1")
    entry = _logged(api, check["decision_id"])
    assert set(entry) == HEAD | DETAILS["check"]
    assert entry["kind"] == "check" and entry["request_id"] == "req-entry-1"
    assert entry["allowed"] is check["allowed"]
    assert entry["reason"] == check["reason"]["code"]

    admin = api.admin_check("bruno.petit", "user.edit", "user:chloe.roux")
    entry = _logged(api, admin["decision_id"])
    assert set(entry) == HEAD | DETAILS["admin"]
    assert (entry["kind"], entry["action"], entry["target"]) == (
        "admin",
        "user.edit",
        "user:chloe.roux",
    )

    listing = api.get(None, "/v1/users/chloe.roux/permissions")
    entry = _logged(api, listing["decision_id"])
    assert set(entry) == HEAD | DETAILS["permissions"]
    assert entry["organisation"] == "mairie-montreuil"

    users = api.get(None, "/v1/services/afas/users", organisation="mairie-montreuil")
    entry = _logged(api, users["decision_id"])
    assert set(entry) == HEAD | DETAILS["service_users"]
    # A listing of a service's users belongs to the organisation asked, and to no user.
    assert (entry["organisation"], entry["user"]) == ("mairie-montreuil", None)
    assert entry["count"] == len(users["users"])

    assert api.log is not None
    for logged in api.log.entries:
        assert HEAD <= set(logged) <= DECLARED, logged


def test_r_dec_3_row_names_each_column_and_cuts_to_its_size() -> None:
    entry = {
        "decision_id": "0" * 40,
        "ts": 1_700_000_000.25,
        "kind": "check",
        "client": "demo",
        "request_id": None,
        "organisation": "o" * 100,
        "user": "u" * 300,
        "service": "afas",
        "allowed": True,
        "reason": "ALLOWED",
        "revision": 7,
    }
    line = orjson.dumps(entry)
    row = Row.of(line)
    assert Row._fields == tuple(c.name for c in DecisionRecord.__table__.columns)
    assert row.decision_id == "0" * 32
    assert row.ts_us == 1_700_000_000_250_000
    assert (len(row.organisation or ""), len(row.user or "")) == (64, 200)
    assert (row.kind, row.service, row.allowed, row.reason, row.revision) == (
        "check",
        "afas",
        True,
        "ALLOWED",
        7,
    )
    assert orjson.loads(row.entry) == entry  # the entry itself is kept whole


@pytest.mark.parametrize("line", [b"not json", b"{}", b'{"decision_id": "x", "ts": 1}'])
def test_r_dec_3_a_line_that_is_no_entry_makes_no_row(line: bytes) -> None:
    with pytest.raises((orjson.JSONDecodeError, KeyError)):
        Row.of(line)
