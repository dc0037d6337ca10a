"""Inbound payments for the demo and the tests: each partner simulator pays Bakong customers
through the switch, and a participant process (played here) reads `mekong.inbound`, credits or
refuses, or stays silent, on `mekong.inbound.replies`. The partners' own view of the outcome (the
pacs.002 answers each simulator received) is what is summarised.

The planned outcome of each payment rides in its remittance text (`demo:accept`, `demo:reject`,
`demo:silent`), so the participant here knows what to do without sharing state with the planner.

`mekong.inbound` also carries partners' recalls of inbound payments (issue 9: InboundRecallV1,
`type: "recall"`); the participant here answers payments only: it counts a recall event and
leaves it to whoever plays the recall side (switch/tools/exceptions_load.py in the demo).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from switch.tools.loadgen import _partitions, percentiles
from switch.tools.signer import ParticipantSigners

INBOUND_ROUTES = {"promptpay": "TH-KH", "lapnet": "LA-KH", "napas": "VN-KH", "unionpay": "CN-KH"}
PARTNER_CCY = {"promptpay": ("THB", "120.05"), "lapnet": ("LAK", "0.1878"), "napas": ("VND", "0.1565"), "unionpay": ("CNY", "563.4")}
# Bakong customers the partners pay: by account id, or by the mobile number in config/inbound.toml
ACCOUNTS = [("Sok Dara", "sok_dara@aclb"), ("Chan Sophea", "chan_sophea@abaa"), ("Keo Vanna", "keo_vanna@wing")]
MOBILES = [("Sok Dara", "85512345678"), ("Chan Sophea", "+855 98 765 432"), ("Lim Bopha", "855975551234")]
UNKNOWN_MOBILE = "85517000111"
post_batch_max = 50


@dataclass(frozen=True)
class InboundPlanned:
    partner: str
    spec: dict[str, Any]  # adapters.simulator_inbound.InboundSpec fields
    expect: str  # ACSC, or RJCT <reason>


def plan_inbound(per_partner: int, *, seed: int = 7, partners: tuple[str, ...] = tuple(INBOUND_ROUTES)) -> list[InboundPlanned]:
    """Per partner: mostly good payments (accounts and mobiles), about 4% refused by the
    participant (AC04), 2% left unanswered (AB05), and the switch's own rejects: unknown mobile
    (BE23), a currency the route does not credit (CURR) and fractional riel (CH20)."""
    rng = random.Random(seed)
    out: list[InboundPlanned] = []
    for partner in partners:
        ccy, rate = PARTNER_CCY[partner]
        for n in range(per_partner):
            usd = partner in ("promptpay", "lapnet") and rng.random() < 0.2
            amount = f"{rng.randrange(100, 30_000) / 100:.2f}" if usd else str(rng.randrange(4_000, 2_000_000, 100))
            spec: dict[str, Any] = {"amount": amount, "currency": "USD" if usd else "KHR", "debtor_name": "FOREIGN PAYER",
                                    "instructed_amount": None, "exchange_rate": None}
            if not usd:
                spec["instructed_amount"] = f"{int(amount) / float(rate):.2f}" if ccy not in ("LAK", "VND") else str(round(int(amount) / float(rate)))
                spec["exchange_rate"] = rate
            name, target = (rng.choice(ACCOUNTS) if rng.random() < 0.5 else rng.choice(MOBILES))
            spec["creditor_name"] = name
            spec["creditor_mobile" if "@" not in target else "creditor_account"] = target
            roll, expect, action = n % 50, "ACSC", "accept"
            if roll == 7:
                spec["creditor_mobile"], spec["creditor_account"], expect = UNKNOWN_MOBILE, None, "RJCT BE23"
            elif roll == 17:
                spec.update(currency="EUR", amount="10.00", instructed_amount=None, exchange_rate=None)
                expect = "RJCT CURR"
            elif roll == 27:
                spec.update(currency="KHR", amount="1000.50")
                expect = "RJCT CH20"
            elif roll in (11, 37):
                expect, action = "RJCT AC04", "reject"
            elif roll == 44:
                expect, action = "RJCT AB05", "silent"
            spec["remittance"] = f"demo:{action}"
            out.append(InboundPlanned(partner, {k: v for k, v in spec.items() if v is not None}, expect))
    return out


@dataclass
class InboundResult:
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # uetr -> the partner's view
    uetrs: dict[str, InboundPlanned] = field(default_factory=dict)
    replies_sent: Counter[str] = field(default_factory=Counter)
    events_seen: int = 0
    recall_events_seen: int = 0  # InboundRecallV1 (type "recall") on the same topic: not payments
    participants: dict[str, str] = field(default_factory=dict)  # uetr -> the beneficiary's participant
    amounts: dict[str, dict[str, str]] = field(default_factory=dict)  # uetr -> what was credited
    repeated_answers: int = 0
    changed_answers: int = 0

    def summary(self) -> dict[str, Any]:
        by_route: dict[str, Counter[str]] = defaultdict(Counter)
        latencies: dict[str, list[float]] = defaultdict(list)
        unmet: list[str] = []
        for uetr, planned in self.uetrs.items():
            route = f"{INBOUND_ROUTES[planned.partner]} in"
            answer = self.answers.get(uetr)
            got = "MISSING" if answer is None else answer["status"] + (f" {answer['reason_code']}" if answer["reason_code"] else "")
            by_route[route]["COMPLETED" if got == "ACSC" else got.replace("RJCT", "REJECTED")] += 1
            if answer is not None and answer["latency_ms"] >= 0 and got == "ACSC":
                latencies[route].append(answer["latency_ms"])
            if got != planned.expect:
                unmet.append(f"{uetr} ({planned.partner}): expected {planned.expect}, got {got}")
        return {
            "by_route": {r: dict(c.most_common()) for r, c in sorted(by_route.items())},
            "latency_ms_by_route": {r: percentiles(v) for r, v in sorted(latencies.items())},
            "expectations_unmet": unmet,
            "replies_sent": dict(self.replies_sent),
            "events_seen": self.events_seen,
            "recall_events_seen": self.recall_events_seen,
            "answers_repeated": self.repeated_answers,
            "answers_changed": self.changed_answers,
        }


def participant_reply(event: dict[str, Any], result: InboundResult) -> dict[str, Any] | None:
    """What the demo's participant answers to one `mekong.inbound` event (noted in `result`): an
    InboundReplyV1 for a payment, per its `demo:` remittance; None for one planned silent, and for
    a partner's recall (InboundRecallV1, `type: "recall"`), which is not a payment to answer here."""
    if event.get("type", "payment") != "payment":
        result.recall_events_seen += 1
        return None
    result.events_seen += 1
    result.participants[event["uetr"]] = event["participant"]
    result.amounts[event["uetr"]] = event["amount"]
    action = (event.get("remittance") or "").removeprefix("demo:")
    if action == "silent":
        result.replies_sent["silent"] += 1
        return None
    reply: dict[str, Any] = {"version": 1, "uetr": event["uetr"], "participant": event["participant"],
                             "decision": "REJECT" if action == "reject" else "ACCEPT"}
    if action == "reject":
        reply["reason_code"], reply["reason"] = "AC04", "account closed"
    return reply


