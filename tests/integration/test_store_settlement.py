"""Settlement reconciliation storage (issue 10) in the SQL store on both databases, and in the
fake: the same answers from each. Cycles (added once, versioned, due, listed), the books a close
builds set-based from the payment history and the return cases, report pages stored once with
their entries, the set-based settle, and breaks as versioned cases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest

from switch.domain.case import Case, CaseKind, CaseState, Initiator, new_case_id
from switch.domain.errors import ConcurrentUpdate, InvariantViolation
from switch.domain.money import CURRENCIES, Money
from switch.domain.payment import Direction, HistoryEntry, Payment, PaymentState
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
from switch.domain.settlement import CycleState, SettlementCycle, books_lookback_s_max
from switch.service.ports import Store
from switch.store.sql_store import Store as SqlStore
from tests.fakes import FakeStore
from tests.integration.conftest import _postgres_store
from tests.integration.test_store import a_payment

S = PaymentState
CUT = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)  # the cycle's cut-off (16:00 Bangkok)
OPENS = CUT - timedelta(hours=5)
NEXT_CUT = CUT + timedelta(hours=19)


@pytest.fixture(params=["sqlite", "postgres", "fake"])
async def any_store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Store]:  # type: ignore[no-untyped-def]
    if request.param == "fake":
        yield FakeStore()
        return
    if request.param == "sqlite":
        s = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'mekong.db'}")
        await s.start()
        yield s
        await s.close()
        return
    async with _postgres_store() as s:
        yield s


def a_cycle(cut_off: datetime = CUT, partner: str = "promptpay", **changes: object) -> SettlementCycle:
    base = SettlementCycle(
        id=f"{partner}-{cut_off:%Y%m%dT%H%M%SZ}", partner=partner, currency="THB", opens_at=cut_off - timedelta(hours=5),
        cut_off=cut_off, settlement_date=cut_off.date(),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def an_entry(seq: int = 0, **changes: object) -> StatementEntry:
    base = StatementEntry(
        seq=seq, entry_ref=f"N{seq}", uetr=str(uuid.uuid4()), end_to_end_id="INS-1", tx_id="T1", message_id="M1",
        is_return=False, outbound=True, amount_minor=124_323, currency="THB", booked=True, booking_date=date(2026, 11, 28),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def a_book(cycle_id: str, uetr: str | None = None, **changes: object) -> BookEntry:
    uetr = uetr or str(uuid.uuid4())
    base = BookEntry(
        ref=uetr, cycle_id=cycle_id, kind=BookKind.PAYMENT, uetr=uetr, outbound=True, amount_minor=124_323, currency="THB",
        outcome=Outcome.SETTLES, participant="ACLBKHPPXXX", participant_amount_minor=15_000_000, participant_currency="KHR",
        fee_minor=0, end_to_end_id="INS-1", tx_id="T1", message_id="M1",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def a_break(cycle_id: str = "promptpay-20261128T090000Z", **changes: object) -> Break:
    base = Break(
        id="B" + uuid.uuid4().hex, cycle_id=cycle_id, partner="promptpay", kind=BreakKind.MISSING_AT_PARTNER,
        state=BreakState.OPEN, action=BreakAction.ENQUIRY, uetr=str(uuid.uuid4()), book_ref=None, entry_seq=None,
        entry_ref=None, currency="THB", book_amount_minor=124_323, entry_amount_minor=None,
        detail="completed by the switch, absent from the report", note=None,
        history=(BreakEvent(CUT, BreakState.OPEN, "report promptpay-20261128T090000Z", "found"),),
        created_at=CUT, updated_at=CUT,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def lived(p: Payment, *steps: tuple[PaymentState, datetime]) -> list[HistoryEntry]:
    """The history rows of a payment that went through `steps` from RECEIVED."""
    rows, previous = [HistoryEntry(p.uetr, None, S.RECEIVED, None, None, p.created_at)], S.RECEIVED
    for state, at in steps:
        rows.append(HistoryEntry(p.uetr, previous, state, None, None, at))
        previous = state
    return rows


def completed(p: Payment, at: datetime) -> list[HistoryEntry]:
    return lived(p, (S.QUOTED, at - timedelta(seconds=3)), (S.SUBMITTED, at - timedelta(seconds=2)), (S.COMPLETED, at))


async def stored(store: Store, payments: list[Payment], history: list[HistoryEntry], cases: Sequence[Case] = ()) -> None:
    async with store.unit_of_work() as uow:
        await uow.payments_add(payments)
        await uow.history_add(history)
        await uow.cases_add(cases)


# ---------------------------------------------------------------- storage choices made for a million rows


async def test_the_books_and_entries_are_stored_as_the_bulk_steps_need(store: SqlStore) -> None:
    """PostgreSQL leaves half of each books page free (the matching update stays on its page,
    touching no index); SQLite keeps report entries in their primary key's tree (report order)."""
    async with store.reader() as uow:
        if store.is_sqlite:
            ddl = await uow.run_sync(
                lambda c: c.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'settlement_entries'").scalar_one()
            )
            assert ddl.rstrip().upper().endswith("WITHOUT ROWID")
        else:
            options = await uow.run_sync(
                lambda c: c.exec_driver_sql("SELECT reloptions FROM pg_class WHERE oid = 'settlement_books'::regclass").scalar_one()
            )
            assert options == ["fillfactor=50"]


