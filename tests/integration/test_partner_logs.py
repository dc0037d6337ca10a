"""Partner trouble in the log, on the real relay, broker and databases (issue 11 item 4): a partner
that is down is logged as unreachable with the payment's UETR and the partner, at most once per
window however many attempts fail; when it comes back, that is logged once; the payment then
completes as before. A TLS failure (another network's certificate at the partner's address) and
a 503 are logged as what they are."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid

import pytest
from aiohttp import web

from switch.broker import TansuBroker
from switch.log_context import PaymentContextFilter
from switch.store.sql_store import Store
from adapters.simulator import SimBehaviour
from switch.tls import load_simulator_tls
from tests.integration.harness import partner_session, pki_dir, running_switch, signed_as
from tests.integration.test_partner_tls import silent_payment
from tests.integration.test_pipeline import collect, finals_by_id, instruction, publish

SHORT = {"sla_s": 30.0, "resend_after_s": 1.0, "timeout_s": 1.0}
wait_s_max = 30.0


async def test_a_partner_outage_is_logged_rate_limited_with_the_payment_and_its_return_once(
    broker: TansuBroker, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="switch.service.partner_log")
    caplog.handler.addFilter(PaymentContextFilter())  # the payment fields, as `mekong run`'s handler has them
    async with running_switch(broker, store, partner_up=False, timing=SHORT) as run:
        iid = f"L{uuid.uuid4().hex[:10]}"
        account = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}  # no proxy look-up
        await publish(run, [(iid, json.dumps(instruction(iid, creditor=account)).encode())])

        async def attempts() -> int:
            async with store.reader() as uow:
                return max((m.attempts for m in await uow.outbox_pending("partner", 10)), default=0)

        async with asyncio.timeout(wait_s_max):  # a few scheduled rounds: several failed attempts each
            while await attempts() < 3:
                await asyncio.sleep(0.1)
        await run.sim.start(port=run.sim_port)
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: iid in finals_by_id(rs))
        assert [e["state"] for e in finals_by_id(statuses)[iid]] == ["COMPLETED"]
        uetr = finals_by_id(statuses)[iid][0]["uetr"]
    down = [r for r in caplog.records if getattr(r, "problem", None) == "unreachable"]
    back = [r for r in caplog.records if getattr(r, "problem", None) == "recovered"]
    (line,) = back
    assert getattr(line, "partner", None) == "promptpay" and "answers again" in line.getMessage()
    match = re.search(r"\((\d+) failed attempts\)", line.getMessage())
    assert match is not None
    failures = int(match.group(1))  # 3 scheduled rounds at least, of 3 quick attempts each
    assert failures >= 9
    assert 1 <= len(down) < failures  # one line per 10 s window, not one per attempt
    assert all((getattr(r, "partner", None), r.levelname) == ("promptpay", "WARNING") for r in down)
    assert uetr in getattr(down[0], "uetr", "")
    assert "SSLContext object" not in down[0].getMessage()  # the address, not the client's internals


async def _until_logged(caplog: pytest.LogCaptureFixture, problem: str) -> logging.LogRecord:
    async with asyncio.timeout(wait_s_max):
        while True:
            found = [r for r in caplog.records if getattr(r, "problem", None) == problem]
            if found:
                return found[0]
            await asyncio.sleep(0.05)


async def test_a_tls_failure_at_the_partner_is_logged_as_unreachable_naming_the_certificate(
    broker: TansuBroker, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="switch.service.partner_log")
    caplog.handler.addFilter(PaymentContextFilter())
    async with running_switch(broker, store, sim_certificate_of="lapnet") as run:  # LAPNet's certificate at PromptPay's address
        iid = f"T{uuid.uuid4().hex[:10]}"
        account = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}
        await publish(run, [(iid, json.dumps(instruction(iid, creditor=account)).encode())])
        line = await _until_logged(caplog, "unreachable")
    assert getattr(line, "partner", None) == "promptpay" and getattr(line, "uetr", "")
    assert "certificate" in line.getMessage().lower()


async def test_a_partner_answering_503_is_logged_as_a_server_error(
    broker: TansuBroker, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A server with PromptPay's certificate that answers every message 503 (up, not taking them)."""
    caplog.set_level(logging.WARNING, logger="switch.service.partner_log")
    caplog.handler.addFilter(PaymentContextFilter())

    async def unavailable(_request: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance window")

    app = web.Application()
    app.router.add_post("/iso20022", unavailable)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=load_simulator_tls(pki_dir(), "promptpay").server)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with running_switch(broker, store, partner_up=False, partner_urls={"promptpay": f"https://127.0.0.1:{port}"}) as run:
            iid = f"S{uuid.uuid4().hex[:10]}"
            account = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}
            await publish(run, [(iid, json.dumps(instruction(iid, creditor=account)).encode())])
            line = await _until_logged(caplog, "server_error")
    finally:
        await runner.cleanup()
    assert getattr(line, "partner", None) == "promptpay" and getattr(line, "uetr", "")
    assert "HTTP 503" in line.getMessage() and "maintenance window" in line.getMessage()


async def test_a_refused_partner_callback_is_logged_naming_the_partner_and_the_payment(
    broker: TansuBroker, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback is handled with the partner in the log context, and a pacs.002 with its
    payments: the refusal of a bare pacs.002 (PromptPay signs) names PromptPay, and a reject
    applied from a signed one names the payment too."""
    caplog.set_level(logging.WARNING)
    caplog.handler.addFilter(PaymentContextFilter())
    async with running_switch(broker, store) as run:
        uetr, report = await silent_payment(run, answer=SimBehaviour(reject_rate=1.0, reject_codes=("AC04",)))
        async with partner_session("promptpay") as http:
            async with http.post(f"{run.partner_url}/iso20022/promptpay", data=report) as resp:  # bare
                assert resp.status == 400
            async with http.post(f"{run.partner_url}/iso20022/promptpay", data=signed_as("promptpay", report)) as resp:
                assert resp.status == 200
    (refusal,) = [r for r in caplog.records if "refused a message from promptpay" in r.getMessage()]
    assert getattr(refusal, "partner", None) == "promptpay"
    (rejected,) = [r for r in caplog.records if getattr(r, "problem", None) == "rejected"]
    assert (getattr(rejected, "partner", None), getattr(rejected, "uetr", None)) == ("promptpay", uetr)
    assert getattr(rejected, "corridor", None) == "KH-TH" and "AC04" in rejected.getMessage()
