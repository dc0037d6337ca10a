"""Exceptions to a payment's way forward (issue 9): status enquiries, returns and recalls, each a
*case* with its own explicit state table, kept next to the payment it is about.

A case records who started it (the switch, an operator, a participant, a partner), whom the
switch is waiting for, the reason, the amounts moved and the rate used, the message that carries
it, and when the switch looks at it again (`due_at`: chase, give up). Its `ref` makes a request
idempotent: the same partner message or the same participant request again finds the case it
made instead of making another. The payment's own state (switch/domain/payment.py) says what the
case did to the money: RECALL_PENDING while a recall is open, RETURNED / PARTIALLY_RETURNED /
CANCELLED when money moved back.

Pure: no I/O; `now` is always an argument.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Final, Mapping

from switch.domain.errors import InvariantViolation
from switch.domain.money import Money


class CaseKind(StrEnum):
    ENQUIRY = "enquiry"  # pacs.028 -> pacs.002
    RETURN = "return"  # pacs.004
    RECALL = "recall"  # camt.056 -> camt.029 (then a pacs.004)


class Initiator(StrEnum):
    SWITCH = "switch"  # the switch's own follow-up (an enquiry after enquire_after_s)
    OPERATOR = "operator"  # `mekong payments enquire`, the operations API
    PARTICIPANT = "participant"  # a request on mekong.requests
    PARTNER = "partner"  # a partner's pacs.028, pacs.004 or camt.056


class CaseState(StrEnum):
    OPEN = "OPEN"  # taken; the switch has not asked anyone yet (or waits to: a recall before the send ack)
    SENT = "SENT"  # the switch asked (pacs.028, camt.056, a recall event): waiting, chased until `reply_by`
    AWAITING_RETURN = "AWAITING_RETURN"  # a recall the partner accepted: the pacs.004 is still to come
    DONE = "DONE"  # done as asked: answered, returned, cancelled
    REFUSED = "REFUSED"  # the other side said no, with its reason
    UNANSWERED = "UNANSWERED"  # no answer by `reply_by`; a late answer still resolves it
    REJECTED = "REJECTED"  # the switch refused the request itself (unknown payment, over-return, ...)


C = CaseState
CASE_TRANSITIONS: Final[Mapping[CaseState, frozenset[CaseState]]] = {
    C.OPEN: frozenset({C.SENT, C.AWAITING_RETURN, C.DONE, C.REFUSED, C.UNANSWERED, C.REJECTED}),
    C.SENT: frozenset({C.SENT, C.AWAITING_RETURN, C.DONE, C.REFUSED, C.UNANSWERED}),  # SENT -> SENT: chased
    C.AWAITING_RETURN: frozenset({C.DONE, C.UNANSWERED}),
    C.UNANSWERED: frozenset({C.AWAITING_RETURN, C.DONE, C.REFUSED}),  # a late answer
    C.DONE: frozenset(),
    C.REFUSED: frozenset(),
    C.REJECTED: frozenset(),
}
CASE_TERMINAL: Final = frozenset(s for s, out in CASE_TRANSITIONS.items() if not out)
# a case still open: one recall per payment at a time
CASE_OPEN: Final = frozenset({C.OPEN, C.SENT, C.AWAITING_RETURN})


@dataclass(frozen=True, slots=True)
class Case:
    id: str  # "C" + 32 hex: the case's own id (camt.056 Case/Id, the participant's case_id)
    uetr: str  # the payment it is about
    kind: CaseKind
    initiator: Initiator
    counterpart: str  # whom the switch deals with: the partner id, or the participant code
    state: CaseState
    reason_code: str | None  # the request's reason (recall DUPL.., return AC04..), later the answer's
    detail: str | None
    # idempotency: the request as its sender names it (partner/message id/tx id, participant/
    # request id, switch/uetr/n); the same ref again finds this case
    ref: str
    message_id: str | None  # the message the switch sent for it (pacs.028, camt.056, pacs.004, camt.029)
    amount: Money | None  # what the case moves back, in the partner's settlement currency
    back_amount: Money | None  # the same amount in the debtor's currency (outbound returns)
    rate: str | None  # the rate `back_amount` was converted at (decimal text), None without FX
    rate_rule: str | None  # "original" or "current" (the corridor's return_fx)
    attempts: int  # messages sent for it (first send and chases)
    due_at: datetime | None  # when the switch next looks at it; None: nothing to do
    reply_by: datetime | None  # the answer is due by then
    created_at: datetime
    updated_at: datetime
    version: int = 1


def moved(case: Case, target: CaseState, *, now: datetime, **changes: object) -> Case:
    """The case in `target` (with `changes`: reason_code, detail, message_id, due_at, ...);
    anything off CASE_TRANSITIONS is a programmer error."""
    if target not in CASE_TRANSITIONS[case.state]:
        raise InvariantViolation(f"case {case.id}: {case.state} -> {target} is not allowed")
    if target in CASE_TERMINAL and "due_at" not in changes:
        changes["due_at"] = None
    return replace(case, state=target, updated_at=now, version=case.version + 1, **changes)  # type: ignore[arg-type]


def touched(case: Case, *, now: datetime, **changes: object) -> Case:
    """The case with `changes` and no state change (a chase rescheduled, an attempt counted)."""
    return replace(case, updated_at=now, version=case.version + 1, **changes)  # type: ignore[arg-type]


def returned_so_far(cases: list[Case]) -> int:
    """Minor units already returned by `cases` (returns done, and recalls that brought money back)."""
    return sum(c.amount.amount_minor for c in cases if c.kind is CaseKind.RETURN and c.state is C.DONE and c.amount)


def open_recall(cases: list[Case]) -> Case | None:
    """The payment's recall still open, if any (one recall per payment at a time)."""
    return next((c for c in cases if c.kind is CaseKind.RECALL and c.state in CASE_OPEN), None)


def new_case_id() -> str:
    """A case id: "C" and 128 random bits as 32 hex digits (fits Max35Text)."""
    import os

    return "C" + os.urandom(16).hex()


def return_message_id(uetr: str, return_id: str) -> str:
    """The MsgId of the switch's own pacs.004 returning (part of) payment `uetr` as return
    `return_id`: fixed by the two (a redelivered request builds the same message again, and the
    settlement books name the same message; Max35Text)."""
    return "T" + hashlib.sha256(f"{uetr}\x00{return_id}".encode()).hexdigest()[:34]
