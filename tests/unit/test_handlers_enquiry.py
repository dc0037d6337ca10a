"""Status enquiries on the fakes (switch/service/enquiries.py): the payments follow-up opens one
enquiry case per outbound payment without a final status, the case timer sends a pacs.028 from
`enquire_after_s` on and again with a backoff, a final status closes the case, a RJCT AG09 ("not
received") resends the pacs.008 byte for byte instead of rejecting; a partner's pacs.028 about an
inbound payment gets the stored final pacs.002, a PDNG, or a RJCT AG09; an operator's enquiry."""

from __future__ import annotations

from datetime import timedelta

from adapters.inbound import answer_message_id
from adapters.iso_mapping import tx_id
from iso20022 import pacs002, pacs028
from iso20022.parsing import parse_untrusted
from switch import limits
from switch.contracts import InboundReplyV1
from switch.domain.case import CaseKind, CaseState, Initiator
from switch.domain.payment import PaymentState
from switch.service.case_timer import FollowUpCases, follow_up_cases
from switch.service.enquiries import (
    AnswerStatusRequests,
    EnquirePayment,
    answer_status_requests,
    enquire_payment,
    enquiry_ref,
    next_enquiry_at,
)
from switch.service.follow_up import FollowUpPayments, follow_up_payments
from switch.service.handlers import (
    AcceptInstructions,
    Deps,
    Outcome,
    RecordSendResults,
    accept_instructions,
    apply_partner_statuses,
    record_send_results,
)
from switch.service.inbound import AcceptInbound, ApplyInboundReplies, accept_inbound, apply_inbound_replies
from switch.service.ports import Lease
from tests.factories import sample_instruction
from tests.fakes import INBOUND_TRANSFER, FakeClock, FakeUnitOfWork, parsed_instruction, partner_statuses

S = PaymentState
LEASE = Lease("replica-a", limits.outbox_lease_s)


async def _admitted(uow: FakeUnitOfWork, deps: Deps) -> str:
    await accept_instructions(AcceptInstructions([parsed_instruction(sample_instruction(), source_ref="r:0:1")]), uow, deps)
    (uetr,) = uow.payments
    (row,) = uow.state.outbox_messages("partner")
    await record_send_results([RecordSendResults([row.id or 0], submitted_uetrs=row.uetrs)], uow, deps)
    return uetr


async def _tick(uow: FakeUnitOfWork, deps: Deps) -> tuple[Outcome, Outcome]:
    """One round of the follow-up loop (main.py): payments, then cases."""
    payments = await follow_up_payments(FollowUpPayments(), uow, deps)
    cases = await follow_up_cases(FollowUpCases(), uow, deps)
    return payments, cases


def _enquiries(uow: FakeUnitOfWork) -> list:  # type: ignore[type-arg]
    return [m for m in uow.state.outbox_messages("partner") if m.message_id.startswith("E")]


def _profile(deps: Deps):  # type: ignore[no-untyped-def]
    return deps.mappings["promptpay"].profile


async def test_the_enquiry_goes_at_enquire_after_s_and_not_before(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps)
    profile = _profile(deps)
    assert profile.resend_after_s < profile.exceptions.enquire_after_s  # the shipped timings
    clock.advance(profile.resend_after_s)
    payments_out, _ = await _tick(uow, deps)
    (case,) = uow.state.cases.values()
    assert payments_out.counts["enquiries_opened"] == 1 and payments_out.counts["resent"] == 1  # the blind resend stays
    assert (case.kind, case.initiator, case.counterpart, case.ref, case.state) == (
        CaseKind.ENQUIRY, Initiator.SWITCH, "promptpay", enquiry_ref(uetr), CaseState.OPEN)
    assert _enquiries(uow) == []
    clock.advance(profile.exceptions.enquire_after_s - profile.resend_after_s - 0.5)
    await _tick(uow, deps)
    assert _enquiries(uow) == []  # not before enquire_after_s
    clock.advance(0.5)
    _, cases_out = await _tick(uow, deps)
    (row,) = _enquiries(uow)
    assert cases_out.counts["enquiries_sent"] == 1 and cases_out.partner_outbox[0].message_id == row.message_id
    case = uow.state.cases[case.id]
    assert (case.state, case.attempts, case.message_id) == (CaseState.SENT, 1, row.message_id)
    assert row.uetrs == () and row.destination == "promptpay"  # delivering it moves no payment
    request = pacs028.parse(parse_untrusted(row.body))
    deps.schemas.validate(parse_untrusted(row.body), "pacs.028.001.03")
    (tx,) = request.transactions
    p = uow.payments[uetr]
    assert (tx.original_group.message_id, tx.original_group.message_name_id) == (p.message_id, profile.pacs008_version)
    assert (tx.original_uetr, tx.original_end_to_end_id, tx.original_tx_id) == (uetr, p.instruction_id, tx_id(uetr))
    assert tx.status_request_id == request.message_id == row.message_id
    assert deps.metrics.enquiries.labels("promptpay", "outbound", "sent")._value.get() == 1


