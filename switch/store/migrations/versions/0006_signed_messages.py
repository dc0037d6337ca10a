"""Signed business messages (issue 8 item 2): one row per (partner, BizMsgIdr) the switch has
taken from a partner, with the SHA-256 of the Document it carried and the signed envelope as it
first arrived. The same BizMsgIdr with the same Document again is a resend (it goes on to the
duplicate handling of inbound_messages); with another Document it is refused (DU01). The
envelope is what makes the partner's message attributable to its key later (non-repudiation).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from switch.store.tables import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signed_messages",
        sa.Column("partner", sa.String(16), primary_key=True),
        sa.Column("biz_msg_id", sa.String(35), primary_key=True),
        sa.Column("message_type", sa.String(35), nullable=False),
        sa.Column("document_sha256", sa.String(64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("signed_messages")
