"""The outbox relay and a paused partner (issue 11): its rows are held in memory, never sent and
never failed, while the partner is paused, and go to the partner as soon as it is resumed; other
partners' rows are not held up."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from adapters.transport import SendOutcome, SendResult
from switch.metrics import Metrics
from switch.service.handlers import Outcome, RecordSendResults
from switch.service.ports import OutboxMessage
from switch.service.relay import OutboxRelay
from tests.fakes import T0, FakeClock


class RecordingTransport:
    """A partner that takes every message (the transport's submit, as the relay calls it)."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def submit(self, body: bytes, *, message_id: str, possible_duplicate: bool = False) -> SendResult:
        self.received.append(message_id)
        return SendResult(SendOutcome.OK, 200, "", 0.001)


def _row(row_id: int, partner: str) -> OutboxMessage:
    return OutboxMessage(
        kind="partner", destination=partner, message_id=f"M{row_id}", uetrs=(f"u{row_id}",), key=None, body=b"<x/>",
        created_at=T0, id=row_id, lease_until=T0 + timedelta(seconds=45),
    )


async def _relay() -> tuple[OutboxRelay, dict[str, RecordingTransport], list[RecordSendResults], list[asyncio.Task[Any]]]:
    transports = {"promptpay": RecordingTransport(), "napas": RecordingTransport()}
    recorded: list[RecordSendResults] = []

    async def record(cmd: RecordSendResults) -> Outcome:
        recorded.append(cmd)
        return Outcome()

    relay = OutboxRelay(
        None,  # type: ignore[arg-type]  # the poller (the only store user) is not run here
        transports=transports,  # type: ignore[arg-type]
        inflight_max={"promptpay": 4, "napas": 4},
        producer=None,  # type: ignore[arg-type]
        record=record, metrics=Metrics(), clock=FakeClock(), single_process=True,
    )
    tasks = [asyncio.create_task(loop()) for name, loop in relay.tasks().items() if name != "relay-poller"]
    return relay, transports, recorded, tasks


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_paused_partners_rows_are_held_and_sent_on_resume() -> None:
    relay, transports, recorded, tasks = await _relay()
    try:
        relay.set_paused(frozenset({"promptpay"}))
        relay.handoff([_row(1, "promptpay"), _row(2, "napas")])
        await _settle()
        assert transports["promptpay"].received == [] and relay.held("promptpay") == 1
        assert transports["napas"].received == ["M2"]  # another partner is not held up
        assert all(not cmd.failures and not cmd.rejects for cmd in recorded)  # nothing failed
        relay.set_paused(frozenset())
        await _settle()
        assert transports["promptpay"].received == ["M1"] and relay.held("promptpay") == 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_held_row_claimed_again_is_held_once() -> None:
    relay, transports, _, tasks = await _relay()
    try:
        relay.set_paused(frozenset({"promptpay"}))
        relay.handoff([_row(1, "promptpay")])
        relay.handoff([_row(1, "promptpay")])  # the poller claimed it again after its lease ran out
        await _settle()
        assert relay.held("promptpay") == 1
        relay.set_paused(frozenset())
        await _settle()
        assert transports["promptpay"].received == ["M1"]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
