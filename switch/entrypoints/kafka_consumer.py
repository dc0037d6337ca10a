"""The Kafka edge for `mekong.instructions` and `mekong.inbound.replies` (STYLE §6, A3, A4).

At least once: a batch is parsed, bad records go to the dead-letter topic (and are acknowledged
by the broker) first, the good ones are admitted in ONE database transaction (state, history,
idempotency keys, outbox), and only then is the offset committed. A crash anywhere means the
batch is read again, and `admit` turns the redelivery into replays that change nothing.

No record can stop the consumer (issue 7): reading one never raises (JSON is read with a size and
a depth bound, an unexpected exception dead-letters the record), and every dead letter fits the
producer (a record too large goes as a bounded prefix with its size and sha256).

Who published a record is proven before anything else is read (issue 8 item 3): its Ed25519
signature headers must verify over its value with a configured participant key
(switch/kafka_auth.py), and every participant the record names (an instruction's `participant`,
each pain.001 payment information's debtor agent, a reply's `participant`) must be the key's
owner. Otherwise the record is dead-lettered with a security reason and nothing else happens: it
is not admitted, burns no instruction id, and no status goes to the participant it names (a
forger must not block, or hear about, a victim's instruction). A dead letter is only ever
answered to the participant that signed it. With --insecure-dev (key ring None) signatures are
not checked and records are taken as the participant they name, as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, TypeVar

import pydantic_core
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from switch import limits
from switch.config import SwitchConfig
from switch.contracts import (
    REQUEST_ADAPTER, InboundReplyV1, InstructionV1, QuoteRequestV1, RecallReplyV1, RecallRequestV1, ReturnRequestV1,
)
from switch.log_context import payment_context
from switch.kafka_auth import SECURITY_REASON_CODES, KeyRing, SignatureRefused, Signer, client_options
from adapters.proxy_resolution import Resolution
from switch.metrics import DlqReason, Metrics
from switch.service import events
from switch.service.audit import audit_dead_letters
from switch.service.bus import REQUEST_COMMANDS, MessageBus
from switch.service.handlers import AcceptInstructions, Outcome, ParsedInstruction
from switch.service.screening import screen_instructions
from switch.domain.screening import Verdict
from switch.service.inbound import ApplyInboundReplies
from switch.service.pain_reports import admission_report, group_reject
from switch.service.rate_limits import REASON_CODE as RATE_LIMIT_REASON_CODE, RateLimits
from switch.service.resolver import ProxyResolver, proxies_to_resolve
from switch.entrypoints.abuse_limits import audit_episodes, charge_instructions
from switch.entrypoints.pain001_edge import BIC, Pain001Record, Pain001Refused, is_xml, parsed_instruction, read_pain001
from switch.service.ports import OutboxMessage, UnitOfWork

log = logging.getLogger(__name__)

# An answer's outbox key is `participant/instruction_id` in a 64-character column: the id of a
# dead-lettered record is answered when it fits next to an 11-character participant.
_ANSWERABLE_ID: Final = re.compile(r"[^\x00-\x1f\x7f]{1,52}")
# A JSON string, or an unterminated one up to the end: every byte after the opening quote is
# taken by one branch until a closing quote or the end, and possessively, so a match never fails
# and never backtracks (linear even for `"\"\"\"...`, where a plain string pattern is quadratic).
_JSON_STRING: Final = re.compile(rb'"(?:[^"\\]++|\\[\s\S]?)*+(?:"|\Z)')
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING: Final = frozenset(b"[{")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: ConsumerRecord[bytes, bytes]
    reason: str
    reason_code: str  # ISO external code: FF02 syntax, FF01 format, DS0x who sent it
    category: DlqReason  # the metric's label: a fixed set, never the record's content
    sender: str | None = None  # the participant whose key signed the record (None: not proven)
    key_id: str | None = None  # the key id the record gave (16 hex digits), when it gave a well-formed one
    # whether the sender may hear of it on the status topic as a JSON status event: not for a
    # record read as XML (a pain.001 is answered with a pain.002 or not at all)
    answerable: bool = True


@dataclass(frozen=True, slots=True)
class JsonRefused:
    """Why bytes are not taken as JSON (a value: the caller dead-letters the record)."""

    reason: str
    reason_code: str
    category: DlqReason


def _nested_deeper_than(raw: bytes, depth_max: int) -> bool:
    """Whether the JSON text nests arrays/objects deeper than `depth_max`, read off the bytes
    (strings removed, brackets counted) without parsing: no recursion, work linear in the size."""
    if raw.count(b"[") + raw.count(b"{") <= depth_max:
        return False  # not enough brackets to nest that deep, even inside strings: no scan needed
    depth = 0
    for byte in _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        depth = depth + 1 if byte in _OPENING else depth - 1
        if depth > depth_max:
            return True
    return False


def read_json(raw: bytes) -> Any | JsonRefused:
    """The one JSON reader of the Kafka edge (instructions, inbound replies, the sender of a
    dead letter): at most `json_bytes_max` bytes, nested at most `json_depth_max` levels (checked
    before any parser runs), then parsed by pydantic's parser (jiter: strict UTF-8, no NaN)."""
    if len(raw) > limits.json_bytes_max:
        return JsonRefused(f"JSON record of {len(raw)} bytes exceeds {limits.json_bytes_max}", "FF01", DlqReason.TOO_LARGE)
    if _nested_deeper_than(raw, limits.json_depth_max):
        return JsonRefused(f"JSON nested deeper than {limits.json_depth_max} levels", "FF01", DlqReason.TOO_DEEP)
    try:
        return pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        return JsonRefused(f"malformed JSON: {exc}", "FF02", DlqReason.MALFORMED_JSON)


