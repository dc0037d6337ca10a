"""What participants hear on the status topic: the one module that builds status events
(contract `StatusEventV1`) and their outbox rows. Handlers, the inbound flow, the follow-up timers
and the Kafka edge all come here.

Every event carries an `event_id`, fixed when the event is built and written to the outbox, so
each republication of the row repeats it (a participant deduplicates on it), and a `type`:
"status" for an instruction's state, "conflict" for an instruction id reused with another payload.
The outbox row's message id is the event's id: each event is its own message.
"""

from __future__ import annotations

import os

import hashlib
from datetime import datetime

from fx.quote import effective_rate
from iso20022.schemas import SchemaSet
from switch.config import SwitchConfig
from switch.contracts import AmountV1, ExceptionV1, StatusEventV1
from switch.domain.case import Case
from switch.domain.money import Money
from switch.domain.payment import FINAL_STATES, Payment, PaymentState
from switch.service import pain_reports
from switch.service.ports import OutboxMessage

dead_letter_reason_chars_max = 300  # of the dead letter's reason, in the event's `reason`


def new_event_id() -> str:
    """A status event's id: 128 random bits as 32 hex digits, fixed when the event is written to
    the outbox, so every republication of the event carries the same one."""
    return os.urandom(16).hex()


def _amount(money: Money) -> AmountV1:
    # model_construct: built from a domain Money, which is valid by construction
    return AmountV1.model_construct(value=money.to_text(money.currency.decimals_accepted_max), currency=money.currency.code)


def effective_rate_text(payment: Payment) -> str | None:
    """The payment's effective rate (issue 11): what the debtor gets per unit paid, target ÷
    (source + fee), as decimal text; None when there is nothing to divide."""
    if payment.target.amount_minor <= 0 or payment.source.amount_minor + payment.fee.amount_minor <= 0:
        return None
    return f"{effective_rate(payment.source, payment.fee, payment.target):f}"


def status_event(payment: Payment, *, now: datetime, reason: str | None = None, replayed: bool = False) -> StatusEventV1:
    """The status event for a payment. Built without re-validation from domain values, which are
    valid by construction; a test checks that events validate against the contract."""
    return StatusEventV1.model_construct(
        event_id=new_event_id(),
        type="status",
        instruction_id=payment.instruction_id,
        participant=payment.participant,
        uetr=payment.uetr,
        corridor=payment.corridor,
        state=payment.state.value,
        final=payment.state in FINAL_STATES,
        reason_code=payment.reason_code,
        reason=reason,
        source_amount=_amount(payment.source),
        target_amount=_amount(payment.target),
        fee=_amount(payment.fee),
        fx_rate=payment.fx_rate,
        effective_rate=effective_rate_text(payment),
        quote_id=payment.quote_id,
        replayed=replayed,
        direction=payment.direction.value,
        payment_version=payment.version,
        occurred_at=now,
    )


def exception_of(case: Case, *, reason: str | None = None, request_id: str | None = None) -> ExceptionV1:
    """A case (issue 9) as the status event tells it."""
    return ExceptionV1(
        case_id=case.id,
        kind=case.kind.value,  # type: ignore[arg-type]
        initiator=case.initiator.value,  # type: ignore[arg-type]
        state=case.state.value,
        reason_code=case.reason_code,
        reason=reason if reason is not None else case.detail,
        request_id=request_id,
        returned_amount=_amount(case.amount) if case.amount is not None and case.kind.value == "return" else None,
        back_amount=_amount(case.back_amount) if case.back_amount is not None else None,
        rate=case.rate,
        rate_rule=case.rate_rule,  # type: ignore[arg-type]
        reply_by=case.reply_by,
    )


def case_outbox(
    p: Payment, case: Case, config: SwitchConfig, *, now: datetime, reason: str | None = None, request_id: str | None = None,
    moved: bool = False,
) -> OutboxMessage:
    """What the participant hears of a case about its payment: a status event with the payment's
    state and the case (`exception`); type "status" when the case moved the payment (`moved`:
    RETURNED, CANCELLED, ...), "exception" when it did not (a recall refused, a request refused)."""
    event = status_event(p, now=now, reason=reason)
    event = event.model_copy(
        update={"type": "status" if moved else "exception", "exception": exception_of(case, reason=reason, request_id=request_id)}
    )
    return status_outbox(event, config, now=now, uetr=p.uetr)


