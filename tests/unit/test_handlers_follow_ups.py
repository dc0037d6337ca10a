"""follow_up_payments on the fakes: every payment without a final outcome is looked at again
until it has one. Outbound: the pacs.008 resent byte for byte, TIMED_OUT at the partner's SLA
(not final, still followed up), resolved by any later pacs.002. Inbound: AB05 when the
participant stays silent past the confirm deadline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from iso20022 import pacs002
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch import limits
from switch.contracts import InboundReplyV1
from switch.domain.payment import PaymentState
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
from tests.fakes import INBOUND_TRANSFER, FakeClock, FakeUnitOfWork, deps_from_config, parsed_instruction, partner_statuses, status_events

S = PaymentState
LEASE = Lease("replica-a", limits.outbox_lease_s)
INBOUND_UETR = INBOUND_TRANSFER.uetr


async def _admitted(uow: FakeUnitOfWork, deps: Deps, *, delivered: bool) -> str:
    await accept_instructions(AcceptInstructions([parsed_instruction(sample_instruction(), source_ref="r:0:1")]), uow, deps)
    (uetr,) = uow.payments
    if delivered:
        (row,) = uow.state.outbox_messages("partner")
        await record_send_results([RecordSendResults([row.id or 0], submitted_uetrs=row.uetrs)], uow, deps)
    return uetr


async def _tick(uow: FakeUnitOfWork, deps: Deps) -> Outcome:
    return await follow_up_payments(FollowUpPayments(), uow, deps)


def _sla_s(deps: Deps) -> float:
    return deps.mappings["promptpay"].profile.sla_s


async def test_a_follow_up_requeues_a_delivered_pacs008_byte_for_byte(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    await _admitted(uow, deps, delivered=True)
    (original,) = uow.state.outbox_messages("partner")
    clock.advance(deps.mappings["promptpay"].profile.resend_after_s)
    out = await _tick(uow, deps)
    (again,) = out.partner_outbox
    assert out.counts["resent"] == 1
    assert (again.id, again.message_id, again.body) == (original.id, original.message_id, original.body)
    stored = uow.outbox[original.id or 0]
    assert (stored.sent_at, stored.ambiguous, stored.lease_owner) == (None, True, "replica-a")


async def test_a_follow_up_leaves_a_pacs008_still_waiting_for_delivery_to_the_relay(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    await _admitted(uow, deps, delivered=False)
    rows = dict(uow.outbox)
    clock.advance(deps.mappings["promptpay"].profile.resend_after_s)
    out = await _tick(uow, deps)
    assert out.counts.get("resent", 0) == 0
    assert out.partner_outbox == []
    assert uow.outbox == rows


async def test_a_follow_up_before_the_sla_sets_the_next_look_and_keeps_the_state(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps, delivered=True)
    clock.advance(deps.mappings["promptpay"].profile.resend_after_s)
    await _tick(uow, deps)
    p = uow.payments[uetr]
    assert p.state is S.SUBMITTED
    assert p.follow_up_at is not None and p.follow_up_at > clock()


async def test_a_payment_not_yet_due_is_not_followed_up(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    await _admitted(uow, deps, delivered=True)
    clock.advance(1)
    assert (await _tick(uow, deps)).counts == {"claimed": 0}


async def test_past_the_sla_a_payment_times_out_with_an_event_that_is_not_final(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps, delivered=True)
    clock.advance(_sla_s(deps))
    out = await _tick(uow, deps)
    (event,) = status_events(uow.state, deps)
    assert out.counts["timed_out"] == 1
    assert (uow.payments[uetr].state, uow.payments[uetr].reason_code) == (S.TIMED_OUT, "AB06")
    assert (event["state"], event["final"], event["reason_code"]) == ("TIMED_OUT", False, "AB06")


async def test_a_timed_out_payment_is_still_followed_up_and_resent(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps, delivered=True)
    clock.advance(_sla_s(deps))
    await _tick(uow, deps)
    (row,) = uow.state.outbox_messages("partner")
    await record_send_results([RecordSendResults([row.id or 0])], uow, deps)  # the resend was delivered
    next_at = uow.payments[uetr].follow_up_at
    assert next_at is not None
    clock.now = next_at
    out = await _tick(uow, deps)
    assert out.counts.get("resent") == 1
    assert uow.payments[uetr].state is S.TIMED_OUT
    assert len(status_events(uow.state, deps)) == 1  # timed out once, not again each round


async def test_a_quoted_payment_past_the_sla_times_out_through_submitted_and_is_never_rejected(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps, delivered=False)
    clock.advance(_sla_s(deps))
    await _tick(uow, deps)
    assert uow.payments[uetr].state is S.TIMED_OUT
    assert [(h.from_state, h.to_state) for h in uow.history][-2:] == [(S.QUOTED, S.SUBMITTED), (S.SUBMITTED, S.TIMED_OUT)]


async def test_a_later_pacs002_resolves_a_timed_out_payment(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps, delivered=True)
    clock.advance(_sla_s(deps))
    await _tick(uow, deps)
    clock.advance(30)
    (out,) = await apply_partner_statuses([partner_statuses("promptpay", "S1", (uetr, S.COMPLETED, None))], uow, deps)
    assert out.counts == {"applied": 1}
    assert uow.payments[uetr].state is S.COMPLETED
    assert uow.payments[uetr].follow_up_at is None
    assert [(e["state"], e["final"]) for e in status_events(uow.state, deps)] == [("TIMED_OUT", False), ("COMPLETED", True)]


async def test_a_final_payment_is_never_followed_up(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps, delivered=True)
    await apply_partner_statuses([partner_statuses("promptpay", "S1", (uetr, S.COMPLETED, None))], uow, deps)
    rows = dict(uow.outbox)
    clock.advance(limits.follow_up_interval_s_max * 10)
    out = await _tick(uow, deps)
    assert out.counts == {"claimed": 0}
    assert uow.outbox == rows


async def _inbound(uow: FakeUnitOfWork, deps: Deps) -> None:
    await accept_inbound([AcceptInbound("promptpay", "M1", "pacs.008.001.13", b"m1", (INBOUND_TRANSFER,))], uow, deps)
    assert uow.payments[INBOUND_UETR].state is S.SUBMITTED


async def test_an_inbound_payment_unanswered_by_its_confirm_deadline_is_rejected_ab05(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    await _inbound(uow, deps)
    route = deps.config.inbound_route("promptpay")
    assert route is not None
    clock.advance(route.confirm_timeout_s)
    out = await _tick(uow, deps)
    (answer,) = out.partner_outbox
    tx = pacs002.parse(parse_untrusted(answer.body)).transactions[0]
    p = uow.payments[INBOUND_UETR]
    assert out.counts["inbound_timed_out"] == 1
    assert (p.state, p.reason_code, p.follow_up_at) == (S.REJECTED, "AB05", None)
    assert (answer.destination, tx.status.value, tx.reasons[0].code) == ("promptpay", "RJCT", "AB05")


async def test_an_inbound_payment_is_not_rejected_before_its_confirm_deadline(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    await _inbound(uow, deps)
    route = deps.config.inbound_route("promptpay")
    assert route is not None
    clock.advance(route.confirm_timeout_s - 1)
    assert (await _tick(uow, deps)).counts == {"claimed": 0}
    assert uow.payments[INBOUND_UETR].state is S.SUBMITTED


async def test_a_participant_reply_after_the_ab05_is_late_and_changes_nothing(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    await _inbound(uow, deps)
    clock.advance(limits.follow_up_interval_s_max)
    await _tick(uow, deps)
    rejected = uow.payments[INBOUND_UETR]
    reply = InboundReplyV1.model_validate(
        {"version": 1, "uetr": INBOUND_UETR, "participant": rejected.participant, "decision": "ACCEPT"}
    )
    out = await apply_inbound_replies(ApplyInboundReplies([reply]), uow, deps)
    assert out.counts == {"reply_late": 1}
    assert uow.payments[INBOUND_UETR] == rejected


async def test_a_claimed_follow_up_is_leased_so_a_second_replica_does_not_take_it(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _admitted(uow, deps, delivered=True)
    clock.advance(deps.mappings["promptpay"].profile.resend_after_s)
    claimed = await uow.payments_claim_follow_ups(clock(), 10)
    assert [p.uetr for p in claimed] == [uetr]
    assert await uow.payments_claim_follow_ups(clock(), 10) == []
    assert claimed[0].follow_up_at == clock() + timedelta(seconds=LEASE.duration_s)
