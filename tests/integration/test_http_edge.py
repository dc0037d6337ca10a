"""The switch's HTTP edge under abuse (real switch, real broker, each database): over-limit bodies
are refused in the JSON shape of every other refusal, and a burst of them leaves no memory behind."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import AsyncIterator

import aiohttp

from switch import limits
from switch.broker import TansuBroker
from switch.store.sql_store import Store
from tests.integration.harness import partner_session, running_switch

burst_requests: int = 100  # per kind: with Content-Length, and chunked without it
# Growth allowed over the burst. The old edge kept every refused body (over 1 MB each) alive until
# a full collection: 200 refusals held over 200 MB. Bounded bodies leave a few connection buffers.
memory_growth_bytes_max: int = 16_000_000
oversize_body = b"<" * (limits.http_body_bytes_max + 200_000)


async def _chunked(body: bytes, chunk_bytes: int = 64_000) -> AsyncIterator[bytes]:
    for start in range(0, len(body), chunk_bytes):
        yield body[start : start + chunk_bytes]


async def _post(http: aiohttp.ClientSession, url: str, *, chunked: bool) -> tuple[int, dict[str, str]]:
    data = _chunked(oversize_body) if chunked else oversize_body
    async with http.post(url, data=data, headers={"Content-Type": "application/xml"}) as resp:
        return resp.status, await resp.json()


async def test_a_burst_of_oversize_bodies_is_refused_in_json_and_leaves_no_memory_behind(
    broker: TansuBroker, store: Store
) -> None:
    async with running_switch(broker, store) as run, partner_session("promptpay") as http:
        url = f"{run.partner_url}/iso20022/promptpay"
        for chunked in (False, True):  # warm up: connections, the JSON encoder, metric series
            await _post(http, url, chunked=chunked)
        # Reference counting alone must free a refused body: with the cyclic collector off, a
        # body kept alive by a reference cycle stays allocated and shows up below.
        gc.collect()
        gc.disable()
        tracemalloc.start()
        try:
            baseline_bytes, _ = tracemalloc.get_traced_memory()
            answers = [await _post(http, url, chunked=chunked) for chunked in (False, True) for _ in range(burst_requests)]
            after_bytes, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            gc.enable()
        growth_bytes = after_bytes - baseline_bytes
        print(f"memory growth over {len(answers)} oversize bodies: {growth_bytes} bytes")
        assert {status for status, _ in answers} == {413}
        assert {(body["reason_code"], tuple(sorted(body))) for _, body in answers} == {("FF01", ("error", "reason_code"))}
        assert growth_bytes < memory_growth_bytes_max


async def test_an_oversize_body_for_an_unknown_partner_is_refused_unread_and_the_name_is_no_metric_label(
    broker: TansuBroker, store: Store
) -> None:
    async with running_switch(broker, store) as run, partner_session("promptpay") as http:
        status, body = await _post(http, f"{run.partner_url}/iso20022/nosuchnetwork", chunked=False)
        # the certificate is PromptPay's: any other path is refused before the body is read
        assert (status, body["reason_code"]) == (403, "AG01")
        async with http.get(f"{run.url}/metrics", ssl=run.ops_ssl()) as resp:
            text = await resp.text()
        assert "nosuchnetwork" not in text
        assert 'switch_rejects_total{reason_code="FF01",stage="partner_message"}' not in text
