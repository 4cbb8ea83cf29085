"""Access reviews (revue des habilitations): campaigns and their items

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("opened_by", sa.String(120), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("remove_unreviewed", sa.Boolean(), nullable=False),
        sa.Column("organisations", sa.Text(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("closed_by", sa.String(120), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_campaigns")),
    )
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("organisation", sa.String(64), nullable=False),
        sa.Column("login", sa.String(120), nullable=False),
        sa.Column("group_code", sa.String(64), nullable=False),
        sa.Column("membership_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(120), nullable=True),
        sa.Column("reviewer_kind", sa.String(16), nullable=False),
        sa.Column("rights", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("decided_by", sa.String(120), nullable=True),
        sa.Column("decided_on", sa.Date(), nullable=True),
        sa.Column("comment", sa.String(500), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["review_campaigns.id"],
            name=op.f("fk_review_items_campaign_id_review_campaigns"),
        ),
        sa.ForeignKeyConstraint(
            ["membership_id"],
            ["memberships.id"],
            name=op.f("fk_review_items_membership_id_memberships"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
    )
    op.create_index(
        "ix_review_items_campaign_reviewer", "review_items", ["campaign_id", "reviewer"]
    )
    op.create_index(
        "ix_review_items_campaign_organisation", "review_items", ["campaign_id", "organisation"]
    )


def downgrade() -> None:
    op.drop_index("ix_review_items_campaign_organisation", table_name="review_items")
    op.drop_index("ix_review_items_campaign_reviewer", table_name="review_items")
    op.drop_table("review_items")
    op.drop_table("review_campaigns")
