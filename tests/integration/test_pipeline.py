"""The switch end to end in one process, against the real Tansu broker, the PromptPay simulator
over real HTTP, and each database: good payments complete, every kind of bad input ends in a
status with an ISO reason code or in the dead-letter topic, and the switch keeps running."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from adapters.simulator import SimBehaviour
from switch.broker import TansuBroker
from switch.contracts import StatusEventV1
from tests.factories import sample_instruction
from switch.store.sql_store import Store

from tests.integration.harness import Running, partner_session, running_switch, signed, signed_as, topic_partitions

settle_s_max = 60.0
UNKNOWN_PROXY = "0066899999999"


def instruction(instruction_id: str, **changes: Any) -> dict[str, Any]:
    return sample_instruction(**{"instruction_id": instruction_id, "amount": {"value": "150000", "currency": "KHR"}, **changes})


async def publish(run: Running, records: list[tuple[str, bytes]]) -> None:
    """Each record signed by the participant it names (harness.signed)."""
    producer = AIOKafkaProducer(bootstrap_servers=run.config.kafka.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(run.config.kafka.instructions_topic, value=value, key=key.encode(), headers=signed(value))
    finally:
        await producer.stop()


async def collect(run: Running, topic: str, *, until: Any, timeout_s: float = settle_s_max) -> list[Any]:
    """Read `topic` from the beginning until `until(records)` holds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=run.config.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        parts = [TopicPartition(topic, p) for p in sorted(await topic_partitions(consumer, topic))]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        async with asyncio.timeout(timeout_s):
            while not until(records):
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


def events_for(records: list[Any], instruction_id: str) -> list[dict[str, Any]]:
    return [e for e in (json.loads(r.value) for r in records) if e["instruction_id"] == instruction_id]


