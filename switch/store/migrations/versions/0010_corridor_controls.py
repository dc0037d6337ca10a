"""Corridor and partner controls changed at run time, and each debtor's daily usage per corridor
(issue 11): an operator's disable / pause with who, when and why (a row per subject, its version
deciding concurrent changes), and the amount a debtor sent through a corridor each day, upserted
in the admission transaction so that the daily limit is exact across replicas.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from switch.store.tables import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "corridor_controls",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(32), nullable=False),
        sa.Column("off", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("kind", "subject", name="pk_corridor_controls"),
    )
    op.create_table(
        "debtor_daily_usage",
        sa.Column("corridor", sa.String(8), nullable=False),
        sa.Column("debtor", sa.String(32), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("payments", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("corridor", "debtor", "day", "currency", name="pk_debtor_daily_usage"),
    )


def downgrade() -> None:
    op.drop_table("debtor_daily_usage")
    op.drop_table("corridor_controls")
