"""The change log names what a change touched within its organisation

A row with a ``scope`` names part of the organisation: "user" (``subject_id`` is the user: their
row, memberships and Afas profiles), "group" (``subject_id`` is the group: its row, roles and
managers) or "structure" (the organisation's own rows: itself, its subscriptions, partner
admins, groups, their roles and managers; not its users). Rows written
before this migration, and rows without a scope, still mean "the whole organisation".

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policy_changes") as batch:
        batch.add_column(sa.Column("scope", sa.String(16), nullable=True))
        batch.add_column(sa.Column("subject_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policy_changes") as batch:
        batch.drop_column("subject_id")
        batch.drop_column("scope")
