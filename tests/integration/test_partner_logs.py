"""Partner trouble in the log, on the real relay, broker and databases (issue 11 item 4): a partner
that is down is logged as unreachable with the payment's UETR and the partner, at most once per
window however many attempts fail; when it comes back, that is logged once; the payment then
completes as before."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid

import pytest

from switch.broker import TansuBroker
from switch.log_context import PaymentContextFilter
from switch.store.sql_store import Store
from tests.integration.harness import running_switch
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
