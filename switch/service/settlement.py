"""Settlement cycles and reconciliation (issue 10): handlers.

- `OpenCycles` (the timer, every round): the cycle open now for every partner with a
  `[settlement]` profile exists as a row (each replica may insert it: the id is the partner and
  the cut-off, so they agree); cycles missed while no replica ran are added too.
- `CloseCycle`: at its cut-off a cycle's books are fixed (the store books, set-based, every
  movement of that partner whose outcome came before the cut-off and is not booked yet: nothing
  moves between closed cycles) and it waits for the partner's report.
- `StoreReportPage`: a page of a partner's camt.053 / camt.054 (the partner port or an operator's
  import) is stored with its entries, once; the cycle counts its pages.
- `ReconcileCycle`: once a cycle is closed and its report complete, its books are matched with
  the report (switch/domain/recon.py): matched payments move to SETTLED, every break becomes a
  case with the action the switch took, positions and the summary are stored on the cycle and
  each participant gets its statement on the statements topic. One transaction: a cycle is
  reconciled whole or not at all, by one replica (the cycle row's version).
- `ResolveBreak`: an operator closes a break with a note (resolved or written off), audited.

Timed-out payments: an entry that settled a payment the switch still has in flight (SUBMITTED,
ACCEPTED) or TIMED_OUT resolves it (ACSC, through the partner-status handler, then booked into
this cycle and matched: counted `resolved_by_report`). A timed-out payment the report lacks is not
guessed at: the switch's status enquiries (issue 9) keep asking the partner.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, Mapping

from adapters.base import PartnerStatus
from iso20022.reports import ReportEntry, ReportHeader
from switch.contracts import SettlementStatementV1
from switch.domain.money import CURRENCIES
from switch.domain.payment import Direction, Payment, PaymentState
from switch.domain.recon import (
    MATCHED,
    BookEntry,
    BookKind,
    Break,
    BreakAction,
    BreakKind,
    BreakState,
    Finding,
    Matcher,
    Outcome as BookOutcome,
    StatementEntry,
    move_break,
    open_break,
    positions,
)
from switch.domain.settlement import Calendar, Cycle, CycleState, SettlementCycle, cycle_at, cycle_by_id, cycle_id, cycles_between
from switch.service.audit import audit
from switch.service.handlers import ApplyPartnerStatuses, Deps, Outcome, apply_partner_statuses
from switch.service.ports import OutboxMessage, UnitOfWork

log = logging.getLogger(__name__)
S = PaymentState
books_chunk: Final = 20_000  # rows read at a time (books, report entries)
statement_entries_max: Final = 2_000  # movements in one statement record (more: several pages)
statement_rows_per_write: Final = 50  # statement records written to the outbox at a time
cycles_missed_max: Final = 500  # cycles created at once for a partner after a long stop
# a payment the switch has not finished that the report shows settled: the report resolves it
_UNFINISHED: Final = frozenset({S.SUBMITTED, S.ACCEPTED, S.TIMED_OUT})
CYCLE_OPEN, CYCLE_CLOSED, CYCLE_RECONCILED = CycleState.OPEN, CycleState.CLOSED, CycleState.RECONCILED
RESOLVE_ACTION: Final = "recon.resolve"
IMPORT_ACTION: Final = "recon.import"


def calendars(deps: Deps) -> Mapping[str, Calendar]:
    """partner -> its settlement calendar, for the profiles that settle here (Deps.calendars,
    built by the composition root from the profiles' [settlement] sections)."""
    return deps.calendars


def settlement_calendars(profiles: Sequence[Any], config_dir: Path) -> dict[str, Calendar]:
    """partner -> calendar, for the profiles with a [settlement] section (the composition root)."""
    return {p.partner: p.settlement_calendar(config_dir) for p in profiles if p.settlement is not None}


def _stored(c: Cycle, currency: str) -> SettlementCycle:
    return SettlementCycle.opened(c, currency)


def _currency_of(deps: Deps, partner: str) -> str:
    profile = deps.mappings[partner].profile  # type: ignore[attr-defined]
    return profile.settlement.currency if profile.settlement else profile.currency


# ----------------------------------------------------------------------------- the timer


@dataclass(frozen=True, slots=True)
class OpenCycles:
    """Make sure the cycle open now exists for every settling partner (and any missed ones)."""


async def open_cycles(cmd: OpenCycles, uow: UnitOfWork, deps: Deps) -> Outcome:
    now = deps.clock()
    out = Outcome()
    for partner, calendar in calendars(deps).items():
        current = cycle_at(calendar, now)
        known = await uow.cycles_get([current.id])
        if current.id in known:
            continue
        last = await uow.cycles_list(partner, 1)
        wanted = [current]
        if last:
            missed = cycles_between(calendar, last[0].cut_off, current.opens_at)[-cycles_missed_max:]
            wanted = missed + wanted
        await uow.cycles_add([_stored(c, _currency_of(deps, partner)) for c in wanted])
        out.counts["cycles_opened"] = out.counts.get("cycles_opened", 0) + len(wanted)
    return out


@dataclass(frozen=True, slots=True)
class CloseCycle:
    cycle_id: str


async def close_cycle(cmd: CloseCycle, uow: UnitOfWork, deps: Deps) -> Outcome:
    """Fix the books of a cycle past its cut-off (once: the row's version decides)."""
    now = deps.clock()
    out = Outcome()
    cycle = (await uow.cycles_get([cmd.cycle_id])).get(cmd.cycle_id)
    if cycle is None or cycle.state != CYCLE_OPEN or cycle.cut_off > now:
        return out
    booked = await uow.books_close(cycle)
    await uow.cycles_update([(cycle.version, replace(cycle, state=CYCLE_CLOSED, closed_at=now, books_count=booked, version=cycle.version + 1))])
    deps.metrics.settlement_cycles.labels(cycle.partner, "closed").inc()
    out.counts["books"] = out.counts.get("books", 0) + booked
    return out


# ----------------------------------------------------------------------------- reports in


def minor_units(value: str, code: str) -> int | None:
    """An amount on the wire as integer minor units of its currency, or None when it is not a
    whole number of them (or the currency is unknown): compared exactly, never rounded."""
    cur = CURRENCIES.get(code)
    if cur is None:
        return None
    try:
        minor = Decimal(value.strip()).scaleb(cur.exponent)
    except (InvalidOperation, AttributeError):
        return None
    if not minor.is_finite() or minor != minor.to_integral_value():
        return None
    return int(minor)


def statement_entry(e: ReportEntry, seq: int) -> StatementEntry:
    return StatementEntry(
        seq=seq, entry_ref=e.entry_ref or e.account_servicer_ref, uetr=e.uetr.lower() if e.uetr else None,
        end_to_end_id=e.end_to_end_id, tx_id=e.tx_id, message_id=e.message_id, is_return=e.is_return,
        outbound=not e.credit, amount_minor=minor_units(e.amount.value, e.amount.currency), currency=e.amount.currency,
        booked=e.status == "BOOK", booking_date=e.booking_date,
    )


def report_cycle(calendar: Calendar, header: ReportHeader) -> Cycle | None:
    """The cycle a report page is about: the one whose cut-off is its period's end."""
    if header.period_to is None:
        return None
    end = header.period_to
    try:
        return cycle_by_id(calendar, cycle_id(calendar.partner, end))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class StoreReportPage:
    partner: str
    header: ReportHeader
    entries: Sequence[StatementEntry]
    source: str  # "partner", or "operator <name>" for an import


async def store_report_page(cmd: StoreReportPage, uow: UnitOfWork, deps: Deps) -> Outcome:
    """Store one page of a report, once. Refusals: an unknown partner calendar or a period that
    is no cycle of it (AC03-like: named in the answer), a second report for a reconciled cycle."""
    now = deps.clock()
    out = Outcome()
    calendar = calendars(deps).get(cmd.partner)
    h = cmd.header
    if calendar is None:
        out.refusals.append(("NARR", f"{cmd.partner} has no settlement calendar here"))
        return out
    cycle = report_cycle(calendar, h)
    if cycle is None:
        out.refusals.append(("NARR", f"the report's period end {h.period_to} is no cut-off of {cmd.partner}'s calendar"))
        return out
    stored = (await uow.cycles_get([cycle.id])).get(cycle.id)
    if stored is None:
        stored = _stored(cycle, _currency_of(deps, cmd.partner))
        await uow.cycles_add([stored])
        stored = (await uow.cycles_get([cycle.id]))[cycle.id]
    if stored.report_id is not None and stored.report_id != h.report_id:
        out.refusals.append(("DUPL", f"cycle {cycle.id} already has report {stored.report_id}; a corrected report is not taken"))
        return out
    added = await uow.report_page_add(
        cmd.partner, h.report_id, h.page_no, h.message_id, cycle.id, h.last_page, cmd.entries, now,
    )
    if not added:  # the same page again (a report sent twice): acknowledged, nothing written
        out.count("duplicate_page")
        deps.metrics.report_pages.labels(cmd.partner, "duplicate").inc()
        return out
    deps.metrics.report_pages.labels(cmd.partner, "stored").inc()
    out.counts["entries"] = out.counts.get("entries", 0) + len(cmd.entries)
    if cmd.source != "partner":
        await audit(uow, at=now, actor=cmd.source, action=IMPORT_ACTION, subject=cycle.id,
                    detail={"partner": cmd.partner, "report_id": h.report_id, "page": h.page_no, "entries": len(cmd.entries)})
    return out


# ----------------------------------------------------------------------------- matching


@dataclass(frozen=True, slots=True)
class ReconcileCycle:
    cycle_id: str


def book_of(p: Payment, cycle_id_text: str) -> BookEntry:
    """A payment's book entry (the report resolved it: it settles)."""
    outbound = p.direction is Direction.OUTBOUND
    interbank, participant_side = (p.target, p.source) if outbound else (p.source, p.target)
    return BookEntry(
        ref=p.uetr, cycle_id=cycle_id_text, kind=BookKind.PAYMENT, uetr=p.uetr, outbound=outbound,
        amount_minor=interbank.amount_minor, currency=interbank.currency.code, outcome=BookOutcome.SETTLES,
        participant=p.participant, participant_amount_minor=participant_side.amount_minor,
        participant_currency=participant_side.currency.code, fee_minor=p.fee.amount_minor,
        end_to_end_id=None, tx_id=None, message_id=p.message_id,
    )


async def _pages(fetch: Callable[[Any, int], Awaitable[list[Any]]], key: Callable[[Any], Any]) -> AsyncIterator[list[Any]]:
    """A cycle's rows (books, report entries) a keyset page at a time: a cycle may hold a million."""
    after = None
    while True:
        chunk = await fetch(after, books_chunk)
        yield chunk
        if len(chunk) < books_chunk:
            return
        after = key(chunk[-1])


class _Phases:
    """How long each step of a reconciliation took (the log line an operator reads)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.took: dict[str, float] = {}

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.took[name] = now - self._last
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.2f} s" for k, v in self.took.items())


def _amounts(findings: Sequence[Finding]) -> dict[str, int]:
    """Per currency, the amounts a set of findings is about (the book's, else the entry's)."""
    sums: dict[str, int] = defaultdict(int)
    for f in findings:
        if f.book is not None:
            sums[f.book.currency] += f.book.amount_minor
        elif f.entry is not None and f.entry.amount_minor is not None:
            sums[f.entry.currency] += f.entry.amount_minor
    return dict(sums)


async def reconcile_cycle(cmd: ReconcileCycle, uow: UnitOfWork, deps: Deps) -> Outcome:
    now = deps.clock()
    out = Outcome()
    cycle = (await uow.cycles_get([cmd.cycle_id])).get(cmd.cycle_id)
    if cycle is None or cycle.state != CYCLE_CLOSED or not cycle.report_complete:
        return out
    phases = _Phases()
    matcher = Matcher(cycle.id, ())
    async for chunk in _pages(lambda after, n: uow.books_iter(cycle.id, after, n), lambda b: b.ref):  # only the matcher's compact copy stays
        matcher.extend(chunk)
    phases.done("books")
    findings: list[Finding] = []
    unknown: list[Finding] = []
    matched = 0
    async for chunk in _pages(lambda after, n: uow.report_entries_iter(cycle.id, after, n), lambda e: e.seq):
        for entry in chunk:
            f = matcher.feed(entry)
            if f.kind == MATCHED:
                matched += 1
            elif f.kind == BreakKind.UNKNOWN_TO_SWITCH:
                unknown.append(f)
            else:
                findings.append(f)
    findings.extend(matcher.finish())
    phases.done("matching")
    late = await _unknown_entries(cycle, unknown, uow, deps, out)
    findings.extend(late.findings)
    matched += late.matched
    # breaks: each a case, with what the switch does about it; a payment the network settled on
    # the other side of a cut-off from the switch shows as missing in one cycle and in the wrong
    # cycle in the other: whichever comes second closes both
    others = await uow.breaks_open_for(sorted({f.book.uetr for f in findings if f.book is not None and f.kind in _PAIRED}))
    breaks: list[Break] = []
    closing: dict[str, tuple[int, Break]] = {}
    self_resolved = 0
    for f in findings:
        b = open_break(f, cycle_id=cycle.id, partner=cycle.partner, now=now)
        pair = _PAIRED.get(str(f.kind))
        partners_ = [x for x in others.get(f.book.uetr, []) if x.kind.value == pair and x.cycle_id != cycle.id] if f.book and pair else []
        if partners_:
            for x in partners_:
                closing[x.id] = (x.version, move_break(x, BreakState.RESOLVED, actor=f"report {cycle.id}",
                                                       text=f"settled one cycle off: {f.kind} in cycle {cycle.id} closes it", now=now))
            b = move_break(b, BreakState.RESOLVED, actor="switch",
                           text=f"settled one cycle off: closes the {pair} of cycle {partners_[0].cycle_id}", now=now)
            self_resolved += 1
        elif b.action is BreakAction.ENQUIRY:
            b = await _follow_up(b, f, uow, deps, out, now=now)
        breaks.append(b)
    await uow.breaks_add(breaks)
    if closing:
        await uow.breaks_update(list(closing.values()))
    phases.done("breaks")
    await uow.books_mark([(f.book.ref, str(f.kind)) for f in findings if f.book is not None and f.book.cycle_id == cycle.id])
    await uow.books_mark_matched(cycle.id)
    settled = await uow.payments_settle(cycle.id, now)
    phases.done("settle")
    # positions over what both sides agree settled in the cycle
    broken = {f.book.ref for f in findings if f.book is not None}

    def agreed() -> Iterator[BookEntry]:
        for n in range(len(matcher)):
            b = matcher.book(n)
            if b.outcome is BookOutcome.SETTLES and b.ref not in broken:
                yield b
        yield from (b for b in late.books if b.ref not in broken and b.outcome is BookOutcome.SETTLES)

    partner_positions, participant_positions = positions(cycle.partner, cycle.id, agreed())
    phases.done("positions")
    kinds: dict[str, int] = defaultdict(int)
    for f in findings:
        kinds[str(f.kind)] += 1
    still_open = sum(1 for b in breaks if b.state not in (BreakState.RESOLVED, BreakState.WRITTEN_OFF))
    summary = {
        "books": len(matcher) + len(late.books),
        "entries": cycle.entries_count,
        "matched": matched,
        "breaks": dict(kinds),
        "break_amounts": {k: _amounts([f for f in findings if str(f.kind) == k]) for k in kinds},
        "resolved_by_switch": late.resolved + self_resolved,
        "resolved_by_report": late.resolved,
        "pending_both_sides": late.pending,
        "closed_breaks_of_other_cycles": len(closing),
        "breaks_open": still_open,
        "settled": settled,
        "clean": still_open == 0,
        "partner_positions": [_position_json(x) for x in partner_positions],
        "participant_positions": [_position_json(x) for x in participant_positions],
    }
    await uow.cycles_update([(cycle.version, replace(cycle, state=CYCLE_RECONCILED, reconciled_at=now, summary=json.dumps(summary),
                                                     books_count=cycle.books_count + len(late.books), version=cycle.version + 1))])
    statements = _statements(cycle, agreed(), participant_positions, deps, now=now)
    while batch := list(itertools.islice(statements, statement_rows_per_write)):
        out.status_outbox.extend(await uow.outbox_add(batch))
    phases.done("statements")
    log.info("reconciled %s: %d books, %d entries, %d matched, %d breaks (%d open), %d settled; %s", cycle.id, len(matcher),
             cycle.entries_count, matched, len(breaks), still_open, settled, phases)
    m = deps.metrics
    for kind, n in kinds.items():
        m.recon_breaks.labels(cycle.partner, kind).inc(n)
    m.settlement_cycles.labels(cycle.partner, "clean" if still_open == 0 else "breaks").inc()
    for pp in partner_positions:
        m.net_position.labels(cycle.partner, pp.currency).set(pp.net_minor)
    if still_open == 0:
        m.last_clean_cycle.labels(cycle.partner).set(cycle.cut_off.timestamp())
    out.counts["matched"] = out.counts.get("matched", 0) + matched
    out.counts["breaks"] = out.counts.get("breaks", 0) + len(breaks)
    out.counts["settled"] = out.counts.get("settled", 0) + settled
    return out


# a break of one kind in one cycle and of the other in another: the same payment settled one cycle off
_PAIRED: Final = {BreakKind.MISSING_AT_PARTNER.value: BreakKind.WRONG_CYCLE.value,
                  BreakKind.WRONG_CYCLE.value: BreakKind.MISSING_AT_PARTNER.value}
# the payment states whose payment the network settled, as far as the switch knows
_SETTLED_STATES: Final = frozenset({S.COMPLETED, S.SETTLED, S.RECALL_PENDING, S.PARTIALLY_RETURNED, S.RETURNED})


@dataclass
class _Late:
    findings: list[Finding]
    books: list[BookEntry]
    matched: int = 0
    resolved: int = 0
    pending: int = 0  # entries not booked (PDNG) of payments the switch has not finished either


async def _unknown_entries(cycle: SettlementCycle, unknown: list[Finding], uow: UnitOfWork, deps: Deps, out: Outcome) -> _Late:
    """Entries of the report not in the cycle's books. Booked in another cycle: WRONG_CYCLE. A
    payment of this partner the switch has not booked anywhere (its outcome came after the
    cut-off by the switch's clock, or it has none yet): the report settles it in this cycle; an
    unfinished one (SUBMITTED, ACCEPTED, TIMED_OUT) is completed by it first (an ACSC through the
    partner-status handler). Then it is booked here and matched like any other entry. The rest:
    UNKNOWN_TO_SWITCH."""
    late = _Late([], [])
    if not unknown:
        return late
    keys = sorted({r for f in unknown if (r := _ref_of(f.entry))})
    elsewhere = await uow.books_find(keys)
    payments = await uow.payments_get(sorted({f.entry.uetr for f in unknown if f.entry and f.entry.uetr and not f.entry.is_return}))
    statuses: list[PartnerStatus] = []
    pending: list[tuple[Finding, BookEntry]] = []
    for f in unknown:
        e = f.entry
        assert e is not None
        ref = _ref_of(e)
        other = elsewhere.get(ref) if ref else None
        p = payments.get(e.uetr) if e.uetr and not e.is_return else None
        if other is not None and other.cycle_id != cycle.id:
            late.findings.append(Finding(BreakKind.WRONG_CYCLE, other, e, f"booked by the switch in cycle {other.cycle_id}"))
            continue
        if other is None and p is not None and p.partner == cycle.partner and (p.state in _UNFINISHED or p.state in _SETTLED_STATES
                                                                                or p.state in (S.REJECTED, S.CANCELLED)):
            book = book_of(p, cycle.id)
            if p.state in _UNFINISHED:
                if not e.booked:  # pending at the network too: nothing settled; the enquiries go on
                    late.pending += 1
                    continue
                statuses.append(PartnerStatus(p.uetr, p.message_id, S.COMPLETED, None, f"settled in {cycle.id}"))
            elif p.state in (S.REJECTED, S.CANCELLED):
                book = replace(book, outcome=BookOutcome.NOT_SETTLED)
            pending.append((f, book))
            continue
        late.findings.append(f)
    if statuses:
        (resolved,) = await apply_partner_statuses(
            [ApplyPartnerStatuses(cycle.partner, f"recon-{cycle.id}"[:35], "settlement report",
                                  json.dumps({"cycle": cycle.id, "report": cycle.report_id}).encode(), statuses)],
            uow, deps,
        )
        out.status_outbox.extend(resolved.status_outbox)
        out.partner_outbox.extend(resolved.partner_outbox)
    if pending:
        books = {b.ref: b for _, b in pending}
        late.books = list(books.values())
        await uow.books_add(late.books)
        again = Matcher(cycle.id, late.books)
        for f, _ in pending:
            assert f.entry is not None
            verdict = again.feed(f.entry)
            if verdict.kind == MATCHED:
                late.matched += 1
                late.resolved += 1
            else:
                late.findings.append(verdict)
        late.findings.extend(again.finish())
    return late


def _ref_of(e: StatementEntry | None) -> str | None:
    if e is None:
        return None
    if e.is_return:
        return f"R:{e.message_id}" if e.message_id else None
    return e.uetr


async def _follow_up(b: Break, f: Finding, uow: UnitOfWork, deps: Deps, out: Outcome, *, now: datetime) -> Break:
    """ENQUIRY: a pacs.028 to the partner about an outbound payment (its "not received" answer
    resends the pacs.008, issue 9); an inbound one is the partner's to ask about: nothing."""
    from switch.service.enquiries import ask_partner

    book = f.book
    if book is None or not book.outbound or book.kind is not BookKind.PAYMENT:
        return replace(b, action=BreakAction.NONE)
    p = (await uow.payments_get([book.uetr])).get(book.uetr)
    if p is None or p.partner not in deps.mappings or not p.message_id:
        return replace(b, action=BreakAction.NONE)
    row = await ask_partner(p, uow, deps, ref=f"recon/{b.id}", now=now)
    out.partner_outbox.append(row)
    return move_break(b, BreakState.FOLLOWING_UP, actor="switch", text=f"status enquiry {row.message_id} sent to {p.partner}", now=now)


def _position_json(x: Any) -> dict[str, Any]:
    return {k: getattr(x, k) for k in x.__slots__}  # type: ignore[attr-defined]


def _statements(
    cycle: SettlementCycle, agreed: Iterable[BookEntry], participants: Sequence[Any], deps: Deps, *, now: datetime
) -> Iterator[OutboxMessage]:
    """One statement per participant (and currency) for the cycle, on the statements topic,
    paginated every `statement_entries_max` movements (the page count is known from the
    positions, so the movements stream through once). The record key is the participant, so
    one participant's statements keep their order."""
    topic = deps.config.kafka.statements_topic
    position = {(p.participant, p.currency): p for p in participants}
    pages = {k: max(1, -(-p.count // statement_entries_max)) for k, p in position.items()}
    buffers: dict[tuple[str, str], list[BookEntry]] = defaultdict(list)
    written: dict[tuple[str, str], int] = defaultdict(int)

    def record(key: tuple[str, str], chunk: list[BookEntry]) -> OutboxMessage:
        pos = position[key]
        written[key] += 1
        page = written[key]
        # built from the switch's own numbers, not validated again, and the movements written as
        # JSON text directly (a cycle of a million movements writes 500 of these records: the
        # model's serializer would build a million dicts first); tests validate the result
        # against SettlementStatementV1 (tests/unit/test_handlers_settlement.py)
        statement = SettlementStatementV1.model_construct(
            statement_id=f"{cycle.id}/{pos.participant}/{pos.currency}/{page}",
            cycle_id=cycle.id, partner=cycle.partner, participant=pos.participant, currency=pos.currency,
            settlement_date=cycle.settlement_date, cut_off=cycle.cut_off, page=page, last_page=page >= pages[key],
            debits_minor=pos.debits_minor, credits_minor=pos.credits_minor, returns_in_minor=pos.returns_in_minor,
            returns_out_minor=pos.returns_out_minor, fees_minor=pos.fees_minor, net_minor=pos.net_minor, count=pos.count,
            entries=[], issued_at=now,
        )
        movements = ",".join(
            f'{{"uetr":"{b.uetr}","kind":"{b.kind.value}","direction":"{"debit" if b.outbound else "credit"}",'
            f'"amount_minor":{b.participant_amount_minor},"fee_minor":{b.fee_minor},'
            f'"settlement_amount_minor":{b.amount_minor},"settlement_currency":"{b.currency}"}}'
            for b in chunk
        )
        body = statement.model_dump_json().replace('"entries":[]', f'"entries":[{movements}]', 1)
        return OutboxMessage(
            kind="status", destination=topic, message_id=statement.statement_id, uetrs=(),
            key=pos.participant, body=body.encode(), created_at=now,
        )

    for b in agreed:
        key = (b.participant, b.participant_currency)
        buffer = buffers[key]
        buffer.append(b)
        if len(buffer) == statement_entries_max:
            yield record(key, buffer)
            buffers[key] = []
    for key in position:
        if buffers.get(key) or written[key] == 0:
            yield record(key, buffers.get(key, []))


# ----------------------------------------------------------------------------- operators


@dataclass(frozen=True, slots=True)
class ResolveBreak:
    break_id: str
    operator: str
    note: str
    write_off: bool = False


async def resolve_break(cmd: ResolveBreak, uow: UnitOfWork, deps: Deps) -> Outcome:
    """An operator closes a break: resolved (explained) or written off, with a note, audited.
    Refusals: 404 MS03-like unknown break, 409 a break already closed."""
    now = deps.clock()
    out = Outcome()
    b = (await uow.breaks_get([cmd.break_id])).get(cmd.break_id)
    if b is None:
        out.refusals.append(("NOTFOUND", f"no break {cmd.break_id}"))
        return out
    if b.state in (BreakState.RESOLVED, BreakState.WRITTEN_OFF):
        out.refusals.append(("CLOSED", f"break {b.id} is already {b.state.value}"))
        return out
    target = BreakState.WRITTEN_OFF if cmd.write_off else BreakState.RESOLVED
    moved = move_break(b, target, actor=f"operator {cmd.operator}", text=cmd.note, now=now, note=cmd.note)
    await uow.breaks_update([(b.version, moved)])
    await audit(uow, at=now, actor=f"operator {cmd.operator}", action=RESOLVE_ACTION, subject=b.id,
                detail={"cycle": b.cycle_id, "kind": b.kind.value, "state": target.value, "note": cmd.note, "uetr": b.uetr})
    out.count("resolved")
    return out


def due_at(cycle: SettlementCycle, report_due_s: float) -> datetime:
    """When a closed cycle's report is late."""
    return cycle.cut_off + timedelta(seconds=report_due_s)
