"""`mekong sim <partner>` for every partner: the command starts the network's simulator over real
HTTP, takes the partner's golden pacs.008 and calls back with a pacs.002 that the partner's
mapping reads as completed."""

from __future__ import annotations

import asyncio
import re
import sys

import aiohttp
import pytest
from aiohttp import web

from adapters.simulator import SIMULATORS
from iso20022.parsing import parse_untrusted
from switch.domain.payment import PaymentState
from tests.factories import SAMPLE_UETR
from tests.unit.partner_kit import ROOT, mapping_for

GOLDEN = {
    "promptpay": "pacs008_khr_mobile.xml",
    "lapnet": "pacs008_khr_account.xml",
    "napas": "pacs008_khr_account.xml",
    "unionpay": "pacs008_khr_card.xml",
}
start_s_max = 30.0


def test_every_registered_partner_has_a_golden_message() -> None:
    assert set(GOLDEN) == set(SIMULATORS)


@pytest.mark.parametrize("partner", sorted(GOLDEN))
async def test_mekong_sim_plays_the_partner(partner: str) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)

    async def callback(request: web.Request) -> web.Response:
        await received.put(await request.read())
        return web.json_response({})

    app = web.Application()
    app.router.add_post(f"/iso20022/{partner}", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switch.entrypoints.cli", "sim", partner, "--port", "0",
        "--callback-url", f"http://127.0.0.1:{port}/iso20022/{partner}",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(start_s_max):
            line = (await proc.stdout.readline()).decode()
        match = re.match(rf"{partner} simulator ready: (http://127\.0\.0\.1:\d+/iso20022) ", line)
        assert match, line
        body = (ROOT / "adapters" / partner / "fixtures" / GOLDEN[partner]).read_bytes()
        async with aiohttp.ClientSession() as http, http.post(match.group(1), data=body) as resp:
            assert resp.status == 202, await resp.text()
        async with asyncio.timeout(start_s_max):
            report = await received.get()
        (status,) = mapping_for(partner).parse_status(parse_untrusted(report)).statuses
        assert (status.uetr, status.target, status.reason_code) == (SAMPLE_UETR, PaymentState.COMPLETED, None)
    finally:
        proc.terminate()
        await proc.wait()
        await runner.cleanup()
