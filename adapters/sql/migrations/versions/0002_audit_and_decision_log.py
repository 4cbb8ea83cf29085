"""audit chain and decision log tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    with op.batch_alter_table("policy_revision") as batch:
        batch.add_column(
            sa.Column("audit_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("audit_hash", sa.String(length=64), nullable=False, server_default=GENESIS)
        )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("related", sa.String(length=200), nullable=True),
        sa.Column("organisation", sa.String(length=64), nullable=True),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_organisation_seq", "audit_log", ["organisation", "seq"])
    op.create_index("ix_audit_log_target_seq", "audit_log", ["target", "seq"])
    op.create_index("ix_audit_log_related_seq", "audit_log", ["related", "seq"])
    op.create_index("ix_audit_log_actor_seq", "audit_log", ["actor", "seq"])
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
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decision_log")),
    )
    op.create_index(op.f("ix_decision_log_ts_us"), "decision_log", ["ts_us"])
    op.create_index("ix_decision_log_organisation_ts", "decision_log", ["organisation", "ts_us"])
    op.create_index("ix_decision_log_user_ts", "decision_log", ["user", "ts_us"])


def downgrade() -> None:
    op.drop_table("decision_log")
    op.drop_table("audit_log")
    with op.batch_alter_table("policy_revision") as batch:
        batch.drop_column("audit_hash")
        batch.drop_column("audit_seq")