# ---------------------------------------------------------------- cycles


async def test_a_cycle_added_twice_keeps_the_first(any_store: Store) -> None:
    first = a_cycle()
    async with any_store.unit_of_work() as uow:
        await uow.cycles_add([first])
    async with any_store.unit_of_work() as uow:
        await uow.cycles_add([replace(first, currency="USD"), a_cycle(NEXT_CUT)])  # another replica, same calendar
    async with any_store.reader() as uow:
        found = await uow.cycles_get([first.id, a_cycle(NEXT_CUT).id, "nope"])
    assert found == {first.id: first, a_cycle(NEXT_CUT).id: a_cycle(NEXT_CUT)}


async def test_a_cycle_round_trips_every_field(any_store: Store) -> None:
    c = a_cycle(
        state=CycleState.RECONCILED, closed_at=CUT + timedelta(seconds=1), reconciled_at=CUT + timedelta(minutes=7),
        books_count=3, report_id="STMT-1", report_pages=2, report_last_page=2, entries_count=5,
        summary='{"matched": 3}', version=4, settlement_date=date(2026, 11, 30),
    )
    async with any_store.unit_of_work() as uow:
        await uow.cycles_add([c])
    async with any_store.reader() as uow:
        got = (await uow.cycles_get([c.id]))[c.id]
    assert got == c
    assert got.cut_off.tzinfo is not None


async def test_a_cycle_update_checks_the_version_read(any_store: Store) -> None:
    c = a_cycle()
    async with any_store.unit_of_work() as uow:
        await uow.cycles_add([c])
    closed = replace(c, state=CycleState.CLOSED, closed_at=CUT, books_count=7, version=c.version + 1)
    async with any_store.unit_of_work() as uow:
        await uow.cycles_update([(c.version, closed)])
    with pytest.raises(ConcurrentUpdate):  # a second replica that read the open cycle
        async with any_store.unit_of_work() as uow:
            await uow.cycles_update([(c.version, replace(closed, books_count=9))])
    async with any_store.reader() as uow:
        assert (await uow.cycles_get([c.id]))[c.id] == closed


async def test_due_cycles_are_open_past_cut_off_or_closed_with_a_complete_report(any_store: Store) -> None:
    early = a_cycle(CUT - timedelta(days=1))
    open_due = a_cycle(CUT)
    open_later = a_cycle(NEXT_CUT)
    waiting = a_cycle(CUT, partner="lapnet", state=CycleState.CLOSED, report_pages=1, report_last_page=None)
    partial = a_cycle(CUT, partner="napas", state=CycleState.CLOSED, report_pages=2, report_last_page=3)
    complete = a_cycle(CUT - timedelta(hours=2), partner="unionpay", state=CycleState.CLOSED, report_pages=3, report_last_page=3)
    done = a_cycle(CUT - timedelta(days=2), state=CycleState.RECONCILED, report_pages=1, report_last_page=1)
    async with any_store.unit_of_work() as uow:
        await uow.cycles_add([open_due, open_later, waiting, partial, complete, done, early])
    async with any_store.reader() as uow:
        due = await uow.cycles_due(CUT, 10)
        first = await uow.cycles_due(CUT, 2)
    assert [c.id for c in due] == [early.id, complete.id, open_due.id]
    assert [c.id for c in first] == [early.id, complete.id]


