"""The operator's toolbox (issue 11): indexes that keep the payment search (newest first, by
participant, by state, by reason) and a payment's messages (outbox rows by key, partner messages by when
they came) fast on a million rows, and the record of dead letters replayed, so each is replayed
once.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from switch.store.tables import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_payments_created", "payments", ["created_at", "uetr"])
    op.create_index("ix_payments_participant_created", "payments", ["participant", "created_at", "uetr"])
    op.create_index("ix_payments_state_created", "payments", ["state", "created_at", "uetr"])
    op.create_index(
        "ix_payments_reason_created",
        "payments",
        ["reason_code", "created_at", "uetr"],
        sqlite_where=sa.text("reason_code IS NOT NULL"),
        postgresql_where=sa.text("reason_code IS NOT NULL"),
    )
    op.create_index("ix_outbox_key", "outbox", ["key"])
    op.create_index("ix_inbound_messages_received", "inbound_messages", ["received_at"])
    op.create_index("ix_signed_messages_received", "signed_messages", ["received_at"])
    op.create_table(
        "dlq_replays",
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("dlq_partition", sa.Integer, primary_key=True),
        sa.Column("dlq_offset", sa.BigInteger, primary_key=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("operator", sa.String(128), nullable=False),
        sa.Column("target_topic", sa.String(255), nullable=False),
        sa.Column("target_partition", sa.Integer, nullable=True),
        sa.Column("target_offset", sa.BigInteger, nullable=True),
        sa.Column("claimed_at", UtcDateTime(), nullable=False),
        sa.Column("replayed_at", UtcDateTime(), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dlq_replays")
    op.drop_index("ix_signed_messages_received", "signed_messages")
    op.drop_index("ix_inbound_messages_received", "inbound_messages")
    op.drop_index("ix_outbox_key", "outbox")
    op.drop_index("ix_payments_reason_created", "payments")
    op.drop_index("ix_payments_state_created", "payments")
    op.drop_index("ix_payments_participant_created", "payments")
    op.drop_index("ix_payments_created", "payments")