ContractT = TypeVar("ContractT", InstructionV1, InboundReplyV1)


def _read_json(record: ConsumerRecord[bytes, bytes], contract: type[ContractT], what: str) -> ContractT | DeadLetter:
    """The record's value validated against a JSON contract, or why it goes to the dead letters."""
    data = read_json(record.value or b"")
    if isinstance(data, JsonRefused):
        return DeadLetter(record, data.reason, data.reason_code, data.category)
    try:
        return contract.model_validate(data)  # strict: the same checks as on the JSON text
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:5])
        return DeadLetter(record, f"invalid {what}: {problems}", "FF01", DlqReason.INVALID_CONTRACT)


def parse_record(record: ConsumerRecord[bytes, bytes]) -> ParsedInstruction | DeadLetter:
    instruction = _read_json(record, InstructionV1, "instruction v1")
    if isinstance(instruction, DeadLetter):
        return instruction
    return parsed_instruction(instruction, f"{record.topic}:{record.partition}:{record.offset}")


def parse_reply(record: ConsumerRecord[bytes, bytes]) -> InboundReplyV1 | DeadLetter:
    """A participant's answer to an inbound payment, or the reason it cannot be read."""
    return _read_json(record, InboundReplyV1, "inbound reply v1")


Request = ReturnRequestV1 | RecallRequestV1 | RecallReplyV1 | QuoteRequestV1  # mekong.requests (issues 9, 11)


def parse_request(record: ConsumerRecord[bytes, bytes]) -> Request | DeadLetter:
    """A participant's request on mekong.requests (a return, a recall, an answer to a partner's
    recall), or the reason it cannot be read."""
    data = read_json(record.value or b"")
    if isinstance(data, JsonRefused):
        return DeadLetter(record, data.reason, data.reason_code, data.category)
    try:
        return REQUEST_ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:5])
        return DeadLetter(record, f"invalid request v1: {problems}", "FF01", DlqReason.INVALID_CONTRACT)