def request_refused_outbox(
    participant: str, request_id: str, kind: str, uetr: str | None, reason_code: str, reason: str, config: SwitchConfig, *,
    now: datetime,
) -> OutboxMessage:
    """A participant's request (issue 9) the switch refused before any case was opened: unknown
    payment, another participant's, not in a state that allows it. Its event id is fixed by the
    request, so a redelivered request is the same event (the caller skips ids already stored)."""
    event_id = "Q" + hashlib.sha256(f"{participant}\x00{request_id}\x00{reason_code}".encode()).hexdigest()[:40]
    event = StatusEventV1(
        event_id=event_id,
        type="exception",
        instruction_id=request_id,
        participant=participant,
        uetr=uetr,
        corridor=None,
        state="REJECTED",
        final=True,
        reason_code=reason_code,
        reason=reason,
        exception=ExceptionV1(
            case_id="-", kind=kind, initiator="participant", state="REJECTED",  # type: ignore[arg-type]
            reason_code=reason_code, reason=reason, request_id=request_id,
        ),
        occurred_at=now,
    )
    return status_outbox(event, config, now=now, uetr=uetr)


def reject_event(
    participant: str, instruction_id: str, corridor: str | None, reason_code: str, reason: str | None, *,
    now: datetime, replayed: bool = False, event_id: str | None = None,
) -> StatusEventV1:
    """An instruction the switch did not admit (no payment, no UETR): REJECTED, final. `event_id`:
    a fixed one when the event is derived from something that can arrive again (a record)."""
    return StatusEventV1(
        event_id=event_id or new_event_id(),
        instruction_id=instruction_id,
        participant=participant,
        uetr=None,
        corridor=corridor,
        state=PaymentState.REJECTED.value,
        final=True,
        reason_code=reason_code,
        reason=reason,
        replayed=replayed,
        occurred_at=now,
    )


def conflict_event(
    participant: str, instruction_id: str, corridor: str | None, original_uetr: str | None, *, now: datetime
) -> StatusEventV1:
    """The answer to an instruction id reused with another payload: not a state of the original
    instruction (type "conflict", state CONFLICT, never final), so a participant reading events
    by instruction id cannot take it for the original's outcome, which stands."""
    return StatusEventV1(
        event_id=new_event_id(),
        type="conflict",
        instruction_id=instruction_id,
        participant=participant,
        uetr=original_uetr,
        corridor=corridor,
        state="CONFLICT",
        final=False,
        reason_code="DUPL",
        reason="instruction id already used with a different payload; this record was refused, the first one stands",
        occurred_at=now,
    )


def status_outbox(event: StatusEventV1, config: SwitchConfig, *, now: datetime, uetr: str | None) -> OutboxMessage:
    """A status event as an outbox row for the status topic; the row's message id is the event's
    id (each event is its own message; republishing the row repeats it, id included)."""
    body = event.model_dump_json(exclude_none=False).encode()
    assert event.event_id is not None, "events are built with their id"
    return OutboxMessage(
        kind="status",
        destination=config.kafka.status_topic,
        message_id=event.event_id,
        uetrs=(uetr,) if uetr else (),
        key=f"{event.participant}/{event.instruction_id}",
        body=body,
        created_at=now,
    )


def participant_outbox(
    p: Payment, config: SwitchConfig, schemas: SchemaSet, *, now: datetime, reason: str | None
) -> list[OutboxMessage]:
    """What the participant hears of a payment's new state: the JSON status event, and for a
    payment that came in a pain.001, a pain.002 for its transaction once the state is final."""
    out = [status_outbox(status_event(p, now=now, reason=reason), config, now=now, uetr=p.uetr)]
    if p.origin is not None and p.state in FINAL_STATES:
        out.append(pain_reports.final_report(p, config, schemas, now=now, reason=reason))
    return out


def dead_letter_outbox(
    participant: str, instruction_id: str, *, topic: str, partition: int, offset: int, reason_code: str, reason: str,
    config: SwitchConfig, now: datetime,
) -> OutboxMessage:
    """The REJECTED event for an instruction record that went to the dead-letter topic but still
    names its sender and instruction id. Its id is fixed by the record's coordinates, so the same
    record refused again after a redelivery is the same event."""
    # the record's coordinates, hashed: long topic names would not fit, and a cut could collide
    coordinates = f"{topic}/{partition}/{offset}".encode()
    message_id = f"D{hashlib.sha256(coordinates).hexdigest()[:40]}"
    event = reject_event(
        participant, instruction_id, None, reason_code,
        f"{reason[:dead_letter_reason_chars_max]} (record in {config.kafka.dlq_topic})", now=now, event_id=message_id,
    )
    return status_outbox(event, config, now=now, uetr=None)