async def test_cycles_are_listed_newest_first_per_partner_and_before_a_time(any_store: Store) -> None:
    cycles = [a_cycle(CUT + timedelta(days=d)) for d in range(4)] + [a_cycle(CUT, partner="lapnet")]
    async with any_store.unit_of_work() as uow:
        await uow.cycles_add(cycles)
    async with any_store.reader() as uow:
        promptpay = await uow.cycles_list("promptpay", 3)
        older = await uow.cycles_list("promptpay", 10, before=CUT + timedelta(days=2))
        every = await uow.cycles_list(None, 10)
    assert [c.cut_off for c in promptpay] == [CUT + timedelta(days=d) for d in (3, 2, 1)]
    assert [c.cut_off for c in older] == [CUT + timedelta(days=1), CUT]
    assert len(every) == 5 and every[0].cut_off == CUT + timedelta(days=3)


# ---------------------------------------------------------------- books


def _khr_thb(**changes: object) -> Payment:
    return a_payment(**{"state": S.COMPLETED, "version": 4, "created_at": OPENS, "updated_at": OPENS, **changes})


async def test_a_close_books_the_partners_final_payments_of_the_cycle_once(any_store: Store) -> None:
    out_done = _khr_thb(message_id="MSG-OUT-1")
    out_rejected = _khr_thb(state=S.REJECTED, reason_code="AC04")
    out_cancelled_unsent = _khr_thb(state=S.CANCELLED, reason_code="DUPL")
    out_timed_out = _khr_thb(state=S.TIMED_OUT, reason_code="AB05")
    out_late = _khr_thb()
    other_partner = _khr_thb(partner="lapnet")
    inbound = a_payment(
        state=S.COMPLETED, direction=Direction.INBOUND, instruction_id="E-PARTNER-1", participant="ACLBKHPPXXX",
        source=Money(4_000_000, CURRENCIES["KHR"]), target=Money(4_000_000, CURRENCIES["KHR"]),
        fee=Money(0, CURRENCIES["KHR"]), created_at=OPENS, updated_at=OPENS,
    )
    forgotten = _khr_thb()  # its outcome came long before this cycle and was never booked
    at = OPENS + timedelta(hours=1)
    history = [
        *completed(out_done, at),
        *lived(out_rejected, (S.QUOTED, at), (S.SUBMITTED, at), (S.REJECTED, at)),
        *lived(out_cancelled_unsent, (S.QUOTED, at), (S.CANCELLED, at)),
        *lived(out_timed_out, (S.QUOTED, at), (S.SUBMITTED, at), (S.TIMED_OUT, at)),
        *completed(out_late, CUT + timedelta(microseconds=1)),  # final just after the cut-off: the next cycle's
        *completed(other_partner, at),
        *lived(inbound, (S.QUOTED, at), (S.SUBMITTED, at), (S.COMPLETED, at)),
        *completed(forgotten, OPENS - timedelta(seconds=books_lookback_s_max + 1)),
    ]
    await stored(any_store, [out_done, out_rejected, out_cancelled_unsent, out_timed_out, out_late, other_partner, inbound, forgotten], history)
    cycle, next_cycle = a_cycle(), a_cycle(NEXT_CUT)
    async with any_store.unit_of_work() as uow:
        assert await uow.books_close(cycle) == 3
        assert await uow.books_close(cycle) == 0  # a second close of the same cycle books nothing
    async with any_store.reader() as uow:
        books = {b.ref: b for b in await uow.books_iter(cycle.id, None, 100)}
    assert sorted(books) == sorted([out_done.uetr, out_rejected.uetr, inbound.uetr])
    assert books[out_done.uetr] == BookEntry(
        ref=out_done.uetr, cycle_id=cycle.id, kind=BookKind.PAYMENT, uetr=out_done.uetr, outbound=True, amount_minor=124_323,
        currency="THB", outcome=Outcome.SETTLES, participant="ACLBKHPPXXX", participant_amount_minor=15_000_000,
        participant_currency="KHR", fee_minor=0, end_to_end_id=out_done.instruction_id,
        tx_id="T" + out_done.uetr.replace("-", ""), message_id="MSG-OUT-1",
    )
    assert books[out_rejected.uetr].outcome is Outcome.NOT_SETTLED
    assert books[inbound.uetr] == BookEntry(
        ref=inbound.uetr, cycle_id=cycle.id, kind=BookKind.PAYMENT, uetr=inbound.uetr, outbound=False, amount_minor=4_000_000,
        currency="KHR", outcome=Outcome.SETTLES, participant="ACLBKHPPXXX", participant_amount_minor=4_000_000,
        participant_currency="KHR", fee_minor=0, end_to_end_id="E-PARTNER-1", tx_id=None, message_id=None,
    )
    async with any_store.unit_of_work() as uow:
        assert await uow.books_close(next_cycle) == 1
    async with any_store.reader() as uow:
        assert [b.ref for b in await uow.books_iter(next_cycle.id, None, 100)] == [out_late.uetr]


