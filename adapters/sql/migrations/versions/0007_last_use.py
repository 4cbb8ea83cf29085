"""The last day each (user, service, role) was used, kept apart from the decision log

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "last_use",
        sa.Column("login", sa.String(200), nullable=False),
        sa.Column("service", sa.String(40), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("login", "service", "role", name="pk_last_use"),
    )


def downgrade() -> None:
    op.drop_table("last_use")
