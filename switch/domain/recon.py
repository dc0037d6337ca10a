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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Final, Mapping


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


class Matcher:
    """Streams a report's entries against a cycle's books held in memory (compactly: a cycle of a
    million entries must stay well under 1 GB). feed() each entry in report order, then finish().

    - An entry is identified by its UETR, then by (end-to-end id, transaction id); a return entry
      by its message id (book ref "R:" + MsgId), then by UETR among the cycle's returns.
    - feed() returns a Finding for every entry: MATCHED, or the break. An entry whose movement is
      not in this cycle's books is returned with kind UNKNOWN_TO_SWITCH; the caller may turn it
      into WRONG_CYCLE (booked in another cycle) or resolve it (a payment the switch had timed out).
    - finish() yields MISSING_AT_PARTNER for each SETTLES book entry no entry matched.
    """

    def __init__(self, cycle_id: str, books: Iterable[BookEntry]) -> None:
        raise NotImplementedError

    def feed(self, entry: StatementEntry) -> Finding:
        raise NotImplementedError

    def finish(self) -> Iterator[Finding]:
        raise NotImplementedError


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


def positions(partner: str, cycle_id: str, currency: str, settled: Iterable[BookEntry]) -> tuple[PartnerPosition, list[ParticipantPosition]]:
    """Net positions of the movements both sides agree settled in the cycle (the matched ones)."""
    raise NotImplementedError


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


def new_break_id() -> str:
    raise NotImplementedError


def open_break(finding: Finding, *, cycle_id: str, partner: str, now: datetime) -> Break:
    """The case for a break finding, with the automatic next action its kind calls for."""
    raise NotImplementedError


def move_break(b: Break, target: BreakState, *, actor: str, text: str, now: datetime, note: str | None = None) -> Break:
    """The break moved along BREAK_TRANSITIONS (InvariantViolation off the table), history appended."""
    raise NotImplementedError
