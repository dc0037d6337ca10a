"""apply_partner_statuses on the fakes: a partner's pacs.002 applied, late, duplicated, resent
under the same message id, or overtaking the send acknowledgement."""

from __future__ import annotations

import pytest

from iso20022.schemas import SchemaSet
from switch.domain.payment import PaymentState
from switch.service.handlers import (
    AcceptInstructions,
    Deps,
    Outcome,
    RecordSendResults,
    accept_instructions,
    apply_partner_statuses,
    record_send_results,
)
from switch.service.inbound import AcceptInbound, accept_inbound
from tests.factories import sample_instruction
from tests.fakes import INBOUND_TRANSFER, FakeClock, FakeUnitOfWork, deps_from_config, parsed_instruction, partner_statuses, status_events

S = PaymentState


async def _quoted(uow: FakeUnitOfWork, deps: Deps) -> str:
    await accept_instructions(AcceptInstructions([parsed_instruction(sample_instruction(), source_ref="r:0:1")]), uow, deps)
    (uetr,) = uow.payments
    return uetr


async def _submitted(uow: FakeUnitOfWork, deps: Deps) -> str:
    uetr = await _quoted(uow, deps)
    (row,) = uow.state.outbox_messages("partner")
    await record_send_results([RecordSendResults([row.id or 0], submitted_uetrs=row.uetrs)], uow, deps)
    return uetr


async def _status(uow: FakeUnitOfWork, deps: Deps, message_id: str, uetr: str, target: PaymentState,
                  reason: str | None = None, partner: str = "promptpay") -> Outcome:
    (out,) = await apply_partner_statuses([partner_statuses(partner, message_id, (uetr, target, reason))], uow, deps)
    return out


