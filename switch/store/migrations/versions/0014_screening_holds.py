"""Issue 12: screening holds: a held payment, its score and matched entry, and the operator's decision.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from switch.store.tables import UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "screening_holds",
        sa.Column("uetr", sa.String(36), primary_key=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("held_at", UtcDateTime(), nullable=False),
        sa.Column("deadline_at", UtcDateTime(), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("entry_id", sa.String(255), nullable=True),
        sa.Column("entry_name", sa.Text, nullable=True),
        sa.Column("matched_name", sa.Text, nullable=True),
        sa.Column("role", sa.String(12), nullable=True),
        sa.Column("datasets", sa.Text, nullable=False),
        sa.Column("list_version", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("decision", sa.String(12), nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_screening_holds_open", "screening_holds", ["decision", "held_at"])


def downgrade() -> None:
    op.drop_index("ix_screening_holds_open", "screening_holds")
    op.drop_table("screening_holds")
