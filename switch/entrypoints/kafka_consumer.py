"""The Kafka edge for `mekong.instructions` and `mekong.inbound.replies` (STYLE §6, A3, A4).

At least once: a batch is parsed, bad records go to the dead-letter topic (and are acknowledged
by the broker) first, the good ones are admitted in ONE database transaction (state, history,
idempotency keys, outbox), and only then is the offset committed. A crash anywhere means the
batch is read again, and `admit` turns the redelivery into replays that change nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from switch import limits
from switch.config import SwitchConfig
from switch.contracts import InboundReplyV1, InstructionV1, StatusEventV1
from switch.domain.payment import PaymentState
from switch.metrics import Metrics
from adapters.proxy_resolution import Resolution
from switch.service.bus import MessageBus
from switch.service.handlers import AcceptInstructions, Outcome, ParsedInstruction
from switch.service.inbound import ApplyInboundReplies
from switch.service.pain_reports import admission_report, group_reject
from switch.service.resolver import ProxyResolver, proxies_to_resolve
from switch.entrypoints.pain001_edge import Pain001Record, Pain001Refused, is_xml, read_pain001
from switch.store.sql_store import OutboxMessage, UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: ConsumerRecord[bytes, bytes]
    reason: str
    reason_code: str  # ISO external code: FF02 syntax, FF01 format


ContractT = TypeVar("ContractT", InstructionV1, InboundReplyV1)


def _read_json(record: ConsumerRecord[bytes, bytes], contract: type[ContractT], what: str) -> ContractT | DeadLetter:
    """The record's value validated against a JSON contract, or why it goes to the dead letters."""
    raw = record.value or b""
    if len(raw) > limits.kafka_message_bytes_max:
        return DeadLetter(record, f"record of {len(raw)} bytes exceeds {limits.kafka_message_bytes_max}", "FF01")
    try:
        return contract.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            return DeadLetter(record, f"malformed JSON: {errors[0]['msg']}", "FF02")
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors[:5])
        return DeadLetter(record, f"invalid {what}: {problems}", "FF01")


def parse_record(record: ConsumerRecord[bytes, bytes]) -> ParsedInstruction | DeadLetter:
    instruction = _read_json(record, InstructionV1, "instruction v1")
    if isinstance(instruction, DeadLetter):
        return instruction
    return ParsedInstruction(instruction, instruction.fingerprint(), f"{record.topic}:{record.partition}:{record.offset}")


def parse_reply(record: ConsumerRecord[bytes, bytes]) -> InboundReplyV1 | DeadLetter:
    """A participant's answer to an inbound payment, or the reason it cannot be read."""
    return _read_json(record, InboundReplyV1, "inbound reply v1")


def dead_letter_headers(dl: DeadLetter) -> list[tuple[str, bytes]]:
    return [
        ("mekong.reason", dl.reason[:1000].encode()),
        ("mekong.reason_code", dl.reason_code.encode()),
        ("mekong.source.topic", dl.record.topic.encode()),
        ("mekong.source.partition", str(dl.record.partition).encode()),
        ("mekong.source.offset", str(dl.record.offset).encode()),
    ]


def _identifiable(dl: DeadLetter) -> tuple[str, str] | None:
    """(participant, instruction id) when a dead-lettered record still names them, so the sender
    also hears of the reject on the status topic."""
    try:
        data = json.loads(dl.record.value or b"")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    participant, instruction_id = data.get("participant"), data.get("instruction_id")
    if isinstance(participant, str) and isinstance(instruction_id, str) and 0 < len(instruction_id) <= 64:
        return participant[:11], instruction_id
    return None


