"""FX quotes asked for first (issue 11), end to end on each database: the real Tansu broker, the
PromptPay simulator over real HTTP, the operations API over TLS. A quote is honoured exactly by
one instruction; reused, another participant's, another corridor's, another amount, expired ->
refused with the documented ISO code; a quote asked on Kafka is answered on the quotes topic."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from switch.broker import TansuBroker
from switch.config import DEFAULT_CONFIG_DIR
from switch.contracts import QuoteV1
from switch.entrypoints.cli import rates_table
from switch.store.sql_store import Store
from tests.factories import PARTNER_SAMPLES, sample_instruction
from tests.integration.harness import Running, running_switch, signed
from tests.integration.test_pipeline import collect, publish
from tests.openapi_contract import check

ACLB, ABAA = "ACLBKHPPXXX", "ABAAKHPPXXX"


async def ask_quote(run: Running, role: str, **body: Any) -> tuple[int, dict[str, Any]]:
    doc = {"participant": ACLB, "corridor": "KH-TH", "source_amount": {"value": "300000", "currency": "KHR"}, **body}
    async with run.ops_session() as http:
        async with http.post(f"{run.url}/v1/quotes", json=doc, headers=run.auth_as(role)) as resp:
            answer = await resp.json()
    check("post", "/v1/quotes", resp.status, answer)  # as the OpenAPI document says
    return resp.status, answer


def with_quote(tag: str, name: str, quote_id: str, **changes: Any) -> tuple[str, bytes]:
    fields = {"instruction_id": f"Q{tag}-{name}", "quote_id": quote_id, "amount": {"value": "300000", "currency": "KHR"}}
    doc = sample_instruction(**{**fields, **changes})
    return doc["instruction_id"], json.dumps(doc).encode()


def short_validity_config(tmp_path: Path) -> Path:
    """The shipped config, with KH-CN quotes valid for 1 s (to see one expire)."""
    config_dir = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config_dir)
    corridors = config_dir / "corridors.toml"
    text = corridors.read_text()
    head, _, cn = text.partition('id = "KH-CN"')
    corridors.write_text(head + 'id = "KH-CN"' + cn.replace("quote_validity_s = 600", "quote_validity_s = 1"))
    return config_dir


async def test_a_quote_is_honoured_once_and_refused_when_reused_mismatched_or_expired(
    broker: TansuBroker, store: Store, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    async with running_switch(broker, store, config_dir=short_validity_config(tmp_path)) as run:
        status, q1 = await ask_quote(run, f"participant:{ACLB}")
        assert status == 201 and q1["state"] == "QUOTED", q1
        _, q2 = await ask_quote(run, "operator")  # an operator may ask for any participant
        _, q3 = await ask_quote(run, f"participant:{ACLB}", corridor="KH-CN")  # valid 1 s
        assert (await ask_quote(run, f"participant:{ABAA}"))[0] == 403  # not for another participant
        status, refused = await ask_quote(run, "operator", source_amount={"value": "9000000", "currency": "KHR"})
        assert (status, refused["state"], refused["reason_code"]) == (422, "REFUSED", "AM02")
        assert (await ask_quote(run, "auditor"))[0] == 403  # auditors read only
        await asyncio.sleep(1.2)  # q3 expires
        union_creditor = PARTNER_SAMPLES["unionpay"]["instruction_creditor"]
        records = [
            with_quote(tag, "honoured", q1["quote_id"]),
            with_quote(tag, "reused", q1["quote_id"]),
            with_quote(tag, "amount", q2["quote_id"], amount={"value": "300100", "currency": "KHR"}),
            with_quote(tag, "other", q2["quote_id"], participant=ABAA,
                       debtor={"name": "Sok Dara", "account": "sok_dara@abaa", "currency": "KHR"}),
            with_quote(tag, "corridor", q2["quote_id"], corridor="KH-CN", creditor=union_creditor),
            with_quote(tag, "expired", q3["quote_id"], corridor="KH-CN", creditor=union_creditor),
        ]
        await publish(run, records[:1])
        first = await collect(run, run.config.kafka.status_topic, until=lambda rs: any(json.loads(r.value)["final"] for r in rs))
        await publish(run, records[1:])
        wanted = {ins_id for ins_id, _ in records}
        finals = await collect(
            run, run.config.kafka.status_topic,
            until=lambda rs: wanted <= {e["instruction_id"] for e in map(json.loads, (r.value for r in rs)) if e["final"]},
        )
        by_id = {e["instruction_id"]: e for e in map(json.loads, (r.value for r in first + finals)) if e["final"]}
        honoured = by_id[f"Q{tag}-honoured"]
        assert honoured["state"] == "COMPLETED" and honoured["quote_id"] == q1["quote_id"]
        assert honoured["target_amount"] == q1["target_amount"] and honoured["fx_rate"] == q1["rate"]
        assert honoured["effective_rate"] == q1["effective_rate"]
        codes = {name: by_id[f"Q{tag}-{name}"]["reason_code"] for name in ("reused", "amount", "other", "corridor", "expired")}
        assert codes == {"reused": "DUPL", "amount": "AM09", "other": "AG01", "corridor": "AG01", "expired": "TM01"}
        async with run.ops_session() as http:
            async with http.get(f"{run.url}/v1/payments/{honoured['uetr']}", headers=run.auth) as resp:
                payment = await resp.json()
            async with http.get(f"{run.url}/metrics", headers=run.auth) as resp:
                metrics = await resp.text()
        assert (payment["quote_id"], payment["effective_rate"]) == (q1["quote_id"], q1["effective_rate"])
        for line in ('switch_fx_quotes_total{corridor="KH-TH",outcome="issued"} 2.0',
                     'switch_fx_quotes_total{corridor="KH-TH",outcome="honoured"} 1.0',
                     'switch_fx_quotes_total{corridor="KH-TH",outcome="used"} 1.0',
                     'switch_fx_quotes_total{corridor="KH-CN",outcome="expired"} 1.0'):
            assert line in metrics, line


async def test_a_quote_asked_on_kafka_is_answered_on_the_quotes_topic_and_rates_are_listed(
    broker: TansuBroker, store: Store
) -> None:
    async with running_switch(broker, store) as run:
        request = {"version": 1, "type": "quote", "request_id": f"R{uuid.uuid4().hex[:8]}", "participant": ACLB,
                   "corridor": "KH-TH", "target_amount": {"value": "1000.00", "currency": "THB"}, "source_currency": "KHR"}
        value = json.dumps(request).encode()
        forged = json.dumps({**request, "request_id": "FORGED-1"}).encode()
        producer = AIOKafkaProducer(bootstrap_servers=run.config.kafka.bootstrap_servers, enable_idempotence=False)
        await producer.start()
        try:  # first one signed by another participant in ACLEDA's name: dead-lettered, never answered
            await producer.send_and_wait(run.config.kafka.requests_topic, value=forged, key=ACLB.encode(), headers=signed(forged, ABAA))
            for _ in range(2):  # the participant sends it twice: one quote, one answer
                await producer.send_and_wait(run.config.kafka.requests_topic, value=value, key=ACLB.encode(), headers=signed(value))
        finally:
            await producer.stop()
        records = await collect(run, run.config.kafka.quotes_topic, until=lambda rs: len(rs) >= 1)
        await asyncio.sleep(1.0)  # time for a second answer, if there wrongly were one
        records = await collect(run, run.config.kafka.quotes_topic, until=lambda rs: len(rs) >= 1)
        (record,) = records
        answer = QuoteV1.model_validate_json(record.value)
        assert (answer.state, answer.request_id, answer.fixed) == ("QUOTED", request["request_id"], "target")
        assert answer.target_amount is not None and answer.target_amount.value == "1000.00"
        assert record.key == f"{ACLB}/{request['request_id']}".encode()
        (dead,) = await collect(run, run.config.kafka.dlq_topic, until=lambda rs: len(rs) >= 1)
        assert dict(dead.headers)["mekong.reason"].startswith(b"participant mismatch")
        async with run.ops_session() as http:
            async with http.get(f"{run.url}/v1/fx/rates", headers=run.auth_as(f"participant:{ACLB}")) as resp:
                rates = await resp.json()
            check("get", "/v1/fx/rates", resp.status, rates)
        usd_thb = next(r for r in rates["rates"] if r["pair"] == "USD/THB")
        assert (usd_thb["source"], usd_thb["stale"], usd_thb["max_age_s"]) == ("static:USD/THB", False, 86400)
        assert rates["stale_after_s"] == 300
        assert "USD/THB" in rates_table(rates) and "0 stale" in rates_table(rates)


async def test_two_replicas_honour_a_quote_once_when_two_instructions_race_for_it(broker: TansuBroker, pg_store: Store) -> None:
    tag = uuid.uuid4().hex[:6]
    async with running_switch(broker, pg_store, replicas=2) as run:
        async with asyncio.timeout(30):  # both replicas consume (the group split the partitions)
            while not all(sw.partitions_assigned() for sw in [run.switch, *run.others]):
                await asyncio.sleep(0.1)
        quotes = [(await ask_quote(run, f"participant:{ACLB}"))[1]["quote_id"] for _ in range(6)]
        records = [with_quote(tag, f"{n}-{side}", q) for n, q in enumerate(quotes) for side in ("a", "b")]
        await publish(run, records)
        wanted = {ins_id for ins_id, _ in records}
        statuses = await collect(
            run, run.config.kafka.status_topic,
            until=lambda rs: wanted <= {e["instruction_id"] for e in map(json.loads, (r.value for r in rs)) if e["final"]},
        )
    finals = {e["instruction_id"]: e for e in map(json.loads, (r.value for r in statuses)) if e["final"]}
    for n, quote_id in enumerate(quotes):
        pair = [finals[f"Q{tag}-{n}-{side}"] for side in ("a", "b")]
        assert sorted(e["reason_code"] == "DUPL" for e in pair) == [False, True], pair  # one paid, one refused
        (paid,) = [e for e in pair if e["reason_code"] != "DUPL"]
        assert (paid["state"], paid["quote_id"]) == ("COMPLETED", quote_id)