async def test_a_close_books_each_return_by_its_pacs004(any_store: Store) -> None:
    outbound = _khr_thb()
    inbound = a_payment(
        state=S.PARTIALLY_RETURNED, direction=Direction.INBOUND, source=Money(4_000_000, CURRENCIES["KHR"]),
        target=Money(4_000_000, CURRENCIES["KHR"]), fee=Money(0, CURRENCIES["KHR"]), created_at=OPENS, updated_at=OPENS,
    )
    at = OPENS + timedelta(hours=1)

    def a_return(p: Payment, ref: str, message_id: str | None, amount: Money, back: Money | None, when: datetime) -> Case:
        return Case(
            id=new_case_id(), uetr=p.uetr, kind=CaseKind.RETURN, initiator=Initiator.PARTNER, counterpart="promptpay",
            state=CaseState.DONE, reason_code="AC04", detail=None, ref=ref, message_id=message_id, amount=amount,
            back_amount=back, rate=None, rate_rule=None, attempts=0, due_at=None, reply_by=None, created_at=when,
            updated_at=when,
        )

    thb, khr = CURRENCIES["THB"], CURRENCIES["KHR"]
    # the partner returns the outbound payment in two parts in one pacs.004, then once more alone
    split_a = a_return(outbound, "partner/promptpay/P004-A/R1", None, Money(100_000, thb), Money(12_000_000, khr), at)
    split_b = a_return(outbound, "partner/promptpay/P004-A/R2", None, Money(24_323, thb), Money(3_000_000, khr), at)
    alone = a_return(outbound, "partner/promptpay/P004-B/R9", None, Money(1, thb), Money(120, khr), at)
    # the hub returns part of the inbound payment at its participant's request
    ours = a_return(inbound, "participant/ACLBKHPPXXX/REQ-1", "RTN-OURS-1", Money(1_000_000, khr), None, at)
    after = a_return(outbound, "partner/promptpay/P004-C/R1", None, Money(5, thb), Money(600, khr), CUT)
    unfinished = replace(a_return(outbound, "partner/promptpay/P004-D/R1", None, Money(7, thb), None, at), state=CaseState.OPEN)
    history = [*completed(outbound, at), *lived(inbound, (S.QUOTED, at), (S.SUBMITTED, at), (S.COMPLETED, at))]
    await stored(any_store, [outbound, inbound], history, [split_a, split_b, alone, ours, after, unfinished])
    cycle = a_cycle()
    async with any_store.unit_of_work() as uow:
        assert await uow.books_close(cycle) == 2 + 4
        assert await uow.books_close(cycle) == 0
    async with any_store.reader() as uow:
        returns = {b.ref: b for b in await uow.books_iter(cycle.id, None, 100) if b.kind is BookKind.RETURN}
    assert sorted(returns) == ["R:P004-A/R1", "R:P004-A/R2", "R:P004-B", "R:RTN-OURS-1"]
    assert returns["R:P004-A/R1"] == BookEntry(
        ref="R:P004-A/R1", cycle_id=cycle.id, kind=BookKind.RETURN, uetr=outbound.uetr, outbound=False,
        amount_minor=100_000, currency="THB", outcome=Outcome.SETTLES, participant=outbound.participant,
        participant_amount_minor=12_000_000, participant_currency="KHR", fee_minor=0,
        end_to_end_id=outbound.instruction_id, tx_id="R1", message_id="P004-A",
    )
    ours_book = returns["R:RTN-OURS-1"]
    assert (ours_book.outbound, ours_book.amount_minor, ours_book.participant_amount_minor, ours_book.participant_currency) == (
        True, 1_000_000, 1_000_000, "KHR",
    )
    assert (ours_book.message_id, ours_book.tx_id) == ("RTN-OURS-1", None)


