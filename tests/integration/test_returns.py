"""Returns (pacs.004) end to end, both directions, on the real broker, each database and the
PromptPay simulator over mutual TLS with signed messages: the network returns payments it
completed (in whole, in part then the rest), the switch refuses what it cannot book (422 and an
admi.002 the network receives), and a Bakong participant's signed return request becomes a pacs.004
the network receives, once."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from adapters.simulator import SimBehaviour
from adapters.simulator_inbound import InboundSpec
from adapters.simulator_returns import Completed
from iso20022.model import Amount
from switch.broker import TansuBroker
from switch.store.sql_store import Store
from tests.integration.harness import Running, partner_session, running_switch, signed, signed_as
from tests.integration.test_inbound import reply
from tests.integration.test_pipeline import collect, instruction, publish

settle_s_max = 60.0


async def until(check: Any, *, timeout_s: float = settle_s_max) -> Any:
    """Poll `check()` (sync or async) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value or loop.time() > deadline:
            return value
        await asyncio.sleep(0.1)


async def payment(run: Running, http: aiohttp.ClientSession, uetr: str) -> dict[str, Any]:
    async with http.get(f"{run.url}/v1/payments/{uetr}", headers=run.auth, ssl=run.ops_ssl()) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]


async def in_state(run: Running, http: aiohttp.ClientSession, uetr: str, state: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        p = await payment(run, http, uetr)
        return p if p["state"] == state else None

    found = await until(check)
    assert found, f"{uetr} never reached {state}: {await payment(run, http, uetr)}"
    return found  # type: ignore[no-any-return]


async def sim_return(run: Running, **body: Any) -> dict[str, Any]:
    """POST /sim/return on the simulator's control port: the network returns a payment now."""
    async with aiohttp.ClientSession() as control, control.post(
        f"http://127.0.0.1:{run.sim.control_port}/sim/return", json=body
    ) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]


async def completed_uetrs(run: Running, http: aiohttp.ClientSession, ids: list[str]) -> dict[str, str]:
    """Publish instructions and wait for their UETRs (the simulator completes them)."""
    await publish(run, [(i, json.dumps(instruction(i)).encode()) for i in ids])
    records = await collect(
        run, run.config.kafka.status_topic,
        until=lambda rs: {json.loads(r.value)["instruction_id"] for r in rs if json.loads(r.value)["state"] == "COMPLETED"} >= set(ids),
    )
    return {e["instruction_id"]: e["uetr"] for e in map(lambda r: json.loads(r.value), records) if e["state"] == "COMPLETED"}


async def test_the_network_returns_completed_payments_and_the_switch_refuses_what_it_cannot_book(
    broker: TansuBroker, store: Store
) -> None:
    behaviour = SimBehaviour(return_rate=1.0, return_delay_ms=100, return_reasons=("AC04",))
    async with running_switch(broker, store, behaviour) as run, run.ops_session("operator") as http:
        # 1. a whole return by the simulator: RETURNED, the participant hears both amounts and the rate
        uetrs = await completed_uetrs(run, http, ["RET-FULL-1"])
        full = await in_state(run, http, uetrs["RET-FULL-1"], "RETURNED")
        (case,) = full["exceptions"]
        assert (case["kind"], case["initiator"], case["state"], case["reason_code"]) == ("return", "partner", "DONE", "AC04")
        assert case["amount"]["currency"] == "THB" and case["rate_rule"] == "original" and case["rate"] == full["fx_rate"]
        assert case["back_amount"] == full["source_amount"]  # the whole principal, exactly (the fee is kept)
        events = await collect(run, run.config.kafka.status_topic, until=lambda rs: any(
            json.loads(r.value)["state"] == "RETURNED" for r in rs))
        (returned,) = [e for e in map(lambda r: json.loads(r.value), events) if e["state"] == "RETURNED"]
        ex = returned["exception"]
        assert (returned["type"], returned["uetr"], ex["reason_code"]) == ("status", uetrs["RET-FULL-1"], "AC04")
        assert ex["returned_amount"] == case["amount"] and ex["back_amount"] == case["back_amount"]
        assert (ex["rate"], ex["rate_rule"]) == (full["fx_rate"], "original")
        (sent,) = run.sim.returns.sent
        assert sent.http_status == 200 and sent.answer.get("booked") == 1

        # 2. half returned by the simulator, an over-return refused (AM02, admi.002), then the rest
        run.sim.behaviour = replace(run.sim.behaviour, partial_return_rate=1.0)
        uetrs = await completed_uetrs(run, http, ["RET-PART-1"])
        part_uetr = uetrs["RET-PART-1"]
        half = await in_state(run, http, part_uetr, "PARTIALLY_RETURNED")
        target = half["target_amount"]
        over = await sim_return(run, uetr=part_uetr, amount=target["value"], reason="AC04")
        assert over["http_status"] == 422 and over["answer"]["reason_code"] == "AM02"
        rejects = await until(lambda: [r for r in run.sim.returns.rejects if r["reference"] == over["message_id"]])
        assert rejects and rejects[0]["reason_code"] == "AM02"  # the admi.002, signed, reached the network
        rest = await sim_return(run, uetr=part_uetr, reason="CUST")  # what it has not returned yet
        assert rest["http_status"] == 200 and rest["answer"]["booked"] == 1
        done = await in_state(run, http, part_uetr, "RETURNED")
        backs = [c["back_amount"]["value"] for c in done["exceptions"]]
        assert sum(int(v) for v in backs) == int(done["source_amount"]["value"])  # the parts add up to the principal
        history = [h["to"] for h in done["history"]]
        assert history[-2:] == ["PARTIALLY_RETURNED", "RETURNED"]

        # 3. the same pacs.004 again (byte for byte): 200, counted duplicate, nothing booked twice
        again = await sim_return(run, uetr=part_uetr, message_id=rest["message_id"])
        assert again["http_status"] == 200 and again["answer"] == {"message_id": rest["message_id"], "duplicate": 1}
        assert len((await payment(run, http, part_uetr))["exceptions"]) == 2

        # 4. hand-built signed pacs.004s: an unknown UETR; another network's return of PromptPay's payment
        ghost = Completed("7d3c1f6a-9b2e-4c5d-8e7f-0a1b2c3d4e5f", "E-GHOST", None, Amount("10.00", "THB"), "M-GHOST")
        body, msg_id, _ = run.sim.returns.build(ghost, Amount("10.00", "THB"), "AC04")
        async with partner_session("promptpay") as partner:
            async with partner.post(f"{run.partner_url}/iso20022/promptpay", data=signed_as("promptpay", body)) as resp:
                assert resp.status == 422
                assert (await resp.json())["reason_code"] == "NOOR"
        assert await until(lambda: any(r["reference"] == msg_id and r["reason_code"] == "NOOR" for r in run.sim.returns.rejects))
        stolen = Completed(uetrs["RET-PART-1"], "E", None, Amount("10.00", "THB"), "M")
        body, _, _ = run.sim.returns.build(stolen, Amount("10.00", "THB"), "AC04")
        async with partner_session("lapnet") as other:
            async with other.post(f"{run.partner_url}/iso20022/lapnet", data=signed_as("lapnet", body)) as resp:
                assert resp.status == 422
                assert (await resp.json())["reason_code"] == "NOOR"

        async with http.get(f"{run.url}/metrics") as resp:
            text = await resp.text()
        assert 'switch_returns_total{direction="outbound",outcome="booked",partner="promptpay"} 2.0' in text
        assert 'switch_returns_total{direction="outbound",outcome="refused_AM02",partner="promptpay"} 1.0' in text
        assert 'switch_returns_total{direction="outbound",outcome="duplicate",partner="promptpay"} 1.0' in text


