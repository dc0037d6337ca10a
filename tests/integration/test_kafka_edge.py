"""No record can stop the consumer (issue 7), against the real broker and a running switch on each
database: records too deep, too large for the old producer limit, not UTF-8, a pain.001 of another
version or in an AppHdr envelope, and a record whose reading raises, on both consumed topics. Each
ends in the dead-letter topic with its reason and source, the identifiable ones are answered, and a
valid instruction published after them is still admitted and answered."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from iso20022.schemas import SchemaSet, default_schema_dir
from switch import limits
from switch.broker import TansuBroker
from switch.entrypoints import kafka_consumer
from switch.metrics import DlqReason
from switch.store.sql_store import Store
from switch.tools.pain001_samples import pain001_from_instructions
from tests.integration.harness import Running, running_switch, signed
from tests.integration.test_pain001 import reports
from tests.integration.test_pipeline import collect, finals_by_id, instruction
from tests.unit.edge_kit import enveloped, in_version

# The old producer limit was kafka_message_bytes_max + 64_000: a record past it could not be
# dead-lettered whole. Tansu takes records of tens of MB (no message.max.bytes of 1 MB).
LARGE_BYTES = limits.kafka_request_bytes_max + 200_000
test_producer_request_bytes_max = 4 * LARGE_BYTES


async def publish(run: Running, topic: str, records: list[tuple[str, bytes | None]]) -> None:
    """Each record signed by the participant it names (harness.signed): what is refused here is
    the content, not the sender."""
    producer = AIOKafkaProducer(
        bootstrap_servers=run.config.kafka.bootstrap_servers, enable_idempotence=False,
        max_request_size=test_producer_request_bytes_max,
    )
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value=value, key=key.encode(), headers=signed(value))
    finally:
        await producer.stop()


async def dead_letters_by_key(run: Running, keys: set[str]) -> dict[str, Any]:
    records = await collect(run, run.config.kafka.dlq_topic, until=lambda rs: keys <= {r.key.decode() for r in rs})
    return {r.key.decode(): r for r in records if r.key.decode() in keys}


async def still_answers(run: Running) -> None:
    """A valid instruction published now is admitted and completes; the consumer task runs."""
    iid = f"OK{uuid.uuid4().hex[:10]}"
    await publish(run, run.config.kafka.instructions_topic, [(iid, json.dumps(instruction(iid)).encode())])
    statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: iid in finals_by_id(json_only(rs)))
    assert finals_by_id(json_only(statuses))[iid][0]["state"] == "COMPLETED"
    assert run.switch.kafka_ready()


def json_only(records: list[Any]) -> list[Any]:
    return [r for r in records if r.value.startswith(b"{")]


async def dlq_metric(run: Running) -> dict[str, float]:
    async with run.ops_session() as http, http.get(f"{run.url}/metrics") as resp:
        text = await resp.text()
    return {m[1]: float(m[2]) for m in re.finditer(r'^switch_dlq_total\{reason="([^"]*)"\} (\S+)$', text, re.M)}


async def test_hostile_json_records_are_dead_lettered_with_their_reason_and_the_consumer_goes_on(
    broker: TansuBroker, store: Store
) -> None:
    tag = uuid.uuid4().hex[:6]
    large = b'{"pad": "' + b"a" * LARGE_BYTES + b'"}'
    medium = b'{"pad": "' + b"b" * 200_000 + b'"}'
    hostile = {
        "deep": (b"[" * 60_000, "FF01", DlqReason.TOO_DEEP),
        "deeper": (b"[" * 100_000, "FF01", DlqReason.TOO_LARGE),  # past the JSON size bound first
        "large": (large, "FF01", DlqReason.TOO_LARGE),
        "medium": (medium, "FF01", DlqReason.TOO_LARGE),
        "not_utf8": (b'{"version": 1, "instruction_id": "\xff\xfe"}', "FF02", DlqReason.MALFORMED_JSON),
        "null": (None, "FF02", DlqReason.MALFORMED_JSON),  # a tombstone: no value at all
    }
    invalid_id = f"I{tag}-invalid"
    async with running_switch(broker, store) as run:
        k = run.config.kafka
        on_instructions = [(f"{tag}-i-{name}", value) for name, (value, _, _) in hostile.items()]
        on_replies = [(f"{tag}-r-{name}", value) for name, (value, _, _) in hostile.items()]
        identifiable = (f"{tag}-i-contract", json.dumps(instruction(invalid_id, amount={"value": 1, "currency": "KHR"})).encode())
        await publish(run, k.instructions_topic, [*on_instructions, identifiable])
        await publish(run, k.inbound_replies_topic, on_replies)

        dead = await dead_letters_by_key(run, {key for key, _ in on_instructions + on_replies} | {identifiable[0]})
        for topic, prefix in ((k.instructions_topic, "i"), (k.inbound_replies_topic, "r")):
            for name, (sent, code, _) in hostile.items():
                value = sent or b""
                record = dead[f"{tag}-{prefix}-{name}"]
                h = dict(record.headers)
                assert h["mekong.reason_code"].decode() == code, (name, h)
                assert h["mekong.reason"], name
                assert h["mekong.source.topic"].decode() == topic
                assert h["mekong.source.partition"].isdigit() and h["mekong.source.offset"].isdigit()
                assert h["mekong.source.value_bytes"] == str(len(value)).encode()
                assert h["mekong.source.sha256"] == hashlib.sha256(value).hexdigest().encode()
                if len(value) > limits.dlq_value_bytes_max:
                    assert record.value == value[: limits.dlq_prefix_bytes_max]
                    assert h["mekong.truncated"] == b"value"
                else:
                    assert record.value == value and "mekong.truncated" not in h
        assert dict(dead[f"{tag}-i-deep"].headers)["mekong.reason"].startswith(b"JSON nested deeper than")

        # the sender of the invalid instruction hears of it; the unreadable ones name no one
        statuses = await collect(run, k.status_topic, until=lambda rs: invalid_id in finals_by_id(json_only(rs)))
        (answer,) = finals_by_id(json_only(statuses))[invalid_id]
        assert (answer["state"], answer["reason_code"]) == ("REJECTED", "FF01")

        await still_answers(run)
        counts = await dlq_metric(run)
        assert set(counts) == {r.value for r in DlqReason}  # the fixed labels, none from a record
        expected = Counter(category.value for _, _, category in hostile.values() for _topic in (1, 2))
        expected["invalid_contract"] += 1
        assert {reason: n for reason, n in counts.items() if n} == expected


@pytest.fixture(scope="module")
def schemas_() -> SchemaSet:
    return SchemaSet(default_schema_dir())


async def test_a_pain001_of_another_version_or_in_an_envelope_is_dead_lettered_and_its_sender_gets_a_group_reject(
    broker: TansuBroker, store: Store, schemas_: SchemaSet
) -> None:
    tag = uuid.uuid4().hex[:6]

    def pain001(message_id: str) -> bytes:
        ins = instruction(f"{message_id}-1")
        return pain001_from_instructions([ins], message_id=message_id, created_at=datetime.now(timezone.utc), schemas=schemas_)

    sent = {
        f"V03{tag}": in_version(pain001(f"V03{tag}"), "pain.001.001.03"),
        f"V11{tag}": in_version(pain001(f"V11{tag}"), "pain.001.001.11"),
        f"ENV{tag}": enveloped(pain001(f"ENV{tag}")),
    }
    async with running_switch(broker, store) as run:
        await publish(run, run.config.kafka.instructions_topic, list(sent.items()))
        dead = await dead_letters_by_key(run, set(sent))
        for message_id, value in sent.items():
            h = dict(dead[message_id].headers)
            assert dead[message_id].value == value
            assert h["mekong.reason_code"] == b"FF01"
            assert b"pain.001.001.09" in h["mekong.reason"]

        got = await collect(run, run.config.kafka.status_topic,
                            until=lambda rs: set(sent) <= {r.group_status.original_message_id for r in reports(rs)})
        rejects = {r.group_status.original_message_id: r for r in reports(got)}
        for message_id in sent:
            group = rejects[message_id].group_status
            assert group.status == "RJCT"
            assert group.reasons[0].code == "FF01"
            assert "pain.001.001.09" in group.reasons[0].additional_info[0]
        assert "envelope" in rejects[f"ENV{tag}"].group_status.reasons[0].additional_info[0]
        assert "pain.001.001.03" in rejects[f"V03{tag}"].group_status.reasons[0].additional_info[0]

        await still_answers(run)
        assert (await dlq_metric(run))["unsupported_message"] == 3


async def test_a_record_whose_reading_raises_is_dead_lettered_alone_and_the_batch_goes_on(
    broker: TansuBroker, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = kafka_consumer.parse_record

    def exploding(record: Any) -> Any:
        if b"BOOM" in (record.value or b""):
            raise RecursionError("maximum recursion depth exceeded")
        return real(record)

    monkeypatch.setattr(kafka_consumer, "parse_record", exploding)
    tag = uuid.uuid4().hex[:6]
    before, boom, after = f"B{tag}-1", f"B{tag}-BOOM", f"B{tag}-2"
    async with running_switch(broker, store) as run:
        await publish(run, run.config.kafka.instructions_topic,
                      [(iid, json.dumps(instruction(iid)).encode()) for iid in (before, boom, after)])
        dead = await dead_letters_by_key(run, {boom})
        h = dict(dead[boom].headers)
        assert b"RecursionError" in h["mekong.reason"]
        statuses = await collect(run, run.config.kafka.status_topic,
                                 until=lambda rs: {before, after, boom} <= set(finals_by_id(json_only(rs))))
        finals = finals_by_id(json_only(statuses))
        assert finals[before][0]["state"] == finals[after][0]["state"] == "COMPLETED"
        assert finals[boom][0]["state"] == "REJECTED"  # its sender is named: it hears of it
        await still_answers(run)
        assert (await dlq_metric(run))["unreadable"] == 1
