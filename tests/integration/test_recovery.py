"""Nothing is lost when the partner is down or the switch dies between commit and send."""

from __future__ import annotations

import asyncio
import json
import uuid

from switch.broker import TansuBroker
from switch.entrypoints.main import Switch
from switch.store.sql_store import Store
from tests.integration.harness import running_switch
from tests.integration.test_pipeline import collect, finals_by_id, instruction, publish

wait_s_max = 30.0


async def _wait_for(predicate, timeout_s: float = wait_s_max) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout_s):
        while not await predicate():
            await asyncio.sleep(0.05)


async def test_an_unreachable_partner_ends_in_a_reject_with_ab07_after_the_retries(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store, partner_up=False) as run:
        # an account creditor needs no proxy look-up: the pacs.008 transport retries, then gives up
        iid = f"U{uuid.uuid4().hex[:10]}"
        account = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}
        # a proxy creditor is stopped earlier: its acmt.023 look-up cannot reach the network
        pid = f"V{uuid.uuid4().hex[:10]}"
        await publish(run, [(iid, json.dumps(instruction(iid, creditor=account)).encode()),
                            (pid, json.dumps(instruction(pid)).encode())])
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: {iid, pid} <= set(finals_by_id(rs)))
        event = finals_by_id(statuses)[iid][0]
        assert (event["state"], event["reason_code"]) == ("REJECTED", "AB07")
        assert "unreachable" in event["reason"]
        proxy_event = finals_by_id(statuses)[pid][0]
        assert (proxy_event["state"], proxy_event["reason_code"], proxy_event["uetr"]) == ("REJECTED", "AB07", None)
        assert "could not be looked up" in proxy_event["reason"]


async def test_a_payment_committed_but_never_sent_goes_out_after_a_restart(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store, partner_up=False) as run:
        iid = f"R{uuid.uuid4().hex[:10]}"
        account = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}  # no look-up needed
        await publish(run, [(iid, json.dumps(instruction(iid, creditor=account)).encode())])

        async def admitted() -> bool:
            async with store.reader() as uow:
                return await uow.payment_by_instruction("ACLBKHPPXXX", iid) is not None

        await _wait_for(admitted)
        await run.switch.stop(drain_s=0)  # dies while its pacs.008 is still being retried
        async with store.reader() as uow:
            payment = await uow.payment_by_instruction("ACLBKHPPXXX", iid)
            unsent = await uow.outbox_pending("partner", 10)
        assert payment is not None and payment.state.value == "QUOTED"
        assert [m.uetrs for m in unsent] == [(payment.uetr,)]

        await run.sim.start(port=run.sim_port)  # the partner is back, and so is the switch
        again = Switch(run.config, store=store)
        await again.start()
        try:
            statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: iid in finals_by_id(rs))
        finally:
            await again.stop()
        assert [e["state"] for e in finals_by_id(statuses)[iid]] == ["COMPLETED"]
        async with store.reader() as uow:
            history = await uow.history_of(payment.uetr)
            assert await uow.outbox_pending("partner", 10) == []
        assert [h.to_state.value for h in history] == ["RECEIVED", "QUOTED", "SUBMITTED", "COMPLETED"]
        assert run.sim.stats["accepted"] == 1  # the partner saw the payment once