async def test_one_enquiry_case_per_payment(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    await _admitted(uow, deps)
    for _ in range(4):
        clock.advance(_profile(deps).sla_s)
        await _tick(uow, deps)
    assert len(uow.state.cases) == 1
    assert len(_enquiries(uow)) == 4  # but a new pacs.028 each time it is due


def test_the_backoff_grows_by_half_up_to_the_sla_then_is_capped(deps: Deps, clock: FakeClock) -> None:
    class P:  # only created_at matters
        created_at = clock()

    t0 = clock()
    kw = dict(enquire_after_s=20.0, interval_s_max=100.0, sla_s=60.0)
    assert next_enquiry_at(P, 1, now=t0 + timedelta(seconds=20), **kw) == t0 + timedelta(seconds=40)  # 20
    assert next_enquiry_at(P, 2, now=t0 + timedelta(seconds=40), **kw) == t0 + timedelta(seconds=60)  # 30, clamped to the SLA
    assert next_enquiry_at(P, 3, now=t0 + timedelta(seconds=60), **kw) == t0 + timedelta(seconds=105)  # 45
    assert next_enquiry_at(P, 4, now=t0 + timedelta(seconds=105), **kw) == t0 + timedelta(seconds=172.5)  # 67.5
    assert next_enquiry_at(P, 5, now=t0 + timedelta(seconds=200), **kw) == t0 + timedelta(seconds=300)  # capped at 100


async def test_repeated_enquiries_follow_the_backoff(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    await _admitted(uow, deps)
    exc = _profile(deps).exceptions
    clock.advance(_profile(deps).resend_after_s)
    await _tick(uow, deps)
    sent_at = []
    for _ in range(5):
        (case,) = uow.state.cases.values()
        assert case.due_at is not None
        clock.now = case.due_at
        await _tick(uow, deps)
        sent_at.append((clock() - uow.payments[case.uetr].created_at).total_seconds())
    assert len(_enquiries(uow)) == 5
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:])]
    assert sent_at[0] == exc.enquire_after_s
    assert gaps[0] == exc.enquire_after_s  # then x1.5 (clamped once at the SLA)
    assert all(g <= exc.enquiry_interval_s_max for g in gaps)
    assert sent_at[2] == _profile(deps).sla_s
    assert gaps[-1] == exc.enquire_after_s * 1.5**3
    assert (uow.state.cases[case.id].attempts) == 5


async def test_a_final_status_closes_the_enquiry(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps)
    clock.advance(_profile(deps).resend_after_s)
    await _tick(uow, deps)
    clock.advance(_profile(deps).exceptions.enquire_after_s)
    await _tick(uow, deps)
    (case,) = uow.state.cases.values()
    assert case.state is CaseState.SENT
    await apply_partner_statuses([partner_statuses("promptpay", "S1", (uetr, S.COMPLETED, None))], uow, deps)
    case = uow.state.cases[case.id]
    assert uow.payments[uetr].state is S.COMPLETED
    assert (case.state, case.due_at) == (CaseState.DONE, None)
    assert "COMPLETED" in (case.detail or "")
    assert deps.metrics.enquiries.labels("promptpay", "outbound", "answered")._value.get() == 1
    clock.advance(1000)
    await _tick(uow, deps)
    assert len(_enquiries(uow)) == 1  # stopped


async def test_an_open_case_of_a_payment_completed_before_its_first_enquiry_closes_without_one(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps)
    clock.advance(_profile(deps).resend_after_s)
    await _tick(uow, deps)
    await apply_partner_statuses([partner_statuses("promptpay", "S1", (uetr, S.COMPLETED, None))], uow, deps)
    (case,) = uow.state.cases.values()
    assert (case.state, case.attempts) == (CaseState.DONE, 0)
    clock.advance(1000)
    await _tick(uow, deps)
    assert _enquiries(uow) == []


