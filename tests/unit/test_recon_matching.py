"""Reconciliation in the domain (issue 10, switch/domain/recon.py): the Matcher's verdict for every
break kind and their combinations on hand-made books and report entries, net positions, and
breaks worked as cases."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from switch.domain.errors import InvariantViolation
from switch.domain.recon import (
    BREAK_TRANSITIONS,
    MATCHED,
    BookEntry,
    BookKind,
    Break,
    BreakAction,
    BreakKind,
    BreakState,
    Finding,
    Matcher,
    Outcome,
    ParticipantPosition,
    PartnerPosition,
    StatementEntry,
    move_break,
    new_break_id,
    open_break,
    positions,
)

CYCLE = "lapnet-20261202T083000Z"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)
K = BreakKind


def _uetr(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def book(n: int, *, amount: int = 100_000, outbound: bool = True, outcome: Outcome = Outcome.SETTLES, currency: str = "LAK",
         kind: BookKind = BookKind.PAYMENT, ref: str | None = None, participant: str = "ACLBKHPPXXX",
         participant_amount: int = 2_000, participant_currency: str = "USD", fee: int = 10) -> BookEntry:
    uetr = _uetr(n)
    return BookEntry(
        ref=ref or (uetr if kind is BookKind.PAYMENT else f"R:RTR{n}"),
        cycle_id=CYCLE,
        kind=kind,
        uetr=uetr,
        outbound=outbound,
        amount_minor=amount,
        currency=currency,
        outcome=outcome,
        participant=participant,
        participant_amount_minor=participant_amount,
        participant_currency=participant_currency,
        fee_minor=fee,
        end_to_end_id=f"E2E{n}",
        tx_id=f"TX{n}",
        message_id=f"MSG{n}" if kind is BookKind.PAYMENT else f"RTR{n}",
    )


def entry_for(b: BookEntry, seq: int = 1, **changes: object) -> StatementEntry:
    """The report entry that settles book `b` exactly."""
    e = StatementEntry(
        seq=seq,
        entry_ref=f"NTRY{seq}",
        uetr=b.uetr,
        end_to_end_id=b.end_to_end_id,
        tx_id=b.tx_id,
        message_id=b.message_id,
        is_return=b.kind is BookKind.RETURN,
        outbound=b.outbound,
        amount_minor=b.amount_minor,
        currency=b.currency,
        booked=True,
    )
    return replace(e, **changes)  # type: ignore[arg-type]


def kinds(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings]


# ----------------------------------------------------------------------------- matched
@pytest.mark.parametrize("outbound", [True, False], ids=["outbound", "inbound"])
def test_an_entry_that_agrees_with_its_book_is_matched(outbound: bool) -> None:
    b = book(1, outbound=outbound)
    matcher = Matcher(CYCLE, [b])
    finding = matcher.feed(entry_for(b))
    assert (finding.kind, finding.book, finding.entry) == (MATCHED, b, entry_for(b))
    assert list(matcher.finish()) == []


def test_a_payment_entry_without_a_uetr_is_matched_by_end_to_end_and_transaction_id() -> None:
    b = book(1)
    finding = Matcher(CYCLE, [b, book(2)]).feed(entry_for(b, uetr=None))
    assert (finding.kind, finding.book) == (MATCHED, b)


def test_a_return_entry_is_matched_by_its_message_id() -> None:
    r = book(1, kind=BookKind.RETURN, outbound=False)
    finding = Matcher(CYCLE, [book(1), r]).feed(entry_for(r))
    assert (finding.kind, finding.book) == (MATCHED, r)


def test_a_return_entry_with_another_message_id_is_matched_by_uetr_among_the_returns() -> None:
    r = book(1, kind=BookKind.RETURN, outbound=False)
    finding = Matcher(CYCLE, [book(1), r]).feed(entry_for(r, message_id="THEIRS-77"))
    assert (finding.kind, finding.book) == (MATCHED, r)


def test_two_partial_returns_of_one_payment_are_each_matched_by_uetr() -> None:
    first = book(1, kind=BookKind.RETURN, ref="R:A", amount=40_000)
    second = replace(first, ref="R:B", amount_minor=60_000, message_id="B")
    matcher = Matcher(CYCLE, [first, second])
    findings = [matcher.feed(entry_for(first, seq=1, message_id=None)), matcher.feed(entry_for(second, seq=2, message_id=None))]
    # the second entry names the return no entry named yet
    assert [(f.kind, f.book.ref if f.book else None) for f in findings] == [(MATCHED, "R:A"), (MATCHED, "R:B")]
    assert list(matcher.finish()) == []


def test_partial_returns_reported_in_another_order_are_told_apart_by_amount() -> None:
    first = book(1, kind=BookKind.RETURN, ref="R:A", amount=40_000)
    second = replace(first, ref="R:B", amount_minor=60_000, message_id="B")
    matcher = Matcher(CYCLE, [first, second])
    findings = [matcher.feed(entry_for(second, seq=1, message_id=None)), matcher.feed(entry_for(first, seq=2, message_id=None))]
    assert [(f.kind, f.book.ref if f.book else None) for f in findings] == [(MATCHED, "R:B"), (MATCHED, "R:A")]


def test_a_rejected_payment_the_report_leaves_pending_is_matched() -> None:
    b = book(1, outcome=Outcome.NOT_SETTLED)
    finding = Matcher(CYCLE, [b]).feed(entry_for(b, booked=False))
    assert finding.kind == MATCHED


# ----------------------------------------------------------------------------- breaks
def test_a_different_amount_is_an_amount_mismatch() -> None:
    b = book(1, amount=100_000)
    finding = Matcher(CYCLE, [b]).feed(entry_for(b, amount_minor=100_001))
    assert (finding.kind, finding.book) == (K.AMOUNT_MISMATCH, b)
    assert "100000" in finding.detail and "100001" in finding.detail


def test_an_amount_that_is_no_whole_number_of_minor_units_is_an_amount_mismatch() -> None:
    b = book(1)
    assert Matcher(CYCLE, [b]).feed(entry_for(b, amount_minor=None)).kind == K.AMOUNT_MISMATCH


def test_the_opposite_direction_is_an_amount_mismatch() -> None:
    b = book(1, outbound=True)
    finding = Matcher(CYCLE, [b]).feed(entry_for(b, outbound=False))
    assert finding.kind == K.AMOUNT_MISMATCH
    assert "debit in the books" in finding.detail


def test_a_different_currency_is_a_currency_mismatch_even_when_the_amount_differs_too() -> None:
    b = book(1)
    assert Matcher(CYCLE, [b]).feed(entry_for(b, currency="THB")).kind == K.CURRENCY_MISMATCH
    assert Matcher(CYCLE, [b]).feed(entry_for(b, currency="THB", amount_minor=5)).kind == K.CURRENCY_MISMATCH


def test_a_rejected_payment_the_report_settles_is_a_status_mismatch() -> None:
    b = book(1, outcome=Outcome.NOT_SETTLED)
    finding = Matcher(CYCLE, [b]).feed(entry_for(b))
    assert (finding.kind, finding.book) == (K.STATUS_MISMATCH, b)


def test_a_completed_payment_the_report_leaves_pending_is_a_status_mismatch() -> None:
    b = book(1)
    assert Matcher(CYCLE, [b]).feed(entry_for(b, booked=False)).kind == K.STATUS_MISMATCH


def test_a_status_mismatch_is_found_before_an_amount_mismatch() -> None:
    b = book(1, outcome=Outcome.NOT_SETTLED)
    assert Matcher(CYCLE, [b]).feed(entry_for(b, amount_minor=1)).kind == K.STATUS_MISMATCH


def test_the_same_movement_twice_is_a_duplicate_entry_and_the_first_stays_matched() -> None:
    b = book(1)
    matcher = Matcher(CYCLE, [b])
    first, second = matcher.feed(entry_for(b, seq=1)), matcher.feed(entry_for(b, seq=2))
    assert (first.kind, second.kind) == (MATCHED, K.DUPLICATE_ENTRY)
    assert second.book == b and second.entry is not None and second.entry.seq == 2
    assert list(matcher.finish()) == []


def test_a_second_entry_for_a_broken_movement_is_a_duplicate_too() -> None:
    b = book(1)
    matcher = Matcher(CYCLE, [b])
    assert kinds([matcher.feed(entry_for(b, seq=1, amount_minor=1)), matcher.feed(entry_for(b, seq=2))]) == [
        K.AMOUNT_MISMATCH, K.DUPLICATE_ENTRY]


def test_an_entry_the_books_lack_is_unknown_to_the_switch() -> None:
    matcher = Matcher(CYCLE, [book(1)])
    finding = matcher.feed(entry_for(book(2)))
    assert (finding.kind, finding.book) == (K.UNKNOWN_TO_SWITCH, None)
    assert _uetr(2) in finding.detail


def test_an_unknown_uetr_is_unknown_even_with_a_known_end_to_end_id() -> None:
    b = book(1)
    assert Matcher(CYCLE, [b]).feed(entry_for(b, uetr=_uetr(99))).kind == K.UNKNOWN_TO_SWITCH


def test_an_entry_without_any_reference_is_unknown() -> None:
    b = book(1)
    entry = entry_for(b, uetr=None, end_to_end_id=None, tx_id=None, message_id=None)
    assert Matcher(CYCLE, [b]).feed(entry).kind == K.UNKNOWN_TO_SWITCH


def test_a_payment_entry_does_not_match_a_return_of_that_payment() -> None:
    r = book(1, kind=BookKind.RETURN)
    assert Matcher(CYCLE, [r]).feed(entry_for(r, is_return=False)).kind == K.UNKNOWN_TO_SWITCH


def test_a_completed_movement_no_entry_names_is_missing_at_the_partner() -> None:
    done, rejected = book(1), book(2, outcome=Outcome.NOT_SETTLED)
    findings = list(Matcher(CYCLE, [done, rejected]).finish())
    assert [(f.kind, f.book, f.entry) for f in findings] == [(K.MISSING_AT_PARTNER, done, None)]


def test_a_movement_with_a_break_is_not_also_missing() -> None:
    b = book(1)
    matcher = Matcher(CYCLE, [b])
    matcher.feed(entry_for(b, amount_minor=1))
    assert list(matcher.finish()) == []


def test_every_kind_at_once_in_one_cycle() -> None:
    books = [book(n) for n in range(1, 8)] + [book(8, outcome=Outcome.NOT_SETTLED), book(9, kind=BookKind.RETURN, outbound=False)]
    matcher = Matcher(CYCLE, books)
    entries = [
        entry_for(books[0], seq=1),  # matched
        entry_for(books[1], seq=2, amount_minor=1),  # amount
        entry_for(books[2], seq=3, currency="USD"),  # currency
        entry_for(books[3], seq=4, booked=False),  # status (pending)
        entry_for(books[4], seq=5),
        entry_for(books[4], seq=6),  # duplicate
        entry_for(book(50), seq=7),  # unknown
        entry_for(books[7], seq=8),  # status (rejected, settled)
        entry_for(books[8], seq=9),  # the return, matched
        # books[5] and books[6]: missing
    ]
    found = [matcher.feed(e) for e in entries] + list(matcher.finish())
    assert [(f.kind, f.book.ref if f.book else None, f.entry.seq if f.entry else None) for f in found] == [
        (MATCHED, _uetr(1), 1), (K.AMOUNT_MISMATCH, _uetr(2), 2), (K.CURRENCY_MISMATCH, _uetr(3), 3),
        (K.STATUS_MISMATCH, _uetr(4), 4), (MATCHED, _uetr(5), 5), (K.DUPLICATE_ENTRY, _uetr(5), 6),
        (K.UNKNOWN_TO_SWITCH, None, 7), (K.STATUS_MISMATCH, _uetr(8), 8), (MATCHED, "R:RTR9", 9),
        (K.MISSING_AT_PARTNER, _uetr(6), None), (K.MISSING_AT_PARTNER, _uetr(7), None),
    ]
    assert set(matcher.seen_refs()) == {_uetr(n) for n in (1, 2, 3, 4, 5, 8)} | {"R:RTR9"}


# ----------------------------------------------------------------------------- the books held
def test_the_matcher_gives_back_each_book_as_it_was_given() -> None:
    books = [book(1), book(2, outbound=False, outcome=Outcome.NOT_SETTLED, currency="USD", fee=0),
             book(3, kind=BookKind.RETURN), replace(book(4), end_to_end_id=None, tx_id=None, message_id=None)]
    matcher = Matcher(CYCLE, books)
    assert len(matcher) == 4
    assert [matcher.book(n) for n in range(4)] == books


@pytest.mark.parametrize(
    "bad, message",
    [
        (replace(book(1), cycle_id="lapnet-20261201T083000Z"), "not lapnet-20261202"),
        (replace(book(1), ref="something"), "its ref must be its UETR"),
    ],
)
def test_books_that_break_the_rules_are_a_programmer_error(bad: BookEntry, message: str) -> None:
    with pytest.raises(InvariantViolation, match=message):
        Matcher(CYCLE, [bad])


def test_one_movement_booked_twice_is_a_programmer_error() -> None:
    with pytest.raises(InvariantViolation, match="twice"):
        Matcher(CYCLE, [book(1), book(1)])


# ----------------------------------------------------------------------------- positions
def test_positions_add_up_each_flow_on_both_sides() -> None:
    settled = [
        book(1, outbound=True, amount=100_000, participant="A", participant_amount=500, fee=7),
        book(2, outbound=True, amount=50_000, participant="B", participant_amount=250, fee=3),
        book(3, outbound=False, amount=30_000, participant="A", participant_amount=150, fee=0),
        book(4, kind=BookKind.RETURN, outbound=False, amount=20_000, participant="A", participant_amount=90, fee=0),  # partner returns A's payment
        book(5, kind=BookKind.RETURN, outbound=True, amount=10_000, participant="B", participant_amount=60, fee=0),  # hub returns to the partner
        book(6, outcome=Outcome.NOT_SETTLED, amount=999_999, participant="A", participant_amount=999),  # moved nothing
    ]
    partners, participants = positions("lapnet", CYCLE, settled)
    assert partners == [PartnerPosition(CYCLE, "lapnet", "LAK", outbound_minor=150_000, inbound_minor=30_000,
                                        returns_to_partner_minor=10_000, returns_from_partner_minor=20_000, fees_minor=0, count=5,
                                        net_minor=150_000 + 10_000 - 30_000 - 20_000)]
    assert participants == [
        ParticipantPosition(CYCLE, "A", "USD", debits_minor=500, credits_minor=150, returns_in_minor=90, returns_out_minor=0,
                            fees_minor=7, count=3, net_minor=500 + 7 - 150 - 90),
        ParticipantPosition(CYCLE, "B", "USD", debits_minor=250, credits_minor=0, returns_in_minor=0, returns_out_minor=60,
                            fees_minor=3, count=2, net_minor=250 + 60 + 3),
    ]


def test_positions_are_kept_apart_per_settlement_currency_and_per_participant_currency() -> None:
    settled = [book(1, currency="LAK", participant_currency="KHR", participant_amount=800),
               book(2, outbound=False, currency="USD", amount=700, participant_currency="USD", participant_amount=700, fee=0),
               book(3, currency="LAK", participant_currency="USD", participant_amount=20)]
    partners, participants = positions("lapnet", CYCLE, settled)
    assert [(p.currency, p.net_minor, p.count) for p in partners] == [("LAK", 200_000, 2), ("USD", -700, 1)]
    assert [(p.participant, p.currency, p.net_minor) for p in participants] == [("ACLBKHPPXXX", "KHR", 810),
                                                                               ("ACLBKHPPXXX", "USD", 20 + 10 - 700)]


def test_positions_of_nothing_are_empty() -> None:
    assert positions("lapnet", CYCLE, []) == ([], [])


def test_positions_refuse_a_book_of_another_cycle() -> None:
    with pytest.raises(InvariantViolation):
        positions("lapnet", "lapnet-20261203T083000Z", [book(1)])


# ----------------------------------------------------------------------------- breaks as cases
def test_a_break_id_is_b_and_32_hex_digits() -> None:
    ids = {new_break_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"B[0-9a-f]{32}", i) for i in ids)


@pytest.mark.parametrize(
    "kind, action",
    [(K.MISSING_AT_PARTNER, BreakAction.ENQUIRY), (K.STATUS_MISMATCH, BreakAction.ENQUIRY), (K.UNKNOWN_TO_SWITCH, BreakAction.NONE),
     (K.AMOUNT_MISMATCH, BreakAction.NONE), (K.CURRENCY_MISMATCH, BreakAction.NONE), (K.DUPLICATE_ENTRY, BreakAction.NONE),
     (K.WRONG_CYCLE, BreakAction.NONE)],
)
def test_a_break_opens_with_the_action_its_kind_calls_for(kind: BreakKind, action: BreakAction) -> None:
    b = book(1)
    finding = Finding(kind, b, entry_for(b, seq=40_000_003, amount_minor=99), "what was found")
    case = open_break(finding, cycle_id=CYCLE, partner="lapnet", now=NOW)
    assert (case.kind, case.action, case.state) == (kind, action, BreakState.OPEN)
    assert (case.uetr, case.book_ref, case.entry_seq, case.entry_ref) == (_uetr(1), _uetr(1), 40_000_003, "NTRY40000003")
    assert (case.currency, case.book_amount_minor, case.entry_amount_minor) == ("LAK", 100_000, 99)
    assert (case.cycle_id, case.partner, case.detail, case.note) == (CYCLE, "lapnet", "what was found", None)
    assert [(e.state, e.actor, e.at) for e in case.history] == [(BreakState.OPEN, "switch", NOW)]
    assert (case.created_at, case.updated_at, case.version) == (NOW, NOW, 1)


def test_an_unknown_entry_s_break_names_the_entry() -> None:
    e = entry_for(book(7), seq=12, currency="THB")
    case = open_break(Finding(K.UNKNOWN_TO_SWITCH, None, e, "unknown"), cycle_id=CYCLE, partner="lapnet", now=NOW)
    assert (case.uetr, case.book_ref, case.entry_seq, case.currency, case.book_amount_minor) == (_uetr(7), None, 12, "THB", None)


def test_a_missing_movement_s_break_names_the_book() -> None:
    case = open_break(Finding(K.MISSING_AT_PARTNER, book(3), None, "missing"), cycle_id=CYCLE, partner="lapnet", now=NOW)
    assert (case.book_ref, case.entry_seq, case.entry_amount_minor) == (_uetr(3), None, None)


def test_a_matched_finding_opens_no_break() -> None:
    with pytest.raises(InvariantViolation):
        open_break(Finding(MATCHED, book(1), entry_for(book(1)), "ok"), cycle_id=CYCLE, partner="lapnet", now=NOW)


def _open(kind: BreakKind = K.MISSING_AT_PARTNER) -> Break:
    return open_break(Finding(kind, book(1), None, "missing"), cycle_id=CYCLE, partner="lapnet", now=NOW)


def test_a_break_moves_along_its_table_with_its_history() -> None:
    case = _open()
    later = NOW + timedelta(minutes=5)
    following = move_break(case, BreakState.FOLLOWING_UP, actor="switch", text="pacs.028 sent", now=later)
    resolved = move_break(following, BreakState.RESOLVED, actor=f"report {CYCLE}", text="settled in the next cycle", now=later + timedelta(hours=1))
    assert [(e.state, e.actor) for e in resolved.history] == [(BreakState.OPEN, "switch"), (BreakState.FOLLOWING_UP, "switch"),
                                                               (BreakState.RESOLVED, f"report {CYCLE}")]
    assert (resolved.state, resolved.version, resolved.updated_at, resolved.created_at) == (BreakState.RESOLVED, 3, later + timedelta(hours=1), NOW)
    assert resolved.note is None


def test_following_up_again_is_allowed() -> None:
    case = move_break(_open(), BreakState.FOLLOWING_UP, actor="switch", text="pacs.028", now=NOW)
    assert move_break(case, BreakState.FOLLOWING_UP, actor="switch", text="pacs.028 again", now=NOW).version == 3


@pytest.mark.parametrize("final", [BreakState.RESOLVED, BreakState.WRITTEN_OFF])
def test_a_closed_break_stays_closed(final: BreakState) -> None:
    closed = move_break(_open(), final, actor="operator alice", text="done", now=NOW, note="checked with the partner")
    for target in BreakState:
        assert target not in BREAK_TRANSITIONS[final]
        with pytest.raises(InvariantViolation):
            move_break(closed, target, actor="operator alice", text="again", now=NOW, note="x")


def test_an_open_break_cannot_go_back_to_open() -> None:
    with pytest.raises(InvariantViolation):
        move_break(_open(), BreakState.OPEN, actor="switch", text="?", now=NOW)


@pytest.mark.parametrize("final", [BreakState.RESOLVED, BreakState.WRITTEN_OFF])
@pytest.mark.parametrize("note", [None, "", "   "])
def test_an_operator_closes_a_break_only_with_a_note(final: BreakState, note: str | None) -> None:
    with pytest.raises(ValueError, match="note"):
        move_break(_open(), final, actor="operator alice", text="closing", now=NOW, note=note)


def test_an_operator_s_note_is_kept_on_the_break() -> None:
    closed = move_break(_open(K.AMOUNT_MISMATCH), BreakState.WRITTEN_OFF, actor="operator alice", text="written off",
                        now=NOW, note="1 LAK rounding at the partner, agreed by phone")
    assert closed.note == "1 LAK rounding at the partner, agreed by phone"
    assert closed.history[-1].actor == "operator alice"


def test_only_an_operator_writes_a_break_off() -> None:
    with pytest.raises(InvariantViolation, match="only an operator"):
        move_break(_open(), BreakState.WRITTEN_OFF, actor="switch", text="give up", now=NOW, note="no")
