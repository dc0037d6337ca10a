"""The dead-letter topic as operators see it (issue 11 item 3): list, show, replay.

Reading never joins a consumer group: a consumer without group_id, partitions assigned by hand,
read from an offset up to the end seen at the start (the switch's own group and its committed
offsets are never touched). A dead letter (kafka_consumer.dead_letter_record) holds the original
record's key and value, `mekong.reason` / `mekong.reason_code`, where it came from
(`mekong.source.topic` / `.partition` / `.offset`) and the original headers as
`mekong.original.<name>`; `mekong.truncated` names what was cut (value, key, headers).

A replay publishes the original record, as it was (value, key, original headers: the
participant's signature still verifies), to its original topic, where it goes through every check
again (it may be dead-lettered again, with its reason). A truncated dead letter is refused: its
original is not all there.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from switch import limits
from switch.config import KafkaConfig
from switch.domain.pan import mask
from switch.entrypoints.kafka_consumer import ORIGINAL_HEADER_PREFIX

_CARD_LIKE: Final = re.compile(r"(?<![0-9])[0-9]{12,19}(?![0-9])")


def masked_text(raw: bytes) -> str:
    """Bytes as text people may read: every run of 12 to 19 digits (a card number, or what could
    be one) masked as 9704 **** **** 1234 (switch/domain/pan.py)."""
    return _CARD_LIKE.sub(lambda m: mask(m.group(0)) or "", raw.decode("utf-8", "replace"))


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """One record of the dead-letter topic."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n == name:
                return (v or b"").decode("utf-8", "replace")
        return None

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def truncated(self) -> list[str]:
        return [t for t in (self.header("mekong.truncated") or "").split(",") if t]

    @property
    def source_topic(self) -> str | None:
        return self.header("mekong.source.topic")

    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(n.removeprefix(ORIGINAL_HEADER_PREFIX), v) for n, v in self.headers if n.startswith(ORIGINAL_HEADER_PREFIX)]

    def summary(self) -> dict[str, Any]:
        source_partition, source_offset = self.header("mekong.source.partition"), self.header("mekong.source.offset")
        return {
            "ref": self.ref,
            "partition": self.partition,
            "offset": self.offset,
            "at": datetime.fromtimestamp(self.timestamp_ms / 1000, timezone.utc).isoformat(),
            "reason_code": self.header("mekong.reason_code"),
            "reason": self.header("mekong.reason"),
            "source": {
                "topic": self.source_topic,
                "partition": int(source_partition) if source_partition and source_partition.isdigit() else None,
                "offset": int(source_offset) if source_offset and source_offset.isdigit() else None,
            },
            "value_bytes": int(size) if (size := self.header("mekong.source.value_bytes") or "").isdigit() else len(self.value),
            "truncated": self.truncated,
        }

    def detail(self) -> dict[str, Any]:
        """The summary and the record itself: key and value as text (card numbers masked), the
        original header names (their values are signatures and key ids: not shown)."""
        return {
            **self.summary(),
            "sha256": self.header("mekong.source.sha256"),
            "key": masked_text(self.key) if self.key is not None else None,
            "value": masked_text(self.value),
            "original_headers": [n for n, _ in self.original_headers()],
        }


def parse_ref(ref: str) -> tuple[int, int]:
    """"PARTITION:OFFSET", or "OFFSET" for partition 0; ValueError otherwise."""
    partition, _, offset = ref.strip().rpartition(":")
    p, o = int(partition or "0"), int(offset)
    if p < 0 or o < 0:
        raise ValueError(f"not a dead-letter reference: {ref!r}")
    return p, o


class DeadLetters:
    """Reads the dead-letter topic outside any consumer group, and republishes originals."""

    def __init__(self, kafka: KafkaConfig, producer: AIOKafkaProducer, client: dict[str, Any]) -> None:
        self.topic = kafka.dlq_topic
        self._bootstrap = kafka.bootstrap_servers
        self._client_id = f"{kafka.client_id}-dlq-reader"
        self._producer = producer
        self._client = client

    async def _read(self, starts: dict[int, int], per_partition_max: int) -> list[DeadLetterView]:
        """From each partition of `starts` (partition -> first offset; -n: the last n), up to its
        end as it was when reading began, at most `per_partition_max` records each."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False, client_id=self._client_id,
            auto_offset_reset="earliest", **self._client,
        )
        await consumer.start()
        try:
            async with asyncio.timeout(limits.dlq_read_timeout_s):
                await consumer.topics()  # the cluster's metadata, this topic's partitions among it
                known = consumer.partitions_for_topic(self.topic) or set()
                tps = [TopicPartition(self.topic, p) for p in sorted(starts) if p in known]
                if not tps:
                    return []
                consumer.assign(tps)
                ends = await consumer.end_offsets(tps)
                begins = await consumer.beginning_offsets(tps)
                wanted: dict[TopicPartition, int] = {}
                for tp in tps:
                    start = starts[tp.partition]
                    first = max(begins[tp], ends[tp] + start if start < 0 else start)
                    if first < ends[tp]:
                        consumer.seek(tp, first)
                        wanted[tp] = min(ends[tp], first + per_partition_max)
                    else:
                        consumer.pause(tp)
                out: list[DeadLetterView] = []
                while wanted:
                    batches = await consumer.getmany(*wanted, timeout_ms=500, max_records=limits.dlq_listed_max)
                    for tp, records in batches.items():
                        for r in records:
                            if tp in wanted and r.offset < wanted[tp]:
                                out.append(DeadLetterView(r.partition, r.offset, r.timestamp, r.key, r.value or b"",
                                                          tuple((n, v or b"") for n, v in r.headers or ())))
                        if tp in wanted and (await consumer.position(tp)) >= wanted[tp]:
                            del wanted[tp]
                            consumer.pause(tp)
                return out
        finally:
            await consumer.stop()

    async def partitions(self) -> list[int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, client_id=self._client_id, **self._client)
        await consumer.start()
        try:
            async with asyncio.timeout(limits.dlq_read_timeout_s):
                await consumer.topics()  # the cluster's metadata, this topic's partitions among it
                return sorted(consumer.partitions_for_topic(self.topic) or ())
        finally:
            await consumer.stop()

    async def newest(self, limit: int, reason: str | None = None) -> list[DeadLetterView]:
        """The newest `limit` dead letters (of the last dlq_listed_max per partition), newest
        first; with `reason`, those whose reason code is it or whose reason text contains it."""
        partitions = await self.partitions()
        records = await self._read({p: -limits.dlq_listed_max for p in partitions}, limits.dlq_listed_max)
        if reason:
            records = [
                r for r in records
                if (r.header("mekong.reason_code") or "") == reason or reason.lower() in (r.header("mekong.reason") or "").lower()
            ]
        return sorted(records, key=lambda r: (r.timestamp_ms, r.partition, r.offset), reverse=True)[:limit]

    async def get(self, partition: int, offset: int) -> DeadLetterView | None:
        found = await self._read({partition: offset}, 1)
        return found[0] if found and found[0].offset == offset else None

    async def republish(self, dead: DeadLetterView) -> tuple[int, int]:
        """Publish the original record to its topic; where the broker put it."""
        assert dead.source_topic is not None and not dead.truncated
        async with asyncio.timeout(limits.dlq_read_timeout_s):
            meta = await self._producer.send_and_wait(dead.source_topic, value=dead.value, key=dead.key, headers=dead.original_headers())
        return meta.partition, meta.offset
