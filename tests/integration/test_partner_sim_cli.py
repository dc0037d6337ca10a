"""`mekong sim <partner>` for every partner: the command starts the network's simulator over real
HTTP with mutual TLS (the session's development PKI), takes the partner's golden pacs.008 from a
client with the hub's certificate, signed with the hub's signing key, and calls back, with its own
certificate, a server with the hub's, with a pacs.002 signed with the network's key that the
partner's mapping reads as completed."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import datetime, timezone

import aiohttp
import pytest
from aiohttp import web

from adapters.base import load_profile
from adapters.simulator import SIMULATORS
from switch.config import DEFAULT_CONFIG_DIR
from switch.signing import load_switch_signing
from switch.tls import HUB_CERT, HUB_KEY, client_context, server_context
from tests.integration.harness import pki_dir
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet, default_schema_dir
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
    pki = pki_dir()
    bundle = pki / "partners" / partner / "ca-bundle.crt"
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(pki / HUB_CERT, pki / HUB_KEY, [bundle]))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switch.entrypoints.cli", "sim", partner, "--port", "0", "--no-reports",  # only the pacs.002 comes back
        "--callback-url", f"https://127.0.0.1:{port}/iso20022/{partner}",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(start_s_max):
            line = (await proc.stdout.readline()).decode()
        match = re.match(rf"{partner} simulator ready: (https://127\.0\.0\.1:\d+/iso20022) ", line)
        assert match, line
        hub = load_switch_signing(
            pki, "NBCAKHPPXXX", {partner: load_profile(DEFAULT_CONFIG_DIR / "partners" / f"{partner}.toml").signing}
        )
        document = (ROOT / "adapters" / partner / "fixtures" / GOLDEN[partner]).read_bytes()
        as_hub = aiohttp.TCPConnector(ssl=client_context(pki / HUB_CERT, pki / HUB_KEY, bundle))
        async with aiohttp.ClientSession(connector=as_hub) as http:
            async with http.post(match.group(1), data=document) as resp:  # unsigned: the network refuses it
                assert (resp.status, (await resp.json())["reason_code"]) == (400, "DS0A")
            async with http.post(match.group(1), data=hub.seal(partner, document, now=datetime.now(timezone.utc))) as resp:
                assert resp.status == 202, await resp.text()
        async with asyncio.timeout(start_s_max):
            report = await received.get()
        opened = hub.open(partner, parse_untrusted(report), schemas=SchemaSet(default_schema_dir()), now=datetime.now(timezone.utc))
        (status,) = mapping_for(partner).parse_status(opened.document).statuses
        assert (status.uetr, status.target, status.reason_code) == (SAMPLE_UETR, PaymentState.COMPLETED, None)
    finally:
        proc.terminate()
        await proc.wait()
        await runner.cleanup()
