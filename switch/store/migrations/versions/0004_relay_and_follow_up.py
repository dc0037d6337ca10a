"""The outbox relay and the follow-up timers.

Outbox rows carry their delivery state: when the next attempt is due, which replica holds them
(a lease that expires, so survivors take over a dead replica's rows), the last error, whether an
attempt may have reached the partner (a resend then, never a reject), and the deadline after
which the switch stops retrying on its own. Payments carry when the switch next follows them up
(resend, timeout, inbound confirm deadline) and how often it has, plus the pacs.008 message that
carries them, so a resend is the stored message byte for byte.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from switch.store.tables import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("next_attempt_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text, nullable=True))
        batch.add_column(sa.Column("ambiguous", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("deadline_at", UtcDateTime(), nullable=True))
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("follow_up_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("follow_ups", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("message_id", sa.String(35), nullable=True))
    op.create_index(
        "ix_payments_follow_up",
        "payments",
        ["follow_up_at"],
        sqlite_where=sa.text("follow_up_at IS NOT NULL"),
        postgresql_where=sa.text("follow_up_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_payments_follow_up", table_name="payments")
    with op.batch_alter_table("payments") as batch:
        for column in ("message_id", "follow_ups", "follow_up_at"):
            batch.drop_column(column)
    with op.batch_alter_table("outbox") as batch:
        for column in ("deadline_at", "ambiguous", "last_error", "lease_until", "lease_owner", "next_attempt_at"):
            batch.drop_column(column)
