"""A participant's rate limit on Kafka (issue 8 item 6): instructions are charged to the
participant they name, at the time their record was published (never later than the switch's
clock); those over the rate are refused through admission (REJECTED SL15, the id used up, a resend
of it replayed) and a record with nothing else in it is dead-lettered `rate_limited`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition

from switch.domain.rate_limit import Rate
from switch.entrypoints.abuse_limits import Charged, charge_instructions
from switch.metrics import Metrics
from switch.service.audit import KAFKA_RATE_LIMITED
from switch.service.handlers import AcceptInstructions, Deps, ParsedInstruction, accept_instructions
from switch.service.rate_limits import RateLimits
from switch.service.resolver import proxies_to_resolve
from tests.factories import sample_instruction
from tests.fakes import FakeUnitOfWork, parsed_instruction, status_events
from tests.unit.edge_kit import consumer_record

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)
ACLB, ABAA = "ACLBKHPPXXX", "ABAAKHPPXXX"
TOPIC = "mekong.instructions"


def _doc(participant: str, iid: str) -> dict[str, Any]:
    doc = sample_instruction(instruction_id=iid, participant=participant)
    if participant == ABAA:
        doc["debtor"] = {**doc["debtor"], "account": "dara@abaa"}
    return doc


class Batch:
    """Records as one getmany() hands them over, and the instructions read from them."""

    def __init__(self) -> None:
        self.records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        self.parsed: list[ParsedInstruction] = []

    def add(self, participant: str, iid: str, *, at_ms: int, partition: int = 0, transactions: int = 1) -> None:
        """One record published at `at_ms`: a JSON instruction, or (transactions > 1) a pain.001
        with that many transactions."""
        offset = sum(len(rs) for rs in self.records.values())
        record = consumer_record(json.dumps(_doc(participant, iid)).encode(), topic=TOPIC, partition=partition,
                                 offset=offset, timestamp_ms=at_ms)
        self.records.setdefault(TopicPartition(TOPIC, partition), []).append(record)
        ref = f"{TOPIC}:{partition}:{offset}"
        if transactions == 1:
            self.parsed.append(parsed_instruction(_doc(participant, iid), source_ref=ref))
        else:
            self.parsed.extend(parsed_instruction(_doc(participant, f"{iid}-{n}"), source_ref=f"{ref}#{n}") for n in range(transactions))

    def charge(self, limits: RateLimits, metrics: Metrics | None = None, *, now: datetime = NOW) -> Charged:
        return charge_instructions(limits, self.parsed, self.records, now=now, metrics=metrics or Metrics())


def _refused(charged: Charged) -> list[str]:
    return [p.instruction.instruction_id for p in charged.parsed if p.instruction.limited is not None]


def test_instructions_over_their_participants_burst_carry_an_sl15_reject() -> None:
    batch = Batch()
    for n in range(5):
        batch.add(ACLB, f"A{n}", at_ms=NOW_MS)
    metrics = Metrics()
    charged = batch.charge(RateLimits({ACLB: Rate(per_s=1, burst=3)}), metrics)
    assert _refused(charged) == ["A3", "A4"]
    reject = charged.parsed[3].instruction.limited
    assert reject is not None and reject.reason_code == "SL15" and "new one" in reject.detail
    assert metrics.registry.get_sample_value("switch_rate_limited_total", {"edge": "kafka", "party": ACLB}) == 2


def test_one_participants_flood_leaves_anothers_instructions_alone() -> None:
    batch = Batch()
    for n in range(50):
        batch.add(ACLB, f"A{n}", at_ms=NOW_MS)
        batch.add(ABAA, f"B{n}", at_ms=NOW_MS)
    charged = batch.charge(RateLimits({ACLB: Rate(1, 5), ABAA: Rate(1, 100)}))
    assert len(_refused(charged)) == 45 and all(i.startswith("A") for i in _refused(charged))


def test_a_record_of_one_refused_instruction_is_dead_lettered_as_rate_limited() -> None:
    batch = Batch()
    for n in range(3):
        batch.add(ACLB, f"A{n}", at_ms=NOW_MS)
    charged = batch.charge(RateLimits({ACLB: Rate(1, 2)}))
    ((record, reason),) = charged.dead
    assert record.offset == 2 and reason.startswith("rate_limited")


def test_a_backlog_is_charged_at_the_pace_it_was_published_not_read() -> None:
    """After an outage the switch reads minutes of records at once: published at the rate, they pass."""
    batch = Batch()
    for n in range(100):
        batch.add(ACLB, f"A{n}", at_ms=NOW_MS - 300_000 + n * 1_000)  # one a second, five minutes ago
    assert _refused(batch.charge(RateLimits({ACLB: Rate(per_s=1, burst=1)}))) == []


def test_future_dated_records_gain_nothing() -> None:
    batch = Batch()
    for n in range(10):
        batch.add(ACLB, f"A{n}", at_ms=NOW_MS + n * 3_600_000)  # stamped an hour apart, all sent now
    assert len(_refused(batch.charge(RateLimits({ACLB: Rate(per_s=1, burst=2)})))) == 8


def test_back_dated_records_gain_nothing() -> None:
    limits = RateLimits({ACLB: Rate(per_s=1, burst=2)})
    first = Batch()
    for n in range(2):
        first.add(ACLB, f"A{n}", at_ms=NOW_MS)
    first.charge(limits)
    later = Batch()
    for n in range(10):
        later.add(ACLB, f"B{n}", at_ms=NOW_MS - 100_000 + n * 10_000)  # claims to be old news
    assert len(_refused(later.charge(limits))) == 10


def test_records_from_several_partitions_are_charged_in_the_order_they_were_published() -> None:
    batch = Batch()
    for n in range(5):  # partition 1's records come first in the batch, but were published later
        batch.add(ACLB, f"L{n}", at_ms=NOW_MS - 5_000 + n * 1_000 + 500, partition=1)
    for n in range(5):
        batch.add(ACLB, f"E{n}", at_ms=NOW_MS - 5_000 + n * 1_000, partition=0)
    # two a second, published 0.5 s apart in all: none over
    assert _refused(batch.charge(RateLimits({ACLB: Rate(per_s=2, burst=1)}))) == []


def test_a_pain001_partly_over_the_rate_is_not_dead_lettered_but_one_wholly_over_is() -> None:
    limits = RateLimits({ACLB: Rate(per_s=1, burst=3)})
    batch = Batch()
    batch.add(ACLB, "P", at_ms=NOW_MS, transactions=5)  # three pass, two are refused
    batch.add(ACLB, "Q", at_ms=NOW_MS, transactions=4)  # all refused
    charged = batch.charge(limits)
    assert _refused(charged) == ["P-3", "P-4", "Q-0", "Q-1", "Q-2", "Q-3"]
    ((record, reason),) = charged.dead
    assert record.offset == 1 and "all 4 instructions" in reason


def test_the_first_refusal_of_a_flood_is_audited_once() -> None:
    limits = RateLimits({ACLB: Rate(1, 1)})
    batch = Batch()
    for n in range(20):
        batch.add(ACLB, f"A{n}", at_ms=NOW_MS)
    (episode,) = batch.charge(limits).episodes
    assert (episode.action, episode.subject, episode.detail["first_refused"]) == (KAFKA_RATE_LIMITED, ACLB, f"{TOPIC}:0:1")
    again = Batch()
    again.add(ACLB, "Z", at_ms=NOW_MS)
    assert again.charge(limits, now=NOW + timedelta(seconds=1)).episodes == []  # the same flood


def test_participants_without_a_configured_rate_are_not_charged() -> None:
    batch = Batch()
    for n in range(10):
        batch.add("NOSUCHBKXXX", f"N{n}", at_ms=NOW_MS)
    assert _refused(batch.charge(RateLimits({ACLB: Rate(1, 1)}))) == []


# ------------------------------------------------------------------ through admission


async def test_an_instruction_over_the_rate_is_rejected_sl15_and_its_id_is_used_up(deps: Deps) -> None:
    batch = Batch()
    for n in range(2):
        batch.add(ACLB, f"A{n}", at_ms=NOW_MS)
    charged = batch.charge(RateLimits({ACLB: Rate(1, 1)}))
    uow = FakeUnitOfWork()
    out = await accept_instructions(AcceptInstructions(charged.parsed), uow, deps)
    assert out.counts == {"admitted": 1, "rejected": 1}
    assert out.admissions[(ACLB, "A1")][1] == "SL15"
    assert uow.instructions[(ACLB, "A1")].reject_reason_code == "SL15"  # the key is kept: the id is used up
    (event,) = [e for e in status_events(uow.state, deps) if e["instruction_id"] == "A1"]
    assert (event["state"], event["final"], event["reason_code"], event["uetr"]) == ("REJECTED", True, "SL15", None)
    assert len(uow.payments) == 1


async def test_a_resend_of_a_refused_id_replays_the_refusal_even_when_under_the_rate(deps: Deps) -> None:
    batch = Batch()
    for n in range(2):
        batch.add(ACLB, f"A{n}", at_ms=NOW_MS)
    uow = FakeUnitOfWork()
    await accept_instructions(AcceptInstructions(batch.charge(RateLimits({ACLB: Rate(1, 1)})).parsed), uow, deps)
    resend = parsed_instruction(_doc(ACLB, "A1"), source_ref=f"{TOPIC}:0:99")  # the same id, not limited this time
    out = await accept_instructions(AcceptInstructions([resend]), uow, deps)
    assert out.counts == {"replayed": 1} and out.admissions[(ACLB, "A1")][1] == "SL15"
    assert len(uow.payments) == 1


async def test_an_instruction_over_the_rate_asks_no_partner_to_resolve_its_proxy(deps: Deps) -> None:
    doc = _doc(ACLB, "X1")
    doc["corridor"] = "KH-TH"
    doc["creditor"] = {"name": "Somchai", "proxy": {"type": "MOBILE", "value": "0812345678"}}
    item = parsed_instruction(doc, source_ref=f"{TOPIC}:0:0")
    assert proxies_to_resolve([item], deps.config, deps.mappings)  # a proxy PromptPay would be asked about
    batch = Batch()
    batch.records = {TopicPartition(TOPIC, 0): [consumer_record(b"{}", topic=TOPIC, partition=0, offset=0, timestamp_ms=NOW_MS)]}
    batch.parsed = [item, item]
    charged = batch.charge(RateLimits({ACLB: Rate(1, 1)}))
    assert proxies_to_resolve(charged.parsed[1:], deps.config, deps.mappings) == set()
