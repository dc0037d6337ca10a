"""Settlement reconciliation (issue 10): the switch's books for a cycle against the partner's
settlement report, entry by entry, with a break taxonomy; the net positions a cycle leaves; and
each break as a case that is worked until it is resolved or written off.

Amounts are integer minor units (ISO 4217 exponent of the currency, switch/domain/money.py) and
compare exactly. Perspective: a report is the statement of the hub's settlement account at the
partner network. An outbound payment debits it (DBIT), an inbound payment credits it (CRDT); a
return from the partner of an outbound payment credits it, a return by the hub of an inbound
payment debits it.

Pure: no I/O; `now` is always an argument.
"""

from __future__ import annotations

import uuid
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Final, Mapping

from switch.domain.errors import InvariantViolation


class Outcome(StrEnum):
    """What the switch's books say happened to a movement by the cut-off."""

    SETTLES = "settles"  # completed: the partner must have settled it
    NOT_SETTLED = "not_settled"  # rejected or cancelled: the partner must not have settled it


class BookKind(StrEnum):
    PAYMENT = "payment"  # a pacs.008 (either direction); ref = its UETR
    RETURN = "return"  # a pacs.004 (either direction); ref = "R:" + the pacs.004 MsgId


@dataclass(frozen=True, slots=True)
class BookEntry:
    """One movement in the switch's books for a cycle (table settlement_books)."""

    ref: str  # unique over all cycles: a movement is booked once (nothing moves between closed cycles)
    cycle_id: str
    kind: BookKind
    uetr: str  # the payment's UETR (a return: the returned payment's)
    outbound: bool  # True: the hub's account at the partner is debited (DBIT); False: credited (CRDT)
    amount_minor: int  # in `currency`, the partner's settlement currency
    currency: str
    outcome: Outcome
    participant: str  # the Bakong participant on the switch's side
    participant_amount_minor: int  # what the participant is debited / credited, in participant_currency
    participant_currency: str
    fee_minor: int  # the switch's fee charged to the participant, in participant_currency
    end_to_end_id: str | None = None
    tx_id: str | None = None
    message_id: str | None = None  # the pacs.008 / pacs.004 MsgId
    result: str | None = None  # once the cycle is reconciled: MATCHED or the break kind (settlement_books.result)


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One entry of a partner's report, as the reconciliation reads it (from iso20022.reports
    ReportEntry: the amount already in minor units; None when it is not a whole number of them)."""

    seq: int  # position in the report (page, then order): names the entry in a break
    entry_ref: str | None  # NtryRef / AcctSvcrRef
    uetr: str | None
    end_to_end_id: str | None
    tx_id: str | None
    message_id: str | None  # Refs/MsgId (a return: the pacs.004 MsgId)
    is_return: bool
    outbound: bool  # DBIT
    amount_minor: int | None
    currency: str
    booked: bool  # Sts BOOK (settled); False: PDNG / INFO / anything else
    booking_date: date | None = None


class BreakKind(StrEnum):
    MISSING_AT_PARTNER = "missing_at_partner"  # the switch completed it, the report lacks it
    UNKNOWN_TO_SWITCH = "unknown_to_switch"  # the report has it, the switch does not
    AMOUNT_MISMATCH = "amount_mismatch"  # amounts (or direction) differ
    CURRENCY_MISMATCH = "currency_mismatch"
    STATUS_MISMATCH = "status_mismatch"  # switch rejected/cancelled vs report settled, or the reverse
    DUPLICATE_ENTRY = "duplicate_entry"  # the same movement twice in the report
    WRONG_CYCLE = "wrong_cycle"  # settled in another cycle than the one the switch booked it in


MATCHED: Final = "matched"


@dataclass(frozen=True, slots=True)
class Finding:
    """The matcher's verdict on one book entry and/or one statement entry."""

    kind: str  # MATCHED or a BreakKind value
    book: BookEntry | None
    entry: StatementEntry | None
    detail: str