async def test_not_received_resends_the_pacs008_byte_for_byte_and_never_rejects(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps)
    (original,) = uow.state.outbox_messages("partner")
    clock.advance(_profile(deps).resend_after_s)
    await _tick(uow, deps)
    clock.advance(_profile(deps).exceptions.enquire_after_s)
    await _tick(uow, deps)
    # every resend and the pacs.028 were delivered
    await record_send_results([RecordSendResults([m.id or 0 for m in uow.state.outbox_messages("partner")])], uow, deps)
    (out,) = await apply_partner_statuses([partner_statuses("promptpay", "S-AG09", (uetr, S.REJECTED, "AG09"))], uow, deps)
    p = uow.payments[uetr]
    assert p.state is S.SUBMITTED and p.reason_code is None  # not rejected
    assert out.counts == {"not_found": 1, "resent": 1}
    (again,) = out.partner_outbox
    assert (again.id, again.message_id, again.body) == (original.id, original.message_id, original.body)
    assert uow.outbox[original.id or 0].sent_at is None  # back in the relay's hands
    (case,) = uow.state.cases.values()
    assert case.state is CaseState.SENT and case.reason_code == "AG09"
    assert "resent 1 time" in (case.detail or "")
    await record_send_results([RecordSendResults([again.id or 0])], uow, deps)
    await apply_partner_statuses([partner_statuses("promptpay", "S-AG09-2", (uetr, S.REJECTED, "AG09"))], uow, deps)
    assert "resent 2 time" in (uow.state.cases[case.id].detail or "")
    assert deps.metrics.enquiries.labels("promptpay", "outbound", "not_found_resent")._value.get() == 2
    # another reason still rejects, as any callback does
    await apply_partner_statuses([partner_statuses("promptpay", "S-AC04", (uetr, S.REJECTED, "AC04"))], uow, deps)
    assert uow.payments[uetr].state is S.REJECTED
    assert uow.state.cases[case.id].state is CaseState.DONE


async def _inbound(uow: FakeUnitOfWork, deps: Deps) -> None:
    await accept_inbound([AcceptInbound("promptpay", "M1", "pacs.008.001.13", b"m1", (INBOUND_TRANSFER,))], uow, deps)


def _request(uetr: str, msg_id: str = "Q1") -> AnswerStatusRequests:
    tx = pacs028.StatusRequestTx(
        status_request_id=f"{msg_id}-1", original_group=pacs002.OriginalGroup("M1", "pacs.008.001.13"),
        original_end_to_end_id="E2E", original_uetr=uetr,
    )
    return AnswerStatusRequests("promptpay", msg_id, "pacs.028.001.03", b"<pacs.028>", (tx,))


def _status_of(body: bytes) -> pacs002.TransactionReport:
    (tx,) = pacs002.parse(parse_untrusted(body)).transactions
    return tx


async def test_a_partner_asking_about_a_booked_undecided_payment_gets_pdng(deps: Deps) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    await _inbound(uow, deps)
    out = await answer_status_requests(_request(INBOUND_TRANSFER.uetr), uow, deps)
    (row,) = out.partner_outbox
    assert out.counts == {"answered_pending": 1}
    tx = _status_of(row.body)
    assert (tx.status, tx.original_uetr, row.destination) == (pacs002.TransactionStatus.PDNG, INBOUND_TRANSFER.uetr, "promptpay")
    again = await answer_status_requests(_request(INBOUND_TRANSFER.uetr), uow, deps)  # the same pacs.028 again
    assert again.counts == {"duplicate_message": 1, "answered_pending": 1}
    assert len([m for m in uow.state.outbox_messages("partner") if m.message_id == row.message_id]) == 1


