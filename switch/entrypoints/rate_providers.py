"""Live FX rate providers (issue 11): edges that feed the rate book (fx/rates.py RateBook), run
as tasks by the composition root when config/fx.toml enables them.

- `HttpRateFeed` polls a JSON feed every `poll_s`; a failed poll (connection, HTTP status, a body
  that is not the format) is tried again after a jittered exponential backoff between
  `backoff_s_min` and `backoff_s_max` (aiohttp and a few lines: the loop is the only retry and a
  retry library would add a dependency for one `sleep`). Entries the book already has newer are
  ignored (`older`), malformed ones refused (`invalid`).
- `KafkaRateConsumer` reads JSON records from the rate topic (`mekong.fx.rates`), every
  partition from the beginning, without a consumer group: each replica reads every rate itself
  and keeps its own book (rates are not state replicas share; a replica that starts late replays
  the topic and ends with the same newest rate per pair).

Both speak one format (docs/operations/fx-quotes.md), a document with a list of rates:
    {"rates": [{"base": "USD", "quote": "KHR", "mid": "4065.25", "as_of": "2026-11-28T12:00:00Z"}]}
`mid` is decimal text (never a JSON number: no float), `as_of` an ISO 8601 time with an offset.
What goes stale is decided by the book (`stale_after_s`): a provider that stops updating stops
its pairs from quoting.

Counted in switch_fx_rate_updates_total{provider, outcome}; failures logged once per outage.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pydantic_core
from aiokafka import AIOKafkaConsumer
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from fx.rates import Rate, RateBook
from switch import limits
from switch.domain.money import CURRENCIES
from switch.metrics import FxMetrics

log = logging.getLogger(__name__)

rate_document_bytes_max: Final = 256 * 1024  # a feed of every pair the switch knows is a few KB
rates_per_document_max: Final = 1_000


class RateRecordV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    base: str = Field(pattern=r"^[A-Z]{3}$")
    quote: str = Field(pattern=r"^[A-Z]{3}$")
    mid: str = Field(pattern=r"^[0-9]{1,18}(\.[0-9]{1,18})?$")
    as_of: AwareDatetime = Field(strict=False)  # ISO 8601 text with an offset

    @field_validator("base", "quote")
    @classmethod
    def _known(cls, code: str) -> str:
        if code not in CURRENCIES:  # also bounds the gauge's pair label
            raise ValueError(f"unknown currency {code}")
        return code


class RateDocumentV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    rates: list[dict[str, Any]] = Field(max_length=rates_per_document_max)


def read_rates(raw: bytes, provider: str) -> tuple[list[Rate], int]:
    """The rates in a feed document or rate record, and how many entries were refused. Raises
    ValueError when the whole document is unreadable (too large, not JSON, not the format)."""
    if len(raw) > rate_document_bytes_max:
        raise ValueError(f"rate document of {len(raw)} bytes exceeds {rate_document_bytes_max}")
    try:
        document = RateDocumentV1.model_validate(pydantic_core.from_json(raw, allow_inf_nan=False))
    except ValueError as exc:  # ValidationError is a ValueError
        raise ValueError(f"not a rate document: {str(exc)[:200]}") from None
    rates: list[Rate] = []
    invalid = 0
    for entry in document.rates:
        try:
            r = RateRecordV1.model_validate(entry)
            rates.append(Rate(r.base, r.quote, Decimal(r.mid), r.as_of, source=f"{provider}:{r.base}/{r.quote}"))
        except (ValidationError, ValueError):
            invalid += 1
    return rates, invalid


def apply_rates(book: RateBook, rates: list[Rate], invalid: int, *, provider: str, metrics: FxMetrics) -> int:
    """Offer `rates` to the book; count what it took. Returns how many were applied."""
    applied = 0
    for rate in rates:
        if book.offer(rate):
            applied += 1
    metrics.rate_updates.labels(provider, "applied").inc(applied)
    metrics.rate_updates.labels(provider, "older").inc(len(rates) - applied)
    metrics.rate_updates.labels(provider, "invalid").inc(invalid)
    return applied


def shown_feed_url(url: str) -> str:
    """The feed's URL as logs show it: no user, password or query (a feed key may ride there)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "", parts.path, "", ""))