# a book's flags in Matcher._flags
_RETURN: Final = 1
_OUTBOUND: Final = 2
_SETTLES: Final = 4
# what an entry did to a book, in Matcher._seen
_UNSEEN: Final = 0
_SEEN_MATCHED: Final = 1
_SEEN_BREAK: Final = 2
# separates the ids packed into one string per book; XML 1.0 cannot carry NUL, so no id holds it
_SEP: Final = "\x00"


class Matcher:
    """Streams a report's entries against a cycle's books held in memory (compactly: a cycle of a
    million entries must stay well under 1 GB). feed() each entry in report order, then finish().

    - An entry is identified by its UETR, then by (end-to-end id, transaction id); a return entry
      by its message id (book ref "R:" + MsgId), then by UETR among the cycle's returns.
      (An entry that carries a UETR is identified by it alone; (end-to-end id, transaction id)
      names a payment only for an entry without one.)
    - feed() returns a Finding for every entry: MATCHED, or the break. An entry whose movement is
      not in this cycle's books is returned with kind UNKNOWN_TO_SWITCH; the caller may turn it
      into WRONG_CYCLE (booked in another cycle) or resolve it (a payment the switch had timed out).
    - finish() yields MISSING_AT_PARTNER for each SETTLES book entry no entry matched.

    The rules, for an entry that names a book:
    - the book was already named by an earlier entry: DUPLICATE_ENTRY (the first finding stands);
    - book SETTLES, entry booked: CURRENCY_MISMATCH if the currencies differ, else AMOUNT_MISMATCH
      if the amount (None: not a whole number of minor units) or the direction differs, else MATCHED;
    - book SETTLES, entry not booked (PDNG, INFO): STATUS_MISMATCH;
    - book NOT_SETTLED, entry booked: STATUS_MISMATCH; entry not booked: MATCHED (both sides agree
      nothing settled).
    A book that drew a break is not reported missing again by finish().

    Memory: the books are not kept as objects. Per book the matcher holds its ref (the key of one
    dict), one string packing its other ids, and fixed-width numbers in arrays (amounts, flags,
    interned currency and participant numbers); a BookEntry is rebuilt for a finding. About
    300 bytes a book (tests/bench/bench_matcher.py measures it).
    """

    def __init__(self, cycle_id: str, books: Iterable[BookEntry]) -> None:
        self.cycle_id = cycle_id
        self._index: dict[str, int] = {}  # payment: its UETR (= its ref); return: "R:" + MsgId (= its ref)
        self._refs: list[str] = []
        self._ids: list[str] = []  # uetr (returns only; payments: ""), e2e, tx id, message id, packed with _SEP
        self._amount = array("q")
        self._participant_amount = array("q")
        self._fee = array("q")
        self._currency = array("H")  # numbers into self._names
        self._participant_currency = array("H")
        self._participant = array("L")
        self._flags = bytearray()
        self._names: list[str] = []  # interned: currencies, participants
        self._name_no: dict[str, int] = {}
        self._returns_by_uetr: dict[str, list[int]] = {}
        self._by_e2e_tx: dict[str, int] | None = None  # built on the first entry that needs it
        for book in books:
            self._add(book)
        self._seen = bytearray(len(self._refs))

    def __len__(self) -> int:
        return len(self._refs)

    def extend(self, books: Iterable[BookEntry]) -> None:
        """More of the cycle's books (read in pages, so that they never all sit in memory as
        objects), before the first entry is fed."""
        before = len(self._refs)
        for book in books:
            self._add(book)
        self._seen.extend(bytes(len(self._refs) - before))

    def _intern(self, name: str) -> int:
        number = self._name_no.get(name)
        if number is None:
            number = self._name_no[name] = len(self._names)
            self._names.append(name)
        return number

    def _add(self, book: BookEntry) -> None:
        if book.cycle_id != self.cycle_id:
            raise InvariantViolation(f"book {book.ref} is in cycle {book.cycle_id}, not {self.cycle_id}")
        is_return = book.kind is BookKind.RETURN
        key = book.ref
        if not is_return and book.ref != book.uetr:
            raise InvariantViolation(f"payment book {book.ref}: its ref must be its UETR {book.uetr}")
        if key in self._index:
            raise InvariantViolation(f"book {key} twice in cycle {self.cycle_id}")
        number = len(self._refs)
        self._index[key] = number
        self._refs.append(key)
        self._ids.append(_SEP.join((book.uetr if is_return else "", book.end_to_end_id or "", book.tx_id or "", book.message_id or "")))
        self._amount.append(book.amount_minor)
        self._participant_amount.append(book.participant_amount_minor)
        self._fee.append(book.fee_minor)
        self._currency.append(self._intern(book.currency))
        self._participant_currency.append(self._intern(book.participant_currency))
        self._participant.append(self._intern(book.participant))
        self._flags.append((_RETURN if is_return else 0) | (_OUTBOUND if book.outbound else 0)
                           | (_SETTLES if book.outcome is Outcome.SETTLES else 0))
        if is_return:
            self._returns_by_uetr.setdefault(book.uetr, []).append(number)

    def book(self, number: int) -> BookEntry:
        """Book `number` (in the order the books were given), rebuilt."""
        uetr, e2e, tx_id, message_id = self._ids[number].split(_SEP)
        flags = self._flags[number]
        ref = self._refs[number]
        return BookEntry(
            ref=ref,
            cycle_id=self.cycle_id,
            kind=BookKind.RETURN if flags & _RETURN else BookKind.PAYMENT,
            uetr=uetr or ref,
            outbound=bool(flags & _OUTBOUND),
            amount_minor=self._amount[number],
            currency=self._names[self._currency[number]],
            outcome=Outcome.SETTLES if flags & _SETTLES else Outcome.NOT_SETTLED,
            participant=self._names[self._participant[number]],
            participant_amount_minor=self._participant_amount[number],
            participant_currency=self._names[self._participant_currency[number]],
            fee_minor=self._fee[number],
            end_to_end_id=e2e or None,
            tx_id=tx_id or None,
            message_id=message_id or None,
        )

    def _find(self, entry: StatementEntry) -> int | None:
        if entry.is_return:
            if entry.message_id is not None:
                number = self._index.get("R:" + entry.message_id)
                if number is not None:
                    return number
            candidates = self._returns_by_uetr.get(entry.uetr) if entry.uetr is not None else None
            if not candidates:
                return None
            # partial returns of one payment in one cycle: one not named yet, of the entry's amount
            # if there is one, else the first not named yet (all named: a duplicate of the first)
            unseen = [n for n in candidates if self._seen[n] == _UNSEEN]
            if not unseen:
                return candidates[0]
            return next((n for n in unseen if self._amount[n] == entry.amount_minor and self._names[self._currency[n]] == entry.currency), unseen[0])
        if entry.uetr is not None:
            # a UETR names the payment on its own: an entry whose UETR the books lack is unknown,
            # even if its end-to-end id happens to be another payment's
            return self._index.get(entry.uetr)
        if entry.end_to_end_id is None:
            return None
        if self._by_e2e_tx is None:
            self._by_e2e_tx = {}
            for n, ids in enumerate(self._ids):
                _, e2e, tx_id, _ = ids.split(_SEP)
                if e2e and not self._flags[n] & _RETURN:
                    self._by_e2e_tx.setdefault(e2e + _SEP + tx_id, n)
        return self._by_e2e_tx.get(entry.end_to_end_id + _SEP + (entry.tx_id or ""))

    def feed(self, entry: StatementEntry) -> Finding:
        number = self._find(entry)
        if number is None:
            what = "return" if entry.is_return else "payment"
            ident = entry.uetr or entry.message_id or entry.end_to_end_id or entry.entry_ref
            return Finding(BreakKind.UNKNOWN_TO_SWITCH, None, entry, f"{what} {ident} is not in cycle {self.cycle_id}'s books")
        book = self.book(number)
        if self._seen[number] != _UNSEEN:
            return Finding(BreakKind.DUPLICATE_ENTRY, book, entry, f"{book.ref} again (entry {entry.seq}): the report settles it twice")
        kind, detail = _verdict(book, entry)
        self._seen[number] = _SEEN_MATCHED if kind == MATCHED else _SEEN_BREAK
        return Finding(kind, book, entry, detail)

    def finish(self) -> Iterator[Finding]:
        for number, seen in enumerate(self._seen):
            if seen == _UNSEEN and self._flags[number] & _SETTLES:
                book = self.book(number)
                yield Finding(BreakKind.MISSING_AT_PARTNER, book, None,
                              f"{book.ref}: {_amount(book.amount_minor, book.currency)} settled in the books, not in the report")

    def seen_refs(self) -> Iterator[str]:
        """The refs of the books some entry named so far (matched or not)."""
        return (self._refs[n] for n, seen in enumerate(self._seen) if seen != _UNSEEN)


