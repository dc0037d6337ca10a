"""Fuzzing the Kafka edge through the real broker and a running switch (issue 7): random bytes,
random JSON, JSON nested past the bound, and valid instructions, pain.001 documents and inbound
replies with random byte flips, insertions, deletions and truncations, on both consumed topics.
Most records are signed by the participant they name (issue 8: the content is what is fuzzed);
some carry no signature or a damaged one, and must end on the dead-letter topic as such.

Afterwards every fuzz record is accounted for (its source coordinates on the dead-letter topic,
or: an instruction valid by the published contract answered on the status topic, a pain.001
answered by its acceptance pain.002, a valid reply counted), the consumer task still runs, and a
valid instruction published after them all still completes.

The records are drawn by Hypothesis up front (a synchronous @given that only collects) and then
sent in one go: one switch per database, not one per example. MEKONG_FUZZ_EXAMPLES sets the
number of records (default small, so the suite stays fast)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from iso20022.schemas import SchemaSet, default_schema_dir
from switch.broker import TansuBroker
from switch.contracts import InboundReplyV1, InstructionV1
from switch.service.pain_reports import admission_message_id
from switch.store.sql_store import Store
from switch.tools.pain001_samples import pain001_from_instructions
from tests.integration.harness import Running, running_switch, signed, signers, topic_partitions
from tests.integration.test_kafka_edge import still_answers
from tests.integration.test_pipeline import instruction, settle_s_max

FUZZ_EXAMPLES = int(os.environ.get("MEKONG_FUZZ_EXAMPLES", "30"))
settings.register_profile(
    "kafka-edge-fuzz",
    max_examples=FUZZ_EXAMPLES,
    phases=[Phase.generate],  # the records are only collected here: nothing to shrink
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
TOPICS = ("instructions", "replies")


@dataclass(frozen=True)
class Case:
    """One fuzz record before it gets its unique ids: `payload` for the random kinds, `base` and
    `edits` for a mutated valid message."""

    topic: str
    payload: bytes | None = None
    base: str | None = None  # "instruction" | "pain001" | "reply"
    edits: tuple[tuple[str, float, int], ...] = ()  # (flip | insert | delete | truncate, where 0..1, byte)
    signature: str = "named"  # signed by the participant it names | "none" | "damaged"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
edits = st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]), st.floats(0, 1), st.integers(0, 255)),
    min_size=1, max_size=4,
).map(tuple)
signatures = st.sampled_from(["named"] * 8 + ["none", "damaged"])
cases = st.one_of(
    st.builds(Case, topic=st.sampled_from(TOPICS), payload=st.binary(max_size=300), signature=signatures),
    st.builds(Case, topic=st.sampled_from(TOPICS), payload=json_values.map(lambda v: json.dumps(v).encode()), signature=signatures),
    st.builds(Case, topic=st.sampled_from(TOPICS), payload=st.integers(17, 3_000).map(lambda d: b"[" * d + b"]" * d),
              signature=signatures),
    st.builds(  # a valid instruction with some fields replaced by random JSON: often identifiable, never valid
        Case, topic=st.just("instructions"), base=st.just("instruction"),
        payload=st.dictionaries(st.sampled_from(["version", "corridor", "debtor", "creditor", "amount", "qr", "extra"]),
                                json_values, min_size=1, max_size=3).map(lambda d: json.dumps(d).encode()),
        signature=signatures,
    ),
    st.builds(Case, topic=st.sampled_from(TOPICS), base=st.sampled_from(["instruction", "pain001", "reply"]), edits=edits,
              signature=signatures),
)


def draw_cases() -> list[Case]:
    drawn: list[Case] = []

    @settings(settings.get_profile("kafka-edge-fuzz"))
    @given(cases)
    def collect_one(case: Case) -> None:
        drawn.append(case)

    collect_one()
    return drawn


def mutate(value: bytes, changes: tuple[tuple[str, float, int], ...]) -> bytes:
    data = bytearray(value)
    for op, where, byte in changes:
        at = min(int(where * len(data)), max(len(data) - 1, 0))
        if op == "flip" and data:
            data[at] ^= 1 << (byte % 8)
        elif op == "insert":
            data.insert(at, byte)
        elif op == "delete" and data:
            del data[at]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


def materialise(case: Case, i: int, tag: str, schemas: SchemaSet) -> bytes:
    if case.base is None:
        assert case.payload is not None
        return case.payload
    iid = f"F{tag}-{i}"
    if case.payload is not None:  # fields replaced by random JSON
        return json.dumps({**instruction(iid), **json.loads(case.payload)}).encode()
    if case.base == "instruction":
        valid = json.dumps(instruction(iid)).encode()
    elif case.base == "pain001":
        valid = pain001_from_instructions([instruction(iid)], message_id=f"FM{tag}{i}", created_at=datetime.now(timezone.utc),
                                          schemas=schemas)
    else:
        valid = json.dumps({"version": 1, "uetr": str(uuid.uuid4()), "participant": "ACLBKHPPXXX", "decision": "ACCEPT"}).encode()
    return mutate(valid, case.edits)


def signature_headers(case: Case, value: bytes) -> list[tuple[str, bytes]]:
    """Signed by the participant `value` names (harness.signed), none, or with one character of
    the base64 signature changed (still base64 of 64 bytes: only the verification can fail)."""
    if case.signature == "none":
        return []
    headers = signed(value)
    if case.signature == "damaged":
        sig = bytearray(dict(headers)["mekong.sig"])
        sig[10] = ord("A") if sig[10] != ord("A") else ord("B")
        headers = [(k, bytes(sig) if k == "mekong.sig" else v) for k, v in headers]
    return headers


@dataclass
class Sent:
    value: bytes
    topic: str
    partition: int
    offset: int

    @property
    def coordinates(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


def valid(contract: type[Any], value: bytes) -> Any | None:
    try:
        return contract.model_validate_json(value)
    except ValidationError:
        return None


async def read_topics(run: Running, topics: list[str], *, until: Any, timeout_s: float = settle_s_max) -> list[Any]:
    """Read `topics` from the beginning until `until(records)` holds or `timeout_s` passes (the
    caller's assertion then says what is missing)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=run.config.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        parts = [TopicPartition(t, p) for t in topics for p in sorted(await topic_partitions(consumer, t))]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not until(records) and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def replies_counted(run: Running) -> float:
    async with run.ops_session() as http, http.get(f"{run.url}/metrics") as resp:
        text = await resp.text()
    found = re.search(r'^switch_instructions_total\{result="reply_unknown"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_fuzzed_records_on_both_topics_are_all_accounted_for_and_the_switch_keeps_answering(
    broker: TansuBroker, store: Store
) -> None:
    tag = uuid.uuid4().hex[:6]
    schemas = SchemaSet(default_schema_dir())
    drawn = draw_cases()
    assert len(drawn) >= min(FUZZ_EXAMPLES, 10)
    async with running_switch(broker, store) as run:
        k = run.config.kafka
        topic_of = {"instructions": k.instructions_topic, "replies": k.inbound_replies_topic}
        producer = AIOKafkaProducer(bootstrap_servers=k.bootstrap_servers, enable_idempotence=False)
        await producer.start()
        sent: list[Sent] = []
        try:
            for i, case in enumerate(drawn):
                value = materialise(case, i, tag, schemas)
                meta = await producer.send_and_wait(topic_of[case.topic], value=value, key=f"{tag}-{i}".encode(),
                                                    headers=signature_headers(case, value))
                sent.append(Sent(value, meta.topic, meta.partition, meta.offset))
        finally:
            await producer.stop()

        status_keys_needed: dict[int, str] = {}
        report_ids_needed: dict[int, str] = {}
        replies_valid: set[int] = set()
        for i, s in enumerate(sent):
            if drawn[i].signature != "named":
                continue  # refused before it is read (checked below)
            if s.topic == k.inbound_replies_topic:
                reply = valid(InboundReplyV1, s.value)
                # a reply is taken only from the participant it names (else: a mismatch, dead-lettered)
                if reply is not None and reply.participant == signers().named(s.value, default=""):
                    replies_valid.add(i)
                continue
            ins = valid(InstructionV1, s.value)
            if ins is not None:
                status_keys_needed[i] = f"{ins.participant}/{ins.instruction_id}"
            report_ids_needed[i] = admission_message_id(f"{s.topic}:{s.partition}:{s.offset}")

        def unaccounted(records: list[Any]) -> list[int]:
            dead = set()
            status_keys, report_ids = set(), set()
            for r in records:
                if r.topic == k.dlq_topic:
                    h = dict(r.headers)
                    dead.add((h["mekong.source.topic"].decode(), int(h["mekong.source.partition"]), int(h["mekong.source.offset"])))
                elif r.value.startswith(b"<"):
                    found = re.search(rb"<MsgId>([^<]*)</MsgId>", r.value)
                    report_ids.add(found.group(1).decode() if found else "")
                else:
                    status_keys.add(r.key.decode())
            return [
                i for i, s in enumerate(sent)
                if s.coordinates not in dead and i not in replies_valid
                and status_keys_needed.get(i) not in status_keys and report_ids_needed.get(i) not in report_ids
            ]

        records = await read_topics(run, [k.dlq_topic, k.status_topic], until=lambda rs: not unaccounted(rs))
        missing = unaccounted(records)
        assert run.switch.kafka_ready(), "the consumer task ended"
        assert not missing, [(i, drawn[i], sent[i].value[:200]) for i in missing[:10]]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle_s_max
        while await replies_counted(run) < len(replies_valid) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        assert await replies_counted(run) == len(replies_valid)
        codes_at: dict[tuple[str, int, int], bytes] = {}
        for r in records:  # every dead letter names where it came from and why
            if r.topic == k.dlq_topic:
                h = dict(r.headers)
                assert h["mekong.reason"] and h["mekong.reason_code"] and h["mekong.source.sha256"]
                codes_at[(h["mekong.source.topic"].decode(), int(h["mekong.source.partition"]), int(h["mekong.source.offset"]))] = (
                    h["mekong.reason_code"])
        for i, s in enumerate(sent):  # unsigned and damaged signatures are refused as such, whatever the content
            expected = {"none": b"DS0A", "damaged": b"DS0B"}.get(drawn[i].signature)
            if expected is not None:
                assert codes_at.get(s.coordinates) == expected, (i, drawn[i], codes_at.get(s.coordinates))
        await still_answers(run)
