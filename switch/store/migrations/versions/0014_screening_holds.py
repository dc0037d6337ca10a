"""Issue 12: screening holds: a held payment, its score and matched entry, and the operator's decision.
Placeholder: filled by the change that holds payments.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28
"""

from __future__ import annotations

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
