"""Partner trouble is not silent and not a flood (issue 11 item 4): one WARNING per partner and
kind per window, the lines held back counted in the next one; a partner coming back said once;
the handlers' partner lines (a payment past its SLA, a partner reject) carry the payment's five
fields. Time is the test's (a fake monotonic clock)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from iso20022.schemas import SchemaSet
from switch import limits
from switch.domain.payment import PaymentState
from switch.log_context import FIELDS, payment_context
from switch.log_format import configure
from switch.service.follow_up import FollowUpPayments, follow_up_payments
from switch.service.handlers import AcceptInstructions, Deps, RecordSendResults, accept_instructions, apply_partner_statuses, record_send_results
from switch.service.partner_log import PartnerProblems, Problem
from switch.service.ports import Lease
from tests.factories import sample_instruction
from tests.fakes import FakeClock, FakeUnitOfWork, deps_from_config, parsed_instruction, partner_statuses

LEASE = Lease("replica-a", limits.outbox_lease_s)


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What the switch writes, as JSON lines (the root logger as `mekong run` sets it up)."""
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    buffer = io.StringIO()
    configure("INFO", "json", buffer)
    yield buffer
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in before[0]:
        root.addHandler(h)
    root.setLevel(before[1])


def _lines(buffer: io.StringIO, logger: str = "switch.service.partner_log") -> list[dict[str, object]]:
    return [d for d in map(json.loads, buffer.getvalue().splitlines()) if d["logger"] == logger]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_one_line_per_window_and_the_next_says_how_many_were_held_back(logged: io.StringIO) -> None:
    clock = Clock()
    problems = PartnerProblems(window_s=10.0, clock=clock)
    written = [problems.problem("promptpay", Problem.UNREACHABLE, "connection refused", uetrs=["u-1"]) for _ in range(30)]
    assert written.count(True) == 1
    clock.now += 10.0
    assert problems.problem("promptpay", Problem.UNREACHABLE, "connection refused", uetrs=["u-2"])
    first, second = _lines(logged)
    assert (first["level"], first["partner"], first["uetr"], first["problem"]) == ("WARNING", "promptpay", "u-1", "unreachable")
    assert "partner promptpay unreachable: connection refused" == first["message"]
    assert second["suppressed"] == 29 and "29 more like it in the last 10 s" in str(second["message"])


def test_each_partner_and_kind_has_its_own_window(logged: io.StringIO) -> None:
    problems = PartnerProblems(window_s=10.0, clock=Clock())
    assert problems.problem("promptpay", Problem.TIMEOUT, "no answer")
    assert problems.problem("promptpay", Problem.REJECTED, "AC01")
    assert problems.problem("napas", Problem.TIMEOUT, "no answer")
    assert problems.problem("promptpay", Problem.GAVE_UP, "deadline")
    assert not problems.problem("napas", Problem.TIMEOUT, "no answer")
    assert [(d["partner"], d["problem"]) for d in _lines(logged)] == [
        ("promptpay", "timeout"), ("promptpay", "rejected"), ("napas", "timeout"), ("promptpay", "gave_up")
    ]


def test_a_partner_coming_back_is_said_once(logged: io.StringIO) -> None:
    clock = Clock()
    problems = PartnerProblems(window_s=10.0, clock=clock)
    assert not problems.ok("lapnet")  # never in trouble: nothing to say
    problems.problem("lapnet", Problem.SERVER_ERROR, "HTTP 503")
    problems.problem("lapnet", Problem.SERVER_ERROR, "HTTP 503")
    clock.now += 42.0
    assert problems.ok("lapnet")
    assert not problems.ok("lapnet")
    back = _lines(logged)[-1]
    assert (back["partner"], back["problem"]) == ("lapnet", "recovered")
    assert back["message"] == "partner lapnet answers again after 42 s of trouble (2 failed attempts)"
    # the next outage is news at once, not held back by the window of the last one
    assert problems.problem("lapnet", Problem.SERVER_ERROR, "HTTP 503")