def _amount(amount_minor: int | None, currency: str) -> str:
    return f"{'?' if amount_minor is None else amount_minor} {currency} (minor units)"


def _verdict(book: BookEntry, entry: StatementEntry) -> tuple[str, str]:
    settles = book.outcome is Outcome.SETTLES
    if settles and not entry.booked:
        return BreakKind.STATUS_MISMATCH, f"{book.ref}: completed in the books, not booked in the report (pending or information only)"
    if not settles:
        if entry.booked:
            return BreakKind.STATUS_MISMATCH, f"{book.ref}: rejected or cancelled in the books, booked (settled) in the report"
        return MATCHED, f"{book.ref}: not settled, and not booked in the report"
    if entry.currency != book.currency:
        return BreakKind.CURRENCY_MISMATCH, f"{book.ref}: {book.currency} in the books, {entry.currency} in the report"
    if entry.amount_minor is None or entry.amount_minor != book.amount_minor:
        return BreakKind.AMOUNT_MISMATCH, (f"{book.ref}: {_amount(book.amount_minor, book.currency)} in the books, "
                                           f"{_amount(entry.amount_minor, entry.currency)} in the report")
    if entry.outbound != book.outbound:
        side = lambda outbound: "debit" if outbound else "credit"  # noqa: E731
        return BreakKind.AMOUNT_MISMATCH, f"{book.ref}: a {side(book.outbound)} in the books, a {side(entry.outbound)} in the report"
    return MATCHED, f"{book.ref}: {_amount(book.amount_minor, book.currency)}"


