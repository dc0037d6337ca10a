"""The HTTP edge's bounded body reading and JSON refusals, on a small aiohttp app (no switch)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from switch.entrypoints.http_app import json_refusals, read_body_bounded
from switch.metrics import Metrics, reason_code_label

body_bytes_max = 1_000


async def _echo_size(request: web.Request) -> web.Response:
    body = await read_body_bounded(request, body_bytes_max)
    if body is None:
        return web.json_response({"reason_code": "FF01", "error": "too large"}, status=413)
    return web.json_response({"size": len(body)})


async def _client() -> TestClient:
    app = web.Application(middlewares=[json_refusals])
    app.router.add_post("/echo", _echo_size)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def _chunks(body: bytes, chunk_bytes: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(body), chunk_bytes):
        yield body[start : start + chunk_bytes]


async def test_a_body_at_the_limit_is_read_whole() -> None:
    client = await _client()
    try:
        resp = await client.post("/echo", data=b"x" * body_bytes_max)
        assert (resp.status, await resp.json()) == (200, {"size": body_bytes_max})
        resp = await client.post("/echo", data=_chunks(b"x" * body_bytes_max))
        assert (resp.status, await resp.json()) == (200, {"size": body_bytes_max})
    finally:
        await client.close()


async def test_a_body_over_the_limit_with_content_length_is_refused() -> None:
    client = await _client()
    try:
        resp = await client.post("/echo", data=b"x" * (body_bytes_max + 1))
        assert (resp.status, (await resp.json())["reason_code"]) == (413, "FF01")
    finally:
        await client.close()


async def test_a_chunked_body_over_the_limit_is_refused_while_streaming() -> None:
    client = await _client()
    try:
        resp = await client.post("/echo", data=_chunks(b"x" * (body_bytes_max * 5)))
        assert "Content-Length" not in resp.request_info.headers
        assert (resp.status, (await resp.json())["reason_code"]) == (413, "FF01")
    finally:
        await client.close()


async def test_an_unknown_route_is_refused_in_json() -> None:
    client = await _client()
    try:
        resp = await client.get("/nowhere")
        assert resp.status == 404
        assert await resp.json() == {"reason_code": "MS03", "error": "Not Found"}
    finally:
        await client.close()


async def test_a_wrong_method_is_refused_in_json_with_the_allowed_methods() -> None:
    client = await _client()
    try:
        resp = await client.get("/echo")
        assert resp.status == 405
        assert await resp.json() == {"reason_code": "FF01", "error": "Method Not Allowed"}
        assert resp.headers["Allow"] == "POST"
    finally:
        await client.close()


def test_a_reason_code_outside_the_known_set_is_labelled_other() -> None:
    assert reason_code_label("AC04") == "AC04"
    assert reason_code_label("AM10") == "AM10"
    assert reason_code_label("ZZ99") == "other"
    assert reason_code_label(None) == "other"


def test_rejects_never_carry_a_partner_supplied_reason_code_as_a_label() -> None:
    metrics = Metrics()
    for code in ("X001", "X002", "AC04"):
        metrics.rejects.labels("partner", code).inc()
    samples = {
        s.labels["reason_code"]: s.value
        for family in metrics.registry.collect() if family.name == "switch_rejects"
        for s in family.samples if s.name == "switch_rejects_total"
    }
    assert samples == {"other": 2.0, "AC04": 1.0}
