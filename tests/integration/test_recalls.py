"""Recalls end to end (issue 9 item 3) on the real broker, each database, and the PromptPay
simulator over mutual TLS with signed messages: a participant recalls a completed payment (the
network accepts, or refuses with its reason), a payment whose partner is down is cancelled
before its pacs.008 ever leaves, and the network recalls inbound payments that their
beneficiaries' participants accept (pacs.004 + camt.029) or refuse (camt.029 RJCR)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaProducer

from adapters.simulator import SimBehaviour
from adapters.simulator_inbound import InboundSpec
from switch.broker import TansuBroker
from switch.contracts import InboundRecallV1
from switch.store.sql_store import Store
from tests.integration.harness import Running, partner_session, running_switch, signed
from tests.integration.test_inbound import reply
from tests.integration.test_pipeline import collect, instruction, publish

settle_s_max = 60.0
PARTICIPANT = "ACLBKHPPXXX"


async def request(run: Running, docs: list[dict[str, Any]]) -> None:
    """Participants' requests on mekong.requests, each signed by the participant it names."""
    producer = AIOKafkaProducer(bootstrap_servers=run.config.kafka.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for doc in docs:
            value = json.dumps(doc).encode()
            await producer.send_and_wait(run.config.kafka.requests_topic, value=value, key=doc["participant"].encode(), headers=signed(value))
    finally:
        await producer.stop()


def recall(request_id: str, uetr: str, reason_code: str = "FRAD") -> dict[str, Any]:
    return {"version": 1, "type": "recall", "request_id": request_id, "participant": PARTICIPANT, "uetr": uetr,
            "reason_code": reason_code, "reason": "customer reports fraud"}


async def payment(run: Running, uetr: str) -> dict[str, Any]:
    async with run.ops_session("operator") as http, http.get(f"{run.url}/v1/payments/{uetr}", headers=run.auth) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]


