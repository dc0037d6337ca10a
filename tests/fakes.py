"""In-memory fakes of the switch's own ports (STYLE §10: fakes, not mocks).

- `FakeUnitOfWork`: the `switch.service.ports.UnitOfWork` protocol on plain dicts, with the
  semantics handlers observe in the SQL one (switch/store/sql_store.py): version checks that
  raise ConcurrentUpdate, primary and unique keys, outbox rows with ids, leases, sent_at,
  next_attempt_at, attempts, ambiguous and deadline, requeues, claims of due rows and of due
  follow-ups; settlement cycles, books (closed from the history and the return cases as the SQL
  close does), report pages stored once, the settle, and breaks (issue 10).
  tests/unit/test_ports.py checks that its methods have the SQL signatures.
- `FakeStore`: hands out units of work over one shared `FakeState`; what a unit of work wrote is
  visible to others only once its block ends without an exception (commit), never otherwise
  (rollback). Writers are serialised, as on SQLite. Faults can be injected: a transaction that
  dies after its n-th write, and a concurrent writer that moves a payment's version between a
  transaction's read and its write.
- `FakeClock`: time passed in, moved by hand.
- `deps_from_config`: the handlers' `Deps` from the shipped configuration, on a given clock.
- Commands as the edges build them (`parsed_instruction`, `partner_statuses`, `failed_round`:
  the relay's decision on a failed delivery) and the status events a state holds
  (`status_events`), for the handler and state-machine tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from adapters.base import PartnerMapping, PartnerStatus
from adapters.inbound import InboundTransfer
from adapters.registry import load_partners
from adapters.transport import SendOutcome, SendResult
from fx.config import load_fx_config
from fx.quote import Quoter
from iso20022.model import Amount
from iso20022.schemas import SchemaSet
from switch import config as config_mod
from switch.config import PROJECT_ROOT, SwitchConfig
from switch.contracts import InstructionV1
from switch.domain.audit import GENESIS_HASH, AuditEntry, NewAuditEntry, chain_after
from switch.domain.errors import ConcurrentUpdate, InvariantViolation
from switch.domain.case import Case, CaseKind, CaseState
from switch.domain.corridor_rules import Control, ControlKind
from switch.domain.payment import Direction, HistoryEntry, Payment, PaymentState
from switch.domain.recon import MATCHED, BookEntry, BookKind, Break, BreakState, StatementEntry
from switch.domain.recon import Outcome as BookOutcome
from switch.domain.settlement import CycleState, SettlementCycle
from switch.domain.screening import Hit, Subject, Verdict
from switch.domain.screening import Outcome as ScreeningOutcome
from switch.metrics import Metrics
from switch.entrypoints.pain001_edge import parsed_instruction as edge_parsed_instruction
from switch.service.handlers import ApplyPartnerStatuses, Deps, Outcome, ParsedInstruction, RecordSendResults
from switch.service.ports import (
    DeliveryFailure, DlqReplay, InstructionRecord, Lease, MessageRecord, OutboxMessage, PaymentQuery, ScreeningHold, StoredQuote,
    UsageKey,
)
from switch.service import relay
from switch.store.sql_store import entry_page_seq_step, return_book_names

T0 = datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)
follow_up_lease_s_default = 30.0  # the SQL store's claim lease when it has no Lease


class DuplicateKey(Exception):
    """A primary or unique key already stored (the SQL store's IntegrityError): a bug in the
    caller, never retried."""


class SimulatedCrash(Exception):
    """An injected failure in the middle of a transaction (not retriable)."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One outbox row, every column the SQL table has."""

    id: int
    kind: str
    destination: str
    message_id: str
    uetrs: tuple[str, ...]
    key: str | None
    body: bytes
    created_at: datetime
    attempts: int = 0
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    ambiguous: bool = False
    deadline_at: datetime | None = None

    def message(self) -> OutboxMessage:
        return OutboxMessage(
            kind=self.kind, destination=self.destination, message_id=self.message_id, uetrs=self.uetrs, key=self.key,
            body=self.body, created_at=self.created_at, id=self.id, attempts=self.attempts, deadline_at=self.deadline_at,
            ambiguous=self.ambiguous, lease_until=self.lease_until,
        )


@dataclass
class FakeState:
    """The tables. Values are immutable, so a shallow copy is a snapshot."""

    instructions: dict[tuple[str, str], InstructionRecord] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    follow_ups: dict[str, int] = field(default_factory=dict)  # uetr -> times claimed for a follow-up
    history: list[HistoryEntry] = field(default_factory=list)
    outbox: dict[int, OutboxRow] = field(default_factory=dict)
    outbox_next_id: int = 1
    inbound: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (partner, message id) -> row
    audit: list[AuditEntry] = field(default_factory=list)
    signed: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (partner, BizMsgIdr) -> row
    cases: dict[str, Case] = field(default_factory=dict)  # case id -> case (issue 9)
    # settlement reconciliation (issue 10); flat dicts of immutable values, so copy() snapshots them
    cycles: dict[str, SettlementCycle] = field(default_factory=dict)
    books: dict[str, BookEntry] = field(default_factory=dict)  # ref -> movement
    book_results: dict[str, str | None] = field(default_factory=dict)  # ref -> 'matched' / break kind
    report_pages: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)  # (partner, report id, page)
    entries: dict[tuple[str, int], StatementEntry] = field(default_factory=dict)  # (cycle id, seq) -> entry
    breaks: dict[str, Break] = field(default_factory=dict)
    # issue 11: operators' corridor and partner controls, debtors' daily usage (amount, payments)
    controls: dict[tuple[ControlKind, str], Control] = field(default_factory=dict)
    usage: dict[UsageKey, tuple[int, int]] = field(default_factory=dict)
    dlq_replays: dict[tuple[str, int, int], DlqReplay] = field(default_factory=dict)  # issue 11
    quotes: dict[str, StoredQuote] = field(default_factory=dict)  # quote id -> quote (issue 11)
    holds: dict[str, ScreeningHold] = field(default_factory=dict)  # uetr -> screening hold (issue 12)

    def copy(self) -> FakeState:
        return FakeState(
            dict(self.instructions), dict(self.payments), dict(self.follow_ups), list(self.history), dict(self.outbox),
            self.outbox_next_id, dict(self.inbound), list(self.audit), dict(self.signed), dict(self.cases),
            dict(self.cycles), dict(self.books), dict(self.book_results), dict(self.report_pages), dict(self.entries),
            dict(self.breaks), dict(self.controls), dict(self.usage), dict(self.dlq_replays), dict(self.quotes),
            dict(self.holds),
        )

    def assign(self, other: FakeState) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(other, f.name))

    def outbox_messages(self, kind: str | None = None) -> list[OutboxMessage]:
        return [r.message() for r in self.outbox.values() if kind is None or r.kind == kind]