def test_a_reject_is_no_outage_so_no_recovery_line_follows(logged: io.StringIO) -> None:
    problems = PartnerProblems(window_s=10.0, clock=Clock())
    problems.problem("unionpay", Problem.REJECTED, "payment u: AC03")
    assert not problems.in_trouble("unionpay")
    assert not problems.ok("unionpay")


def test_the_line_keeps_the_payment_fields_of_the_caller(logged: io.StringIO) -> None:
    problems = PartnerProblems(window_s=10.0, clock=Clock())
    with payment_context(uetr="u-7", instruction_id="i-7", participant="ACLBKHPPXXX", corridor="KH-TH"):
        problems.problem("promptpay", Problem.SLA_PASSED, "no final status")
    (line,) = _lines(logged)
    assert {k: line[k] for k in FIELDS} == {
        "uetr": "u-7", "instruction_id": "i-7", "participant": "ACLBKHPPXXX", "partner": "promptpay", "corridor": "KH-TH"
    }


@pytest.fixture
def deps(schemas: SchemaSet, clock: FakeClock) -> Deps:
    d = deps_from_config(schemas, clock)
    d.partner_problems = PartnerProblems(window_s=10.0, clock=Clock())
    return d


async def _submitted(uow: FakeUnitOfWork, deps: Deps) -> str:
    instruction = sample_instruction()
    await accept_instructions(AcceptInstructions([parsed_instruction(instruction, source_ref="r:0:1")]), uow, deps)
    (uetr,) = uow.payments
    (row,) = uow.state.outbox_messages("partner")
    await record_send_results([RecordSendResults([row.id or 0], submitted_uetrs=row.uetrs)], uow, deps)
    return uetr


async def test_a_payment_past_its_sla_is_logged_with_its_five_fields(deps: Deps, clock: FakeClock, logged: io.StringIO) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _submitted(uow, deps)
    clock.advance(deps.mappings["promptpay"].profile.sla_s)
    out = await follow_up_payments(FollowUpPayments(), uow, deps)
    assert out.counts["timed_out"] == 1
    (line,) = _lines(logged)
    p = uow.payments[uetr]
    assert {k: line[k] for k in FIELDS} == {
        "uetr": uetr, "instruction_id": p.instruction_id, "participant": p.participant, "partner": "promptpay", "corridor": p.corridor
    }
    assert line["problem"] == "sla_passed" and "AB06" in str(line["message"])


async def test_a_partner_reject_is_logged_with_its_reason_and_the_payment(deps: Deps, logged: io.StringIO) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _submitted(uow, deps)
    await apply_partner_statuses([partner_statuses("promptpay", "m-1", (uetr, PaymentState.REJECTED, "AC01"))], uow, deps)
    assert uow.payments[uetr].state is PaymentState.REJECTED
    (line,) = _lines(logged)
    assert (line["uetr"], line["partner"], line["problem"]) == (uetr, "promptpay", "rejected")
    assert "AC01" in str(line["message"]) and line["corridor"] == uow.payments[uetr].corridor


async def test_the_follow_up_timer_names_the_payment_it_resends_at_debug(deps: Deps, clock: FakeClock, logged: io.StringIO) -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    uow = FakeUnitOfWork(lease=LEASE)
    uetr = await _submitted(uow, deps)
    clock.advance(deps.mappings["promptpay"].profile.resend_after_s)
    out = await follow_up_payments(FollowUpPayments(), uow, deps)
    assert out.counts["resent"] == 1
    (line,) = _lines(logged, "switch.service.follow_up")
    p = uow.payments[uetr]
    assert line["level"] == "DEBUG" and {k: line[k] for k in FIELDS} == {
        "uetr": uetr, "instruction_id": p.instruction_id, "participant": p.participant, "partner": "promptpay", "corridor": p.corridor
    }
