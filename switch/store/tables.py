"""SQLAlchemy Core tables. The Alembic migrations in `switch/store/migrations` create them;
this module is what queries are written against, and a test checks the two agree.

Money is integer minor units plus an ISO 4217 code; rates are decimal text. Times are UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    PrimaryKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator



class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, also on SQLite (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


metadata = MetaData()

# One row per participant instruction: the idempotency key and its fingerprint (the payment
# table does not repeat the key's uniqueness: this table holds it). `uetr` is the
# payment the instruction became; an instruction refused before a payment could be formed keeps
# its refusal here (reject_reason_code) so a resend replays it.
instructions = Table(
    "instructions",
    metadata,
    Column("participant", String(11), primary_key=True),
    Column("instruction_id", String(35), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("uetr", String(36), nullable=True),
    Column("reject_reason_code", String(4), nullable=True),
    Column("reject_reason", Text, nullable=True),
    Column("corridor", String(8), nullable=True),
    Column("source_ref", String(160), nullable=True),  # topic:partition:offset it was read from
    Column("created_at", UtcDateTime(), nullable=False),
    # the replay record (issue 11, `mekong config dry-run`): the instruction v1 as read, card
    # numbers tokenised, its origin and proxy resolution (switch/service/dry_run.py); NULL before 0012
    Column("replay", Text, nullable=True),
    Index("ix_instructions_created_at", "created_at"),
)

payments = Table(
    "payments",
    metadata,
    Column("uetr", String(36), primary_key=True),
    Column("participant", String(11), nullable=False),
    Column("instruction_id", String(35), nullable=False),
    Column("corridor", String(8), nullable=False),
    Column("partner", String(16), nullable=False),
    Column("debtor_name", String(140), nullable=False),
    Column("debtor_account", String(34), nullable=False),
    Column("debtor_agent", String(11), nullable=False),
    Column("creditor_name", String(140), nullable=False),
    Column("creditor_account", String(34), nullable=True),
    Column("creditor_proxy_type", String(8), nullable=True),
    Column("creditor_proxy", String(64), nullable=True),
    Column("creditor_agent", String(35), nullable=True),
    Column("instructed_minor", BigInteger, nullable=False),
    Column("instructed_ccy", String(3), nullable=False),
    Column("source_minor", BigInteger, nullable=False),
    Column("source_ccy", String(3), nullable=False),
    Column("target_minor", BigInteger, nullable=False),
    Column("target_ccy", String(3), nullable=False),
    Column("fee_minor", BigInteger, nullable=False),
    Column("fee_ccy", String(3), nullable=False),
    Column("fx_rate", String(24), nullable=True),
    Column("quote_id", String(64), nullable=True),
    Column("remittance", String(140), nullable=True),
    Column("state", String(20), nullable=False),
    Column("reason_code", String(4), nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("direction", String(8), nullable=False, server_default="outbound"),
    Column("origin", Text, nullable=True),
    # when the switch next looks at a payment without a final outcome (resend, timeout, an
    # inbound confirm deadline); NULL once final. Claimed by pushing it forward (a lease).
    Column("follow_up_at", UtcDateTime(), nullable=True),
    Column("follow_ups", Integer, nullable=False, server_default="0"),
    Column("message_id", String(35), nullable=True),  # the pacs.008 that carries it (outbound)
    # issue 12 (migration 0013): the parties' addresses and the debtor's identification, compact
    # JSON (sql_store.parties_json); NULL when the payment has none
    Column("parties", Text, nullable=True),
    Index("ix_payments_state_updated", "state", "updated_at"),
    # the operator's search (issue 11, migration 0011): newest first by (created_at, uetr), a
    # keyset page; per participant; per state; per rejection reason (only rows that have one)
    Index("ix_payments_created", "created_at", "uetr"),
    Index("ix_payments_participant_created", "participant", "created_at", "uetr"),
    Index("ix_payments_state_created", "state", "created_at", "uetr"),
    Index(
        "ix_payments_reason_created",
        "reason_code",
        "created_at",
        "uetr",
        sqlite_where=text("reason_code IS NOT NULL"),
        postgresql_where=text("reason_code IS NOT NULL"),
    ),
    Index(
        "ix_payments_follow_up",
        "follow_up_at",
        sqlite_where=text("follow_up_at IS NOT NULL"),
        postgresql_where=text("follow_up_at IS NOT NULL"),
    ),
)

# Append-only: one row per transition, never updated or deleted.
payment_history = Table(
    "payment_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("uetr", String(36), nullable=False, index=True),
    Column("from_state", String(20), nullable=True),
    Column("to_state", String(20), nullable=False),
    Column("reason_code", String(4), nullable=True),
    Column("detail", Text, nullable=True),
    Column("at", UtcDateTime(), nullable=False),
)

# Messages to send, written in the same transaction as the state change that caused them.
# kind: partner (ISO XML over HTTP), status / inbound (Kafka). `message_id` is derived from the
# payment and the attempt and fixed before the first send, so a resend is byte-identical.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("uetrs", Text, nullable=False),  # the payments the message carries, space-separated
    Column("key", String(64), nullable=True),
    Column("body", LargeBinary, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    # the relay's bookkeeping: next attempt due (NULL = now), the replica holding the row until
    # its lease runs out, the last failure, whether an attempt may have reached the partner
    # (then it is resent, never rejected), and when the relay stops retrying on its own
    Column("next_attempt_at", UtcDateTime(), nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("ambiguous", Boolean, nullable=False, server_default=false()),
    Column("deadline_at", UtcDateTime(), nullable=True),
    UniqueConstraint("kind", "message_id", name="uq_outbox_message"),
    # a payment's messages (issue 11, `mekong payments show`): partner rows are keyed by UETR,
    # status events by participant/instruction id
    Index("ix_outbox_key", "key"),
    # only unsent rows are ever looked up by kind: a partial index stays small
    Index(
        "ix_outbox_pending",
        "kind",
        "id",
        sqlite_where=text("sent_at IS NULL"),
        postgresql_where=text("sent_at IS NULL"),
    ),
)

# Exceptions (issue 9, migration 0007; switch/domain/case.py): one row per status enquiry,
# return or recall about a payment. `ref` names the request as its sender did (unique: the same
# request again finds its case); `due_at` is when the case timer looks at it again (chase, give
# up), claimed by pushing it forward like payments.follow_up_at.
payment_cases = Table(
    "payment_cases",
    metadata,
    Column("id", String(35), primary_key=True),
    Column("uetr", String(36), nullable=False, index=True),
    Column("kind", String(8), nullable=False),
    Column("initiator", String(12), nullable=False),
    Column("counterpart", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason_code", String(4), nullable=True),
    Column("detail", Text, nullable=True),
    Column("ref", String(200), nullable=False, unique=True),
    Column("message_id", String(35), nullable=True),
    Column("amount_minor", BigInteger, nullable=True),
    Column("amount_ccy", String(3), nullable=True),
    Column("back_minor", BigInteger, nullable=True),
    Column("back_ccy", String(3), nullable=True),
    Column("rate", String(24), nullable=True),
    Column("rate_rule", String(8), nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("due_at", UtcDateTime(), nullable=True),
    Column("reply_by", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("version", Integer, nullable=False),
    Index(
        "ix_payment_cases_due",
        "due_at",
        sqlite_where=text("due_at IS NOT NULL"),
        postgresql_where=text("due_at IS NOT NULL"),
    ),
)

# Outcome rows of the payment history (issue 10, migration 0008): a cycle's close finds the
# payments whose outcome became known in its window through this small index (one row per
# payment, not five), instead of reading the whole history every cycle.
OUTCOME_STATES_SQL = "to_state IN ('COMPLETED', 'REJECTED', 'CANCELLED')"
Index(
    "ix_payment_history_outcome_at",
    payment_history.c.at,
    sqlite_where=text(OUTCOME_STATES_SQL),
    postgresql_where=text(OUTCOME_STATES_SQL),
)

# Every ISO message a partner sent us, by its message id: the audit trail, and how a resend of
# the same pacs.002 is recognised and answered without being applied twice.
inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("partner", String(16), primary_key=True),
    Column("message_id", String(35), primary_key=True),
    Column("message_type", String(16), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Index("ix_inbound_messages_received", "received_at"),  # a payment's messages, by when they came (issue 11)
)

# Signed business messages a partner sent (iso20022/apphdr.py; migration 0006): by (partner,
# BizMsgIdr), the SHA-256 of the Document's exclusive C14N and the signed envelope as it first
# arrived. Another Document under a known BizMsgIdr is a replay (refused DU01); the same one
# again is a resend. Append-only, like inbound_messages.
signed_messages = Table(
    "signed_messages",
    metadata,
    Column("partner", String(16), primary_key=True),
    Column("biz_msg_id", String(35), primary_key=True),
    Column("message_type", String(35), nullable=False),
    Column("document_sha256", String(64), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Index("ix_signed_messages_received", "received_at"),  # a payment's messages, by when they came (issue 11)
)

# The audit trail (switch/service/audit.py): security refusals, operator actions, configuration
# loaded at start. Append-only and hash-chained: each row holds the hash of the row before
# (switch/domain/audit.py). No code path updates or deletes a row. Ids are given by the appender
# (the last id + 1, under a lock), not by a sequence, so a rolled-back append leaves no gap and a
# gap always means a deleted row.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("detail", Text, nullable=False),  # canonical JSON (sorted keys, compact)
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)


BOOKS_FILLFACTOR = 50  # percent of each settlement_books page filled at insert (PostgreSQL)

# Settlement reconciliation (issue 10, migration 0008; switch/domain/settlement.py, recon.py).
# One row per partner cycle: open -> closed (books fixed) -> reconciled. Report pages are counted
# on it as they arrive; `summary` is JSON text (findings per kind, positions).
settlement_cycles = Table(
    "settlement_cycles",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("partner", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("opens_at", UtcDateTime(), nullable=False),
    Column("cut_off", UtcDateTime(), nullable=False),
    Column("settlement_date", Date, nullable=False),
    Column("state", String(12), nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    Column("reconciled_at", UtcDateTime(), nullable=True),
    Column("books_count", Integer, nullable=False),
    Column("report_id", String(35), nullable=True),
    Column("report_pages", Integer, nullable=False),
    Column("report_last_page", Integer, nullable=True),
    Column("entries_count", Integer, nullable=False),
    Column("summary", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Index("ix_settlement_cycles_state_cut_off", "state", "cut_off"),
    Index("ix_settlement_cycles_partner_cut_off", "partner", "cut_off"),
)

# The switch's books: one row per movement (a payment by UETR, a return by "R:" + its pacs.004
# MsgId), booked into exactly one cycle (`ref` is the key: nothing moves between cycles).
# `result` stays NULL until matching: 'matched' or the break kind. Every row of a cycle is
# updated once when it is matched: on PostgreSQL half of each page is left free at insert
# (fillfactor 50) so that update stays on its page and touches no index (a HOT update; `result`
# is in no index): 1.5 s instead of 10 s for a million rows. `uetr` is not indexed: no query
# looks books up by it (a payment's ref is its UETR).
settlement_books = Table(
    "settlement_books",
    metadata,
    Column("ref", String(80), primary_key=True),
    Column("cycle_id", String(64), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("uetr", String(36), nullable=False),
    Column("outbound", Boolean, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("outcome", String(12), nullable=False),
    Column("participant", String(11), nullable=False),
    Column("participant_amount_minor", BigInteger, nullable=False),
    Column("participant_currency", String(3), nullable=False),
    Column("fee_minor", BigInteger, nullable=False),
    Column("end_to_end_id", String(35), nullable=True),
    Column("tx_id", String(35), nullable=True),
    Column("message_id", String(35), nullable=True),
    Column("result", String(20), nullable=True),
    # a cycle's books are read in ref order (keyset pages), and marked per cycle
    Index("ix_settlement_books_cycle_ref", "cycle_id", "ref"),
    postgresql_with={"fillfactor": BOOKS_FILLFACTOR},
)

# The partner's side: each report page as received (a page already stored is acknowledged and
# ignored: a report sent twice) and its entries, written in the same transaction.
settlement_reports = Table(
    "settlement_reports",
    metadata,
    Column("partner", String(16), primary_key=True),
    Column("report_id", String(35), primary_key=True),
    Column("page_no", Integer, primary_key=True),
    Column("message_id", String(35), nullable=False),
    Column("cycle_id", String(64), nullable=False, index=True),
    Column("last_page", Boolean, nullable=False),
    Column("entries", Integer, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)

# seq = page_no * 10**7 + the entry's position on its page: report order, and the entry's name
# in a break. Entries are only ever read by cycle in seq order (the primary key); `uetr` is not
# indexed: a random key in a second index made storing a million entries several times slower.
settlement_entries = Table(
    "settlement_entries",
    metadata,
    Column("cycle_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("report_id", String(35), nullable=False),
    Column("page_no", Integer, nullable=False),
    Column("entry_ref", String(35), nullable=True),
    Column("uetr", String(36), nullable=True),
    Column("end_to_end_id", String(35), nullable=True),
    Column("tx_id", String(35), nullable=True),
    Column("message_id", String(35), nullable=True),
    Column("is_return", Boolean, nullable=False),
    Column("outbound", Boolean, nullable=False),
    Column("amount_minor", BigInteger, nullable=True),  # NULL: not a whole number of minor units
    Column("currency", String(3), nullable=False),
    Column("booked", Boolean, nullable=False),
    Column("booking_date", Date, nullable=True),
    PrimaryKeyConstraint("cycle_id", "seq", name="pk_settlement_entries"),
    sqlite_with_rowid=False,  # the rows live in the primary key's tree, in report order
)

# Reconciliation breaks, each a case (switch/domain/recon.py Break): `history` is JSON text, a
# list of {at, state, actor, text}; every update checks `version`.
recon_breaks = Table(
    "recon_breaks",
    metadata,
    Column("id", String(33), primary_key=True),
    Column("cycle_id", String(64), nullable=False, index=True),
    Column("partner", String(16), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("state", String(16), nullable=False),
    Column("action", String(16), nullable=False),
    Column("uetr", String(36), nullable=True, index=True),
    Column("book_ref", String(80), nullable=True),
    Column("entry_seq", BigInteger, nullable=True),
    Column("entry_ref", String(35), nullable=True),
    Column("currency", String(3), nullable=True),
    Column("book_amount_minor", BigInteger, nullable=True),
    Column("entry_amount_minor", BigInteger, nullable=True),
    Column("detail", Text, nullable=False),
    Column("note", Text, nullable=True),
    Column("history", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("version", Integer, nullable=False),
    # the open ones are listed and counted far more often than the closed ones
    Index("ix_recon_breaks_state", "state", "created_at"),
)

# FX quotes a participant asked for before its instruction (issue 11, migration 0009): the terms
# fixed together (amounts, rates, fee, source, expiry) and, once an instruction used it, which
# payment did. `used_by_uetr` is set once, by a conditional update that also checks `version`, in
# the transaction that admits the payment: a second instruction with the quote finds it used,
# on any replica. (participant, request_id) is the Kafka request that asked for it: a redelivered
# request answers the same quote.
fx_quotes = Table(
    "fx_quotes",
    metadata,
    Column("quote_id", String(40), primary_key=True),
    Column("participant", String(11), nullable=False),
    Column("request_id", String(35), nullable=True),
    Column("corridor", String(8), nullable=False),
    Column("fixed_side", String(6), nullable=False),
    Column("source_minor", BigInteger, nullable=False),
    Column("source_ccy", String(3), nullable=False),
    Column("target_minor", BigInteger, nullable=False),
    Column("target_ccy", String(3), nullable=False),
    Column("fee_minor", BigInteger, nullable=False),
    Column("fee_bps", Integer, nullable=False),
    Column("mid_rate", String(48), nullable=False),
    Column("customer_rate", String(24), nullable=False),
    Column("spread_bps", Integer, nullable=False),
    Column("rounding_favours", String(8), nullable=False),
    Column("rate_source", String(160), nullable=False),
    Column("rate_as_of", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_by_uetr", String(36), nullable=True),
    Column("used_by_instruction", String(35), nullable=True),
    Column("used_at", UtcDateTime(), nullable=True),
    Column("version", Integer, nullable=False),
    UniqueConstraint("participant", "request_id", name="uq_fx_quotes_request"),
)

# corridor and partner controls changed at run time (issue 11): one row per corridor an operator
# disabled or enabled, per partner paused or resumed; no row: as the configuration says
corridor_controls = Table(
    "corridor_controls",
    metadata,
    Column("kind", String(16), nullable=False),  # corridor | partner
    Column("subject", String(32), nullable=False),  # corridor id | partner id
    Column("off", Boolean, nullable=False),  # disabled | paused
    Column("reason", Text, nullable=False),
    Column("changed_by", String(128), nullable=False),
    Column("changed_at", UtcDateTime(), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("kind", "subject", name="pk_corridor_controls"),
)

# what each debtor sent through each corridor each day (issue 11), per source currency: the
# per-debtor daily limit is decided against this row, locked in the admission transaction
debtor_daily_usage = Table(
    "debtor_daily_usage",
    metadata,
    Column("corridor", String(8), nullable=False),
    Column("debtor", String(32), nullable=False),  # the debtor's Bakong account (name@participant)
    Column("day", Date, nullable=False),  # in corridors.toml usage_timezone
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("payments", Integer, nullable=False),
    PrimaryKeyConstraint("corridor", "debtor", "day", "currency", name="pk_debtor_daily_usage"),
)

# Dead letters an operator replayed (issue 11, migration 0011): one row per dead-letter record
# (its topic, partition and offset), so a record is replayed once. `state` is 'claimed' while the
# replay is being published (a claim older than limits.dlq_replay_claim_s_max was left by a crash
# and may be taken again) and 'replayed' once the broker took it, with where it went.
dlq_replays = Table(
    "dlq_replays",
    metadata,
    Column("topic", String(255), primary_key=True),
    Column("dlq_partition", Integer, primary_key=True),
    Column("dlq_offset", BigInteger, primary_key=True),
    Column("state", String(12), nullable=False),
    Column("operator", String(128), nullable=False),
    Column("target_topic", String(255), nullable=False),
    Column("target_partition", Integer, nullable=True),
    Column("target_offset", BigInteger, nullable=True),
    Column("claimed_at", UtcDateTime(), nullable=False),
    Column("replayed_at", UtcDateTime(), nullable=True),
    Column("version", Integer, nullable=False),
)

# Screening holds (issue 12, migration 0014): one row per payment the screening held, with why
# (the best hit, or the screening unavailable) and the operator's decision once made. `version`
# makes two operators deciding at once conflict (one wins); open holds are found by
# (decision IS NULL, held_at).
screening_holds = Table(
    "screening_holds",
    metadata,
    Column("uetr", String(36), primary_key=True),
    Column("direction", String(8), nullable=False),
    Column("held_at", UtcDateTime(), nullable=False),
    Column("deadline_at", UtcDateTime(), nullable=False),
    Column("outcome", String(12), nullable=False),  # hit | unavailable
    Column("score", Float, nullable=True),
    Column("entry_id", String(255), nullable=True),
    Column("entry_name", Text, nullable=True),
    Column("matched_name", Text, nullable=True),
    Column("role", String(12), nullable=True),
    Column("datasets", Text, nullable=False),  # space-separated
    Column("list_version", String(128), nullable=False),
    Column("detail", Text, nullable=True),
    Column("decision", String(12), nullable=True),  # NULL (open) | released | rejected | expired
    Column("decided_by", String(128), nullable=True),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("note", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Index("ix_screening_holds_open", "decision", "held_at"),
)
