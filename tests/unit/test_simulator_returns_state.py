"""The simulator's returns survive its own kill (adapters/simulator_returns.py with a state file):
a return the switch answered comes back with its answer, one the kill interrupted comes back as
`in_flight_at_crash`, and a return is POSTed again (same message id) until the switch answers."""

from __future__ import annotations

from pathlib import Path

from aiohttp import ClientSession, web

from adapters.base import load_profile
from adapters.registry import profile_path
from adapters.simulator import ReceivedLog
from adapters.simulator_returns import Completed, ReturnDesk
from iso20022.model import Amount
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch.config import DEFAULT_CONFIG_DIR

UETR_A = "5f0e7a1c-3b2d-4e6f-8a9b-0c1d2e3f4a5b"
UETR_B = "0b9d6c3e-1f2a-4b5c-8d7e-9f0a1b2c3d4e"


async def test_returns_are_kept_across_a_kill_and_retried_until_answered(tmp_path: Path, schemas: SchemaSet) -> None:
    profile = load_profile(profile_path(DEFAULT_CONFIG_DIR, "promptpay"))
    seen: list[str] = []

    async def switch(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(parse_untrusted(body).findtext(".//{*}MsgId") or "")
        if len(seen) == 1:  # the first attempt meets a switch that is not up yet
            return web.Response(status=503)
        return web.json_response({"booked": 1})

    app = web.Application()
    app.router.add_post("/iso20022/promptpay", switch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state = tmp_path / "sim.state"
    try:
        log = ReceivedLog(state)
        log.open()
        desk = ReturnDesk(profile, schemas, switch_url=f"http://127.0.0.1:{port}/iso20022/promptpay", sealed=lambda b: b,
                          record=log.append)
        for uetr in (UETR_A, UETR_B):
            desk.note_completed(Completed(uetr, "E2E", None, Amount("100.00", "THB"), "M1"))
        async with ClientSession() as session:
            sent = await desk.send(session, UETR_A, Amount("40.00", "THB"), "AC04", partial=True)
        assert sent is not None and (sent.http_status, sent.attempts) == (200, 2)
        assert seen == [sent.message_id, sent.message_id]  # the same message again
        # a second return leaves; the simulator is killed before the switch answers it
        _body, lost_id, return_id = desk.build(desk.completed[UETR_B], Amount("100.00", "THB"), "CUST")
        log.append({"kind": "return_sending", "uetr": UETR_B, "message_id": lost_id, "return_id": return_id,
                    "amount": "100.00", "currency": "THB", "reason_code": "CUST", "partial": False, "http_status": None,
                    "answer": None, "via": "return", "attempts": 1, "in_flight_at_crash": False})
        log.close()  # kill -9: what was written stays

        again = ReceivedLog(state)
        again.open()
        reborn = ReturnDesk(profile, schemas, switch_url="http://127.0.0.1:1/unused", sealed=lambda b: b, record=again.append)
        reborn.restore(again.return_facts)
        again.close()
        by_id = {s["message_id"]: s for s in reborn.summary()["sent"]}
        assert (by_id[sent.message_id]["http_status"], by_id[sent.message_id]["amount"], by_id[sent.message_id]["partial"]) == (
            200, "40.00", True)
        assert by_id[sent.message_id]["in_flight_at_crash"] is False
        assert (by_id[lost_id]["in_flight_at_crash"], by_id[lost_id]["http_status"]) == (True, None)
        assert reborn.returned_minor == {UETR_A: reborn.returned_minor[UETR_A]} and str(reborn.returned_minor[UETR_A]) == "40.00"
    finally:
        await runner.cleanup()
