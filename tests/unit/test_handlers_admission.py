"""accept_instructions on the fakes: a new instruction, the same one again (a participant's
resend, a Kafka redelivery), its id reused for another payload, and instructions the switch
refuses, each answered as a value with its reason code."""

from __future__ import annotations

from typing import Any

import pytest

from iso20022.schemas import SchemaSet
from switch.domain.payment import PaymentState
from switch.service.handlers import AcceptInstructions, Deps, Outcome, accept_instructions, apply_partner_statuses
from tests.factories import sample_instruction, sample_partner_instruction
from tests.fakes import FakeClock, FakeUnitOfWork, deps_from_config, parsed_instruction, partner_statuses, status_events

S = PaymentState
KEY = ("ACLBKHPPXXX", "INS-0001")


async def _admit(uow: FakeUnitOfWork, deps: Deps, doc: dict[str, Any], *, source_ref: str = "mekong.instructions:0:1") -> Outcome:
    return await accept_instructions(AcceptInstructions([parsed_instruction(doc, source_ref=source_ref)]), uow, deps)


async def test_a_new_instruction_becomes_one_quoted_payment_with_its_pacs008_queued(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    out = await _admit(uow, deps, sample_instruction())
    (payment,) = uow.payments.values()
    (pacs008,) = out.partner_outbox
    assert out.admissions[KEY] == (payment.uetr, None, None)
    assert payment.state is S.QUOTED
    assert uow.instructions[KEY].uetr == payment.uetr
    assert (pacs008.destination, pacs008.uetrs, pacs008.message_id) == ("promptpay", (payment.uetr,), payment.message_id)
    assert [(h.from_state, h.to_state) for h in uow.history] == [(None, S.RECEIVED), (S.RECEIVED, S.QUOTED)]


async def test_a_new_payment_is_followed_up_after_the_partners_resend_time(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_instruction())
    (payment,) = uow.payments.values()
    resend_after_s = deps.mappings["promptpay"].profile.resend_after_s
    assert (payment.follow_up_at - deps.clock()).total_seconds() == resend_after_s  # type: ignore[operator]


async def test_a_pacs008_is_retried_by_the_relay_until_the_partners_sla(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    out = await _admit(uow, deps, sample_instruction())
    sla_s = deps.mappings["promptpay"].profile.sla_s
    assert (out.partner_outbox[0].deadline_at - deps.clock()).total_seconds() == sla_s  # type: ignore[operator]


async def test_a_resent_instruction_in_flight_replays_its_current_status_without_a_second_payment(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_instruction(), source_ref="mekong.instructions:0:1")
    out = await _admit(uow, deps, sample_instruction(), source_ref="mekong.instructions:0:2")
    (payment,) = uow.payments.values()
    (event,) = status_events(uow.state, deps)
    assert out.counts == {"replayed": 1}
    assert not out.partner_outbox
    assert (event["uetr"], event["state"], event["final"], event["replayed"]) == (payment.uetr, "QUOTED", False, True)


async def test_a_resent_instruction_after_its_outcome_replays_the_final_status(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_instruction(), source_ref="mekong.instructions:0:1")
    (payment,) = uow.payments.values()
    await apply_partner_statuses([partner_statuses("promptpay", "S1", (payment.uetr, S.COMPLETED, None))], uow, deps)
    await _admit(uow, deps, sample_instruction(), source_ref="mekong.instructions:0:9")
    first, replay = status_events(uow.state, deps)
    assert (first["state"], first["final"], first["replayed"]) == ("COMPLETED", True, False)
    assert (replay["state"], replay["final"], replay["replayed"]) == ("COMPLETED", True, True)
    assert len(uow.payments) == 1


async def test_a_kafka_redelivery_of_the_same_record_is_absorbed_without_any_message(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_instruction(), source_ref="mekong.instructions:0:1")
    rows_before = dict(uow.outbox)
    out = await _admit(uow, deps, sample_instruction(), source_ref="mekong.instructions:0:1")
    assert out.counts == {"redelivered": 1}
    assert uow.outbox == rows_before
    assert out.admissions[KEY][0] == next(iter(uow.payments))


async def test_an_instruction_id_reused_with_another_payload_is_answered_by_a_conflict_event_that_is_not_final(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_instruction())
    (payment,) = uow.payments.values()
    out = await _admit(uow, deps, sample_instruction(remittance="Other purpose"), source_ref="mekong.instructions:0:2")
    (event,) = status_events(uow.state, deps)
    assert out.counts == {"conflict": 1}
    assert out.admissions[KEY] == (None, "DUPL", "instruction id already used with a different payload")
    assert (event["type"], event["state"], event["final"], event["reason_code"]) == ("conflict", "CONFLICT", False, "DUPL")
    assert event["uetr"] == payment.uetr  # it names the payment that stands


async def test_a_conflict_leaves_the_original_payment_and_its_key_untouched(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_instruction())
    payments, record = dict(uow.payments), uow.instructions[KEY]
    await _admit(uow, deps, sample_instruction(remittance="Other purpose"), source_ref="mekong.instructions:0:2")
    assert uow.payments == payments
    assert uow.instructions[KEY] == record
    assert not [m for m in uow.state.outbox_messages("partner") if m.message_id != next(iter(payments.values())).message_id]


REJECTS = {
    "RC01-unknown-participant": (sample_instruction(participant="ZZZZKHPPXXX"), "RC01"),
    "AC01-debtor-of-another-bank": (sample_instruction(debtor={"name": "Sok Dara", "account": "sok_dara@abaa", "currency": "KHR"}), "AC01"),
    "AG01-no-such-corridor": (sample_instruction(corridor="KH-XX"), "AG01"),
    "AM02-above-corridor-maximum": (sample_instruction(amount={"value": "6000000", "currency": "KHR"}), "AM02"),
    "CURR-currency-not-taken": (
        sample_partner_instruction("napas", debtor={"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "USD"},
                                   amount={"value": "50.00", "currency": "USD"}),
        "CURR",
    ),
}


@pytest.mark.parametrize(("doc", "reason_code"), list(REJECTS.values()), ids=list(REJECTS))
async def test_a_refused_instruction_is_answered_as_a_final_reject_with_its_reason_code(
    deps: Deps, doc: dict[str, Any], reason_code: str
) -> None:
    uow = FakeUnitOfWork()
    out = await _admit(uow, deps, doc)
    (event,) = status_events(uow.state, deps)
    key = (doc["participant"], doc["instruction_id"])
    assert out.admissions[key][:2] == (None, reason_code)
    assert (event["state"], event["final"], event["reason_code"], event["uetr"]) == ("REJECTED", True, reason_code, None)
    assert uow.instructions[key].reject_reason_code == reason_code
    assert not uow.payments
    assert not out.partner_outbox


async def test_a_refused_instruction_resent_replays_its_reject(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    doc = sample_instruction(corridor="KH-XX")
    await _admit(uow, deps, doc, source_ref="mekong.instructions:0:1")
    out = await _admit(uow, deps, doc, source_ref="mekong.instructions:0:2")
    first, replay = status_events(uow.state, deps)
    assert out.counts == {"replayed": 1}
    assert (replay["state"], replay["reason_code"], replay["final"], replay["replayed"]) == ("REJECTED", "AG01", True, True)
    assert first["reason_code"] == "AG01"


async def test_every_status_event_carries_an_event_id_of_its_own(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_instruction(), source_ref="r:0:1")  # admitted: no event yet (QUOTED)
    await _admit(uow, deps, sample_instruction(), source_ref="r:0:2")  # replay
    await _admit(uow, deps, sample_instruction(remittance="x"), source_ref="r:0:3")  # conflict
    await _admit(uow, deps, sample_instruction(instruction_id="INS-0002", corridor="KH-XX"), source_ref="r:0:4")  # reject
    ids = [e["event_id"] for e in status_events(uow.state, deps)]
    assert len(ids) == 3
    assert all(ids) and len(set(ids)) == len(ids)
    assert ids == [m.message_id for m in uow.state.outbox_messages("status")]  # the row's id is the event's


async def test_two_instructions_with_one_id_in_one_batch_admit_the_first_and_answer_the_second_as_conflict(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    cmd = AcceptInstructions([
        parsed_instruction(sample_instruction(), source_ref="r:0:1"),
        parsed_instruction(sample_instruction(remittance="Other purpose"), source_ref="r:0:2"),
    ])
    out = await accept_instructions(cmd, uow, deps)
    assert out.counts == {"admitted": 1, "conflict": 1}
    assert len(uow.payments) == 1
