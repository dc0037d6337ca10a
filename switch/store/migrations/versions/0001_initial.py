"""Initial schema: instructions, payments, history, outbox, inbound messages.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "instructions",
        sa.Column("participant", sa.String(11), primary_key=True),
        sa.Column("instruction_id", sa.String(35), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("uetr", sa.String(36), nullable=True),
        sa.Column("reject_reason_code", sa.String(4), nullable=True),
        sa.Column("reject_reason", sa.Text, nullable=True),
        sa.Column("corridor", sa.String(8), nullable=True),
        sa.Column("source_ref", sa.String(160), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "payments",
        sa.Column("uetr", sa.String(36), primary_key=True),
        sa.Column("participant", sa.String(11), nullable=False),
        sa.Column("instruction_id", sa.String(35), nullable=False),
        sa.Column("corridor", sa.String(8), nullable=False),
        sa.Column("partner", sa.String(16), nullable=False),
        sa.Column("debtor_name", sa.String(140), nullable=False),
        sa.Column("debtor_account", sa.String(34), nullable=False),
        sa.Column("debtor_agent", sa.String(11), nullable=False),
        sa.Column("creditor_name", sa.String(140), nullable=False),
        sa.Column("creditor_account", sa.String(34), nullable=True),
        sa.Column("creditor_proxy_type", sa.String(8), nullable=True),
        sa.Column("creditor_proxy", sa.String(64), nullable=True),
        sa.Column("creditor_agent", sa.String(35), nullable=True),
        sa.Column("instructed_minor", sa.BigInteger, nullable=False),
        sa.Column("instructed_ccy", sa.String(3), nullable=False),
        sa.Column("source_minor", sa.BigInteger, nullable=False),
        sa.Column("source_ccy", sa.String(3), nullable=False),
        sa.Column("target_minor", sa.BigInteger, nullable=False),
        sa.Column("target_ccy", sa.String(3), nullable=False),
        sa.Column("fee_minor", sa.BigInteger, nullable=False),
        sa.Column("fee_ccy", sa.String(3), nullable=False),
        sa.Column("fx_rate", sa.String(24), nullable=True),
        sa.Column("quote_id", sa.String(64), nullable=True),
        sa.Column("remittance", sa.String(140), nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("reason_code", sa.String(4), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_payments_state_updated", "payments", ["state", "updated_at"])
    op.create_table(
        "payment_history",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("uetr", sa.String(36), nullable=False),
        sa.Column("from_state", sa.String(12), nullable=True),
        sa.Column("to_state", sa.String(12), nullable=False),
        sa.Column("reason_code", sa.String(4), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("at", _TS, nullable=False),
    )
    op.create_index("ix_payment_history_uetr", "payment_history", ["uetr"])
    op.create_table(
        "outbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("uetrs", sa.Text, nullable=False),
        sa.Column("key", sa.String(64), nullable=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("sent_at", _TS, nullable=True),
        sa.UniqueConstraint("kind", "message_id", name="uq_outbox_message"),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["kind", "id"],
        sqlite_where=sa.text("sent_at IS NULL"),
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.create_table(
        "inbound_messages",
        sa.Column("partner", sa.String(16), primary_key=True),
        sa.Column("message_id", sa.String(35), primary_key=True),
        sa.Column("message_type", sa.String(16), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("inbound_messages")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_payment_history_uetr", table_name="payment_history")
    op.drop_table("payment_history")
    op.drop_index("ix_payments_state_updated", table_name="payments")
    op.drop_table("payments")
    op.drop_table("instructions")
