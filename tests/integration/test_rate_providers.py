"""The live FX rate providers (issue 11) against real parts: the HTTP feed against an aiohttp
server run here (rates applied, a failing feed retried with growing backoff, a feed that stops
lets its pairs go stale and stop quoting), and the Kafka rate topic against the Tansu broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from fx.errors import RateStale
from fx.rates import Rate, RateBook
from switch.broker import TansuBroker, free_port
from switch.entrypoints.main import ensure_topics
from switch.entrypoints.rate_providers import HttpRateFeed, KafkaRateConsumer, read_rates
from switch.metrics import Metrics

NOW = datetime.now(UTC).replace(microsecond=0)


def document(*rates: tuple[str, str, str, datetime]) -> dict[str, Any]:
    return {"rates": [{"base": b, "quote": q, "mid": mid, "as_of": at.isoformat()} for b, q, mid, at in rates]}


class Feed:
    """A rate feed server: answers `document`, or `failures` times 503 first."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = document(("USD", "KHR", "4070.5", NOW))
        self.failures = 0
        self.requests = 0
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def handle(self, _request: web.Request) -> web.Response:
        self.requests += 1
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=503, text="busy")
        return web.json_response(self.document)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/rates", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/rates"


@pytest.fixture
async def feed() -> Any:
    f = Feed()
    await f.start()
    yield f
    await f.stop()


def updates(metrics: Metrics, provider: str, outcome: str) -> float:
    return metrics.fx.rate_updates.labels(provider, outcome)._value.get()


def book() -> RateBook:
    return RateBook(pivot="USD", stale_after_s=60, rates=[Rate("USD", "KHR", Decimal("4065"), NOW - timedelta(seconds=30), "static:USD/KHR", 86400)])


def http_feed(session: aiohttp.ClientSession, url: str, rates: RateBook, metrics: Metrics, sleeps: list[float]) -> HttpRateFeed:
    async def sleep(s: float) -> None:  # record the waits, wait a little (the loop must yield)
        sleeps.append(s)
        await asyncio.sleep(0.01)

    return HttpRateFeed(session, url, rates, metrics.fx, poll_s=30, timeout_s=2, backoff_s_min=1, backoff_s_max=8, sleep=sleep)


async def test_the_http_feed_puts_its_rates_in_the_book(feed: Feed) -> None:
    rates, metrics, sleeps = book(), Metrics(), []
    async with aiohttp.ClientSession() as session:
        applied = await http_feed(session, feed.url, rates, metrics, sleeps).poll_once()
    found = rates.rate("USD", "KHR", now=NOW)
    assert applied == 1 and (found.mid, found.source, found.as_of) == (Decimal("4070.5"), "http:USD/KHR", NOW)
    assert updates(metrics, "http", "applied") == 1


async def test_a_failing_feed_is_polled_again_with_growing_backoff_until_it_answers(feed: Feed) -> None:
    feed.failures = 4
    rates, metrics, sleeps = book(), Metrics(), []
    async with aiohttp.ClientSession() as session:
        poller = http_feed(session, feed.url, rates, metrics, sleeps)
        task = asyncio.create_task(poller.run())
        try:
            async with asyncio.timeout(10):
                while feed.requests < 5 or not sleeps or sleeps[-1] != 30:
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    backoffs = sleeps[:4]
    ceilings = [1, 2, 4, 8]  # min × 2^(n-1), capped at backoff_s_max
    assert all(c / 2 <= s <= c for s, c in zip(backoffs, ceilings, strict=True)), backoffs
    assert sleeps[4] == 30  # answered: back to the poll interval
    assert updates(metrics, "http", "failed") == 4 and updates(metrics, "http", "applied") == 1
    assert rates.rate("USD", "KHR", now=NOW).mid == Decimal("4070.5")


async def test_a_feed_that_stops_lets_its_pairs_go_stale_and_stop_quoting(feed: Feed) -> None:
    rates, metrics, sleeps = book(), Metrics(), []
    async with aiohttp.ClientSession() as session:
        await http_feed(session, feed.url, rates, metrics, sleeps).poll_once()
    await feed.stop()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await http_feed(session, feed.url, rates, metrics, sleeps).poll_once()
    await feed.start()  # for the fixture's stop
    assert rates.rate("USD", "KHR", now=NOW + timedelta(seconds=60)).mid == Decimal("4070.5")
    with pytest.raises(RateStale):  # stale_after_s = 60: the live rate replaced the static one
        rates.rate("USD", "KHR", now=NOW + timedelta(seconds=61))
    (listed,) = rates.in_force()
    assert rates.is_stale(listed, NOW + timedelta(seconds=61))