async def test_books_are_read_in_ref_pages_and_found_in_any_cycle(any_store: Store) -> None:
    cycle, other = a_cycle(), a_cycle(NEXT_CUT)
    mine = [a_book(cycle.id) for _ in range(5)]
    theirs = a_book(other.id)
    async with any_store.unit_of_work() as uow:
        await uow.books_add([*mine, theirs])
    pages: list[list[str]] = []
    after: str | None = None
    async with any_store.reader() as uow:
        while page := await uow.books_iter(cycle.id, after, 2):
            pages.append([b.ref for b in page])
            after = page[-1].ref
        found = await uow.books_find([mine[0].ref, theirs.ref, "R:none"])
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [r for p in pages for r in p] == sorted(b.ref for b in mine)
    assert found == {mine[0].ref: mine[0], theirs.ref: theirs}


async def test_a_close_does_not_book_a_movement_booked_by_hand_before(any_store: Store) -> None:
    p = _khr_thb()
    await stored(any_store, [p], completed(p, OPENS + timedelta(hours=1)))
    earlier = a_cycle(CUT - timedelta(days=1))
    async with any_store.unit_of_work() as uow:
        await uow.books_add([a_book(earlier.id, p.uetr)])  # a report resolved it into the earlier cycle
        assert await uow.books_close(a_cycle()) == 0


async def test_marked_books_keep_their_result_and_the_rest_become_matched(any_store: Store) -> None:
    cycle = a_cycle()
    books = [a_book(cycle.id) for _ in range(4)]
    async with any_store.unit_of_work() as uow:
        await uow.books_add(books)
        await uow.books_mark([(books[0].ref, BreakKind.AMOUNT_MISMATCH.value), (books[1].ref, MATCHED)])
        assert await uow.books_mark_matched(cycle.id) == 2
        assert await uow.books_mark_matched(cycle.id) == 0


# ---------------------------------------------------------------- settle


async def test_settle_moves_the_matched_completed_payments_with_their_history(any_store: Store) -> None:
    cycle = a_cycle()
    matched, broken, returned, not_booked = (_khr_thb() for _ in range(4))
    returned = replace(returned, state=S.PARTIALLY_RETURNED)
    at = OPENS + timedelta(hours=1)
    await stored(any_store, [matched, broken, returned, not_booked], [*completed(matched, at), *completed(broken, at)])
    async with any_store.unit_of_work() as uow:
        await uow.books_add([a_book(cycle.id, p.uetr) for p in (matched, broken, returned)])
        await uow.books_add([a_book(cycle.id, matched.uetr, ref="R:RTN-1", kind=BookKind.RETURN)])
        await uow.books_mark([(broken.uetr, BreakKind.AMOUNT_MISMATCH.value)])
        await uow.books_mark_matched(cycle.id)
    now = CUT + timedelta(minutes=3)
    async with any_store.unit_of_work() as uow:
        assert await uow.payments_settle(cycle.id, now) == 1
    async with any_store.unit_of_work() as uow:
        assert await uow.payments_settle(cycle.id, now + timedelta(seconds=1)) == 0  # settled once
    async with any_store.reader() as uow:
        after = await uow.payments_get([p.uetr for p in (matched, broken, returned, not_booked)])
        history = await uow.history_of(matched.uetr)
    assert after[matched.uetr] == replace(matched, state=S.SETTLED, version=matched.version + 1, updated_at=now)
    assert after[broken.uetr] == broken and after[returned.uetr] == returned and after[not_booked.uetr] == not_booked
    assert (history[-1].from_state, history[-1].to_state, history[-1].reason_code, history[-1].detail, history[-1].at) == (
        S.COMPLETED, S.SETTLED, None, f"settled in cycle {cycle.id}", now,
    )
    assert sum(h.to_state is S.SETTLED for h in history) == 1


# ---------------------------------------------------------------- report pages


