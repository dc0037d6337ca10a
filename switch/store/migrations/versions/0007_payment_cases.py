"""Exceptions (issue 9): one row per case (status enquiry, return, recall) about a payment,
with its own state, reason, amounts and the message that carries it; `ref` (the request as its
sender named it) is unique, so the same request again finds its case. Payment states grow past
12 characters (RECALL_PENDING, PARTIALLY_RETURNED): the state columns widen to 20.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from switch.store.tables import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_cases",
        sa.Column("id", sa.String(35), primary_key=True),
        sa.Column("uetr", sa.String(36), nullable=False, index=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("initiator", sa.String(12), nullable=False),
        sa.Column("counterpart", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason_code", sa.String(4), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("ref", sa.String(200), nullable=False, unique=True),
        sa.Column("message_id", sa.String(35), nullable=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=True),
        sa.Column("amount_ccy", sa.String(3), nullable=True),
        sa.Column("back_minor", sa.BigInteger, nullable=True),
        sa.Column("back_ccy", sa.String(3), nullable=True),
        sa.Column("rate", sa.String(24), nullable=True),
        sa.Column("rate_rule", sa.String(8), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=True),
        sa.Column("reply_by", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_payment_cases_due", "payment_cases", ["due_at"],
        sqlite_where=sa.text("due_at IS NOT NULL"), postgresql_where=sa.text("due_at IS NOT NULL"),
    )
    if op.get_bind().dialect.name != "sqlite":  # SQLite does not enforce VARCHAR lengths
        op.alter_column("payments", "state", type_=sa.String(20), existing_nullable=False)
        op.alter_column("payment_history", "from_state", type_=sa.String(20), existing_nullable=True)
        op.alter_column("payment_history", "to_state", type_=sa.String(20), existing_nullable=False)


def downgrade() -> None:
    op.drop_index("ix_payment_cases_due", table_name="payment_cases")
    op.drop_table("payment_cases")