async def test_a_malformed_feed_counts_as_failed_and_bad_entries_as_invalid(feed: Feed) -> None:
    feed.document = {"rates": [{"base": "USD", "quote": "KHR", "mid": 4070.5, "as_of": NOW.isoformat()},  # a float: refused
                               {"base": "USD", "quote": "THB", "mid": "33.9", "as_of": NOW.isoformat()}]}
    rates, metrics, sleeps = book(), Metrics(), []
    async with aiohttp.ClientSession() as session:
        assert await http_feed(session, feed.url, rates, metrics, sleeps).poll_once() == 1
    assert updates(metrics, "http", "invalid") == 1
    with pytest.raises(ValueError):
        read_rates(b"[1, 2]", "http")


async def test_the_kafka_rate_topic_feeds_the_book_of_every_replica(broker: TansuBroker) -> None:
    topic = f"fx-rates-{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker.bootstrap_servers, [topic], 2)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, json.dumps(document(("USD", "THB", "33.91", NOW))).encode(), key=b"USD/THB")
        await producer.send_and_wait(topic, b"not json", key=b"junk")
        older = document(("USD", "THB", "33.50", NOW - timedelta(seconds=5)))  # late: the newer one stays
        await producer.send_and_wait(topic, json.dumps(older).encode(), key=b"USD/THB")
    finally:
        await producer.stop()
    metrics = Metrics()
    replicas = [RateBook(pivot="USD", stale_after_s=60), RateBook(pivot="USD", stale_after_s=60)]
    consumers = [KafkaRateConsumer(broker.bootstrap_servers, topic, b, metrics.fx) for b in replicas]
    tasks = []
    try:
        for c in consumers:
            await c.start()
            tasks.append(asyncio.create_task(c.run()))
        async with asyncio.timeout(30):
            while any(c.records < 3 for c in consumers):
                await asyncio.sleep(0.05)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in consumers:
            await c.stop()
    for b in replicas:
        found = b.rate("USD", "THB", now=NOW)
        assert (found.mid, found.source) == (Decimal("33.91"), "kafka:USD/THB")
    assert updates(metrics, "kafka", "applied") == 2 and updates(metrics, "kafka", "older") == 2
    assert updates(metrics, "kafka", "invalid") == 2


async def test_a_running_switch_polls_its_configured_feed_and_lists_the_rate_in_force(
    feed: Feed, broker: TansuBroker, store: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from switch.config import DEFAULT_CONFIG_DIR
    from tests.integration.harness import running_switch

    config_dir = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config_dir)
    fx_toml = config_dir / "fx.toml"
    fx_toml.write_text(fx_toml.read_text().replace("[providers.http]\nenabled = false", "[providers.http]\nenabled = true"))
    monkeypatch.setenv("MEKONG_FX_FEED_URL", feed.url)
    async with running_switch(broker, store, config_dir=config_dir) as run:
        async with asyncio.timeout(10):
            while feed.requests == 0:
                await asyncio.sleep(0.05)
        async with run.ops_session() as http:
            async with http.get(f"{run.url}/v1/fx/rates", headers=run.auth) as resp:
                rates = {r["pair"]: r for r in (await resp.json())["rates"]}
            reloaded = await run.switch.reload_config(actor="test")  # the static table again, the feed's rate kept
            async with http.get(f"{run.url}/v1/fx/rates", headers=run.auth) as resp:
                after = {r["pair"]: r for r in (await resp.json())["rates"]}
            async with http.get(f"{run.url}/metrics", headers=run.auth) as resp:
                metrics = await resp.text()
    assert (rates["USD/KHR"]["source"], rates["USD/KHR"]["mid"], rates["USD/KHR"]["max_age_s"]) == ("http:USD/KHR", "4070.5", 300)
    assert rates["USD/THB"]["source"] == "static:USD/THB"
    assert reloaded["applied"] is True and after["USD/KHR"]["source"] == "http:USD/KHR"
    assert after["USD/THB"]["as_of"] > rates["USD/THB"]["as_of"]  # re-stamped by the reload
    assert 'switch_fx_rate_updates_total{outcome="applied",provider="http"} 1.0' in metrics
    assert 'switch_fx_rate_age_seconds{pair="USD_KHR"}' in metrics


def test_the_feed_url_is_logged_without_credentials_or_query() -> None:
    from switch.entrypoints.rate_providers import shown_feed_url

    assert shown_feed_url("https://user:pw@rates.example.org:8443/v1/mekong?key=SECRET#x") == "https://rates.example.org:8443/v1/mekong"


async def test_a_feed_body_over_its_bound_is_a_failed_poll_without_reading_it_all(feed: Feed) -> None:
    feed.document = {"rates": [], "padding": "x" * 300_000}  # over rate_document_bytes_max (256 KiB)
    rates, metrics, sleeps = book(), Metrics(), []
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match="over"):
            await http_feed(session, feed.url, rates, metrics, sleeps).poll_once()
    assert rates.rate("USD", "KHR", now=NOW).source == "static:USD/KHR"  # nothing applied