@dataclass(frozen=True, slots=True)
class PartnerPosition:
    """A cycle's flows between the hub and one partner network, in its settlement currency.
    net_minor > 0: the hub owes the partner; < 0: the partner owes the hub."""

    cycle_id: str
    partner: str
    currency: str
    outbound_minor: int  # payments the partner credited for the hub (hub owes)
    inbound_minor: int  # payments the partner sent to the hub (partner owes)
    returns_to_partner_minor: int  # the hub's pacs.004 to the partner (hub owes)
    returns_from_partner_minor: int  # the partner's pacs.004 to the hub (partner owes)
    fees_minor: int  # partner fees due by the hub (0: not modelled, see the profile)
    count: int
    net_minor: int


@dataclass(frozen=True, slots=True)
class ParticipantPosition:
    """One Bakong participant's position with the hub for a cycle, in one currency.
    net_minor > 0: the participant owes the hub; < 0: the hub owes the participant."""

    cycle_id: str
    participant: str
    currency: str
    debits_minor: int  # outbound payments debited (without fees)
    credits_minor: int  # inbound payments credited
    returns_in_minor: int  # returns credited back to it
    returns_out_minor: int  # returns it sent back
    fees_minor: int  # the switch's fees
    count: int
    net_minor: int


def positions(partner: str, cycle_id: str, settled: Iterable[BookEntry]) -> tuple[list[PartnerPosition], list[ParticipantPosition]]:
    """Net positions of the movements both sides agree settled in the cycle (the matched ones):
    one PartnerPosition per settlement currency, one ParticipantPosition per (participant, its
    currency), each list sorted. Books whose outcome is NOT_SETTLED moved nothing and are left out.

    The partner side: an outbound payment and a return the hub sends (its account debited) are
    owed by the hub; an inbound payment and a return the partner sends are owed to it. The
    participant side: an outbound payment debits the participant (plus the switch's fee), an
    inbound one credits it; the partner's return of an outbound payment credits it back, and the
    hub's return of an inbound one debits it again."""
    partner_rows: dict[str, list[int]] = {}  # currency -> outbound, inbound, returns to, returns from, count
    participant_rows: dict[tuple[str, str], list[int]] = {}  # debits, credits, returns in, returns out, fees, count
    for book in settled:
        if book.cycle_id != cycle_id:
            raise InvariantViolation(f"book {book.ref} is in cycle {book.cycle_id}, not {cycle_id}")
        if book.outcome is not Outcome.SETTLES:
            continue
        row = partner_rows.setdefault(book.currency, [0, 0, 0, 0, 0])
        mine = participant_rows.setdefault((book.participant, book.participant_currency), [0, 0, 0, 0, 0, 0])
        if book.kind is BookKind.PAYMENT:
            row[0 if book.outbound else 1] += book.amount_minor
            mine[0 if book.outbound else 1] += book.participant_amount_minor
        else:
            row[2 if book.outbound else 3] += book.amount_minor
            mine[3 if book.outbound else 2] += book.participant_amount_minor
        row[4] += 1
        mine[4] += book.fee_minor
        mine[5] += 1
    partners = [
        PartnerPosition(cycle_id, partner, currency, outbound_minor=out, inbound_minor=inb, returns_to_partner_minor=to,
                        returns_from_partner_minor=frm, fees_minor=0, count=count, net_minor=out + to - inb - frm)
        for currency, (out, inb, to, frm, count) in sorted(partner_rows.items())
    ]
    participants = [
        ParticipantPosition(cycle_id, participant, currency, debits_minor=debits, credits_minor=credits, returns_in_minor=r_in,
                            returns_out_minor=r_out, fees_minor=fees, count=count, net_minor=debits + r_out + fees - credits - r_in)
        for (participant, currency), (debits, credits, r_in, r_out, fees, count) in sorted(participant_rows.items())
    ]
    return partners, participants


