"""Nothing is lost when the partner is down or the switch dies between commit and send."""

from __future__ import annotations

import asyncio
import json
import uuid

from switch.broker import TansuBroker
from switch.entrypoints.main import Switch
from switch.store.sql_store import Store
from tests.integration.harness import running_switch
from adapters.simulator import SimBehaviour
from tests.integration.test_pipeline import collect, events_for, finals_by_id, instruction, publish

wait_s_max = 30.0


async def _wait_for(predicate, timeout_s: float = wait_s_max) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout_s):
        while not await predicate():
            await asyncio.sleep(0.05)


SHORT = {"sla_s": 4.0, "resend_after_s": 1.0, "timeout_s": 1.0}  # a drill: outages of seconds, not minutes


async def test_an_unreachable_partner_ends_in_a_reject_with_ab07_only_at_the_sla_deadline(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store, partner_up=False, timing=SHORT) as run:
        # an account creditor needs no proxy look-up: the pacs.008 transport retries, then gives up
        iid = f"U{uuid.uuid4().hex[:10]}"
        account = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}
        # a proxy creditor's acmt.023 look-up cannot reach the network either: the payment is sent
        # unresolved for the network to resolve, and shares the retries until the SLA
        pid = f"V{uuid.uuid4().hex[:10]}"
        await publish(run, [(iid, json.dumps(instruction(iid, creditor=account)).encode()),
                            (pid, json.dumps(instruction(pid)).encode())])
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: {iid, pid} <= set(finals_by_id(rs)))
        event = finals_by_id(statuses)[iid][0]
        assert (event["state"], event["reason_code"]) == ("REJECTED", "AB07")
        assert "unreachable" in event["reason"] and "SLA deadline" in event["reason"]
        async with store.reader() as uow:
            payment = await uow.payment_by_instruction("ACLBKHPPXXX", iid)
        assert payment is not None
        # retried (scheduled, not only the quick attempts) until the SLA ran out, never before
        assert (payment.updated_at - payment.created_at).total_seconds() >= SHORT["sla_s"]
        proxy_event = finals_by_id(statuses)[pid][0]
        assert (proxy_event["state"], proxy_event["reason_code"]) == ("REJECTED", "AB07")
        assert proxy_event["uetr"] is not None and "SLA deadline" in proxy_event["reason"]


async def test_a_proxy_look_up_outage_does_not_reject_the_payment_when_the_partner_comes_back(
    broker: TansuBroker, store: Store
) -> None:
    async with running_switch(broker, store, partner_up=False, timing={**SHORT, "sla_s": 20.0}) as run:
        pid = f"W{uuid.uuid4().hex[:10]}"
        await publish(run, [(pid, json.dumps(instruction(pid)).encode())])  # a PromptPay mobile proxy

        async def sent_unresolved() -> bool:
            async with store.reader() as uow:
                p = await uow.payment_by_instruction("ACLBKHPPXXX", pid)
            return p is not None and p.creditor.account is None

        await _wait_for(sent_unresolved)
        await run.sim.start(port=run.sim_port)
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: pid in finals_by_id(rs))
        assert [e["state"] for e in finals_by_id(statuses)[pid]] == ["COMPLETED"]


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


async def test_a_partner_back_before_the_sla_gets_the_payment_instead_of_a_reject(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store, partner_up=False, timing={**SHORT, "sla_s": 20.0}) as run:
        iid = f"B{uuid.uuid4().hex[:10]}"
        account = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}
        await publish(run, [(iid, json.dumps(instruction(iid, creditor=account)).encode())])

        async def retried() -> bool:  # the quick attempts failed and a later one is scheduled
            async with store.reader() as uow:
                return any(m.attempts >= 1 for m in await uow.outbox_pending("partner", 10))

        await _wait_for(retried)
        await run.sim.start(port=run.sim_port)  # the partner comes back well before its SLA
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: iid in finals_by_id(rs))
        assert [e["state"] for e in finals_by_id(statuses)[iid]] == ["COMPLETED"]
        assert run.sim.stats["accepted"] == 1


async def test_a_lost_callback_is_recovered_by_resending_the_same_pacs008(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store, timing=SHORT) as run:
        answer_to = run.sim.callback_url
        run.sim.callback_url = "http://127.0.0.1:9/iso20022/promptpay"  # the callbacks get lost
        iid = f"L{uuid.uuid4().hex[:10]}"
        account = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}
        await publish(run, [(iid, json.dumps(instruction(iid, creditor=account)).encode())])
        await _wait_for(lambda: _stat(run, "callbacks_failed", 1))  # the partner gave up calling back
        run.sim.callback_url = answer_to
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: iid in finals_by_id(rs))
        assert [e["state"] for e in finals_by_id(statuses)[iid]] == ["COMPLETED"]
        assert run.sim.stats["accepted"] == 1  # one decision at the partner
        assert run.sim.stats["resends"] >= 1  # resolved by a resend of the same message id


async def test_a_silent_partner_leaves_the_payment_timed_out_not_final_and_still_followed_up(
    broker: TansuBroker, store: Store
) -> None:
    async with running_switch(broker, store, SimBehaviour(timeout_rate=1.0), timing=SHORT) as run:
        iid = f"S{uuid.uuid4().hex[:10]}"
        account = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}
        await publish(run, [(iid, json.dumps(instruction(iid, creditor=account)).encode())])
        statuses = await collect(
            run, run.config.kafka.status_topic, until=lambda rs: any(e["state"] == "TIMED_OUT" for e in events_for(rs, iid))
        )
        timed_out = [e for e in events_for(statuses, iid) if e["state"] == "TIMED_OUT"]
        assert [(e["final"], e["reason_code"]) for e in timed_out] == [(False, "AB06")]
        resends_then = run.sim.stats["resends"]
        await _wait_for(lambda: _stat(run, "resends", resends_then + 1))  # still followed up after the SLA
        async with store.reader() as uow:
            payment = await uow.payment_by_instruction("ACLBKHPPXXX", iid)
        assert payment is not None and payment.state.value == "TIMED_OUT" and payment.follow_up_at is not None


async def _stat(run, name: str, at_least: int) -> bool:  # type: ignore[no-untyped-def]
    return run.sim.stats[name] >= at_least
