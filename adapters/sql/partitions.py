"""The decision log's monthly partitions on PostgreSQL, and its pruning on every backend.

On PostgreSQL, ``decision_log`` is partitioned by range of ``ts_us`` (migration 0008): one
partition per calendar month in Europe/Paris (R-TIME-1), named ``decision_log_pYYYYMM``, and a
default partition ``decision_log_default`` that catches an entry whose month has no partition yet
(an entry is never refused for want of one). Partitions are made ahead of time
(``ensure_months``); making one for a month that already has rows in the default partition moves
those rows into it first. Pruning a month drops its partition: no long ``DELETE``, no bloat.

On SQLite the table is one table; pruning deletes in batches, each in its own short transaction,
so that the shipper's inserts never wait long behind it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

TABLE = "decision_log"
DEFAULT_PARTITION = f"{TABLE}_default"
_NAME = re.compile(rf"^{TABLE}_p(\d{{4}})(\d{{2}})$")
_PARIS = ZoneInfo("Europe/Paris")  # the adapters layer reads no pdp.core; R-TIME-1's zone
DELETE_BATCH = 5000


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month in Europe/Paris."""

    year: int
    month: int

    @classmethod
    def of(cls, day: dt.date) -> Month:
        """The month ``day`` is in."""
        return cls(day.year, day.month)

    @classmethod
    def of_us(cls, ts_us: int) -> Month:
        """The month (Europe/Paris) of an instant in microseconds since the epoch."""
        moment = dt.datetime.fromtimestamp(ts_us / 1_000_000, dt.UTC).astimezone(_PARIS)
        return cls(moment.year, moment.month)

    def plus(self, months: int) -> Month:
        """The month ``months`` after this one (before it when negative)."""
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def first_day(self) -> dt.date:
        """Its first day."""
        return dt.date(self.year, self.month, 1)

    @property
    def start_us(self) -> int:
        """Midnight of its first day in Europe/Paris, in microseconds since the epoch."""
        start = dt.datetime(self.year, self.month, 1, tzinfo=_PARIS)
        return int(start.timestamp()) * 1_000_000

    @property
    def partition(self) -> str:
        """The name of its partition."""
        return f"{TABLE}_p{self.year:04d}{self.month:02d}"


def is_partitioned(conn: Connection) -> bool:
    """Whether ``decision_log`` is a partitioned table (PostgreSQL after migration 0008)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": TABLE}
    ).scalar()
    return kind == "p"


def months(conn: Connection) -> list[Month]:
    """The months that have a partition, oldest first (none on an unpartitioned table)."""
    if conn.dialect.name != "postgresql":
        return []
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": TABLE},
    ).scalars()
    found = [_NAME.match(name) for name in names]
    return sorted(Month(int(m.group(1)), int(m.group(2))) for m in found if m)


def create_partitioned(conn: Connection, table: str = TABLE) -> None:
    """Create ``table`` partitioned by month, with its default partition and no month yet."""
    conn.exec_driver_sql(
        f"CREATE TABLE {table} ("
        "decision_id VARCHAR(32) NOT NULL, ts_us BIGINT NOT NULL, kind VARCHAR(16) NOT NULL, "
        'organisation VARCHAR(64), "user" VARCHAR(200), service VARCHAR(40), '
        "allowed BOOLEAN NOT NULL, reason VARCHAR(40) NOT NULL, revision BIGINT NOT NULL, "
        "entry TEXT NOT NULL, allocataire VARCHAR(32), "
        f"CONSTRAINT pk_{table} PRIMARY KEY (decision_id, ts_us)"
        ") PARTITION BY RANGE (ts_us)"
    )
    conn.exec_driver_sql(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")


def create_indexes(conn: Connection) -> None:
    """The auditors' indexes (the model's), on the partitioned table and so on every part."""
    conn.exec_driver_sql(f"CREATE INDEX ix_{TABLE}_ts_us ON {TABLE} (ts_us)")
    for name, column in (("organisation", "organisation"), ("user", '"user"')):
        conn.exec_driver_sql(f"CREATE INDEX ix_{TABLE}_{name}_ts ON {TABLE} ({column}, ts_us)")
    conn.exec_driver_sql(f"CREATE INDEX ix_{TABLE}_allocataire_ts ON {TABLE} (allocataire, ts_us)")


def ensure_months(conn: Connection, wanted: list[Month]) -> list[Month]:
    """Create the partitions of the ``wanted`` months that have none; return those created.

    Rows of such a month already in the default partition move into the new partition in the
    same transaction (PostgreSQL refuses to attach a range the default partition holds rows of).
    """
    have = set(months(conn))
    created = []
    for month in sorted(set(wanted) - have):
        start, end = month.start_us, month.plus(1).start_us
        name = month.partition
        conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)")
        moved = f"FROM {DEFAULT_PARTITION} WHERE ts_us >= {start:d} AND ts_us < {end:d}"  # ints
        conn.exec_driver_sql(f"INSERT INTO {name} SELECT * {moved}")
        conn.exec_driver_sql(f"DELETE {moved}")
        conn.exec_driver_sql(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ({start:d}) TO ({end:d})"
        )
        created.append(month)
    return created


def drop_months_before(conn: Connection, cutoff: Month) -> list[Month]:
    """Drop the partitions of every month before ``cutoff``; return them."""
    dropped = [m for m in months(conn) if m < cutoff]
    for month in dropped:
        conn.exec_driver_sql(f"DROP TABLE {month.partition}")
    return dropped


def delete_batch_before(conn: Connection, ts_us: int, table: str = TABLE) -> int:
    """Delete at most ``DELETE_BATCH`` rows of ``table`` logged before ``ts_us``; return how
    many (0: none is left)."""
    result = conn.execute(
        text(
            f"DELETE FROM {table} WHERE (decision_id, ts_us) IN ("
            f"SELECT decision_id, ts_us FROM {table} WHERE ts_us < :ts LIMIT :n)"
        ),
        {"ts": ts_us, "n": DELETE_BATCH},
    )
    return int(result.rowcount or 0)


def count_before(conn: Connection, ts_us: int) -> int:
    """How many rows of the decision log were logged before ``ts_us``."""
    return int(
        conn.execute(
            text(f"SELECT count(*) FROM {TABLE} WHERE ts_us < :ts"), {"ts": ts_us}
        ).scalar_one()
    )