_BREAK_OPEN: frozenset[BreakState] = frozenset({BreakState.OPEN, BreakState.FOLLOWING_UP})


class FakeUnitOfWork:
    """The UnitOfWork port in memory. Alone (`FakeUnitOfWork()`) it owns a fresh state and every
    write is visible at once; from a FakeStore it works on the transaction's copy."""

    def __init__(self, state: FakeState | None = None, *, lease: Lease | None = None, store: FakeStore | None = None) -> None:
        self.state = state if state is not None else FakeState()
        self._lease = lease
        self._store = store
        self.writes = 0
        self.crash_at_write: int | None = None  # set by FakeStore.crash_next_transaction

    # the tables, for assertions
    @property
    def payments(self) -> dict[str, Payment]:
        return self.state.payments

    @property
    def history(self) -> list[HistoryEntry]:
        return self.state.history

    @property
    def instructions(self) -> dict[tuple[str, str], InstructionRecord]:
        return self.state.instructions

    @property
    def outbox(self) -> dict[int, OutboxRow]:
        return self.state.outbox

    def _write(self) -> None:
        self.writes += 1
        if self._store is not None:
            self._store._before_write(self)

    # -- instructions (idempotency keys) --
    async def instructions_get(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], InstructionRecord]:
        return {k: self.state.instructions[k] for k in keys if k in self.state.instructions}

    async def instructions_received(
        self, since: datetime, until: datetime, limit: int, *, after: tuple[datetime, str, str] | None = None
    ) -> list[InstructionRecord]:
        found = sorted(
            ((r.created_at, r.participant, r.instruction_id), r) for r in self.state.instructions.values() if since <= r.created_at < until
        )
        return [r for key, r in found if after is None or key > after][:limit]

    async def instructions_add(self, records: Sequence[InstructionRecord]) -> None:
        if not records:
            return
        self._write()
        for r in records:
            key = (r.participant, r.instruction_id)
            if key in self.state.instructions:
                raise DuplicateKey(f"instructions {key}")
            self.state.instructions[key] = r

    # -- payments --
    async def payments_add(self, items: Sequence[Payment]) -> None:
        if not items:
            return
        self._write()
        for p in items:
            if p.uetr in self.state.payments:
                raise DuplicateKey(f"payments {p.uetr}")
            self.state.payments[p.uetr] = p
            self.state.follow_ups[p.uetr] = 0

    async def payments_get(self, uetrs: Sequence[str]) -> dict[str, Payment]:
        return {u: self.state.payments[u] for u in uetrs if u in self.state.payments}

    async def payments_update(self, moves: Sequence[tuple[int, Payment]]) -> None:
        if not moves:
            return
        self._write()
        if self._store is not None:
            self._store._before_update(self, {p.uetr for _, p in moves})
        matched = 0
        updated: dict[str, Payment] = {}
        for read_version, p in sorted(moves, key=lambda m: m[1].uetr):
            stored = updated.get(p.uetr) or self.state.payments.get(p.uetr)
            if stored is None or stored.version != read_version:
                continue
            matched += 1
            # the columns the SQL update sets, and only those
            updated[p.uetr] = replace(
                stored, state=p.state, reason_code=p.reason_code, version=p.version, updated_at=p.updated_at,
                follow_up_at=p.follow_up_at,
            )
        if matched != len(moves):
            raise ConcurrentUpdate(f"concurrent update: {matched} of {len(moves)} payment rows matched")
        self.state.payments.update(updated)

    async def payments_move_all(
        self, uetrs: Sequence[str], from_state: PaymentState, to_state: PaymentState, at: datetime
    ) -> list[str]:
        if uetrs:
            self._write()
        moved: list[str] = []
        for uetr in sorted(set(uetrs)):
            p = self.state.payments.get(uetr)
            if p is None or p.state is not from_state:
                continue
            self.state.payments[uetr] = replace(p, state=to_state, version=p.version + 1, updated_at=at)
            moved.append(uetr)
        return moved

    async def payments_claim_follow_ups(self, now: datetime, limit: int) -> list[Payment]:
        self._write()  # the claim is an UPDATE
        due = sorted(
            (p for p in self.state.payments.values() if p.follow_up_at is not None and p.follow_up_at <= now),
            key=lambda p: p.follow_up_at or now,
        )[:limit]
        if not due:
            return []
        lease_s = self._lease.duration_s if self._lease else follow_up_lease_s_default
        for p in due:
            self.state.payments[p.uetr] = replace(p, follow_up_at=now + timedelta(seconds=lease_s))
            self.state.follow_ups[p.uetr] = self.state.follow_ups.get(p.uetr, 0) + 1
        return [self.state.payments[u] for u in sorted(p.uetr for p in due)]

    # -- exception cases (issue 9) --
    async def cases_add(self, cases: Sequence[Case]) -> None:
        if not cases:
            return
        self._write()
        refs = {c.ref for c in self.state.cases.values()}
        for c in cases:
            if c.id in self.state.cases or c.ref in refs:
                raise DuplicateKey(f"case {c.id} / {c.ref}")
            refs.add(c.ref)
        self.state.cases.update((c.id, c) for c in cases)

    async def cases_update(self, moves: Sequence[tuple[int, Case]]) -> None:
        if not moves:
            return
        self._write()
        for read_version, c in moves:
            stored = self.state.cases.get(c.id)
            if stored is None or stored.version != read_version:
                raise ConcurrentUpdate(f"concurrent update of case {c.id}")
        self.state.cases.update((c.id, c) for _, c in moves)

    async def cases_get(self, ids: Sequence[str]) -> dict[str, Case]:
        return {i: self.state.cases[i] for i in ids if i in self.state.cases}

    async def cases_by_ref(self, refs: Sequence[str]) -> dict[str, Case]:
        wanted = set(refs)
        return {c.ref: c for c in self.state.cases.values() if c.ref in wanted}

    async def cases_of(self, uetrs: Sequence[str]) -> dict[str, list[Case]]:
        wanted = set(uetrs)
        found: dict[str, list[Case]] = {}
        for c in sorted(self.state.cases.values(), key=lambda c: (c.created_at, c.id)):
            if c.uetr in wanted:
                found.setdefault(c.uetr, []).append(c)
        return found

    async def cases_claim_due(self, now: datetime, limit: int) -> list[Case]:
        due = sorted(
            (c for c in self.state.cases.values() if c.due_at is not None and c.due_at <= now), key=lambda c: (c.due_at, c.id)
        )[:limit]
        if not due:
            return []
        self._write()
        lease_s = self._lease.duration_s if self._lease else follow_up_lease_s_default
        for c in due:
            self.state.cases[c.id] = replace(c, due_at=now + timedelta(seconds=lease_s))
        return [self.state.cases[i] for i in sorted(c.id for c in due)]

    async def payments_set_follow_up(self, follow_ups: Sequence[tuple[str, datetime | None]]) -> None:
        if not follow_ups:
            return
        self._write()
        for uetr, at in sorted(follow_ups, key=lambda f: f[0]):
            p = self.state.payments.get(uetr)
            if p is not None:
                self.state.payments[uetr] = replace(p, follow_up_at=at)

    # -- history --
    async def history_add(self, entries: Sequence[HistoryEntry]) -> None:
        if entries:
            self._write()
            self.state.history.extend(entries)

    # -- outbox --
    async def outbox_add(self, messages: Sequence[OutboxMessage]) -> list[OutboxMessage]:
        if not messages:
            return []
        self._write()
        taken = {(r.kind, r.message_id) for r in self.state.outbox.values()}
        added: list[OutboxMessage] = []
        for m in messages:
            if (m.kind, m.message_id) in taken:
                raise DuplicateKey(f"uq_outbox_message {(m.kind, m.message_id)}")
            taken.add((m.kind, m.message_id))
            row_id = self.state.outbox_next_id
            self.state.outbox_next_id += 1
            lease_until = m.created_at + timedelta(seconds=self._lease.duration_s) if self._lease else None
            self.state.outbox[row_id] = OutboxRow(
                id=row_id, kind=m.kind, destination=m.destination, message_id=m.message_id, uetrs=m.uetrs, key=m.key,
                body=m.body, created_at=m.created_at, deadline_at=m.deadline_at,
                lease_owner=self._lease.owner if self._lease else None, lease_until=lease_until,
            )
            added.append(replace(m, id=row_id, lease_until=lease_until))
        return added

    async def outbox_by_message_ids(self, kind: str, message_ids: Sequence[str]) -> list[OutboxMessage]:
        wanted = set(message_ids)
        return [r.message() for r in self.state.outbox.values() if r.kind == kind and r.message_id in wanted]

    async def outbox_existing(self, kind: str, message_ids: Sequence[str]) -> set[str]:
        """The ids of `message_ids` already in the outbox (the Kafka edge's duplicate-answer check)."""
        wanted = set(message_ids)
        return {r.message_id for r in self.state.outbox.values() if r.kind == kind and r.message_id in wanted}

    async def outbox_mark_sent(self, ids: Sequence[int], at: datetime) -> None:
        if not ids:
            return
        self._write()
        for i in ids:
            if i in self.state.outbox:
                self.state.outbox[i] = replace(self.state.outbox[i], sent_at=at, lease_owner=None, lease_until=None)

    async def outbox_record_failures(self, failures: Sequence[DeliveryFailure], at: datetime) -> None:
        if not failures:
            return
        self._write()
        for f in sorted(failures, key=lambda f: f.outbox_id):
            r = self.state.outbox.get(f.outbox_id)
            if r is None:
                continue
            self.state.outbox[f.outbox_id] = replace(
                r, attempts=r.attempts + 1, last_error=f.error[:500], next_attempt_at=f.retry_at,
                sent_at=at if f.retry_at is None else None, lease_owner=None, lease_until=None,
                ambiguous=r.ambiguous or f.ambiguous,  # once it may have reached the partner, it stays so
            )

    async def outbox_claim_due(self, now: datetime, limit: int, *, ignore_leases: bool = False) -> list[OutboxMessage]:
        """Not a handler method (the relay's poller): unsent rows whose next attempt is due and
        whose lease has run out, leased to this unit of work's holder."""
        assert self._lease is not None, "claiming needs a lease holder"
        due = [
            r for r in sorted(self.state.outbox.values(), key=lambda r: r.id)
            if r.sent_at is None
            and (r.next_attempt_at is None or r.next_attempt_at <= now)
            and (ignore_leases or r.lease_until is None or r.lease_until < now)
        ][:limit]
        if not due:
            return []
        self._write()
        until = now + timedelta(seconds=self._lease.duration_s)
        for r in due:
            self.state.outbox[r.id] = replace(r, lease_owner=self._lease.owner, lease_until=until)
        return [self.state.outbox[r.id].message() for r in due]

    async def outbox_requeue(
        self, kind: str, message_ids: Sequence[str], now: datetime, deadline_at: datetime
    ) -> list[OutboxMessage]:
        if not message_ids:
            return []
        wanted = set(message_ids)
        done = [
            r for r in sorted(self.state.outbox.values(), key=lambda r: r.id)
            if r.kind == kind and r.message_id in wanted and r.sent_at is not None
        ]
        if not done:
            return []
        self._write()
        lease_until = now + timedelta(seconds=self._lease.duration_s) if self._lease else None
        again = []
        for r in done:
            self.state.outbox[r.id] = replace(
                r, sent_at=None, next_attempt_at=None, deadline_at=deadline_at, ambiguous=True,
                lease_owner=self._lease.owner if self._lease else None, lease_until=lease_until,
            )
            # as the SQL store returns them: the row as read, with the new deadline, flag and lease
            again.append(replace(r.message(), deadline_at=deadline_at, ambiguous=True, lease_until=lease_until))
        return again

    async def outbox_withdraw(self, kind: str, message_id: str, now: datetime) -> bool:
        """As the SQL store: withdraw a row never delivered (unsent, not leased, not ambiguous, one payment)."""
        r = next((r for r in self.state.outbox.values() if r.kind == kind and r.message_id == message_id), None)
        if r is None or len(r.uetrs) != 1 or r.sent_at is not None or r.ambiguous:
            return False
        if r.lease_until is not None and r.lease_until >= now:
            return False
        self._write()
        self.state.outbox[r.id] = replace(r, sent_at=now, last_error="withdrawn: recalled", lease_owner=None, lease_until=None)
        return True

    # -- inbound messages --
    async def inbound_seen(self, partner: str, message_ids: Sequence[str]) -> set[str]:
        return {m for m in message_ids if (partner, m) in self.state.inbound}

    async def inbound_add(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        self._write()
        for r in rows:
            key = (r["partner"], r["message_id"])
            if key in self.state.inbound:
                raise DuplicateKey(f"inbound_messages {key}")
            self.state.inbound[key] = dict(r)

    async def inbound_bodies(self, partner: str, message_ids: Sequence[str]) -> dict[str, bytes]:
        return {m: bytes(self.state.inbound[(partner, m)]["body"]) for m in message_ids if (partner, m) in self.state.inbound}

    # -- signed business messages --
    async def signed_digests(self, partner: str, biz_msg_ids: Sequence[str]) -> dict[str, str]:
        return {m: self.state.signed[(partner, m)]["document_sha256"] for m in biz_msg_ids if (partner, m) in self.state.signed}

    async def signed_add(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        self._write()
        for r in rows:
            self.state.signed.setdefault((r["partner"], r["biz_msg_id"]), dict(r))  # the first one stays

    # -- audit log --
    # -- corridor and partner controls, daily usage (issue 11), as the SQL store --
    async def controls_get(self) -> list[Control]:
        return [self.state.controls[k] for k in sorted(self.state.controls)]

    async def controls_put(self, control: Control, read_version: int | None) -> None:
        key = (control.kind, control.subject)
        stored = self.state.controls.get(key)
        if (stored is None) != (read_version is None) or (stored is not None and stored.version != read_version):
            raise ConcurrentUpdate(f"concurrent change of the {control.kind.value} control of {control.subject}")
        self._write()
        self.state.controls[key] = control

    async def usage_claim(self, keys: Sequence[UsageKey]) -> dict[UsageKey, int]:
        return {k: self.state.usage.get(k, (0, 0))[0] for k in keys}

    async def usage_add(self, amounts: Sequence[tuple[UsageKey, int]]) -> None:
        if not amounts:
            return
        self._write()
        for key, amount in amounts:
            before, payments = self.state.usage.get(key, (0, 0))
            self.state.usage[key] = (before + amount, payments + 1)

    # -- screening holds (issue 12) --
    async def holds_add(self, holds: Sequence[ScreeningHold]) -> None:
        if not holds:
            return
        self._write()
        for h in holds:
            if h.uetr in self.state.holds:
                raise DuplicateKey(f"screening_holds {h.uetr}")
            self.state.holds[h.uetr] = h

    async def holds_get(self, uetrs: Sequence[str]) -> dict[str, ScreeningHold]:
        return {u: self.state.holds[u] for u in uetrs if u in self.state.holds}

    async def holds_update(self, moves: Sequence[tuple[int, ScreeningHold]]) -> None:
        if not moves:
            return
        self._write()
        for read_version, h in moves:
            stored = self.state.holds.get(h.uetr)
            if stored is None or stored.version != read_version:
                raise ConcurrentUpdate(f"concurrent decision on the hold of {h.uetr}")
        for _, h in moves:
            self.state.holds[h.uetr] = h

    async def holds_list(self, open_only: bool, limit: int) -> list[ScreeningHold]:
        found = sorted((h for h in self.state.holds.values() if not open_only or h.open), key=lambda h: (h.held_at, h.uetr))
        return found[:limit]

    async def holds_open_count(self) -> int:
        return sum(1 for h in self.state.holds.values() if h.open)

    async def audit_append(self, new: Sequence[NewAuditEntry]) -> list[AuditEntry]:
        if not new:
            return []
        self._write()
        last = self.state.audit[-1] if self.state.audit else None
        entries = chain_after(last.id if last else 0, last.hash if last else GENESIS_HASH, new)
        self.state.audit.extend(entries)
        return entries

    # -- settlement cycles (issue 10), as the SQL store --
    async def cycles_add(self, cycles: Sequence[SettlementCycle]) -> None:
        if not cycles:
            return
        self._write()
        for c in cycles:
            self.state.cycles.setdefault(c.id, c)  # an id stored already stays as it is

    async def cycles_get(self, ids: Sequence[str]) -> dict[str, SettlementCycle]:
        return {i: self.state.cycles[i] for i in ids if i in self.state.cycles}

    async def cycles_update(self, moves: Sequence[tuple[int, SettlementCycle]]) -> None:
        if not moves:
            return
        self._write()
        for read_version, c in moves:
            stored = self.state.cycles.get(c.id)
            if stored is None or stored.version != read_version:
                raise ConcurrentUpdate(f"concurrent update of settlement cycle {c.id}")
        self.state.cycles.update((c.id, c) for _, c in moves)

    async def cycles_due(self, now: datetime, limit: int) -> list[SettlementCycle]:
        due = [
            c for c in self.state.cycles.values()
            if (c.state is CycleState.OPEN and c.cut_off <= now) or (c.state is CycleState.CLOSED and c.report_complete)
        ]
        return sorted(due, key=lambda c: (c.cut_off, c.id))[:limit]

    async def cycles_list(self, partner: str | None, limit: int, before: datetime | None = None) -> list[SettlementCycle]:
        found = [
            c for c in self.state.cycles.values()
            if (partner is None or c.partner == partner) and (before is None or c.cut_off < before)
        ]
        return sorted(found, key=lambda c: (c.cut_off, c.id), reverse=True)[:limit]

    # -- the switch's books per cycle --
    async def books_close(self, cycle: SettlementCycle) -> int:
        """As the SQL store: the partner's payments with an outcome row (COMPLETED, REJECTED,
        CANCELLED) in [cycle.books_from, cut-off) not booked yet (outbound ones only if they
        reached the partner), then its DONE return cases of that window."""
        outcome_states = {PaymentState.COMPLETED, PaymentState.REJECTED, PaymentState.CANCELLED}
        completed: dict[str, bool] = {}
        submitted: set[str] = set()
        for h in self.state.history:
            if h.to_state is PaymentState.SUBMITTED:
                submitted.add(h.uetr)
            if h.to_state in outcome_states and cycle.books_from <= h.at < cycle.cut_off:
                completed[h.uetr] = completed.get(h.uetr, False) or h.to_state is PaymentState.COMPLETED
        new: list[BookEntry] = []
        for uetr, settles in sorted(completed.items()):
            p = self.state.payments.get(uetr)
            if p is None or p.partner != cycle.partner or uetr in self.state.books:
                continue
            outbound = p.direction is Direction.OUTBOUND
            if outbound and not settles and uetr not in submitted:
                continue
            settlement, participant = (p.target, p.source) if outbound else (p.source, p.target)
            new.append(BookEntry(
                ref=uetr, cycle_id=cycle.id, kind=BookKind.PAYMENT, uetr=uetr, outbound=outbound,
                amount_minor=settlement.amount_minor, currency=settlement.currency.code,
                outcome=BookOutcome.SETTLES if settles else BookOutcome.NOT_SETTLED, participant=p.participant,
                participant_amount_minor=participant.amount_minor, participant_currency=participant.currency.code,
                fee_minor=p.fee.amount_minor, end_to_end_id=p.instruction_id,
                tx_id=f"T{uetr.replace('-', '')}" if outbound else None, message_id=p.message_id,
            ))
        returns = sorted(
            (
                c for c in self.state.cases.values()
                if c.kind is CaseKind.RETURN and c.state is CaseState.DONE and c.amount is not None
                and cycle.books_from <= c.updated_at < cycle.cut_off
                and (p := self.state.payments.get(c.uetr)) is not None and p.partner == cycle.partner
            ),
            key=lambda c: (c.created_at, c.id),
        )
        names = [return_book_names(c.id, c.ref, c.message_id) for c in returns]
        per_message: dict[str, int] = {}
        for message_id, _ in names:
            per_message[message_id] = per_message.get(message_id, 0) + 1
        for c, (message_id, return_id) in zip(returns, names, strict=True):
            p = self.state.payments[c.uetr]
            ref = (f"R:{message_id}" if per_message[message_id] == 1 else f"R:{message_id}/{return_id}")[:80]
            if ref in self.state.books:
                continue
            assert c.amount is not None
            back = c.back_amount or c.amount
            new.append(BookEntry(
                ref=ref, cycle_id=cycle.id, kind=BookKind.RETURN, uetr=c.uetr, outbound=p.direction is Direction.INBOUND,
                amount_minor=c.amount.amount_minor, currency=c.amount.currency.code, outcome=BookOutcome.SETTLES,
                participant=p.participant, participant_amount_minor=back.amount_minor,
                participant_currency=back.currency.code, fee_minor=0, end_to_end_id=p.instruction_id,
                tx_id=return_id if return_id != c.id else None, message_id=message_id[:35],
            ))
        await self.books_add(new)
        return len(new)

    async def books_iter(self, cycle_id: str, after_ref: str | None, limit: int) -> list[BookEntry]:
        found = sorted(
            (b for b in self.state.books.values() if b.cycle_id == cycle_id and (after_ref is None or b.ref > after_ref)),
            key=lambda b: b.ref,
        )
        return [replace(b, result=self.state.book_results[b.ref]) for b in found[:limit]]

    async def books_find(self, refs: Sequence[str]) -> dict[str, BookEntry]:
        return {r: replace(self.state.books[r], result=self.state.book_results[r]) for r in refs if r in self.state.books}

    async def books_add(self, entries: Sequence[BookEntry]) -> None:
        if not entries:
            return
        self._write()
        for e in entries:
            if e.ref in self.state.books:
                raise DuplicateKey(f"settlement_books {e.ref}")
            self.state.books[e.ref] = replace(e, result=None)
            self.state.book_results[e.ref] = e.result

    async def books_mark(self, results: Sequence[tuple[str, str]]) -> None:
        if not results:
            return
        self._write()
        for ref, result in results:
            if ref in self.state.books:
                self.state.book_results[ref] = result

    async def books_mark_matched(self, cycle_id: str) -> int:
        refs = [r for r, b in self.state.books.items() if b.cycle_id == cycle_id and self.state.book_results[r] is None]
        if refs:
            self._write()
            self.state.book_results.update((r, MATCHED) for r in refs)
        return len(refs)

    async def payments_settle(self, cycle_id: str, now: datetime) -> int:
        uetrs = sorted(
            b.uetr for r, b in self.state.books.items()
            if b.cycle_id == cycle_id and b.kind is BookKind.PAYMENT and self.state.book_results[r] == MATCHED
        )
        moved = [u for u in uetrs if (p := self.state.payments.get(u)) is not None and p.state is PaymentState.COMPLETED]
        if not moved:
            return 0
        self._write()
        for u in moved:
            p = self.state.payments[u]
            self.state.payments[u] = replace(p, state=PaymentState.SETTLED, version=p.version + 1, updated_at=now)
            self.state.history.append(
                HistoryEntry(u, PaymentState.COMPLETED, PaymentState.SETTLED, None, f"settled in cycle {cycle_id}", now)
            )
        return len(moved)

    # -- the partner's report pages and entries --
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
        key = (partner, report_id, page_no)
        if key in self.state.report_pages:
            return False
        c = self.state.cycles.get(cycle_id)
        if c is None:
            raise InvariantViolation(f"report page for settlement cycle {cycle_id}, which is not stored")
        self._write()
        self.state.report_pages[key] = {
            "partner": partner, "report_id": report_id, "page_no": page_no, "message_id": message_id, "cycle_id": cycle_id,
            "last_page": last_page, "entries": len(entries), "received_at": received_at,
        }
        base = page_no * entry_page_seq_step
        for i, e in enumerate(entries):
            if (cycle_id, base + i) in self.state.entries:
                raise DuplicateKey(f"settlement_entries {(cycle_id, base + i)}")
            self.state.entries[(cycle_id, base + i)] = replace(e, seq=base + i)
        self.state.cycles[cycle_id] = replace(
            c, report_id=report_id, report_pages=c.report_pages + 1,
            report_last_page=page_no if last_page else c.report_last_page, entries_count=c.entries_count + len(entries),
            version=c.version + 1,
        )
        return True

    async def report_entries_iter(self, cycle_id: str, after_seq: int | None, limit: int) -> list[StatementEntry]:
        seqs = sorted(s for c, s in self.state.entries if c == cycle_id and (after_seq is None or s > after_seq))
        return [self.state.entries[(cycle_id, s)] for s in seqs[:limit]]

    async def report_pages(self, cycle_id: str) -> list[dict[str, Any]]:
        pages = [dict(r) for r in self.state.report_pages.values() if r["cycle_id"] == cycle_id]
        return sorted(pages, key=lambda r: (r["received_at"], r["report_id"], r["page_no"]))

    # -- reconciliation breaks --
    async def breaks_add(self, breaks: Sequence[Break]) -> None:
        if not breaks:
            return
        self._write()
        for b in breaks:
            if b.id in self.state.breaks:
                raise DuplicateKey(f"recon_breaks {b.id}")
            self.state.breaks[b.id] = b

    async def breaks_update(self, moves: Sequence[tuple[int, Break]]) -> None:
        if not moves:
            return
        self._write()
        for read_version, b in moves:
            stored = self.state.breaks.get(b.id)
            if stored is None or stored.version != read_version:
                raise ConcurrentUpdate(f"concurrent update of break {b.id}")
        self.state.breaks.update((b.id, b) for _, b in moves)

    async def breaks_get(self, ids: Sequence[str]) -> dict[str, Break]:
        return {i: self.state.breaks[i] for i in ids if i in self.state.breaks}

    async def breaks_list(self, cycle_id: str | None, partner: str | None, open_only: bool, limit: int) -> list[Break]:
        found = [
            b for b in self.state.breaks.values()
            if (cycle_id is None or b.cycle_id == cycle_id) and (partner is None or b.partner == partner)
            and (not open_only or b.state in _BREAK_OPEN)
        ]
        return sorted(found, key=lambda b: (b.created_at, b.id))[:limit]

    async def breaks_open_for(self, uetrs: Sequence[str]) -> dict[str, list[Break]]:
        wanted = set(uetrs)
        found: dict[str, list[Break]] = {}
        for b in sorted(self.state.breaks.values(), key=lambda b: (b.created_at, b.id)):
            if b.uetr in wanted and b.state in _BREAK_OPEN:
                found.setdefault(b.uetr, []).append(b)
        return found

    async def break_counts(self) -> dict[tuple[str, str, str], int]:
        counts: dict[tuple[str, str, str], int] = {}
        for b in self.state.breaks.values():
            key = (b.partner, b.kind.value, b.state.value)
            counts[key] = counts.get(key, 0) + 1
        return counts

    # -- the operator's toolbox (issue 11) --
    async def payments_search(self, query: PaymentQuery) -> list[Payment]:
        def keep(p: Payment) -> bool:
            return (
                (query.state is None or p.state is query.state)
                and (query.corridor is None or p.corridor == query.corridor)
                and (query.participant is None or p.participant == query.participant)
                and (query.partner is None or p.partner == query.partner)
                and (query.reason_code is None or p.reason_code == query.reason_code)
                and (query.since is None or p.created_at >= query.since)
                and (query.until is None or p.created_at < query.until)
                and (query.before is None or (p.created_at, p.uetr) < query.before)
            )

        found = sorted((p for p in self.state.payments.values() if keep(p)), key=lambda p: (p.created_at, p.uetr), reverse=True)
        return found[: query.limit]

    async def payment_messages(self, payment: Payment, moved_at: Sequence[datetime], window_s: float, limit: int) -> list[MessageRecord]:
        keys = {payment.uetr, f"{payment.participant}/{payment.instruction_id}"}
        found = [
            MessageRecord("sent", r.kind, r.destination, r.message_id, r.created_at, r.sent_at, r.attempts, r.body)
            for r in sorted(self.state.outbox.values(), key=lambda r: r.id)
            if r.key in keys or (r.kind == "partner" and payment.message_id is not None and r.message_id == payment.message_id)
        ][:limit]
        needle = payment.uetr.encode()
        windows = [(at - timedelta(seconds=window_s), at) for at in moved_at]

        def near(at: datetime) -> bool:
            return any(since <= at <= until for since, until in windows)

        for r in self.state.inbound.values():
            if near(r["received_at"]) and needle in r["body"]:
                found.append(MessageRecord("received", "partner", r["partner"], r["message_id"], r["received_at"], None, 1, r["body"]))
        for r in self.state.signed.values():
            if near(r["received_at"]) and needle in r["envelope"]:
                found.append(MessageRecord("received", "signed", r["partner"], r["biz_msg_id"], r["received_at"], None, 1, r["envelope"]))
        return sorted(found, key=lambda m: (m.at, m.direction != "received"))[:limit]

    async def dlq_replays_get(self, keys: Sequence[tuple[str, int, int]]) -> dict[tuple[str, int, int], DlqReplay]:
        return {k: self.state.dlq_replays[k] for k in keys if k in self.state.dlq_replays}

    async def dlq_replays_put(self, moves: Sequence[tuple[int | None, DlqReplay]]) -> None:
        self._write()
        for read_version, d in moves:
            stored = self.state.dlq_replays.get(d.key)
            if (stored is None) != (read_version is None) or (stored is not None and stored.version != read_version):
                raise ConcurrentUpdate(f"concurrent replay of dead letter {d.key}")
            self.state.dlq_replays[d.key] = d

    async def dlq_replays_remove(self, keys: Sequence[tuple[str, int, int]]) -> None:
        self._write()
        for k in keys:
            self.state.dlq_replays.pop(k, None)

    # -- reads for the HTTP API (not handler methods) --
    # -- FX quotes asked for first (issue 11) --
    async def quotes_add(self, quotes: Sequence[StoredQuote]) -> None:
        if not quotes:
            return
        self._write()
        for q in quotes:
            if q.quote.quote_id in self.state.quotes:
                raise DuplicateKey(f"fx_quotes {q.quote.quote_id}")
            if q.request_id is not None and any(
                o.participant == q.participant and o.request_id == q.request_id for o in self.state.quotes.values()
            ):
                raise DuplicateKey(f"fx_quotes request {q.participant}/{q.request_id}")
            self.state.quotes[q.quote.quote_id] = q

    async def quotes_get(self, quote_ids: Sequence[str]) -> dict[str, StoredQuote]:
        return {i: self.state.quotes[i] for i in quote_ids if i in self.state.quotes}

    async def quotes_by_request(self, participant: str, request_ids: Sequence[str]) -> dict[str, StoredQuote]:
        wanted = set(request_ids)
        return {
            q.request_id: q for q in self.state.quotes.values()
            if q.participant == participant and q.request_id is not None and q.request_id in wanted
        }

    async def quotes_use(self, uses: Sequence[tuple[str, int, str, str, datetime]]) -> None:
        if not uses:
            return
        self._write()
        for quote_id, read_version, _, _, _ in uses:
            stored = self.state.quotes.get(quote_id)
            if stored is None or stored.version != read_version or stored.used_by_uetr is not None:
                raise ConcurrentUpdate(f"quote {quote_id} was used or changed meanwhile")
        for quote_id, read_version, uetr, instruction_id, at in uses:
            self.state.quotes[quote_id] = replace(
                self.state.quotes[quote_id], used_by_uetr=uetr, used_by_instruction=instruction_id, used_at=at,
                version=read_version + 1,
            )

    async def history_of(self, uetr: str) -> list[HistoryEntry]:
        return [h for h in self.state.history if h.uetr == uetr]

    async def payment_by_instruction(self, participant: str, instruction_id: str) -> Payment | None:
        record = self.state.instructions.get((participant, instruction_id))
        if record is None or record.uetr is None:
            return None
        return self.state.payments.get(record.uetr)


class FakeStore:
    """Units of work over one shared state: commit when the block ends, roll back on an
    exception. `lease`: as Store.lease (rows written are leased to this holder)."""

    def __init__(self, state: FakeState | None = None, *, lease: Lease | None = None) -> None:
        self.state = state if state is not None else FakeState()
        self.lease = lease
        self.commits = 0
        self.rollbacks = 0
        self._lock = asyncio.Lock()  # one writer at a time, as on SQLite
        self._crash_at_write: int | None = None
        self._racing: dict[str, int] = {}  # uetr -> transactions still to race

    def crash_next_transaction(self, *, at_write: int) -> None:
        """The next unit of work raises SimulatedCrash at its `at_write`-th write (1-based); one
        that writes less commits normally. Either way the fault is used up."""
        self._crash_at_write = at_write

    def race_on(self, uetr: str, *, times: int = 1) -> None:
        """Another writer moves payment `uetr` on (version + 1) and commits between a unit of
        work's read of it and its versioned write (payments_update), so that write fails
        (ConcurrentUpdate); so for the next `times` units of work that update it."""
        self._racing[uetr] = times

    def _before_write(self, uow: FakeUnitOfWork) -> None:
        if uow.crash_at_write is not None and uow.writes >= uow.crash_at_write:
            raise SimulatedCrash(f"crash at write {uow.writes}")

    def _before_update(self, uow: FakeUnitOfWork, uetrs: set[str]) -> None:
        for uetr in sorted(uetrs & set(self._racing)):
            for state in (self.state, uow.state):  # committed, and seen by this transaction (read committed)
                p = state.payments.get(uetr)
                if p is not None:
                    state.payments[uetr] = replace(p, version=p.version + 1)
            self._racing[uetr] -= 1
        self._racing = {u: n for u, n in self._racing.items() if n > 0}

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[FakeUnitOfWork]:
        async with self._lock:
            work = self.state.copy()
            uow = FakeUnitOfWork(work, lease=self.lease, store=self)
            uow.crash_at_write, self._crash_at_write = self._crash_at_write, None
            try:
                yield uow
            except BaseException:
                self.rollbacks += 1
                raise
            self.state.assign(work)
            self.commits += 1

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[FakeUnitOfWork]:
        """A read-only unit of work: anything written through it is dropped."""
        yield FakeUnitOfWork(self.state.copy(), lease=self.lease)


class FakeClock:
    """The time handlers see (`Deps.clock`), moved only by the test."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


# an inbound payment as a partner sends it (TH -> KH, to a Bakong account)
INBOUND_TRANSFER = InboundTransfer(
    uetr="0b9d6c3e-1f2a-4b5c-8d7e-9f0a1b2c3d4e", end_to_end_id="E0b9d6c3e1f2a4b5c8d7e9f0a1b2c3d4e",
    amount=Amount("40000", "KHR"), instructed_amount=None, exchange_rate=None, debtor_name="SOMCHAI JAIDEE",
    debtor_account="1234567890", debtor_agent="014", creditor_name="Sok Dara", creditor_account="sok_dara@aclb",
    creditor_proxy_type=None, creditor_proxy=None, remittance=None,
)


def deps_from_config(
    schemas: SchemaSet, clock: FakeClock, *, partners: Iterable[str] = ("promptpay", "lapnet", "napas", "unionpay")
) -> Deps:
    """The handlers' dependencies as the composition root builds them, from the shipped config
    (config/*.toml, partner profiles, the FX table), with fresh metrics and the given clock."""
    cfg, mappings, quoter = _shipped(tuple(sorted(partners)))
    return Deps(config=cfg, mappings=mappings, quoter=quoter, schemas=schemas, metrics=Metrics(), clock=clock)


@lru_cache(maxsize=8)
def _shipped(partners: tuple[str, ...]) -> tuple[SwitchConfig, Mapping[str, PartnerMapping], Quoter]:
    """The shipped configuration, read once per test session (all of it is immutable)."""
    cfg = config_mod.load(env={})
    mappings = load_partners(Path(cfg.config_dir), set(partners), switch_bic=cfg.switch.agent_bic)
    # the shipped table without its age limits: handler tests move a fake clock by days; the tests
    # of staleness build their own books (tests/unit/test_fx_*.py, test_quotes.py)
    fx = load_fx_config(PROJECT_ROOT / "config" / "fx.toml").model_copy(update={"stale_after_s": None, "static_max_age_s": None})
    quoter = Quoter(fx.rate_book())
    return cfg, mappings, quoter


# ---------------------------------------------------------------- commands and what they leave


def parsed_instruction(doc: dict[str, Any], *, source_ref: str) -> ParsedInstruction:
    """An instruction v1 as the Kafka edge hands it on (parse_record): validated, fingerprinted,
    with the record's coordinates."""
    ins = InstructionV1.model_validate(doc)
    return edge_parsed_instruction(ins, source_ref)


def partner_statuses(
    partner: str, message_id: str, *statuses: tuple[str, PaymentState, str | None], original_message_id: str | None = None
) -> ApplyPartnerStatuses:
    """A partner's pacs.002 as the HTTP edge hands it on: (uetr, target state, reason code) each."""
    return ApplyPartnerStatuses(
        partner, message_id, "pacs.002.001.10", f"<pacs.002 {message_id}>".encode(),
        [PartnerStatus(uetr, original_message_id, target, reason, None) for uetr, target, reason in statuses],
    )


def status_events(state: FakeState, deps: Deps) -> list[dict[str, Any]]:
    """Every status event written to the outbox for the status topic, in order, as JSON."""
    topic = deps.config.kafka.status_topic
    rows = sorted(state.outbox.values(), key=lambda r: r.id)
    return [json.loads(r.body) for r in rows if r.kind == "status" and r.destination == topic]


def failed_round(
    row: OutboxMessage, outcome: SendOutcome, *, clock: FakeClock, detail: str = "", ambiguous: bool | None = None
) -> RecordSendResults:
    """What the outbox relay makes of a failed delivery round of a partner row (a retry later,
    or a decision: refused, AB07), by the relay's own rule (relay.failed_round). `outcome` is the
    round's last attempt;
    `ambiguous`: whether any attempt of the round may have reached the partner (default: the
    last one's)."""
    result = SendResult(outcome, None, detail or outcome.value, 0.0)
    return relay.failed_round(
        row, result, ambiguous=result.ambiguous if ambiguous is None else ambiguous or result.ambiguous, now=clock()
    )




class FakeScreener:
    """The screening port (issue 12) in memory: a subject whose name is in `hits` is a HIT with
    that score (entry id "E-" + the name); `unavailable` makes every verdict UNAVAILABLE."""

    def __init__(self, hits: Mapping[str, float] | None = None, *, unavailable: bool = False, list_version: str = "fake-1") -> None:
        self.hits = dict(hits or {})
        self.unavailable = unavailable
        self.list_version = list_version
        self.screened: list[Subject] = []
        self.reloads = 0

    async def screen(self, subjects: Sequence[Subject]) -> dict[tuple[str, str], Verdict]:
        self.screened.extend(subjects)
        verdicts: dict[tuple[str, str], Verdict] = {}
        for s in subjects:
            if self.unavailable:
                verdicts[s.key] = Verdict(ScreeningOutcome.UNAVAILABLE, detail="list not loaded", list_version=self.list_version)
                continue
            score = self.hits.get(s.name)
            best = verdicts.get(s.key)
            if score is None:
                verdicts.setdefault(s.key, Verdict(ScreeningOutcome.CLEAR, list_version=self.list_version))
            elif best is None or best.hit is None or best.hit.score < score:
                hit = Hit(s.role, score, f"E-{s.name}", s.name.upper(), s.name, ("fake-sanctions",), "name")
                verdicts[s.key] = Verdict(ScreeningOutcome.HIT, hit, list_version=self.list_version)
        return verdicts

    def reload(self) -> str:
        self.reloads += 1
        return f"{len(self.hits)} entries, version {self.list_version}"
