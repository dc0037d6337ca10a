"""The ports the handlers depend on (STYLE §1, DESIGN "Inside the switch: one bus, ports, a
relay"). A handler sees a unit of work only through `UnitOfWork`: one transaction, batch methods,
nothing about SQL. `switch/store/sql_store.py` implements it on SQLAlchemy (SQLite, PostgreSQL),
`tests/fakes.py` in memory; a Protocol is structural, so neither names it, and a unit test checks
that both provide every method below with the same signature.

The record types the methods exchange are defined here, with the port: the handlers import
nothing from the SQL module, and the SQL store implements the port (it imports from here).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from fx.quote import FxQuote
from switch.domain.audit import AuditEntry, NewAuditEntry
from switch.domain.case import Case
from switch.domain.corridor_rules import Control
from switch.domain.idempotency import StoredKey
from switch.domain.payment import FINAL_STATES, HistoryEntry, Payment, PaymentState
from switch.domain.recon import BookEntry, Break, StatementEntry
from switch.domain.screening import Subject, Verdict
from switch.domain.settlement import SettlementCycle

__all__ = [
    "DeliveryFailure", "DlqReplay", "InstructionRecord", "Lease", "MessageRecord", "OutboxMessage", "PaymentQuery", "Screener",
    "ScreeningHold", "Store", "StoredQuote", "UnitOfWork", "UsageKey", "stored_key",
]


class UsageKey(NamedTuple):
    """One debtor's usage of one corridor on one day in one source currency (issue 11)."""

    corridor: str
    debtor: str  # the debtor's Bakong account
    day: date
    currency: str


@dataclass(frozen=True, slots=True)
class InstructionRecord:
    participant: str
    instruction_id: str
    fingerprint: str
    uetr: str | None
    reject_reason_code: str | None
    reject_reason: str | None
    corridor: str | None
    source_ref: str | None
    created_at: datetime
    # what `mekong config dry-run` replays (issue 11): JSON, see switch/service/dry_run.py
    replay: str | None = None


@dataclass(frozen=True, slots=True)
class StoredQuote:
    """An FX quote a participant asked for first (issue 11), as stored: its terms, who asked it
    for which corridor (and by which Kafka request, if any), and the payment that used it."""

    quote: FxQuote
    participant: str
    corridor: str
    request_id: str | None = None
    used_by_uetr: str | None = None
    used_by_instruction: str | None = None
    used_at: datetime | None = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    kind: str  # partner | status | inbound
    destination: str  # partner id or Kafka topic
    message_id: str
    uetrs: tuple[str, ...]  # the payments the message is about (a pacs.008 may carry several)
    key: str | None
    body: bytes
    created_at: datetime
    id: int | None = None
    attempts: int = 0
    # the relay stops retrying on its own after this (a pacs.008: the partner's SLA); None: retry
    # until delivered (events, answers to partners)
    deadline_at: datetime | None = None
    ambiguous: bool = False  # an earlier attempt may have reached the partner
    lease_until: datetime | None = None  # this replica holds the row until then


@dataclass(frozen=True, slots=True)
class Lease:
    """Which replica holds outbox rows it writes, and for how long: rows written by a unit of
    work are leased to the writing replica's relay, which delivers them right after the commit;
    if it dies first, the lease runs out and any replica's relay takes them."""

    owner: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """One failed delivery round of an outbox row: retry at `retry_at`, or, with `retry_at`
    None, stop (the relay gave up on it: refused, or past its deadline)."""

    outbox_id: int
    error: str
    ambiguous: bool
    retry_at: datetime | None


@dataclass(frozen=True, slots=True)
class PaymentQuery:
    """An operator's payment search (issue 11): every filter given must hold; newest first by
    (created_at, uetr); `before` is the keyset cursor, the last row of the previous page."""

    limit: int
    state: PaymentState | None = None
    corridor: str | None = None
    participant: str | None = None
    partner: str | None = None
    reason_code: str | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    before: tuple[datetime, str] | None = None  # (created_at, uetr) of the last row already listed


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """An ISO message (or status event) sent or received about a payment, as stored: an outbox
    row (sent), a partner's message (received) or its signed envelope (received, signed)."""

    direction: str  # sent | received
    kind: str  # partner | status | inbound (outbox rows); partner | signed (received)
    counterpart: str  # the partner, or the Kafka topic
    message_id: str
    at: datetime  # written (sent) or received
    delivered_at: datetime | None  # sent: when the relay delivered it (or gave up); None: pending
    attempts: int
    body: bytes


