"""The config dry-run on the fakes: the replay record admission writes, and the comparison the
dry-run makes with a changed configuration (issue 11)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from switch.entrypoints.cli_config import read_replayed
from switch.service.dry_run import dry_run
from switch.service.handlers import AcceptInstructions, Deps, accept_instructions
from tests.factories import sample_instruction, sample_partner_instruction
from tests.fakes import FakeUnitOfWork, parsed_instruction

PAN = "6212345678901232"


async def _admit(uow: FakeUnitOfWork, deps: Deps, *docs: dict) -> None:  # type: ignore[type-arg]
    items = [parsed_instruction(doc, source_ref=f"mekong.instructions:0:{n}") for n, doc in enumerate(docs)]
    await accept_instructions(AcceptInstructions(items), uow, deps)


def _with_corridor(deps: Deps, corridor_id: str, **changes: object) -> Deps:
    corridors = tuple(c.model_copy(update=changes) if c.id == corridor_id else c for c in deps.config.corridors)
    cfg = deps.config.model_copy(update={"corridors": corridors})
    cfg.__dict__.pop("_corridors_by_id", None)  # the cached lookup belongs to the copy's source
    return dataclasses.replace(deps, config=cfg)


async def test_admission_records_the_instruction_for_replay_with_a_card_number_as_its_token(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_partner_instruction("unionpay", instruction_id="CARD-1"))
    record = uow.instructions[("ACLBKHPPXXX", "CARD-1")]
    assert record.replay is not None and PAN not in record.replay
    replay = json.loads(record.replay)
    assert replay["instruction"]["creditor"]["account"] == deps.pans.token(PAN)
    assert replay["origin"] is None and replay["v"] == 1


async def test_a_replay_with_the_same_config_changes_nothing(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_instruction(instruction_id="A-1"), sample_instruction(instruction_id="A-2", corridor="KH-XX"))
    now = deps.clock()
    report = await dry_run(uow, deps, read_replayed, since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    assert report.as_dict()["per_corridor"] == {"KH-TH": {"replayed": 1, "unchanged": 1}, "KH-XX": {"replayed": 1, "unchanged": 1}}


async def test_a_corridor_moved_to_another_partner_is_a_route_change(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_partner_instruction("napas", instruction_id="VN-1"))
    now = deps.clock()
    # a second link to the same network (same rules), under another partner id
    moved = _with_corridor(deps, "KH-VN", partner="napas_b")
    moved = dataclasses.replace(moved, mappings={**deps.mappings, "napas_b": deps.mappings["napas"]})
    report = await dry_run(uow, moved, read_replayed, since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    assert report.samples == {"route_changed": ["ACLBKHPPXXX/VN-1: KH-VN via napas -> KH-VN via napas_b"]}
    assert report.as_dict()["per_corridor"] == {"KH-VN": {"replayed": 1, "route_changed": 1}}


async def test_a_corridor_moved_to_a_network_that_refuses_the_creditor_is_a_reject(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_partner_instruction("napas", instruction_id="VN-1"))
    now = deps.clock()
    report = await dry_run(uow, _with_corridor(deps, "KH-VN", partner="unionpay"), read_replayed,
                           since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    assert report.as_dict()["per_corridor"] == {"KH-VN": {"now_rejected": 1, "replayed": 1}}


async def test_a_disabled_corridor_turns_its_payments_into_rejects_with_ag01(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_instruction(instruction_id="T-1"))
    now = deps.clock()
    report = await dry_run(uow, _with_corridor(deps, "KH-TH", enabled=False), read_replayed,
                           since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    assert report.samples["now_rejected"] == ["ACLBKHPPXXX/T-1 KH-TH: admitted then, now AG01 (no open corridor KH-TH)"]


async def test_instructions_without_a_replay_record_or_refused_for_their_rate_are_not_replayed(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, sample_instruction(instruction_id="OLD-1"), sample_instruction(instruction_id="RATE-1", corridor="KH-XX"))
    old = ("ACLBKHPPXXX", "OLD-1")
    uow.state.instructions[old] = dataclasses.replace(uow.state.instructions[old], replay=None)  # recorded before migration 0012
    limited = ("ACLBKHPPXXX", "RATE-1")
    uow.state.instructions[limited] = dataclasses.replace(uow.state.instructions[limited], reject_reason_code="SL15")
    now = deps.clock()
    report = await dry_run(uow, deps, read_replayed, since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    assert report.replayed == 0
    assert dict(report.not_replayed) == {
        "recorded before replay records (migration 0012)": 1, "over its participant's rate at the time (SL15)": 1,
    }


async def test_a_proxy_is_replayed_with_the_look_up_made_at_the_time_not_a_new_one(deps: Deps) -> None:
    from adapters.proxy_resolution import Resolution

    uow = FakeUnitOfWork()
    doc = sample_instruction(instruction_id="PX-1")  # to a PromptPay mobile proxy
    proxy = doc["creditor"]["proxy"]["value"]
    unknown = {("promptpay", "MOBILE", proxy): Resolution("MOBILE", proxy, False, reason_code="BE23")}
    await accept_instructions(AcceptInstructions([parsed_instruction(doc, source_ref="t:0:1")], resolutions=unknown), uow, deps)
    assert uow.instructions[("ACLBKHPPXXX", "PX-1")].reject_reason_code == "BE23"
    now = deps.clock()
    report = await dry_run(uow, deps, read_replayed, since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    # without the recorded answer the proxy would go unresolved and be admitted: it is refused again
    assert report.as_dict()["per_corridor"] == {"KH-TH": {"replayed": 1, "unchanged": 1}}