class HttpRateFeed:
    """Polls a JSON rate feed over HTTP (see the module docstring)."""

    provider: Final = "http"

    def __init__(
        self, session: aiohttp.ClientSession, url: str, book: RateBook, metrics: FxMetrics, *, poll_s: float,
        timeout_s: float, backoff_s_min: float, backoff_s_max: float, sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._session = session
        self.url = url
        self._book = book
        self._metrics = metrics
        self._poll_s = poll_s
        self._timeout_s = timeout_s
        self._backoff_s_min = backoff_s_min
        self._backoff_s_max = backoff_s_max
        self._sleep = sleep
        self.failures_in_a_row = 0
        self.polls = 0

    def backoff_s(self, failures: int) -> float:
        """After `failures` failed polls in a row: min × 2^(failures-1), capped, full jitter on
        the upper half (replicas that lost the feed together do not come back in step)."""
        ceiling = min(self._backoff_s_max, self._backoff_s_min * 2 ** min(failures - 1, 30))
        return random.uniform(ceiling / 2, ceiling)

    async def poll_once(self) -> int:
        """One poll: the rates applied. Raises on a failed poll (the caller backs off)."""
        async with asyncio.timeout(self._timeout_s):
            async with self._session.get(self.url, headers={"Accept": "application/json"}) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(64 * 1024):  # the whole body, bounded
                    size += len(chunk)
                    if size > rate_document_bytes_max:
                        raise ValueError(f"rate document over {rate_document_bytes_max} bytes")
                    chunks.append(chunk)
                raw = b"".join(chunks)
        rates, invalid = read_rates(raw, self.provider)
        return apply_rates(self._book, rates, invalid, provider=self.provider, metrics=self._metrics)

    async def run(self) -> None:
        """Runs until cancelled (it feeds the book for as long as the switch runs)."""
        while True:
            self.polls += 1
            try:
                applied = await self.poll_once()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self.failures_in_a_row += 1
                self._metrics.rate_updates.labels(self.provider, "failed").inc()
                delay = self.backoff_s(self.failures_in_a_row)
                if self.failures_in_a_row == 1:  # once per outage, not once per attempt
                    log.warning("FX rate feed %s failed (%s); retrying with backoff", shown_feed_url(self.url), type(exc).__name__)
                await self._sleep(delay)
                continue
            if self.failures_in_a_row:
                log.info("FX rate feed %s is back after %d failed polls (%d rates applied)", shown_feed_url(self.url),
                         self.failures_in_a_row, applied)
            self.failures_in_a_row = 0
            await self._sleep(self._poll_s)


class KafkaRateConsumer:
    """Reads the rate topic, every partition from the beginning, without a consumer group."""

    provider: Final = "kafka"

    def __init__(self, bootstrap_servers: str, topic: str, book: RateBook, metrics: FxMetrics, **client: Any) -> None:
        self._topic = topic
        self._book = book
        self._metrics = metrics
        # subscribed without a group: aiokafka then assigns every partition of the topic to this
        # consumer (and new ones as they appear), positioned at the beginning (nothing committed)
        self._consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=limits.kafka_fetch_wait_ms_max, **client,
        )
        self.records = 0

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def run(self) -> None:
        """Runs until cancelled (it feeds the book for as long as the switch runs)."""
        while True:
            batches = await self._consumer.getmany(timeout_ms=limits.kafka_poll_timeout_ms, max_records=limits.batch_records_max)
            for records in batches.values():
                for record in records:
                    self.records += 1
                    try:
                        rates, invalid = read_rates(record.value or b"", self.provider)
                    except ValueError as exc:
                        self._metrics.rate_updates.labels(self.provider, "invalid").inc()
                        log.warning("FX rate record %s[%d]@%d refused: %s", record.topic, record.partition, record.offset, str(exc)[:200])
                        continue
                    apply_rates(self._book, rates, invalid, provider=self.provider, metrics=self._metrics)


def rate_ages(book: RateBook, now: datetime) -> list[dict[str, Any]]:
    """Each pair in force: mid, source, as-of, age, max age, stale (GET /v1/fx/rates)."""
    out = []
    for r in book.in_force():
        age_s = (now - r.as_of).total_seconds()
        out.append({
            "pair": f"{r.base}/{r.quote}",
            "base": r.base,
            "quote": r.quote,
            "mid": f"{r.mid:f}",
            "source": r.source,
            "as_of": r.as_of.isoformat(),
            "age_s": round(age_s, 1),
            "max_age_s": book.max_age_s_of(r),
            "stale": book.is_stale(r, now),
        })
    return out