@dataclass(frozen=True, slots=True)
class DlqReplay:
    """A dead letter an operator replayed (issue 11): claimed while its replay is being
    published, replayed once the broker took it (then where it went)."""

    topic: str  # the dead-letter topic
    partition: int
    offset: int
    state: str  # claimed | replayed
    operator: str
    target_topic: str
    claimed_at: datetime
    target_partition: int | None = None
    target_offset: int | None = None
    replayed_at: datetime | None = None
    version: int = 1

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class ScreeningHold:
    """A payment held by the screening (issue 12), as stored: why (the best hit, or the
    screening unavailable), until when an operator may decide, and the decision once made."""

    uetr: str
    direction: str  # outbound | inbound
    held_at: datetime
    deadline_at: datetime
    outcome: str  # hit | unavailable
    score: float | None = None
    entry_id: str | None = None
    entry_name: str | None = None
    matched_name: str | None = None
    role: str | None = None  # debtor | creditor
    datasets: tuple[str, ...] = ()
    list_version: str = ""
    detail: str | None = None  # unavailable: why
    decision: str | None = None  # None (open) | released | rejected | expired
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    version: int = 1

    @property
    def open(self) -> bool:
        return self.decision is None


def stored_key(record: InstructionRecord, payment: Payment | None) -> StoredKey:
    final = record.uetr is None or (payment is not None and payment.state in FINAL_STATES)
    return StoredKey(fingerprint=record.fingerprint, final=final)




