"""Status enquiries end to end (issue 9, pacs.028 -> pacs.002) on the real broker, each database,
and the PromptPay simulator over mutual TLS with signed messages: a partner that loses its
callbacks is asked and the payments complete; a partner restarted without its state answers AG09
and gets the same pacs.008 again; the network asks the switch about inbound payments (stored
answer, PDNG, AG09); the operators' endpoint."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from adapters.inbound import answer_message_id
from adapters.simulator import SIMULATORS, SimBehaviour
from adapters.simulator_inbound import InboundSpec
from switch.broker import TansuBroker
from switch.store.sql_store import Store
from tests.integration.harness import Running, partner_session, running_switch
from tests.integration.test_inbound import answers_for, reply
from tests.integration.test_pipeline import collect, finals_by_id, instruction, publish

ACCOUNT = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}
settle_s_max = 30.0


async def _wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float = settle_s_max) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.1)


async def _payment(run: Running, uetr: str) -> dict[str, Any]:
    async with run.ops_session(client="operator") as http, http.get(f"{run.url}/v1/payments/{uetr}", headers=run.auth) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]


def _enquiries_metric(run: Running, direction: str, outcome: str) -> float:
    return run.switch.bus.deps.metrics.enquiries.labels("promptpay", direction, outcome)._value.get()  # type: ignore[no-any-return]


async def _uetrs_of(run: Running, ids: list[str]) -> dict[str, str]:
    statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: set(ids) <= set(finals_by_id(rs)))
    finals = finals_by_id(statuses)
    assert {i: [e["state"] for e in finals[i]] for i in ids} == {i: ["COMPLETED"] for i in ids}
    return {i: finals[i][0]["uetr"] for i in ids}


async def test_payments_whose_callbacks_are_lost_are_resolved_by_enquiry(broker: TansuBroker, store: Store) -> None:
    timing = {"sla_s": 30.0, "resend_after_s": 2.0, "timeout_s": 2.0, "enquire_after_s": 1.0}
    async with running_switch(broker, store, SimBehaviour(lose_rate=1.0), timing=timing) as run:
        ids = [f"Q{uuid.uuid4().hex[:10]}" for _ in range(3)]
        await publish(run, [(i, json.dumps(instruction(i, creditor=ACCOUNT)).encode()) for i in ids])
        uetrs = await _uetrs_of(run, ids)
        assert run.sim.stats["callbacks_lost"] >= 1 and run.sim.stats["accepted"] == 3  # decided once, never called back
        assert run.sim.stats["enquiries_answered"] >= 1 and run.sim.stats.get("callbacks_ok", 0) == run.sim.stats["enquiries_answered"]  # only answers to pacs.028 went
        for uetr in uetrs.values():
            (case,) = (await _payment(run, uetr))["exceptions"]
            assert (case["kind"], case["initiator"], case["counterpart"], case["state"]) == ("enquiry", "switch", "promptpay", "DONE")
            assert case["attempts"] >= 1 and "COMPLETED" in case["detail"]
        assert _enquiries_metric(run, "outbound", "sent") >= 3
        assert _enquiries_metric(run, "outbound", "answered") == 3


async def test_a_partner_restarted_without_its_state_answers_ag09_and_gets_the_same_pacs008(broker: TansuBroker, store: Store) -> None:
    # the blind resend comes late here: what brings the pacs.008 back is the AG09 answer
    timing = {"sla_s": 60.0, "resend_after_s": 40.0, "timeout_s": 2.0, "enquire_after_s": 2.0}
    async with running_switch(broker, store, SimBehaviour(lose_rate=1.0), timing=timing) as run:
        iid = f"N{uuid.uuid4().hex[:10]}"
        await publish(run, [(iid, json.dumps(instruction(iid, creditor=ACCOUNT)).encode())])

        async def lost() -> bool:
            return run.sim.stats["callbacks_lost"] >= 1

        await _wait_for(lost)
        before = run.sim
        ((uetr, first),) = before.received_log.uetrs.items()
        await before.stop()  # the network restarts and has forgotten everything
        fresh = SIMULATORS["promptpay"](before.profile, before.schemas, callback_url=before.callback_url,
                                        tls=before.tls, signing=before.signing)
        await fresh.start(port=run.sim_port)
        run.sim = fresh
        try:
            await _uetrs_of(run, [iid])
            assert fresh.stats["enquiries_not_found"] >= 1 and fresh.stats["accepted"] == 1
            again = fresh.received_log.uetrs[uetr]
            assert (again.message_ids, again.body_sha256) == (first.message_ids, first.body_sha256)  # byte for byte
            payment = await _payment(run, uetr)
            assert "REJECTED" not in [h["to"] for h in payment["history"]]
            (case,) = payment["exceptions"]
            assert (case["state"], case["reason_code"]) == ("DONE", "AG09")
            assert "resent 1 time" in case["detail"]
            assert _enquiries_metric(run, "outbound", "not_found_resent") >= 1
        finally:
            await fresh.stop()


async def test_the_network_asks_about_inbound_payments(broker: TansuBroker, store: Store) -> None:
    specs = [
        InboundSpec(amount="40000", currency="KHR", creditor_name="Sok Dara", creditor_account="sok_dara@aclb"),
        InboundSpec(amount="8000", currency="KHR", creditor_name="Keo Vanna", creditor_account="keo_vanna@wing"),
    ]
    async with running_switch(broker, store) as run, partner_session("promptpay") as http:
        decided, pending = await run.sim.inbound.send(http, specs)
        await collect(run, run.config.kafka.inbound_topic, until=lambda rs: len(rs) >= 2)
        await reply(run, [{"version": 1, "uetr": decided, "participant": "ACLBKHPPXXX", "decision": "ACCEPT"}])
        assert (await answers_for(run, [decided]))[decided]["status"] == "ACSC"
        unknown = str(uuid.uuid4())
        control = f"http://127.0.0.1:{run.sim.control_port}"
        async with aiohttp.ClientSession() as sim_http:
            async with sim_http.post(f"{control}/sim/enquire", json={"uetrs": [decided, pending, unknown]}) as resp:
                sent = await resp.json()
            assert sent["http_status"] == 200, sent
            assert {k: sent["switch"].get(k) for k in ("answered_final", "answered_pending", "answered_not_found")} == {
                "answered_final": 1, "answered_pending": 1, "answered_not_found": 1}

            async def all_answered() -> bool:
                async with sim_http.get(f"{control}/sim/enquiries") as r:
                    got = (await r.json())["enquiries"]
                return all(got[u]["answers"] for u in (decided, pending, unknown))

            await _wait_for(all_answered)
            async with sim_http.get(f"{control}/sim/enquiries") as r:
                got = (await r.json())["enquiries"]
        final = got[decided]["answers"][0]
        assert (final["status"], final["reason_code"], final["message_id"]) == ("ACSC", None, answer_message_id(decided))
        assert [(a["status"], a["reason_code"]) for a in got[pending]["answers"]] == [("PDNG", None)]
        assert [(a["status"], a["reason_code"]) for a in got[unknown]["answers"]] == [("RJCT", "AG09")]
        # the stored answer, not a new decision; the pending payment is still undecided
        assert run.sim.inbound.stats.get("answers_changed", 0) == 0
        assert pending not in run.sim.inbound.summary()["answers"]
        assert _enquiries_metric(run, "inbound", "answered_final") == 1


async def test_operators_enquire_about_one_payment(broker: TansuBroker, store: Store) -> None:
    timing = {"sla_s": 60.0, "resend_after_s": 30.0, "timeout_s": 2.0, "enquire_after_s": 50.0}  # no automatic enquiry
    async with running_switch(broker, store, SimBehaviour(timeout_rate=1.0), timing=timing) as run:
        silent, done = f"O{uuid.uuid4().hex[:10]}", f"P{uuid.uuid4().hex[:10]}"
        await publish(run, [(silent, json.dumps(instruction(silent, creditor=ACCOUNT)).encode())])

        async def received() -> bool:
            return bool(run.sim.received_log.uetrs)

        await _wait_for(received)
        ((uetr, _),) = run.sim.received_log.uetrs.items()
        url = f"{run.url}/v1/payments/{uetr}/enquiry"
        async with run.ops_session(client="operator") as http:
            async with http.post(url, headers=run.auth) as resp:
                assert resp.status == 202, await resp.text()
                case = await resp.json()
            assert (case["kind"], case["initiator"], case["state"], case["attempts"]) == ("enquiry", "operator", "SENT", 1)

            async def asked() -> bool:
                return run.sim.stats["enquiries_received"] >= 1

            await _wait_for(asked)
            async with http.post(url, headers=run.auth) as resp:  # again, now
                assert resp.status == 202
                again = await resp.json()
            assert (again["case_id"], again["attempts"]) == (case["case_id"], 2) and again["message_id"] != case["message_id"]
            async with http.post(url, headers=run.auth_as("auditor")) as resp:
                assert resp.status == 403
            async with http.post(f"{run.url}/v1/payments/{uuid.uuid4()}/enquiry", headers=run.auth) as resp:
                assert (resp.status, (await resp.json())["reason_code"]) == (404, "MS03")
            run.sim.behaviour = SimBehaviour()  # the network answers again: a payment that completes
            await publish(run, [(done, json.dumps(instruction(done, creditor=ACCOUNT)).encode())])
            done_uetr = (await _uetrs_of(run, [done]))[done]
            async with http.post(f"{run.url}/v1/payments/{done_uetr}/enquiry", headers=run.auth) as resp:
                assert (resp.status, (await resp.json())["reason_code"]) == (409, "AG01")
        async with run.ops_session(client="monitor") as monitor, monitor.post(url) as resp:  # its certificate, no token
            assert resp.status == 403
        payment = await _payment(run, uetr)
        assert [c["attempts"] for c in payment["exceptions"]] == [2]


async def test_an_acsp_after_the_acsc_leaves_the_payment_completed(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store, SimBehaviour(out_of_order_rate=1.0)) as run:
        iid = f"R{uuid.uuid4().hex[:10]}"
        await publish(run, [(iid, json.dumps(instruction(iid, creditor=ACCOUNT)).encode())])
        uetr = (await _uetrs_of(run, [iid]))[iid]

        async def both_sent() -> bool:
            return run.sim.stats["callbacks_ok"] >= 2

        await _wait_for(both_sent)
        assert run.sim.stats["out_of_order_sent"] == 1
        payment = await _payment(run, uetr)
        assert payment["state"] == "COMPLETED" and payment["history"][-1]["to"] == "COMPLETED"
        assert run.switch.bus.deps.metrics.late_status.labels("promptpay")._value.get() >= 1