class BreakState(StrEnum):
    OPEN = "open"  # found; nobody has done anything yet
    FOLLOWING_UP = "following_up"  # the switch took an action (enquiry, resend, recall request) and waits
    RESOLVED = "resolved"  # by a later report, an answer, or an operator (with a note)
    WRITTEN_OFF = "written_off"  # an operator accepted the difference, with a note


class BreakAction(StrEnum):
    ENQUIRY = "enquiry"  # a pacs.028 to the partner (its "not received" answer resends the pacs.008)
    RESEND = "resend"
    RECALL_REQUEST = "recall_request"
    NONE = "none"  # nothing automatic: an operator works it


BREAK_TRANSITIONS: Final[Mapping[BreakState, frozenset[BreakState]]] = {
    BreakState.OPEN: frozenset({BreakState.FOLLOWING_UP, BreakState.RESOLVED, BreakState.WRITTEN_OFF}),
    BreakState.FOLLOWING_UP: frozenset({BreakState.FOLLOWING_UP, BreakState.RESOLVED, BreakState.WRITTEN_OFF}),
    BreakState.RESOLVED: frozenset(),
    BreakState.WRITTEN_OFF: frozenset(),
}


BREAK_NOT_CLOSED: Final = frozenset({BreakState.OPEN.value, BreakState.FOLLOWING_UP.value})


@dataclass(frozen=True, slots=True)
class BreakEvent:
    at: datetime
    state: BreakState
    actor: str  # "switch", "report <cycle id>", "operator <name>"
    text: str


