"""Payments carry their direction: outbound (Bakong -> partner) or inbound (partner -> Bakong).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("direction", sa.String(8), nullable=False, server_default="outbound"))


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("direction")
