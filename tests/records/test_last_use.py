"""Last use (R-CNIL-1, R-CNIL-2): the ``last_use`` table, its writer and its reader, on SQLite
and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import LastUse
from pdp.core.clock import paris_day
from pdp.core.masking import Masker
from pdp.records.last_use import LastUseWriter, last_uses, uses_of


def _check(
    user: str = "alice",
    grants: list[Any] | None = None,
    *,
    allowed: bool = True,
    ts: float | None = None,
    at: str | None = None,
    kind: str = "check",
) -> dict[str, Any]:
    ts = time.time() if ts is None else ts
    return {
        "decision_id": "x",
        "ts": ts,
        "kind": kind,
        "user": user,
        "allowed": allowed,
        "reason": "ALLOWED" if allowed else "NO_ROLE",
        "at": at if at is not None else paris_day(ts).isoformat(),
        "grants": [["g1", "cdap", "T18", "group"]] if grants is None else grants,
        "revision": 1,
    }


def test_uses_of_an_allowed_check_are_the_roles_its_grants_name() -> None:
    # R-CNIL-1: every (service, role) the grants name, for the day the check was made.
    ts = time.time()
    today = paris_day(ts)
    entry = _check(grants=[["g1", "cdap", "T18", "group"], ["g2", "cdap", "T2", "group"]], ts=ts)
    assert uses_of(entry) == {("alice", "cdap", "T18"): today, ("alice", "cdap", "T2"): today}


def test_denials_listings_and_other_days_are_not_uses() -> None:
    # R-CNIL-1: only allowed checks about the day they were made.
    ts = time.time()
    yesterday = (paris_day(ts) - dt.timedelta(days=1)).isoformat()
    assert uses_of(_check(allowed=False, grants=[])) == {}
    assert uses_of(_check(kind="permissions")) == {}
    assert uses_of(_check(ts=ts, at=yesterday)) == {}
    assert uses_of(_check(user="")) == {}


def test_writer_keeps_the_latest_day_and_reader_finds_it(db: Engine) -> None:
    # R-CNIL-1: an upsert per (login, service, role), whose day only moves forward.
    writer = LastUseWriter(db.dialect.name)
    d1, d2, d3 = dt.date(2026, 11, 1), dt.date(2026, 11, 20), dt.date(2026, 11, 10)
    with db.begin() as conn:
        writer.write(conn, {("alice", "cdap", "T18"): d1, ("bob", "afas", "declarer"): d1})
    with db.begin() as conn:
        writer.write(conn, {("alice", "cdap", "T18"): d2})
    with db.begin() as conn:
        writer.write(conn, {("alice", "cdap", "T18"): d3})  # older: ignored
    with Session(db) as session:
        assert last_uses(session, ["alice", "bob", "carol"]) == {
            ("alice", "cdap", "T18"): d2,
            ("bob", "afas", "declarer"): d1,
        }
        assert last_uses(session, ["carol"]) == {}
        assert last_uses(session, []) == {}


def test_reader_finds_logins_the_log_holds_as_pseudonyms(db: Engine) -> None:
    # R-CNIL-1: a login masked in the decision log is found through the masker.
    masker = Masker("email", "key")
    login = "jean.dupont@mairie.fr"
    pseudonym = masker.mask_field("user", login)
    assert pseudonym != login
    with db.begin() as conn:
        LastUseWriter(db.dialect.name).write(
            conn, {(pseudonym, "cdap", "T1"): dt.date(2026, 12, 1)}
        )
    with Session(db) as session:
        assert last_uses(session, [login], masker=masker) == {
            (login, "cdap", "T1"): dt.date(2026, 12, 1)
        }
        assert last_uses(session, [login]) == {}


def test_the_writer_skips_malformed_entries(db: Engine) -> None:
    # A last use never stops a decision from being logged.
    entries = [_check(), {"kind": "check", "allowed": True, "user": "x", "at": "garbage"}]
    with db.begin() as conn:
        LastUseWriter(db.dialect.name).write_entries(conn, entries)
    with Session(db) as session:
        rows = session.execute(select(LastUse.login, LastUse.service, LastUse.role)).all()
    assert [tuple(r) for r in rows] == [("alice", "cdap", "T18")]