def finals_by_id(records: list[Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        event = json.loads(r.value)
        if event["final"]:
            out.setdefault(event["instruction_id"], []).append(event)
    return out


async def test_payments_complete_and_bad_input_is_rejected_with_a_reason(broker: TansuBroker, store: Store) -> None:
    tag = uuid.uuid4().hex[:6]
    ids = {name: f"T{tag}-{name}" for name in
           ("good", "good_usd", "good_thb", "account", "decimals", "corridor", "proxy_format", "unknown_proxy",
            "wrong_type", "dup", "resend")}
    good = instruction(ids["good"])
    records = [
        (ids["good"], json.dumps(good).encode()),
        (ids["good_usd"], json.dumps(instruction(ids["good_usd"], debtor={"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "USD"}, amount={"value": "25.50", "currency": "USD"})).encode()),
        (ids["good_thb"], json.dumps(instruction(ids["good_thb"], amount={"value": "1000.00", "currency": "THB"})).encode()),
        (ids["account"], json.dumps(instruction(ids["account"], creditor={"name": "Suda Srisuk", "account": "0141234567", "agent": "014"})).encode()),
        (ids["decimals"], json.dumps(instruction(ids["decimals"], amount={"value": "150000.5", "currency": "KHR"})).encode()),
        (ids["corridor"], json.dumps(instruction(ids["corridor"], corridor="KH-XX")).encode()),
        (ids["proxy_format"], json.dumps(instruction(ids["proxy_format"], creditor={"name": "A B", "proxy": {"type": "MOBILE", "value": "+66812345678"}})).encode()),
        (ids["unknown_proxy"], json.dumps(instruction(ids["unknown_proxy"], creditor={"name": "A B", "proxy": {"type": "MOBILE", "value": UNKNOWN_PROXY}})).encode()),
        (ids["wrong_type"], json.dumps(instruction(ids["wrong_type"], amount={"value": 1500, "currency": "KHR"})).encode()),
        ("malformed", b'{"version": 1, "instruction_id": "broken'),
        (ids["dup"], json.dumps(instruction(ids["dup"])).encode()),
        (ids["dup"], json.dumps(instruction(ids["dup"], amount={"value": "999000", "currency": "KHR"})).encode()),
        (ids["resend"], json.dumps(instruction(ids["resend"])).encode()),
        (ids["resend"], json.dumps(instruction(ids["resend"])).encode()),
    ]
    async with running_switch(broker, store, SimBehaviour(unknown_proxies=frozenset({UNKNOWN_PROXY}))) as run:
        await publish(run, records)
        expected_ids = set(ids.values())
        statuses = await collect(
            run,
            run.config.kafka.status_topic,
            until=lambda rs: expected_ids <= set(finals_by_id(rs))
            and any(e["type"] == "conflict" for e in events_for(rs, ids["dup"]))
            and len(events_for(rs, ids["resend"])) >= 2,
        )
        for record in statuses:  # every event the switch emits honours the published contract
            StatusEventV1.model_validate_json(record.value)
        finals = finals_by_id(statuses)
        first = {k: v[0] for k, v in finals.items()}
        for name in ("good", "good_usd", "good_thb", "account"):
            assert first[ids[name]]["state"] == "COMPLETED", first[ids[name]]
        assert first[ids["good"]]["target_amount"]["currency"] == "THB"
        assert first[ids["good_thb"]]["target_amount"] == {"value": "1000.00", "currency": "THB"}
        assert first[ids["good_usd"]]["source_amount"] == {"value": "25.50", "currency": "USD"}
        expected_reasons = {"decimals": "CH20", "corridor": "AG01", "proxy_format": "BE23", "unknown_proxy": "BE23", "wrong_type": "FF01"}
        for name, code in expected_reasons.items():
            assert (first[ids[name]]["state"], first[ids[name]]["reason_code"]) == ("REJECTED", code), first[ids[name]]
        # same id, different payload: the first stands; the second is answered with a conflict
        # event that is no state of the instruction (never final), so only one outcome exists
        assert [(e["state"], e["reason_code"]) for e in finals[ids["dup"]]] == [("COMPLETED", None)]
        conflicts = [e for e in events_for(statuses, ids["dup"]) if e["type"] == "conflict"]
        assert [(e["state"], e["final"], e["reason_code"]) for e in conflicts] == [("CONFLICT", False, "DUPL")]
        assert conflicts[0]["uetr"] == finals[ids["dup"]][0]["uetr"]  # it names the payment that stands
        # every event carries an id, and no two distinct events share one
        event_ids = [json.loads(r.value)["event_id"] for r in statuses]
        assert all(event_ids) and len(set(event_ids)) == len(event_ids)
        # same id, same payload: the current or final outcome is replayed, never a second payment
        resend = events_for(statuses, ids["resend"])
        assert len({e["uetr"] for e in resend}) == 1
        assert [e["replayed"] for e in resend].count(True) >= 1
        assert len([e for e in resend if e["final"] and not e["replayed"]]) == 1

        dead = await collect(run, run.config.kafka.dlq_topic, until=lambda rs: len(rs) >= 2)
        by_key = {r.key.decode(): r for r in dead}
        malformed = by_key["malformed"]
        headers = dict(malformed.headers)
        assert malformed.value == b'{"version": 1, "instruction_id": "broken'
        assert headers["mekong.source.topic"].decode() == run.config.kafka.instructions_topic
        assert headers["mekong.source.offset"].decode().isdigit()
        assert headers["mekong.reason"].decode().startswith("malformed JSON")
        assert dict(by_key[ids["wrong_type"]].headers)["mekong.reason_code"] == b"FF01"

        async with run.ops_session() as http:
            uetr = first[ids["good"]]["uetr"]
            async with http.get(f"{run.url}/v1/payments/{uetr}", headers=run.auth) as resp:
                body = await resp.json()
            assert [h["to"] for h in body["history"]] == ["RECEIVED", "QUOTED", "SUBMITTED", "COMPLETED"]
            async with http.get(f"{run.url}/metrics") as resp:
                text = await resp.text()
            assert 'switch_payments_total{corridor="KH-TH",outcome="completed"}' in text
            assert 'switch_rejects_total{reason_code="CH20",stage="admission"}' in text


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10">&lol3;</Document>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10">&xxe;</Document>"""


async def test_hostile_or_invalid_xml_on_the_partner_endpoint_is_refused_and_the_switch_keeps_going(
    broker: TansuBroker, store: Store
) -> None:
    async with running_switch(broker, store) as run, partner_session("promptpay") as http:
        for body, code in ((BILLION_LAUGHS, "FF01"), (EXTERNAL_ENTITY, "FF01"), (b"<Document", "FF02"), (b"not xml at all", "FF02")):
            async with http.post(f"{run.partner_url}/iso20022/promptpay", data=body) as resp:
                answer = await resp.json()
            assert resp.status == 400
            assert answer["reason_code"] == code, answer
            assert "passwd" not in json.dumps(answer) and "lollol" not in json.dumps(answer)
        invalid = signed_as(  # signed by PromptPay, and no valid pacs.002 inside
            "promptpay",
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"><FIToFIPmtStsRpt><GrpHdr><MsgId>BAD1</MsgId>'
            b"</GrpHdr></FIToFIPmtStsRpt></Document>",
        )
        async with http.post(f"{run.partner_url}/iso20022/promptpay", data=invalid) as resp:
            answer = await resp.json()
        assert resp.status == 400 and answer["reason_code"] == "FF01" and answer["errors"]
        async with http.post(f"{run.partner_url}/iso20022/promptpay", data=b"x" * 2_000_000) as resp:
            assert resp.status == 413
        # still alive: a payment goes through
        iid = f"X{uuid.uuid4().hex[:10]}"
        await publish(run, [(iid, json.dumps(instruction(iid)).encode())])
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: iid in finals_by_id(rs))
        assert finals_by_id(statuses)[iid][0]["state"] == "COMPLETED"


async def test_a_resent_pacs002_is_recorded_once_and_not_applied_twice(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store, SimBehaviour(duplicate_rate=1.0, reject_rate=0.0)) as run:
        iid = f"D{uuid.uuid4().hex[:10]}"
        await publish(run, [(iid, json.dumps(instruction(iid)).encode())])
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: iid in finals_by_id(rs))
        for _ in range(100):  # the simulator answers a second time shortly after
            if run.sim.stats["callbacks_ok"] >= 2:
                break
            await asyncio.sleep(0.05)
        assert run.sim.stats["callbacks_ok"] >= 2
        async with run.ops_session() as http, http.get(f"{run.url}/metrics") as resp:
            body = await resp.text()
        assert 'switch_late_status_total{partner="promptpay"} 1.0' in body
        assert len(finals_by_id(statuses)[iid]) == 1
