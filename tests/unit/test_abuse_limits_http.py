"""The partner port's rate limit (issue 8 item 6), on the real partner app (build_partner_app, the
audit hook) over real HTTP with the in-memory store and a clock the test moves: a partner over its
rate gets 429 SL15 with Retry-After before anything of its body is read, the refusal is counted and
not audited (only the first of a spell is), and another partner's bucket is untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from iso20022.schemas import SchemaSet
from switch.domain.rate_limit import Rate
from switch.entrypoints.abuse_limits import CLOCK_MS, retry_after_s
from switch.entrypoints.http_app import build_partner_app
from switch.service.audit import HTTP_RATE_LIMITED, HTTP_REFUSED
from switch.service.bus import MessageBus
from switch.service.handlers import Deps
from switch.service.rate_limits import RateLimits
from tests.fakes import FakeClock, FakeStore, deps_from_config


class Edge:
    def __init__(self, client: TestClient, store: FakeStore, deps: Deps, clock_ms: list[int]) -> None:
        self.client, self.store, self.deps, self.clock_ms = client, store, deps, clock_ms

    async def post(self, partner: str, body: bytes = b"not xml") -> tuple[int, dict[str, str], dict[str, str]]:
        async with self.client.post(f"/iso20022/{partner}", data=body) as resp:
            return resp.status, await resp.json(), dict(resp.headers)

    def limited(self, partner: str) -> float:
        sample = self.deps.metrics.registry.get_sample_value
        return sample("switch_rate_limited_total", {"edge": "partner_port", "party": partner}) or 0.0

    def audited(self, action: str) -> list[str]:
        return [e.subject for e in self.store.state.audit if e.action == action]


@pytest.fixture
async def edge(schemas: SchemaSet) -> AsyncIterator[Edge]:
    deps = deps_from_config(schemas, FakeClock())
    store = FakeStore()
    bus = MessageBus(store, deps, on_commit=lambda _: None, metrics=deps.metrics)  # type: ignore[arg-type]
    limits = RateLimits({"promptpay": Rate(per_s=2, burst=3), "lapnet": Rate(per_s=2, burst=3)})
    app = build_partner_app(bus, partner_auth=None, partner_limits=limits)  # no TLS: the path names the partner
    clock_ms = [1_000_000]
    app[CLOCK_MS] = lambda: clock_ms[0]
    async with TestClient(TestServer(app)) as client:
        yield Edge(client, store, deps, clock_ms)


async def test_a_partner_over_its_rate_gets_429_sl15_with_retry_after(edge: Edge) -> None:
    answers = [await edge.post("promptpay") for _ in range(5)]
    assert [status for status, _, _ in answers] == [400, 400, 400, 429, 429]  # the burst is read (and refused as XML)
    _, body, headers = answers[3]
    assert set(body) == {"reason_code", "error"} and body["reason_code"] == "SL15"
    assert "promptpay" in body["error"] and "2 messages/s" in body["error"]
    assert headers["Retry-After"] == "1"  # half a second to the next token, announced in whole seconds
    assert edge.limited("promptpay") == 2


async def test_after_the_announced_wait_the_partner_is_heard_again(edge: Edge) -> None:
    for _ in range(4):
        await edge.post("promptpay")
    edge.clock_ms[0] += 500  # one token back (2 a second)
    assert [(await edge.post("promptpay"))[0] for _ in range(2)] == [400, 429]


async def test_the_body_of_a_message_over_the_rate_is_not_read(edge: Edge) -> None:
    for _ in range(3):
        await edge.post("promptpay")
    status, body, _ = await edge.post("promptpay", b"<" * 2_000_000)  # would be 413 if it were read
    assert (status, body["reason_code"]) == (429, "SL15")


async def test_one_partners_flood_leaves_another_partners_bucket_whole(edge: Edge) -> None:
    for _ in range(50):
        await edge.post("promptpay")
    assert [(await edge.post("lapnet"))[0] for _ in range(3)] == [400, 400, 400]
    assert edge.limited("lapnet") == 0 and edge.limited("promptpay") == 47


async def test_429s_are_counted_not_audited_but_the_start_of_a_flood_is(edge: Edge) -> None:
    for _ in range(20):
        await edge.post("promptpay")
    assert edge.audited(HTTP_RATE_LIMITED) == ["promptpay"]  # one entry for the whole flood
    assert len(edge.audited(HTTP_REFUSED)) == 3  # the three 400s the burst let through, no 429
    (entry,) = [e for e in edge.store.state.audit if e.action == HTTP_RATE_LIMITED]
    assert entry.detail["per_s"] == 2 and entry.detail["burst"] == 3


async def test_a_name_that_is_no_configured_partner_is_not_charged(edge: Edge) -> None:
    answers = [(await edge.post("nosuchnetwork"))[0] for _ in range(10)]
    assert set(answers) == {404}
    assert edge.deps.metrics.registry.get_sample_value(
        "switch_rate_limited_total", {"edge": "partner_port", "party": "nosuchnetwork"}
    ) is None


@pytest.mark.parametrize(("retry_after_ms", "seconds"), [(1, 1), (999, 1), (1_000, 1), (1_001, 2), (60_000, 60)])
def test_retry_after_is_whole_seconds_rounded_up_and_never_zero(retry_after_ms: int, seconds: int) -> None:
    assert retry_after_s(retry_after_ms) == seconds
