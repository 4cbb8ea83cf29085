"""The decision log partitioned by month (PostgreSQL), keyed by (decision_id, ts_us)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 06:00:00

On PostgreSQL the table is rebuilt partitioned by range of ``ts_us``, one partition per month in
Europe/Paris (pdp.adapters.sql.partitions), every existing row kept: a partition for each month
that holds rows and for this month and the next two, at most the latest ``MAX_MONTHS`` of them
(older rows go to the default partition, where the next pruning finds them). A partitioned
table's key must hold the partition column: the key becomes (decision_id, ts_us), on SQLite too,
so that the shipper's ``ON CONFLICT`` is the same on both.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

from pdp.adapters.sql import partitions
from pdp.adapters.sql.partitions import Month

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

AHEAD = 2  # months made ahead of today
MAX_MONTHS = 120

_COLUMNS = (
    'decision_id, ts_us, kind, organisation, "user", service, allowed, reason, revision, '
    "entry, allocataire"
)


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        with op.batch_alter_table("decision_log", recreate="always") as batch:
            batch.drop_constraint("pk_decision_log", type_="primary")
            batch.create_primary_key("pk_decision_log", ["decision_id", "ts_us"])
        return
    for index in ("ts_us", "organisation_ts", "user_ts", "allocataire_ts"):
        op.execute(f"DROP INDEX IF EXISTS ix_decision_log_{index}")
    op.execute("ALTER TABLE decision_log RENAME TO decision_log_unpartitioned")
    op.execute(
        "ALTER TABLE decision_log_unpartitioned RENAME CONSTRAINT pk_decision_log "
        "TO pk_decision_log_unpartitioned"
    )
    partitions.create_partitioned(conn)
    held = conn.execute(
        sa.text(
            "SELECT DISTINCT to_char(to_timestamp(ts_us / 1000000.0) AT TIME ZONE "
            "'Europe/Paris', 'YYYY-MM') FROM decision_log_unpartitioned"
        )
    ).scalars()
    this_month = Month.of(dt.datetime.now(dt.UTC).date())
    wanted = {this_month.plus(n) for n in range(AHEAD + 1)}
    wanted |= {Month(int(m[:4]), int(m[5:7])) for m in held}
    wanted_list = sorted(wanted)[-MAX_MONTHS:]
    partitions.ensure_months(conn, wanted_list)
    op.execute(
        f"INSERT INTO decision_log ({_COLUMNS}) SELECT {_COLUMNS} FROM decision_log_unpartitioned"
    )
    op.execute("DROP TABLE decision_log_unpartitioned")
    partitions.create_indexes(conn)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        with op.batch_alter_table("decision_log", recreate="always") as batch:
            batch.drop_constraint("pk_decision_log", type_="primary")
            batch.create_primary_key("pk_decision_log", ["decision_id"])
        return
    op.execute("ALTER TABLE decision_log RENAME TO decision_log_partitioned")
    op.execute(
        "ALTER TABLE decision_log_partitioned RENAME CONSTRAINT pk_decision_log "
        "TO pk_decision_log_partitioned"
    )
    for index in ("ts_us", "organisation_ts", "user_ts", "allocataire_ts"):
        op.execute(f"DROP INDEX IF EXISTS ix_decision_log_{index}")
    op.create_table(
        "decision_log",
        sa.Column("decision_id", sa.String(length=32), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("organisation", sa.String(length=64), nullable=True),
        sa.Column("user", sa.String(length=200), nullable=True),
        sa.Column("service", sa.String(length=40), nullable=True),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("allocataire", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("decision_id", name="pk_decision_log"),
    )
    # A decision id shipped twice into two months cannot be kept twice: the first stays.
    op.execute(
        f"INSERT INTO decision_log ({_COLUMNS}) SELECT {_COLUMNS} FROM decision_log_partitioned "
        "ON CONFLICT (decision_id) DO NOTHING"
    )
    op.execute("DROP TABLE decision_log_partitioned")
    partitions.create_indexes(conn)
