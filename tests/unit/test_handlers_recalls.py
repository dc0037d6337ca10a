"""Recalls on the fakes (switch/service/recalls.py): a participant recalls an outbound payment
(cancelled locally before the send, a camt.056 after it), the partner's camt.029, the case
timer's chase and give-up; a partner recalls an inbound payment and the participant answers."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from iso20022 import camt029, camt056, pacs004
from iso20022.model import Agent, Amount
from iso20022.parsing import parse_untrusted
from switch.contracts import InboundRecallV1, RecallReplyV1, RecallRequestV1
from switch.domain.case import CaseState, Initiator
from switch.domain.money import CURRENCIES, Money
from switch.domain.payment import Direction, PaymentState
from switch.service.case_timer import FollowUpCases, follow_up_cases
from switch.service.handlers import AcceptInstructions, Deps, RecordSendResults, accept_instructions, record_send_results
from switch.service.recalls import (
    AnswerRecalls,
    ApplyPartnerRecalls,
    ApplyRecallAnswers,
    RecallPayments,
    answer_recalls,
    apply_partner_recalls,
    apply_recall_answers,
    recall_payments,
)
from tests.factories import sample_instruction, sample_payment
from tests.fakes import FakeClock, FakeUnitOfWork, parsed_instruction, partner_statuses, status_events
from switch.service.handlers import apply_partner_statuses

S = PaymentState
C = CaseState
PARTNER_AGENT = Agent(bicfi="PPSYTHBKXXX")
INBOUND_UETR = "0b9d6c3e-1f2a-4b5c-8d7e-9f0a1b2c3d4e"


def recall(request_id: str = "R1", **changes: object) -> RecallRequestV1:
    doc = {"version": 1, "type": "recall", "request_id": request_id, "participant": "ACLBKHPPXXX",
           "instruction_id": "INS-0001", "reason_code": "DUPL", "reason": "sent twice"}
    doc.update(changes)
    return RecallRequestV1.model_validate(doc)


async def quoted(uow: FakeUnitOfWork, deps: Deps) -> str:
    await accept_instructions(AcceptInstructions([parsed_instruction(sample_instruction(), source_ref="r:0:1")]), uow, deps)
    (uetr,) = uow.payments
    return uetr


async def completed(uow: FakeUnitOfWork, deps: Deps) -> str:
    uetr = await quoted(uow, deps)
    (row,) = uow.state.outbox_messages("partner")
    await record_send_results([RecordSendResults([row.id or 0], submitted_uetrs=row.uetrs)], uow, deps)
    await apply_partner_statuses([partner_statuses("promptpay", "S1", (uetr, S.COMPLETED, None))], uow, deps)
    assert uow.payments[uetr].state is S.COMPLETED
    return uetr


def the_case(uow: FakeUnitOfWork, uetr: str):  # type: ignore[no-untyped-def]
    (case,) = [c for c in uow.state.cases.values() if c.uetr == uetr]
    return case


def camt056_rows(uow: FakeUnitOfWork) -> list[camt056.CancellationRequest]:
    return [camt056.parse(parse_untrusted(r.body)) for r in uow.state.outbox.values() if r.message_id.startswith("N")]


def resolution(case_id: str | None, uetr: str, status: str, reason: str | None = None, message_id: str = "A1") -> ApplyRecallAnswers:
    tx = camt029.CancellationStatus(original_uetr=uetr, status="ACCR" if status == "CNCL" else "RJCR", reason_code=reason,
                                    additional_info=("customer says no",) if reason else ())
    res = camt029.Resolution(
        assignment_id=message_id, created_at=FakeClock().now, assigner=PARTNER_AGENT, assignee=Agent(bicfi="NBCAKHPPXXX"),
        status=status, transactions=(tx,), case_id=case_id, case_creator=Agent(bicfi="NBCAKHPPXXX") if case_id else None,
    )
    return ApplyRecallAnswers("promptpay", message_id, "camt.029.001.09", b"<camt.029/>", res)


# ---------------------------------------------------------------- outbound


async def test_a_recall_before_the_send_withdraws_the_pacs008_and_cancels_the_payment(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await quoted(uow, deps)
    out = await recall_payments(RecallPayments([recall()]), uow, deps)
    assert out.counts == {"recalled": 1, "cancelled_locally": 1}
    (row,) = [r for r in uow.state.outbox.values() if r.kind == "partner"]
    assert row.sent_at is not None and row.last_error == "withdrawn: recalled"
    p = uow.payments[uetr]
    assert (p.state, p.reason_code) == (S.CANCELLED, "DUPL")
    case = the_case(uow, uetr)
    assert (case.state, case.initiator, case.counterpart) == (C.DONE, Initiator.PARTICIPANT, "promptpay")
    event = status_events(uow.state, deps)[-1]
    assert (event["type"], event["state"], event["exception"]["kind"], event["exception"]["request_id"]) == (
        "status", "CANCELLED", "recall", "R1")
    assert deps.metrics.recalls.labels("promptpay", "outbound", "cancelled_locally")._value.get() == 1
    # the relay never claims a withdrawn row
    assert not camt056_rows(uow)


async def test_a_recall_of_a_row_a_relay_holds_waits_then_cancels_once_the_row_is_free(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    uetr = await quoted(uow, deps)
    (row,) = [r for r in uow.state.outbox.values() if r.kind == "partner"]
    uow.state.outbox[row.id] = replace(row, lease_owner="replica-a", lease_until=clock.now + timedelta(seconds=45))
    out = await recall_payments(RecallPayments([recall()]), uow, deps)
    assert out.counts == {"recalled": 1, "in_flight": 1}
    assert (uow.payments[uetr].state, the_case(uow, uetr).state) == (S.QUOTED, C.OPEN)
    # the relay's round failed to connect: lease released; the case timer withdraws the row now
    uow.state.outbox[row.id] = replace(uow.state.outbox[row.id], lease_owner=None, lease_until=None, attempts=1)
    clock.advance(3)
    await follow_up_cases(FollowUpCases(), uow, deps)
    assert (uow.payments[uetr].state, the_case(uow, uetr).state) == (S.CANCELLED, C.DONE)
    # the case's first event (none was published while it waited) names the participant's request
    (event,) = [e for e in status_events(uow.state, deps) if e.get("exception")]
    assert (event["exception"]["state"], event["exception"]["request_id"]) == ("DONE", "R1")


async def test_a_recall_that_waited_for_the_relay_names_its_request_when_its_camt056_leaves(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    uetr = await quoted(uow, deps)
    (row,) = [r for r in uow.state.outbox.values() if r.kind == "partner"]
    uow.state.outbox[row.id] = replace(row, lease_owner="replica-a", lease_until=clock.now + timedelta(seconds=45))
    await recall_payments(RecallPayments([recall("RQ-77")]), uow, deps)
    # the relay delivered it meanwhile: the payment left QUOTED, the case timer sends the camt.056
    await record_send_results([RecordSendResults([row.id or 0], submitted_uetrs=row.uetrs)], uow, deps)
    clock.advance(3)
    await follow_up_cases(FollowUpCases(), uow, deps)
    assert (uow.payments[uetr].state, the_case(uow, uetr).state) == (S.SUBMITTED, C.SENT)
    (event,) = [e for e in status_events(uow.state, deps) if e.get("exception")]
    assert (event["exception"]["state"], event["exception"]["request_id"]) == ("SENT", "RQ-77")


async def test_a_recall_of_a_completed_payment_sends_a_camt056_and_one_recall_at_a_time(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    uetr = await completed(uow, deps)
    out = await recall_payments(RecallPayments([recall(uetr=uetr, instruction_id=None)]), uow, deps)
    assert out.counts == {"recalled": 1, "sent": 1}
    p, case = uow.payments[uetr], the_case(uow, uetr)
    assert (p.state, p.reason_code) == (S.RECALL_PENDING, "DUPL")
    profile = deps.mappings["promptpay"].profile.exceptions
    assert (case.state, case.attempts) == (C.SENT, 1)
    assert case.reply_by == clock.now + timedelta(seconds=profile.recall_sla_s)
    assert case.due_at == clock.now + timedelta(seconds=profile.recall_chase_after_s)
    (req,) = camt056_rows(uow)  # validated against camt.056.001.08 when built
    (tx,) = req.transactions
    assert (req.case_id, tx.cancellation_id, tx.original_uetr, tx.reason_code) == (case.id, case.id, uetr, "DUPL")
    assert tx.original_group is not None and tx.original_group.message_id == p.message_id
    assert tx.original_settlement_amount is not None and tx.original_settlement_amount.currency == "THB"
    assert req.assigner.bicfi == deps.config.switch.agent_bic and req.assignee.clearing_member is not None
    # another recall of the same payment is refused while this one is open; the same request again is nothing new
    again = await recall_payments(RecallPayments([recall("R2", uetr=uetr, instruction_id=None), recall(uetr=uetr, instruction_id=None)]), uow, deps)
    assert again.counts == {"refused": 1, "duplicate": 1}
    refused = status_events(uow.state, deps)[-1]
    assert (refused["type"], refused["reason_code"], refused["exception"]["request_id"]) == ("exception", "DUPL", "R2")


async def test_a_recall_of_another_participants_or_a_returned_payment_is_refused(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await completed(uow, deps)
    out = await recall_payments(RecallPayments([recall(participant="ABAAKHPPXXX")]), uow, deps)
    assert out.counts == {"refused": 1} and status_events(uow.state, deps)[-1]["reason_code"] == "NOOR"
    uow.state.payments[uetr] = replace(uow.payments[uetr], state=S.RETURNED, reason_code="AC04")
    await recall_payments(RecallPayments([recall("R9")]), uow, deps)
    event = status_events(uow.state, deps)[-1]
    assert (event["reason_code"], event["uetr"]) == ("ARDT", uetr)
    assert not uow.state.cases


async def test_an_accepting_camt029_awaits_the_return_and_a_refusal_restores_completed(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await completed(uow, deps)
    await recall_payments(RecallPayments([recall()]), uow, deps)
    case = the_case(uow, uetr)
    out = await apply_recall_answers(resolution(case.id, uetr, "CNCL"), uow, deps)
    assert out.counts == {"accepted": 1}
    assert (the_case(uow, uetr).state, uow.payments[uetr].state) == (C.AWAITING_RETURN, S.RECALL_PENDING)
    # the same answer again, and another accept: counted and ignored
    assert (await apply_recall_answers(resolution(case.id, uetr, "CNCL"), uow, deps)).counts == {"duplicate_message": 1}
    assert (await apply_recall_answers(resolution(case.id, uetr, "CNCL", message_id="A2"), uow, deps)).counts == {"already_decided": 1}

    uow2 = FakeUnitOfWork()
    uetr2 = await completed(uow2, deps)
    await recall_payments(RecallPayments([recall()]), uow2, deps)
    out = await apply_recall_answers(resolution(None, uetr2, "RJCR", "CUST"), uow2, deps)  # matched by OrgnlUETR
    assert out.counts == {"refused": 1}
    case2 = the_case(uow2, uetr2)
    assert (case2.state, case2.reason_code, uow2.payments[uetr2].state) == (C.REFUSED, "CUST", S.COMPLETED)
    event = status_events(uow2.state, deps)[-1]
    assert (event["type"], event["state"], event["exception"]["state"], event["exception"]["reason_code"]) == (
        "exception", "COMPLETED", "REFUSED", "CUST")
    assert "customer says no" in event["reason"]


async def test_an_accepting_camt029_for_a_payment_not_yet_completed_cancels_it(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await quoted(uow, deps)
    (row,) = uow.state.outbox_messages("partner")
    await record_send_results([RecordSendResults([row.id or 0], submitted_uetrs=row.uetrs)], uow, deps)
    await recall_payments(RecallPayments([recall()]), uow, deps)
    assert (uow.payments[uetr].state, the_case(uow, uetr).state) == (S.SUBMITTED, C.SENT)  # stays: its pacs.002 still applies
    await apply_recall_answers(resolution(the_case(uow, uetr).id, uetr, "CNCL"), uow, deps)
    assert (uow.payments[uetr].state, the_case(uow, uetr).state) == (S.CANCELLED, C.DONE)


async def test_a_camt029_for_an_unknown_case_is_refused_with_an_admi002(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    out = await apply_recall_answers(resolution("C" + "0" * 32, "5f0e7a1c-3b2d-4e6f-8a9b-0c1d2e3f4a5b", "CNCL"), uow, deps)
    assert out.refusals and out.refusals[0][0] == "NOOR"
    assert [r.message_id[0] for r in out.partner_outbox] == ["J"]  # promptpay's profile takes admi.002


async def test_an_unanswered_recall_is_chased_then_reported_and_a_late_answer_still_resolves_it(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    uetr = await completed(uow, deps)
    await recall_payments(RecallPayments([recall()]), uow, deps)
    case = the_case(uow, uetr)
    (row,) = [r for r in uow.state.outbox.values() if r.message_id == case.message_id]
    uow.state.outbox[row.id] = replace(row, sent_at=clock.now)  # delivered
    profile = deps.mappings["promptpay"].profile.exceptions
    clock.advance(profile.recall_chase_after_s + 1)
    out = await follow_up_cases(FollowUpCases(), uow, deps)
    assert out.counts["chased"] == 1 and [r.message_id for r in out.partner_outbox] == [case.message_id]
    assert uow.state.outbox[row.id].sent_at is None  # the same camt.056 again, byte for byte
    assert the_case(uow, uetr).attempts == 2
    clock.advance(profile.recall_sla_s)
    out = await follow_up_cases(FollowUpCases(), uow, deps)
    assert out.counts["unanswered"] == 1
    assert (the_case(uow, uetr).state, uow.payments[uetr].state) == (C.UNANSWERED, S.COMPLETED)
    event = status_events(uow.state, deps)[-1]
    assert event["exception"]["state"] == "UNANSWERED" and "unanswered" in event["reason"]
    # a late refusal still resolves it
    await apply_recall_answers(resolution(case.id, uetr, "RJCR", "LEGL"), uow, deps)
    assert (the_case(uow, uetr).state, the_case(uow, uetr).reason_code) == (C.REFUSED, "LEGL")


async def test_an_accepted_recall_whose_return_never_comes_is_unanswered(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    uetr = await completed(uow, deps)
    await recall_payments(RecallPayments([recall()]), uow, deps)
    await apply_recall_answers(resolution(the_case(uow, uetr).id, uetr, "CNCL"), uow, deps)
    clock.advance(deps.mappings["promptpay"].profile.exceptions.recall_sla_s + 1)
    await follow_up_cases(FollowUpCases(), uow, deps)
    assert (the_case(uow, uetr).state, uow.payments[uetr].state) == (C.UNANSWERED, S.COMPLETED)
    assert "never came back" in status_events(uow.state, deps)[-1]["reason"]


# ---------------------------------------------------------------- inbound


def inbound_payment(state: PaymentState = S.COMPLETED):  # type: ignore[no-untyped-def]
    khr = CURRENCIES["KHR"]
    p = sample_payment(state, created_at=FakeClock().now, uetr=INBOUND_UETR)
    return replace(p, direction=Direction.INBOUND, corridor="TH-KH", instruction_id="E0b9d6c3e1f2a4b5c8d7e9f0a1b2c3d4e",
                   source=Money(4_000_000, khr), target=Money(4_000_000, khr), instructed=Money(4_000_000, khr), fee=Money(0, khr),
                   fx_rate=None, debtor=replace(p.debtor, agent="014"))


def partner_recall(uetr: str = INBOUND_UETR, assignment: str = "PPRECALL1") -> ApplyPartnerRecalls:
    req = camt056.CancellationRequest(
        assignment_id=assignment, created_at=FakeClock().now, assigner=PARTNER_AGENT, assignee=Agent(bicfi="NBCAKHPPXXX"),
        transactions=(camt056.CancellationTx(cancellation_id="X1", original_uetr=uetr, reason_code="FRAD"),),
    )
    return ApplyPartnerRecalls("promptpay", assignment, "camt.056.001.08", b"<camt.056/>", req)


def reply(case_id: str, decision: str, reason_code: str | None = None, participant: str = "ACLBKHPPXXX") -> RecallReplyV1:
    return RecallReplyV1.model_validate({"version": 1, "type": "recall_reply", "request_id": f"Y-{decision}", "participant": participant,
                                         "case_id": case_id, "decision": decision, "reason_code": reason_code})


def camt029_of(uow: FakeUnitOfWork) -> list[camt029.Resolution]:
    return [camt029.parse(parse_untrusted(r.body)) for r in uow.state.outbox.values() if r.message_id.startswith("W")]


async def test_a_partner_recall_of_a_completed_inbound_payment_asks_the_participant(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    uow.state.payments[INBOUND_UETR] = inbound_payment()
    out = await apply_partner_recalls(partner_recall(), uow, deps)
    assert out.counts == {"asked": 1}
    case = the_case(uow, INBOUND_UETR)
    assert (case.state, case.initiator, case.counterpart, case.reason_code) == (C.SENT, Initiator.PARTNER, "ACLBKHPPXXX", "FRAD")
    assert uow.payments[INBOUND_UETR].state is S.RECALL_PENDING
    (row,) = [r for r in uow.state.outbox.values() if r.destination == deps.config.kafka.inbound_topic]
    event = InboundRecallV1.model_validate_json(row.body)
    assert (event.case_id, event.uetr, event.amount.value, event.reason_code, row.key) == (
        case.id, INBOUND_UETR, "40000", "FRAD", f"ACLBKHPPXXX/{INBOUND_UETR}")
    assert event.reply_by == clock.now + timedelta(seconds=deps.mappings["promptpay"].profile.exceptions.recall_reply_s)
    # the same camt.056 again: nothing new
    assert (await apply_partner_recalls(partner_recall(), uow, deps)).counts == {"duplicate": 1}
    assert len(uow.state.cases) == 1


async def test_the_participant_accepts_a_partner_recall_with_a_pacs004_and_a_camt029(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uow.state.payments[INBOUND_UETR] = inbound_payment()
    await apply_partner_recalls(partner_recall(), uow, deps)
    case = the_case(uow, INBOUND_UETR)
    out = await answer_recalls(AnswerRecalls([reply(case.id, "ACCEPT")]), uow, deps)
    assert out.counts == {"accepted": 1}
    (ret,) = [pacs004.parse(parse_untrusted(r.body)) for r in uow.state.outbox.values() if r.message_id.startswith("T")]
    (tx,) = ret.transactions
    assert (tx.original_uetr, tx.returned_amount.value, tx.returned_amount.currency, tx.reason_code) == (INBOUND_UETR, "40000", "KHR", "FOCR")  # following the cancellation request
    (answer,) = camt029_of(uow)
    assert answer.status == "CNCL" and answer.transactions[0].status == "ACCR"
    assert answer.transactions[0].cancellation_status_id == "X1"
    assert (uow.payments[INBOUND_UETR].state, the_case(uow, INBOUND_UETR).state) == (S.RETURNED, C.DONE)
    # the same reply again changes nothing; another participant cannot answer
    again = await answer_recalls(AnswerRecalls([reply(case.id, "ACCEPT"), reply(case.id, "ACCEPT", participant="ABAAKHPPXXX")]), uow, deps)
    assert again.counts == {"redelivered": 1, "refused": 1}


async def test_the_participant_refuses_a_partner_recall(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uow.state.payments[INBOUND_UETR] = inbound_payment()
    await apply_partner_recalls(partner_recall(), uow, deps)
    case = the_case(uow, INBOUND_UETR)
    await answer_recalls(AnswerRecalls([reply(case.id, "REFUSE", "CUST")]), uow, deps)
    (answer,) = camt029_of(uow)
    assert (answer.status, answer.transactions[0].status, answer.transactions[0].reason_code) == ("RJCR", "RJCR", "CUST")
    assert (uow.payments[INBOUND_UETR].state, the_case(uow, INBOUND_UETR).state) == (S.COMPLETED, C.REFUSED)


async def test_silence_past_reply_by_answers_the_partner_noas(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    uow.state.payments[INBOUND_UETR] = inbound_payment()
    await apply_partner_recalls(partner_recall(), uow, deps)
    clock.advance(10)
    await follow_up_cases(FollowUpCases(), uow, deps)
    assert not camt029_of(uow)  # not yet due
    clock.advance(deps.mappings["promptpay"].profile.exceptions.recall_reply_s)
    out = await follow_up_cases(FollowUpCases(), uow, deps)
    assert out.counts["unanswered"] == 1
    (answer,) = camt029_of(uow)
    assert (answer.status, answer.transactions[0].reason_code) == ("RJCR", "NOAS")
    assert (uow.payments[INBOUND_UETR].state, the_case(uow, INBOUND_UETR).state) == (S.COMPLETED, C.UNANSWERED)
    late = await answer_recalls(AnswerRecalls([reply(the_case(uow, INBOUND_UETR).id, "ACCEPT")]), uow, deps)
    assert late.counts == {"refused": 1}


async def test_a_partner_recall_of_an_unknown_or_uncredited_payment_is_refused_with_a_camt029(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uow.state.payments[INBOUND_UETR] = inbound_payment(S.SUBMITTED)
    out = await apply_partner_recalls(partner_recall(), uow, deps)
    other = await apply_partner_recalls(partner_recall("5f0e7a1c-3b2d-4e6f-8a9b-0c1d2e3f4a5b", "PPRECALL2"), uow, deps)
    assert out.counts == other.counts == {"refused": 1}
    codes = sorted(a.transactions[0].reason_code for a in camt029_of(uow))
    assert codes == ["AGNT", "NOOR"]
    assert uow.payments[INBOUND_UETR].state is S.SUBMITTED
    assert (await apply_partner_recalls(partner_recall(), uow, deps)).counts == {"duplicate": 1}
    assert len(camt029_of(uow)) == 2
    assert json.loads(json.dumps(deps.metrics.recalls.labels("promptpay", "inbound", "rejected")._value.get())) == 2


async def test_a_late_accept_of_a_recall_whose_payment_was_returned_meanwhile_closes_it_and_says_so(
    deps: Deps, clock: FakeClock
) -> None:
    from switch.service.returns import ApplyPartnerReturns, apply_partner_returns

    uow = FakeUnitOfWork()
    uetr = await completed(uow, deps)
    await recall_payments(RecallPayments([recall()]), uow, deps)
    case = the_case(uow, uetr)
    clock.advance(deps.mappings["promptpay"].profile.exceptions.recall_sla_s + 1)
    await follow_up_cases(FollowUpCases(), uow, deps)
    assert (uow.state.cases[case.id].state, uow.payments[uetr].state) == (C.UNANSWERED, S.COMPLETED)
    p = uow.payments[uetr]
    tx = pacs004.ReturnTx(return_id="R1", returned_amount=Amount(p.target.to_text(), p.target.currency.code),
                          original_uetr=uetr, reason_code="AC04")
    await apply_partner_returns(ApplyPartnerReturns("promptpay", "RT1", "pacs.004.001.10", (tx,)), uow, deps)
    assert uow.payments[uetr].state is S.RETURNED
    out = await apply_recall_answers(resolution(case.id, uetr, "CNCL"), uow, deps)
    assert out.counts == {"accepted": 1}
    assert uow.state.cases[case.id].state is C.DONE
    event = status_events(uow.state, deps)[-1]
    assert (event["type"], event["state"], event["exception"]["case_id"], event["exception"]["state"]) == (
        "exception", "RETURNED", case.id, "DONE")
