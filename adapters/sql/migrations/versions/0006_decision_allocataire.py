"""The allocataire number a logged check was about (pseudonymised)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decision_log") as batch:
        batch.add_column(sa.Column("allocataire", sa.String(32), nullable=True))
    op.create_index(
        "ix_decision_log_allocataire_ts", "decision_log", ["allocataire", "ts_us"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_decision_log_allocataire_ts", table_name="decision_log")
    with op.batch_alter_table("decision_log") as batch:
        batch.drop_column("allocataire")