async def drive_inbound(
    bootstrap_servers: str,
    sim_urls: Mapping[str, str],
    planned: list[InboundPlanned],
    *,
    inbound_topic: str = "mekong.inbound",
    replies_topic: str = "mekong.inbound.replies",
    settle_s_max: float = 90.0,
    rate_per_s: float = 100.0,
    on_progress: Callable[[int, int], None] | None = None,
    signers: ParticipantSigners | None = None,
) -> InboundResult:
    """Send the planned payments through the simulators, play the participants (each reply signed
    by the participant it answers for with `signers`; unsigned when None, for --insecure-dev),
    and wait until every partner has its answer."""
    result = InboundResult()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=False, linger_ms=5)
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    try:
        parts = [TopicPartition(inbound_topic, p) for p in await _partitions(consumer, inbound_topic)]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:  # pin the position now: Tansu's end offsets may lag (do not rely on `latest`)
            await consumer.position(tp)

        async def participant() -> None:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=500)
                for records in batches.values():
                    for rec in records:
                        event = json.loads(rec.value)
                        reply = participant_reply(event, result)
                        if reply is None:
                            continue
                        value = json.dumps(reply).encode()
                        headers = signers.headers(event["participant"], value) if signers is not None else None
                        await producer.send(replies_topic, value, key=event["uetr"].encode(), headers=headers)
                        result.replies_sent[reply["decision"]] += 1

        replier = asyncio.create_task(participant())
        async with aiohttp.ClientSession() as http:
            interval = post_batch_max / rate_per_s if rate_per_s > 0 else 0.0
            by_partner: dict[str, list[InboundPlanned]] = defaultdict(list)
            for p in planned:
                by_partner[p.partner].append(p)
            started = time.perf_counter()
            chunks = [(partner, items[i : i + post_batch_max]) for partner, items in by_partner.items()
                      for i in range(0, len(items), post_batch_max)]
            for n, (partner, chunk) in enumerate(chunks):
                delay = started + n * interval / max(1, len(by_partner)) - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with http.post(f"{sim_urls[partner]}/sim/inbound", json={"payments": [p.spec for p in chunk]}) as resp:
                    resp.raise_for_status()
                    uetrs = (await resp.json())["uetrs"]
                result.uetrs.update(zip(uetrs, chunk, strict=True))
            deadline = time.perf_counter() + settle_s_max
            while time.perf_counter() < deadline:
                answered = 0
                for partner in by_partner:
                    async with http.get(f"{sim_urls[partner]}/sim/inbound") as resp:
                        data = await resp.json()
                    result.answers.update(data["answers"])
                    result.repeated_answers = data["stats"].get("answers_repeated", 0)
                    result.changed_answers = data["stats"].get("answers_changed", 0)
                answered = sum(1 for u in result.uetrs if u in result.answers)
                if on_progress:
                    on_progress(answered, len(planned))
                if answered >= len(planned):
                    break
                await asyncio.sleep(0.25)
        stop.set()
        await replier
    finally:
        await producer.stop()
        await consumer.stop()
    return result