async def _request(run: Running, requests: list[dict[str, Any]]) -> None:
    """Return requests on mekong.requests, each signed by the participant it names; one key, so in order."""
    producer = AIOKafkaProducer(bootstrap_servers=run.config.kafka.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for r in requests:
            value = json.dumps(r).encode()
            await producer.send_and_wait(run.config.kafka.requests_topic, value=value, key=r["uetr"].encode(), headers=signed(value))
    finally:
        await producer.stop()


async def test_a_participant_returns_an_inbound_payment_once(broker: TansuBroker, store: Store) -> None:
    spec = InboundSpec(amount="40000", currency="KHR", creditor_name="Sok Dara", creditor_account="sok_dara@aclb")
    async with running_switch(broker, store) as run, partner_session("promptpay") as partner, run.ops_session("operator") as http:
        (uetr,) = await run.sim.inbound.send(partner, [spec])
        await collect(run, run.config.kafka.inbound_topic, until=lambda rs: len(rs) >= 1)
        await reply(run, [{"version": 1, "uetr": uetr, "participant": "ACLBKHPPXXX", "decision": "ACCEPT"}])
        await in_state(run, http, uetr, "COMPLETED")

        request = {"version": 1, "type": "return", "request_id": "ret-1", "participant": "ACLBKHPPXXX", "uetr": uetr,
                   "reason_code": "AC04", "reason": "account closed"}
        await _request(run, [request])
        received = await until(lambda: run.sim.returns.received)
        assert received, "the network never received the pacs.004"
        ((tx,),) = [r["returns"] for r in received]  # validated against the XSD by the simulator
        assert (tx["uetr"], tx["amount"], tx["currency"], tx["reason_code"]) == (uetr, "40000", "KHR", "AC04")
        done = await in_state(run, http, uetr, "RETURNED")
        (case,) = done["exceptions"]
        assert (case["initiator"], case["message_id"]) == ("participant", received[0]["message_id"])

        # the same request again books nothing; a request for more is refused (after it, in order)
        await _request(run, [request, {**request, "request_id": "ret-2"}])
        events = await collect(run, run.config.kafka.status_topic, until=lambda rs: any(
            (json.loads(r.value).get("exception") or {}).get("request_id") == "ret-2" for r in rs))
        by_request = {}
        for e in map(lambda r: json.loads(r.value), events):
            if e.get("exception"):
                by_request.setdefault(e["exception"]["request_id"], []).append(e)
        assert [e["state"] for e in by_request["ret-1"]] == ["RETURNED"]  # one event: the redelivery said nothing
        assert [(e["type"], e["reason_code"]) for e in by_request["ret-2"]] == [("exception", "ARDT")]
        assert len((await payment(run, http, uetr))["exceptions"]) == 1
        assert len(run.sim.returns.received) == 1
