"""`mekong load`: a participant's side of the Kafka contract, for loading instructions into a
running stack. It reads instruction v1 JSON lines, checks what the switch would refuse for who
sent it before anything is sent (a line naming another participant, no instruction id, not a
JSON object, over the switch's size bound), then publishes each line's exact bytes to the
instructions topic, keyed by its instruction id and signed with the participant's Ed25519 key
(the `mekong.key_id` / `mekong.sig` headers of switch/kafka_auth.py).

The switch holds public keys only; this command runs where the participant's private key is (a
participant's host, an operator's staging tool), never inside the switch.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switch import limits
from switch.kafka_auth import signature_headers


class LoadRefused(ValueError):
    """The file holds lines the switch would refuse for who sent them: nothing was published."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class BrokerUnreachable(RuntimeError):
    """The broker did not answer (which address, and what the client said)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The final status event of one loaded instruction, as the participant reads it."""

    instruction_id: str
    state: str
    reason_code: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class LoadRecord:
    line: int  # 1-based line of the file
    key: bytes  # the instruction id (the README's Kafka contract: key = instruction id)
    value: bytes  # the line's exact bytes, as signed and sent


def read_instructions(name: str, lines: Iterable[bytes], *, participant: str) -> list[LoadRecord]:
    """The records of a JSON-lines file (blank lines and lines starting with # skipped), or
    LoadRefused naming each bad line as `name:line: message`. Content the switch answers with a
    status event (an unknown corridor, bad decimals) is left to the switch: this only catches what
    it would dead-letter without telling the participant."""
    records: list[LoadRecord] = []
    problems: list[str] = []
    for n, raw in enumerate(lines, start=1):
        value = raw.strip()
        if not value or value.startswith(b"#"):
            continue
        where = f"{name}:{n}"
        if len(value) > limits.json_bytes_max:
            problems.append(f"{where}: {len(value)} bytes, over the switch's {limits.json_bytes_max} (it refuses them: FF01)")
            continue
        try:
            doc = json.loads(value)
        except (ValueError, RecursionError) as exc:
            problems.append(f"{where}: not JSON ({getattr(exc, 'msg', type(exc).__name__)})")
            continue
        if not isinstance(doc, dict):
            problems.append(f"{where}: not a JSON object (an instruction v1 is one)")
            continue
        named = doc.get("participant")
        if named != participant:
            problems.append(f"{where}: names participant {named!r}, but it would be signed with {participant}'s key "
                            "(the switch dead-letters it: DS0H)")
            continue
        instruction_id = doc.get("instruction_id")
        if not isinstance(instruction_id, str) or not instruction_id:
            problems.append(f"{where}: no instruction_id (the record's key)")
            continue
        records.append(LoadRecord(n, instruction_id.encode(), value))
    if problems:
        raise LoadRefused(problems)
    return records


def broker_options(
    *,
    security_protocol: str = "PLAINTEXT",
    sasl_mechanism: str | None = None,
    sasl_username: str | None = None,
    sasl_password: str | None = None,
    ssl_cafile: Path | None = None,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
) -> dict[str, Any]:
    """aiokafka keyword arguments for the participant's own broker credentials (the same settings
    as the switch's `[kafka]`, see README "Broker authentication and ACLs")."""
    options: dict[str, Any] = {"security_protocol": security_protocol}
    if security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ssl_cafile) if ssl_cafile else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if ssl_certfile is not None:
            ctx.load_cert_chain(str(ssl_certfile), str(ssl_keyfile) if ssl_keyfile else None)
        options["ssl_context"] = ctx
    if security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        if not sasl_username or sasl_password is None:
            raise ValueError(f"{security_protocol} needs --sasl-username and --sasl-password-file")
        options.update(sasl_mechanism=sasl_mechanism or "SCRAM-SHA-512", sasl_plain_username=sasl_username,
                       sasl_plain_password=sasl_password)
    return options


