"""The operator's toolbox handlers (switch/service/operations.py, issue 11) on the fake unit of
work: marking a stuck payment (only the moves of MARKABLE, one final outcome, the participant
told, audited), resending its pacs.008 byte for byte, searching, and dead-letter replays claimed
once."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from switch import limits
from switch.domain.case import CaseState
from switch.domain.payment import FINAL_STATES, TRANSITIONS, PaymentState, transition
from switch.service.enquiries import EnquirePayment, enquire_payment
from switch.service.handlers import (
    AcceptInstructions,
    Deps,
    RecordSendResults,
    accept_instructions,
    apply_partner_statuses,
    record_send_results,
)
from switch.service.operations import (
    MARKABLE,
    ClaimDlqReplays,
    FinishDlqReplays,
    MarkPayment,
    ReplayResult,
    ReplayTarget,
    ResendPayment,
    claim_dlq_replays,
    find_payments,
    finish_dlq_replays,
    mark_payment,
    resend_payment,
)
from switch.service.ports import Lease, PaymentQuery
from tests.factories import sample_instruction
from tests.fakes import FakeClock, FakeUnitOfWork, parsed_instruction, partner_statuses

S = PaymentState
LEASE = Lease("replica-a", limits.outbox_lease_s)
UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def _submitted(uow: FakeUnitOfWork, deps: Deps, n: int = 1) -> list[str]:
    items = [parsed_instruction(sample_instruction(instruction_id=f"I{i}"), source_ref=f"r:0:{i}") for i in range(n)]
    await accept_instructions(AcceptInstructions(items), uow, deps)
    rows = uow.state.outbox_messages("partner")
    await record_send_results([RecordSendResults([r.id or 0 for r in rows], submitted_uetrs=[u for r in rows for u in r.uetrs])], uow, deps)
    return sorted(uow.payments)


def _time_out(uow: FakeUnitOfWork, uetr: str, deps: Deps) -> None:
    """The payment past its SLA without a status (what the follow-up does), set directly."""
    p, entry = transition(uow.payments[uetr], S.TIMED_OUT, now=deps.clock(), reason_code="AB06")
    uow.state.payments[uetr] = p
    uow.state.history.append(entry)


def _mark(uetr: str, target: S = S.REJECTED, reason_code: str | None = "AB05") -> MarkPayment:
    return MarkPayment(uetr, target, reason_code, "ITMX desk: never received", "alice")


async def test_marking_a_timed_out_payment_rejected_tells_the_participant_closes_its_enquiry_and_is_audited(deps: Deps) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    (uetr,) = await _submitted(uow, deps)
    await enquire_payment(EnquirePayment(uetr, "alice"), uow, deps)
    _time_out(uow, uetr, deps)
    events_before = len(uow.state.outbox_messages("status"))
    out = await mark_payment(_mark(uetr), uow, deps)
    assert out.refusals == []
    p = uow.payments[uetr]
    assert (p.state, p.reason_code, p.follow_up_at) == (S.REJECTED, "AB05", None)
    assert uow.history[-1].from_state is S.TIMED_OUT and "marked by operator alice" in (uow.history[-1].detail or "")
    (event,) = [json.loads(m.body) for m in out.status_outbox]
    assert (event["state"], event["final"], event["reason_code"], event["uetr"]) == ("REJECTED", True, "AB05", uetr)
    assert len(uow.state.outbox_messages("status")) == events_before + 1
    assert [c.state for c in uow.state.cases.values()] == [CaseState.DONE]
    (entry,) = [e for e in uow.state.audit if e.action == "payment.mark"]
    assert (entry.actor, entry.subject, entry.detail["to"]) == ("operator alice", uetr, "REJECTED")
    assert deps.metrics.operator_actions.labels("mark")._value.get() == 1


async def test_a_partner_status_after_the_mark_is_late_and_the_payment_keeps_one_outcome(deps: Deps) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    (uetr,) = await _submitted(uow, deps)
    _time_out(uow, uetr, deps)
    await mark_payment(_mark(uetr), uow, deps)
    (out,) = await apply_partner_statuses([partner_statuses("promptpay", "S-late", (uetr, S.COMPLETED, None))], uow, deps)
    assert uow.payments[uetr].state is S.REJECTED
    assert out.counts.get("late") == 1
    finals = [h for h in uow.history if h.uetr == uetr and h.to_state in FINAL_STATES]
    assert [h.to_state for h in finals] == [S.REJECTED]


@pytest.mark.parametrize("state", list(PaymentState))
async def test_a_mark_from_any_state_moves_only_by_markable_or_writes_nothing(deps: Deps, state: PaymentState) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    (uetr,) = await _submitted(uow, deps)
    p = uow.payments[uetr]
    uow.state.payments[uetr] = type(p)(*[getattr(p, f) if f != "state" else state for f in p.__dataclass_fields__])
    for target in (S.REJECTED, S.COMPLETED):
        before = (dict(uow.state.payments), len(uow.state.history), len(uow.state.outbox), len(uow.state.audit))
        out = await mark_payment(_mark(uetr, target), uow, deps)
        if target in MARKABLE.get(state, frozenset()):
            assert out.refusals == [] and uow.payments[uetr].state is target and target in TRANSITIONS[state]
            break
        assert [code for code, _ in out.refusals] == ["AG01"]
        assert before == (dict(uow.state.payments), len(uow.state.history), len(uow.state.outbox), len(uow.state.audit))


async def test_a_mark_is_refused_without_a_reason_code_or_for_an_unknown_payment(deps: Deps) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    (uetr,) = await _submitted(uow, deps)
    _time_out(uow, uetr, deps)
    for cmd, code in [(_mark(uetr, reason_code=None), "FF01"), (_mark(uetr, reason_code="not a code"), "FF01"), (_mark(UNKNOWN), "MS03")]:
        out = await mark_payment(cmd, uow, deps)
        assert [c for c, _ in out.refusals] == [code]
    assert uow.payments[uetr].state is S.TIMED_OUT
    out = await mark_payment(_mark(uetr, S.COMPLETED, None), uow, deps)  # credited: no reason code needed
    assert out.refusals == [] and uow.payments[uetr].state is S.COMPLETED


async def test_a_resend_requeues_the_delivered_pacs008_byte_for_byte_as_a_possible_duplicate(deps: Deps) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    (uetr,) = await _submitted(uow, deps)
    (original,) = uow.state.outbox_messages("partner")
    out = await resend_payment(ResendPayment(uetr, "alice", "partner restarted"), uow, deps)
    assert out.refusals == []
    (again,) = out.partner_outbox
    assert (again.id, again.message_id, again.body, again.ambiguous) == (original.id, original.message_id, original.body, True)
    assert [e.action for e in uow.state.audit if e.subject == uetr] == ["payment.resend"]
    # not delivered yet: nothing to resend, it goes anyway
    out = await resend_payment(ResendPayment(uetr, "alice", "again"), uow, deps)
    assert [c for c, _ in out.refusals] == ["AG01"] and out.partner_outbox == []


async def test_a_resend_is_refused_for_a_final_payment(deps: Deps) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    (uetr,) = await _submitted(uow, deps)
    await apply_partner_statuses([partner_statuses("promptpay", "S1", (uetr, S.COMPLETED, None))], uow, deps)
    out = await resend_payment(ResendPayment(uetr, "alice", "why not"), uow, deps)
    assert [c for c, _ in out.refusals] == ["AG01"] and out.partner_outbox == []


async def test_search_pages_newest_first_without_gaps_or_repeats(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    for i in range(5):  # two payments a second: pages cut between equal times too
        items = [parsed_instruction(sample_instruction(instruction_id=f"J{i}{j}"), source_ref=f"s:0:{i}{j}") for j in range(2)]
        await accept_instructions(AcceptInstructions(items), uow, deps)
        clock.advance(1)
    everything = await find_payments(uow, PaymentQuery(limit=limits.payments_page_max))
    seen, before = [], None
    while True:
        page = await find_payments(uow, PaymentQuery(limit=2, before=before))
        seen += page
        if len(page) < 2:
            break
        before = (page[-1].created_at, page[-1].uetr)
    assert len(everything) == 10 and [p.uetr for p in seen] == [p.uetr for p in everything]
    assert [p.created_at for p in seen] == sorted((p.created_at for p in seen), reverse=True)
    with pytest.raises(ValueError):
        await find_payments(uow, PaymentQuery(limit=limits.payments_page_max + 1))


async def test_a_dead_letter_is_claimed_once_and_a_failed_replay_releases_it(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    target = ReplayTarget("dlq", 0, 7, "instructions")
    first = await claim_dlq_replays(ClaimDlqReplays([target], "alice"), uow, deps)
    (claim,) = first.claimed
    second = await claim_dlq_replays(ClaimDlqReplays([target], "bob"), uow, deps)
    assert second.claimed == [] and [r.operator for r in second.refused] == ["alice"]  # being replayed
    await finish_dlq_replays(FinishDlqReplays([ReplayResult(claim, None, None, "KafkaTimeoutError")], "alice"), uow, deps)
    third = await claim_dlq_replays(ClaimDlqReplays([target], "bob"), uow, deps)
    (claim,) = third.claimed
    await finish_dlq_replays(FinishDlqReplays([ReplayResult(claim, 1, 42)], "bob"), uow, deps)
    stored = uow.state.dlq_replays[target.key]
    assert (stored.state, stored.target_partition, stored.target_offset, stored.operator) == ("replayed", 1, 42, "bob")
    clock.advance(limits.dlq_replay_claim_s_max * 10)
    later = await claim_dlq_replays(ClaimDlqReplays([target], "carol"), uow, deps)
    assert later.claimed == [] and later.refused == [stored]  # replayed: never again
    assert [e.action for e in uow.state.audit] == ["dlq.replay"]
    assert deps.metrics.dlq_replayed.labels("already_replayed")._value.get() == 2


async def test_a_claim_left_by_a_crash_may_be_taken_again_after_its_time(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    target = ReplayTarget("dlq", 1, 3, "instructions")
    (claim,) = (await claim_dlq_replays(ClaimDlqReplays([target], "alice"), uow, deps)).claimed
    clock.advance(limits.dlq_replay_claim_s_max + 1)
    (again,) = (await claim_dlq_replays(ClaimDlqReplays([target], "bob"), uow, deps)).claimed
    assert (again.operator, again.version) == ("bob", claim.version + 1)
    assert uow.state.dlq_replays[target.key].claimed_at == claim.claimed_at + timedelta(seconds=limits.dlq_replay_claim_s_max + 1)
