"""/readyz follows the broker (issue 11 item 4): ready with the broker up, not ready (503, kafka
false) while it is stopped, ready again once it is back, on the real Tansu broker; the broker is
asked by a periodic probe whose result /readyz reads (no broker round trip per call); the lost
and regained broker are each logged once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from switch import limits
from switch.broker import TansuBroker, restartable_port
from switch.store.sql_store import Store
from tests.integration.harness import Running, running_switch

change_s_max = 30.0  # the probe runs every limits.kafka_probe_interval_s, bounded by its timeout


@pytest.fixture
def own_broker() -> Iterator[TansuBroker]:
    """A broker of this test's own (the session's is shared), on a port it can come back on."""
    b = TansuBroker(port=restartable_port())
    b.start()
    yield b
    b.stop()


async def _readyz(running: Running) -> tuple[int, dict[str, Any]]:
    async with running.ops_session() as http:
        async with http.get(f"{running.url}/readyz") as resp:
            return resp.status, await resp.json()


async def _until(running: Running, ready: bool) -> dict[str, Any]:
    deadline = time.monotonic() + change_s_max
    while time.monotonic() < deadline:
        status, body = await _readyz(running)
        if body["ready"] is ready:
            assert status == (200 if ready else 503)
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"/readyz did not become ready={ready} within {change_s_max:g} s: {body}")


async def test_readyz_is_false_while_the_broker_is_stopped_and_true_again_when_it_is_back(
    own_broker: TansuBroker, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="switch.entrypoints.main")
    async with running_switch(own_broker, store) as running:
        up = await _until(running, True)
        assert (up["kafka"], up["database"]) == (True, True)
        own_broker.stop()
        down = await _until(running, False)
        assert (down["kafka"], down["database"]) == (False, True)  # the broker, not the database
        own_broker.start()  # the same host:port
        back = await _until(running, True)
        assert back["kafka"] is True
    lost = [r for r in caplog.records if "does not answer" in r.getMessage() and own_broker.bootstrap_servers in r.getMessage()]
    regained = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert (len(lost), len(regained)) == (1, 1)


async def test_readyz_reads_the_cached_probe_not_the_broker(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as running:
        await _until(running, True)
        running.switch.broker_reachable = False  # what the probe would write after a failed look
        status, body = await _readyz(running)
        assert (status, body["kafka"]) == (503, False)  # answered from the cache, the broker is fine
        deadline = time.monotonic() + limits.kafka_probe_interval_s + limits.kafka_probe_timeout_s + change_s_max
        while not running.switch.broker_reachable and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert running.switch.broker_reachable  # the next probe found the broker answering
