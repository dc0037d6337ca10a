"""Settlement reconciliation (issue 10): each partner's settlement cycles, the switch's books
per cycle (a movement booked once, so nothing moves between closed cycles), the partner's report
pages and their entries, and the reconciliation breaks worked as cases. A partial index on the
outcome rows of the payment history lets a cycle's close find what became final in its window.
On PostgreSQL the books leave half of each page free, so marking a cycle matched is an update
in place that touches no index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from switch.store.tables import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OUTCOME_STATES_SQL = "to_state IN ('COMPLETED', 'REJECTED', 'CANCELLED')"  # as switch/store/tables.py


def upgrade() -> None:
    op.create_table(
        "settlement_cycles",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("partner", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("opens_at", UtcDateTime(), nullable=False),
        sa.Column("cut_off", UtcDateTime(), nullable=False),
        sa.Column("settlement_date", sa.Date, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("reconciled_at", UtcDateTime(), nullable=True),
        sa.Column("books_count", sa.Integer, nullable=False),
        sa.Column("report_id", sa.String(35), nullable=True),
        sa.Column("report_pages", sa.Integer, nullable=False),
        sa.Column("report_last_page", sa.Integer, nullable=True),
        sa.Column("entries_count", sa.Integer, nullable=False),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_settlement_cycles_state_cut_off", "settlement_cycles", ["state", "cut_off"])
    op.create_index("ix_settlement_cycles_partner_cut_off", "settlement_cycles", ["partner", "cut_off"])

    op.create_table(
        "settlement_books",
        sa.Column("ref", sa.String(80), primary_key=True),
        sa.Column("cycle_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("uetr", sa.String(36), nullable=False),
        sa.Column("outbound", sa.Boolean, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("participant", sa.String(11), nullable=False),
        sa.Column("participant_amount_minor", sa.BigInteger, nullable=False),
        sa.Column("participant_currency", sa.String(3), nullable=False),
        sa.Column("fee_minor", sa.BigInteger, nullable=False),
        sa.Column("end_to_end_id", sa.String(35), nullable=True),
        sa.Column("tx_id", sa.String(35), nullable=True),
        sa.Column("message_id", sa.String(35), nullable=True),
        sa.Column("result", sa.String(20), nullable=True),
        postgresql_with={"fillfactor": 50},  # room on each page for the matching update (tables.py)
    )
    op.create_index("ix_settlement_books_cycle_ref", "settlement_books", ["cycle_id", "ref"])

    op.create_table(
        "settlement_reports",
        sa.Column("partner", sa.String(16), primary_key=True),
        sa.Column("report_id", sa.String(35), primary_key=True),
        sa.Column("page_no", sa.Integer, primary_key=True),
        sa.Column("message_id", sa.String(35), nullable=False),
        sa.Column("cycle_id", sa.String(64), nullable=False, index=True),
        sa.Column("last_page", sa.Boolean, nullable=False),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
    )

    op.create_table(
        "settlement_entries",
        sa.Column("cycle_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("report_id", sa.String(35), nullable=False),
        sa.Column("page_no", sa.Integer, nullable=False),
        sa.Column("entry_ref", sa.String(35), nullable=True),
        sa.Column("uetr", sa.String(36), nullable=True),
        sa.Column("end_to_end_id", sa.String(35), nullable=True),
        sa.Column("tx_id", sa.String(35), nullable=True),
        sa.Column("message_id", sa.String(35), nullable=True),
        sa.Column("is_return", sa.Boolean, nullable=False),
        sa.Column("outbound", sa.Boolean, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("booked", sa.Boolean, nullable=False),
        sa.Column("booking_date", sa.Date, nullable=True),
        sa.PrimaryKeyConstraint("cycle_id", "seq", name="pk_settlement_entries"),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "recon_breaks",
        sa.Column("id", sa.String(33), primary_key=True),
        sa.Column("cycle_id", sa.String(64), nullable=False, index=True),
        sa.Column("partner", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("uetr", sa.String(36), nullable=True, index=True),
        sa.Column("book_ref", sa.String(80), nullable=True),
        sa.Column("entry_seq", sa.BigInteger, nullable=True),
        sa.Column("entry_ref", sa.String(35), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("book_amount_minor", sa.BigInteger, nullable=True),
        sa.Column("entry_amount_minor", sa.BigInteger, nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("history", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_recon_breaks_state", "recon_breaks", ["state", "created_at"])

    op.create_index(
        "ix_payment_history_outcome_at", "payment_history", ["at"],
        sqlite_where=sa.text(OUTCOME_STATES_SQL), postgresql_where=sa.text(OUTCOME_STATES_SQL),
    )


def downgrade() -> None:
    op.drop_index("ix_payment_history_outcome_at", table_name="payment_history")
    op.drop_index("ix_recon_breaks_state", table_name="recon_breaks")
    op.drop_table("recon_breaks")
    op.drop_table("settlement_entries")
    op.drop_table("settlement_reports")
    op.drop_index("ix_settlement_books_cycle_ref", table_name="settlement_books")
    op.drop_table("settlement_books")
    op.drop_index("ix_settlement_cycles_partner_cut_off", table_name="settlement_cycles")
    op.drop_index("ix_settlement_cycles_state_cut_off", table_name="settlement_cycles")
    op.drop_table("settlement_cycles")
