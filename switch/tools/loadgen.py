"""Instructions as a participant would send them, and a driver that publishes them on Kafka and
follows every one to its final status (or the dead-letter topic). Shared by demo, bench and the
end-to-end test. Each record is signed by the participant it comes from (switch/tools/signer.py),
unless the switch runs with --insecure-dev (no signers)."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from stdnum import luhn

from switch.qr.emvco import encode
from switch.tools.pain001_samples import pain001_from_instructions
from switch.tools.signer import ParticipantSigners

DEBTORS = [
    ("ACLBKHPPXXX", "aclb", ["Sok Dara", "Chan Sophea", "Keo Vannak", "Lim Sreymom", "Heng Rithy"]),
    ("ABAAKHPPXXX", "abaa", ["Nhem Bopha", "Pich Sovann", "Meas Chenda", "Ouk Piseth", "សុខ ដារា"]),
    ("WINGKHPPXXX", "wing", ["Touch Sreyneang", "Yim Chanthou", "Sam Ratana"]),
]
CREDITORS = ["Somchai Jaidee", "Suda Srisuk", "Anan Chaiyaporn", "Malee Wongsa", "Niran Boonmee", "Kanya Rattana", "สมชาย ใจดี"]
THAI_BANKS = ["002", "004", "006", "011", "014", "025", "069"]
# Per corridor: creditor names (some in their own script: the switch sends a Latin transliteration
# and keeps the original), creditor banks, and the target currency with its decimals.
CORRIDOR_CREDITORS: dict[str, tuple[list[str], list[str]]] = {
    "KH-TH": (CREDITORS, THAI_BANKS),
    "KH-LA": (["Souksavanh Phommachanh", "Bounmy Keomany", "ສົມພອນ ແກ້ວມະນີ"], ["27710418", "10010418", "30020418"]),
    "KH-VN": (["Nguyễn Văn Đức", "Trần Thị Hoa", "Lê Minh Tuấn", "Phạm Đình Long"], ["970436", "970418", "970415", "970422"]),
    "KH-CN": (["Wang Wei", "Li Na", "张伟"], ["30030156", "62280156"]),
}
TARGETS = {"KH-TH": ("THB", 2), "KH-LA": ("LAK", 0), "KH-VN": ("VND", 0), "KH-CN": ("CNY", 2)}
KHR_ONLY = {"KH-VN"}  # corridors that debit KHR accounts only (config/corridors.toml)
ALL_CORRIDORS = ("KH-TH", "KH-LA", "KH-VN", "KH-CN")
BAD_KINDS = ("bad_decimals", "unknown_proxy", "malformed_json", "wrong_type", "bad_qr")


@dataclass(frozen=True)
class Planned:
    key: str  # the instruction id, also the Kafka key (a pain.001 record: its message id)
    value: bytes | None  # None: published inside a pain.001 record (see `covers`)
    kind: str  # good | one of BAD_KINDS | pain001 (a record carrying several instructions)
    expect: str  # what the participant should end up seeing: COMPLETED/REJECTED reason, or DLQ
    corridor: str = "KH-TH"
    origin: str = "json"  # json | qr | pain.001
    covers: tuple[str, ...] = ()  # a pain001 record: the instruction ids it carries
    participant: str = ""  # who sends it (and signs the record)


def _mobile(rng: random.Random) -> str:
    """A Thai mobile number as a PromptPay proxy (every 08x and 09x number is a Thai mobile)."""
    return "0066" + rng.choice("89") + "".join(rng.choice("0123456789") for _ in range(8))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _luhn_pan(rng: random.Random, prefix: str = "62", length: int = 16) -> str:
    """A card PAN with a valid Luhn check digit (python-stdnum computes it)."""
    body = prefix + _digits(rng, length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def _creditor(corridor: str, rng: random.Random) -> dict[str, Any]:
    names, banks = CORRIDOR_CREDITORS[corridor]
    creditor: dict[str, Any] = {"name": rng.choice(names)}
    route = rng.random()
    if corridor == "KH-TH" and route < 0.4:
        creditor["proxy"] = {"type": "MOBILE", "value": _mobile(rng)}
    elif corridor == "KH-TH" and route < 0.7:
        creditor["proxy"] = {"type": "NATID", "value": _digits(rng, 13)}
    elif corridor == "KH-CN":
        creditor["account"] = _luhn_pan(rng)
        creditor["agent"] = rng.choice(banks)
    else:
        creditor["account"] = _digits(rng, 10 if corridor != "KH-VN" else 12)
        creditor["agent"] = rng.choice(banks)
    return creditor


def _qr(corridor: str, rng: random.Random) -> tuple[str, dict[str, Any] | None]:
    """An EMVCo QR the payer scans, and the amount the instruction must add (static QR) or None."""
    if corridor == "KH-TH":
        fields: dict[str, Any] = {"01": "12", "29": {"00": "A000000677010111", "01": _mobile(rng)}, "53": "764",
                                  "54": f"{Decimal(rng.randrange(10_000, 300_000)) / 100:.2f}", "58": "TH", "59": "THAI SHOP",
                                  "60": "BANGKOK"}
        return encode(fields), None
    if corridor == "KH-VN":
        fields = {"01": "11", "38": {"00": "A000000727", "01": {"00": "970436", "01": _digits(rng, 12)}, "02": "QRIBFTTA"},
                  "53": "704", "58": "VN", "59": "NGUYEN VAN DUC", "60": "HA NOI"}
        return encode(fields), {"value": str(rng.randrange(10_000, 1_000_000, 100)), "currency": "KHR"}
    if corridor == "KH-LA":
        fields = {"01": "12", "38": {"00": "A005266284662577", "01": "27710418", "02": "001", "03": _digits(rng, 10)},
                  "53": "418", "54": str(rng.randrange(20_000, 2_000_000, 1000)), "58": "LA", "59": "BCEL SHOP", "60": "VIENTIANE"}
        return encode(fields), None
    fields = {"01": "12", "15": "30030156" + "62280156" + "A1B2C3D4E5F6G7H", "53": "156",
              "54": f"{Decimal(rng.randrange(1_000, 50_000)) / 100:.2f}", "58": "CN", "59": "WANG SHOP", "60": "SHANGHAI"}
    return encode(fields), None


_DEBTOR_TOWNS = (("Phnom Penh", "12000"), ("Siem Reap", "17000"), ("Battambang", "02000"), ("Kampot", "07000"))


def _debtor_data(n: int) -> dict[str, Any]:
    """Issue 12: every planned debtor carries a structured address and a national id with birth
    details (made up, derived from n so the plan's random draws stay as they were)."""
    town, post_code = _DEBTOR_TOWNS[n % len(_DEBTOR_TOWNS)]
    return {
        "address": {"street": f"Street {100 + n % 400}", "building": str(1 + n % 250), "post_code": post_code,
                    "town": town, "country": "KH"},
        "identification": {
            "national_id": {"value": f"{100000000 + n % 900000000:09d}", "issuer": "KH"},
            "birth": {"date": f"{1950 + n % 50}-{1 + n % 12:02d}-{1 + n % 28:02d}", "city": town, "country": "KH"},
        },
    }


def plan_instructions(
    count: int,
    *,
    seed: int = 20261126,
    bad_share: float = 0.02,
    run_id: str = "",
    corridors: tuple[str, ...] = ("KH-TH",),
    qr_share: float = 0.0,
    pain_share: float = 0.0,
    pain_batch: int = 5,
) -> tuple[list[Planned], set[str]]:
    """`count` instructions over `corridors`, about `bad_share` of them bad, `qr_share` given as
    a scanned QR and `pain_share` sent inside pain.001 records of `pain_batch` transactions; and
    the proxies the partner lacks."""
    rng = random.Random(seed)
    bad_every = max(1, round(1 / bad_share)) if bad_share > 0 else 0
    unknown_proxies: set[str] = set()
    out: list[Planned] = []
    pain_pending: dict[str, list[dict[str, Any]]] = defaultdict(list)  # participant -> instruction docs
    for n in range(count):
        participant, suffix, names = rng.choice(DEBTORS)
        corridor = corridors[n % len(corridors)]
        debtor_name = rng.choice(names)
        instruction_id = f"{suffix.upper()}-{run_id}{n:07d}"
        debtor_ccy = "KHR" if corridor in KHR_ONLY or rng.random() < 0.7 else "USD"
        target_ccy, target_decimals = TARGETS[corridor]
        if rng.random() < 0.6:  # the debtor fixes what leaves their account
            amount = {"value": str(rng.randrange(10_000, 2_000_000, 100)), "currency": "KHR"} if debtor_ccy == "KHR" else {
                "value": f"{Decimal(rng.randrange(500, 30_000)) / 100:.2f}", "currency": "USD"}
        elif target_decimals:  # the creditor's amount is fixed (QR style)
            amount = {"value": f"{Decimal(rng.randrange(10_000, 500_000)) / 100:.2f}", "currency": target_ccy}
        else:
            amount = {"value": str(rng.randrange(50_000, 5_000_000, 1000)), "currency": target_ccy}
        doc: dict[str, Any] = {
            "version": 1,
            "instruction_id": instruction_id,
            "participant": participant,
            "corridor": corridor,
            "debtor": {"name": debtor_name, "account": f"{debtor_name.split()[0].lower()}_{n % 997}@{suffix}", "currency": debtor_ccy,
                       **_debtor_data(n)},
            "creditor": _creditor(corridor, rng),
            "amount": amount,
            "remittance": f"Invoice {n}",
        }
        kind, expect, origin = "good", "COMPLETED", "json"
        if bad_every and n % bad_every == bad_every // 2:
            kind = BAD_KINDS[(n // bad_every) % len(BAD_KINDS)]
        elif rng.random() < qr_share:
            origin = "qr"
        elif rng.random() < pain_share:
            origin = "pain.001"
        if origin == "qr":
            qr, qr_amount = _qr(corridor, rng)
            for key in ("creditor", "corridor", "amount"):
                doc.pop(key)
            doc["qr"] = qr
            if qr_amount is not None:
                doc["amount"] = qr_amount
        if kind == "bad_decimals":
            doc["amount"] = {"value": "150000.5", "currency": "KHR"} if debtor_ccy == "KHR" else {"value": "12.345", "currency": "USD"}
            expect = "REJECTED CH20"
        elif kind == "unknown_proxy":
            proxy = _mobile(rng)
            doc["corridor"] = "KH-TH"
            doc["amount"] = {"value": "150000", "currency": "KHR"}
            doc["debtor"]["currency"] = "KHR"
            doc["creditor"] = {"name": rng.choice(CREDITORS), "proxy": {"type": "MOBILE", "value": proxy}}
            unknown_proxies.add(proxy)
            expect = "REJECTED BE23"
            corridor = "KH-TH"
        elif kind == "wrong_type":
            doc["amount"] = {"value": 1500, "currency": "KHR"}  # a JSON number, not decimal text
            expect = "REJECTED FF01"
        elif kind == "bad_qr":
            qr, _ = _qr("KH-TH", rng)
            for key in ("creditor", "corridor", "amount"):
                doc.pop(key, None)
            doc["qr"] = qr[:-4] + ("0000" if not qr.endswith("0000") else "FFFF")  # a damaged checksum
            expect, corridor, origin = "REJECTED FF01", "KH-TH", "qr"
        if origin == "pain.001":
            pain_pending[participant].append(doc)
            out.append(Planned(instruction_id, None, kind, expect, corridor, origin, participant=participant))
            if len(pain_pending[participant]) >= pain_batch:
                out.append(_pain_record(participant, pain_pending.pop(participant), run_id, len(out)))
            continue
        value = json.dumps(doc).encode()
        if kind == "malformed_json":
            value = value[: len(value) // 2]
            expect = "DLQ"
        out.append(Planned(instruction_id, value, kind, expect, corridor, origin, participant=participant))
    for participant, docs in pain_pending.items():
        out.append(_pain_record(participant, docs, run_id, len(out)))
    return out, unknown_proxies


def _pain_record(participant: str, docs: list[dict[str, Any]], run_id: str, n: int) -> Planned:
    message_id = f"PAIN-{run_id}{n:07d}"
    body = pain001_from_instructions(docs, message_id=message_id, created_at=datetime.now(timezone.utc))
    return Planned(message_id, body, "pain001", "PAIN002", origin="pain.001", covers=tuple(d["instruction_id"] for d in docs),
                   participant=participant)


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
    exception_events: Counter[str] = field(default_factory=Counter)  # later news of a final payment (issue 9), by state
    pain002_reports: int = 0  # pain.002 records (XML) read on the status topic

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
    signers: ParticipantSigners | None = None,
) -> DriveResult:
    """Publish `planned` (at `rate_per_s`, or flat out; signed by `signers`, unsigned when None)
    and wait until each one is accounted for: a final status event, or its record on the
    dead-letter topic."""
    result = DriveResult()
    sent_at: dict[str, float] = {}
    tracked = [p for p in planned if p.kind != "pain001"]  # a pain.001 record is followed per transaction
    pain002_wait_s_max = 10.0  # after the last final status: the pain.002 records still on their way
    keys = {p.key for p in tracked}
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

        pain001_records = sum(1 for p in planned if p.kind == "pain001")
        pain_keys = {p.key for p in tracked if p.origin == "pain.001"}

        def pain002_expected() -> int:
            """One pain.002 per pain.001 message, and one per payment of it the switch admitted."""
            return pain001_records + sum(1 for key in pain_keys if key in result.finals and result.finals[key].event.get("uetr"))

        async def collect() -> None:
            accounted = 0
            all_finals_at: float | None = None
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
                        if rec.value.startswith(b"<"):  # a pain.002 for a pain.001 sender
                            result.pain002_reports += 1
                            continue
                        event = json.loads(rec.value)
                        instruction_id = event["instruction_id"]
                        if instruction_id not in keys:
                            continue
                        if not event["final"]:
                            result.non_final_events[event["state"]] += 1
                            continue
                        if instruction_id in result.finals:
                            if event.get("exception") is not None or event.get("type") == "exception":
                                result.exception_events[event["state"]] += 1  # returned, recalled ...: news, not a second outcome
                            else:
                                result.duplicates += 1
                            continue
                        result.finals[instruction_id] = Final(
                            event["state"], event.get("reason_code"), now - sent_at.get(instruction_id, now), event, rec.timestamp
                        )
                        result.last_final_at = now
                        if instruction_id not in result.dead_letters:
                            accounted += 1
                if on_progress:
                    on_progress(accounted, len(tracked))
                if accounted >= len(tracked):
                    # a pain.001 sender's pain.002 is a record of its own, published beside the JSON
                    # event: wait (briefly) for the last ones too, so the count is not a race
                    if all_finals_at is None:
                        all_finals_at = now
                    if result.pain002_reports >= pain002_expected() or now - all_finals_at > pain002_wait_s_max:
                        done.set()

        collector = asyncio.create_task(collect())
        result.first_sent_at = time.perf_counter()

        def sent(key: str) -> None:
            sent_at[key] = time.perf_counter()
            result.sent_wall_ms[key] = time.time() * 1000

        await publish(producer, planned, rate_per_s=rate_per_s, topic=topic, started_at=result.first_sent_at, on_sent=sent,
                      signers=signers)
        result.sent = len(tracked)
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


async def publish(
    producer: AIOKafkaProducer,
    planned: list[Planned],
    *,
    rate_per_s: float = 0.0,
    topic: str = "mekong.instructions",
    started_at: float | None = None,
    on_sent: Callable[[str], None] | None = None,
    signers: ParticipantSigners | None = None,
) -> None:
    """Publish `planned` at `rate_per_s` (or flat out) from `started_at` (perf_counter, default
    now), each record signed by its participant with `signers` (None: unsigned, for a switch
    run with --insecure-dev); `on_sent` gets each instruction id as its record is handed to the
    producer. Returns once the broker has acknowledged every record."""
    started = time.perf_counter() if started_at is None else started_at
    interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
    pending = []
    for i, p in enumerate(planned):
        if interval:
            target = started + i * interval
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if p.value is None:  # published inside its pain.001 record
            continue
        if on_sent is not None:
            for key in p.covers or (p.key,):
                on_sent(key)
        headers = signers.headers(p.participant, p.value) if signers is not None else None
        pending.append(await producer.send(topic, value=p.value, key=p.key.encode(), headers=headers))
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


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
    by_corridor: dict[str, Counter[str]] = defaultdict(Counter)
    latency_by_corridor: dict[str, list[float]] = defaultdict(list)
    unmet: list[str] = []
    rates: dict[str, set[str]] = defaultdict(set)
    volume: dict[str, Decimal] = defaultdict(Decimal)
    for p in planned:
        if p.kind == "pain001":
            continue
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
        row = f"{p.corridor} out" + ("" if p.origin == "json" else f" ({p.origin})")
        by_corridor[row][got] += 1
        if p.key in result.finals:
            latency_by_corridor[row].append(result.finals[p.key].latency_s * 1000)
        if p.kind != "good" and got != p.expect:
            unmet.append(f"{p.key} ({p.kind}): expected {p.expect}, got {got}")
    return {
        "by_outcome": dict(by_outcome.most_common()),
        "by_corridor": {row: dict(c.most_common()) for row, c in sorted(by_corridor.items())},
        "latency_ms_by_corridor": {row: percentiles(v) for row, v in sorted(latency_by_corridor.items())},
        "pain001_records": sum(1 for p in planned if p.kind == "pain001"),
        "pain002_reports": result.pain002_reports,
        "bad_input_expectations_unmet": unmet,
        "rates": {pair: sorted(values) for pair, values in rates.items()},
        "volume": {k: f"{v:,.2f}" for k, v in sorted(volume.items())},
        "latency_ms": percentiles(result.latencies_ms()),
        "duplicates_seen": result.duplicates,
        "exception_events": dict(result.exception_events),
    }