def unreadable(record: ConsumerRecord[bytes, bytes], exc: BaseException) -> DeadLetter:
    """The dead letter for a record whose reading raised: its type names it, the rest is logged."""
    return DeadLetter(record, f"unreadable: {type(exc).__name__} while reading the record", "FF01", DlqReason.UNREADABLE)


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """What goes to the dead-letter topic for one record: at most `dlq_value_bytes_max` of value,
    `dlq_key_bytes_max` of key and `dlq_reason_bytes_max` of reason, so it always fits the producer."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


ORIGINAL_HEADER_PREFIX: Final = "mekong.original."  # a dead letter's copy of each header of the record


def _utf8_prefix(text: str, size_bytes_max: int) -> bytes:
    return text.encode("utf-8", "backslashreplace")[:size_bytes_max].decode("utf-8", "ignore").encode()


def dead_letter_record(dl: DeadLetter, *, value_bytes_max: int = limits.dlq_value_bytes_max) -> DeadLetterRecord:
    """The original key and bytes with the reason and the source coordinates. A value over
    `value_bytes_max` goes as its first `dlq_prefix_bytes_max` bytes (at most `value_bytes_max`),
    a key over `dlq_key_bytes_max` as its prefix; `mekong.truncated` then says which, and the
    original size and sha256 are always there."""
    raw = dl.record.value or b""
    key = dl.record.key
    headers = [
        ("mekong.reason", _utf8_prefix(dl.reason, limits.dlq_reason_bytes_max)),
        ("mekong.reason_code", dl.reason_code.encode()),
        ("mekong.source.topic", dl.record.topic.encode()),
        ("mekong.source.partition", str(dl.record.partition).encode()),
        ("mekong.source.offset", str(dl.record.offset).encode()),
        ("mekong.source.value_bytes", str(len(raw)).encode()),
        ("mekong.source.sha256", hashlib.sha256(raw).hexdigest().encode()),
    ]
    truncated = []
    value = raw
    if len(raw) > value_bytes_max:
        value = raw[: min(limits.dlq_prefix_bytes_max, value_bytes_max)]
        truncated.append("value")
    if key is not None and len(key) > limits.dlq_key_bytes_max:
        headers.append(("mekong.source.key_bytes", str(len(key)).encode()))
        key = key[: limits.dlq_key_bytes_max]
        truncated.append("key")
    # the original headers (the participant's signature among them) so that a replay (issue 11)
    # republishes the record as it was and its signature still verifies
    original = [(ORIGINAL_HEADER_PREFIX + name, raw_value or b"") for name, raw_value in dl.record.headers or ()]
    if sum(len(n) + len(v) for n, v in original) <= limits.dlq_original_headers_bytes_max:
        headers.extend(original)
    else:
        truncated.append("headers")
    if truncated:
        headers.append(("mekong.truncated", ",".join(truncated).encode()))
    return DeadLetterRecord(key, value, headers)


def _retriable(exc: BaseException) -> bool:
    # aiokafka's timeout (no metadata, no acknowledgement in time) says retriable=False, but it
    # is what a broker that is briefly away looks like
    return isinstance(exc, KafkaTimeoutError | TimeoutError) or (isinstance(exc, KafkaError) and exc.retriable)


async def publish_dead_letters(
    producer: AIOKafkaProducer,
    topic: str,
    dead: Sequence[DeadLetter],
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Every dead letter acknowledged by the broker (the offset moves on only after this).

    A retriable failure (the broker briefly away) sends the records not yet acknowledged again,
    with jittered backoff, for at most `dlq_publish_attempts_max` attempts and `dlq_publish_s_max`;
    then the last error is raised (a restart reads the batch again). A record the broker refuses
    as such (e.g. over its message.max.bytes) goes again as its headers only."""
    pending = {i: dead_letter_record(dl) for i, dl in enumerate(dead)}
    headers_only: set[int] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.dlq_publish_s_max
    attempt = 0
    while True:
        attempt += 1
        failures = await _send_once(producer, topic, pending, timeout_s=max(0.0, deadline - loop.time()))
        if not failures:
            return
        for i, exc in failures.items():
            if _retriable(exc):
                continue
            if not isinstance(exc, KafkaError) or i in headers_only:
                raise exc  # not the record's fault: a programmer or configuration error
            log.warning("dead letter refused by the broker (%s): sending its headers only", type(exc).__name__)
            pending[i] = dead_letter_record(dead[i], value_bytes_max=0)
            headers_only.add(i)
        pending = {i: pending[i] for i in failures}
        last = next(iter(failures.values()))
        delay = min(limits.dlq_backoff_s_max, limits.dlq_backoff_s_min * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        if attempt >= limits.dlq_publish_attempts_max or loop.time() + delay >= deadline:
            raise last
        log.warning("dead-letter topic unavailable (%s), attempt %d: again in %.2f s", type(last).__name__, attempt, delay)
        await sleep(delay)


async def _send_once(
    producer: AIOKafkaProducer, topic: str, records: dict[int, DeadLetterRecord], *, timeout_s: float
) -> dict[int, BaseException]:
    """Send `records` and wait for the broker: the ones that failed, with their error. After
    `timeout_s` nothing is known about any of them: they all count as failed (and may be sent
    twice: the dead-letter topic is at least once, like the rest)."""
    failures: dict[int, BaseException] = {}
    try:
        async with asyncio.timeout(timeout_s):
            sent: list[tuple[int, asyncio.Future[Any]]] = []
            for i, record in records.items():
                try:
                    sent.append((i, await producer.send(topic, value=record.value, key=record.key, headers=record.headers)))
                except KafkaError as exc:
                    failures[i] = exc
            results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
    except TimeoutError as exc:
        return dict.fromkeys(records, exc)
    for (i, _), result in zip(sent, results, strict=True):
        if isinstance(result, BaseException):
            failures[i] = result
    return failures


# What _verified says of one record: its signer, why its signature is refused, None (not checked:
# --insecure-dev), or the exception verifying it raised (the record is then dead-lettered alone)
Verdict = Signer | SignatureRefused | Exception | None


def _verify_chunk(keys: KeyRing, records: list[ConsumerRecord[bytes, bytes]], now: datetime) -> list[Verdict]:
    """Run in a worker thread: each record's verdict (an exception is a verdict too, never raised)."""
    out: list[Verdict] = []
    for record in records:
        try:
            out.append(keys.verify(record.value or b"", record.headers, now=now))
        except Exception as exc:  # noqa: BLE001 - one record must not stop the consumer (issue 7)
            out.append(exc)
    return out


def _named(read: ParsedInstruction | InboundReplyV1 | Request | Pain001Record | Pain001Refused | DeadLetter) -> set[str]:
    """The participants a record speaks for, as far as it can be read: an instruction's
    `participant`, a reply's `participant`, the debtor agent of each payment information of a
    pain.001 ("" when one names none), and the `participant` a refused JSON record still holds."""
    if isinstance(read, ParsedInstruction):
        return {read.instruction.participant}
    if isinstance(read, (InboundReplyV1, ReturnRequestV1, RecallRequestV1, RecallReplyV1, QuoteRequestV1)):
        return {read.participant}
    if isinstance(read, Pain001Record):
        return {pmt.debtor_agent.bicfi or "" for pmt in read.message.payment_instructions}
    if isinstance(read, Pain001Refused):
        return {read.participant} if read.participant else set()
    data = read_json(read.record.value or b"")  # a dead letter: bounded like the first reading
    participant = data.get("participant") if isinstance(data, dict) else None
    return {participant} if isinstance(participant, str) else set()


def _identifiable(dl: DeadLetter) -> tuple[str, str] | None:
    """(participant, instruction id) when a dead-lettered record still names them, so the sender
    also hears of the reject on the status topic."""
    data = read_json(dl.record.value or b"")
    if not isinstance(data, dict):
        return None
    participant, instruction_id = data.get("participant"), data.get("instruction_id")
    if isinstance(participant, str) and BIC.fullmatch(participant) and isinstance(instruction_id, str) \
            and _ANSWERABLE_ID.fullmatch(instruction_id):
        return participant, instruction_id
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
        key_ring: KeyRing | None,
        resolver: ProxyResolver | None = None,
        rate_limits: RateLimits | None = None,  # per participant (abuse_limits.py); None: none
    ) -> None:
        """`key_ring`: the participants' keys every record's signature is checked against; None
        only for --insecure-dev (no check: said loudly at start by the composition root)."""
        self._keys = key_ring
        self._resolver = resolver
        self._rate_limits = rate_limits
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
            **client_options(self._config),
        )
        self._consumer.subscribe([k.instructions_topic, k.inbound_replies_topic, k.requests_topic], listener=_Rebalance(self))
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
        requests: list[Request] = []
        pains: list[Pain001Record] = []
        refused_pains: list[tuple[ConsumerRecord[bytes, bytes], Pain001Refused]] = []
        dead: list[DeadLetter] = []
        in_order = [record for records in batches.values() for record in records]
        verdicts = await self._verified(in_order, self._deps.clock())
        for record, verdict in zip(in_order, verdicts, strict=True):
            read, signer = self._read(record, verdict)
            if isinstance(read, Pain001Refused):
                dead.append(DeadLetter(record, read.reason, read.reason_code, read.dlq_reason,
                                       sender=signer.participant if signer else None,
                                       key_id=signer.key_id if signer else None, answerable=False))
                if read.message_id and read.participant:  # readable enough to answer (by its signer: _read)
                    refused_pains.append((record, read))
            elif isinstance(read, Pain001Record):
                pains.append(read)
                parsed.extend(read.items)
            elif isinstance(read, InboundReplyV1):
                replies.append(read)
            elif isinstance(read, (ReturnRequestV1, RecallRequestV1, RecallReplyV1, QuoteRequestV1)):
                requests.append(read)
            elif isinstance(read, ParsedInstruction):
                parsed.append(read)
            else:
                dead.append(read)
        if self._rate_limits is not None and parsed:
            # Abuse limits (issue 8 item 6, abuse_limits.py): an instruction over its participant's
            # rate carries a Reject that admission answers (REJECTED SL15, its id used up); a record
            # with nothing else in it also goes to the dead letters as `rate_limited`, counted but
            # neither audited (only the first of a spell is) nor answered again as a dead letter.
            charged = charge_instructions(self._rate_limits, parsed, batches, now=self._deps.clock(), metrics=self._metrics)
            parsed = charged.parsed
            if charged.dead:
                over_rate = [DeadLetter(r, reason, RATE_LIMIT_REASON_CODE, DlqReason.RATE_LIMITED) for r, reason in charged.dead]
                await publish_dead_letters(self._producer, self._config.kafka.dlq_topic, over_rate)
                self._metrics.dlq.labels(DlqReason.RATE_LIMITED.value).inc(len(over_rate))
            await audit_episodes(self._bus, charged.episodes)
        if dead:
            await self._dead_letter(dead)
        outcome = Outcome()
        resolutions = {}
        if parsed and self._resolver is not None:  # look-ups change nothing: before the transaction
            keys = proxies_to_resolve(parsed, self._config, self._deps.mappings)
            if keys:
                resolutions = await self._resolver.resolve(keys)
        # issue 12: screening changes nothing either: before the transaction, like the look-ups
        screenings = await screen_instructions(self._deps.screener, parsed) if parsed else {}
        if parsed or dead or replies or pains or requests:
            outcome = await self._bus.in_transaction(
                lambda uow: self._admit(uow, parsed, resolutions, replies, dead, pains, refused_pains, requests, screenings),
                name="consumer",
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
        requests: Sequence[Request] = (),
        screenings: Mapping[tuple[str, str], Verdict] | None = None,
    ) -> Outcome:
        """One batch in one transaction: admissions, replies, participants' requests (returns,
        recalls: one command per kind, REQUEST_COMMANDS), and the answers to what was refused."""
        outcome = Outcome()
        if parsed:
            outcome = await self._bus.dispatch(AcceptInstructions(parsed, resolutions, screenings or {}), uow)
        commands: list[Any] = [ApplyInboundReplies(replies)] if replies else []
        for request_type, command in REQUEST_COMMANDS.items():
            of_type = [r for r in requests if isinstance(r, request_type)]
            if of_type:
                commands.append(command(of_type))
        for command in commands:
            answered = await self._bus.dispatch(command, uow)
            outcome.partner_outbox.extend(answered.partner_outbox)
            outcome.status_outbox.extend(answered.status_outbox)
            for key, n in answered.counts.items():
                outcome.counts[key] = outcome.counts.get(key, 0) + n
        rejects = self._dead_letter_statuses(dead) + self._pain002_reports(pains, outcome) + self._pain002_refusals(refused_pains)
        if rejects:  # a redelivered batch must not announce the same reject twice
            done = await uow.outbox_existing("status", [m.message_id for m in rejects])
            rejects = [m for m in rejects if m.message_id not in done]
        outcome.status_outbox.extend(await uow.outbox_add(rejects))
        await audit_dead_letters(uow, dead, at=self._deps.clock())  # last: the audit lock is held to the commit
        return outcome

    async def _verified(self, records: list[ConsumerRecord[bytes, bytes]], now: datetime) -> list[Verdict]:
        """Who signed each record (KeyRing.verify), in order; all None with --insecure-dev.

        Ed25519 verification costs about 200 µs of CPU per record on the development machine
        (tests/bench/bench_kafka_signatures.py), 100 ms for a full batch: it runs off the event
        loop, in chunks of `signature_verify_chunk_records_max` records on the default executor's
        threads (cryptography releases the GIL while it verifies, so chunks use several cores),
        while the loop goes on serving partner callbacks and the relay."""
        if self._keys is None:
            return [None] * len(records)
        size = limits.signature_verify_chunk_records_max
        chunks = [records[i : i + size] for i in range(0, len(records), size)]
        done = await asyncio.gather(*(asyncio.to_thread(_verify_chunk, self._keys, chunk, now) for chunk in chunks))
        return [verdict for chunk in done for verdict in chunk]

    def _read(
        self, record: ConsumerRecord[bytes, bytes], verdict: Verdict
    ) -> tuple[ParsedInstruction | InboundReplyV1 | Request | Pain001Record | Pain001Refused | DeadLetter, Signer | None]:
        """One record as what the batch does with it, and who signed it (None: not proven, or
        --insecure-dev). First its signature (`verdict`, from _verified), then its content, then
        whether what it names is its signer. Reading it never raises: an unexpected exception
        dead-letters this record (its type in the reason) and the batch goes on."""
        signer: Signer | None = None
        xml = False
        try:
            if isinstance(verdict, BaseException):
                raise verdict
            if isinstance(verdict, SignatureRefused):
                return DeadLetter(record, verdict.reason, verdict.reason_code, verdict.category, key_id=verdict.key_id), None
            signer = verdict
            xml = record.topic not in (self._config.kafka.inbound_replies_topic, self._config.kafka.requests_topic) and is_xml(record)
            read = self._parse(record, xml=xml)
            if signer is None:
                return read, None
            others = sorted(p for p in _named(read) if p != signer.participant)
            if others:
                return DeadLetter(
                    record,
                    f"participant mismatch: signed with key {signer.key_id} of {signer.participant}, names {', '.join(others)}",
                    SECURITY_REASON_CODES[DlqReason.PARTICIPANT_MISMATCH], DlqReason.PARTICIPANT_MISMATCH,
                    sender=signer.participant, key_id=signer.key_id, answerable=False,
                ), signer
            if isinstance(read, DeadLetter):
                return replace(read, sender=signer.participant, key_id=signer.key_id), signer
            return read, signer
        except Exception as exc:  # noqa: BLE001 - one record must not stop the consumer (issue 7)
            log.exception("reading %s[%d]@%d raised", record.topic, record.partition, record.offset)
            dead = unreadable(record, exc)
            return replace(dead, sender=signer.participant if signer else None, key_id=signer.key_id if signer else None,
                           answerable=not xml), signer

    def _parse(
        self, record: ConsumerRecord[bytes, bytes], *, xml: bool
    ) -> ParsedInstruction | InboundReplyV1 | Request | Pain001Record | Pain001Refused | DeadLetter:
        if record.topic == self._config.kafka.inbound_replies_topic:
            return parse_reply(record)
        if record.topic == self._config.kafka.requests_topic:
            return parse_request(record)
        if xml:
            try:
                return read_pain001(record, self._deps.schemas, self._config, self._deps.mappings)
            except Pain001Refused as exc:
                return exc
        return parse_record(record)

    async def offsets_committed(self) -> None:
        """Wait for the offset commit in flight, if any (revocation, stop, the next commit)."""
        if self._offset_commit is not None:
            task, self._offset_commit = self._offset_commit, None
            await task

    async def _dead_letter(self, dead: list[DeadLetter]) -> None:
        await publish_dead_letters(self._producer, self._config.kafka.dlq_topic, dead)
        for dl in dead:
            self._metrics.dlq.labels(dl.category.value).inc()
            if dl.category.security:
                self._metrics.security_refusals.labels("kafka", dl.category.value).inc()
            # the reason may quote what the record held (names, accounts): only at DEBUG; the line
            # names the participant and instruction id when the record still does
            named = _identifiable(dl)
            context = payment_context(participant=named[0], instruction_id=named[1]) if named else nullcontext()
            with context:
                log.warning(
                    "dead-lettered %s[%d]@%d: %s %s%s", dl.record.topic, dl.record.partition, dl.record.offset,
                    dl.category.value, dl.reason_code,
                    f" (key {dl.key_id or '-'}, signer {dl.sender or '-'})" if dl.category.security else "",
                )
                log.debug("dead-letter reason %s[%d]@%d: %s", dl.record.topic, dl.record.partition, dl.record.offset, dl.reason[:200])

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
        """A pain.002 rejecting the group, for each pain.001 refused as a whole (also dead-lettered),
        to the debtor agent it names: its signer (_read refused any other)."""
        now = self._deps.clock()
        return [
            group_reject(
                exc.message_id or "", exc.participant or "", exc.reason_code, exc.reason, self._config, self._deps.schemas,
                now=now, source_ref=f"{record.topic}:{record.partition}:{record.offset}",
            )
            for record, exc in refused
        ]

    def _dead_letter_statuses(self, dead: list[DeadLetter]) -> list[OutboxMessage]:
        """The REJECTED status for each dead-lettered JSON instruction that names its sender and
        instruction id, sent to that sender only when it signed the record. A security refusal is
        never answered: the participant it names did not send it."""
        now = self._deps.clock()
        out = []
        for dl in dead:
            if dl.record.topic != self._config.kafka.instructions_topic:
                continue  # an inbound reply names no instruction
            if dl.category.security or not dl.answerable:
                continue
            ident = _identifiable(dl)
            if ident is None:
                continue
            participant, instruction_id = ident
            if self._keys is not None and participant != dl.sender:
                continue  # _read refuses such a record as a mismatch; this keeps the rule in the one place that answers
            out.append(
                events.dead_letter_outbox(
                    participant, instruction_id, topic=dl.record.topic, partition=dl.record.partition, offset=dl.record.offset,
                    reason_code=dl.reason_code, reason=dl.reason, config=self._config, now=now,
                )
            )
        return out

    def _update_lag(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in batches.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - records[-1].offset - 1))