async def load_and_follow(
    records: list[LoadRecord],
    *,
    bootstrap_servers: str,
    topic: str,
    status_topic: str,
    participant: str,
    private_key: Ed25519PrivateKey,
    wait_s: float,
    rate_per_s: float = 0.0,
    client: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Outcome]]:
    """Publish `records` (as `publish`), then read the status topic for their final status events
    (keyed `participant/instruction_id`) for up to `wait_s`: how many were published and the
    outcomes found. The status topic's end is taken before publishing, so only this load's
    events count; no consumer group is joined (the participant's own groups stay untouched)."""
    wait_s = min(wait_s, limits.load_wait_s_max)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, client_id="mekong-load", enable_auto_commit=False,
                                **(client or {}))
    try:
        async with asyncio.timeout(limits.load_connect_s_max):
            await consumer.start()
            if status_topic not in await consumer.topics():
                raise BrokerUnreachable(f"the broker at {bootstrap_servers} has no topic {status_topic}")
            parts = [TopicPartition(status_topic, p) for p in sorted(consumer.partitions_for_topic(status_topic) or ())]
            consumer.assign(parts)
            await consumer.seek_to_end(*parts)
            for tp in parts:  # resolve the end offsets now, before anything is published
                await consumer.position(tp)
    except (TimeoutError, KafkaError, OSError) as exc:
        await consumer.stop()
        detail = f"no answer within {limits.load_connect_s_max:g} s" if isinstance(exc, TimeoutError) else str(exc)
        raise BrokerUnreachable(f"the broker at {bootstrap_servers} did not answer: {detail}") from None
    except BaseException:
        await consumer.stop()
        raise
    try:
        sent = await publish(records, bootstrap_servers=bootstrap_servers, topic=topic, private_key=private_key,
                             rate_per_s=rate_per_s, client=client)
        wanted = {r.key.decode() for r in records}
        outcomes: dict[str, Outcome] = {}
        prefix = f"{participant}/".encode()
        try:
            async with asyncio.timeout(wait_s):
                while wanted - outcomes.keys():
                    for batch in (await consumer.getmany(timeout_ms=500)).values():
                        for record in batch:
                            outcome = _final_outcome(record.key, record.value, prefix=prefix, wanted=wanted)
                            if outcome is not None:
                                outcomes.setdefault(outcome.instruction_id, outcome)
        except TimeoutError:  # what has no final status by now is reported as such
            pass
        return sent, outcomes
    finally:
        await consumer.stop()


def _final_outcome(key: bytes | None, value: bytes | None, *, prefix: bytes, wanted: set[str]) -> Outcome | None:
    """The outcome a status record carries, when it is the final JSON status event of a loaded instruction."""
    if not key or not key.startswith(prefix) or not value:
        return None
    try:
        event = json.loads(value)
    except (ValueError, RecursionError):  # a pain.002 for a pain.001 sender, or anything else
        return None
    if not isinstance(event, dict) or not event.get("final") or event.get("instruction_id") not in wanted:
        return None
    return Outcome(event["instruction_id"], str(event.get("state")), event.get("reason_code"), event.get("reason"))


async def publish(
    records: list[LoadRecord],
    *,
    bootstrap_servers: str,
    topic: str,
    private_key: Ed25519PrivateKey,
    rate_per_s: float = 0.0,
    client: dict[str, Any] | None = None,
) -> int:
    """Publish `records` signed with `private_key` (at `rate_per_s`, or as fast as the broker
    takes them) and return how many the broker acknowledged (all of them, or it raises)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id="mekong-load",
        acks="all",
        enable_idempotence=False,  # Tansu (development) has no idempotent producer; the switch dedupes by instruction id
        linger_ms=5,
        max_request_size=limits.kafka_request_bytes_max,
        **(client or {}),
    )
    try:
        async with asyncio.timeout(limits.load_connect_s_max):
            await producer.start()
    except (TimeoutError, KafkaError, OSError) as exc:
        await producer.stop()
        detail = f"no answer within {limits.load_connect_s_max:g} s" if isinstance(exc, TimeoutError) else str(exc)
        raise BrokerUnreachable(f"the broker at {bootstrap_servers} did not answer: {detail}") from None
    sent = 0
    interval_s = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
    started = time.perf_counter()
    try:
        pending: list[asyncio.Future[Any]] = []
        for i, record in enumerate(records):
            if interval_s:
                delay = started + i * interval_s - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            headers = signature_headers(record.value, private_key)
            pending.append(await producer.send(topic, value=record.value, key=record.key, headers=headers))
            if len(pending) >= limits.load_batch_records_max:
                sent += await _acknowledged(pending)
        sent += await _acknowledged(pending)
    finally:
        await producer.stop()
    return sent


async def _acknowledged(pending: list[asyncio.Future[Any]]) -> int:
    async with asyncio.timeout(limits.load_ack_s_max):
        await asyncio.gather(*pending)
    n = len(pending)
    pending.clear()
    return n
