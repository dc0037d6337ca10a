"""The Kafka edge checks who published each record (issue 8 item 3), on the in-memory fakes: the
real consumer's batch processing (`InstructionConsumer._process`), the real bus and handlers, a
fake store and a fake producer for the dead-letter topic. A record that is unsigned, wrongly
signed, or signed by another participant than the one it names is dead-lettered with its
reason, counted and audited, and changes nothing else: no payment, no idempotency key, no status
to the participant it names. The integration tests (tests/integration/test_kafka_signatures.py)
do the same through the real broker and database."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from iso20022.schemas import SchemaSet
from switch import limits
from switch.entrypoints.kafka_consumer import InstructionConsumer
from switch.kafka_auth import KeyRing, ParticipantKey, key_id_of, signature_headers
from switch.metrics import DlqReason
from switch.service.audit import KAFKA_DEAD_LETTERED
from switch.service.bus import MessageBus
from switch.service.handlers import Deps
from switch.tools.pain001_samples import pain001_from_instructions
from tests.factories import sample_instruction
from tests.fakes import FakeClock, FakeStore, deps_from_config
from tests.unit.edge_kit import consumer_record
from tests.unit.test_kafka_edge import FakeProducer

ACLB, ABAA, WING = "ACLBKHPPXXX", "ABAAKHPPXXX", "WINGKHPPXXX"
KEYS = {code: Ed25519PrivateKey.generate() for code in (ACLB, ABAA, WING)}
INSTRUCTIONS, REPLIES = "mekong.instructions", "mekong.inbound.replies"


def ring(*, not_after: Any = None) -> KeyRing:
    return KeyRing(ParticipantKey(key_id_of(k.public_key()), code, k.public_key(), not_after) for code, k in KEYS.items())


class FakeKafka:
    """What _process needs of the consumer: the offset commit."""

    def __init__(self) -> None:
        self.committed: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(offsets)


class Edge:
    def __init__(self, deps: Deps, key_ring: KeyRing | None) -> None:
        self.deps = deps
        self.store = FakeStore()
        self.producer = FakeProducer([])
        bus = MessageBus(self.store, deps, on_commit=lambda _: None, metrics=deps.metrics)  # type: ignore[arg-type]
        self.consumer = InstructionConsumer(deps.config, bus, self.producer, metrics=deps.metrics, key_ring=key_ring)  # type: ignore[arg-type]
        self.offset = 0

    def record(self, value: bytes, headers: list[tuple[str, bytes]], *, topic: str = INSTRUCTIONS) -> ConsumerRecord[bytes, bytes]:
        self.offset += 1
        return consumer_record(value, topic=topic, partition=0, offset=self.offset, headers=headers)

    async def feed(self, *records: ConsumerRecord[bytes, bytes]) -> None:
        batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        for r in records:
            batches.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        await self.consumer._process(FakeKafka(), batches)  # type: ignore[arg-type]
        await self.consumer.offsets_committed()

    # what the batch left behind
    def dead(self) -> list[dict[str, bytes]]:
        return [headers for _topic, _key, _value, headers in self.producer.delivered]

    def statuses(self) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m in self.store.state.outbox_messages("status") if m.body.startswith(b"{")]

    def pain002s(self) -> list[bytes]:
        return [m.body for m in self.store.state.outbox_messages("status") if m.body.startswith(b"<")]

    def security_refusals(self, reason: DlqReason) -> float:
        return self.deps.metrics.security_refusals.labels("kafka", reason.value)._value.get()

    def audited(self) -> list[dict[str, Any]]:
        return [e.detail for e in self.store.state.audit if e.action == KAFKA_DEAD_LETTERED]


@pytest.fixture
def deps(schemas: SchemaSet, clock: FakeClock) -> Deps:
    return deps_from_config(schemas, clock)


@pytest.fixture
def edge(deps: Deps) -> Edge:
    return Edge(deps, ring())


def instruction(iid: str, participant: str = ACLB, **changes: Any) -> bytes:
    suffix = participant[:4].lower()
    doc = sample_instruction(instruction_id=iid, participant=participant, **changes)
    if participant != ACLB and "debtor" not in changes:
        doc["debtor"] = {**doc["debtor"], "account": f"sok_dara@{suffix}"}
    return json.dumps(doc).encode()


def signed_by(participant: str, value: bytes) -> list[tuple[str, bytes]]:
    return signature_headers(value, KEYS[participant])


def assert_nothing_admitted(edge: Edge) -> None:
    assert edge.store.state.instructions == {} and edge.store.state.payments == {}
    assert edge.statuses() == [] and edge.pain002s() == []


# ------------------------------------------------------------------ instructions


async def test_an_instruction_signed_by_the_participant_it_names_is_admitted(edge: Edge) -> None:
    value = instruction("OK-1")
    await edge.feed(edge.record(value, signed_by(ACLB, value)))
    assert set(edge.store.state.instructions) == {(ACLB, "OK-1")}
    assert edge.dead() == [] and edge.audited() == []


async def test_an_instruction_signed_by_another_participant_is_refused_and_leaves_the_id_to_its_owner(edge: Edge) -> None:
    value = instruction("VICTIM-1")
    await edge.feed(edge.record(value, signed_by(ABAA, value)))  # ABA's valid key, naming ACLEDA
    (dead,) = edge.dead()
    assert (dead["mekong.reason_code"], dead["mekong.reason"].split(b":")[0]) == (b"DS0H", b"participant mismatch")
    assert_nothing_admitted(edge)
    assert edge.security_refusals(DlqReason.PARTICIPANT_MISMATCH) == 1
    (audited,) = edge.audited()
    assert (audited["category"], audited["reason_code"], audited["signer"]) == ("participant_mismatch", "DS0H", ABAA)
    assert audited["key_id"] == key_id_of(KEYS[ABAA].public_key())

    await edge.feed(edge.record(value, signed_by(ACLB, value)))  # the rightful participant, same id, same bytes
    assert set(edge.store.state.instructions) == {(ACLB, "VICTIM-1")}
    (payment,) = edge.store.state.payments.values()  # admitted as new: on its way to the partner
    assert (payment.participant, payment.instruction_id) == (ACLB, "VICTIM-1")
    assert len(edge.store.state.outbox_messages("partner")) == 1
    assert edge.statuses() == []  # no conflict, no replay, no reject: nothing was there before it


@pytest.mark.parametrize("headers, reason", [
    ([], DlqReason.UNSIGNED),
    ([("mekong.key_id", key_id_of(Ed25519PrivateKey.generate().public_key()).encode()), ("mekong.sig", b"A" * 86 + b"==")],
     DlqReason.UNKNOWN_KEY),
], ids=["unsigned", "unknown key"])
async def test_an_unsigned_or_unknown_key_instruction_is_refused_and_answers_no_one(
    edge: Edge, headers: list[tuple[str, bytes]], reason: DlqReason
) -> None:
    value = instruction("NOSIG-1")
    await edge.feed(edge.record(value, headers))
    (dead,) = edge.dead()
    assert dead["mekong.reason_code"] == {"unsigned": b"DS0A", "unknown_key": b"DS0E"}[reason.value]
    assert_nothing_admitted(edge)
    assert edge.security_refusals(reason) == 1
    assert edge.audited()[0]["category"] == reason.value


async def test_a_tampered_instruction_is_a_bad_signature(edge: Edge) -> None:
    value = instruction("TAMPER-1")
    tampered = value.replace(b"Somchai Jaidee", b"Mallory Thief!")
    await edge.feed(edge.record(tampered, signed_by(ACLB, value)))
    (dead,) = edge.dead()
    assert dead["mekong.reason_code"] == b"DS0B"
    assert_nothing_admitted(edge)
    assert edge.security_refusals(DlqReason.BAD_SIGNATURE) == 1


async def test_a_key_past_its_not_after_is_refused(deps: Deps, clock: FakeClock) -> None:
    edge = Edge(deps, ring(not_after=clock.now - timedelta(seconds=1)))
    value = instruction("OLD-1")
    await edge.feed(edge.record(value, signed_by(ACLB, value)))
    (dead,) = edge.dead()
    assert dead["mekong.reason_code"] == b"DS0D"
    assert_nothing_admitted(edge)


async def test_an_invalid_instruction_naming_another_participant_is_a_mismatch_not_a_reject_to_it(edge: Edge) -> None:
    value = instruction("BAD-1", amount={"value": 1, "currency": "KHR"})  # breaks the contract, names ACLEDA
    await edge.feed(edge.record(value, signed_by(WING, value)))
    (dead,) = edge.dead()
    assert dead["mekong.reason_code"] == b"DS0H"
    assert_nothing_admitted(edge)  # without signatures ACLEDA would hear "REJECTED FF01" for its id


async def test_an_invalid_instruction_is_answered_to_its_signer(edge: Edge) -> None:
    value = instruction("BAD-2", amount={"value": 1, "currency": "KHR"})
    await edge.feed(edge.record(value, signed_by(ACLB, value)))
    (dead,) = edge.dead()
    assert dead["mekong.reason_code"] == b"FF01"
    (status,) = edge.statuses()
    assert (status["participant"], status["instruction_id"], status["state"]) == (ACLB, "BAD-2", "REJECTED")
    assert edge.audited()[0]["signer"] == ACLB


async def test_a_signed_json_instruction_relabelled_as_xml_is_dead_lettered_without_a_json_reject(edge: Edge) -> None:
    """Anyone who can read the topic can copy a signed record and add a content-type header (headers
    are not signed): the copy fails as XML and must not tell the owner its instruction was rejected."""
    value = instruction("COPY-1")
    await edge.feed(edge.record(value, [("content-type", b"application/xml"), *signed_by(ACLB, value)]))
    (dead,) = edge.dead()
    assert dead["mekong.reason_code"] in (b"FF01", b"FF02")
    assert edge.statuses() == []


async def test_a_security_refusal_and_a_good_record_in_one_batch(edge: Edge) -> None:
    forged, good = instruction("MIX-1"), instruction("MIX-2", ABAA)
    await edge.feed(edge.record(forged, signed_by(ABAA, forged)), edge.record(good, signed_by(ABAA, good)))
    assert set(edge.store.state.instructions) == {(ABAA, "MIX-2")}
    assert [d["mekong.reason_code"] for d in edge.dead()] == [b"DS0H"]


async def test_verdicts_stay_with_their_records_across_verification_chunks(edge: Edge) -> None:
    """More records than one verification chunk (they are verified in parallel threads): each
    forged one, and only those, is refused."""
    n = 2 * limits.signature_verify_chunk_records_max + 10
    records, forged_offsets = [], set()
    for i in range(n):
        value = instruction(f"CH-{i}")
        forged = i % 7 == 3
        records.append(edge.record(value, signed_by(ABAA if forged else ACLB, value)))
        if forged:
            forged_offsets.add(records[-1].offset)
    await edge.feed(*records)
    dead_offsets = {int(d["mekong.source.offset"]) for d in edge.dead()}
    assert dead_offsets == forged_offsets
    assert len(edge.store.state.instructions) == n - len(forged_offsets)


class ExplodingRing(KeyRing):
    """A key ring whose verification raises on one record (a bug, or something no test foresaw)."""

    def verify(self, value: bytes, headers: Any, *, now: Any) -> Any:
        if b"BOOM" in value:
            raise RecursionError("maximum recursion depth exceeded")
        return super().verify(value, headers, now=now)


async def test_a_verification_that_raises_dead_letters_that_record_alone(deps: Deps) -> None:
    edge = Edge(deps, ExplodingRing(ParticipantKey(key_id_of(k.public_key()), c, k.public_key()) for c, k in KEYS.items()))
    good, boom = instruction("OK-2"), instruction("BOOM-1")
    await edge.feed(edge.record(boom, signed_by(ACLB, boom)), edge.record(good, signed_by(ACLB, good)))
    (dead,) = edge.dead()
    assert b"RecursionError" in dead["mekong.reason"]
    assert set(edge.store.state.instructions) == {(ACLB, "OK-2")}


# ------------------------------------------------------------------ pain.001


def pain001(message_id: str, schemas: SchemaSet, *, second_agent: str | None = None) -> bytes:
    usd = {"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "USD"}
    body = pain001_from_instructions(
        [sample_instruction(instruction_id=f"{message_id}-1"),
         sample_instruction(instruction_id=f"{message_id}-2", debtor=usd, amount={"value": "25.50", "currency": "USD"})],
        message_id=message_id, created_at=__import__("datetime").datetime(2026, 11, 28, tzinfo=__import__("datetime").timezone.utc),
        schemas=schemas,
    )
    if second_agent is not None:  # the second payment information's debtor agent names someone else
        agent = b"<DbtrAgt><FinInstnId><BICFI>ACLBKHPPXXX</BICFI>"
        at = body.rindex(agent)
        body = body[:at] + agent.replace(b"ACLBKHPPXXX", second_agent.encode()) + body[at + len(agent):]
    return body


async def test_a_pain001_signed_by_its_debtor_agent_is_admitted_and_reported(edge: Edge, schemas: SchemaSet) -> None:
    value = pain001("PSIG1", schemas)
    await edge.feed(edge.record(value, signed_by(ACLB, value)))
    assert set(edge.store.state.instructions) == {(ACLB, "PSIG1-1"), (ACLB, "PSIG1-2")}
    assert len(edge.pain002s()) == 1


async def test_a_pain001_signed_by_another_participant_is_refused_without_a_pain002(edge: Edge, schemas: SchemaSet) -> None:
    value = pain001("PSIG2", schemas)
    await edge.feed(edge.record(value, signed_by(ABAA, value)))
    (dead,) = edge.dead()
    assert dead["mekong.reason_code"] == b"DS0H"
    assert_nothing_admitted(edge)


async def test_a_pain001_with_one_payment_information_of_another_debtor_agent_is_refused_whole(
    edge: Edge, schemas: SchemaSet
) -> None:
    value = pain001("PSIG3", schemas, second_agent=ABAA)
    await edge.feed(edge.record(value, signed_by(ACLB, value)))
    (dead,) = edge.dead()
    assert dead["mekong.reason_code"] == b"DS0H" and ABAA.encode() in dead["mekong.reason"]
    assert_nothing_admitted(edge)  # not even ACLEDA's own payment information


async def test_an_unsigned_pain001_is_refused_without_a_pain002(edge: Edge, schemas: SchemaSet) -> None:
    await edge.feed(edge.record(pain001("PSIG4", schemas), []))
    (dead,) = edge.dead()
    assert dead["mekong.reason_code"] == b"DS0A"
    assert_nothing_admitted(edge)


# ------------------------------------------------------------------ inbound replies


def reply(participant: str) -> bytes:
    return json.dumps({"version": 1, "uetr": "0b9d6c3e-1f2a-4b5c-8d7e-9f0a1b2c3d4e", "participant": participant,
                       "decision": "REJECT", "reason_code": "AC04"}).encode()


async def test_a_reply_signed_by_another_participant_is_refused(edge: Edge) -> None:
    value = reply(ACLB)
    await edge.feed(edge.record(value, signed_by(ABAA, value), topic=REPLIES))
    (dead,) = edge.dead()
    assert dead["mekong.reason_code"] == b"DS0H"
    assert edge.security_refusals(DlqReason.PARTICIPANT_MISMATCH) == 1


async def test_an_unsigned_reply_is_refused(edge: Edge) -> None:
    await edge.feed(edge.record(reply(ACLB), [], topic=REPLIES))
    (dead,) = edge.dead()
    assert dead["mekong.reason_code"] == b"DS0A"


async def test_a_reply_signed_by_the_participant_it_names_is_taken(edge: Edge) -> None:
    value = reply(ACLB)
    await edge.feed(edge.record(value, signed_by(ACLB, value), topic=REPLIES))
    assert edge.dead() == []  # read and handed on (this UETR is unknown here: counted and ignored)


# ------------------------------------------------------------------ --insecure-dev


async def test_without_a_key_ring_records_are_taken_as_the_participant_they_name(deps: Deps) -> None:
    edge = Edge(deps, None)
    value = instruction("DEV-1")
    await edge.feed(edge.record(value, []))
    assert set(edge.store.state.instructions) == {(ACLB, "DEV-1")}
    assert edge.dead() == []
