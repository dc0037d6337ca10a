"""Issue 12: the parties' compliance data (FATF R16): postal addresses and identification.
Placeholder: filled by the change that stores them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""

from __future__ import annotations

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