@dataclass(frozen=True, slots=True)
class Break:
    """A reconciliation break, worked as a case (table recon_breaks)."""

    id: str  # "B" + 32 hex
    cycle_id: str
    partner: str
    kind: BreakKind
    state: BreakState
    action: BreakAction
    uetr: str | None
    book_ref: str | None
    entry_seq: int | None
    entry_ref: str | None
    currency: str | None
    book_amount_minor: int | None
    entry_amount_minor: int | None
    detail: str
    note: str | None
    history: tuple[BreakEvent, ...]
    created_at: datetime
    updated_at: datetime
    version: int = 1


BREAK_ACTIONS: Final[Mapping[BreakKind, BreakAction]] = {
    BreakKind.MISSING_AT_PARTNER: BreakAction.ENQUIRY,  # ask the partner (a "not received" answer resends)
    BreakKind.STATUS_MISMATCH: BreakAction.ENQUIRY,  # the partner's own status decides
    BreakKind.UNKNOWN_TO_SWITCH: BreakAction.NONE,
    BreakKind.AMOUNT_MISMATCH: BreakAction.NONE,
    BreakKind.CURRENCY_MISMATCH: BreakAction.NONE,
    BreakKind.DUPLICATE_ENTRY: BreakAction.NONE,  # the partner must reverse it; an operator follows up
    BreakKind.WRONG_CYCLE: BreakAction.NONE,
}
BREAK_TERMINAL: Final = frozenset(s for s, out in BREAK_TRANSITIONS.items() if not out)


def new_break_id() -> str:
    """A break id: "B" and a uuid4 as 32 hex digits (fits Max35Text)."""
    return "B" + uuid.uuid4().hex


def open_break(finding: Finding, *, cycle_id: str, partner: str, now: datetime) -> Break:
    """The case for a break finding, with the automatic next action its kind calls for."""
    if finding.kind == MATCHED:
        raise InvariantViolation(f"a matched finding is not a break: {finding.detail}")
    kind = BreakKind(finding.kind)
    book, entry = finding.book, finding.entry
    if book is None and entry is None:
        raise InvariantViolation(f"a {kind} finding names neither a book nor an entry")
    return Break(
        id=new_break_id(),
        cycle_id=cycle_id,
        partner=partner,
        kind=kind,
        state=BreakState.OPEN,
        action=BREAK_ACTIONS[kind],
        uetr=book.uetr if book is not None else entry.uetr if entry is not None else None,
        book_ref=book.ref if book is not None else None,
        entry_seq=entry.seq if entry is not None else None,
        entry_ref=entry.entry_ref if entry is not None else None,
        currency=book.currency if book is not None else entry.currency if entry is not None else None,
        book_amount_minor=book.amount_minor if book is not None else None,
        entry_amount_minor=entry.amount_minor if entry is not None else None,
        detail=finding.detail,
        note=None,
        history=(BreakEvent(now, BreakState.OPEN, "switch", finding.detail),),
        created_at=now,
        updated_at=now,
    )


def move_break(b: Break, target: BreakState, *, actor: str, text: str, now: datetime, note: str | None = None) -> Break:
    """The break moved along BREAK_TRANSITIONS (InvariantViolation off the table), history appended.

    An operator (actor "operator <name>") who resolves or writes off a break gives a note: without
    one this raises ValueError (a refused request, not a bug: the edge answers it). Only an
    operator writes a break off; the switch and reports resolve breaks, never write them off."""
    if target not in BREAK_TRANSITIONS[b.state]:
        raise InvariantViolation(f"break {b.id}: {b.state} -> {target} is not allowed")
    operator = actor.startswith("operator")
    if target is BreakState.WRITTEN_OFF and not operator:
        raise InvariantViolation(f"break {b.id}: only an operator writes a break off, not {actor!r}")
    if target in BREAK_TERMINAL and operator and not (note and note.strip()):
        raise ValueError(f"break {b.id}: {actor} must give a note to mark it {target}")
    return replace(
        b,
        state=target,
        note=note if note is not None else b.note,
        history=(*b.history, BreakEvent(now, target, actor, text)),
        updated_at=now,
        version=b.version + 1,
    )