async def test_a_partner_asking_about_a_decided_payment_gets_the_stored_pacs002_byte_for_byte(deps: Deps) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    await _inbound(uow, deps)
    reply = InboundReplyV1(version=1, uetr=INBOUND_TRANSFER.uetr, participant="ACLBKHPPXXX", decision="ACCEPT")
    await apply_inbound_replies(ApplyInboundReplies([reply]), uow, deps)
    (stored,) = [m for m in uow.state.outbox_messages("partner") if m.message_id == answer_message_id(INBOUND_TRANSFER.uetr)]
    await record_send_results([RecordSendResults([stored.id or 0])], uow, deps)  # delivered once
    out = await answer_status_requests(_request(INBOUND_TRANSFER.uetr), uow, deps)
    (row,) = out.partner_outbox
    assert out.counts == {"answered_final": 1}
    assert (row.id, row.message_id, row.body) == (stored.id, stored.message_id, stored.body)
    assert _status_of(row.body).status is pacs002.TransactionStatus.ACSC


async def test_a_partner_asking_about_an_unknown_or_anothers_payment_gets_ag09(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    outbound = await _admitted(uow, deps)  # the switch's own payment to promptpay: not one promptpay sent
    for uetr in ("11111111-2222-4333-8444-555555555555", outbound):
        out = await answer_status_requests(_request(uetr, msg_id=f"Q{uetr[:4]}"), uow, deps)
        (row,) = out.partner_outbox
        tx = _status_of(row.body)
        assert out.counts == {"answered_not_found": 1}
        assert (tx.status, tx.reasons[0].code, tx.original_uetr) == (pacs002.TransactionStatus.RJCT, "AG09", uetr)
    assert uow.payments[outbound].state is S.SUBMITTED


async def test_an_operator_opens_then_repeats_an_enquiry_audited(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps)
    clock.advance(1)  # long before enquire_after_s
    out = await enquire_payment(EnquirePayment(uetr, "alice"), uow, deps)
    (case,) = uow.state.cases.values()
    assert (case.initiator, case.state, case.attempts, out.refusals) == (Initiator.OPERATOR, CaseState.SENT, 1, [])
    (row,) = out.partner_outbox
    assert row.message_id == case.message_id and pacs028.parse(parse_untrusted(row.body)).transactions[0].original_uetr == uetr
    await enquire_payment(EnquirePayment(uetr, "alice"), uow, deps)
    assert len(uow.state.cases) == 1 and uow.state.cases[case.id].attempts == 2 and len(_enquiries(uow)) == 2
    entries = [e for e in uow.state.audit if e.action == "payment.enquire"]
    assert [(e.actor, e.subject, e.detail["attempts"]) for e in entries] == [("operator alice", uetr, 1), ("operator alice", uetr, 2)]


async def test_an_operator_enquiry_is_refused_for_unknown_final_or_inbound_payments(deps: Deps) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps)
    await _inbound(uow, deps)
    await apply_partner_statuses([partner_statuses("promptpay", "S1", (uetr, S.COMPLETED, None))], uow, deps)
    cases = {
        "00000000-0000-4000-8000-000000000000": "MS03",
        uetr: "AG01",
        INBOUND_TRANSFER.uetr: "AG01",
    }
    for target, code in cases.items():
        out = await enquire_payment(EnquirePayment(target, "alice"), uow, deps)
        assert [c for c, _ in out.refusals] == [code]
        assert out.partner_outbox == []
    assert uow.state.cases == {} and [e for e in uow.state.audit if e.action == "payment.enquire"] == []


async def test_an_enquiry_earlier_than_the_resend_goes_on_time_and_the_resend_stays_at_resend_after_s(
    deps: Deps, clock: FakeClock
) -> None:
    mapping = deps.mappings["promptpay"]
    profile = mapping.profile
    early = profile.model_copy(update={"exceptions": profile.exceptions.model_copy(update={"enquire_after_s": 5.0})})
    deps.mappings = {**deps.mappings, "promptpay": type(mapping)(early, switch_bic=deps.config.switch.agent_bic)}
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps)
    (original,) = uow.state.outbox_messages("partner")
    assert uow.payments[uetr].follow_up_at == clock() + timedelta(seconds=5)
    clock.advance(5)
    payments_out, cases_out = await _tick(uow, deps)
    assert payments_out.counts.get("resent", 0) == 0 and cases_out.counts["enquiries_sent"] == 1
    assert uow.outbox[original.id or 0].sent_at is not None  # not requeued
    assert uow.payments[uetr].follow_up_at == uow.payments[uetr].created_at + timedelta(seconds=profile.resend_after_s)
    clock.now = uow.payments[uetr].created_at + timedelta(seconds=profile.resend_after_s)
    payments_out, _ = await _tick(uow, deps)
    assert payments_out.counts["resent"] == 1