class _Rebalance(ConsumerRebalanceListener):
    """On revocation, wait for the batch in hand: it is committed (DB, then offsets) before the
    partitions move to another switch."""

    def __init__(self, owner: InstructionConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._owner.lock:
            await self._owner.offsets_committed()
            log.info("partitions revoked: %s", sorted((tp.topic, tp.partition) for tp in revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if assigned:
            self._owner.assigned.set()
        log.info("partitions assigned: %s", sorted((tp.topic, tp.partition) for tp in assigned))


class InstructionConsumer:
    def __init__(
        self,
        config: SwitchConfig,
        bus: MessageBus,
        producer: AIOKafkaProducer,
        *,
        metrics: Metrics,
        resolver: ProxyResolver | None = None,
    ) -> None:
        self._resolver = resolver
        self._config = config
        self._bus = bus
        self._deps = bus.deps
        self._producer = producer
        self._metrics = metrics
        self.lock = asyncio.Lock()
        self._offset_commit: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self.records_processed = 0
        self.assigned = asyncio.Event()

    async def start(self) -> None:
        k = self._config.kafka
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=k.bootstrap_servers,
            group_id=k.group_id,
            client_id=k.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=limits.kafka_poll_interval_ms_max,
            max_poll_records=limits.batch_records_max,
            fetch_max_wait_ms=limits.kafka_fetch_wait_ms_max,
            isolation_level="read_uncommitted",
        )
        self._consumer.subscribe([k.instructions_topic, k.inbound_replies_topic], listener=_Rebalance(self))
        await self._consumer.start()

    def stop_soon(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """The consumer loop: runs until stop_soon(), then commits what it processed and leaves."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=limits.kafka_poll_timeout_ms, max_records=limits.batch_records_max)
                if not batches:
                    continue
                async with self.lock:
                    await self._process(consumer, batches)
                self._update_lag(consumer, batches)
        finally:
            await self.offsets_committed()
            await consumer.stop()

    async def _process(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        started = time.perf_counter()
        parsed: list[ParsedInstruction] = []
        replies: list[InboundReplyV1] = []
        pains: list[Pain001Record] = []
        refused_pains: list[tuple[ConsumerRecord[bytes, bytes], Pain001Refused]] = []
        dead: list[DeadLetter] = []
        replies_topic = self._config.kafka.inbound_replies_topic
        for tp, records in batches.items():
            if tp.topic == replies_topic:
                for record in records:
                    reply = parse_reply(record)
                    (replies if isinstance(reply, InboundReplyV1) else dead).append(reply)  # type: ignore[arg-type]
                continue
            for record in records:
                if is_xml(record):
                    try:
                        pain = read_pain001(record, self._deps.schemas, self._config, self._deps.mappings)
                    except Pain001Refused as exc:
                        dead.append(DeadLetter(record, exc.reason, exc.reason_code))
                        if exc.message_id and exc.participant:  # readable enough to answer
                            refused_pains.append((record, exc))
                        continue
                    pains.append(pain)
                    parsed.extend(pain.items)
                    continue
                item = parse_record(record)
                (parsed if isinstance(item, ParsedInstruction) else dead).append(item)  # type: ignore[arg-type]
        if dead:
            await self._dead_letter(dead)
        outcome = Outcome()
        resolutions = {}
        if parsed and self._resolver is not None:  # look-ups change nothing: before the transaction
            keys = proxies_to_resolve(parsed, self._config, self._deps.mappings, now=self._deps.clock())
            if keys:
                resolutions = await self._resolver.resolve(keys)
        if parsed or dead or replies or pains:
            outcome = await self._bus.in_transaction(
                lambda uow: self._admit(uow, parsed, resolutions, replies, dead, pains, refused_pains), name="consumer"
            )
        # the database has it all, and the relay has the outbox rows: now, and only now, the
        # offsets move
        # Offsets go to the broker in the background, in order (each waits for the one before);
        # the next batch need not wait for the round trip. A crash before it lands means the
        # batch is read again, and admission turns the redelivery into replays that change nothing.
        await self.offsets_committed()
        self._offset_commit = asyncio.create_task(
            consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
        )
        count = sum(len(r) for r in batches.values())
        self.records_processed += count
        for key, n in outcome.counts.items():
            self._metrics.instructions.labels(key).inc(n)
        if dead:
            self._metrics.instructions.labels("dead_lettered").inc(len(dead))
        self._metrics.stage_duration.labels("admit").observe((time.perf_counter() - started) / max(count, 1))

    async def _admit(
        self,
        uow: UnitOfWork,
        parsed: list[ParsedInstruction],
        resolutions: Mapping[tuple[str, str, str], Resolution | None],
        replies: list[InboundReplyV1],
        dead: list[DeadLetter],
        pains: list[Pain001Record],
        refused_pains: list[tuple[ConsumerRecord[bytes, bytes], Pain001Refused]],
    ) -> Outcome:
        """One batch in one transaction: admissions, replies, and the answers to what was refused."""
        outcome = Outcome()
        if parsed:
            outcome = await self._bus.dispatch(AcceptInstructions(parsed, resolutions), uow)
        if replies:
            answered = await self._bus.dispatch(ApplyInboundReplies(replies), uow)
            outcome.partner_outbox.extend(answered.partner_outbox)
            outcome.status_outbox.extend(answered.status_outbox)
            for key, n in answered.counts.items():
                outcome.counts[key] = outcome.counts.get(key, 0) + n
        rejects = self._dead_letter_statuses(dead) + self._pain002_reports(pains, outcome) + self._pain002_refusals(refused_pains)
        if rejects:  # a redelivered batch must not announce the same reject twice
            done = await uow.outbox_existing("status", [m.message_id for m in rejects])
            rejects = [m for m in rejects if m.message_id not in done]
        outcome.status_outbox.extend(await uow.outbox_add(rejects))
        return outcome

    async def offsets_committed(self) -> None:
        """Wait for the offset commit in flight, if any (revocation, stop, the next commit)."""
        if self._offset_commit is not None:
            task, self._offset_commit = self._offset_commit, None
            await task

    async def _dead_letter(self, dead: list[DeadLetter]) -> None:
        topic = self._config.kafka.dlq_topic
        futures = [
            await self._producer.send(topic, value=dl.record.value, key=dl.record.key, headers=dead_letter_headers(dl))
            for dl in dead
        ]
        await asyncio.gather(*futures)  # acknowledged by the broker before the offset moves on
        for dl in dead:
            self._metrics.dlq.labels(dl.reason.split(":", 1)[0][:40]).inc()
            log.warning(
                "dead-lettered %s[%d]@%d: %s", dl.record.topic, dl.record.partition, dl.record.offset, dl.reason[:200]
            )

    def _pain002_reports(self, pains: list[Pain001Record], outcome: Outcome) -> list[OutboxMessage]:
        """One acceptance pain.002 per pain.001 record: ACCP or RJCT per transaction."""
        now = self._deps.clock()
        return [
            admission_report(
                pain.message, pain.participant, pain.decisions(outcome.admissions), self._config, self._deps.schemas,
                now=now, source_ref=pain.source_ref,
            )
            for pain in pains
        ]

    def _pain002_refusals(self, refused: list[tuple[ConsumerRecord[bytes, bytes], Pain001Refused]]) -> list[OutboxMessage]:
        """A pain.002 rejecting the group, for each pain.001 refused as a whole (also dead-lettered)."""
        now = self._deps.clock()
        return [
            group_reject(
                exc.message_id or "", exc.participant or "", exc.reason_code, exc.reason, self._config, self._deps.schemas,
                now=now, source_ref=f"{record.topic}:{record.partition}:{record.offset}",
            )
            for record, exc in refused
        ]

    def _dead_letter_statuses(self, dead: list[DeadLetter]) -> list[OutboxMessage]:
        now = self._deps.clock()
        out = []
        for dl in dead:
            ident = _identifiable(dl)
            if ident is None:
                continue
            participant, instruction_id = ident
            message_id = f"D{dl.record.topic}/{dl.record.partition}/{dl.record.offset}"[:64]
            event = StatusEventV1(
                event_id=message_id,  # the same record refused again after a redelivery is the same event
                instruction_id=instruction_id,
                participant=participant,
                uetr=None,
                corridor=None,
                state=PaymentState.REJECTED.value,
                final=True,
                reason_code=dl.reason_code,
                reason=f"{dl.reason[:300]} (record in {self._config.kafka.dlq_topic})",
                occurred_at=now,
            )
            out.append(
                OutboxMessage(
                    kind="status",
                    destination=self._config.kafka.status_topic,
                    message_id=message_id,
                    uetrs=(),
                    key=f"{participant}/{instruction_id}",
                    body=event.model_dump_json().encode(),
                    created_at=now,
                )
            )
        return out

    def _update_lag(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in batches.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - records[-1].offset - 1))