async def test_report_pages_are_stored_once_with_their_entries_in_report_order(any_store: Store) -> None:
    cycle = a_cycle(state=CycleState.CLOSED)
    async with any_store.unit_of_work() as uow:
        await uow.cycles_add([cycle])
    page2 = [an_entry(amount_minor=None, booked=False, booking_date=None, entry_ref=None, uetr=None), an_entry(is_return=True)]
    page1 = [an_entry(outbound=False), an_entry(), an_entry()]
    received = CUT + timedelta(minutes=1)
    async with any_store.unit_of_work() as uow:  # pages may arrive in any order
        assert await uow.report_page_add("promptpay", "STMT-1", 2, "MSG-P2", cycle.id, True, page2, received) is True
    async with any_store.unit_of_work() as uow:
        assert await uow.report_page_add("promptpay", "STMT-1", 1, "MSG-P1", cycle.id, False, page1, received + timedelta(seconds=1))
    async with any_store.unit_of_work() as uow:  # the report sent twice: acknowledged, nothing written
        assert await uow.report_page_add("promptpay", "STMT-1", 1, "MSG-P1b", cycle.id, False, page1, received) is False
    async with any_store.reader() as uow:
        entries = await uow.report_entries_iter(cycle.id, None, 100)
        tail = await uow.report_entries_iter(cycle.id, 10**7 + 2, 100)
        head = await uow.report_entries_iter(cycle.id, None, 2)
        pages = await uow.report_pages(cycle.id)
        counted = (await uow.cycles_get([cycle.id]))[cycle.id]
    step = 10**7
    assert [e.seq for e in entries] == [step, step + 1, step + 2, 2 * step, 2 * step + 1]
    assert entries == [replace(e, seq=s) for e, s in zip([*page1, *page2], [e.seq for e in entries], strict=True)]
    assert [e.seq for e in tail] == [2 * step, 2 * step + 1] and [e.seq for e in head] == [step, step + 1]
    assert [(p["page_no"], p["message_id"], p["last_page"], p["entries"], p["received_at"]) for p in pages] == [
        (2, "MSG-P2", True, 2, received), (1, "MSG-P1", False, 3, received + timedelta(seconds=1)),
    ]
    assert (counted.report_id, counted.report_pages, counted.report_last_page, counted.entries_count, counted.version) == (
        "STMT-1", 2, 2, 5, cycle.version + 2,
    )
    assert counted.report_complete


async def test_a_page_arriving_makes_a_stale_cycle_update_a_conflict(any_store: Store) -> None:
    cycle = a_cycle()
    async with any_store.unit_of_work() as uow:
        await uow.cycles_add([cycle])
    async with any_store.unit_of_work() as uow:
        await uow.report_page_add("promptpay", "STMT-1", 1, "MSG-1", cycle.id, True, [an_entry()], CUT)
    with pytest.raises(ConcurrentUpdate):  # a close that read the cycle before the page: run again
        async with any_store.unit_of_work() as uow:
            await uow.cycles_update([(cycle.version, replace(cycle, state=CycleState.CLOSED, version=cycle.version + 1))])
    async with any_store.reader() as uow:
        now = (await uow.cycles_get([cycle.id]))[cycle.id]
    assert (now.state, now.version, now.report_complete) == (CycleState.OPEN, cycle.version + 1, True)


async def test_a_page_rolled_back_leaves_no_entry_and_no_count(any_store: Store) -> None:
    cycle = a_cycle()
    async with any_store.unit_of_work() as uow:
        await uow.cycles_add([cycle])
    with pytest.raises(RuntimeError):
        async with any_store.unit_of_work() as uow:
            await uow.report_page_add("promptpay", "STMT-1", 1, "MSG-1", cycle.id, True, [an_entry(), an_entry()], CUT)
            raise RuntimeError("the page failed its XSD after the entries were stored")
    async with any_store.reader() as uow:
        assert await uow.report_entries_iter(cycle.id, None, 10) == []
        assert await uow.report_pages(cycle.id) == []
        assert (await uow.cycles_get([cycle.id]))[cycle.id] == cycle
    async with any_store.unit_of_work() as uow:  # and the page is taken when it comes again
        assert await uow.report_page_add("promptpay", "STMT-1", 1, "MSG-1", cycle.id, True, [an_entry()], CUT)


