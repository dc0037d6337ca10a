"""Returns (switch/service/returns.py) on the fakes: a partner's pacs.004 of an outbound payment
(full, partial then the rest, refused, duplicate, closing an accepted recall) and a participant's
return request of an inbound payment (pacs.004 to the partner, refused, redelivered)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from iso20022 import admi002, pacs004
from iso20022.model import Amount
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch.contracts import AmountV1, ReturnRequestV1
from switch.domain.case import Case, CaseKind, CaseState, Initiator
from switch.domain.money import CURRENCIES, Money
from switch.domain.payment import Direction, PaymentState
from switch.service.handlers import Deps, Outcome
from switch.service.returns import (
    ApplyPartnerReturns,
    ReturnInboundPayments,
    apply_partner_returns,
    return_inbound_payments,
)
from tests.factories import SAMPLE_UETR, sample_payment
from tests.fakes import T0, FakeUnitOfWork, status_events

S = PaymentState
KHR, THB = CURRENCIES["KHR"], CURRENCIES["THB"]
INBOUND_UETR = "0b9d6c3e-1f2a-4b5c-8d7e-9f0a1b2c3d4e"


async def _with_payment(state: PaymentState = S.COMPLETED, **changes: object) -> FakeUnitOfWork:
    """A unit of work holding the sample outbound payment: 200,000 KHR (fee 2,000 KHR on top)
    to PromptPay, 1,657.64 THB credited."""
    uow = FakeUnitOfWork()
    await uow.payments_add([replace(sample_payment(state, created_at=T0), **changes)])  # type: ignore[arg-type]
    return uow


def _tx(return_id: str, value: str, *, uetr: str | None = SAMPLE_UETR, currency: str = "THB", reason: str = "AC04",
        tx_id: str | None = None) -> pacs004.ReturnTx:
    return pacs004.ReturnTx(
        return_id=return_id, returned_amount=Amount(value, currency), original_uetr=uetr, original_tx_id=tx_id,
        reason_code=reason, additional_info=("account closed",),
    )


async def _partner_return(uow: FakeUnitOfWork, deps: Deps, message_id: str, *txs: pacs004.ReturnTx,
                          partner: str = "promptpay") -> Outcome:
    return await apply_partner_returns(ApplyPartnerReturns(partner, message_id, "pacs.004.001.10", txs), uow, deps)


def _returns(uow: FakeUnitOfWork) -> list[Case]:
    return sorted((c for c in uow.state.cases.values() if c.kind is CaseKind.RETURN), key=lambda c: c.created_at)


def _corridor(deps: Deps, **changes: str) -> Deps:
    """`deps` whose KH-TH corridor has `changes` (return_fx, return_fee)."""
    corridors = tuple(c.model_copy(update=changes) if c.id == "KH-TH" else c for c in deps.config.corridors)
    config = deps.config.model_copy(update={"corridors": corridors})
    config.__dict__.pop("_corridors_by_id", None)  # the copy kept the original's index
    return replace(deps, config=config)


def _counter(deps: Deps, name: str, **labels: str) -> float:
    value = deps.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


# ---------------------------------------------------------------- a partner returns an outbound payment


async def test_a_full_return_gives_back_exactly_the_principal_at_the_original_rate(deps: Deps) -> None:
    uow = await _with_payment()
    out = await _partner_return(uow, deps, "RT1", _tx("R1", "1657.64"))
    assert out.counts == {"booked": 1} and out.refusals == []
    p = uow.payments[SAMPLE_UETR]
    assert (p.state, p.reason_code) == (S.RETURNED, "AC04")
    (case,) = _returns(uow)
    assert (case.state, case.initiator, case.counterpart, case.ref) == (CaseState.DONE, Initiator.PARTNER, "promptpay", "partner/promptpay/RT1/R1")
    # the corridor keeps its fee (return_fee = "keep"): exactly the 200,000 KHR converted come back
    assert case.back_amount == Money(20_000_000, KHR) and case.amount == Money(165_764, THB)
    assert (case.rate, case.rate_rule) == ("0.0082882132", "original")
    (event,) = status_events(uow.state, deps)
    assert (event["type"], event["state"], event["uetr"], event["participant"]) == ("status", "RETURNED", SAMPLE_UETR, "ACLBKHPPXXX")
    ex = event["exception"]
    assert ex["returned_amount"] == {"value": "1657.64", "currency": "THB"}
    assert ex["back_amount"] == {"value": "200000", "currency": "KHR"}
    assert (ex["rate"], ex["rate_rule"], ex["reason_code"], ex["kind"]) == ("0.0082882132", "original", "AC04", "return")
    (row,) = [h for h in uow.history if h.to_state is S.RETURNED]
    assert "1657.64 THB returned" in (row.detail or "") and "200000 KHR back" in (row.detail or "")
    assert _counter(deps, "switch_returns_total", partner="promptpay", direction="outbound", outcome="booked") == 1
    assert _counter(deps, "switch_returned_amount_minor_total", partner="promptpay", direction="outbound", currency="THB") == 165_764


async def test_a_partial_return_then_the_rest_gives_back_the_principal_in_all(deps: Deps) -> None:
    uow = await _with_payment()
    await _partner_return(uow, deps, "RT1", _tx("R1", "500.01"))
    assert uow.payments[SAMPLE_UETR].state is S.PARTIALLY_RETURNED
    out = await _partner_return(uow, deps, "RT2", _tx("R1", "1157.63"))
    assert out.counts == {"booked": 1}
    assert uow.payments[SAMPLE_UETR].state is S.RETURNED
    first, rest = _returns(uow)
    assert first.back_amount is not None and rest.back_amount is not None
    # the first share is rounded down (whole riels); the last takes the remainder: exactly the principal
    assert first.back_amount.amount_minor == 20_000_000 * 50001 // 165764 // 100 * 100
    assert first.back_amount.amount_minor + rest.back_amount.amount_minor == 20_000_000
    moves = [(h.from_state, h.to_state) for h in uow.history]
    assert moves == [(S.COMPLETED, S.PARTIALLY_RETURNED), (S.PARTIALLY_RETURNED, S.RETURNED)]
    assert [e["state"] for e in status_events(uow.state, deps)] == ["PARTIALLY_RETURNED", "RETURNED"]


async def test_a_refunded_fee_comes_back_with_a_full_return(deps: Deps) -> None:
    deps = _corridor(deps, return_fee="refund")
    uow = await _with_payment()
    await _partner_return(uow, deps, "RT1", _tx("R1", "1657.64"))
    (case,) = _returns(uow)
    assert case.back_amount == Money(20_000_000 + 200_000, KHR)


async def test_the_current_rule_converts_at_the_rate_of_the_day(deps: Deps) -> None:
    deps = _corridor(deps, return_fx="current")
    uow = await _with_payment()
    await _partner_return(uow, deps, "RT1", _tx("R1", "1657.64"))
    (case,) = _returns(uow)
    mid = deps.quoter.book.rate("KHR", "THB", now=T0).mid
    assert case.rate_rule == "current" and case.rate is not None and case.back_amount is not None
    # the mid (no spread) is above the payment's customer rate: the debtor gets back a little less
    assert case.rate != "0.0082882132"
    assert abs(case.back_amount.amount_minor / 100 - 1657.64 / float(mid)) < 1.0


async def test_an_over_return_is_refused_am02_with_an_admi002_and_nothing_booked(deps: Deps, schemas: SchemaSet) -> None:
    uow = await _with_payment()
    await _partner_return(uow, deps, "RT1", _tx("R1", "1000.00"))
    out = await _partner_return(uow, deps, "RT2", _tx("R1", "657.65"))
    assert out.refusals and out.refusals[0][0] == "AM02"
    assert uow.payments[SAMPLE_UETR].state is S.PARTIALLY_RETURNED
    assert len(_returns(uow)) == 1
    (row,) = out.partner_outbox
    assert (row.kind, row.destination) == ("partner", "promptpay")
    reject = admi002.parse(parse_untrusted(row.body))
    assert (reject.reference, reject.reason_code) == ("RT2", "AM02")
    # the same message again: refused again, the same admi.002 already on its way (not stored twice)
    again = await _partner_return(uow, deps, "RT2", _tx("R1", "657.65"))
    assert again.refusals[0][0] == "AM02" and again.partner_outbox == []
    assert _counter(deps, "switch_returns_total", partner="promptpay", direction="outbound", outcome="refused_AM02") == 2


async def test_a_duplicate_return_is_counted_and_books_nothing_twice(deps: Deps) -> None:
    uow = await _with_payment()
    await _partner_return(uow, deps, "RT1", _tx("R1", "100.00"))
    before = (uow.payments[SAMPLE_UETR], len(uow.history), len(uow.state.outbox))
    out = await _partner_return(uow, deps, "RT1", _tx("R1", "100.00"))
    assert out.counts == {"duplicate": 1} and out.refusals == []
    assert (uow.payments[SAMPLE_UETR], len(uow.history), len(uow.state.outbox)) == before
    assert len(_returns(uow)) == 1


@pytest.mark.parametrize(
    ("payment_changes", "tx", "partner", "code"),
    [
        ({}, _tx("R1", "10.00", uetr="11111111-2222-4333-8444-555555555555"), "promptpay", "NOOR"),  # unknown
        ({}, _tx("R1", "10.00"), "lapnet", "NOOR"),  # another partner's payment
        ({"direction": Direction.INBOUND}, _tx("R1", "10.00"), "promptpay", "NOOR"),  # not one of ours to them
        ({"state": S.SUBMITTED}, _tx("R1", "10.00"), "promptpay", "AG01"),  # not completed
        ({"state": S.REJECTED, "reason_code": "AC01"}, _tx("R1", "10.00"), "promptpay", "AG01"),
        ({"state": S.RETURNED, "reason_code": "AC04"}, _tx("R1", "10.00"), "promptpay", "ARDT"),  # fully returned
        ({}, _tx("R1", "10.00", currency="KHR"), "promptpay", "CURR"),
        ({}, _tx("R1", "0.00"), "promptpay", "AM09"),
        ({}, _tx("R1", "10.00", reason="ZZ99"), "promptpay", "FF01"),  # a reason outside the agreed set
    ],
)
async def test_returns_that_cannot_be_booked_are_refused_with_their_code(
    deps: Deps, payment_changes: dict[str, object], tx: pacs004.ReturnTx, partner: str, code: str
) -> None:
    uow = await _with_payment(**payment_changes)  # type: ignore[arg-type]
    before = uow.payments[SAMPLE_UETR]
    out = await _partner_return(uow, deps, "RTX", tx, partner=partner)
    assert [c for c, _ in out.refusals] == [code]
    assert out.counts == {"refused": 1}
    assert uow.payments[SAMPLE_UETR] == before and _returns(uow) == [] and status_events(uow.state, deps) == []


async def test_the_original_is_found_by_the_switchs_own_tx_id_without_a_uetr(deps: Deps) -> None:
    uow = await _with_payment()
    out = await _partner_return(uow, deps, "RT1", _tx("R1", "1657.64", uetr=None, tx_id="T" + SAMPLE_UETR.replace("-", "")))
    assert out.counts == {"booked": 1} and uow.payments[SAMPLE_UETR].state is S.RETURNED


async def test_a_return_completes_an_accepted_recall(deps: Deps) -> None:
    uow = await _with_payment(S.RECALL_PENDING, reason_code="DUPL")
    recall = Case(
        id="C" + "a" * 32, uetr=SAMPLE_UETR, kind=CaseKind.RECALL, initiator=Initiator.PARTICIPANT, counterpart="promptpay",
        state=CaseState.AWAITING_RETURN, reason_code="DUPL", detail=None, ref="participant/ACLBKHPPXXX/rc-1",
        message_id="X1", amount=None, back_amount=None, rate=None, rate_rule=None, attempts=1,
        due_at=T0 + timedelta(minutes=10), reply_by=T0 + timedelta(minutes=10), created_at=T0, updated_at=T0,
    )
    await uow.cases_add([recall])
    out = await _partner_return(uow, deps, "RT1", _tx("R1", "1657.64", reason="DUPL"))
    assert out.counts == {"booked": 1}
    assert uow.payments[SAMPLE_UETR].state is S.RETURNED
    closed = uow.state.cases[recall.id]
    assert (closed.state, closed.due_at, closed.version) == (CaseState.DONE, None, 2)
    # the participant hears both: the return (moving the payment) and its recall closing
    cases_told = [(e["type"], e["state"], e["exception"]["kind"], e["exception"]["state"]) for e in status_events(uow.state, deps)]
    assert cases_told == [("status", "RETURNED", "return", "DONE"), ("exception", "RETURNED", "recall", "DONE")]
    assert status_events(uow.state, deps)[1]["exception"]["case_id"] == recall.id


async def test_a_return_answering_a_recall_may_carry_the_recalls_reason_even_one_not_agreed_for_returns(deps: Deps) -> None:
    assert "AM09" not in deps.mappings["promptpay"].profile.exceptions.return_reasons
    uow = await _with_payment()
    out = await _partner_return(uow, deps, "RT0", _tx("R0", "1657.64", reason="AM09"))  # no recall open: refused
    assert out.counts == {"refused": 1} and out.refusals[0][0] == "FF01" and uow.payments[SAMPLE_UETR].state is S.COMPLETED
    uow = await _with_payment(S.RECALL_PENDING, reason_code="AM09")
    await uow.cases_add([Case(
        id="C" + "b" * 32, uetr=SAMPLE_UETR, kind=CaseKind.RECALL, initiator=Initiator.PARTICIPANT, counterpart="promptpay",
        state=CaseState.AWAITING_RETURN, reason_code="AM09", detail=None, ref="participant/ACLBKHPPXXX/rc-2",
        message_id="X2", amount=None, back_amount=None, rate=None, rate_rule=None, attempts=1,
        due_at=T0 + timedelta(minutes=10), reply_by=T0 + timedelta(minutes=10), created_at=T0, updated_at=T0,
    )])
    out = await _partner_return(uow, deps, "RT1", _tx("R1", "1657.64", reason="AM09"))
    assert out.counts == {"booked": 1}
    assert uow.payments[SAMPLE_UETR].state is S.RETURNED


async def test_a_return_does_not_close_a_recall_that_was_never_sent(deps: Deps) -> None:
    uow = await _with_payment()
    waiting = Case(  # the recall waits for a relay to free the pacs.008 row: no camt.056 yet
        id="C" + "c" * 32, uetr=SAMPLE_UETR, kind=CaseKind.RECALL, initiator=Initiator.PARTICIPANT, counterpart="promptpay",
        state=CaseState.OPEN, reason_code="FRAD", detail=None, ref="participant/ACLBKHPPXXX/rc-3",
        message_id=None, amount=None, back_amount=None, rate=None, rate_rule=None, attempts=0,
        due_at=T0 + timedelta(seconds=2), reply_by=T0 + timedelta(minutes=10), created_at=T0, updated_at=T0,
    )
    await uow.cases_add([waiting])
    out = await _partner_return(uow, deps, "RT1", _tx("R1", "800.00", reason="CUST"))
    assert out.counts == {"partial": 1}
    assert uow.payments[SAMPLE_UETR].state is S.PARTIALLY_RETURNED
    assert uow.state.cases[waiting.id] == waiting  # still OPEN, untouched: the case timer sends its camt.056
    assert [e["exception"]["kind"] for e in status_events(uow.state, deps)] == ["return"]


async def test_a_partial_return_leaves_a_recall_not_yet_sent_open(deps: Deps) -> None:
    """A recall still OPEN (its camt.056 not sent yet) is not answered by what the partner returns
    on its own, a part or the rest: the case timer decides it (the demo and the chaos run met this
    race)."""
    uow = await _with_payment()
    recall = Case(
        id="C" + "b" * 32, uetr=SAMPLE_UETR, kind=CaseKind.RECALL, initiator=Initiator.PARTICIPANT, counterpart="promptpay",
        state=CaseState.OPEN, reason_code="DUPL", detail=None, ref="participant/ACLBKHPPXXX/rc-2",
        message_id=None, amount=None, back_amount=None, rate=None, rate_rule=None, attempts=0,
        due_at=T0, reply_by=None, created_at=T0, updated_at=T0,
    )
    await uow.cases_add([recall])
    out = await _partner_return(uow, deps, "RT1", _tx("R1", "600.00"))
    assert out.counts == {"partial": 1} and uow.payments[SAMPLE_UETR].state is S.PARTIALLY_RETURNED
    assert uow.state.cases[recall.id].state is CaseState.OPEN
    out = await _partner_return(uow, deps, "RT2", _tx("R2", "1057.64"))  # the rest: nothing left to recall
    assert out.counts == {"booked": 1} and uow.payments[SAMPLE_UETR].state is S.RETURNED
    # still OPEN: a return never answers a recall that was never sent; the case timer finds the
    # payment returned and answers the participant's request itself (ARDT, recalls.py)
    assert uow.state.cases[recall.id].state is CaseState.OPEN


async def test_two_returns_of_one_payment_in_one_message_are_both_booked(deps: Deps) -> None:
    uow = await _with_payment()
    out = await _partner_return(uow, deps, "RT1", _tx("R1", "600.00"), _tx("R2", "1057.64"))
    assert out.counts == {"partial": 1, "booked": 1}
    assert uow.payments[SAMPLE_UETR].state is S.RETURNED
    assert sum(c.back_amount.amount_minor for c in _returns(uow) if c.back_amount) == 20_000_000


# ---------------------------------------------------------------- a participant returns an inbound payment


async def _with_inbound(state: PaymentState = S.COMPLETED) -> FakeUnitOfWork:
    """An inbound payment from PromptPay: 40,000 KHR credited to sok_dara@aclb (ACLBKHPPXXX)."""
    amount = Money(4_000_000, KHR)
    p = replace(
        sample_payment(state, created_at=T0), uetr=INBOUND_UETR, direction=Direction.INBOUND, instruction_id="E-IN-1",
        source=amount, target=amount, instructed=amount, fee=Money(0, KHR), fx_rate=None,
    )
    uow = FakeUnitOfWork()
    await uow.payments_add([p])
    return uow


def _request(request_id: str = "ret-1", *, amount: str | None = None, participant: str = "ACLBKHPPXXX",
             uetr: str = INBOUND_UETR, reason: str = "AC04") -> ReturnRequestV1:
    return ReturnRequestV1(
        version=1, type="return", request_id=request_id, participant=participant, uetr=uetr,
        amount=AmountV1(value=amount, currency="KHR") if amount else None, reason_code=reason, reason="customer asked",
    )


async def test_a_participants_return_sends_the_partner_a_valid_pacs004(deps: Deps) -> None:
    uow = await _with_inbound()
    out = await return_inbound_payments(ReturnInboundPayments([_request()]), uow, deps)
    assert out.counts == {"booked": 1}
    assert uow.payments[INBOUND_UETR].state is S.RETURNED
    (row,) = out.partner_outbox
    assert (row.kind, row.destination) == ("partner", "promptpay")
    message = pacs004.parse(parse_untrusted(row.body))  # built against the official XSD
    (tx,) = message.transactions
    assert (tx.original_uetr, tx.original_end_to_end_id, tx.reason_code) == (INBOUND_UETR, "E-IN-1", "AC04")
    assert (tx.returned_amount.value, tx.returned_amount.currency) == ("40000", "KHR")
    (case,) = _returns(uow)
    assert (case.initiator, case.ref, case.message_id) == (Initiator.PARTICIPANT, "participant/ACLBKHPPXXX/ret-1", message.message_id)
    (event,) = status_events(uow.state, deps)
    assert (event["state"], event["direction"], event["exception"]["request_id"]) == ("RETURNED", "inbound", "ret-1")
    assert event["exception"]["returned_amount"] == {"value": "40000", "currency": "KHR"}


async def test_a_participants_partial_return_then_a_redelivery_books_nothing_new(deps: Deps) -> None:
    uow = await _with_inbound()
    await return_inbound_payments(ReturnInboundPayments([_request(amount="15000")]), uow, deps)
    assert uow.payments[INBOUND_UETR].state is S.PARTIALLY_RETURNED
    rows = len(uow.state.outbox)
    again = await return_inbound_payments(ReturnInboundPayments([_request(amount="15000")]), uow, deps)
    assert again.counts == {"duplicate": 1} and len(uow.state.outbox) == rows
    rest = await return_inbound_payments(ReturnInboundPayments([_request("ret-2")]), uow, deps)  # no amount: what remains
    assert rest.counts == {"booked": 1}
    assert [c.amount for c in _returns(uow)] == [Money(1_500_000, KHR), Money(2_500_000, KHR)]
    assert uow.payments[INBOUND_UETR].state is S.RETURNED


@pytest.mark.parametrize(
    ("state", "req", "code"),
    [
        (S.COMPLETED, _request(participant="ABAAKHPPXXX"), "NOOR"),  # another participant's payment
        (S.COMPLETED, _request(uetr="11111111-2222-4333-8444-555555555555"), "NOOR"),
        (S.SUBMITTED, _request(), "AG01"),  # not credited yet
        (S.RECALL_PENDING, _request(), "AG01"),  # the recall flow owns it
        (S.COMPLETED, _request(amount="40001"), "AM02"),
        (S.COMPLETED, _request(reason="ZZ99"), "FF01"),
    ],
)
async def test_a_refused_return_request_is_answered_with_an_exception_event_only(
    deps: Deps, state: PaymentState, req: ReturnRequestV1, code: str
) -> None:
    uow = await _with_inbound(state)
    before = uow.payments[INBOUND_UETR]
    out = await return_inbound_payments(ReturnInboundPayments([req]), uow, deps)
    assert out.counts == {"refused": 1} and out.partner_outbox == []
    assert uow.payments[INBOUND_UETR] == before and _returns(uow) == []
    (event,) = status_events(uow.state, deps)
    assert (event["type"], event["reason_code"], event["exception"]["request_id"]) == ("exception", code, req.request_id)
    again = await return_inbound_payments(ReturnInboundPayments([req]), uow, deps)  # redelivered: the same event
    assert again.counts == {"refused": 1} and len(status_events(uow.state, deps)) == 1


async def test_an_outbound_payment_cannot_be_returned_by_its_participant(deps: Deps) -> None:
    uow = await _with_payment()
    out = await return_inbound_payments(ReturnInboundPayments([_request(uetr=SAMPLE_UETR)]), uow, deps)
    (event,) = status_events(uow.state, deps)
    assert out.counts == {"refused": 1} and event["reason_code"] == "NOOR"
    assert json.loads(json.dumps(event))["exception"]["kind"] == "return"
