"""The real MessageBus on the fake store: a handler that lost a race (a version check) is run
again and its outcome delivered once; any other error propagates and leaves nothing written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from iso20022.schemas import SchemaSet
from switch import limits
from switch.domain.errors import ConcurrentUpdate
from switch.domain.payment import PaymentState
from switch.metrics import Metrics
from switch.service.bus import MessageBus
from switch.service.follow_up import FollowUpPayments
from switch.service.handlers import AcceptInstructions, Deps, Outcome, RecordSendResults
from tests.factories import sample_instruction
from tests.fakes import (
    FakeClock,
    FakeStore,
    SimulatedCrash,
    deps_from_config,
    parsed_instruction,
    partner_statuses,
    status_events,
)

S = PaymentState


class Committed:
    """The bus's on_commit: the outcomes handed to the relay, in order."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def __call__(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


@pytest.fixture
async def running(deps: Deps) -> AsyncIterator[tuple[MessageBus, FakeStore, Committed]]:
    """A bus on a fresh fake store, its group-commit loops running."""
    store, committed = FakeStore(), Committed()
    bus = MessageBus(store, deps, on_commit=committed, metrics=Metrics())  # type: ignore[arg-type]
    tasks = [asyncio.create_task(run()) for run in bus.tasks().values()]
    yield bus, store, committed
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _submitted(bus: MessageBus, store: FakeStore) -> str:
    await bus.handle(AcceptInstructions([parsed_instruction(sample_instruction(), source_ref="r:0:1")]))
    (uetr,) = store.state.payments
    (row,) = store.state.outbox_messages("partner")
    await bus.handle(RecordSendResults([row.id or 0], submitted_uetrs=row.uetrs))
    return uetr


def _retries(bus: MessageBus, name: str) -> float:
    return bus._metrics.uow_retries.labels(name)._value.get()  # type: ignore[attr-defined, no-any-return]


async def test_a_grouped_handler_that_lost_a_race_is_run_again_and_its_outcome_delivered_once(
    running: tuple[MessageBus, FakeStore, Committed], deps: Deps
) -> None:
    bus, store, committed = running
    uetr = await _submitted(bus, store)
    before = len(committed.outcomes)
    store.race_on(uetr)
    outcome = await bus.handle(partner_statuses("promptpay", "S1", (uetr, S.COMPLETED, None)))
    assert outcome.counts == {"applied": 1}
    assert committed.outcomes[before:] == [outcome]
    assert store.rollbacks == 1
    assert _retries(bus, "ApplyPartnerStatuses") == 1
    assert store.state.payments[uetr].state is S.COMPLETED
    assert [e["state"] for e in status_events(store.state, deps)] == ["COMPLETED"]
    assert list(store.state.inbound) == [("promptpay", "S1")]


async def test_a_handler_that_lost_a_race_in_its_own_transaction_is_run_again(
    running: tuple[MessageBus, FakeStore, Committed], deps: Deps, clock: FakeClock
) -> None:
    bus, store, committed = running
    uetr = await _submitted(bus, store)
    before = len(committed.outcomes)
    clock.advance(deps.mappings["promptpay"].profile.sla_s)
    store.race_on(uetr)
    outcome = await bus.handle(FollowUpPayments())
    assert outcome.counts.get("timed_out") == 1
    assert committed.outcomes[before:] == [outcome]
    assert store.rollbacks == 1
    assert [e["state"] for e in status_events(store.state, deps)] == ["TIMED_OUT"]


async def test_a_race_lost_on_every_attempt_propagates_after_the_bounded_attempts(
    running: tuple[MessageBus, FakeStore, Committed], deps: Deps, clock: FakeClock
) -> None:
    bus, store, committed = running
    uetr = await _submitted(bus, store)
    before, state = len(committed.outcomes), store.state.copy()
    clock.advance(deps.mappings["promptpay"].profile.sla_s)
    store.race_on(uetr, times=limits.uow_attempts_max)
    with pytest.raises(ConcurrentUpdate):
        await bus.handle(FollowUpPayments())
    assert store.rollbacks == limits.uow_attempts_max
    assert committed.outcomes[before:] == []
    assert store.state.payments[uetr].state == state.payments[uetr].state


async def test_a_non_retriable_error_propagates_at_once_and_leaves_nothing_written(
    running: tuple[MessageBus, FakeStore, Committed]
) -> None:
    bus, store, committed = running
    store.crash_next_transaction(at_write=2)  # after the idempotency keys, before the payments
    with pytest.raises(SimulatedCrash):
        await bus.handle(AcceptInstructions([parsed_instruction(sample_instruction(), source_ref="r:0:1")]))
    assert (store.commits, store.rollbacks) == (0, 1)
    assert store.state.instructions == {} and store.state.payments == {} and store.state.outbox == {}
    assert committed.outcomes == []


async def test_a_non_retriable_error_in_a_group_reaches_its_caller(running: tuple[MessageBus, FakeStore, Committed]) -> None:
    bus, store, committed = running
    uetr = await _submitted(bus, store)
    before = store.state.copy()
    store.crash_next_transaction(at_write=1)
    with pytest.raises(SimulatedCrash):
        await bus.handle(partner_statuses("promptpay", "S1", (uetr, S.COMPLETED, None)))
    assert store.state.payments == before.payments
    assert store.state.inbound == {}
