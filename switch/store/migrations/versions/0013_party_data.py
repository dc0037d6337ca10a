"""Issue 12: the parties' compliance data (FATF R16): postal addresses and identification.
One nullable text column on payments, `parties`: compact JSON of the debtor's address and
identification and the creditor's address (switch/store/sql_store.py). A payment written before
it, or without any of them, has NULL there and reads as before.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("parties", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("parties")
