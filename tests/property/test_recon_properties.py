"""Reconciliation properties (issue 10): for a random ledger and a random set of injected breaks,
the Matcher finds exactly those breaks (kind and movement) and matches the rest; net positions
from the books and the partner's account movements sum to zero; and settlement cycles chain,
skip weekends and holidays, follow local time across clock changes and read back from their ids."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from switch.domain.recon import (
    MATCHED,
    BookEntry,
    BookKind,
    BreakKind,
    Matcher,
    Outcome,
    StatementEntry,
    positions,
)
from switch.domain.settlement import Calendar, cycle_at, cycle_by_id, cycles_between

K = BreakKind
CYCLE = "napas-20261202T030000Z"
CURRENCIES = ("VND", "USD", "KHR")
PARTICIPANTS = ("ACLBKHPPXXX", "ABAAKHPPXXX", "WINGKHPPXXX")


def _uetr(n: int) -> str:
    return f"4a7c0e8e-{n >> 32 & 0xFFFF:04x}-4{n >> 20 & 0xFFF:03x}-8{n >> 8 & 0xFFF:03x}-{n:012x}"


# ----------------------------------------------------------------------------- a ledger and its report
@st.composite
def ledgers(draw: st.DrawFn, *, same_money: bool = False) -> list[BookEntry]:
    """Books of one cycle: payments and returns both ways, some rejected. `same_money`: the
    participant side moves what the partner side moves (no FX, no fee)."""
    size = draw(st.integers(min_value=0, max_value=40))
    books = []
    for n in range(size):
        kind = draw(st.sampled_from([BookKind.PAYMENT] * 4 + [BookKind.RETURN]))
        currency = draw(st.sampled_from(CURRENCIES))
        amount = draw(st.integers(min_value=1, max_value=10**12))
        participant_currency = currency if same_money else draw(st.sampled_from(CURRENCIES))
        participant_amount = amount if same_money else draw(st.integers(min_value=1, max_value=10**12))
        uetr = _uetr(n + 1)
        books.append(BookEntry(
            ref=uetr if kind is BookKind.PAYMENT else f"R:RTR{n}",
            cycle_id=CYCLE,
            kind=kind,
            uetr=uetr,
            outbound=draw(st.booleans()),
            amount_minor=amount,
            currency=currency,
            outcome=draw(st.sampled_from([Outcome.SETTLES] * 4 + [Outcome.NOT_SETTLED])),
            participant=draw(st.sampled_from(PARTICIPANTS)),
            participant_amount_minor=participant_amount,
            participant_currency=participant_currency,
            fee_minor=0 if same_money else draw(st.integers(min_value=0, max_value=10_000)),
            end_to_end_id=f"E2E-{n}",
            tx_id=f"TX-{n}",
            message_id=f"MSG{n}" if kind is BookKind.PAYMENT else f"RTR{n}",
        ))
    return books


def _entry(b: BookEntry, **changes: object) -> StatementEntry:
    e = StatementEntry(seq=0, entry_ref=None, uetr=b.uetr, end_to_end_id=b.end_to_end_id, tx_id=b.tx_id,
                       message_id=b.message_id, is_return=b.kind is BookKind.RETURN, outbound=b.outbound,
                       amount_minor=b.amount_minor, currency=b.currency, booked=True)
    return replace(e, **changes)  # type: ignore[arg-type]


SETTLES_INJECTIONS = ("none", "none", "missing", "amount", "no_amount", "direction", "currency", "pending", "duplicate")
NOT_SETTLED_INJECTIONS = ("none", "pending", "settled")


@dataclass
class Scenario:
    books: list[BookEntry]
    entries: list[StatementEntry]
    expected: Counter[tuple[str, str]]  # (kind, the book's ref or the unknown entry's UETR)


@st.composite
def scenarios(draw: st.DrawFn, *, same_money: bool = False) -> Scenario:
    """The report the partner would send for the ledger, with breaks injected, and what the
    matcher must find. Entries come in a random order; some carry no UETR (end-to-end and
    transaction ids name them) or, for returns, another message id (the UETR names them)."""
    books = draw(ledgers(same_money=same_money))
    entries: list[StatementEntry] = []
    expected: Counter[tuple[str, str]] = Counter()
    for b in books:
        ids: dict[str, object] = {}
        if draw(st.booleans()):
            ids = {"message_id": "THEIRS"} if b.kind is BookKind.RETURN else {"uetr": None}
        if b.outcome is Outcome.SETTLES:
            injection = draw(st.sampled_from(SETTLES_INJECTIONS))
            if injection == "none":
                entries.append(_entry(b, **ids))
                expected[MATCHED, b.ref] += 1
            elif injection == "missing":
                expected[K.MISSING_AT_PARTNER, b.ref] += 1
            elif injection == "amount":
                delta = draw(st.integers(min_value=-b.amount_minor + 1, max_value=10**6).filter(lambda d: d != 0))
                entries.append(_entry(b, amount_minor=b.amount_minor + delta, **ids))
                expected[K.AMOUNT_MISMATCH, b.ref] += 1
            elif injection == "no_amount":
                entries.append(_entry(b, amount_minor=None, **ids))
                expected[K.AMOUNT_MISMATCH, b.ref] += 1
            elif injection == "direction":
                entries.append(_entry(b, outbound=not b.outbound, **ids))
                expected[K.AMOUNT_MISMATCH, b.ref] += 1
            elif injection == "currency":
                other = draw(st.sampled_from([c for c in CURRENCIES + ("THB",) if c != b.currency]))
                entries.append(_entry(b, currency=other, **ids))
                expected[K.CURRENCY_MISMATCH, b.ref] += 1
            elif injection == "pending":
                entries.append(_entry(b, booked=False, **ids))
                expected[K.STATUS_MISMATCH, b.ref] += 1
            else:  # duplicate: whichever comes first in the report is matched
                entries += [_entry(b, **ids), _entry(b, **ids)]
                expected[MATCHED, b.ref] += 1
                expected[K.DUPLICATE_ENTRY, b.ref] += 1
        else:
            injection = draw(st.sampled_from(NOT_SETTLED_INJECTIONS))
            if injection == "pending":  # the partner shows it, unsettled: both sides agree
                entries.append(_entry(b, booked=False, **ids))
                expected[MATCHED, b.ref] += 1
            elif injection == "settled":
                entries.append(_entry(b, **ids))
                expected[K.STATUS_MISMATCH, b.ref] += 1
    for n in range(draw(st.integers(min_value=0, max_value=3))):
        stranger = _uetr(10**6 + n)
        entries.append(StatementEntry(seq=0, entry_ref=None, uetr=stranger, end_to_end_id="E2E-0", tx_id="TX-0", message_id=None,
                                      is_return=False, outbound=draw(st.booleans()), amount_minor=1, currency="VND", booked=True))
        expected[K.UNKNOWN_TO_SWITCH, stranger] += 1
    order = draw(st.permutations(range(len(entries))))
    entries = [replace(entries[i], seq=seq) for seq, i in enumerate(order)]
    return Scenario(books, entries, expected)


def _run(s: Scenario) -> list:  # type: ignore[type-arg]
    matcher = Matcher(CYCLE, s.books)
    return [matcher.feed(e) for e in s.entries] + list(matcher.finish())


@given(scenarios())
def test_the_matcher_finds_exactly_the_injected_breaks(s: Scenario) -> None:
    findings = _run(s)
    found = Counter((f.kind, f.book.ref if f.book is not None else f.entry.uetr) for f in findings)
    assert found == s.expected


@given(scenarios())
def test_every_entry_gets_one_finding_and_only_missing_movements_have_none(s: Scenario) -> None:
    findings = _run(s)
    with_entry = [f for f in findings if f.entry is not None]
    assert sorted(f.entry.seq for f in with_entry) == list(range(len(s.entries)))
    assert all(f.kind == K.MISSING_AT_PARTNER for f in findings if f.entry is None)


@given(scenarios())
def test_a_break_names_the_book_it_is_about_unless_the_books_lack_it(s: Scenario) -> None:
    by_ref = {b.ref: b for b in s.books}
    for f in _run(s):
        if f.kind == K.UNKNOWN_TO_SWITCH:
            assert f.book is None
        else:
            assert f.book is not None and by_ref[f.book.ref] == f.book


# ----------------------------------------------------------------------------- positions
def _matched(s: Scenario) -> tuple[list[BookEntry], list[StatementEntry]]:
    books, entries = [], []
    for f in _run(s):
        if f.kind == MATCHED:
            books.append(f.book)
            entries.append(f.entry)
    return books, entries


@given(scenarios())
def test_the_hub_s_position_and_the_partner_s_account_movements_sum_to_zero(s: Scenario) -> None:
    books, entries = _matched(s)
    partners, _ = positions("napas", CYCLE, books)
    account: Counter[str] = Counter()  # what the report's booked entries did to the hub's account, per currency
    for e in entries:
        if e.booked:
            account[e.currency] += -e.amount_minor if e.outbound else e.amount_minor
    for p in partners:
        assert p.net_minor + account[p.currency] == 0
        assert p.net_minor == p.outbound_minor + p.returns_to_partner_minor - p.inbound_minor - p.returns_from_partner_minor
    assert {c for c, v in account.items() if v} <= {p.currency for p in partners}


@given(scenarios(same_money=True))
def test_without_fx_or_fees_the_participants_owe_the_hub_what_the_hub_owes_the_partner(s: Scenario) -> None:
    books, _ = _matched(s)
    partners, participants = positions("napas", CYCLE, books)
    owed_by_participants: Counter[str] = Counter()
    for p in participants:
        owed_by_participants[p.currency] += p.net_minor
    assert {p.currency: p.net_minor for p in partners} == {c: owed_by_participants[c] for c in {p.currency for p in partners}}


@given(ledgers())
def test_every_settled_movement_is_counted_once_on_each_side(books: list[BookEntry]) -> None:
    partners, participants = positions("napas", CYCLE, books)
    settled = [b for b in books if b.outcome is Outcome.SETTLES]
    assert sum(p.count for p in partners) == sum(p.count for p in participants) == len(settled)
    gross = sum(p.outbound_minor + p.inbound_minor + p.returns_to_partner_minor + p.returns_from_partner_minor for p in partners)
    assert gross == sum(b.amount_minor for b in settled)
    assert sum(p.fees_minor for p in participants) == sum(b.fee_minor for b in settled)


# ----------------------------------------------------------------------------- cycles
ZONES = ("Asia/Bangkok", "Asia/Vientiane", "Asia/Ho_Chi_Minh", "Asia/Shanghai", "Europe/Paris", "America/New_York",
         "Australia/Sydney", "Asia/Kathmandu", "Pacific/Chatham")
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    minutes = draw(st.lists(st.integers(min_value=0, max_value=24 * 60 - 1), min_size=1, max_size=4, unique=True))
    cut_offs = tuple(time(m // 60, m % 60) for m in sorted(minutes))
    weekends = frozenset(draw(st.sets(st.integers(min_value=1, max_value=7), max_size=5)))
    holidays = frozenset(draw(st.sets(st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)), max_size=60)))
    return Calendar("napas", draw(st.sampled_from(ZONES)), cut_offs, weekends, holidays)


instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                        timezones=st.just(timezone.utc))


@given(calendars(), instants)
def test_the_cycle_at_an_instant_holds_it_and_closes_on_a_business_day_at_a_cut_off_time(calendar: Calendar, instant: datetime) -> None:
    cycle = cycle_at(calendar, instant)
    assert cycle.opens_at <= instant < cycle.cut_off
    zone = ZoneInfo(calendar.timezone)
    local = cycle.cut_off.astimezone(zone)
    assert cycle.settlement_date == local.date()
    assert calendar.is_business_day(local.date())
    # the cut-off is one of the day's local times (read as zoneinfo does in a clock change)
    assert cycle.cut_off in {datetime.combine(local.date(), t, tzinfo=zone).astimezone(timezone.utc) for t in calendar.cut_offs}
    # no cut-off hides between opens_at and cut_off
    assert cycle_at(calendar, cycle.opens_at) == cycle
    assert cycle_at(calendar, cycle.opens_at - timedelta(microseconds=1)).cut_off == cycle.opens_at


@given(calendars(), instants)
def test_a_cycle_reads_back_from_its_id(calendar: Calendar, instant: datetime) -> None:
    cycle = cycle_at(calendar, instant)
    assert cycle_by_id(calendar, cycle.id) == cycle


@given(calendars(), instants, st.integers(min_value=0, max_value=20 * 24 * 3600))
def test_cycles_between_chain_without_gaps(calendar: Calendar, start: datetime, span_s: int) -> None:
    end = start + timedelta(seconds=span_s)
    cycles = cycles_between(calendar, start, end)
    assert all(start < c.cut_off <= end for c in cycles)
    assert all(later.opens_at == earlier.cut_off for earlier, later in zip(cycles, cycles[1:]))
    if cycles:
        assert cycles[0] == cycle_at(calendar, start)
        assert cycle_at(calendar, end).opens_at == cycles[-1].cut_off
    else:
        assert cycle_at(calendar, start).cut_off > end


@given(st.integers(min_value=1, max_value=2 * 86_400), instants, st.sampled_from(ZONES))
def test_every_s_cycles_close_on_multiples_of_every_s(every_s: int, instant: datetime, zone: str) -> None:
    calendar = Calendar("napas", zone, (), weekends=frozenset({6, 7}), every_s=every_s)
    cycle = cycle_at(calendar, instant)
    assert cycle.opens_at <= instant < cycle.cut_off
    assert int(cycle.cut_off.timestamp()) % every_s == 0 and cycle.cut_off.microsecond == 0
    assert cycle.cut_off - cycle.opens_at == timedelta(seconds=every_s)
    assert cycle.settlement_date == cycle.cut_off.astimezone(ZoneInfo(zone)).date()
    assert cycle_by_id(calendar, cycle.id) == cycle