async def test_an_acsc_completes_a_submitted_payment_with_one_final_event(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await _submitted(uow, deps)
    out = await _status(uow, deps, "S1", uetr, S.COMPLETED)
    (event,) = status_events(uow.state, deps)
    assert out.counts == {"applied": 1}
    assert uow.payments[uetr].state is S.COMPLETED
    assert (event["uetr"], event["state"], event["final"], event["replayed"]) == (uetr, "COMPLETED", True, False)


async def test_a_partner_reject_rejects_the_payment_with_the_partners_reason_code(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await _submitted(uow, deps)
    await _status(uow, deps, "S1", uetr, S.REJECTED, "AC04")
    (event,) = status_events(uow.state, deps)
    assert (uow.payments[uetr].state, uow.payments[uetr].reason_code) == (S.REJECTED, "AC04")
    assert (event["state"], event["reason_code"], event["final"]) == ("REJECTED", "AC04", True)


async def test_an_intermediate_acceptance_moves_the_payment_on_without_a_final_event(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await _submitted(uow, deps)
    await _status(uow, deps, "S1", uetr, S.ACCEPTED)
    assert uow.payments[uetr].state is S.ACCEPTED
    assert uow.payments[uetr].follow_up_at is not None
    assert status_events(uow.state, deps) == []


async def test_a_final_status_clears_the_follow_up_time(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await _submitted(uow, deps)
    await _status(uow, deps, "S1", uetr, S.COMPLETED)
    assert uow.payments[uetr].follow_up_at is None


async def test_a_status_for_a_payment_already_final_is_counted_late_and_changes_nothing(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await _submitted(uow, deps)
    await _status(uow, deps, "S1", uetr, S.COMPLETED)
    decided = uow.payments[uetr]
    out = await _status(uow, deps, "S2", uetr, S.REJECTED, "AC04")
    assert out.counts == {"late": 1}
    assert uow.payments[uetr] == decided
    assert len(status_events(uow.state, deps)) == 1


async def test_the_same_status_again_in_another_message_is_counted_duplicate(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await _submitted(uow, deps)
    await _status(uow, deps, "S1", uetr, S.ACCEPTED)
    accepted = uow.payments[uetr]
    out = await _status(uow, deps, "S2", uetr, S.ACCEPTED)
    assert out.counts == {"duplicate": 1}
    assert uow.payments[uetr] == accepted


async def test_a_pacs002_resent_under_the_same_message_id_is_recorded_once_and_not_applied_again(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await _submitted(uow, deps)
    await _status(uow, deps, "S1", uetr, S.ACCEPTED)
    accepted, history = uow.payments[uetr], list(uow.history)
    out = await _status(uow, deps, "S1", uetr, S.COMPLETED)  # the same message id, another status: not read again
    assert out.counts == {"duplicate_message": 1}
    assert uow.payments[uetr] == accepted
    assert uow.history == history
    assert list(uow.state.inbound) == [("promptpay", "S1")]


async def test_a_pacs002_overtaking_the_send_acknowledgement_moves_the_payment_through_submitted(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await _quoted(uow, deps)
    out = await _status(uow, deps, "S1", uetr, S.COMPLETED)
    assert out.counts == {"applied": 1}
    assert uow.payments[uetr].state is S.COMPLETED
    assert [(h.from_state, h.to_state) for h in uow.history if h.at == deps.clock()][-2:] == [
        (S.QUOTED, S.SUBMITTED), (S.SUBMITTED, S.COMPLETED)
    ]


async def test_a_send_acknowledgement_after_the_pacs002_leaves_the_final_state(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await _quoted(uow, deps)
    await _status(uow, deps, "S1", uetr, S.COMPLETED)
    (row,) = uow.state.outbox_messages("partner")
    await record_send_results([RecordSendResults([row.id or 0], submitted_uetrs=row.uetrs)], uow, deps)
    assert uow.payments[uetr].state is S.COMPLETED


async def test_a_status_from_another_partner_than_the_payments_is_ignored(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await _submitted(uow, deps)
    submitted = uow.payments[uetr]
    out = await _status(uow, deps, "L1", uetr, S.COMPLETED, partner="lapnet")
    assert out.counts == {"unknown": 1}
    assert uow.payments[uetr] == submitted


async def test_two_statuses_for_one_payment_in_one_group_apply_in_order(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    uetr = await _submitted(uow, deps)
    outs = await apply_partner_statuses(
        [partner_statuses("promptpay", "S1", (uetr, S.ACCEPTED, None)), partner_statuses("promptpay", "S2", (uetr, S.COMPLETED, None))],
        uow, deps,
    )
    assert [o.counts for o in outs] == [{"applied": 1}, {"applied": 1}]
    assert uow.payments[uetr].state is S.COMPLETED
    assert [e["state"] for e in status_events(uow.state, deps)] == ["COMPLETED"]


async def test_a_partner_status_naming_an_inbound_payment_does_not_decide_it(deps: Deps) -> None:
    """Only the beneficiary participant decides an inbound payment (apply_inbound_replies) or its
    confirm deadline (AB05); a pacs.002 from the partner that sent it must not complete it."""
    uow = FakeUnitOfWork()
    await accept_inbound([AcceptInbound("promptpay", "M1", "pacs.008.001.13", b"m1", (INBOUND_TRANSFER,))], uow, deps)
    booked = uow.payments[INBOUND_TRANSFER.uetr]
    await _status(uow, deps, "S1", INBOUND_TRANSFER.uetr, S.COMPLETED)
    assert uow.payments[INBOUND_TRANSFER.uetr] == booked


def _stage_observations(deps: Deps, stage: str) -> tuple[float, float]:
    """(count, sum) of switch_stage_duration_seconds{stage}."""
    samples = {s.name: s.value for m in deps.metrics.registry.collect() if m.name == "switch_stage_duration_seconds"
               for s in m.samples if s.labels.get("stage") == stage}
    return samples.get("switch_stage_duration_seconds_count", 0.0), samples.get("switch_stage_duration_seconds_sum", 0.0)


async def test_a_final_status_observes_the_partners_round_trip_from_the_send(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    uetr = await _submitted(uow, deps)
    clock.advance(2.5)  # the partner takes 2.5 s to decide
    await _status(uow, deps, "S1", uetr, S.COMPLETED)
    assert _stage_observations(deps, "partner_roundtrip") == (1.0, 2.5)


async def test_a_status_that_overtook_the_send_acknowledgement_observes_no_round_trip(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    uetr = await _quoted(uow, deps)  # the send was never recorded: no start to measure from
    clock.advance(1.0)
    await _status(uow, deps, "S1", uetr, S.COMPLETED)
    assert uow.payments[uetr].state is S.COMPLETED
    assert _stage_observations(deps, "partner_roundtrip")[0] == 0.0
