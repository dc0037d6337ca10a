"""Screening holds (issue 12, switch/service/holds.py) on the fake unit of work, with the verdicts
a FakeScreener gives the edges' helpers (switch/service/screening.py): an outbound payment held
(no pacs.008, the participant told HELD without the entry), released (its pacs.008 queued,
QUOTED), rejected RR04, expired at its deadline; decisions on a payment not held refused; an
inbound payment held, then released (published) or rejected (pacs.002 RJCT RR04)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from adapters.inbound import answer_message_id
from switch import limits
from switch.domain.errors import ConcurrentUpdate
from switch.domain.payment import Direction, PaymentState
from switch.domain.screening import Outcome as ScreeningOutcome
from switch.domain.screening import Role
from switch.service.follow_up import FollowUpPayments, follow_up_payments
from switch.service.handlers import HELD_REASON, AcceptInstructions, Deps, accept_instructions
from switch.service.holds import RejectHeld, ReleaseHeld, list_holds, reject_held_cmd, release_held, show_hold
from switch.service.inbound import AcceptInbound, accept_inbound
from switch.service.ports import Lease
from switch.service.screening import instruction_subjects, screen_instructions, screen_transfers, transfer_subjects
from tests.factories import sample_instruction
from tests.fakes import INBOUND_TRANSFER, FakeClock, FakeScreener, FakeUnitOfWork, parsed_instruction, status_events

S = PaymentState
LEASE = Lease("replica-a", limits.outbox_lease_s)
CREDITOR = "Somchai Jaidee"  # the sample instruction's creditor


async def _admit(uow: FakeUnitOfWork, deps: Deps, screener: FakeScreener, n: int = 1) -> list[str]:
    items = [parsed_instruction(sample_instruction(instruction_id=f"I{i}"), source_ref=f"r:0:{i}") for i in range(n)]
    screenings = await screen_instructions(screener, items)
    await accept_instructions(AcceptInstructions(items, screenings=screenings), uow, deps)
    return sorted(uow.payments)


async def _held(deps: Deps, **hits: float) -> tuple[FakeUnitOfWork, str]:
    uow = FakeUnitOfWork(lease=LEASE)
    (uetr,) = await _admit(uow, deps, FakeScreener({CREDITOR: 0.93}))
    return uow, uetr


async def test_a_hit_holds_the_payment_with_no_partner_message_and_tells_the_participant_only_that_it_is_held(deps: Deps) -> None:
    uow, uetr = await _held(deps)
    p = uow.payments[uetr]
    assert p.state is S.HELD and p.message_id is not None  # fixed now, sent only once released
    assert p.follow_up_at == deps.clock() + __import__("datetime").timedelta(seconds=deps.config.screening.hold_deadline_s)
    assert uow.state.outbox_messages("partner") == []
    (event,) = status_events(uow.state, deps)
    assert (event["state"], event["final"], event["reason"]) == ("HELD", False, HELD_REASON)
    body = json.dumps(event)
    assert "E-Somchai" not in body and "0.93" not in body  # tipping-off: neither the entry nor the score
    assert [h.to_state for h in uow.history] == [S.RECEIVED, S.HELD]
    assert "score 0.93" in (uow.history[-1].detail or "") and "E-Somchai Jaidee" in (uow.history[-1].detail or "")
    hold = uow.state.holds[uetr]
    assert (hold.outcome, hold.score, hold.entry_id, hold.role, hold.decision, hold.direction) == (
        "hit", 0.93, "E-Somchai Jaidee", "creditor", None, "outbound"
    )
    assert hold.deadline_at == p.follow_up_at and hold.list_version == "fake-1"
    assert deps.metrics.screening_holds.labels("outbound", "hit")._value.get() == 1
    assert len(uow.instructions) == 1 and next(iter(uow.instructions.values())).uetr == uetr  # its id is used up


async def test_a_clear_verdict_admits_as_before_and_an_unavailable_screening_holds(deps: Deps) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    (uetr,) = await _admit(uow, deps, FakeScreener({"someone else": 0.99}))
    assert uow.payments[uetr].state is S.QUOTED and len(uow.state.outbox_messages("partner")) == 1
    assert uow.state.holds == {}
    down = FakeUnitOfWork(lease=LEASE)
    (held,) = await _admit(down, deps, FakeScreener(unavailable=True))
    assert down.payments[held].state is S.HELD
    assert down.state.holds[held].outcome == "unavailable"
    assert (down.history[-1].detail or "").startswith("screening unavailable: list not loaded")


async def test_the_edges_screen_debtor_and_creditor_and_fail_closed_when_the_screener_raises(deps: Deps) -> None:
    items = [parsed_instruction(sample_instruction(instruction_id="I0"), source_ref="r:0:0")]
    subjects = instruction_subjects(items)
    assert [(s.key, s.role, s.name) for s in subjects] == [
        (("ACLBKHPPXXX", "I0"), Role.DEBTOR, "Sok Dara"), (("ACLBKHPPXXX", "I0"), Role.CREDITOR, CREDITOR)
    ]
    inbound = transfer_subjects("promptpay", [INBOUND_TRANSFER])
    assert [(s.key, s.role) for s in inbound] == [(("promptpay", INBOUND_TRANSFER.uetr), Role.DEBTOR)] * 1 + [
        (("promptpay", INBOUND_TRANSFER.uetr), Role.CREDITOR)
    ]

    class Broken(FakeScreener):
        async def screen(self, subjects):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug")

    verdicts = await screen_instructions(Broken(), items)
    assert verdicts[("ACLBKHPPXXX", "I0")].outcome is ScreeningOutcome.UNAVAILABLE
    assert await screen_instructions(None, items) == {}  # screening off


async def test_release_queues_the_pacs008_now_moves_it_quoted_and_is_audited(deps: Deps, clock: FakeClock) -> None:
    uow, uetr = await _held(deps)
    clock.advance(600)
    out = await release_held(ReleaseHeld(uetr, "alice", "false positive: other birth date"), uow, deps)
    assert out.refusals == []
    p = uow.payments[uetr]
    assert p.state is S.QUOTED and p.message_id is not None
    (msg,) = out.partner_outbox
    assert msg.uetrs == (uetr,) and msg.message_id == p.message_id and msg.destination == p.partner
    assert p.follow_up_at is not None and p.follow_up_at > clock()
    assert uow.history[-1].from_state is S.HELD and "released by operator alice" in (uow.history[-1].detail or "")
    hold = uow.state.holds[uetr]
    assert (hold.decision, hold.decided_by, hold.decided_at, hold.version) == ("released", "alice", clock(), 2)
    (entry,) = uow.state.audit
    assert (entry.actor, entry.action, entry.subject) == ("operator alice", "screening.release", uetr)
    assert deps.metrics.screening_decisions.labels("released")._value.get() == 1
    assert status_events(uow.state, deps)[-1]["state"] == "QUOTED"


async def test_reject_is_rr04_final_and_never_tells_the_participant_the_note(deps: Deps) -> None:
    uow, uetr = await _held(deps)
    out = await reject_held_cmd(RejectHeld(uetr, "bob", "confirmed match with OFAC entry"), uow, deps)
    assert out.refusals == [] and out.partner_outbox == []
    p = uow.payments[uetr]
    assert (p.state, p.reason_code, p.follow_up_at) == (S.REJECTED, "RR04", None)
    (event,) = [json.loads(m.body) for m in out.status_outbox]
    assert (event["state"], event["final"], event["reason_code"]) == ("REJECTED", True, "RR04")
    assert "OFAC" not in json.dumps(event)
    assert uow.state.holds[uetr].decision == "rejected"
    assert uow.state.audit[-1].action == "screening.reject"
    assert uow.state.outbox_messages("partner") == []  # nothing ever went to the partner


async def test_a_decision_on_a_payment_not_held_is_refused_and_changes_nothing(deps: Deps) -> None:
    uow, uetr = await _held(deps)
    await release_held(ReleaseHeld(uetr, "alice", "ok"), uow, deps)
    writes = uow.writes
    again = await reject_held_cmd(RejectHeld(uetr, "bob", "too late"), uow, deps)
    assert again.refusals and again.refusals[0][0] == "AG01"
    assert "already released by alice" in again.refusals[0][1]
    assert uow.writes == writes and uow.payments[uetr].state is S.QUOTED
    unknown = await release_held(ReleaseHeld("00000000-0000-4000-8000-000000000000", "alice", "x"), uow, deps)
    assert unknown.refusals[0][0] == "MS03"
    clear = FakeUnitOfWork(lease=LEASE)
    (plain,) = await _admit(clear, deps, FakeScreener())
    never = await release_held(ReleaseHeld(plain, "alice", "x"), clear, deps)
    assert "never held" in never.refusals[0][1]


async def test_two_decisions_on_the_same_version_conflict(deps: Deps) -> None:
    uow, uetr = await _held(deps)
    stale = uow.state.holds[uetr]
    await release_held(ReleaseHeld(uetr, "alice", "ok"), uow, deps)
    with pytest.raises(ConcurrentUpdate):  # a second writer that read the hold before the first decided
        await uow.holds_update([(stale.version, replace(stale, decision="rejected", version=stale.version + 1))])


async def test_a_hold_nobody_decides_is_rejected_rr04_at_its_deadline_by_the_system(deps: Deps, clock: FakeClock) -> None:
    uow, uetr = await _held(deps)
    clock.advance(60)
    early = await follow_up_payments(FollowUpPayments(), uow, deps)
    assert early.counts.get("holds_expired") is None and uow.payments[uetr].state is S.HELD
    clock.advance(deps.config.screening.hold_deadline_s)
    out = await follow_up_payments(FollowUpPayments(), uow, deps)
    assert out.counts["holds_expired"] == 1
    p = uow.payments[uetr]
    assert (p.state, p.reason_code) == (S.REJECTED, "RR04")
    assert f"no decision within {deps.config.screening.hold_deadline_s:g} s" in (uow.history[-1].detail or "")
    hold = uow.state.holds[uetr]
    assert (hold.decision, hold.decided_by) == ("expired", "system")
    assert (uow.state.audit[-1].actor, uow.state.audit[-1].action) == ("system", "screening.expire")
    assert status_events(uow.state, deps)[-1]["reason_code"] == "RR04"
    assert deps.metrics.screening_decisions.labels("expired")._value.get() == 1


async def _inbound_held(deps: Deps) -> FakeUnitOfWork:
    uow = FakeUnitOfWork(lease=LEASE)
    screenings = await screen_transfers(FakeScreener({INBOUND_TRANSFER.debtor_name: 0.88}), "promptpay", [INBOUND_TRANSFER])
    (out,) = await accept_inbound(
        [AcceptInbound("promptpay", "M1", "pacs.008.001.13", b"m1", (INBOUND_TRANSFER,), screenings)], uow, deps
    )
    assert out.counts == {"held": 1}
    return uow


async def test_an_inbound_hold_publishes_nothing_and_answers_nothing_until_released(deps: Deps, clock: FakeClock) -> None:
    uow = await _inbound_held(deps)
    uetr = INBOUND_TRANSFER.uetr
    p = uow.payments[uetr]
    assert p.state is S.HELD and p.direction is Direction.INBOUND
    assert uow.state.outbox_messages() == []  # neither the participant nor the partner hears of it
    assert uow.state.holds[uetr].role == "debtor"
    clock.advance(30)
    out = await release_held(ReleaseHeld(uetr, "alice", "cleared"), uow, deps)
    assert out.refusals == []
    p = uow.payments[uetr]
    assert p.state is S.SUBMITTED
    assert [h.to_state for h in uow.history][-2:] == [S.QUOTED, S.SUBMITTED]
    (published,) = out.status_outbox
    assert published.destination == deps.config.kafka.inbound_topic
    route = deps.config.inbound_route("promptpay")
    assert route is not None
    assert json.loads(published.body)["reply_by"].startswith(
        (clock() + __import__("datetime").timedelta(seconds=route.confirm_timeout_s)).strftime("%Y-%m-%dT%H:%M:%S")
    )


async def test_an_inbound_hold_rejected_answers_the_partner_rjct_rr04(deps: Deps) -> None:
    uow = await _inbound_held(deps)
    uetr = INBOUND_TRANSFER.uetr
    out = await reject_held_cmd(RejectHeld(uetr, "bob", "true match"), uow, deps)
    assert out.refusals == []
    (answer,) = out.partner_outbox
    assert answer.message_id == answer_message_id(uetr) and answer.destination == "promptpay"
    assert b"<TxSts>RJCT</TxSts>" in answer.body and b"<Cd>RR04</Cd>" in answer.body
    assert b"true match" not in answer.body
    assert uow.payments[uetr].state is S.REJECTED


async def test_the_holds_are_listed_open_first_and_shown(deps: Deps) -> None:
    uow, uetr = await _held(deps)
    (listed,) = await list_holds(uow, open_only=True, limit=10)
    assert listed.hold.uetr == uetr and listed.payment is not None and listed.payment.state is S.HELD
    await reject_held_cmd(RejectHeld(uetr, "bob", "match"), uow, deps)
    assert await list_holds(uow, open_only=True, limit=10) == []
    (closed,) = await list_holds(uow, open_only=False, limit=10)
    assert closed.hold.decision == "rejected"
    shown = await show_hold(uow, uetr)
    assert shown is not None and shown.payment is not None and shown.payment.reason_code == "RR04"
    assert await uow.holds_open_count() == 0


async def test_a_released_payment_counts_its_sla_from_the_release_not_from_the_hold(deps: Deps, clock: FakeClock) -> None:
    uow, uetr = await _held(deps)
    clock.advance(3600)  # held an hour: far past the partner's SLA counted from admission
    await release_held(ReleaseHeld(uetr, "alice", "cleared"), uow, deps)
    profile = deps.mappings[uow.payments[uetr].partner].profile
    assert profile.sla_s < 3600
    clock.advance(min(profile.resend_after_s, profile.exceptions.enquire_after_s) + 0.001)
    await follow_up_payments(FollowUpPayments(), uow, deps)
    assert uow.payments[uetr].state is S.QUOTED  # not TIMED_OUT at its first look
    clock.advance(profile.sla_s + limits.follow_up_interval_s_max)
    await follow_up_payments(FollowUpPayments(), uow, deps)
    assert uow.payments[uetr].state is S.TIMED_OUT  # past the SLA counted from the release