class UnitOfWork(Protocol):
    """One transaction: everything a handler reads and writes (state, history, idempotency
    keys, outbox, inbound messages) commits together or not at all. Exactly the methods the
    handlers (handlers.py, inbound.py, follow_up.py) and the audit trail (audit.py) call."""

    # -- instructions (idempotency keys) --
    async def instructions_get(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], InstructionRecord]:
        """(participant, instruction id) -> its record, for the keys stored."""
        ...

    async def instructions_add(self, records: Sequence[InstructionRecord]) -> None: ...

    async def instructions_received(
        self, since: datetime, until: datetime, limit: int, *, after: tuple[datetime, str, str] | None = None
    ) -> list[InstructionRecord]:
        """Instructions received in [since, until), in (received at, participant, instruction id)
        order, at most `limit`, those after `after` in that order only (the next page of a config
        dry-run's period, issue 11)."""
        ...

    # -- payments --
    async def payments_add(self, items: Sequence[Payment]) -> None: ...

    async def payments_get(self, uetrs: Sequence[str]) -> dict[str, Payment]:
        """uetr -> payment for those stored (locked for this transaction where the store can)."""
        ...

    async def payments_update(self, moves: Sequence[tuple[int, Payment]]) -> None:
        """Write (the version read in this transaction, the payment now): state, reason code,
        version, updated_at and follow_up_at. Raises ConcurrentUpdate when a stored version is
        no longer the one read (another writer came first; nothing is written)."""
        ...

    async def payments_move_all(
        self, uetrs: Sequence[str], from_state: PaymentState, to_state: PaymentState, at: datetime
    ) -> list[str]:
        """Move those of `uetrs` still in `from_state` to `to_state` (version + 1); return them."""
        ...

    async def payments_claim_follow_ups(self, now: datetime, limit: int) -> list[Payment]:
        """Payments whose follow-up is due, their follow-up time moved a lease ahead."""
        ...

    async def payments_set_follow_up(self, follow_ups: Sequence[tuple[str, datetime | None]]) -> None:
        """When each payment is next followed up (None: never); no version change."""
        ...

    # -- history --
    async def history_add(self, entries: Sequence[HistoryEntry]) -> None: ...

    async def history_of(self, uetr: str) -> list[HistoryEntry]:
        """The payment's history, oldest first."""
        ...

    # -- outbox --
    async def outbox_add(self, messages: Sequence[OutboxMessage]) -> list[OutboxMessage]:
        """Insert; return the rows with their ids (and lease)."""
        ...

    async def outbox_by_message_ids(self, kind: str, message_ids: Sequence[str]) -> list[OutboxMessage]:
        """Stored rows by message id, sent or not."""
        ...

    async def outbox_existing(self, kind: str, message_ids: Sequence[str]) -> set[str]:
        """The ids of `message_ids` already in the outbox (an answer with a fixed id, written once)."""
        ...

    async def outbox_mark_sent(self, ids: Sequence[int], at: datetime) -> None: ...

    async def outbox_record_failures(self, failures: Sequence[DeliveryFailure], at: datetime) -> None:
        """One failed round per row: a retry at `retry_at`, or with None, stop (sent_at set)."""
        ...

    async def outbox_requeue(
        self, kind: str, message_ids: Sequence[str], now: datetime, deadline_at: datetime
    ) -> list[OutboxMessage]:
        """Deliver again, byte for byte, those rows already delivered (or given up); rows still
        waiting for delivery are left alone. Requeued rows are ambiguous from then on."""
        ...

    # -- inbound messages --
    async def inbound_seen(self, partner: str, message_ids: Sequence[str]) -> set[str]: ...

    async def inbound_add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of partner, message_id, message_type, received_at, body."""
        ...

    async def inbound_bodies(self, partner: str, message_ids: Sequence[str]) -> dict[str, bytes]:
        """message id -> the body first stored under it, for the ids already seen."""
        ...

    # -- signed business messages (switch/service/signed.py) --
    async def signed_digests(self, partner: str, biz_msg_ids: Sequence[str]) -> dict[str, str]:
        """BizMsgIdr -> the SHA-256 (hex) of the Document first taken under it, for the ids known."""
        ...

    async def signed_add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of partner, biz_msg_id, message_type, document_sha256, received_at, envelope."""
        ...

    # -- exception cases: enquiries, returns, recalls (switch/domain/case.py) --
    async def cases_add(self, cases: Sequence[Case]) -> None: ...

    async def cases_update(self, moves: Sequence[tuple[int, Case]]) -> None:
        """Write (the version read in this transaction, the case now). Raises ConcurrentUpdate
        when a stored version is no longer the one read (nothing is written)."""
        ...

    async def cases_get(self, ids: Sequence[str]) -> dict[str, Case]:
        """case id -> case, for those stored (locked for this transaction where the store can)."""
        ...

    async def cases_by_ref(self, refs: Sequence[str]) -> dict[str, Case]:
        """ref (the request as its sender named it) -> the case it made."""
        ...

    async def cases_of(self, uetrs: Sequence[str]) -> dict[str, list[Case]]:
        """uetr -> its cases, oldest first (payments without cases are absent)."""
        ...

    async def cases_claim_due(self, now: datetime, limit: int) -> list[Case]:
        """Cases whose `due_at` has come, their `due_at` moved a lease ahead."""
        ...

    # -- recalls (switch/service/recalls.py, issue 9) --
    async def payment_by_instruction(self, participant: str, instruction_id: str) -> Payment | None:
        """The payment a participant's instruction id made, if any."""
        ...

    async def outbox_withdraw(self, kind: str, message_id: str, now: datetime) -> bool:
        """Close a row never delivered so that the relay never sends it (a recall before the
        send): only if it is unsent, not leased (lease_until null or past), not ambiguous and
        carries one payment; True when this call withdrew it."""
        ...

    async def outbox_existing(self, kind: str, message_ids: Sequence[str]) -> set[str]:
        """The ids of `message_ids` already in the outbox (an answer written before is not written again)."""
        ...

    # -- settlement cycles (issue 10: switch/domain/settlement.py SettlementCycle) --
    async def cycles_add(self, cycles: Sequence[SettlementCycle]) -> None:
        """Insert cycles; one whose id is stored already is left as it is (replicas race to add
        the same calendar cycle)."""
        ...

    async def cycles_get(self, ids: Sequence[str]) -> dict[str, SettlementCycle]:
        """cycle id -> cycle, for those stored."""
        ...

    async def cycles_update(self, moves: Sequence[tuple[int, SettlementCycle]]) -> None:
        """Write (the version read in this transaction, the cycle now): every column but the
        id. Raises ConcurrentUpdate when a stored version is no longer the one read (nothing is
        written); a report page arriving counts as a write (report_page_add)."""
        ...

    async def cycles_due(self, now: datetime, limit: int) -> list[SettlementCycle]:
        """Cycles with work to do, oldest cut-off first: open ones whose cut-off has come (to
        close), closed ones whose report is complete (to reconcile)."""
        ...

    async def cycles_list(self, partner: str | None, limit: int, before: datetime | None = None) -> list[SettlementCycle]:
        """Cycles newest cut-off first (of one partner, or all), those cut off before `before`."""
        ...

    # -- the switch's books per cycle (switch/domain/recon.py BookEntry) --
    async def books_close(self, cycle: SettlementCycle) -> int:
        """Book into `cycle`, set-based, every movement of its partner not booked yet whose
        outcome was known before its cut-off (recon-design "Books"); return how many."""
        ...

    async def books_iter(self, cycle_id: str, after_ref: str | None, limit: int) -> list[BookEntry]:
        """A page of the cycle's books in ref order, after `after_ref` (None: from the start)."""
        ...

    async def books_find(self, refs: Sequence[str]) -> dict[str, BookEntry]:
        """ref -> book entry, in whichever cycle it was booked."""
        ...

    async def books_add(self, entries: Sequence[BookEntry]) -> None:
        """Book movements one by one (a payment the report resolved); a ref is booked once."""
        ...

    async def books_mark(self, results: Sequence[tuple[str, str]]) -> None:
        """(ref, result): 'matched' or the break kind found for that movement."""
        ...

    async def books_mark_matched(self, cycle_id: str) -> int:
        """Every entry of the cycle still without a result is 'matched'; return how many."""
        ...

    async def payments_settle(self, cycle_id: str, now: datetime) -> int:
        """Set-based: each payment booked in the cycle (kind payment, result 'matched') and still
        COMPLETED moves to SETTLED (version + 1, updated_at now), with its history row; return
        how many moved."""
        ...

    # -- the partner's report pages and entries (switch/domain/recon.py StatementEntry) --
    async def report_page_add(
        self,
        partner: str,
        report_id: str,
        page_no: int,
        message_id: str,
        cycle_id: str,
        last_page: bool,
        entries: Sequence[StatementEntry],
        received_at: datetime,
    ) -> bool:
        """Store a report page and its entries (seq = page_no * 10**7 + position on the page) and
        count it on its cycle (which must be stored). False, and nothing written, when that
        page (partner, report id, page number) is stored already."""
        ...

    async def report_entries_iter(self, cycle_id: str, after_seq: int | None, limit: int) -> list[StatementEntry]:
        """A page of the cycle's report entries in seq order, after `after_seq` (None: from the start)."""
        ...

    async def report_pages(self, cycle_id: str) -> list[dict[str, Any]]:
        """The cycle's report pages as stored (partner, report_id, page_no, message_id, cycle_id,
        last_page, entries, received_at), in arrival order."""
        ...

    # -- reconciliation breaks (switch/domain/recon.py Break) --
    async def breaks_add(self, breaks: Sequence[Break]) -> None: ...

    async def breaks_update(self, moves: Sequence[tuple[int, Break]]) -> None:
        """Write (the version read in this transaction, the break now). Raises ConcurrentUpdate
        when a stored version is no longer the one read (nothing is written)."""
        ...

    async def breaks_get(self, ids: Sequence[str]) -> dict[str, Break]: ...

    async def breaks_list(self, cycle_id: str | None, partner: str | None, open_only: bool, limit: int) -> list[Break]:
        """Breaks oldest first, of a cycle and/or partner (None: any), only open and following
        up ones if `open_only`."""
        ...

    async def breaks_open_for(self, uetrs: Sequence[str]) -> dict[str, list[Break]]:
        """uetr -> its breaks still open or following up, oldest first."""
        ...

    async def break_counts(self) -> dict[tuple[str, str, str], int]:
        """(partner, kind, state) -> breaks, for the gauges."""
        ...

    # -- FX quotes asked for first (switch/service/quotes.py, issue 11) --
    async def quotes_add(self, quotes: Sequence[StoredQuote]) -> None: ...

    async def quotes_get(self, quote_ids: Sequence[str]) -> dict[str, StoredQuote]:
        """quote id -> the stored quote, for those stored."""
        ...

    async def quotes_by_request(self, participant: str, request_ids: Sequence[str]) -> dict[str, StoredQuote]:
        """request id -> the quote that participant's request made, for those stored."""
        ...

    async def quotes_use(self, uses: Sequence[tuple[str, int, str, str, datetime]]) -> None:
        """Mark quotes used: (quote id, the version read in this transaction, uetr, instruction
        id, at), only where the quote is still unused and at that version (version + 1). Raises
        ConcurrentUpdate when one is not (another instruction used it first; nothing is written)."""
        ...

    # -- corridor and partner controls, debtors' daily usage (issue 11, switch/service/corridors.py) --
    async def controls_get(self) -> list[Control]:
        """Every stored control (a handful of rows: read once per admission batch)."""
        ...

    async def controls_put(self, control: Control, read_version: int | None) -> None:
        """Store `control` (its version the read one + 1): insert when `read_version` is None,
        else update the row still at `read_version`. Raises ConcurrentUpdate when another writer
        came first (the row exists already, or its version moved); nothing is written then."""
        ...

    async def usage_claim(self, keys: Sequence[UsageKey]) -> dict[UsageKey, int]:
        """Each key's amount so far (minor units; 0 for a key never used), locked for this
        transaction where the store can: a concurrent admission of the same debtor waits until
        this one commits, then reads the amount it left."""
        ...

    async def usage_add(self, amounts: Sequence[tuple[UsageKey, int]]) -> None:
        """Add the amounts (and one payment each) to the keys' rows, creating those missing."""
    # -- the operator's toolbox (switch/service/operations.py, issue 11) --
    async def payments_search(self, query: PaymentQuery) -> list[Payment]:
        """At most `query.limit` payments matching every filter, newest first (created_at, then
        uetr, both descending), strictly after the cursor `query.before`."""
        ...

    async def payment_messages(self, payment: Payment, moved_at: Sequence[datetime], window_s: float, limit: int) -> list[MessageRecord]:
        """The messages about `payment`, oldest first, at most `limit`: outbox rows keyed by its
        UETR or its participant/instruction id, or carrying its pacs.008 MsgId; partner messages
        and signed envelopes received within `window_s` before one of `moved_at` (its history)
        whose bytes name its UETR."""
        ...

    async def dlq_replays_get(self, keys: Sequence[tuple[str, int, int]]) -> dict[tuple[str, int, int], DlqReplay]:
        """(dead-letter topic, partition, offset) -> its replay record, for those stored."""
        ...

    async def dlq_replays_put(self, moves: Sequence[tuple[int | None, DlqReplay]]) -> None:
        """Write (the version read in this transaction, or None for a new record; the record now).
        Raises ConcurrentUpdate when another writer came first (a version changed, or a record
        for that dead letter was added meanwhile); nothing is written then."""
        ...

    async def dlq_replays_remove(self, keys: Sequence[tuple[str, int, int]]) -> None:
        """Forget claims whose publication failed, so the dead letter can be replayed again."""
        ...

    # -- screening holds (issue 12, switch/service/holds.py) --
    async def holds_add(self, holds: Sequence[ScreeningHold]) -> None: ...

    async def holds_get(self, uetrs: Sequence[str]) -> dict[str, ScreeningHold]:
        """uetr -> its hold record, for the payments ever held."""
        ...

    async def holds_update(self, moves: Sequence[tuple[int, ScreeningHold]]) -> None:
        """Write (the version read in this transaction, the hold now): the decision columns and
        the version. Raises ConcurrentUpdate when a stored version is no longer the one read
        (another operator decided first; nothing is written)."""
        ...

    async def holds_list(self, open_only: bool, limit: int) -> list[ScreeningHold]:
        """Holds oldest first (held_at, uetr), only undecided ones if `open_only`."""
        ...

    async def holds_open_count(self) -> int:
        """How many holds wait for a decision (the gauge)."""
        ...

    # -- audit log (switch/service/audit.py) --
    async def audit_append(self, new: Sequence[NewAuditEntry]) -> list[AuditEntry]:
        """Chain the entries after the last one and insert them in this transaction (appends
        are serialised across writers); return them with their ids and hashes."""
        ...


class Store(Protocol):
    """Where units of work come from (the SQL Store, or the fake one): a write transaction that
    commits when its block ends and rolls back on an exception, and a read-only one."""

    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    def reader(self) -> AbstractAsyncContextManager[UnitOfWork]: ...


class Screener(Protocol):
    """The sanctions-screening port (issue 12). Called before the admission and booking
    transactions, like the proxy look-ups: screening changes nothing, and the handlers stay free
    of I/O (they are handed the verdicts). Implementations: the embedded list matcher and the
    yente-compatible API client (switch/screening/)."""

    async def screen(self, subjects: Sequence[Subject]) -> dict[tuple[str, str], Verdict]:
        """One verdict per subject key (a payment's parties share its key): CLEAR, a HIT with the
        best-scoring entry, or UNAVAILABLE when the screening could not answer (never raises
        for that: the payment is held, fail closed)."""
        ...

    def reload(self) -> str:
        """Load the list again (no restart); return what is in force now, in words. Raises
        ValueError, leaving the list in force as it was, when the new one does not load."""
        ...
