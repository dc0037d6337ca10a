"""FX quotes a participant asked for before its instruction (issue 11): the quote's terms, who
asked (and by which request), its expiry, and the payment that used it (set once, conditionally).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from switch.store.tables import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fx_quotes",
        sa.Column("quote_id", sa.String(40), primary_key=True),
        sa.Column("participant", sa.String(11), nullable=False),
        sa.Column("request_id", sa.String(35), nullable=True),
        sa.Column("corridor", sa.String(8), nullable=False),
        sa.Column("fixed_side", sa.String(6), nullable=False),
        sa.Column("source_minor", sa.BigInteger, nullable=False),
        sa.Column("source_ccy", sa.String(3), nullable=False),
        sa.Column("target_minor", sa.BigInteger, nullable=False),
        sa.Column("target_ccy", sa.String(3), nullable=False),
        sa.Column("fee_minor", sa.BigInteger, nullable=False),
        sa.Column("fee_bps", sa.Integer, nullable=False),
        sa.Column("mid_rate", sa.String(48), nullable=False),
        sa.Column("customer_rate", sa.String(24), nullable=False),
        sa.Column("spread_bps", sa.Integer, nullable=False),
        sa.Column("rounding_favours", sa.String(8), nullable=False),
        sa.Column("rate_source", sa.String(160), nullable=False),
        sa.Column("rate_as_of", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_by_uetr", sa.String(36), nullable=True),
        sa.Column("used_by_instruction", sa.String(35), nullable=True),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.UniqueConstraint("participant", "request_id", name="uq_fx_quotes_request"),
    )


def downgrade() -> None:
    op.drop_table("fx_quotes")