async def until(check: Any, what: str) -> Any:
    """Poll the async `check` until it returns something truthy (or fail after settle_s_max)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_s_max
    while True:
        got = await check()
        if got:
            return got
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def completed_payment(run: Running, instruction_id: str) -> str:
    """An outbound payment the simulator completed; its UETR."""
    await publish(run, [(instruction_id, json.dumps(instruction(instruction_id)).encode())])
    records = await collect(run, run.config.kafka.status_topic, until=lambda rs: any(
        json.loads(r.value)["instruction_id"] == instruction_id and json.loads(r.value)["state"] == "COMPLETED" for r in rs))
    return next(json.loads(r.value)["uetr"] for r in records if json.loads(r.value)["instruction_id"] == instruction_id)


def case_state(p: dict[str, Any]) -> str | None:
    recalls = [e for e in p.get("exceptions", []) if e["kind"] == "recall"]
    return recalls[-1]["state"] if recalls else None


async def test_a_recalled_payment_is_accepted_by_the_partner_or_refused_with_its_reason(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run:
        accepted = await completed_payment(run, "REC-ACCEPT")
        await request(run, [recall("RQ-1", accepted)])

        async def awaiting_return() -> dict[str, Any] | None:
            p = await payment(run, accepted)
            return p if case_state(p) in ("AWAITING_RETURN", "DONE") else None

        p = await until(awaiting_return, "the partner's acceptance")
        # what the network received: a camt.056 (validated against its XSD by the simulator) naming the payment
        (received,) = [r for r in run.sim.recalls.log.received if r["uetr"] == accepted]
        assert received["reason_code"] == "FRAD" and received["case_id"] == p["exceptions"][-1]["case_id"]
        assert run.sim.recalls.log.decided[accepted] == "accepted"
        async def returned() -> dict[str, Any] | None:  # the network's pacs.004 is booked: the recall is done
            q = await payment(run, accepted)
            return q if q["state"] == "RETURNED" else None

        done = await until(returned, "the pacs.004 to be booked")
        assert [c["state"] for c in done["exceptions"] if c["kind"] == "recall"] == ["DONE"]

        # the network refuses the next one: the payment stays COMPLETED and the participant hears why
        run.sim.behaviour = SimBehaviour.from_json({"recall_accept_rate": 0.0, "recall_refuse_reason": "CUST"}, run.sim.behaviour)
        refused = await completed_payment(run, "REC-REFUSE")
        await request(run, [recall("RQ-2", refused, "DUPL")])
        records = await collect(run, run.config.kafka.status_topic, until=lambda rs: any(
            (e := json.loads(r.value)).get("uetr") == refused and (e.get("exception") or {}).get("state") == "REFUSED" for r in rs))
        (told,) = [e for e in (json.loads(r.value) for r in records)
                   if e.get("uetr") == refused and (e.get("exception") or {}).get("state") == "REFUSED"]
        assert (told["type"], told["state"], told["exception"]["reason_code"]) == ("exception", "COMPLETED", "CUST")
        assert "refused" in told["reason"]
        p = await payment(run, refused)
        assert (p["state"], case_state(p)) == ("COMPLETED", "REFUSED")
        # one recall at a time is over: the same payment can be recalled again, and a second
        # request while the first is open is refused
        await request(run, [recall("RQ-3", refused), recall("RQ-4", refused)])
        records = await collect(run, run.config.kafka.status_topic, until=lambda rs: any(
            (e := json.loads(r.value)).get("instruction_id") == "RQ-4" for r in rs))
        (dupl,) = [e for e in (json.loads(r.value) for r in records) if e["instruction_id"] == "RQ-4"]
        assert (dupl["type"], dupl["reason_code"]) == ("exception", "DUPL")


async def test_a_recall_while_the_partner_is_down_cancels_the_payment_before_it_leaves(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store, partner_up=False) as run:
        await publish(run, [("REC-DOWN", json.dumps(instruction("REC-DOWN")).encode())])

        async def admitted() -> Any:
            async with store.reader() as uow:
                return await uow.payment_by_instruction(PARTICIPANT, "REC-DOWN")

        uetr = (await until(admitted, "the admission")).uetr
        # recalled by its instruction id, while the relay cannot reach the partner
        doc = recall("RQ-DOWN", uetr, "DUPL")
        del doc["uetr"]
        await request(run, [{**doc, "instruction_id": "REC-DOWN"}])

        async def cancelled() -> dict[str, Any] | None:
            p = await payment(run, uetr)
            return p if p["state"] == "CANCELLED" else None

        p = await until(cancelled, "the local cancel")
        assert (p["reason_code"], case_state(p)) == ("DUPL", "DONE")
        assert [h["to"] for h in p["history"]][-2:] == ["QUOTED", "CANCELLED"]
        # the partner comes back: the withdrawn pacs.008 is never delivered
        await run.sim.start(port=run.sim_port)
        await asyncio.sleep(3.0)
        assert uetr not in run.sim.received_log.uetrs
        assert run.sim.stats["received"] == 0
        records = await collect(run, run.config.kafka.status_topic, until=lambda rs: any(
            json.loads(r.value).get("state") == "CANCELLED" for r in rs))
        (told,) = [e for e in (json.loads(r.value) for r in records) if e["state"] == "CANCELLED"]
        assert (told["type"], told["exception"]["request_id"], told["final"]) == ("status", "RQ-DOWN", True)


async def test_a_partner_recall_of_inbound_payments_is_accepted_or_refused_by_the_participant(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run, partner_session("promptpay") as http:
        specs = [InboundSpec(amount="40000", currency="KHR", creditor_name="Sok Dara", creditor_account="sok_dara@aclb"),
                 InboundSpec(amount="8000", currency="KHR", creditor_name="Sok Dara", creditor_account="sok_dara@aclb")]
        give, keep = await run.sim.inbound.send(http, specs)
        await collect(run, run.config.kafka.inbound_topic, until=lambda rs: len(rs) >= 2)
        await reply(run, [{"version": 1, "uetr": u, "participant": PARTICIPANT, "decision": "ACCEPT"} for u in (give, keep)])

        async def credited() -> bool:
            answers = run.sim.inbound.summary()["answers"]
            return all(answers.get(u, {}).get("status") == "ACSC" for u in (give, keep))

        await until(credited, "the payments to be credited")
        async with http.post(f"http://127.0.0.1:{run.sim.control_port}/sim/recall", json={"uetrs": [give, keep], "reason": "FRAD"}) as resp:
            sent = (await resp.json())["recalls"]
        assert [s["http_status"] for s in sent] == [200, 200], sent

        records = await collect(run, run.config.kafka.inbound_topic, until=lambda rs: sum(
            json.loads(r.value).get("type") == "recall" for r in rs) >= 2)
        asks = {e.uetr: e for e in (InboundRecallV1.model_validate_json(r.value) for r in records if json.loads(r.value).get("type") == "recall")}
        assert set(asks) == {give, keep}
        assert (asks[give].participant, asks[give].amount.value, asks[give].reason_code) == (PARTICIPANT, "40000", "FRAD")
        assert (await payment(run, give))["state"] == "RECALL_PENDING"

        await request(run, [
            {"version": 1, "type": "recall_reply", "request_id": "RR-1", "participant": PARTICIPANT, "case_id": asks[give].case_id,
             "decision": "ACCEPT"},
            {"version": 1, "type": "recall_reply", "request_id": "RR-2", "participant": PARTICIPANT, "case_id": asks[keep].case_id,
             "decision": "REFUSE", "reason_code": "CUST", "reason": "the customer has spent it"},
        ])

        async def answered() -> bool:
            log = run.sim.recalls.log
            return give in log.answers and keep in log.answers and give in log.returns

        await until(answered, "the switch's camt.029 and pacs.004")
        log = run.sim.recalls.log
        assert (log.answers[give]["status"], log.answers[give]["tx_status"]) == ("CNCL", "ACCR")
        assert (log.answers[keep]["status"], log.answers[keep]["reason_code"]) == ("RJCR", "CUST")
        assert (log.returns[give]["amount"], log.returns[give]["currency"], log.returns[give]["reason_code"]) == ("40000", "KHR", "FOCR")
        assert keep not in log.returns
        p_give, p_keep = await payment(run, give), await payment(run, keep)
        assert (p_give["state"], case_state(p_give)) == ("RETURNED", "DONE")
        assert (p_keep["state"], case_state(p_keep)) == ("COMPLETED", "REFUSED")
