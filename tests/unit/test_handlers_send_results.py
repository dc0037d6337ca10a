"""record_send_results on the fakes, fed as the outbox relay feeds it: an acknowledged delivery,
a partner's refusal, a failed round before and after the row's deadline. AB07 ("never reached
the partner") only for a row no attempt of which could have reached it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.transport import SendOutcome
from iso20022.schemas import SchemaSet
from switch import limits
from switch.domain.payment import PaymentState
from switch.service.handlers import (
    AcceptInstructions,
    Deps,
    RecordSendResults,
    accept_instructions,
    apply_partner_statuses,
    record_send_results,
)
from switch.service.ports import Lease, OutboxMessage
from tests.factories import sample_instruction
from tests.fakes import (
    FakeClock,
    FakeUnitOfWork,
    deps_from_config,
    failed_round,
    parsed_instruction,
    partner_statuses,
    status_events,
)

S = PaymentState
LEASE = Lease("replica-a", limits.outbox_lease_s)


async def _admitted(uow: FakeUnitOfWork, deps: Deps) -> tuple[str, OutboxMessage]:
    """A new payment and its pacs.008 row."""
    await accept_instructions(AcceptInstructions([parsed_instruction(sample_instruction(), source_ref="r:0:1")]), uow, deps)
    (uetr,) = uow.payments
    (row,) = uow.state.outbox_messages("partner")
    return uetr, row


async def _claimed(uow: FakeUnitOfWork, clock: FakeClock) -> OutboxMessage:
    """The pacs.008 row as the relay's poller claims it once it is due."""
    (row,) = [m for m in await uow.outbox_claim_due(clock(), 10) if m.kind == "partner"]
    return row


async def test_an_acknowledged_delivery_marks_the_row_sent_and_the_payment_submitted(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    uetr, row = await _admitted(uow, deps)
    await record_send_results([RecordSendResults([row.id or 0], submitted_uetrs=row.uetrs)], uow, deps)
    assert uow.payments[uetr].state is S.SUBMITTED
    assert uow.outbox[row.id or 0].sent_at == clock()


async def test_a_refused_pacs008_rejects_the_payment_with_the_partners_reason_code(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    uetr, row = await _admitted(uow, deps)
    decision = failed_round(row, SendOutcome.REFUSED, clock=clock, detail='{"reason_code": "AC03"}')
    await record_send_results([decision], uow, deps)
    (event,) = status_events(uow.state, deps)
    assert (uow.payments[uetr].state, uow.payments[uetr].reason_code) == (S.REJECTED, "AC03")
    assert (event["state"], event["reason_code"], event["final"]) == ("REJECTED", "AC03", True)
    assert uow.outbox[row.id or 0].sent_at is not None  # the relay stops delivering it


async def test_a_failed_round_before_the_deadline_schedules_a_retry_and_rejects_nothing(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr, row = await _admitted(uow, deps)
    decision = failed_round(row, SendOutcome.FAILED, clock=clock)
    await record_send_results([decision], uow, deps)
    stored = uow.outbox[row.id or 0]
    assert decision.rejects == {}
    assert (stored.sent_at, stored.attempts, stored.lease_until) == (None, 1, None)
    assert stored.next_attempt_at is not None and clock() < stored.next_attempt_at <= (row.deadline_at or clock())
    assert uow.payments[uetr].state is S.QUOTED


async def test_a_scheduled_retry_is_claimed_when_due_and_not_before(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    _, row = await _admitted(uow, deps)
    await record_send_results([failed_round(row, SendOutcome.FAILED, clock=clock)], uow, deps)
    retry_at = uow.outbox[row.id or 0].next_attempt_at
    assert retry_at is not None
    assert await uow.outbox_claim_due(retry_at - timedelta(microseconds=1), 10) == []
    clock.now = retry_at
    assert (await _claimed(uow, clock)).id == row.id


async def test_a_row_that_never_reached_the_partner_until_its_deadline_rejects_the_payment_ab07(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr, row = await _admitted(uow, deps)
    await record_send_results([failed_round(row, SendOutcome.FAILED, clock=clock)], uow, deps)
    clock.now = row.deadline_at or clock()
    await record_send_results([failed_round(await _claimed(uow, clock), SendOutcome.FAILED, clock=clock)], uow, deps)
    (event,) = status_events(uow.state, deps)
    assert (uow.payments[uetr].state, uow.payments[uetr].reason_code) == (S.REJECTED, "AB07")
    assert (event["reason_code"], event["final"]) == ("AB07", True)


async def test_a_row_once_ambiguous_is_never_rejected_ab07_at_its_deadline(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr, row = await _admitted(uow, deps)
    await record_send_results([failed_round(row, SendOutcome.TIMEOUT, clock=clock)], uow, deps)  # may have reached it
    clock.now = row.deadline_at or clock()
    claimed = await _claimed(uow, clock)
    assert claimed.ambiguous
    decision = failed_round(claimed, SendOutcome.FAILED, clock=clock)
    await record_send_results([decision], uow, deps)
    assert decision.rejects == {}
    assert uow.payments[uetr].state is S.QUOTED
    assert uow.payments[uetr].follow_up_at is not None  # left to the follow-ups
    assert uow.outbox[row.id or 0].sent_at is not None  # the relay gave up on the row


async def test_an_ambiguous_round_at_the_deadline_is_not_rejected_either(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr, row = await _admitted(uow, deps)
    clock.now = row.deadline_at or clock()
    decision = failed_round(row, SendOutcome.DISCONNECTED, clock=clock)
    await record_send_results([decision], uow, deps)
    assert decision.rejects == {}
    assert uow.payments[uetr].state is S.QUOTED


async def test_a_refused_resend_of_a_delivered_pacs008_rejects_nothing(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr, row = await _admitted(uow, deps)
    await record_send_results([RecordSendResults([row.id or 0], submitted_uetrs=row.uetrs)], uow, deps)
    (again,) = await uow.outbox_requeue("partner", [row.message_id], clock(), clock() + timedelta(seconds=15))
    decision = failed_round(again, SendOutcome.REFUSED, clock=clock, detail='{"reason_code": "DUPL"}')
    await record_send_results([decision], uow, deps)
    assert decision.rejects == {}
    assert uow.payments[uetr].state is S.SUBMITTED


async def test_a_reject_for_a_payment_a_pacs002_decided_meanwhile_changes_nothing(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    uetr, row = await _admitted(uow, deps)
    await apply_partner_statuses([partner_statuses("promptpay", "S1", (uetr, S.COMPLETED, None))], uow, deps)
    completed = uow.payments[uetr]
    await record_send_results([failed_round(row, SendOutcome.REFUSED, clock=clock, detail='{"reason_code": "AC03"}')], uow, deps)
    assert uow.payments[uetr] == completed
    assert [e["state"] for e in status_events(uow.state, deps)] == ["COMPLETED"]
