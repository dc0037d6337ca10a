"""The payment and its explicit state table (DESIGN "Payment lifecycle", STYLE §3).

Every move goes through `transition`, which refuses anything off the table and returns the new
payment plus the history entry to append. Terminal states have no way out. A status that arrives
for a payment that is already past it is an *expected* odd case: `classify_partner_status` says
so, and the handler records and counts it instead of applying it twice.

Pure: no I/O; `now` is always an argument.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Final, Mapping

from switch.domain.errors import InvariantViolation
from switch.domain.money import Money


class Direction(StrEnum):
    OUTBOUND = "outbound"  # a Bakong participant pays abroad through a partner network
    INBOUND = "inbound"  # a partner network pays a Bakong participant's customer


class PaymentState(StrEnum):
    RECEIVED = "RECEIVED"  # admitted, identity assigned
    QUOTED = "QUOTED"  # FX fixed, pacs.008 built and queued in the outbox
    SUBMITTED = "SUBMITTED"  # handed to the partner transport
    ACCEPTED = "ACCEPTED"  # partner accepted, settlement pending (ACSP / ACTC)
    COMPLETED = "COMPLETED"  # partner credited the creditor (ACSC / ACCC)
    SETTLED = "SETTLED"  # matched in a settlement report
    REJECTED = "REJECTED"  # by the switch or the partner, always with a reason code
    TIMED_OUT = "TIMED_OUT"  # no partner status within the SLA; investigation running
    RETURNED = "RETURNED"  # the whole amount came back (pacs.004) after completion
    CANCELLED = "CANCELLED"  # recalled before it was credited: never left, or the partner cancelled it
    # after completion (switch/domain/case.py holds each exception's own record):
    RECALL_PENDING = "RECALL_PENDING"  # a recall (camt.056) is open: asked, not answered yet
    PARTIALLY_RETURNED = "PARTIALLY_RETURNED"  # part of the amount came back (pacs.004); more may
    # issue 12: a possible sanctions-list match; nothing has left the switch, an operator releases
    # it (on its way: QUOTED) or rejects it (RR04), before the hold's deadline
    HELD = "HELD"


S = PaymentState
# Exceptions (issue 9): a payment not yet sent can be recalled locally (QUOTED -> CANCELLED); one
# with the partner but not credited can be cancelled by the partner's camt.029 (-> CANCELLED); a
# completed one can be recalled (-> RECALL_PENDING, back to COMPLETED, or SETTLED once its cycle matched it (issue 10), when the recall is refused
# or unanswered) and returned in whole or in part (pacs.004). A partial return may be followed by
# more, until the whole amount is back (PARTIALLY_RETURNED -> PARTIALLY_RETURNED is a move: each
# return is its own history row).
_RETURNS: Final = frozenset({S.RETURNED, S.PARTIALLY_RETURNED})
TRANSITIONS: Final[Mapping[PaymentState, frozenset[PaymentState]]] = {
    S.RECEIVED: frozenset({S.QUOTED, S.REJECTED, S.HELD}),
    S.HELD: frozenset({S.QUOTED, S.REJECTED}),
    S.QUOTED: frozenset({S.SUBMITTED, S.REJECTED, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.ACCEPTED, S.COMPLETED, S.REJECTED, S.TIMED_OUT, S.CANCELLED}),
    S.ACCEPTED: frozenset({S.COMPLETED, S.REJECTED, S.TIMED_OUT, S.CANCELLED}),
    S.TIMED_OUT: frozenset({S.ACCEPTED, S.COMPLETED, S.REJECTED, S.CANCELLED}),
    S.COMPLETED: frozenset({S.SETTLED, S.RECALL_PENDING}) | _RETURNS,
    S.SETTLED: frozenset({S.RECALL_PENDING}) | _RETURNS,
    S.RECALL_PENDING: frozenset({S.COMPLETED, S.SETTLED}) | _RETURNS,  # back where it was when the recall ends with nothing
    S.PARTIALLY_RETURNED: frozenset({S.RECALL_PENDING}) | _RETURNS,
    S.REJECTED: frozenset(),
    S.RETURNED: frozenset(),
    S.CANCELLED: frozenset(),
}
TERMINAL_STATES: Final = frozenset(s for s, out in TRANSITIONS.items() if not out)
# States a participant treats as the payment's outcome: the status event says `final: true`.
# A recall or a partial return happens after the outcome: the payment stays final through them.
FINAL_STATES: Final = (
    frozenset({S.COMPLETED, S.REJECTED, S.SETTLED, S.RECALL_PENDING, S.PARTIALLY_RETURNED}) | TERMINAL_STATES
)
REASON_REQUIRED: Final = frozenset(
    {S.REJECTED, S.TIMED_OUT, S.RETURNED, S.CANCELLED, S.RECALL_PENDING, S.PARTIALLY_RETURNED}
)
# The states a partner's pacs.002 can still move (QUOTED counts as SUBMITTED, see below); past
# them, a pacs.002 is late or a duplicate, never applied (RECALL_PENDING -> COMPLETED is the
# recall's own way back, not a partner status's).
PARTNER_STATUS_STATES: Final = frozenset({S.SUBMITTED, S.ACCEPTED, S.TIMED_OUT})


@dataclass(frozen=True, slots=True)
class PostalAddress:
    """A party's postal address (issue 12, FATF R16 and CBPR+): structured, or hybrid (town and
    country structured, plus at most two free address lines). ISO 20022 PostalAddress24/27."""

    country: str  # ISO 3166-1 alpha-2 (Ctry)
    town: str | None = None  # TwnNm: required by the shipped profiles for every party
    street: str | None = None  # StrtNm
    building: str | None = None  # BldgNb
    post_code: str | None = None  # PstCd
    subdivision: str | None = None  # CtrySubDvsn (province, state)
    lines: tuple[str, ...] = ()  # AdrLine, at most two (hybrid)


@dataclass(frozen=True, slots=True)
class Identification:
    """How a party is identified (issue 12): a person by national id (with its issuer) and/or
    date and place of birth; an organisation by its LEI. Any may be absent."""

    national_id: str | None = None
    national_id_issuer: str | None = None  # the issuing country (alpha-2) or authority
    birth_date: date | None = None
    birth_city: str | None = None
    birth_country: str | None = None  # alpha-2
    lei: str | None = None  # ISO 17442, organisations

    @property
    def organisation(self) -> bool:
        return self.lei is not None


@dataclass(frozen=True, slots=True)
class Party:
    name: str
    account: str | None = None  # Bakong `name@bank`, or a partner account number
    proxy_type: str | None = None  # MOBILE | NATID | EWALLET (partner proxies)
    proxy: str | None = None
    agent: str | None = None  # BIC or the partner's bank code / BIN / IIN
    address: PostalAddress | None = None  # issue 12: where known
    identification: Identification | None = None  # issue 12: the debtor's, where given


@dataclass(frozen=True, slots=True)
class Payment:
    uetr: str
    instruction_id: str
    participant: str
    corridor: str
    partner: str
    debtor: Party
    creditor: Party
    instructed: Money  # what the participant asked for, in its currency
    source: Money  # debited from the debtor
    target: Money  # credited to the creditor by the partner
    fee: Money
    fx_rate: str | None  # BaseOneRate text, target per source; None when no conversion
    quote_id: str | None
    remittance: str | None
    state: PaymentState
    reason_code: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    direction: Direction = Direction.OUTBOUND
    # where the instruction came from when not JSON: "pain.001" + tab-separated MsgId, PmtInfId,
    # EndToEndId, so each final state can be reported back in a pain.002
    origin: str | None = None
    # the partner message that carries the payment (outbound pacs.008 MsgId), fixed before the
    # first send so that every resend is the same message
    message_id: str | None = None
    # when the switch next looks at the payment if nothing has happened (resend, timeout, an
    # inbound confirm deadline); None once the payment is final
    follow_up_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    uetr: str
    from_state: PaymentState | None
    to_state: PaymentState
    reason_code: str | None
    detail: str | None
    at: datetime


def transition(
    payment: Payment,
    target: PaymentState,
    *,
    now: datetime,
    reason_code: str | None = None,
    detail: str | None = None,
) -> tuple[Payment, HistoryEntry]:
    """Move `payment` to `target`. Anything off the table is a programmer error."""
    if target not in TRANSITIONS[payment.state]:
        raise InvariantViolation(f"payment {payment.uetr}: {payment.state} -> {target} is not allowed")
    if target in REASON_REQUIRED and not reason_code:
        raise InvariantViolation(f"payment {payment.uetr}: {target} needs a reason code")
    p = payment  # the constructor directly: dataclasses.replace costs several times more here
    moved = Payment(
        p.uetr, p.instruction_id, p.participant, p.corridor, p.partner, p.debtor, p.creditor, p.instructed,
        p.source, p.target, p.fee, p.fx_rate, p.quote_id, p.remittance, target,
        reason_code if target in REASON_REQUIRED else None, p.version + 1, p.created_at, now, p.direction, p.origin,
        p.message_id, None if target in FINAL_STATES else p.follow_up_at,
    )
    return moved, HistoryEntry(payment.uetr, payment.state, target, reason_code, detail, now)


def scheduled(payment: Payment, *, follow_up_at: datetime | None, message_id: str | None = None) -> Payment:
    """The payment with when it is next followed up (and the partner message that carries it),
    no state change: built directly, as in `transition`, since dataclasses.replace is slow here."""
    p = payment
    return Payment(
        p.uetr, p.instruction_id, p.participant, p.corridor, p.partner, p.debtor, p.creditor, p.instructed,
        p.source, p.target, p.fee, p.fx_rate, p.quote_id, p.remittance, p.state, p.reason_code, p.version,
        p.created_at, p.updated_at, p.direction, p.origin, message_id or p.message_id, follow_up_at,
    )


def new_uetr() -> str:
    """A UUIDv4 (RFC 4122: version 4, variant 10xx) as the canonical lower-case string; the same
    as str(uuid.uuid4()), without building a UUID object on the hot path."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def initial_history(payment: Payment) -> HistoryEntry:
    return HistoryEntry(payment.uetr, None, payment.state, payment.reason_code, None, payment.created_at)


class StatusDisposition(StrEnum):
    APPLY = "apply"  # move the payment
    LATE = "late"  # the payment is already past this status (or terminal): record, count, ignore
    DUPLICATE = "duplicate"  # the same status again


def classify_partner_status(current: PaymentState, target: PaymentState) -> StatusDisposition:
    """Decide what a partner status means for a payment in `current`.

    A pacs.002 that races the send acknowledgement finds the payment still QUOTED; the caller
    first records SUBMITTED (the partner evidently has it), so QUOTED counts as SUBMITTED here.
    """
    effective = S.SUBMITTED if current is S.QUOTED else current
    if effective is target:
        return StatusDisposition.DUPLICATE
    if effective in PARTNER_STATUS_STATES and target in TRANSITIONS[effective] and target is not S.CANCELLED:
        return StatusDisposition.APPLY
    return StatusDisposition.LATE
