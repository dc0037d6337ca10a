"""Issue 11 on the fakes: accept_instructions refuses by corridor rule (an operator's disable or
pause, hours, tiers per payment and per day) with its reason code and counts it; the switch
handlers store the operator's change, audited, and refuse what they cannot do."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from switch.config import SwitchConfig
from switch.domain.corridor_rules import ControlKind
from switch.service.bus import HANDLERS
from switch.service.corridors import SwitchCorridor, SwitchPartner, switch_corridor, switch_partner
from switch.service.handlers import AcceptInstructions, Deps, Outcome, accept_instructions
from switch.service.ports import UsageKey
from tests.factories import sample_instruction, sample_partner_instruction
from tests.fakes import FakeClock, FakeStore, FakeUnitOfWork, parsed_instruction, status_events

KEY = ("ACLBKHPPXXX", "INS-0001")
DEBTOR = "sok_dara@aclb"


async def _admit(uow: FakeUnitOfWork, deps: Deps, *docs: dict[str, Any]) -> Outcome:
    items = [parsed_instruction(d, source_ref=f"mekong.instructions:0:{i}") for i, d in enumerate(docs)]
    return await accept_instructions(AcceptInstructions(items), uow, deps)


def _ins(n: int, **changes: Any) -> dict[str, Any]:
    return sample_instruction(instruction_id=f"INS-{n:04d}", **changes)


def _with_corridor(deps: Deps, corridor_id: str, **changes: Any) -> None:
    """deps.config with one corridor changed (as a reload would apply it)."""
    cfg = deps.config
    fields = {name: getattr(cfg, name) for name in type(cfg).model_fields}
    fields["corridors"] = tuple(c.model_copy(update=changes) if c.id == corridor_id else c for c in cfg.corridors)
    if "holidays" in changes:
        fields["corridor_holidays"] = {corridor_id: changes.pop("_days", frozenset())}
    deps.config = SwitchConfig.model_validate(fields)


def _refusals(deps: Deps, corridor: str, reason: str) -> float:
    return deps.metrics.registry.get_sample_value("switch_corridor_refusals_total", {"corridor": corridor, "reason": reason}) or 0.0


def test_the_switch_commands_have_their_registry_lines() -> None:
    assert HANDLERS[SwitchCorridor] is switch_corridor and HANDLERS[SwitchPartner] is switch_partner


async def test_a_disabled_corridor_refuses_new_instructions_with_ag01_and_counts_it(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await switch_corridor(SwitchCorridor("KH-TH", False, "alice", "ITMX maintenance"), uow, deps)
    out = await _admit(uow, deps, _ins(1))
    assert out.admissions[("ACLBKHPPXXX", "INS-0001")] == (None, "AG01", "corridor KH-TH is disabled: ITMX maintenance")
    assert not uow.payments and not out.partner_outbox
    assert _refusals(deps, "KH-TH", "disabled") == 1
    (event,) = status_events(uow.state, deps)
    assert (event["state"], event["reason_code"]) == ("REJECTED", "AG01")


async def test_a_disabled_corridor_leaves_other_corridors_and_payments_in_flight_alone(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, _ins(1))  # admitted before the disable
    (before,) = uow.payments.values()
    await switch_corridor(SwitchCorridor("KH-TH", False, "alice", "maintenance"), uow, deps)
    out = await _admit(uow, deps, sample_partner_instruction("lapnet", instruction_id="INS-0002"))
    assert out.counts.get("admitted") == 1
    assert uow.payments[before.uetr] == before  # untouched: same state, same version


async def test_an_enabled_corridor_admits_again(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await switch_corridor(SwitchCorridor("KH-TH", False, "alice", "maintenance"), uow, deps)
    await switch_corridor(SwitchCorridor("KH-TH", True, "bob", "done"), uow, deps)
    out = await _admit(uow, deps, _ins(1))
    assert out.counts == {"admitted": 1}
    control = uow.state.controls[(ControlKind.CORRIDOR, "KH-TH")]
    assert (control.off, control.changed_by, control.reason, control.version) == (False, "bob", "done", 2)


async def test_a_paused_partner_refuses_its_corridors_with_ab08(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await switch_partner(SwitchPartner("promptpay", True, "alice", "ITMX outage"), uow, deps)
    out = await _admit(uow, deps, _ins(1))
    code, detail = out.admissions[KEY][1:]
    assert code == "AB08" and "partner promptpay is paused: ITMX outage" in (detail or "")
    assert _refusals(deps, "KH-TH", "paused") == 1


async def test_each_change_is_audited_with_who_what_and_why(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await switch_corridor(SwitchCorridor("KH-VN", False, "alice", "NAPAS cut-over"), uow, deps)
    await switch_partner(SwitchPartner("napas", True, "alice", "NAPAS cut-over"), uow, deps)
    await switch_partner(SwitchPartner("napas", False, "bob", ""), uow, deps)
    assert [(e.actor, e.action, e.subject) for e in uow.state.audit] == [
        ("operator alice", "corridor.disabled", "KH-VN"),
        ("operator alice", "partner.paused", "napas"),
        ("operator bob", "partner.resumed", "napas"),
    ]
    assert uow.state.audit[0].detail["reason"] == "NAPAS cut-over"


async def test_an_unknown_corridor_or_partner_is_refused_and_nothing_is_stored(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    out = await switch_corridor(SwitchCorridor("KH-XX", False, "alice", "x"), uow, deps)
    out2 = await switch_partner(SwitchPartner("swift", True, "alice", "x"), uow, deps)
    assert out.refusals[0][0] == "NOTFOUND" and out2.refusals[0][0] == "NOTFOUND"
    assert not uow.state.controls and not uow.state.audit


async def test_a_corridor_off_in_the_configuration_cannot_be_enabled_at_run_time(deps: Deps) -> None:
    _with_corridor(deps, "KH-VN", enabled=False)
    uow = FakeUnitOfWork()
    out = await switch_corridor(SwitchCorridor("KH-VN", True, "alice", "x"), uow, deps)
    assert out.refusals and out.refusals[0][0] == "CONFIG"
    assert not uow.state.controls


async def test_two_operators_racing_on_one_corridor_lose_nothing(deps: Deps) -> None:
    """The second writer read the row before the first committed: its write is refused as a
    concurrent update (the bus runs it again, then on the new version)."""
    store = FakeStore()
    async with store.unit_of_work() as uow:
        await switch_corridor(SwitchCorridor("KH-TH", False, "alice", "a"), uow, deps)
    async with store.unit_of_work() as uow:
        stale = (await uow.controls_get())[0]
    async with store.unit_of_work() as uow:
        await switch_corridor(SwitchCorridor("KH-TH", True, "bob", "b"), uow, deps)
    from switch.domain.errors import ConcurrentUpdate

    async with store.unit_of_work() as uow:
        try:
            await uow.controls_put(replace(stale, changed_by="carol", version=stale.version + 1), stale.version)
        except ConcurrentUpdate:
            pass
        else:
            raise AssertionError("a stale version must not overwrite the newer change")
    assert store.state.controls[(ControlKind.CORRIDOR, "KH-TH")].changed_by == "bob"


async def test_outside_the_corridors_hours_is_tm01_closed(deps: Deps, clock: FakeClock) -> None:
    # T0 is Saturday 28 Nov 2026 08:00 in Phnom Penh; the corridor opens on weekdays only
    _with_corridor(deps, "KH-TH", timezone="Asia/Bangkok", hours={"mon": ("08:00-17:00",), "fri": ("08:00-17:00",)})
    uow = FakeUnitOfWork()
    out = await _admit(uow, deps, _ins(1))
    code, detail = out.admissions[("ACLBKHPPXXX", "INS-0001")][1:]
    assert code == "TM01" and "sat 08:00 Asia/Bangkok (closed all day)" in (detail or "")
    assert _refusals(deps, "KH-TH", "closed") == 1
    clock.advance(2 * 86400)  # Monday 08:00 in Bangkok
    assert (await _admit(uow, deps, _ins(2))).counts == {"admitted": 1}


async def test_on_a_holiday_of_the_corridor_is_tm01_holiday(deps: Deps) -> None:
    _with_corridor(deps, "KH-TH", timezone="Asia/Bangkok", holidays="calendars/th.toml", _days=frozenset({date(2026, 11, 28)}))
    uow = FakeUnitOfWork()
    out = await _admit(uow, deps, _ins(1))
    assert out.admissions[("ACLBKHPPXXX", "INS-0001")][1] == "TM01"
    assert _refusals(deps, "KH-TH", "holiday") == 1


async def test_a_payment_over_its_tiers_maximum_is_am02(deps: Deps) -> None:
    # basic: KHR 2,000,000 per payment and per day
    out = await _admit(FakeUnitOfWork(), deps, _ins(1, debtor_tier="basic", amount={"value": "2000001", "currency": "KHR"}))
    assert out.admissions[("ACLBKHPPXXX", "INS-0001")][1] == "AM02"
    assert _refusals(deps, "KH-TH", "tx_limit") == 1


async def test_the_daily_maximum_is_exact_across_batches_and_within_one(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    first = await _admit(uow, deps, _ins(1, debtor_tier="basic", amount={"value": "1500000", "currency": "KHR"}))
    # the same batch: 400,000 fits (1.9M), the next 100,001 does not, 100,000 does (2.0M exactly)
    second = await _admit(
        uow, deps,
        _ins(2, debtor_tier="basic", amount={"value": "400000", "currency": "KHR"}),
        _ins(3, debtor_tier="basic", amount={"value": "100001", "currency": "KHR"}),
        _ins(4, debtor_tier="basic", amount={"value": "100000", "currency": "KHR"}),
    )
    assert first.counts == {"admitted": 1}
    assert [second.admissions[("ACLBKHPPXXX", f"INS-{n:04d}")][1] for n in (2, 3, 4)] == [None, "AM14", None]
    key = UsageKey("KH-TH", DEBTOR, date(2026, 11, 28), "KHR")
    assert uow.state.usage[key] == (200_000_000, 3)  # KHR 2,000,000.00 in three payments
    assert _refusals(deps, "KH-TH", "daily_limit") == 1


async def test_the_day_starts_again_at_midnight_in_phnom_penh(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    await _admit(uow, deps, _ins(1, debtor_tier="basic", amount={"value": "2000000", "currency": "KHR"}))
    assert (await _admit(uow, deps, _ins(2, debtor_tier="basic", amount={"value": "10000", "currency": "KHR"}))).admissions[
        ("ACLBKHPPXXX", "INS-0002")][1] == "AM14"
    clock.advance(16 * 3600)  # 00:00 on 29 Nov in Phnom Penh
    assert (await _admit(uow, deps, _ins(3, debtor_tier="basic", amount={"value": "10000", "currency": "KHR"}))).counts == {"admitted": 1}


async def test_the_corridors_default_tier_applies_when_the_instruction_names_none(deps: Deps) -> None:
    _with_corridor(deps, "KH-TH", default_tier="basic")
    out = await _admit(FakeUnitOfWork(), deps, _ins(1, amount={"value": "2500000", "currency": "KHR"}))
    assert out.admissions[("ACLBKHPPXXX", "INS-0001")][1] == "AM02"


async def test_the_shipped_default_tier_adds_no_daily_limit(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    out = await _admit(uow, deps, *[_ins(n, amount={"value": "5000000", "currency": "KHR"}) for n in range(1, 12)])
    assert out.counts == {"admitted": 11}  # KHR 55M in a day: the participant's KYC check, not ours
    assert not uow.state.usage  # and nothing to count on the hot path


async def test_an_unknown_tier_is_refused_ff01(deps: Deps) -> None:
    out = await _admit(FakeUnitOfWork(), deps, _ins(1, debtor_tier="platinum"))
    code, detail = out.admissions[("ACLBKHPPXXX", "INS-0001")][1:]
    assert code == "FF01" and "platinum" in (detail or "")


async def test_a_replayed_instruction_is_not_counted_twice_in_the_day(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    doc = _ins(1, debtor_tier="basic", amount={"value": "1500000", "currency": "KHR"})
    await _admit(uow, deps, doc)
    await accept_instructions(AcceptInstructions([parsed_instruction(doc, source_ref="mekong.instructions:0:99")]), uow, deps)
    assert uow.state.usage[UsageKey("KH-TH", DEBTOR, date(2026, 11, 28), "KHR")] == (150_000_000, 1)


def test_an_instruction_without_a_tier_keeps_its_fingerprint() -> None:
    """Instructions stored before debtor_tier existed replay, never conflict."""
    from switch.contracts import InstructionV1

    doc = sample_instruction(debtor={"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "KHR"})  # no issue 12 fields
    plain = InstructionV1.model_validate(doc)
    # the v1 before issue 11 added either field (and before issue 12 added the parties' data)
    before = plain.model_dump_json(exclude={"debtor_tier": True, "quote_id": True, "creditor": {"address": True},
                                            "debtor": {"address": True, "identification": True}})
    assert plain.fingerprint() == __import__("hashlib").sha256(before.encode()).hexdigest()
    assert InstructionV1.model_validate({**doc, "debtor_tier": "basic"}).fingerprint() != plain.fingerprint()


def test_a_dry_run_counts_each_debtors_day_from_zero_without_a_database(deps: Deps) -> None:
    """switch/service/dry_run.py replays with Gates it keeps itself (nothing claimed)."""
    from switch.service.handlers import Admitted, Gates, admit_instruction

    gates = Gates()
    first = admit_instruction(
        parsed_instruction(_ins(1, debtor_tier="basic", amount={"value": "1500000", "currency": "KHR"}), source_ref="r:0:1").instruction,
        deps, now=deps.clock(), gates=gates,
    )
    assert isinstance(first, Admitted) and first.usage_key is not None
    gates.usage[first.usage_key] = first.payment.source.amount_minor
    second = admit_instruction(
        parsed_instruction(_ins(2, debtor_tier="basic", amount={"value": "600000", "currency": "KHR"}), source_ref="r:0:2").instruction,
        deps, now=deps.clock(), gates=gates,
    )
    assert not isinstance(second, Admitted) and second.reason_code == "AM14"
