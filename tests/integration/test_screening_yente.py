"""The yente client (issue 12) against the yente-compatible simulator over real HTTP, and
against servers that fail: every failure is a held payment (UNAVAILABLE), never an exception."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from adapters.simulator_screening import ScreeningSimulator
from switch.domain.screening import Outcome, Role, Subject, SubjectKind
from switch.screening.yente import YenteScreener

DEMO_LIST = Path(__file__).resolve().parents[2] / "config" / "screening" / "demo-list.ftm.json"


def _client(url: str, timeout_s: float = 2.0) -> YenteScreener:
    return YenteScreener(url, dataset="default", algorithm="logic-v2", threshold=0.7, timeout_s=timeout_s)


@pytest.fixture
async def simulator() -> AsyncIterator[ScreeningSimulator]:
    sim = ScreeningSimulator(DEMO_LIST)
    await sim.start()
    yield sim
    await sim.stop()


async def test_a_listed_name_in_khmer_script_is_a_hit(simulator: ScreeningSimulator) -> None:
    client = _client(simulator.url)
    try:
        verdicts = await client.screen([
            Subject(("P1", "i-1"), Role.DEBTOR, "Alice Example", kind=SubjectKind.PERSON),
            Subject(("P1", "i-1"), Role.CREDITOR, "ឈួន សុវណ្ណារិទ្ធ", kind=SubjectKind.PERSON),
        ])
    finally:
        await client.close()
    verdict = verdicts[("P1", "i-1")]
    assert verdict.outcome is Outcome.HIT
    assert verdict.hit is not None and verdict.hit.entry_id == "mk-kh-001"
    assert verdict.hit.role is Role.CREDITOR and verdict.hit.datasets == ("mekong_demo",)
    assert simulator.requests == 1  # both parties in one request


async def test_unlisted_names_are_clear(simulator: ScreeningSimulator) -> None:
    client = _client(simulator.url)
    try:
        verdicts = await client.screen([Subject(("P1", "i-2"), Role.DEBTOR, "Marguerite Oakhollow", kind=SubjectKind.PERSON),
                                        Subject(("P2", "i-3"), Role.DEBTOR, "Sima Huilin", kind=SubjectKind.PERSON)])
    finally:
        await client.close()
    assert verdicts[("P1", "i-2")].outcome is Outcome.CLEAR
    assert verdicts[("P2", "i-3")].outcome is Outcome.HIT  # the other payment of the batch keeps its own verdict


async def test_a_server_slower_than_the_timeout_is_unavailable() -> None:
    sim = ScreeningSimulator(DEMO_LIST, delay_s=2.0)
    await sim.start()
    client = _client(sim.url, timeout_s=0.3)
    try:
        verdicts = await client.screen([Subject(("P1", "i-4"), Role.DEBTOR, "Alice Example")])
    finally:
        await client.close()
        await sim.stop()
    assert verdicts[("P1", "i-4")].outcome is Outcome.UNAVAILABLE
    assert verdicts[("P1", "i-4")].detail == "timeout"


async def test_a_server_error_is_unavailable() -> None:
    sim = ScreeningSimulator(DEMO_LIST, fail_status=500)
    await sim.start()
    client = _client(sim.url)
    try:
        verdicts = await client.screen([Subject(("P1", "i-5"), Role.DEBTOR, "Alice Example")])
    finally:
        await client.close()
        await sim.stop()
    assert verdicts[("P1", "i-5")].outcome is Outcome.UNAVAILABLE
    assert "500" in verdicts[("P1", "i-5")].detail


async def test_an_answer_that_is_not_json_is_unavailable() -> None:
    async def garbage(_request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy error</html>")

    app = web.Application()
    app.router.add_post("/match/{dataset}", garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = _client(f"http://127.0.0.1:{port}")
    try:
        verdicts = await client.screen([Subject(("P1", "i-6"), Role.DEBTOR, "Alice Example")])
    finally:
        await client.close()
        await runner.cleanup()
    assert verdicts[("P1", "i-6")].outcome is Outcome.UNAVAILABLE


async def test_a_refused_connection_is_unavailable() -> None:
    client = _client("http://127.0.0.1:9", timeout_s=1.0)
    try:
        verdicts = await asyncio.wait_for(client.screen([Subject(("P1", "i-7"), Role.DEBTOR, "Alice Example")]), 5)
    finally:
        await client.close()
    assert verdicts[("P1", "i-7")].outcome is Outcome.UNAVAILABLE
