"""What a config dry-run replays (issue 11): each instruction keeps a compact replay record, the
instruction v1 it was read as (card numbers already tokenised), its pain.001 origin and the proxy
resolution admission used, written in the same insert as its idempotency key; and an index on
the time it was received, so that a period is read without scanning every instruction.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instructions") as batch:
        batch.add_column(sa.Column("replay", sa.Text, nullable=True))
    op.create_index("ix_instructions_created_at", "instructions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_instructions_created_at", table_name="instructions")
    with op.batch_alter_table("instructions") as batch:
        batch.drop_column("replay")
