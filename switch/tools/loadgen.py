"""Instructions as a participant would send them, and a driver that publishes them on Kafka and
follows every one to its final status (or the dead-letter topic). Shared by demo, bench and the
end-to-end test."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

DEBTORS = [
    ("ACLBKHPPXXX", "aclb", ["Sok Dara", "Chan Sophea", "Keo Vannak", "Lim Sreymom", "Heng Rithy"]),
    ("ABAAKHPPXXX", "abaa", ["Nhem Bopha", "Pich Sovann", "Meas Chenda", "Ouk Piseth"]),
    ("WINGKHPPXXX", "wing", ["Touch Sreyneang", "Yim Chanthou", "Sam Ratana"]),
]
CREDITORS = ["Somchai Jaidee", "Suda Srisuk", "Anan Chaiyaporn", "Malee Wongsa", "Niran Boonmee", "Kanya Rattana"]
THAI_BANKS = ["002", "004", "006", "011", "014", "025", "069"]
BAD_KINDS = ("bad_decimals", "unknown_proxy", "malformed_json", "wrong_type")


@dataclass(frozen=True)
class Planned:
    key: str  # the instruction id, also the Kafka key
    value: bytes
    kind: str  # good | one of BAD_KINDS
    expect: str  # what the participant should end up seeing: COMPLETED/REJECTED reason, or DLQ


def _mobile(rng: random.Random) -> str:
    return "0066" + "".join(rng.choice("0123456789") for _ in range(9))


def plan_instructions(count: int, *, seed: int = 20261126, bad_share: float = 0.02, run_id: str = "") -> tuple[list[Planned], set[str]]:
    """`count` instructions, about `bad_share` of them bad, and the proxies the partner lacks."""
    rng = random.Random(seed)
    bad_every = max(1, round(1 / bad_share)) if bad_share > 0 else 0
    unknown_proxies: set[str] = set()
    out: list[Planned] = []
    for n in range(count):
        participant, suffix, names = rng.choice(DEBTORS)
        debtor_name = rng.choice(names)
        instruction_id = f"{suffix.upper()}-{run_id}{n:07d}"
        debtor_ccy = "KHR" if rng.random() < 0.7 else "USD"
        mode = rng.random()
        if mode < 0.6:  # the debtor fixes what leaves their account
            amount = {"value": str(rng.randrange(10_000, 2_000_000, 100)), "currency": "KHR"} if debtor_ccy == "KHR" else {
                "value": f"{Decimal(rng.randrange(500, 30_000)) / 100:.2f}", "currency": "USD"}
        else:  # the creditor's amount in THB is fixed (Thai QR style)
            amount = {"value": f"{Decimal(rng.randrange(10_000, 500_000)) / 100:.2f}", "currency": "THB"}
        route = rng.random()
        creditor: dict[str, Any] = {"name": rng.choice(CREDITORS)}
        if route < 0.4:
            creditor["proxy"] = {"type": "MOBILE", "value": _mobile(rng)}
        elif route < 0.7:
            creditor["proxy"] = {"type": "NATID", "value": "".join(rng.choice("0123456789") for _ in range(13))}
        else:
            creditor["account"] = "".join(rng.choice("0123456789") for _ in range(10))
            creditor["agent"] = rng.choice(THAI_BANKS)
        doc: dict[str, Any] = {
            "version": 1,
            "instruction_id": instruction_id,
            "participant": participant,
            "corridor": "KH-TH",
            "debtor": {"name": debtor_name, "account": f"{debtor_name.split()[0].lower()}_{n % 997}@{suffix}", "currency": debtor_ccy},
            "creditor": creditor,
            "amount": amount,
            "remittance": f"Invoice {n}",
        }
        kind, expect = "good", "COMPLETED"
        if bad_every and n % bad_every == bad_every // 2:
            kind = BAD_KINDS[(n // bad_every) % len(BAD_KINDS)]
        if kind == "bad_decimals":
            doc["amount"] = {"value": "150000.5", "currency": "KHR"} if debtor_ccy == "KHR" else {"value": "12.345", "currency": "USD"}
            expect = "REJECTED CH20"
        elif kind == "unknown_proxy":
            proxy = _mobile(rng)
            doc["creditor"] = {"name": rng.choice(CREDITORS), "proxy": {"type": "MOBILE", "value": proxy}}
            unknown_proxies.add(proxy)
            expect = "REJECTED BE23"
        elif kind == "wrong_type":
            doc["amount"] = {"value": 1500, "currency": "KHR"}  # a JSON number, not decimal text
            expect = "REJECTED FF01"
        value = json.dumps(doc).encode()
        if kind == "malformed_json":
            value = value[: len(value) // 2]
            expect = "DLQ"
        out.append(Planned(instruction_id, value, kind, expect))
    return out, unknown_proxies


@dataclass
class Final:
    state: str
    reason_code: str | None
    latency_s: float  # publish of the instruction -> status event read back, as the participant sees it
    event: dict[str, Any]
    record_ts_ms: int  # the status record's timestamp: when the switch handed it to Kafka


@dataclass
class DriveResult:
    sent: int = 0
    finals: dict[str, Final] = field(default_factory=dict)
    dead_letters: dict[str, str] = field(default_factory=dict)  # key -> reason
    sent_wall_ms: dict[str, float] = field(default_factory=dict)  # instruction id -> epoch ms at publish
    first_sent_at: float = 0.0
    last_final_at: float = 0.0
    non_final_events: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0

    def accounted(self) -> int:
        return len(self.finals) + sum(1 for key in self.dead_letters if key not in self.finals)

    def latencies_ms(self) -> list[float]:
        return [f.latency_s * 1000 for f in self.finals.values()]

    def elapsed_s(self) -> float:
        return max(1e-9, self.last_final_at - self.first_sent_at)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    if len(values) == 1:
        return {"p50": values[0], "p95": values[0], "p99": values[0]}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 2), "p95": round(q[94], 2), "p99": round(q[98], 2)}


async def drive(
    bootstrap_servers: str,
    planned: list[Planned],
    *,
    rate_per_s: float = 0.0,
    topic: str = "mekong.instructions",
    status_topic: str = "mekong.status",
    dlq_topic: str = "mekong.dlq",
    settle_s_max: float = 120.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> DriveResult:
    """Publish `planned` (at `rate_per_s`, or flat out) and wait until each one is accounted for:
    a final status event, or its record on the dead-letter topic."""
    result = DriveResult()
    sent_at: dict[str, float] = {}
    keys = {p.key for p in planned}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=False, linger_ms=5)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=5
    )
    await producer.start()
    await consumer.start()
    try:
        partitions = [
            TopicPartition(t, p)
            for t in (status_topic, dlq_topic)
            for p in (await _partitions(consumer, t))
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        done = asyncio.Event()

        async def collect() -> None:
            accounted = 0
            while not done.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=2000)
                now = time.perf_counter()
                for tp, records in batches.items():
                    for rec in records:
                        key = (rec.key or b"").decode(errors="replace")
                        if tp.topic == dlq_topic:
                            if key in keys and key not in result.dead_letters:
                                reason = dict(rec.headers).get("mekong.reason", b"").decode(errors="replace")
                                result.dead_letters[key] = reason
                                result.last_final_at = now
                                if key not in result.finals:
                                    accounted += 1
                            continue
                        event = json.loads(rec.value)
                        instruction_id = event["instruction_id"]
                        if instruction_id not in keys:
                            continue
                        if not event["final"]:
                            result.non_final_events[event["state"]] += 1
                            continue
                        if instruction_id in result.finals:
                            result.duplicates += 1
                            continue
                        result.finals[instruction_id] = Final(
                            event["state"], event.get("reason_code"), now - sent_at.get(instruction_id, now), event, rec.timestamp
                        )
                        result.last_final_at = now
                        if instruction_id not in result.dead_letters:
                            accounted += 1
                if on_progress:
                    on_progress(accounted, len(planned))
                if accounted >= len(planned):
                    done.set()

        collector = asyncio.create_task(collect())
        result.first_sent_at = time.perf_counter()
        interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        pending = []
        for i, p in enumerate(planned):
            if interval:
                target = result.first_sent_at + i * interval
                delay = target - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent_at[p.key] = time.perf_counter()
            result.sent_wall_ms[p.key] = time.time() * 1000
            pending.append(await producer.send(topic, value=p.value, key=p.key.encode()))
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        result.sent = len(planned)
        try:
            await asyncio.wait_for(done.wait(), timeout=settle_s_max)
        except asyncio.TimeoutError:
            pass
        done.set()
        await collector
    finally:
        await consumer.stop()
        await producer.stop()
    return result


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    for _ in range(100):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} does not exist")


def summarise(planned: list[Planned], result: DriveResult) -> dict[str, Any]:
    """Counts by outcome and reason, expectations met, latency, FX rates and volumes."""
    by_outcome: Counter[str] = Counter()
    unmet: list[str] = []
    rates: dict[str, set[str]] = defaultdict(set)
    volume: dict[str, Decimal] = defaultdict(Decimal)
    for p in planned:
        if p.key in result.finals:
            f = result.finals[p.key]
            got = f.state if f.state == "COMPLETED" else f"{f.state} {f.reason_code}"
            ev = f.event
            if f.state == "COMPLETED":
                pair = f"{ev['source_amount']['currency']}->{ev['target_amount']['currency']}"
                if ev.get("fx_rate"):
                    rates[pair].add(ev["fx_rate"])
                volume[f"debited {ev['source_amount']['currency']}"] += Decimal(ev["source_amount"]["value"])
                volume[f"credited {ev['target_amount']['currency']}"] += Decimal(ev["target_amount"]["value"])
        elif p.key in result.dead_letters:
            got = "DLQ"
        else:
            got = "MISSING"
        by_outcome[got] += 1
        if p.kind != "good" and got != p.expect:
            unmet.append(f"{p.key} ({p.kind}): expected {p.expect}, got {got}")
    return {
        "by_outcome": dict(by_outcome.most_common()),
        "bad_input_expectations_unmet": unmet,
        "rates": {pair: sorted(values) for pair, values in rates.items()},
        "volume": {k: f"{v:,.2f}" for k, v in sorted(volume.items())},
        "latency_ms": percentiles(result.latencies_ms()),
        "duplicates_seen": result.duplicates,
    }
