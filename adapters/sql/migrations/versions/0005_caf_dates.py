"""Opening and closing days of the Cafs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Cafs registered before this revision were open from the start: the earliest day any record of
# the store may carry.
OPEN_SINCE = "2000-01-01"


def upgrade() -> None:
    with op.batch_alter_table("cafs") as batch:
        batch.add_column(
            sa.Column("opens_on", sa.Date(), nullable=False, server_default=OPEN_SINCE)
        )
        batch.add_column(sa.Column("closes_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cafs") as batch:
        batch.drop_column("closes_on")
        batch.drop_column("opens_on")