async def test_a_page_for_a_cycle_not_stored_is_a_bug(any_store: Store) -> None:
    with pytest.raises(InvariantViolation):
        async with any_store.unit_of_work() as uow:
            await uow.report_page_add("promptpay", "STMT-1", 1, "MSG-1", "promptpay-20261128T090000Z", True, [an_entry()], CUT)
    async with any_store.reader() as uow:
        assert await uow.report_pages("promptpay-20261128T090000Z") == []


# ---------------------------------------------------------------- breaks


async def test_a_break_round_trips_with_its_history(any_store: Store) -> None:
    b = a_break(
        book_ref="R:RTN-1", entry_seq=10**7 + 4, entry_ref="N4", entry_amount_minor=124_000, note="partner says 1 Dec",
        history=(
            BreakEvent(CUT, BreakState.OPEN, "report promptpay-20261128T090000Z", "found: ¥ 'quoted' \"text\""),
            BreakEvent(CUT + timedelta(seconds=1, microseconds=5), BreakState.FOLLOWING_UP, "switch", "pacs.028 sent"),
        ),
    )
    async with any_store.unit_of_work() as uow:
        await uow.breaks_add([b])
    async with any_store.reader() as uow:
        assert await uow.breaks_get([b.id, "Bnope"]) == {b.id: b}


async def test_a_break_update_checks_the_version_read(any_store: Store) -> None:
    b = a_break()
    async with any_store.unit_of_work() as uow:
        await uow.breaks_add([b])
    later = CUT + timedelta(hours=1)
    resolved = replace(
        b, state=BreakState.RESOLVED, note="found in the next report", updated_at=later, version=b.version + 1,
        history=(*b.history, BreakEvent(later, BreakState.RESOLVED, "operator ops1", "found in the next report")),
    )
    async with any_store.unit_of_work() as uow:
        await uow.breaks_update([(b.version, resolved)])
    with pytest.raises(ConcurrentUpdate):
        async with any_store.unit_of_work() as uow:
            await uow.breaks_update([(b.version, replace(resolved, state=BreakState.WRITTEN_OFF))])
    async with any_store.reader() as uow:
        assert (await uow.breaks_get([b.id]))[b.id] == resolved


async def test_breaks_are_listed_oldest_first_by_cycle_partner_and_openness(any_store: Store) -> None:
    t = [CUT + timedelta(minutes=i) for i in range(5)]
    first = a_break(created_at=t[0])
    resolved = a_break(created_at=t[1], state=BreakState.RESOLVED)
    following = a_break(created_at=t[2], state=BreakState.FOLLOWING_UP)
    other_cycle = a_break("promptpay-20261129T040000Z", created_at=t[3])
    other_partner = a_break("lapnet-20261128T090000Z", partner="lapnet", created_at=t[4], kind=BreakKind.DUPLICATE_ENTRY)
    async with any_store.unit_of_work() as uow:
        await uow.breaks_add([other_partner, following, first, resolved, other_cycle])
    async with any_store.reader() as uow:
        of_cycle = await uow.breaks_list("promptpay-20261128T090000Z", None, False, 10)
        open_promptpay = await uow.breaks_list(None, "promptpay", True, 10)
        two = await uow.breaks_list(None, None, False, 2)
        counts = await uow.break_counts()
    assert [b.id for b in of_cycle] == [first.id, resolved.id, following.id]
    assert [b.id for b in open_promptpay] == [first.id, following.id, other_cycle.id]
    assert [b.id for b in two] == [first.id, resolved.id]
    assert counts == {
        ("promptpay", "missing_at_partner", "open"): 2,
        ("promptpay", "missing_at_partner", "resolved"): 1,
        ("promptpay", "missing_at_partner", "following_up"): 1,
        ("lapnet", "duplicate_entry", "open"): 1,
    }


async def test_open_breaks_are_found_by_payment(any_store: Store) -> None:
    uetr = str(uuid.uuid4())
    older = a_break(uetr=uetr, created_at=CUT)
    newer = a_break(uetr=uetr, created_at=CUT + timedelta(days=1), state=BreakState.FOLLOWING_UP)
    closed = a_break(uetr=uetr, state=BreakState.WRITTEN_OFF, note="accepted")
    elsewhere = a_break()
    async with any_store.unit_of_work() as uow:
        await uow.breaks_add([newer, closed, older, elsewhere])
    async with any_store.reader() as uow:
        found = await uow.breaks_open_for([uetr, str(uuid.uuid4())])
    assert found == {uetr: [older, newer]}
