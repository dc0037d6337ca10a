"""The SQL store: SQLAlchemy Core (async) on SQLite (WAL, one process) or PostgreSQL (any number).

`Store.unit_of_work()` opens one transaction; everything a handler changes (state, history,
idempotency key, outbox) goes through its methods and commits together (DESIGN "Delivery
guarantees"). Methods take and return batches: the switch commits groups of work, not rows.

On SQLite every write transaction is serialised by an asyncio lock (SQLite has one writer); on
PostgreSQL rows are locked with SELECT ... FOR UPDATE and every payment update checks `version`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import LargeBinary, String, Table, and_, bindparam, case, event, exists, func, insert, literal, null, or_, select, text, tuple_, update
from sqlalchemy.engine import Connection, Engine, create_engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from switch.domain.case import Case, CaseKind, CaseState, Initiator, return_message_id
from switch.domain.corridor_rules import Control, ControlKind
from switch.domain.audit import GENESIS_HASH, AuditEntry, NewAuditEntry, chain_after, detail_text
from switch.domain.errors import ConcurrentUpdate, InvariantViolation
from switch.domain.idempotency import StoredKey
from switch.domain.money import CURRENCIES, Money
from switch.domain.pan import PanTokens, is_token
from switch.domain.payment import (
    FINAL_STATES, Direction, HistoryEntry, Identification, Party, Payment, PaymentState, PostalAddress,
)
from switch.domain.recon import (
    MATCHED,
    BookEntry,
    BookKind,
    Break,
    BreakAction,
    BreakEvent,
    BreakKind,
    BreakState,
    Outcome,
    StatementEntry,
)
from switch.domain.settlement import CycleState, SettlementCycle
from fx.quote import FixedSide, FxQuote
from switch.service.ports import (
    UsageKey,
    DeliveryFailure,
    DlqReplay,
    InstructionRecord,
    Lease,
    MessageRecord,
    OutboxMessage,
    PaymentQuery,
    ScreeningHold,
    StoredQuote,
    stored_key,
)
from sqlalchemy.dialects import postgresql, sqlite

from switch.store.tables import (
    OUTCOME_STATES_SQL,
    UtcDateTime,
    audit_log,
    corridor_controls,
    debtor_daily_usage,
    fx_quotes,
    dlq_replays,
    inbound_messages,
    instructions,
    outbox,
    payment_cases,
    payment_history,
    payments,
    recon_breaks,
    settlement_books,
    settlement_cycles,
    settlement_entries,
    settlement_reports,
    screening_holds,
    signed_messages,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
in_clause_max = 500  # keys in one IN (...) list


def _payment_row(p: Payment) -> dict[str, Any]:
    return {
        "uetr": p.uetr,
        "participant": p.participant,
        "instruction_id": p.instruction_id,
        "corridor": p.corridor,
        "partner": p.partner,
        "debtor_name": p.debtor.name,
        "debtor_account": p.debtor.account,
        "debtor_agent": p.debtor.agent,
        "creditor_name": p.creditor.name,
        "creditor_account": p.creditor.account,
        "creditor_proxy_type": p.creditor.proxy_type,
        "creditor_proxy": p.creditor.proxy,
        "creditor_agent": p.creditor.agent,
        "instructed_minor": p.instructed.amount_minor,
        "instructed_ccy": p.instructed.currency.code,
        "source_minor": p.source.amount_minor,
        "source_ccy": p.source.currency.code,
        "target_minor": p.target.amount_minor,
        "target_ccy": p.target.currency.code,
        "fee_minor": p.fee.amount_minor,
        "fee_ccy": p.fee.currency.code,
        "fx_rate": p.fx_rate,
        "quote_id": p.quote_id,
        "remittance": p.remittance,
        "state": p.state.value,
        "reason_code": p.reason_code,
        "version": p.version,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "direction": p.direction.value,
        "origin": p.origin,
        "message_id": p.message_id,
        "follow_up_at": p.follow_up_at,
        "parties": parties_json(p.debtor, p.creditor),
    }


def _address_data(a: PostalAddress | None) -> dict[str, Any] | None:
    if a is None:
        return None
    data: dict[str, Any] = {k: v for k, v in (("country", a.country), ("town", a.town), ("street", a.street), ("building", a.building),
                              ("post_code", a.post_code), ("subdivision", a.subdivision)) if v is not None}
    if a.lines:
        data["lines"] = list(a.lines)
    return data


def _identification_data(i: Identification | None) -> dict[str, Any] | None:
    if i is None:
        return None
    return {k: v for k, v in (
        ("national_id", i.national_id), ("national_id_issuer", i.national_id_issuer),
        ("birth_date", i.birth_date.isoformat() if i.birth_date else None), ("birth_city", i.birth_city),
        ("birth_country", i.birth_country), ("lei", i.lei),
    ) if v is not None}


def parties_json(debtor: Party, creditor: Party) -> str | None:
    """The `parties` column (issue 12): the debtor's address and identification and the creditor's
    address as compact JSON, only what is there; None when none is."""
    data: dict[str, Any] = {}
    for role, party in (("debtor", debtor), ("creditor", creditor)):
        entry = {k: v for k, v in (("address", _address_data(party.address)),
                                   ("identification", _identification_data(party.identification))) if v is not None}
        if entry:
            data[role] = entry
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True) if data else None


def _address_of(data: dict[str, Any] | None) -> PostalAddress | None:
    if data is None:
        return None
    return PostalAddress(country=data["country"], town=data.get("town"), street=data.get("street"),
                         building=data.get("building"), post_code=data.get("post_code"),
                         subdivision=data.get("subdivision"), lines=tuple(data.get("lines", ())))


def _identification_of(data: dict[str, Any] | None) -> Identification | None:
    if data is None:
        return None
    born = data.get("birth_date")
    return Identification(
        national_id=data.get("national_id"), national_id_issuer=data.get("national_id_issuer"),
        birth_date=date.fromisoformat(born) if born else None, birth_city=data.get("birth_city"),
        birth_country=data.get("birth_country"), lei=data.get("lei"),
    )


def parties_from_json(text: str | None) -> tuple[PostalAddress | None, Identification | None, PostalAddress | None]:
    """(debtor address, debtor identification, creditor address) from the `parties` column."""
    if not text:
        return None, None, None
    data = json.loads(text)
    debtor, creditor = data.get("debtor", {}), data.get("creditor", {})
    return (_address_of(debtor.get("address")), _identification_of(debtor.get("identification")),
            _address_of(creditor.get("address")))


def _payment_from_row(r: Any) -> Payment:
    debtor_address, debtor_identification, creditor_address = parties_from_json(r.parties)
    return Payment(
        uetr=r.uetr,
        instruction_id=r.instruction_id,
        participant=r.participant,
        corridor=r.corridor,
        partner=r.partner,
        debtor=Party(name=r.debtor_name, account=r.debtor_account, agent=r.debtor_agent, address=debtor_address,
                     identification=debtor_identification),
        creditor=Party(
            name=r.creditor_name,
            account=r.creditor_account,
            proxy_type=r.creditor_proxy_type,
            proxy=r.creditor_proxy,
            agent=r.creditor_agent,
            address=creditor_address,
        ),
        instructed=Money(r.instructed_minor, CURRENCIES[r.instructed_ccy]),
        source=Money(r.source_minor, CURRENCIES[r.source_ccy]),
        target=Money(r.target_minor, CURRENCIES[r.target_ccy]),
        fee=Money(r.fee_minor, CURRENCIES[r.fee_ccy]),
        fx_rate=r.fx_rate,
        quote_id=r.quote_id,
        remittance=r.remittance,
        state=PaymentState(r.state),
        reason_code=r.reason_code,
        version=r.version,
        created_at=r.created_at,
        updated_at=r.updated_at,
        direction=Direction(r.direction),
        origin=r.origin,
        message_id=r.message_id,
        follow_up_at=r.follow_up_at,
    )


def _outbox_from_row(r: Any) -> OutboxMessage:
    return OutboxMessage(
        kind=r.kind,
        destination=r.destination,
        message_id=r.message_id,
        uetrs=tuple(r.uetrs.split()),
        key=r.key,
        body=r.body,
        created_at=r.created_at,
        id=r.id,
        attempts=r.attempts,
        deadline_at=r.deadline_at,
        ambiguous=bool(r.ambiguous),
        lease_until=r.lease_until,
    )


def _case_row(c: Case) -> dict[str, Any]:
    return {
        "id": c.id, "uetr": c.uetr, "kind": c.kind.value, "initiator": c.initiator.value, "counterpart": c.counterpart,
        "state": c.state.value, "reason_code": c.reason_code, "detail": c.detail, "ref": c.ref, "message_id": c.message_id,
        "amount_minor": c.amount.amount_minor if c.amount else None, "amount_ccy": c.amount.currency.code if c.amount else None,
        "back_minor": c.back_amount.amount_minor if c.back_amount else None,
        "back_ccy": c.back_amount.currency.code if c.back_amount else None,
        "rate": c.rate, "rate_rule": c.rate_rule, "attempts": c.attempts, "due_at": c.due_at, "reply_by": c.reply_by,
        "created_at": c.created_at, "updated_at": c.updated_at, "version": c.version,
    }


def _case_from_row(r: Any) -> Case:
    return Case(
        id=r.id, uetr=r.uetr, kind=CaseKind(r.kind), initiator=Initiator(r.initiator), counterpart=r.counterpart,
        state=CaseState(r.state), reason_code=r.reason_code, detail=r.detail, ref=r.ref, message_id=r.message_id,
        amount=Money(r.amount_minor, CURRENCIES[r.amount_ccy]) if r.amount_ccy else None,
        back_amount=Money(r.back_minor, CURRENCIES[r.back_ccy]) if r.back_ccy else None,
        rate=r.rate, rate_rule=r.rate_rule, attempts=r.attempts, due_at=r.due_at, reply_by=r.reply_by,
        created_at=r.created_at, updated_at=r.updated_at, version=r.version,
    )


def _history_row(h: HistoryEntry) -> dict[str, Any]:
    return {
        "uetr": h.uetr,
        "from_state": h.from_state.value if h.from_state else None,
        "to_state": h.to_state.value,
        "reason_code": h.reason_code,
        "detail": h.detail,
        "at": h.at,
    }


def _chunks(items: Sequence[Any], size: int = in_clause_max) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def payment_search_statement(query: PaymentQuery) -> Any:
    """The operator's payment search (issue 11), newest first on (created_at, uetr): with a
    participant, ix_payments_participant_created gives the order; with a reason,
    ix_payments_reason_created; with a state, ix_payments_state_created; else ix_payments_created, the other filters checked on the rows
    it walks. A keyset page reads from the cursor on, never the rows before it (no OFFSET)."""
    conditions = []
    if query.state is not None:
        conditions.append(payments.c.state == query.state.value)
    if query.corridor is not None:
        conditions.append(payments.c.corridor == query.corridor)
    if query.participant is not None:
        conditions.append(payments.c.participant == query.participant)
    if query.partner is not None:
        conditions.append(payments.c.partner == query.partner)
    if query.reason_code is not None:
        conditions.append(payments.c.reason_code == query.reason_code)
    if query.since is not None:
        conditions.append(payments.c.created_at >= query.since)
    if query.until is not None:
        conditions.append(payments.c.created_at < query.until)
    if query.before is not None:
        at, uetr = query.before
        conditions.append(tuple_(payments.c.created_at, payments.c.uetr) < tuple_(literal(at, UtcDateTime()), literal(uetr)))
    stmt = select(payments).order_by(payments.c.created_at.desc(), payments.c.uetr.desc()).limit(query.limit)
    return stmt.where(*conditions) if conditions else stmt


def _hold_row(h: ScreeningHold) -> dict[str, Any]:
    return {
        "uetr": h.uetr, "direction": h.direction, "held_at": h.held_at, "deadline_at": h.deadline_at, "outcome": h.outcome,
        "score": h.score, "entry_id": h.entry_id, "entry_name": h.entry_name, "matched_name": h.matched_name, "role": h.role,
        "datasets": " ".join(h.datasets), "list_version": h.list_version, "detail": h.detail, "decision": h.decision,
        "decided_by": h.decided_by, "decided_at": h.decided_at, "note": h.note, "version": h.version,
    }


def _hold_of(r: Any) -> ScreeningHold:
    return ScreeningHold(
        uetr=r.uetr, direction=r.direction, held_at=r.held_at, deadline_at=r.deadline_at, outcome=r.outcome,
        score=r.score, entry_id=r.entry_id, entry_name=r.entry_name, matched_name=r.matched_name, role=r.role,
        datasets=tuple(r.datasets.split()), list_version=r.list_version, detail=r.detail, decision=r.decision,
        decided_by=r.decided_by, decided_at=r.decided_at, note=r.note, version=r.version,
    )


class UnitOfWork:
    """One database transaction and the batch operations the handlers need."""

    def __init__(self, conn: AsyncConnection | _InLoopConnection, *, lock_rows: bool, lease: Lease | None = None) -> None:
        self._conn = conn
        self._lock_rows = lock_rows
        self._lease = lease

    async def run_sync(self, fn: Any) -> Any:
        """Run `fn(sync_connection)` in this transaction (Alembic, metadata comparisons)."""
        return await self._conn.run_sync(fn)

    async def _insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if isinstance(self._conn, _InLoopConnection):
            self._conn.insert_many(table, rows)
        else:
            await self._conn.execute(insert(table), rows)

    # -- instructions (idempotency keys) --
    async def instructions_get(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], InstructionRecord]:
        found: dict[tuple[str, str], InstructionRecord] = {}
        wanted = set(keys)
        for chunk in _chunks(list(wanted)):
            # two IN lists use the primary key index on every database; exact pairs are kept below
            if isinstance(self._conn, _InLoopConnection):
                conditions = {"participant": list({p for p, _ in chunk}), "instruction_id": [i for _, i in chunk]}
                for r in self._conn.select_where_in(instructions, conditions):
                    if (r.participant, r.instruction_id) in wanted:
                        found[(r.participant, r.instruction_id)] = InstructionRecord(*r)
                continue
            rows = await self._conn.execute(
                select(instructions).where(
                    instructions.c.participant.in_({p for p, _ in chunk}),
                    instructions.c.instruction_id.in_([i for _, i in chunk]),
                )
            )
            for r in rows:
                if (r.participant, r.instruction_id) in wanted:
                    found[(r.participant, r.instruction_id)] = InstructionRecord(**r._mapping)
        return found

    async def instructions_add(self, records: Sequence[InstructionRecord]) -> None:
        if records:
            await self._insert(instructions, [_asdict(r) for r in records])

    async def instructions_received(
        self, since: datetime, until: datetime, limit: int, *, after: tuple[datetime, str, str] | None = None
    ) -> list[InstructionRecord]:
        ins = instructions
        query = (
            select(ins)
            .where(ins.c.created_at >= since, ins.c.created_at < until)
            .order_by(ins.c.created_at, ins.c.participant, ins.c.instruction_id)
            .limit(limit)
        )
        if after is not None:  # (at, participant, id) > after, spelt out so each bind takes its column's type
            at, participant, instruction_id = after
            query = query.where(
                or_(
                    ins.c.created_at > at,
                    and_(
                        ins.c.created_at == at,
                        or_(ins.c.participant > participant, and_(ins.c.participant == participant, ins.c.instruction_id > instruction_id)),
                    ),
                )
            )
        return [InstructionRecord(**r._mapping) for r in await self._conn.execute(query)]

    # -- payments --
    async def payments_add(self, items: Sequence[Payment]) -> None:
        if items:
            await self._insert(payments, [_payment_row(p) for p in items])

    async def payments_get(self, uetrs: Sequence[str]) -> dict[str, Payment]:
        found: dict[str, Payment] = {}
        if isinstance(self._conn, _InLoopConnection):
            for chunk in _chunks(list(dict.fromkeys(uetrs))):
                for row in self._conn.select_by_keys(payments, "uetr", chunk):
                    found[row.uetr] = _payment_from_row(row)
            return found
        # rows are locked in one global order (by UETR), so two transactions never wait on each other
        for chunk in _chunks(sorted(set(uetrs))):
            query = select(payments).where(payments.c.uetr.in_(chunk))
            if self._lock_rows:
                query = query.order_by(payments.c.uetr).with_for_update()
            for r in await self._conn.execute(query):
                found[r.uetr] = _payment_from_row(r)
        return found

    async def payments_update(self, moves: Sequence[tuple[int, Payment]]) -> None:
        """Write moved payments: (the version read in this transaction, the payment now).

        A row whose stored version changed meanwhile is a concurrent writer: fail loudly."""
        if not moves:
            return
        stmt = (
            update(payments)
            .where(and_(payments.c.uetr == bindparam("b_uetr"), payments.c.version == bindparam("b_version")))
            .values(
                state=bindparam("state"),
                reason_code=bindparam("reason_code"),
                version=bindparam("version"),
                updated_at=bindparam("updated_at"),
                follow_up_at=bindparam("follow_up_at"),
            )
        )
        params = [
            {
                "b_uetr": p.uetr,
                "b_version": read_version,
                "state": p.state.value,
                "reason_code": p.reason_code,
                "version": p.version,
                "updated_at": p.updated_at,
                "follow_up_at": p.follow_up_at,
            }
            for read_version, p in sorted(moves, key=lambda m: m[1].uetr)
        ]
        if isinstance(self._conn, _InLoopConnection):
            rowcount = self._conn.update_many(
                "UPDATE payments SET state = ?, reason_code = ?, version = ?, updated_at = ?, follow_up_at = ? "
                "WHERE uetr = ? AND version = ?",
                [
                    (r["state"], r["reason_code"], r["version"], r["updated_at"], r["follow_up_at"], r["b_uetr"], r["b_version"])
                    for r in params
                ],
            )
        else:
            rowcount = (await self._conn.execute(stmt, params)).rowcount
        if rowcount >= 0 and rowcount != len(params):
            raise ConcurrentUpdate(f"concurrent update: {rowcount} of {len(params)} payment rows matched")

    async def payments_move_all(
        self, uetrs: Sequence[str], from_state: PaymentState, to_state: PaymentState, at: datetime
    ) -> list[str]:
        """Set-based move of those of `uetrs` still in `from_state` (no rows read into Python);
        returns the ones moved. The caller checks the move against the state table."""
        moved: list[str] = []
        for chunk in _chunks(sorted(set(uetrs))):
            if isinstance(self._conn, _InLoopConnection):
                moved.extend(self._conn.move_state(list(chunk), from_state.value, to_state.value, at))
                continue
            result = await self._conn.execute(
                update(payments)
                .where(payments.c.uetr.in_(chunk), payments.c.state == from_state.value)
                .values(state=to_state.value, version=payments.c.version + 1, updated_at=at)
                .returning(payments.c.uetr)
            )
            moved.extend(r.uetr for r in result)
        return moved

    async def payments_stale(
        self,
        partner: str,
        states: Sequence[PaymentState],
        updated_before: datetime,
        limit: int,
        direction: Direction = Direction.OUTBOUND,
    ) -> list[Payment]:
        rows = await self._conn.execute(
            select(payments)
            .where(
                payments.c.partner == partner,
                payments.c.direction == direction.value,
                payments.c.state.in_([s.value for s in states]),
                payments.c.updated_at < updated_before,
            )
            .order_by(payments.c.updated_at)
            .limit(limit)
        )
        return [_payment_from_row(r) for r in rows]

    # -- history --
    async def history_add(self, entries: Sequence[HistoryEntry]) -> None:
        if entries:
            await self._insert(payment_history, [_history_row(h) for h in entries])

    # -- outbox --
    async def outbox_add(self, messages: Sequence[OutboxMessage]) -> list[OutboxMessage]:
        """Insert and return the messages with their ids (needed to mark them sent later)."""
        if not messages:
            return []
        lease_owner = self._lease.owner if self._lease else None
        lease_for = timedelta(seconds=self._lease.duration_s) if self._lease else None
        rows = [
            {
                "kind": m.kind,
                "destination": m.destination,
                "message_id": m.message_id,
                "uetrs": " ".join(m.uetrs),
                "key": m.key,
                "body": m.body,
                "attempts": 0,
                "created_at": m.created_at,
                "sent_at": None,
                "deadline_at": m.deadline_at,
                "lease_owner": lease_owner,
                "lease_until": m.created_at + lease_for if lease_for is not None else None,
            }
            for m in messages
        ]
        if isinstance(self._conn, _InLoopConnection):
            ids = self._conn.insert_returning_ids(outbox, rows)
        else:
            result = await self._conn.execute(insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True), rows)
            ids = [r.id for r in result]
        return [
            OutboxMessage(**{**_asdict(m), "id": i, "lease_until": r["lease_until"]})
            for m, i, r in zip(messages, ids, rows, strict=True)
        ]

    async def outbox_existing(self, kind: str, message_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(message_ids)):
            rows = await self._conn.execute(
                select(outbox.c.message_id).where(outbox.c.kind == kind, outbox.c.message_id.in_(chunk))
            )
            found.update(r.message_id for r in rows)
        return found

    async def outbox_by_message_ids(self, kind: str, message_ids: Sequence[str]) -> list[OutboxMessage]:
        """Stored messages by id, sent or not (to answer a partner's resend with the same bytes)."""
        found: list[OutboxMessage] = []
        for chunk in _chunks(list(message_ids)):
            rows = await self._conn.execute(select(outbox).where(outbox.c.kind == kind, outbox.c.message_id.in_(chunk)))
            found.extend(_outbox_from_row(r) for r in rows)
        return found

    async def outbox_mark_sent(self, ids: Sequence[int], at: datetime) -> None:
        if isinstance(self._conn, _InLoopConnection):
            if ids:
                self._conn.update_many(
                    "UPDATE outbox SET sent_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?", [(at, i) for i in ids]
                )
            return
        for chunk in _chunks(sorted(ids)):
            await self._conn.execute(
                update(outbox).where(outbox.c.id.in_(chunk)).values(sent_at=at, lease_owner=None, lease_until=None)
            )

    async def outbox_record_failures(self, failures: Sequence[DeliveryFailure], at: datetime) -> None:
        """Count a failed delivery round per row: schedule the next one (lease released, so any
        replica's relay may take it when due) or, without `retry_at`, stop (sent_at set, the
        error kept)."""
        for f in sorted(failures, key=lambda f: f.outbox_id):
            values: dict[str, Any] = {
                "attempts": outbox.c.attempts + 1,
                "last_error": f.error[:500],
                "next_attempt_at": f.retry_at,
                "sent_at": at if f.retry_at is None else None,
                "lease_owner": None,
                "lease_until": None,
            }
            if f.ambiguous:  # once it may have reached the partner, it stays so
                values["ambiguous"] = True
            await self._conn.execute(update(outbox).where(outbox.c.id == f.outbox_id).values(**values))

    async def outbox_claim_due(self, now: datetime, limit: int, *, ignore_leases: bool = False) -> list[OutboxMessage]:
        """Claim unsent rows whose next attempt is due and whose lease (if any) has run out, for
        this unit of work's lease holder; PostgreSQL skips rows another replica is claiming.
        `ignore_leases`: take leased rows too (a single-process store starting up: no other
        replica can hold them)."""
        assert self._lease is not None, "claiming needs a lease holder"
        due = and_(
            outbox.c.sent_at.is_(None),
            (outbox.c.next_attempt_at.is_(None)) | (outbox.c.next_attempt_at <= now),
        )
        if not ignore_leases:
            due = and_(due, (outbox.c.lease_until.is_(None)) | (outbox.c.lease_until < now))
        pick = select(outbox.c.id).where(due).order_by(outbox.c.id).limit(limit)
        if self._lock_rows:
            pick = pick.with_for_update(skip_locked=True)
        ids = [r.id for r in await self._conn.execute(pick)]
        if not ids:
            return []
        until = now + timedelta(seconds=self._lease.duration_s)
        await self._conn.execute(
            update(outbox).where(outbox.c.id.in_(ids)).values(lease_owner=self._lease.owner, lease_until=until)
        )
        rows = await self._conn.execute(select(outbox).where(outbox.c.id.in_(ids)).order_by(outbox.c.id))
        return [_outbox_from_row(r) for r in rows]

    async def outbox_requeue(self, kind: str, message_ids: Sequence[str], now: datetime, deadline_at: datetime) -> list[OutboxMessage]:
        """Deliver stored messages again, byte for byte (a resend): those of `message_ids` that
        are not already waiting for delivery, leased to this unit of work's holder. A resend may
        have reached the partner before, so it is never a reason to reject."""
        if not message_ids:
            return []
        done = await self._conn.execute(
            select(outbox)
            .where(outbox.c.kind == kind, outbox.c.message_id.in_(sorted(set(message_ids))), outbox.c.sent_at.is_not(None))
            .order_by(outbox.c.id)
        )
        again = [_outbox_from_row(r) for r in done]
        if not again:
            return []
        lease_until = now + timedelta(seconds=self._lease.duration_s) if self._lease else None
        await self._conn.execute(
            update(outbox)
            .where(outbox.c.id.in_([m.id for m in again]))
            .values(
                sent_at=None, next_attempt_at=None, deadline_at=deadline_at, ambiguous=True,
                lease_owner=self._lease.owner if self._lease else None, lease_until=lease_until,
            )
        )
        return [
            OutboxMessage(**{**_asdict(m), "deadline_at": deadline_at, "ambiguous": True, "lease_until": lease_until})
            for m in again
        ]

    async def outbox_withdraw(self, kind: str, message_id: str, now: datetime) -> bool:
        """Withdraw a row that was never delivered (a recall before the send, issue 9): only while
        it waits for delivery (no sent_at), no replica holds it (lease_until null or past), no
        attempt may have reached the partner (not ambiguous) and it carries one payment. Then it
        is closed like a row given up (sent_at set, last_error 'withdrawn: recalled'): the
        poller never claims it and no handoff delivers it. True when this call withdrew it."""
        found = (await self._conn.execute(
            select(outbox.c.id, outbox.c.uetrs).where(outbox.c.kind == kind, outbox.c.message_id == message_id)
        )).first()
        if found is None or len(found.uetrs.split()) != 1:
            return False
        result = await self._conn.execute(
            update(outbox)
            .where(
                outbox.c.id == found.id,
                outbox.c.sent_at.is_(None),
                outbox.c.ambiguous.is_(False),
                (outbox.c.lease_until.is_(None)) | (outbox.c.lease_until < now),
            )
            .values(sent_at=now, last_error="withdrawn: recalled", lease_owner=None, lease_until=None)
        )
        return bool(result.rowcount == 1)

    async def payments_claim_follow_ups(self, now: datetime, limit: int) -> list[Payment]:
        """Claim payments whose follow-up is due: their follow-up time moves a lease ahead (so no
        other replica takes them meanwhile; if this one dies they come back due) and is counted.
        The handler then sets the real next follow-up, or none once the payment is final."""
        pick = (
            select(payments.c.uetr)
            .where(payments.c.follow_up_at.is_not(None), payments.c.follow_up_at <= now)
            .order_by(payments.c.follow_up_at)
            .limit(limit)
        )
        if self._lock_rows:
            pick = pick.with_for_update(skip_locked=True)
        uetrs = sorted(r.uetr for r in await self._conn.execute(pick))
        if not uetrs:
            return []
        lease_s = self._lease.duration_s if self._lease else 30.0
        await self._conn.execute(
            update(payments)
            .where(payments.c.uetr.in_(uetrs))
            .values(follow_up_at=now + timedelta(seconds=lease_s), follow_ups=payments.c.follow_ups + 1)
        )
        rows = await self._conn.execute(select(payments).where(payments.c.uetr.in_(uetrs)).order_by(payments.c.uetr))
        return [_payment_from_row(r) for r in rows]

    async def payments_set_follow_up(self, follow_ups: Sequence[tuple[str, datetime | None]]) -> None:
        """Set when payments are next followed up (no state change, so no version change)."""
        for uetr, at in sorted(follow_ups, key=lambda f: f[0]):
            await self._conn.execute(update(payments).where(payments.c.uetr == uetr).values(follow_up_at=at))

    async def outbox_count_attempt(self, ids: Sequence[int]) -> None:
        for chunk in _chunks(list(ids)):
            await self._conn.execute(update(outbox).where(outbox.c.id.in_(chunk)).values(attempts=outbox.c.attempts + 1))

    async def outbox_pending(self, kind: str, limit: int, after_id: int = 0) -> list[OutboxMessage]:
        rows = await self._conn.execute(
            select(outbox)
            .where(outbox.c.kind == kind, outbox.c.sent_at.is_(None), outbox.c.id > after_id)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        return [_outbox_from_row(r) for r in rows]

    async def outbox_pending_count(self) -> dict[str, int]:
        rows = await self._conn.execute(
            select(outbox.c.kind, func.count()).where(outbox.c.sent_at.is_(None)).group_by(outbox.c.kind)
        )
        return {kind: count for kind, count in rows}

    # -- exception cases (issue 9) --
    async def cases_add(self, cases: Sequence[Case]) -> None:
        if cases:
            await self._insert(payment_cases, [_case_row(c) for c in cases])

    async def cases_update(self, moves: Sequence[tuple[int, Case]]) -> None:
        """Write changed cases: (the version read in this transaction, the case now). A case
        whose stored version changed meanwhile is a concurrent writer: ConcurrentUpdate."""
        for read_version, c in sorted(moves, key=lambda m: m[1].id):
            row = _case_row(c)
            del row["id"]
            result = await self._conn.execute(
                update(payment_cases)
                .where(payment_cases.c.id == c.id, payment_cases.c.version == read_version)
                .values(**row)
            )
            if result.rowcount == 0:
                raise ConcurrentUpdate(f"concurrent update of case {c.id}")

    async def cases_get(self, ids: Sequence[str]) -> dict[str, Case]:
        found: dict[str, Case] = {}
        for chunk in _chunks(sorted(set(ids))):
            query = select(payment_cases).where(payment_cases.c.id.in_(chunk))
            if self._lock_rows:
                query = query.order_by(payment_cases.c.id).with_for_update()
            found.update((r.id, _case_from_row(r)) for r in await self._conn.execute(query))
        return found

    async def cases_by_ref(self, refs: Sequence[str]) -> dict[str, Case]:
        found: dict[str, Case] = {}
        for chunk in _chunks(sorted(set(refs))):
            rows = await self._conn.execute(select(payment_cases).where(payment_cases.c.ref.in_(chunk)))
            found.update((r.ref, _case_from_row(r)) for r in rows)
        return found

    async def cases_of(self, uetrs: Sequence[str]) -> dict[str, list[Case]]:
        found: dict[str, list[Case]] = {}
        for chunk in _chunks(sorted(set(uetrs))):
            rows = await self._conn.execute(
                select(payment_cases).where(payment_cases.c.uetr.in_(chunk)).order_by(payment_cases.c.created_at, payment_cases.c.id)
            )
            for r in rows:
                found.setdefault(r.uetr, []).append(_case_from_row(r))
        return found

    async def cases_claim_due(self, now: datetime, limit: int) -> list[Case]:
        """Claim cases whose `due_at` has come: it moves a lease ahead (no other replica takes them
        meanwhile; if this one dies they come back due). The handler sets the real next time."""
        pick = (
            select(payment_cases.c.id)
            .where(payment_cases.c.due_at.is_not(None), payment_cases.c.due_at <= now)
            .order_by(payment_cases.c.due_at)
            .limit(limit)
        )
        if self._lock_rows:
            pick = pick.with_for_update(skip_locked=True)
        ids = sorted(r.id for r in await self._conn.execute(pick))
        if not ids:
            return []
        lease_s = self._lease.duration_s if self._lease else 30.0
        await self._conn.execute(
            update(payment_cases).where(payment_cases.c.id.in_(ids)).values(due_at=now + timedelta(seconds=lease_s))
        )
        rows = await self._conn.execute(select(payment_cases).where(payment_cases.c.id.in_(ids)).order_by(payment_cases.c.id))
        return [_case_from_row(r) for r in rows]

    # -- inbound messages --
    async def inbound_seen(self, partner: str, message_ids: Sequence[str]) -> set[str]:
        seen: set[str] = set()
        for chunk in _chunks(list(message_ids)):
            if isinstance(self._conn, _InLoopConnection):
                rows = self._conn.select_where_in(inbound_messages, {"partner": [partner], "message_id": list(chunk)})
                seen.update(r.message_id for r in rows)
                continue
            rows = await self._conn.execute(
                select(inbound_messages.c.message_id).where(
                    inbound_messages.c.partner == partner, inbound_messages.c.message_id.in_(chunk)
                )
            )
            seen.update(r.message_id for r in rows)
        return seen

    async def inbound_add(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self._insert(inbound_messages, list(rows))

    # -- signed business messages (the replay rule: switch/service/signed.py) --
    async def signed_digests(self, partner: str, biz_msg_ids: Sequence[str]) -> dict[str, str]:
        """BizMsgIdr -> the SHA-256 of the Document first taken under it, for the ids known."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(biz_msg_ids)):
            if isinstance(self._conn, _InLoopConnection):
                rows = self._conn.select_where_in(signed_messages, {"partner": [partner], "biz_msg_id": list(chunk)})
            else:
                rows = await self._conn.execute(
                    select(signed_messages.c.biz_msg_id, signed_messages.c.document_sha256).where(
                        signed_messages.c.partner == partner, signed_messages.c.biz_msg_id.in_(chunk)
                    )
                )
            found.update((r.biz_msg_id, r.document_sha256) for r in rows)
        return found

    async def signed_add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of partner, biz_msg_id, message_type, document_sha256, received_at, envelope. On
        PostgreSQL a row another replica inserted meanwhile is kept (ON CONFLICT DO NOTHING): the
        first to commit is the first taken; SQLite has one writer."""
        if not rows:
            return
        if isinstance(self._conn, _InLoopConnection):
            self._conn.insert_many(signed_messages, list(rows))
        else:
            await self._conn.execute(postgresql.insert(signed_messages).on_conflict_do_nothing(), list(rows))

    # -- FX quotes asked for first (issue 11) --
    async def quotes_add(self, quotes: Sequence[StoredQuote]) -> None:
        if quotes:
            await self._conn.execute(insert(fx_quotes), [_quote_row(q) for q in quotes])

    async def quotes_get(self, quote_ids: Sequence[str]) -> dict[str, StoredQuote]:
        found: dict[str, StoredQuote] = {}
        for chunk in _chunks(sorted(set(quote_ids))):
            query = select(fx_quotes).where(fx_quotes.c.quote_id.in_(chunk))
            if self._lock_rows:
                query = query.order_by(fx_quotes.c.quote_id).with_for_update()
            found.update((r.quote_id, _quote_from_row(r)) for r in await self._conn.execute(query))
        return found

    async def quotes_by_request(self, participant: str, request_ids: Sequence[str]) -> dict[str, StoredQuote]:
        found: dict[str, StoredQuote] = {}
        for chunk in _chunks(sorted(set(request_ids))):
            rows = await self._conn.execute(
                select(fx_quotes).where(fx_quotes.c.participant == participant, fx_quotes.c.request_id.in_(chunk))
            )
            found.update((r.request_id, _quote_from_row(r)) for r in rows)
        return found

    async def quotes_use(self, uses: Sequence[tuple[str, int, str, str, datetime]]) -> None:
        """The conditional update that makes a quote single-use across replicas: it matches
        only an unused quote at the version read; a row that does not match is a race lost."""
        for quote_id, read_version, uetr, instruction_id, at in sorted(uses):
            result = await self._conn.execute(
                update(fx_quotes)
                .where(
                    fx_quotes.c.quote_id == quote_id,
                    fx_quotes.c.version == read_version,
                    fx_quotes.c.used_by_uetr.is_(None),
                )
                .values(used_by_uetr=uetr, used_by_instruction=instruction_id, used_at=at, version=read_version + 1)
            )
            if result.rowcount != 1:
                raise ConcurrentUpdate(f"quote {quote_id} was used or changed meanwhile")

    # -- reads for the HTTP API --
    async def history_of(self, uetr: str) -> list[HistoryEntry]:
        rows = await self._conn.execute(
            select(payment_history).where(payment_history.c.uetr == uetr).order_by(payment_history.c.id)
        )
        return [
            HistoryEntry(
                uetr=r.uetr,
                from_state=PaymentState(r.from_state) if r.from_state else None,
                to_state=PaymentState(r.to_state),
                reason_code=r.reason_code,
                detail=r.detail,
                at=r.at,
            )
            for r in rows
        ]

    # -- the operator's toolbox (issue 11) --
    async def payments_search(self, query: PaymentQuery) -> list[Payment]:
        return [_payment_from_row(r) for r in await self._conn.execute(payment_search_statement(query))]

    def _contains(self, column: Any, needle: bytes) -> Any:
        """SQL: the bytes of `column` contain `needle` (instr on SQLite, position on PostgreSQL)."""
        found = bindparam(None, needle, type_=LargeBinary())
        if isinstance(self._conn, _InLoopConnection) or self._conn.dialect.name == "sqlite":
            return func.instr(column, found) > 0
        return text(f"position(:needle IN {column.table.name}.{column.name}) > 0").bindparams(
            bindparam("needle", needle, type_=LargeBinary())
        )

    async def payment_messages(self, payment: Payment, moved_at: Sequence[datetime], window_s: float, limit: int) -> list[MessageRecord]:
        keys = [payment.uetr, f"{payment.participant}/{payment.instruction_id}"]
        sent_where = or_(outbox.c.key.in_(keys), and_(outbox.c.kind == "partner", outbox.c.message_id == payment.message_id)) \
            if payment.message_id else outbox.c.key.in_(keys)
        found: list[MessageRecord] = [
            MessageRecord("sent", r.kind, r.destination, r.message_id, r.created_at, r.sent_at, r.attempts, r.body)
            for r in await self._conn.execute(select(outbox).where(sent_where).order_by(outbox.c.id).limit(limit))
        ]
        needle = payment.uetr.encode()
        for at in sorted(set(moved_at)):
            since = at - timedelta(seconds=window_s)
            for r in await self._conn.execute(
                select(inbound_messages)
                .where(inbound_messages.c.received_at.between(since, at), self._contains(inbound_messages.c.body, needle))
                .limit(limit)
            ):
                found.append(MessageRecord("received", "partner", r.partner, r.message_id, r.received_at, None, 1, r.body))
            for r in await self._conn.execute(
                select(signed_messages)
                .where(signed_messages.c.received_at.between(since, at), self._contains(signed_messages.c.envelope, needle))
                .limit(limit)
            ):
                found.append(MessageRecord("received", "signed", r.partner, r.biz_msg_id, r.received_at, None, 1, r.envelope))
        unique = {(m.direction, m.kind, m.counterpart, m.message_id): m for m in found}
        return sorted(unique.values(), key=lambda m: (m.at, m.direction != "received"))[:limit]

    async def dlq_replays_get(self, keys: Sequence[tuple[str, int, int]]) -> dict[tuple[str, int, int], DlqReplay]:
        found: dict[tuple[str, int, int], DlqReplay] = {}
        for topic, partition, offset in sorted(set(keys)):
            rows = await self._conn.execute(
                select(dlq_replays).where(
                    dlq_replays.c.topic == topic, dlq_replays.c.dlq_partition == partition, dlq_replays.c.dlq_offset == offset
                )
            )
            for r in rows:
                found[(topic, partition, offset)] = DlqReplay(
                    topic=r.topic, partition=r.dlq_partition, offset=r.dlq_offset, state=r.state, operator=r.operator,
                    target_topic=r.target_topic, claimed_at=r.claimed_at, target_partition=r.target_partition,
                    target_offset=r.target_offset, replayed_at=r.replayed_at, version=r.version,
                )
        return found

    async def dlq_replays_put(self, moves: Sequence[tuple[int | None, DlqReplay]]) -> None:
        for read_version, d in sorted(moves, key=lambda m: m[1].key):
            row = {
                "topic": d.topic, "dlq_partition": d.partition, "dlq_offset": d.offset, "state": d.state,
                "operator": d.operator, "target_topic": d.target_topic, "target_partition": d.target_partition,
                "target_offset": d.target_offset, "claimed_at": d.claimed_at, "replayed_at": d.replayed_at, "version": d.version,
            }
            if read_version is None:
                dialect = sqlite if isinstance(self._conn, _InLoopConnection) or self._conn.dialect.name == "sqlite" else postgresql
                result = await self._conn.execute(dialect.insert(dlq_replays).values(**row).on_conflict_do_nothing())
            else:
                result = await self._conn.execute(
                    update(dlq_replays)
                    .where(dlq_replays.c.topic == d.topic, dlq_replays.c.dlq_partition == d.partition,
                           dlq_replays.c.dlq_offset == d.offset, dlq_replays.c.version == read_version)
                    .values(**row)
                )
            if result.rowcount != 1:
                raise ConcurrentUpdate(f"concurrent replay of dead letter {d.topic}/{d.partition}/{d.offset}")

    async def dlq_replays_remove(self, keys: Sequence[tuple[str, int, int]]) -> None:
        for topic, partition, offset in sorted(set(keys)):
            await self._conn.execute(
                dlq_replays.delete().where(
                    dlq_replays.c.topic == topic, dlq_replays.c.dlq_partition == partition, dlq_replays.c.dlq_offset == offset
                )
            )

    # -- screening holds (issue 12) --
    async def holds_add(self, holds: Sequence[ScreeningHold]) -> None:
        if holds:
            await self._conn.execute(insert(screening_holds), [_hold_row(h) for h in holds])

    async def holds_get(self, uetrs: Sequence[str]) -> dict[str, ScreeningHold]:
        if not uetrs:
            return {}
        rows = await self._conn.execute(select(screening_holds).where(screening_holds.c.uetr.in_(sorted(set(uetrs)))))
        return {r.uetr: _hold_of(r) for r in rows}

    async def holds_update(self, moves: Sequence[tuple[int, ScreeningHold]]) -> None:
        for read_version, h in sorted(moves, key=lambda m: m[1].uetr):
            result = await self._conn.execute(
                update(screening_holds)
                .where(screening_holds.c.uetr == h.uetr, screening_holds.c.version == read_version)
                .values(decision=h.decision, decided_by=h.decided_by, decided_at=h.decided_at, note=h.note, version=h.version)
            )
            if result.rowcount != 1:
                raise ConcurrentUpdate(f"concurrent decision on the hold of {h.uetr}")

    async def holds_list(self, open_only: bool, limit: int) -> list[ScreeningHold]:
        query = select(screening_holds)
        if open_only:
            query = query.where(screening_holds.c.decision.is_(None))
        rows = await self._conn.execute(query.order_by(screening_holds.c.held_at, screening_holds.c.uetr).limit(limit))
        return [_hold_of(r) for r in rows]

    async def holds_open_count(self) -> int:
        return int(
            (await self._conn.execute(select(func.count()).select_from(screening_holds).where(screening_holds.c.decision.is_(None))))
            .scalar_one()
        )

    async def payment_by_instruction(self, participant: str, instruction_id: str) -> Payment | None:
        record = (await self.instructions_get([(participant, instruction_id)])).get((participant, instruction_id))
        if record is None or record.uetr is None:
            return None
        return (await self.payments_get([record.uetr])).get(record.uetr)

    async def open_counts(self, states: Sequence[PaymentState]) -> dict[tuple[str, str], int]:
        """(partner, state) -> payments, for the in-flight and stuck gauges."""
        rows = await self._conn.execute(
            select(payments.c.partner, payments.c.state, func.count())
            .where(payments.c.state.in_([s.value for s in states]))
            .group_by(payments.c.partner, payments.c.state)
        )
        return {(partner, state): count for partner, state, count in rows}

    async def case_counts(self, states: Sequence[str]) -> dict[tuple[str, str], int]:
        """(kind, state) -> cases in those states, for the open-cases gauge."""
        rows = await self._conn.execute(
            select(payment_cases.c.kind, payment_cases.c.state, func.count())
            .where(payment_cases.c.state.in_(list(states)))
            .group_by(payment_cases.c.kind, payment_cases.c.state)
        )
        return {(kind, state): count for kind, state, count in rows}

    async def state_counts(self) -> dict[str, int]:
        rows = await self._conn.execute(select(payments.c.state, func.count()).group_by(payments.c.state))
        return {state: count for state, count in rows}

    async def inbound_bodies(self, partner: str, message_ids: Sequence[str]) -> dict[str, bytes]:
        """message id -> the body the partner first sent under it, for the ids already seen (a
        message id resent with other content is a duplicate, not a resend)."""
        found: dict[str, bytes] = {}
        for chunk in _chunks(list(message_ids)):
            if isinstance(self._conn, _InLoopConnection):
                rows = self._conn.select_where_in(inbound_messages, {"partner": [partner], "message_id": list(chunk)})
            else:
                rows = await self._conn.execute(
                    select(inbound_messages.c.message_id, inbound_messages.c.body).where(
                        inbound_messages.c.partner == partner, inbound_messages.c.message_id.in_(chunk)
                    )
                )
            found.update((r.message_id, bytes(r.body)) for r in rows)
        return found

    # -- audit log: appended to and read, never updated or deleted (no method here does either) --
    # -- corridor and partner controls, debtors' daily usage (issue 11) --
    async def controls_get(self) -> list[Control]:
        """Read once per admission batch: on SQLite straight through the cursor (a handful of rows)."""
        if isinstance(self._conn, _InLoopConnection):
            return [
                Control(ControlKind(kind), subject, bool(off), reason, by, datetime.fromisoformat(at).replace(tzinfo=timezone.utc), version)
                for kind, subject, off, reason, by, at, version in self._conn.fetch_all(_CONTROLS_GET_SQLITE, ())
            ]
        rows = await self._conn.execute(select(corridor_controls).order_by(corridor_controls.c.kind, corridor_controls.c.subject))
        return [
            Control(ControlKind(r.kind), r.subject, bool(r.off), r.reason, r.changed_by, r.changed_at, r.version) for r in rows
        ]

    async def controls_put(self, control: Control, read_version: int | None) -> None:
        row = {
            "kind": control.kind.value, "subject": control.subject, "off": control.off, "reason": control.reason,
            "changed_by": control.changed_by, "changed_at": control.changed_at, "version": control.version,
        }
        cc = corridor_controls
        if read_version is None:  # the first change of this subject: whoever inserts first wins
            dialect_insert = sqlite.insert if isinstance(self._conn, _InLoopConnection) else postgresql.insert
            result = await self._conn.execute(dialect_insert(cc).values(**row).on_conflict_do_nothing())
        else:
            result = await self._conn.execute(
                update(cc)
                .where(cc.c.kind == control.kind.value, cc.c.subject == control.subject, cc.c.version == read_version)
                .values(**row)
            )
        if result.rowcount != 1:
            raise ConcurrentUpdate(f"concurrent change of the {control.kind.value} control of {control.subject}")

    async def usage_claim(self, keys: Sequence[UsageKey]) -> dict[UsageKey, int]:
        """SQLite has one writer (this transaction): a plain read. PostgreSQL: the missing rows
        are inserted at 0 (ON CONFLICT DO NOTHING waits for a concurrent inserter of the same key
        to commit), then every row is locked FOR UPDATE in key order (no deadlock between two
        admissions), so the amount read is the last committed one and stays so until commit."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        u = debtor_daily_usage
        if self._lock_rows:
            await self._conn.execute(
                postgresql.insert(u)
                .values([{**k._asdict(), "amount_minor": 0, "payments": 0} for k in wanted])
                .on_conflict_do_nothing()
            )
        found = {k: 0 for k in wanted}
        if isinstance(self._conn, _InLoopConnection):  # the hot path on SQLite: one indexed look-up per key
            for k in wanted:
                row = self._conn.fetch_all(_USAGE_GET_SQLITE, (k.corridor, k.debtor, k.day.isoformat(), k.currency))
                found[k] = row[0][0] if row else 0
            return found
        for chunk in _chunks(wanted):
            query = select(u.c.corridor, u.c.debtor, u.c.day, u.c.currency, u.c.amount_minor).where(
                u.c.debtor.in_({k.debtor for k in chunk}), u.c.day.in_({k.day for k in chunk})
            )
            if self._lock_rows:
                query = query.order_by(u.c.corridor, u.c.debtor, u.c.day, u.c.currency).with_for_update()
            for r in await self._conn.execute(query):
                key = UsageKey(r.corridor, r.debtor, r.day, r.currency)
                if key in found:
                    found[key] = r.amount_minor
        return found

    async def usage_add(self, amounts: Sequence[tuple[UsageKey, int]]) -> None:
        totals: dict[UsageKey, tuple[int, int]] = {}
        for key, amount in amounts:
            before = totals.get(key, (0, 0))
            totals[key] = (before[0] + amount, before[1] + 1)
        if not totals:
            return
        if isinstance(self._conn, _InLoopConnection):  # plain executemany of one prepared upsert
            self._conn.update_many(
                _USAGE_ADD_SQLITE, [(k.corridor, k.debtor, k.day.isoformat(), k.currency, a, n) for k, (a, n) in sorted(totals.items())]
            )
            return
        await self._conn.execute(_USAGE_ADD_PG, [{**k._asdict(), "amount_minor": a, "payments": n} for k, (a, n) in sorted(totals.items())])

    async def audit_append(self, new: Sequence[NewAuditEntry]) -> list[AuditEntry]:
        """Chain `new` after the last entry and insert it, in this transaction (with the refusal
        or action it records, where there is one). Appends are serialised so the log stays one
        chain: on PostgreSQL by a transaction-scoped advisory lock taken before the last entry is
        read (several replicas append); SQLite has one writer. The lock is held to the commit, so
        an edge appends last in its transaction. Ids are the last id + 1, never a sequence: an
        append rolled back leaves no gap."""
        if not new:
            return []
        if self._lock_rows:  # PostgreSQL: any number of writers
            await self._conn.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK_KEY)))
        last = (
            await self._conn.execute(select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1))
        ).first()
        entries = chain_after(last.id if last else 0, last.hash if last else GENESIS_HASH, new)
        await self._insert(
            audit_log,
            [
                {
                    "id": e.id,
                    "at": e.at,
                    "actor": e.actor,
                    "action": e.action,
                    "subject": e.subject,
                    "detail": detail_text(e.detail),
                    "prev_hash": e.prev_hash,
                    "hash": e.hash,
                }
                for e in entries
            ],
        )
        return entries

    async def audit_entries(self, *, after_id: int = 0, limit: int, newest: bool = False) -> list[AuditEntry]:
        """Entries in id order: those after `after_id` (a page of a walk), or the newest `limit`."""
        query = select(audit_log)
        if newest:
            query = query.order_by(audit_log.c.id.desc()).limit(limit)
        else:
            query = query.where(audit_log.c.id > after_id).order_by(audit_log.c.id).limit(limit)
        rows = [_audit_from_row(r) for r in await self._conn.execute(query)]
        return rows[::-1] if newest else rows

    # -- settlement cycles (issue 10) --
    async def cycles_add(self, cycles: Sequence[SettlementCycle]) -> None:
        """Insert cycles; an id stored already is left as it is (replicas add the same calendar
        cycle: ON CONFLICT DO NOTHING, the first to commit wins)."""
        if not cycles:
            return
        dialect_insert = sqlite.insert if isinstance(self._conn, _InLoopConnection) else postgresql.insert
        await self._conn.execute(
            dialect_insert(settlement_cycles).on_conflict_do_nothing(index_elements=["id"]),
            [_cycle_row(c) for c in cycles],
        )

    async def cycles_get(self, ids: Sequence[str]) -> dict[str, SettlementCycle]:
        found: dict[str, SettlementCycle] = {}
        for chunk in _chunks(sorted(set(ids))):
            query = select(settlement_cycles).where(settlement_cycles.c.id.in_(chunk))
            if self._lock_rows:
                query = query.order_by(settlement_cycles.c.id).with_for_update()
            found.update((r.id, _cycle_from_row(r)) for r in await self._conn.execute(query))
        return found

    async def cycles_update(self, moves: Sequence[tuple[int, SettlementCycle]]) -> None:
        """Write changed cycles: (the version read in this transaction, the cycle now). A cycle
        whose stored version changed meanwhile (another replica closed or reconciled it, a
        report page arrived) is a concurrent writer: ConcurrentUpdate."""
        for read_version, c in sorted(moves, key=lambda m: m[1].id):
            row = _cycle_row(c)
            del row["id"]
            result = await self._conn.execute(
                update(settlement_cycles)
                .where(settlement_cycles.c.id == c.id, settlement_cycles.c.version == read_version)
                .values(**row)
            )
            if result.rowcount == 0:
                raise ConcurrentUpdate(f"concurrent update of settlement cycle {c.id}")

    async def cycles_due(self, now: datetime, limit: int) -> list[SettlementCycle]:
        """Open cycles past their cut-off (to close) and closed ones whose report is complete
        (to reconcile), oldest cut-off first. Not claimed: the version check on the cycle's
        update decides which replica does the work."""
        sc = settlement_cycles
        query = (
            select(sc)
            .where(
                or_(
                    and_(sc.c.state == CycleState.OPEN.value, sc.c.cut_off <= now),
                    and_(
                        sc.c.state == CycleState.CLOSED.value,
                        sc.c.report_last_page.is_not(None),
                        sc.c.report_pages >= sc.c.report_last_page,
                    ),
                )
            )
            .order_by(sc.c.cut_off, sc.c.id)
            .limit(limit)
        )
        return [_cycle_from_row(r) for r in await self._conn.execute(query)]

    async def cycles_list(self, partner: str | None, limit: int, before: datetime | None = None) -> list[SettlementCycle]:
        sc = settlement_cycles
        query = select(sc).order_by(sc.c.cut_off.desc(), sc.c.id.desc()).limit(limit)
        if partner is not None:
            query = query.where(sc.c.partner == partner)
        if before is not None:
            query = query.where(sc.c.cut_off < before)
        return [_cycle_from_row(r) for r in await self._conn.execute(query)]

    # -- the switch's books per cycle (issue 10) --
    async def books_close(self, cycle: SettlementCycle) -> int:
        """Book into `cycle` every movement of its partner not booked yet whose outcome was known
        before the cut-off (recon-design "Books"), set-based: the payments in one INSERT ...
        SELECT (none of them passes through Python), then the returns (few) row by row.

        A payment's outcome is its first history row to COMPLETED, REJECTED or CANCELLED (the
        partial index ix_payment_history_outcome_at finds the rows of the window); it settles if
        it completed. Not booked: payments without an outcome (TIMED_OUT, SUBMITTED, ACCEPTED:
        a report entry resolves them), and outbound ones that never reached the partner (never
        SUBMITTED: cancelled or refused before the send)."""
        booked = await self._book_payments(cycle)
        booked += await self._book_returns(cycle)
        await self._analyze_after_load("settlement_books", booked)
        return booked

    async def _analyze_after_load(self, table_name: str, rows: int) -> None:
        """PostgreSQL: refresh the planner's statistics of a table that just took a bulk load
        (its documentation's advice after loading data). Without them it takes a freshly loaded
        cycle for a few hundred rows and reads each keyset page by sorting the whole cycle on
        disk (20 s instead of 2 for a million report entries). Runs in this transaction, which
        then holds the table's ANALYZE lock to its commit; SQLite plans by its indexes alone."""
        if self._lock_rows and rows >= analyze_rows_min:
            await self._conn.execute(text(f"ANALYZE {table_name}"))

    async def _book_payments(self, cycle: SettlementCycle) -> int:
        p, h, b = payments, payment_history, settlement_books
        submitted = payment_history.alias("submitted")
        outcomes = (
            select(h.c.uetr, func.max(case((h.c.to_state == PaymentState.COMPLETED.value, 1), else_=0)).label("completed"))
            .where(text(f"payment_history.{OUTCOME_STATES_SQL}"), h.c.at >= cycle.books_from, h.c.at < cycle.cut_off)
            .group_by(h.c.uetr)
            .subquery("outcomes")
        )
        outbound = p.c.direction == Direction.OUTBOUND.value
        settles = outcomes.c.completed == 1
        rows = (
            select(
                p.c.uetr,
                literal(cycle.id, String),
                literal(BookKind.PAYMENT.value, String),
                p.c.uetr,
                outbound,
                case((outbound, p.c.target_minor), else_=p.c.source_minor),
                case((outbound, p.c.target_ccy), else_=p.c.source_ccy),
                case((settles, literal(Outcome.SETTLES.value, String)), else_=literal(Outcome.NOT_SETTLED.value, String)),
                p.c.participant,
                case((outbound, p.c.source_minor), else_=p.c.target_minor),
                case((outbound, p.c.source_ccy), else_=p.c.target_ccy),
                p.c.fee_minor,
                p.c.instruction_id,  # the EndToEndId both ways (adapters/iso_mapping.py, service/inbound.py)
                case((outbound, literal("T", String) + func.replace(p.c.uetr, "-", "")), else_=null()),  # iso_mapping.tx_id
                p.c.message_id,
            )
            .select_from(outcomes.join(p, p.c.uetr == outcomes.c.uetr))
            .where(
                p.c.partner == cycle.partner,
                ~exists().where(b.c.ref == p.c.uetr),
                or_(
                    p.c.direction == Direction.INBOUND.value,
                    settles,
                    exists().where(submitted.c.uetr == p.c.uetr, submitted.c.to_state == PaymentState.SUBMITTED.value),
                ),
            )
            # in ref order: the rows and their index entries are written in key order, which on
            # PostgreSQL is several times faster than in the join's order, and a cycle's books
            # are then read back (books_iter) in the order they lie on disk
            .order_by(p.c.uetr)
        )
        columns = [
            "ref", "cycle_id", "kind", "uetr", "outbound", "amount_minor", "currency", "outcome", "participant",
            "participant_amount_minor", "participant_currency", "fee_minor", "end_to_end_id", "tx_id", "message_id",
        ]
        result = await self._conn.execute(insert(b).from_select(columns, rows))
        return max(int(result.rowcount), 0)

    async def _book_returns(self, cycle: SettlementCycle) -> int:
        """The cycle's returns (pacs.004 both ways): every return case DONE before the cut-off
        and not booked yet. A return's ref is "R:" + its pacs.004 MsgId; a pacs.004 that
        carried several returns books each as "R:" + MsgId + "/" + its return id (or case id)."""
        pc, p = payment_cases, payments
        found = await self._conn.execute(
            select(
                pc.c.id, pc.c.ref, pc.c.message_id, pc.c.amount_minor, pc.c.amount_ccy, pc.c.back_minor, pc.c.back_ccy,
                pc.c.uetr, p.c.direction, p.c.participant, p.c.instruction_id, pc.c.kind,
            )
            .select_from(pc.join(p, p.c.uetr == pc.c.uetr))
            .where(
                # a partner's recall of an inbound payment, accepted, is returned by the switch's
                # pacs.004 without a return case of its own: the recall case books it
                or_(pc.c.kind == CaseKind.RETURN.value,
                    and_(pc.c.kind == CaseKind.RECALL.value, p.c.direction == Direction.INBOUND.value)),
                pc.c.state == CaseState.DONE.value,
                pc.c.amount_minor.is_not(None),
                pc.c.updated_at >= cycle.books_from,
                pc.c.updated_at < cycle.cut_off,
                p.c.partner == cycle.partner,
            )
            .order_by(pc.c.created_at, pc.c.id)
        )
        cases = list(found)
        if not cases:
            return 0
        names = [
            (return_message_id(r.uetr, r.id), r.id) if r.kind == CaseKind.RECALL.value else return_book_names(r.id, r.ref, r.message_id)
            for r in cases
        ]
        per_message: dict[str, int] = {}
        for message_id, _ in names:
            per_message[message_id] = per_message.get(message_id, 0) + 1
        entries = []
        for r, (message_id, return_id) in zip(cases, names, strict=True):
            ref = f"R:{message_id}" if per_message[message_id] == 1 else f"R:{message_id}/{return_id}"
            entries.append(
                BookEntry(
                    ref=ref[:80], cycle_id=cycle.id, kind=BookKind.RETURN, uetr=r.uetr,
                    outbound=r.direction == Direction.INBOUND.value,  # the hub returns an inbound payment: a debit
                    amount_minor=r.amount_minor, currency=r.amount_ccy, outcome=Outcome.SETTLES, participant=r.participant,
                    participant_amount_minor=r.back_minor if r.back_ccy else r.amount_minor,
                    participant_currency=r.back_ccy or r.amount_ccy, fee_minor=0, end_to_end_id=r.instruction_id,
                    tx_id=return_id if return_id != r.id else None, message_id=message_id[:35],
                )
            )
        booked = await self.books_find([e.ref for e in entries])
        new = [e for e in entries if e.ref not in booked]
        await self.books_add(new)
        return len(new)

    async def books_iter(self, cycle_id: str, after_ref: str | None, limit: int) -> list[BookEntry]:
        """A keyset page of the cycle's books. A cycle may hold a million: the rows come straight
        from the driver (no per-row SQLAlchemy processing), without the cycle id they all share."""
        after = "" if after_ref is None else " AND ref > {}"
        sql = f"SELECT {', '.join(BOOK_COLUMNS)} FROM settlement_books WHERE cycle_id = {{}}{after} ORDER BY ref LIMIT {{}}"
        params = [cycle_id, limit] if after_ref is None else [cycle_id, after_ref, limit]
        kinds, outcomes = _BOOK_KINDS, _OUTCOMES
        return [
            BookEntry(r[0], cycle_id, kinds[r[1]], r[2], bool(r[3]), r[4], r[5], outcomes[r[6]], r[7], r[8], r[9], r[10], r[11], r[12], r[13])
            for r in await self._fetch_raw(sql, params)
        ]

    async def _fetch_raw(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Rows as the driver returns them (tuples, asyncpg Records), for reads of many rows of
        plain columns; `sql` has a `{}` where each parameter goes. Same connection and
        transaction as the rest of the unit of work."""
        if isinstance(self._conn, _InLoopConnection):
            return self._conn.fetch_all(sql.format(*("?" * len(params))), params)
        raw = await self._conn.get_raw_connection()
        driver = raw.driver_connection
        return await driver.fetch(sql.format(*(f"${i + 1}" for i in range(len(params)))), *params)  # type: ignore[union-attr]

    async def books_find(self, refs: Sequence[str]) -> dict[str, BookEntry]:
        found: dict[str, BookEntry] = {}
        for chunk in _chunks(sorted(set(refs))):
            rows = await self._conn.execute(select(settlement_books).where(settlement_books.c.ref.in_(chunk)))
            found.update((r.ref, _book_from_row(r)) for r in rows)
        return found

    async def books_add(self, entries: Sequence[BookEntry]) -> None:
        if entries:
            await self._insert(settlement_books, [_book_row(e) for e in entries])

    async def books_mark(self, results: Sequence[tuple[str, str]]) -> None:
        if not results:
            return
        ordered = sorted(results)
        if isinstance(self._conn, _InLoopConnection):
            self._conn.update_many("UPDATE settlement_books SET result = ? WHERE ref = ?", [(res, ref) for ref, res in ordered])
            return
        b = settlement_books
        await self._conn.execute(
            update(b).where(b.c.ref == bindparam("b_ref")).values(result=bindparam("result")),
            [{"b_ref": ref, "result": res} for ref, res in ordered],
        )

    async def books_mark_matched(self, cycle_id: str) -> int:
        b = settlement_books
        result = await self._conn.execute(
            update(b).where(b.c.cycle_id == cycle_id, b.c.result.is_(None)).values(result=MATCHED)
        )
        return max(int(result.rowcount), 0)

    async def payments_settle(self, cycle_id: str, now: datetime) -> int:
        """Set-based: every payment booked in the cycle as a payment with result 'matched' and
        still COMPLETED moves to SETTLED (version + 1, updated_at now; follow_up_at stays NULL),
        each with its history row (COMPLETED -> SETTLED, "settled in cycle <id>"). States past
        COMPLETED (a return, a recall) stay as they are. Returns how many moved.

        A cycle may settle a million payments, so the order rows are touched in is chosen (see
        the two branches); no row passes through Python."""
        params = {
            "cycle_id": cycle_id, "kind": BookKind.PAYMENT.value, "matched": MATCHED, "completed": PaymentState.COMPLETED.value,
            "settled": PaymentState.SETTLED.value, "detail": f"settled in cycle {cycle_id}",
        }
        if isinstance(self._conn, _InLoopConnection):
            # One writer, so two statements see the same rows. The history rows go in UETR order
            # (the order of its index); the payments are updated in rowid order, so the table
            # and its (state, updated_at) index are walked forward: 12 s instead of 27 s for a
            # million, and still proportional to the cycle, not to the table.
            params["now"] = _sqlite_time(now)
            await self._conn.execute(
                text(
                    "INSERT INTO payment_history (uetr, from_state, to_state, reason_code, detail, at) "
                    "SELECT uetr, :completed, :settled, NULL, :detail, :now FROM payments WHERE state = :completed AND uetr IN ("
                    "SELECT uetr FROM settlement_books WHERE cycle_id = :cycle_id AND kind = :kind AND result = :matched)"
                ),
                params,
            )
            result = await self._conn.execute(
                text(
                    "UPDATE payments SET state = :settled, version = version + 1, updated_at = :now WHERE rowid IN ("
                    "SELECT p.rowid FROM settlement_books b JOIN payments p ON p.uetr = b.uetr WHERE b.cycle_id = :cycle_id "
                    "AND b.kind = :kind AND b.result = :matched AND p.state = :completed)"
                ),
                params,
            )
            return max(int(result.rowcount), 0)
        # PostgreSQL: one statement, the history rows from the UPDATE's RETURNING (a payment
        # another transaction moved meanwhile gets none). A million payments is the slowest step
        # of a cycle (20 s or so on the test server): every row is rewritten with its indexes
        # (state and updated_at are indexed, so no update stays on its page), some 3 GB of
        # write-ahead log with full-page images. Slicing it, or ordering it by heap position,
        # measured no faster.
        result = await self._conn.execute(
            text(
                "WITH moved AS (UPDATE payments p SET state = :settled, version = p.version + 1, updated_at = :now "
                "FROM settlement_books b WHERE b.uetr = p.uetr AND b.cycle_id = :cycle_id AND b.kind = :kind "
                "AND b.result = :matched AND p.state = :completed RETURNING p.uetr) "
                "INSERT INTO payment_history (uetr, from_state, to_state, reason_code, detail, at) "
                "SELECT uetr, :completed, :settled, NULL, :detail, :now FROM moved"
            ).bindparams(bindparam("now", type_=UtcDateTime())),
            {**params, "now": now},
        )
        return max(int(result.rowcount), 0)

    # -- the partner's report pages and entries (issue 10) --
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
        """Store a page, its entries and count it on its cycle, in this transaction. A page
        stored already (partner, report id, page number) is a report sent twice: False, and
        nothing is written (ON CONFLICT DO NOTHING: of two replicas taking the same page at
        once, the second waits for the first and then finds it). The cycle must be stored.

        Entries go in bulk: plain DB-API executemany on SQLite, binary COPY on PostgreSQL."""
        page = {
            "partner": partner, "report_id": report_id, "page_no": page_no, "message_id": message_id, "cycle_id": cycle_id,
            "last_page": last_page, "entries": len(entries), "received_at": received_at,
        }
        if isinstance(self._conn, _InLoopConnection):
            stored = await self._conn.execute(sqlite.insert(settlement_reports).on_conflict_do_nothing(), [page])
        else:
            stored = await self._conn.execute(postgresql.insert(settlement_reports).on_conflict_do_nothing(), [page])
        if stored.rowcount == 0:
            return False
        base = page_no * entry_page_seq_step
        in_loop = isinstance(self._conn, _InLoopConnection)
        records = [
            (
                cycle_id, base + i, report_id, page_no, e.entry_ref, e.uetr, e.end_to_end_id, e.tx_id, e.message_id,
                e.is_return, e.outbound, e.amount_minor, e.currency, e.booked,
                # SQLite keeps a DATE as ISO text (as SQLAlchemy writes it)
                e.booking_date.isoformat() if in_loop and e.booking_date is not None else e.booking_date,
            )
            for i, e in enumerate(entries)
        ]
        if records:
            if isinstance(self._conn, _InLoopConnection):
                self._conn.insert_tuples("settlement_entries", ENTRY_COLUMNS, records)
            else:
                raw = await self._conn.get_raw_connection()
                await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                    "settlement_entries", records=records, columns=ENTRY_COLUMNS
                )
        sc = settlement_cycles
        counted = (await self._conn.execute(
            update(sc)
            .where(sc.c.id == cycle_id)
            .values(
                report_id=report_id,
                report_pages=sc.c.report_pages + 1,
                report_last_page=page_no if last_page else sc.c.report_last_page,
                entries_count=sc.c.entries_count + len(entries),
                version=sc.c.version + 1,
            )
            .returning(sc.c.report_pages, sc.c.report_last_page, sc.c.entries_count)
        )).first()
        if counted is None:
            raise InvariantViolation(f"report page for settlement cycle {cycle_id}, which is not stored")
        if counted.report_last_page is not None and counted.report_pages >= counted.report_last_page:
            await self._analyze_after_load("settlement_entries", counted.entries_count)
        return True

    async def report_entries_iter(self, cycle_id: str, after_seq: int | None, limit: int) -> list[StatementEntry]:
        """A keyset page of the cycle's report entries, straight from the driver (as books_iter)."""
        after = "" if after_seq is None else " AND seq > {}"
        sql = f"SELECT {', '.join(ENTRY_READ_COLUMNS)} FROM settlement_entries WHERE cycle_id = {{}}{after} ORDER BY seq LIMIT {{}}"
        params = [cycle_id, limit] if after_seq is None else [cycle_id, after_seq, limit]
        rows = await self._fetch_raw(sql, params)
        if isinstance(self._conn, _InLoopConnection):  # SQLite: booleans as 0/1, dates as ISO text
            return [
                StatementEntry(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), bool(r[7]), r[8], r[9], bool(r[10]), _iso_date(r[11]))
                for r in rows
            ]
        return [StatementEntry(*r) for r in rows]

    async def report_pages(self, cycle_id: str) -> list[dict[str, Any]]:
        r = settlement_reports
        rows = await self._conn.execute(
            select(r).where(r.c.cycle_id == cycle_id).order_by(r.c.received_at, r.c.report_id, r.c.page_no)
        )
        return [dict(row._mapping) for row in rows]

    # -- reconciliation breaks (issue 10) --
    async def breaks_add(self, breaks: Sequence[Break]) -> None:
        if breaks:
            await self._insert(recon_breaks, [_break_row(b) for b in breaks])

    async def breaks_update(self, moves: Sequence[tuple[int, Break]]) -> None:
        for read_version, b in sorted(moves, key=lambda m: m[1].id):
            row = _break_row(b)
            del row["id"]
            result = await self._conn.execute(
                update(recon_breaks).where(recon_breaks.c.id == b.id, recon_breaks.c.version == read_version).values(**row)
            )
            if result.rowcount == 0:
                raise ConcurrentUpdate(f"concurrent update of break {b.id}")

    async def breaks_get(self, ids: Sequence[str]) -> dict[str, Break]:
        found: dict[str, Break] = {}
        for chunk in _chunks(sorted(set(ids))):
            query = select(recon_breaks).where(recon_breaks.c.id.in_(chunk))
            if self._lock_rows:
                query = query.order_by(recon_breaks.c.id).with_for_update()
            found.update((r.id, _break_from_row(r)) for r in await self._conn.execute(query))
        return found

    async def breaks_list(self, cycle_id: str | None, partner: str | None, open_only: bool, limit: int) -> list[Break]:
        rb = recon_breaks
        query = select(rb).order_by(rb.c.created_at, rb.c.id).limit(limit)
        if cycle_id is not None:
            query = query.where(rb.c.cycle_id == cycle_id)
        if partner is not None:
            query = query.where(rb.c.partner == partner)
        if open_only:
            query = query.where(rb.c.state.in_(BREAK_OPEN_STATES))
        return [_break_from_row(r) for r in await self._conn.execute(query)]

    async def breaks_open_for(self, uetrs: Sequence[str]) -> dict[str, list[Break]]:
        rb = recon_breaks
        found: dict[str, list[Break]] = {}
        for chunk in _chunks(sorted(set(uetrs))):
            rows = await self._conn.execute(
                select(rb).where(rb.c.uetr.in_(chunk), rb.c.state.in_(BREAK_OPEN_STATES)).order_by(rb.c.created_at, rb.c.id)
            )
            for r in rows:
                found.setdefault(r.uetr, []).append(_break_from_row(r))
        return found

    async def break_counts(self) -> dict[tuple[str, str, str], int]:
        rb = recon_breaks
        rows = await self._conn.execute(
            select(rb.c.partner, rb.c.kind, rb.c.state, func.count()).group_by(rb.c.partner, rb.c.kind, rb.c.state)
        )
        return {(partner, kind, state): count for partner, kind, state, count in rows}

AUDIT_LOCK_KEY: Final = 0x6D656B6F6E67  # pg_advisory_xact_lock key of the audit chain ("mekong")


def _quote_row(sq: StoredQuote) -> dict[str, Any]:
    q = sq.quote
    return {
        "quote_id": q.quote_id,
        "participant": sq.participant,
        "request_id": sq.request_id,
        "corridor": sq.corridor,
        "fixed_side": q.fixed_side.value,
        "source_minor": q.source.amount_minor,
        "source_ccy": q.source.currency.code,
        "target_minor": q.target.amount_minor,
        "target_ccy": q.target.currency.code,
        "fee_minor": q.fee.amount_minor,
        "fee_bps": q.fee_bps,
        "mid_rate": f"{q.mid_rate:f}",
        "customer_rate": f"{q.customer_rate:f}",
        "spread_bps": q.spread_bps,
        "rounding_favours": q.rounding_favours,
        "rate_source": q.rate_source[:160],
        "rate_as_of": q.rate_as_of,
        "created_at": q.created_at,
        "expires_at": q.expires_at,
        "used_by_uetr": sq.used_by_uetr,
        "used_by_instruction": sq.used_by_instruction,
        "used_at": sq.used_at,
        "version": sq.version,
    }


def _quote_from_row(r: Any) -> StoredQuote:
    source_ccy, target_ccy = CURRENCIES[r.source_ccy], CURRENCIES[r.target_ccy]
    quote = FxQuote(
        quote_id=r.quote_id,
        fixed_side=FixedSide(r.fixed_side),
        source=Money(r.source_minor, source_ccy),
        target=Money(r.target_minor, target_ccy),
        mid_rate=Decimal(r.mid_rate),
        customer_rate=Decimal(r.customer_rate),
        spread_bps=r.spread_bps,
        fee=Money(r.fee_minor, source_ccy),
        rate_source=r.rate_source,
        rate_as_of=r.rate_as_of,
        created_at=r.created_at,
        expires_at=r.expires_at,
        fee_bps=r.fee_bps,
        rounding_favours=r.rounding_favours,
    )
    return StoredQuote(
        quote, r.participant, r.corridor, r.request_id, r.used_by_uetr, r.used_by_instruction, r.used_at, r.version
    )


def _audit_from_row(r: Any) -> AuditEntry:
    try:
        detail = json.loads(r.detail)
    except ValueError:
        detail = r.detail  # not JSON any more: the walk reports the entry's hash as not matching
    return AuditEntry(r.id, r.at, r.actor, r.action, r.subject, detail, r.prev_hash, r.hash)


# ---------------------------------------------------------------- settlement rows (issue 10)

analyze_rows_min: Final = 10_000  # a load this large refreshes the table's planner statistics (PostgreSQL)
entry_page_seq_step: Final = 10**7  # seq = page_no * this + the entry's position on its page
ENTRY_COLUMNS: Final = (
    "cycle_id", "seq", "report_id", "page_no", "entry_ref", "uetr", "end_to_end_id", "tx_id", "message_id", "is_return",
    "outbound", "amount_minor", "currency", "booked", "booking_date",
)
# StatementEntry's fields, in its order
ENTRY_READ_COLUMNS: Final = (
    "seq", "entry_ref", "uetr", "end_to_end_id", "tx_id", "message_id", "is_return", "outbound", "amount_minor", "currency",
    "booked", "booking_date",
)
BREAK_OPEN_STATES: Final = (BreakState.OPEN.value, BreakState.FOLLOWING_UP.value)


BOOK_COLUMNS: Final = (
    "ref", "kind", "uetr", "outbound", "amount_minor", "currency", "outcome", "participant",
    "participant_amount_minor", "participant_currency", "fee_minor", "end_to_end_id", "tx_id", "message_id",
)  # BookEntry's fields in its order, but the cycle id
_BOOK_KINDS: Final = {k.value: k for k in BookKind}
_OUTCOMES: Final = {o.value: o for o in Outcome}


@lru_cache(maxsize=64)  # a report has few distinct booking dates
def _iso_date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _cycle_row(c: SettlementCycle) -> dict[str, Any]:
    return {
        "id": c.id, "partner": c.partner, "currency": c.currency, "opens_at": c.opens_at, "cut_off": c.cut_off,
        "settlement_date": c.settlement_date, "state": c.state.value, "closed_at": c.closed_at, "reconciled_at": c.reconciled_at,
        "books_count": c.books_count, "report_id": c.report_id, "report_pages": c.report_pages,
        "report_last_page": c.report_last_page, "entries_count": c.entries_count, "summary": c.summary, "version": c.version,
    }


def _cycle_from_row(r: Any) -> SettlementCycle:
    return SettlementCycle(
        id=r.id, partner=r.partner, currency=r.currency, opens_at=r.opens_at, cut_off=r.cut_off,
        settlement_date=r.settlement_date, state=CycleState(r.state), closed_at=r.closed_at, reconciled_at=r.reconciled_at,
        books_count=r.books_count, report_id=r.report_id, report_pages=r.report_pages, report_last_page=r.report_last_page,
        entries_count=r.entries_count, summary=r.summary, version=r.version,
    )


def _book_row(b: BookEntry) -> dict[str, Any]:
    return {
        "ref": b.ref, "cycle_id": b.cycle_id, "kind": b.kind.value, "uetr": b.uetr, "outbound": b.outbound,
        "amount_minor": b.amount_minor, "currency": b.currency, "outcome": b.outcome.value, "participant": b.participant,
        "participant_amount_minor": b.participant_amount_minor, "participant_currency": b.participant_currency,
        "fee_minor": b.fee_minor, "end_to_end_id": b.end_to_end_id, "tx_id": b.tx_id, "message_id": b.message_id,
        "result": b.result,
    }


def _book_from_row(r: Any) -> BookEntry:
    return BookEntry(
        ref=r.ref, cycle_id=r.cycle_id, kind=BookKind(r.kind), uetr=r.uetr, outbound=bool(r.outbound),
        amount_minor=r.amount_minor, currency=r.currency, outcome=Outcome(r.outcome), participant=r.participant,
        participant_amount_minor=r.participant_amount_minor, participant_currency=r.participant_currency,
        fee_minor=r.fee_minor, end_to_end_id=r.end_to_end_id, tx_id=r.tx_id, message_id=r.message_id, result=r.result,
    )


def return_book_names(case_id: str, ref: str, message_id: str | None) -> tuple[str, str]:
    """(the pacs.004 MsgId, the return's own id) of a return case: the switch's own pacs.004
    has the case's message id; a partner's is named in the case ref
    ("partner/<partner>/<MsgId>/<RtrId>", switch/service/returns.py)."""
    if message_id:
        return message_id, case_id
    parts = ref.split("/")
    if len(parts) == 4 and parts[0] == "partner":
        return parts[2], parts[3]
    return case_id, case_id


def _break_row(b: Break) -> dict[str, Any]:
    return {
        "id": b.id, "cycle_id": b.cycle_id, "partner": b.partner, "kind": b.kind.value, "state": b.state.value,
        "action": b.action.value, "uetr": b.uetr, "book_ref": b.book_ref, "entry_seq": b.entry_seq, "entry_ref": b.entry_ref,
        "currency": b.currency, "book_amount_minor": b.book_amount_minor, "entry_amount_minor": b.entry_amount_minor,
        "detail": b.detail, "note": b.note, "history": break_history_text(b.history), "created_at": b.created_at,
        "updated_at": b.updated_at, "version": b.version,
    }


def break_history_text(history: Sequence[BreakEvent]) -> str:
    """A break's history as stored: a JSON list of {at, state, actor, text}, oldest first."""
    return json.dumps(
        [{"at": e.at.isoformat(), "state": e.state.value, "actor": e.actor, "text": e.text} for e in history],
        ensure_ascii=False, separators=(",", ":"),
    )


def break_history_from_text(value: str) -> tuple[BreakEvent, ...]:
    return tuple(
        BreakEvent(at=datetime.fromisoformat(e["at"]), state=BreakState(e["state"]), actor=e["actor"], text=e["text"])
        for e in json.loads(value)
    )


def _break_from_row(r: Any) -> Break:
    return Break(
        id=r.id, cycle_id=r.cycle_id, partner=r.partner, kind=BreakKind(r.kind), state=BreakState(r.state),
        action=BreakAction(r.action), uetr=r.uetr, book_ref=r.book_ref, entry_seq=r.entry_seq, entry_ref=r.entry_ref,
        currency=r.currency, book_amount_minor=r.book_amount_minor, entry_amount_minor=r.entry_amount_minor,
        detail=r.detail, note=r.note, history=break_history_from_text(r.history), created_at=r.created_at,
        updated_at=r.updated_at, version=r.version,
    )

_RETRIABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected


def _raise_retriable_as_conflict(exc: DBAPIError) -> None:
    """A database error that only says this transaction lost a race becomes the port's
    ConcurrentUpdate (the bus runs the unit of work again); any other stays what it is."""
    if is_retriable(exc):
        raise ConcurrentUpdate(f"the database broke a race: {exc.orig}") from exc


def is_retriable(exc: BaseException) -> bool:
    """A transaction that failed this way wrote nothing and may simply be run again: a version
    check that found another writer first, a deadlock PostgreSQL broke, SQLite busy."""
    if isinstance(exc, ConcurrentUpdate):
        return True
    if isinstance(exc, DBAPIError):
        for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
            code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
            if code in _RETRIABLE_SQLSTATES:
                return True
        return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)
    return False


def _asdict(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


class _InLoopConnection:
    """A synchronous SQLAlchemy connection behind the async interface UnitOfWork uses.

    SQLite is an in-process library: a statement costs microseconds, and sending each one to a
    worker thread (aiosqlite) costs more than running it. So for SQLite the store runs statements
    on the event loop itself; WAL mode with synchronous=NORMAL keeps commits free of fsync."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self._conn.execute(statement) if parameters is None else self._conn.execute(statement, parameters)

    async def run_sync(self, fn: Any) -> Any:
        return fn(self._conn)

    # The hot writes skip SQLAlchemy's per-row parameter processing: plain DB-API executemany on
    # the same connection and transaction, with values in the form SQLAlchemy's SQLite dialect
    # stores them (so its reads see exactly what it would have written).
    def _cursor(self) -> Any:
        return self._conn.connection.driver_connection.cursor()  # type: ignore[union-attr]

    def insert_many(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        sql, values = _insert_values(table, rows)
        self._cursor().executemany(sql, values)

    def insert_returning_ids(self, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
        sql, values = _insert_values(table, rows)
        cur = self._cursor()
        ids = []
        for row in values:
            cur.execute(sql, row)
            ids.append(int(cur.lastrowid))
        return ids

    def select_by_keys(self, table: Table, key: str, values: Sequence[Any]) -> list[Any]:
        """Rows whose `key` is one of `values`, as named tuples with datetimes read back in UTC."""
        return self.select_where_in(table, {key: values})

    def select_where_in(self, table: Table, conditions: dict[str, Sequence[Any]]) -> list[Any]:
        """Rows where every column of `conditions` is one of its values (an AND of IN lists)."""
        columns = [c.name for c in table.columns]
        where = " AND ".join(f"{column} IN ({', '.join('?' * len(values))})" for column, values in conditions.items())
        sql = f"SELECT {', '.join(columns)} FROM {table.name} WHERE {where}"
        times = [i for i, c in enumerate(table.columns) if isinstance(c.type, UtcDateTime)]
        row_type = _row_types.get(table.name)
        if row_type is None:  # made once per table: building a namedtuple class costs ~50 µs
            row_type = _row_types[table.name] = namedtuple(f"{table.name}_row", columns)  # type: ignore[misc]
        out = []
        for raw in self._cursor().execute(sql, [v for values in conditions.values() for v in values]):
            values_ = list(raw)
            for i in times:
                if values_[i] is not None:
                    values_[i] = datetime.fromisoformat(values_[i]).replace(tzinfo=timezone.utc)
            out.append(row_type(*values_))
        return out

    def move_state(self, uetrs: list[str], from_state: str, to_state: str, at: datetime) -> list[str]:
        sql = (
            "UPDATE payments SET state = ?, version = version + 1, updated_at = ? "
            f"WHERE state = ? AND uetr IN ({', '.join('?' * len(uetrs))}) RETURNING uetr"
        )
        return [row[0] for row in self._cursor().execute(sql, [to_state, _sqlite_time(at), from_state, *uetrs])]

    def fetch_all(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._cursor().execute(sql, params).fetchall()  # type: ignore[no-any-return]

    def insert_tuples(self, table_name: str, columns: Sequence[str], records: Sequence[tuple[Any, ...]]) -> None:
        """Rows already in the form SQLite stores (times and dates as text), straight to executemany."""
        sql = f"INSERT INTO {table_name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        self._cursor().executemany(sql, records)

    def update_many(self, sql: str, params: Sequence[tuple[Any, ...]]) -> int:
        cur = self._cursor()
        cur.executemany(sql, [tuple(_sqlite_value(v) for v in row) for row in params])
        return int(cur.rowcount)


_row_types: dict[str, Any] = {}

# the controls and the debtors' daily usage (issue 11), built once: on the admission hot path
_CONTROLS_GET_SQLITE: Final = (
    "SELECT kind, subject, off, reason, changed_by, changed_at, version FROM corridor_controls ORDER BY kind, subject"
)
_USAGE_GET_SQLITE: Final = (
    "SELECT amount_minor FROM debtor_daily_usage WHERE corridor = ? AND debtor = ? AND day = ? AND currency = ?"
)
_USAGE_ADD_SQLITE: Final = (
    "INSERT INTO debtor_daily_usage (corridor, debtor, day, currency, amount_minor, payments) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (corridor, debtor, day, currency) DO UPDATE SET amount_minor = amount_minor + excluded.amount_minor, "
    "payments = payments + excluded.payments"
)
_usage_pg_insert = postgresql.insert(debtor_daily_usage)
_USAGE_ADD_PG: Final = _usage_pg_insert.on_conflict_do_update(
    index_elements=["corridor", "debtor", "day", "currency"],
    set_={
        "amount_minor": debtor_daily_usage.c.amount_minor + _usage_pg_insert.excluded.amount_minor,
        "payments": debtor_daily_usage.c.payments + _usage_pg_insert.excluded.payments,
    },
)


def _insert_values(table: Table, rows: Sequence[dict[str, Any]]) -> tuple[str, list[tuple[Any, ...]]]:
    """The INSERT statement for the rows' columns and their values as SQLite takes them: only
    the timestamp columns need converting."""
    columns = list(rows[0])
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    times = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, UtcDateTime)]
    values = []
    for r in rows:
        row = [r[c] for c in columns]
        for i in times:
            row[i] = _sqlite_value(row[i])
        values.append(tuple(row))
    return sql, values


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _sqlite_time(value)
    return value


@lru_cache(maxsize=256)  # a batch stamps many rows with the same instant
def _sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy's SQLite dialect stores for a DATETIME: naive UTC, microseconds."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    # No checkpoint (and its fsync) on the event loop: Store.checkpoint() runs them in a thread.
    cur.execute("PRAGMA wal_autocheckpoint=0")
    cur.close()


def protect_stored_cards(conn: Connection, pans: PanTokens, is_card: Mapping[str, Callable[[str], bool]]) -> int:
    """Replace the card numbers that payments stored before cards were tokenised by their tokens
    (a one-off, `mekong db protect-cards`, run with the new version's key): `is_card` per partner.
    Returns how many payments changed. Runs inside the caller's transaction (Store.unit_of_work
    + run_sync)."""
    p = payments
    changed: list[dict[str, Any]] = []
    for row in conn.execute(select(p.c.uetr, p.c.partner, p.c.debtor_account, p.c.creditor_account)):
        card = is_card.get(row.partner)
        if card is None:
            continue
        debtor, creditor = (
            pans.token(a) if a is not None and not is_token(a) and card(a) else a for a in (row.debtor_account, row.creditor_account)
        )
        if (debtor, creditor) != (row.debtor_account, row.creditor_account):
            changed.append({"u": row.uetr, "d": debtor, "c": creditor})
    if changed:
        conn.execute(
            update(p).where(p.c.uetr == bindparam("u")).values(debtor_account=bindparam("d"), creditor_account=bindparam("c")),
            changed,
        )
    return len(changed)


def shown_url(url: str) -> str:
    """A database URL as it may be logged or printed: the password masked (***)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparseable: show nothing of it rather than a secret
        return "<database url>"


class Store:
    def __init__(self, url: str, *, pg_schema: str | None = None) -> None:
        """`url`: a SQLAlchemy URL, `sqlite+aiosqlite:///path` or `postgresql+asyncpg://...`.
        `pg_schema`: a PostgreSQL schema to work in (search_path); the tests give each run its own."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._pg_schema = pg_schema
        self.pg_schema = pg_schema
        self._engine: AsyncEngine | None = None
        self._sync_engine: Engine | None = None
        self._writer: Connection | None = None  # SQLite: the one writing connection, kept open
        self._write_lock = asyncio.Lock()
        # the relay's lease on outbox rows written through this store (set by the composition
        # root); None: rows are written unleased, due for any relay at once
        self.lease: Lease | None = None

    async def start(self, *, migrate: bool = True) -> None:
        if self._engine is None and self._sync_engine is None:
            if self.is_sqlite:
                sync_url = make_url(self.url).set(drivername="sqlite")
                self._sync_engine = create_engine(sync_url, pool_size=2, max_overflow=4)
                event.listen(self._sync_engine, "connect", _sqlite_pragmas)
            else:
                connect_args = {"server_settings": {"search_path": self._pg_schema}} if self._pg_schema else {}
                self._engine = create_async_engine(
                    self.url, pool_size=8, max_overflow=4, pool_pre_ping=True, connect_args=connect_args
                )
        if migrate:
            await self.migrate()

    async def migrate(self, revision: str = "head") -> None:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))

        def _upgrade(sync_conn: Connection) -> None:
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, revision)

        async with self.unit_of_work() as uow:
            await uow.run_sync(_upgrade)

    async def checkpoint(self) -> None:
        """Move the SQLite WAL into the database file, in a worker thread (it fsyncs). PASSIVE:
        never waits for the writer, so the event loop is not held up. No-op on PostgreSQL."""
        if self._sync_engine is None:
            return
        path = make_url(self.url).database

        def _run() -> None:
            with sqlite3.connect(path, timeout=5) as conn:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

        await asyncio.to_thread(_run)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()
            self._sync_engine = None

    def _started(self) -> None:
        if self._engine is None and self._sync_engine is None:
            raise InvariantViolation("Store used before start()")

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """A write transaction: commits when the block ends, rolls back on an exception."""
        self._started()
        if self._sync_engine is not None:
            async with self._write_lock:  # SQLite has one writer, and it keeps its connection
                if self._writer is None:
                    self._writer = self._sync_engine.connect()
                try:
                    with self._writer.begin():
                        yield UnitOfWork(_InLoopConnection(self._writer), lock_rows=False, lease=self.lease)
                except DBAPIError as exc:
                    _raise_retriable_as_conflict(exc)
                    raise
        else:
            assert self._engine is not None
            try:
                async with self._engine.begin() as conn:
                    yield UnitOfWork(conn, lock_rows=True, lease=self.lease)
            except DBAPIError as exc:
                _raise_retriable_as_conflict(exc)
                raise

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[UnitOfWork]:
        self._started()
        if self._sync_engine is not None:
            with self._sync_engine.connect() as conn:
                yield UnitOfWork(_InLoopConnection(conn), lock_rows=False, lease=self.lease)
        else:
            assert self._engine is not None
            async with self._engine.connect() as conn:
                yield UnitOfWork(conn, lock_rows=False, lease=self.lease)

    async def ping(self) -> bool:
        try:
            async with self.reader() as uow:
                await uow.run_sync(lambda conn: conn.execute(select(1)))
            return True
        except Exception:  # noqa: BLE001 - readiness reports any failure as not ready
            return False
