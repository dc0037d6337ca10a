"""The crash test (issue 7, item 9): does every instruction reach exactly one final outcome, through
crashes, partner outages and several replicas, with nothing lost?

Real processes, started and stopped by switch/tools/stack.py: the Tansu broker, the four partner
simulators (`mekong sim`, each with a state file so that a killed one comes back remembering what it
received and answered) and the switch (`mekong run`). The load generator's instructions
(switch/tools/loadgen.py) go out over the four corridors at a fixed rate while one fault plays:

  switch-kill    kill -9 the switch several times during the run (each time, if it can be caught
                 within a moment, while its outbox has pending rows) and restart it; SQLite
  partner-kill   kill -9 one partner's simulator (connection refused) for --outage-s, then restart it
  partner-hang   freeze one partner's simulator (SIGSTOP: connections accepted, never answered) for
                 --outage-s, then SIGCONT
  replica-kill   two switch replicas on PostgreSQL sharing the consumer group; kill -9 each in turn
                 and restart it --replica-down-s later

Partner callbacks with two replicas go through a small balancer run here (tests/chaos/proxy.py)
rather than to one replica's URL: that is how a partner reaches a replicated switch in production
(one URL, a balancer in front), and calling one replica directly would make that replica a single
point of failure the design does not have, so its death would test the harness, not the switch.
Each replica is still killed while it holds callbacks.

After the last fault is repaired the run waits, with a bound (--settle-s-max), until every
instruction has a final outcome or no status event has arrived for --quiet-s. Then it counts, from
its own reading of the status and dead-letter topics from offset 0 and from each simulator's
GET /sim/received:

  lost              published instruction ids without a final outcome (final status event or DLQ)
  double-final      instruction ids with two different final outcomes (state, reason code)
  events without id status events lacking `event_id` (the field that makes a republished event
                    recognisable); events sharing an `event_id` must be identical
  partner conflicts UETRs for which a partner received two different messages (message ids or bytes)
  non-final         lost ids the switch still holds in an open state (SUBMITTED, TIMED_OUT ...), as
                    its own API tells (an outbound payment has no status event before its final one)

Exceptions (issue 9) play through every scenario: the simulators return a share of the payments
they completed (`--return-rate`, half of it for `--partial-return-rate`, `--return-delay-ms` after
the pacs.002), and the participants recall a share of their payments with signed RecallRequestV1
records on the requests topic, some right after publishing the instruction (in flight: cancelled
locally while QUOTED, or a camt.056 while SUBMITTED) and some once its COMPLETED event arrived;
the simulators accept `--recall-accept-rate` of the recalls (camt.029 CNCL, then their pacs.004)
and refuse the rest (RJCR CUST). The switch runs on a copy of config/ whose partner profiles chase
an unanswered recall after --recall-chase-after-s and give it up at --recall-sla-s, so that every
recall ends within the run. (No inbound payments are driven here, so no participant returns.)

A payment's *final outcome* is its FIRST final status event. Events after it are facts about the
same payment (RECALL_PENDING, PARTIALLY_RETURNED, RETURNED, COMPLETED again after a refused or
unanswered recall): allowed when each step between two consecutive states (events of one
instruction in topic order, one event id counted once) is a transition of the state table
(switch/domain/payment.py TRANSITIONS). So, counted per instruction:

  double-final      two different final outcomes before any post-completion state, or a step after
                    the first final outcome that the state table does not allow (CANCELLED then
                    COMPLETED, RETURNED then anything, ...)
  cancelled+completed  payments with both a CANCELLED and a COMPLETED event (any order)

and for the exceptions:

  returns over      UETRs whose returns booked by the switch (the return cases' `returned_amount`,
                    one per case id, from the status events) add up to more than the payment's
                    target amount
  returns mismatch  UETRs where that sum differs from what the partner's simulator says it returned
                    and the switch accepted (HTTP 200; GET /sim/returns, kept across a simulator kill
                    in its state file). UETRs with a return whose answer the partner never got (its
                    simulator killed in between, `in_flight_at_crash`, or the switch unreachable
                    through all its attempts) are left out and counted as `partner-unknown`: the
                    partner does not know whether it was booked; that is the partner's loss to
                    reconcile, not the switch's
  recalls unresolved  recall requests without a final case outcome (DONE, REFUSED, UNANSWERED,
                    REJECTED) on the status topic: a refusal before any case (instruction_id = the
                    request id) or an event carrying the request's case
  recall conflicts  requests with two different final case outcomes (except UNANSWERED followed by
                    the partner's late answer, which the recall flow documents as resolving it)

Pass: 0 lost, 0 double-final, every event carries an `event_id` and no two events with one id
differ, 0 partner conflicts, and each count above 0. The exit code is 1 when a criterion fails.
`sw!=partner` (a final outcome the partner's own answer contradicts) is reported but is not a
criterion of the issue; nor is a recall the partner accepted while the payment was still in flight
and whose pacs.002 ACSC it had already decided (the switch keeps CANCELLED, refuses the partner's
pacs.004 AG01: reported as `cancelled, partner ACSC`). Also reported, not criteria: payments whose
first final event is a post-completion state (RECALL_PENDING before COMPLETED: the relay published
a payment's events out of order, which it does when its Kafka lane's queue is full and the poller
picks the older row up later), and recall outcomes published before the event naming the request.

    .venv/bin/python tests/chaos/chaos.py --scenario all --count 5000   # table on stdout, JSON in bench-out/chaos/
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import ssl
import sys
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from tqdm import tqdm  # noqa: E402

from switch.broker import free_port  # noqa: E402
from switch.domain.payment import FINAL_STATES, TRANSITIONS, PaymentState  # noqa: E402
from switch.tools.loadgen import ALL_CORRIDORS, plan_instructions, publish  # noqa: E402
from switch.tools.stack import Stack  # noqa: E402
from tests.chaos.proxy import CallbackBalancer  # noqa: E402

SCENARIOS = ("switch-kill", "partner-kill", "partner-hang", "replica-kill")
PARTNERS = ("promptpay", "lapnet", "napas", "unionpay")
CRITERIA = (
    "lost", "double_final", "event_id_missing", "event_id_conflicts", "partner_conflicts",
    "cancelled_and_completed", "returns_over", "returns_mismatch", "recalls_unresolved", "recall_conflicts",
)
POST_COMPLETION = frozenset({"RECALL_PENDING", "PARTIALLY_RETURNED", "RETURNED"})  # facts after the outcome
CASE_FINAL = ("DONE", "REFUSED", "UNANSWERED", "REJECTED")
RECALL_REASONS = ("DUPL", "FRAD", "TECH", "CUST", "AM09")
requests_topic = "mekong.requests"
PG_URL = os.environ.get("MEKONG_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

OPEN_STATES = frozenset(s.value for s in PaymentState) - frozenset(s.value for s in FINAL_STATES)
status_topic = "mekong.status"
dlq_topic = "mekong.dlq"
sim_ready_s_max = 30.0  # a restarted simulator answers within this
pending_catch_s_max = 2.0  # how long to look for a moment with pending outbox rows before a kill
http_timeout_s = 5.0
pg_connect_timeout_s = 5.0
topic_read_s_max = 60.0  # the final read of the topics from offset 0
topic_idle_s = 3.0  # that read ends after this long without a record
examples_max = 10  # instruction ids or UETRs listed per failed criterion


@dataclass(frozen=True)
class ChaosOptions:
    count: int = 5000
    rate_per_s: float = 100.0
    partner: str = "promptpay"  # the partner stopped in partner-kill and partner-hang
    outage_s: float = 30.0
    kills: int = 3  # switch-kill: kills during the run; replica-kill: kills, alternating replicas
    down_s_min: float = 0.5  # switch-kill: how long the switch stays dead
    down_s_max: float = 3.0
    replica_down_s: float = 12.0  # replica-kill: how long a replica stays dead (past the group's session timeout)
    # quiesced: no new status event for this long; longer than a partner's resend_after_s (15 s in
    # the shipped profiles), so that a resend of an unanswered pacs.008 and its answer can land
    quiet_s: float = 30.0
    settle_s_max: float = 300.0  # bound on the wait for quiescence after the last repair
    sim_delay_ms: float = 50.0  # before each pacs.002: keeps payments in flight when a fault hits
    reject_rate: float = 0.05
    # exceptions (issue 9)
    return_rate: float = 0.02  # share of completed payments each simulator returns
    return_delay_ms: float = 1000.0
    partial_return_rate: float = 0.3
    recall_share: float = 0.04  # share of instructions the participants recall
    recall_in_flight_share: float = 0.5  # of those, recalled right after publishing (the rest once COMPLETED)
    recall_accept_rate: float = 0.7
    recall_chase_after_s: float = 10.0  # profile overrides in the run's config copy
    recall_sla_s: float = 60.0
    seed: int = 20261128
    pg_url: str = PG_URL

    def __post_init__(self) -> None:
        if self.count < 1 or self.rate_per_s <= 0 or self.kills < 0 or self.outage_s < 0:
            raise ValueError("count >= 1, rate_per_s > 0, kills >= 0 and outage_s >= 0 are required")
        if self.partner not in PARTNERS:
            raise ValueError(f"partner must be one of {', '.join(PARTNERS)}, not {self.partner!r}")
        if not 0 <= self.down_s_min <= self.down_s_max:
            raise ValueError("0 <= down_s_min <= down_s_max is required")


# ----------------------------------------------------------------------------- PostgreSQL


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A database of its own for one run (the switch takes a URL, not a schema), dropped after."""
    import asyncpg

    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"chaos_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(dsn, timeout=pg_connect_timeout_s)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def postgres_answers(admin_url: str) -> bool:
    import asyncpg

    async def ping() -> None:
        conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"), timeout=pg_connect_timeout_s)
        await conn.close()

    try:
        asyncio.run(ping())
        return True
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


# ----------------------------------------------------------------------------- following the status topic


class StatusFollower:
    """Reads the status and dead-letter topics while the run goes on: progress and quiescence only.
    The counting is done afterwards by `read_topics`, from offset 0 again."""

    def __init__(self, bootstrap: str, tracked: set[str]) -> None:
        self.bootstrap = bootstrap
        self.tracked = tracked
        self.finals: set[str] = set()
        self.first_final: dict[str, str] = {}  # instruction id -> the state of its first final event
        self.requests: set[str] = set()  # recall request ids sent (the Recaller adds them)
        self.request_of_case: dict[str, str] = {}  # recall case id -> request id
        self.requests_decided: set[str] = set()  # requests with a final case outcome seen
        self._final_cases: set[str] = set()
        self.events = 0
        self.redelivered = 0  # records the consumer handed over twice (same partition and offset)
        self._offsets: set[tuple[str, int, int]] = set()
        self.per_partition: dict[str, int] = {}
        self.last_event_at = time.monotonic()
        self._stop = asyncio.Event()

    def done(self) -> bool:
        return len(self.finals) >= len(self.tracked)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            await _assign_from_start(consumer, (status_topic, dlq_topic))
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=2000)
                for tp, records in batches.items():
                    for rec in records:
                        if (tp.topic, tp.partition, rec.offset) in self._offsets:
                            self.redelivered += 1
                            continue
                        self._offsets.add((tp.topic, tp.partition, rec.offset))
                        self.per_partition[f"{tp.topic}/{tp.partition}"] = self.per_partition.get(f"{tp.topic}/{tp.partition}", 0) + 1
                        key = _instruction_id(tp.topic, rec.key, rec.value)
                        if key is None or (key not in self.tracked and key not in self.requests):
                            continue
                        self.events += 1
                        self.last_event_at = time.monotonic()
                        ev = json.loads(rec.value) if tp.topic != dlq_topic else {}
                        self._note_case(ev)
                        if key not in self.tracked:
                            continue
                        if tp.topic == dlq_topic or ev.get("final"):
                            self.finals.add(key)
                            self.first_final.setdefault(key, ev.get("state", "DLQ"))
        finally:
            await consumer.stop()


    def _note_case(self, ev: dict[str, Any]) -> None:
        """Recall outcomes as they arrive, in any order (a case's final event may come before the
        one naming its request: status events of one payment are not all published in order)."""
        exc = ev.get("exception") or {}
        if exc.get("kind") != "recall" and not (exc.get("case_id") == "-" and exc.get("request_id") in self.requests):
            return
        case_id = exc.get("case_id", "-")
        if exc.get("request_id") and case_id != "-":
            self.request_of_case[case_id] = exc["request_id"]
        if exc.get("state") in CASE_FINAL:
            if case_id == "-":
                self.requests_decided.add(exc.get("request_id", ""))
            else:
                self._final_cases.add(case_id)
        for cid in self._final_cases & set(self.request_of_case):
            self.requests_decided.add(self.request_of_case[cid])

    def unresolved_requests(self) -> int:
        return len(self.requests - self.requests_decided)


def _instruction_id(topic: str, key: bytes | None, value: bytes | None) -> str | None:
    if topic == dlq_topic:
        return (key or b"").decode(errors="replace")
    if not value or value.startswith(b"<"):  # a pain.002 (none are planned here)
        return None
    return str(json.loads(value).get("instruction_id"))


async def _assign_from_start(consumer: AIOKafkaConsumer, topics: tuple[str, ...]) -> list[TopicPartition]:
    parts: list[TopicPartition] = []
    for topic in topics:
        for _ in range(100):
            found = consumer.partitions_for_topic(topic)
            if found:
                parts += [TopicPartition(topic, p) for p in sorted(found)]
                break
            await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"topic {topic} does not exist")
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    return parts


@dataclass
class TopicRead:
    events: dict[str, list[tuple[bytes, dict[str, Any]]]] = field(default_factory=lambda: defaultdict(list))  # id -> in order
    dead_letters: dict[str, str] = field(default_factory=dict)  # id -> reason
    request_events: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))  # refusals keyed by request id
    other_records: int = 0  # records for instructions this run did not publish
    partitions: dict[str, int] = field(default_factory=dict)  # records read per topic/partition


async def read_topics(bootstrap: str, tracked: set[str], requests: frozenset[str] = frozenset()) -> TopicRead:
    """Every record of the status and dead-letter topics from offset 0, until a fetch has returned
    nothing for `topic_idle_s` (the run has quiesced). Not up to the end offsets: after a producer
    was killed, the embedded broker's ListOffsets answers an end below records it serves. Per
    instruction id, events keep their order (one key, one partition)."""
    out = TopicRead()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await _assign_from_start(consumer, (status_topic, dlq_topic))
        idle_since = time.monotonic()
        async with asyncio.timeout(topic_read_s_max):
            while time.monotonic() - idle_since < topic_idle_s:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for tp, records in batches.items():
                    out.partitions[f"{tp.topic}/{tp.partition}"] = out.partitions.get(f"{tp.topic}/{tp.partition}", 0) + len(records)
                    for rec in records:
                        idle_since = time.monotonic()
                        key = _instruction_id(tp.topic, rec.key, rec.value)
                        if key is not None and key in requests and tp.topic == status_topic:
                            out.request_events[key].append(json.loads(rec.value))
                        elif key is None or key not in tracked:
                            out.other_records += 1
                        elif tp.topic == dlq_topic:
                            out.dead_letters.setdefault(key, dict(rec.headers).get("mekong.reason", b"").decode(errors="replace"))
                        else:
                            out.events[key].append((rec.value, json.loads(rec.value)))
    finally:
        await consumer.stop()
    return out


# ----------------------------------------------------------------------------- recalls


@dataclass
class RecallSent:
    request_id: str
    instruction_id: str
    participant: str
    when: str  # "in_flight" (right after the instruction) or "completed" (after its COMPLETED event)
    at_s: float


class Recaller:
    """The participants' recalls: signed RecallRequestV1 records (by instruction id) on the requests
    topic, for a seeded share of the instructions; half right after the instruction is published,
    half once its first final event says COMPLETED (those that end otherwise are not recalled)."""

    def __init__(self, producer: AIOKafkaProducer, planned: list[Any], opts: ChaosOptions, follower: StatusFollower,
                 signers: Any, started: float) -> None:
        self.producer = producer
        self.opts = opts
        self.follower = follower
        self.signers = signers
        self.started = started
        self.rng = random.Random(opts.seed + 9)
        self.participant_of = {p.key: json.loads(p.value)["participant"] for p in planned if p.value is not None}
        chosen = [k for k in self.participant_of if self.rng.random() < opts.recall_share]
        self.in_flight = {k for k in chosen if self.rng.random() < opts.recall_in_flight_share}
        self.after_completion = set(chosen) - self.in_flight
        self.sent: dict[str, RecallSent] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    def on_published(self, iid: str) -> None:
        if iid in self.in_flight:
            task = asyncio.create_task(self._send_later(iid, self.rng.uniform(0.0, 0.3), "in_flight"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send_later(self, iid: str, delay_s: float, when: str) -> None:
        await asyncio.sleep(delay_s)
        await self.send(iid, when)

    async def send(self, iid: str, when: str) -> None:
        participant = self.participant_of[iid]
        request_id = f"RC-{iid}"[:35]
        value = json.dumps({
            "version": 1, "type": "recall", "request_id": request_id, "participant": participant, "instruction_id": iid,
            "reason_code": self.rng.choice(RECALL_REASONS), "reason": "chaos run recall",
        }).encode()
        self.follower.requests.add(request_id)
        self.sent[request_id] = RecallSent(request_id, iid, participant, when, round(time.monotonic() - self.started, 2))
        headers = self.signers.headers(participant, value) if self.signers is not None else None
        await self.producer.send_and_wait(requests_topic, value=value, key=iid.encode(), headers=headers)

    def pending_after_completion(self) -> set[str]:
        """Chosen for a recall after completion, not final yet (or COMPLETED and not recalled yet)."""
        sent = {r.instruction_id for r in self.sent.values()}
        return {i for i in self.after_completion - sent if self.follower.first_final.get(i, "COMPLETED") == "COMPLETED"}

    async def run(self) -> None:
        """Recall the chosen payments as their COMPLETED events arrive, until stopped."""
        while not self._stop.is_set():
            sent = {r.instruction_id for r in self.sent.values()}
            for iid in sorted(self.after_completion - sent):
                if self.follower.first_final.get(iid) == "COMPLETED":
                    await self.send(iid, "completed")
            await asyncio.sleep(0.3)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def exceptions_env(opts: argparse.Namespace) -> dict[str, str]:
    """The switch's environment that makes every partner chase an unanswered recall after
    `recall_chase_after_s` and give it up at `recall_sla_s` (the shipped 120 s / 600 s are longer
    than a run), so every recall ends while the run waits (MEKONG_PARTNER_* timings, switch/config.py)."""
    return {
        f"MEKONG_PARTNER_{name}_{partner.upper()}": f"{value:g}"
        for partner in PARTNERS
        for name, value in (("RECALL_CHASE_AFTER_S", opts.recall_chase_after_s), ("RECALL_SLA_S", opts.recall_sla_s))
    }


# ----------------------------------------------------------------------------- the verdict


def count(
    tracked: list[str], read: TopicRead, received: dict[str, dict[str, Any]], switch_states: dict[str, str] | None = None,
    recalls: dict[str, RecallSent] | None = None, sim_returns: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The pass criteria and what they rest on. `received`: partner -> its GET /sim/received;
    `switch_states`: for the lost instructions, the state the switch holds them in (its own API:
    an outbound payment emits no status event before its final one, so the topic cannot tell)."""
    switch_states = switch_states or {}
    outcomes: Counter[str] = Counter()
    non_final_states: Counter[str] = Counter()
    lost: list[str] = []
    silent: list[str] = []
    double_final: dict[str, list[str]] = {}
    final_repeated = 0
    by_event_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    events = without_id = byte_repeats = 0
    seen_bytes: set[bytes] = set()
    final_of: dict[str, tuple[str, str | None]] = {}
    uetr_of: dict[str, str] = {}
    cancelled_and_completed: list[str] = []
    reordered = 0
    for iid in tracked:
        # a payment's events in the order of its versions (the contract: a participant keeps the
        # highest payment_version; after a crash an older event may reach the topic after a newer)
        in_topic_order = read.events.get(iid, [])
        evs = sorted(in_topic_order, key=lambda e: e[1].get("payment_version") or 0)
        if evs != in_topic_order:
            reordered += 1
        finals = []
        for raw, ev in evs:
            events += 1
            if raw in seen_bytes:
                byte_repeats += 1
            seen_bytes.add(raw)
            if "event_id" in ev:
                by_event_id[str(ev["event_id"])].append(ev)
            else:
                without_id += 1
            if ev.get("uetr"):
                uetr_of[iid] = ev["uetr"]
            if ev.get("final"):
                finals.append((ev["state"], ev.get("reason_code")))
        # the outcome: the final events before any post-completion state (RECALL_PENDING, ...)
        outcome_finals = finals[:next((n for n, (st, _r) in enumerate(finals) if st in POST_COMPLETION), len(finals))]
        distinct = sorted(set(outcome_finals), key=str)
        if len(outcome_finals) > 1:
            final_repeated += 1
        if len(distinct) > 1:
            double_final[iid] = [f"{s} {r or ''}".strip() for s, r in distinct]
        else:
            bad_step = _bad_step_after_outcome(evs)
            if bad_step is not None:
                double_final[iid] = [f"{bad_step[0]} -> {bad_step[1]} (not in TRANSITIONS)"]
        states_seen = {ev.get("state") for _raw, ev in evs}
        if {"CANCELLED", "COMPLETED"} <= states_seen:
            cancelled_and_completed.append(iid)
        if finals:
            final_of[iid] = finals[0]
            outcomes[f"{finals[0][0]} {finals[0][1] or ''}".strip()] += 1
        elif iid in read.dead_letters:
            outcomes["DLQ"] += 1
        else:
            lost.append(iid)
            if not evs:
                silent.append(iid)
            non_final_states[switch_states.get(iid) or (evs[-1][1]["state"] if evs else "unknown")] += 1
    conflicts_by_id = {k: v for k, v in by_event_id.items() if any(e != v[0] for e in v[1:])}
    republished_identical = sum(1 for k, v in by_event_id.items() if len(v) > 1 and k not in conflicts_by_id)

    partner_conflicts: dict[str, dict[str, Any]] = {}
    partner_status: dict[str, str | None] = {}
    for partner, log in received.items():
        for uetr, entry in log.get("uetrs", {}).items():
            if len(entry["message_ids"]) > 1 or len(entry["body_sha256"]) > 1:
                partner_conflicts[uetr] = {"partner": partner, **entry}
            partner_status[uetr] = entry.get("status")
    disagree: list[str] = []
    for iid, (state, _reason) in final_of.items():
        answered = partner_status.get(uetr_of.get(iid, ""))
        if (state == "COMPLETED" and answered == "RJCT") or (state == "REJECTED" and answered == "ACSC"):
            disagree.append(iid)

    result: dict[str, Any] = {
        "instructions": len(tracked),
        "final": len(final_of),
        "dead_lettered": outcomes.get("DLQ", 0),
        "lost": len(lost),
        # lost, and the switch holds them in an open state (SUBMITTED, TIMED_OUT ...)
        "non_final": sum(n for state, n in non_final_states.items() if state in OPEN_STATES),
        # lost although the switch holds a final state: its status event never reached the topic
        "final_unpublished": sum(n for state, n in non_final_states.items() if state in FINAL_STATES),
        "non_final_states": dict(non_final_states.most_common()),  # the lost ones, as the switch holds them
        "silent": len(silent),  # lost without a single status event
        "double_final": len(double_final),
        "cancelled_and_completed": len(cancelled_and_completed),
        "final_repeated": final_repeated,  # ids with more than one final event (same outcome)
        "events": events,
        "event_id_missing": without_id,
        "event_ids_republished_identical": republished_identical,
        "event_id_conflicts": len(conflicts_by_id),
        "byte_identical_repeats": byte_repeats,  # events whose exact bytes appeared before
        "partner_conflicts": len(partner_conflicts),
        "switch_partner_disagree": len(disagree),
        "outcomes": dict(outcomes.most_common()),
        "partners_received_uetrs": {p: len(log.get("uetrs", {})) for p, log in received.items()},
        "partners_dropped": {p: log.get("dropped", {}) for p, log in received.items()},
        "other_records": read.other_records,
        "examples": {
            "lost": {iid: switch_states.get(iid) for iid in lost[:examples_max]},
            "double_final": dict(list(double_final.items())[:examples_max]),
            "cancelled_and_completed": cancelled_and_completed[:examples_max],
            "event_id_conflicts": dict(list(conflicts_by_id.items())[:examples_max]),
            "partner_conflicts": dict(list(partner_conflicts.items())[:examples_max]),
            "switch_partner_disagree": {iid: {"switch": final_of[iid], "uetr": uetr_of.get(iid)} for iid in disagree[:examples_max]},
        },
    }
    # reported, not a criterion: a payment whose first final event is a post-completion state (its
    # COMPLETED event was published after a later one: the relay does not keep one payment's events
    # in order when its queue overflows and the poller picks older rows up later)
    post_first = [iid for iid, (state, _r) in final_of.items() if state in POST_COMPLETION]
    result["events_reordered_by_version"] = reordered  # payments whose events reached the topic out of version order
    result["first_final_post_completion"] = len(post_first)
    result["examples"]["first_final_post_completion"] = post_first[:examples_max]
    result.update(count_exceptions(tracked, read, recalls or {}, sim_returns or {}, cancelled_acsc=[
        iid for iid, (state, _r) in final_of.items() if state == "CANCELLED" and partner_status.get(uetr_of.get(iid, "")) == "ACSC"
    ]))
    result["failed"] = [c for c in CRITERIA if result.get(c, 0) != 0]
    return result


def _bad_step_after_outcome(evs: list[tuple[bytes, dict[str, Any]]]) -> tuple[str, str] | None:
    """The first step between consecutive states, from the first final event on, that the state
    table does not allow (events of one instruction in topic order; a republished event id once)."""
    seen: set[str] = set()
    states: list[str] = []
    started = False
    for _raw, ev in evs:
        if ev.get("event_id") in seen:
            continue
        seen.add(str(ev.get("event_id")))
        started = started or bool(ev.get("final"))
        if started and (not states or states[-1] != ev["state"]):
            states.append(ev["state"])
    for a, b in zip(states, states[1:]):
        try:
            allowed = PaymentState(b) in TRANSITIONS[PaymentState(a)]
        except ValueError:  # not a payment state (CONFLICT, ...)
            allowed = False
        if not allowed:
            return a, b
    return None


def _minor(amount: dict[str, Any] | None) -> Decimal:
    return Decimal(str(amount["value"])) if amount else Decimal(0)


def count_exceptions(
    tracked: list[str], read: TopicRead, recalls: dict[str, RecallSent], sim_returns: dict[str, dict[str, Any]], *,
    cancelled_acsc: list[str],
) -> dict[str, Any]:
    """The returns and recalls criteria (see the module's docstring), from the status events and
    the simulators' GET /sim/returns."""
    # --- returns: one amount per return case id, from the status events
    booked: dict[str, dict[str, Decimal]] = defaultdict(dict)  # uetr -> case id -> returned amount
    target: dict[str, Decimal] = {}
    partial_cases = 0
    request_of_case: dict[str, str] = {}
    case_finals: dict[str, list[str]] = defaultdict(list)  # request id -> final case states, in order
    done_kind: dict[str, str] = {}  # request id -> what the DONE case did to the payment (CANCELLED, RETURNED)
    case_out_of_order = 0  # recall cases whose final event came before the event naming their request
    for iid in tracked:  # first pass: which request opened which case (its first event names the request)
        for _raw, ev in read.events.get(iid, []):
            exc = ev.get("exception") or {}
            if exc.get("kind") == "recall" and exc.get("request_id"):
                request_of_case[exc["case_id"]] = exc["request_id"]
    for iid in tracked:
        named: set[str] = set()
        for _raw, ev in read.events.get(iid, []):
            exc = ev.get("exception") or {}
            if exc.get("kind") == "recall" and exc.get("request_id"):
                named.add(exc["case_id"])
            elif exc.get("kind") == "recall" and exc.get("state") in CASE_FINAL and exc["case_id"] not in named:
                case_out_of_order += 1
            if ev.get("uetr") and ev.get("target_amount"):
                target[ev["uetr"]] = _minor(ev["target_amount"])
            exc = ev.get("exception") or {}
            if exc.get("kind") == "return" and exc.get("state") == "DONE" and exc.get("initiator") == "partner":
                if exc["case_id"] not in booked[ev["uetr"]] and ev.get("state") == "PARTIALLY_RETURNED":
                    partial_cases += 1
                booked[ev["uetr"]][exc["case_id"]] = _minor(exc.get("returned_amount"))
            if exc.get("kind") == "recall":
                rid = request_of_case.get(exc["case_id"])
                if rid is not None and exc.get("state") in CASE_FINAL and (not case_finals[rid] or case_finals[rid][-1] != exc["state"]):
                    case_finals[rid].append(exc["state"])
                    if exc["state"] == "DONE":
                        done_kind[rid] = ev.get("state", "?")
    for rid, evs in read.request_events.items():  # refused before any case
        for ev in evs:
            exc = ev.get("exception") or {}
            if exc.get("state") in CASE_FINAL and (not case_finals[rid] or case_finals[rid][-1] != exc["state"]):
                case_finals[rid].append(exc["state"])
    switch_sum = {u: sum(c.values(), Decimal(0)) for u, c in booked.items()}
    over = sorted(u for u, v in switch_sum.items() if u in target and v > target[u])
    # --- what the partners say they returned
    partner_sum: dict[str, Decimal] = defaultdict(Decimal)
    unknown: set[str] = set()
    sent_n = Counter()
    for partner, log in sim_returns.items():
        seen: set[tuple[str, str]] = set()
        for r in log.get("sent", []):
            if (r["message_id"], r["return_id"]) in seen:
                continue
            seen.add((r["message_id"], r["return_id"]))
            via = r.get("via", "return")
            if r.get("in_flight_at_crash"):
                unknown.add(r["uetr"])
                sent_n[f"{via} in flight at crash"] += 1
            elif r.get("http_status") is None:
                unknown.add(r["uetr"])
                sent_n[f"{via} no answer"] += 1
            elif r["http_status"] == 200:
                partner_sum[r["uetr"]] += Decimal(str(r["amount"]))
                sent_n[f"{via} accepted"] += 1
            else:
                code = r["answer"].get("reason_code") if isinstance(r.get("answer"), dict) else None
                sent_n[f"{via} refused {r['http_status']} {code or ''}".strip()] += 1
    uetrs = (set(switch_sum) | set(partner_sum)) - unknown
    mismatch = {u: {"switch": str(switch_sum.get(u, 0)), "partner": str(partner_sum.get(u, 0))}
                for u in sorted(uetrs) if switch_sum.get(u, Decimal(0)) != partner_sum.get(u, Decimal(0))}
    # --- recalls
    unresolved = sorted(rid for rid in recalls if not case_finals.get(rid))
    conflicts = {rid: f for rid, f in case_finals.items() if rid in recalls and len(f) > 1 and not (len(f) == 2 and f[0] == "UNANSWERED")}
    outcome = Counter()
    for rid in recalls:
        f = case_finals.get(rid)
        if not f:
            continue
        last = f[-1]
        if last == "DONE":
            outcome["cancelled" if done_kind.get(rid) == "CANCELLED" else "returned"] += 1
        else:
            outcome[last.lower()] += 1
    return {
        "recalls_sent": len(recalls),
        "recalls_in_flight": sum(1 for r in recalls.values() if r.when == "in_flight"),
        "recall_outcomes": dict(outcome.most_common()),  # cancelled (locally or accepted before completion), returned, refused, unanswered, rejected
        "recalls_unresolved": len(unresolved),
        "recall_conflicts": len(conflicts),
        "recall_events_out_of_order": case_out_of_order,  # reported, not a criterion
        "returns_booked_cases": sum(len(c) for c in booked.values()),
        "returns_partial_cases": partial_cases,
        "returns_uetrs": len(booked),
        "returns_partner": dict(sent_n.most_common()),
        "returns_over": len(over),
        "returns_mismatch": len(mismatch),
        "returns_partner_unknown": len(unknown),
        "cancelled_partner_acsc": len(cancelled_acsc),
        "exception_examples": {
            "returns_over": {u: {"switch": str(switch_sum[u]), "target": str(target.get(u))} for u in over[:examples_max]},
            "returns_mismatch": dict(list(mismatch.items())[:examples_max]),
            "recalls_unresolved": {rid: asdict(recalls[rid]) for rid in unresolved[:examples_max]},
            "recall_conflicts": dict(list(conflicts.items())[:examples_max]),
            "cancelled_partner_acsc": cancelled_acsc[:examples_max],
        },
    }


# ----------------------------------------------------------------------------- faults


class Faults:
    """The fault a scenario plays, against a running stack; blocking stack calls run in a thread."""

    def __init__(self, stack: Stack, opts: ChaosOptions, started: float, say: Callable[[str], None]) -> None:
        self.stack = stack
        self.opts = opts
        self.started = started
        self.say = say
        self.rng = random.Random(opts.seed)
        self.log: list[dict[str, Any]] = []
        self.load_s = opts.count / opts.rate_per_s

    def _note(self, what: str, **details: Any) -> None:
        at = round(time.monotonic() - self.started, 2)
        self.log.append({"at_s": at, "what": what, **details})
        self.say(f"[{at:7.2f} s] {what} {' '.join(f'{k}={v}' for k, v in details.items())}".rstrip())

    async def _at(self, share_of_load: float) -> None:
        await asyncio.sleep(max(0.0, self.started + share_of_load * self.load_s - time.monotonic()))

    async def _outbox_pending(self, url: str) -> dict[str, float]:
        """The replica's switch_outbox_pending gauge (partner, status), polled briefly for a moment
        with rows pending."""
        deadline = time.monotonic() + pending_catch_s_max
        pending: dict[str, float] = {}
        while True:
            try:
                text = (await asyncio.to_thread(self.stack.ops_get, f"{url}/metrics")).decode()
            except OSError:
                return {}
            pending = {
                line.split('kind="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line.startswith("switch_outbox_pending{")
            }
            if sum(pending.values()) > 0 or time.monotonic() > deadline:
                return pending
            await asyncio.sleep(0.02)

    async def _kill_switch(self, name: str) -> None:
        pending = await self._outbox_pending(self.stack.replica_url(name))
        await asyncio.to_thread(self.stack.kill, name)
        self._note("kill -9", process=name, outbox_pending=pending)

    async def _restart(self, name: str) -> None:
        started = time.monotonic()
        await asyncio.to_thread(self.stack.restart, name)
        if name.startswith("sim-"):
            await asyncio.to_thread(_wait_http, f"{self.stack.sim_url(name.removeprefix('sim-'))}/sim/stats", sim_ready_s_max)
        self._note("restarted", process=name, ready_after_s=round(time.monotonic() - started, 2))

    async def _after_work(self) -> None:
        """A restarted switch gets a moment of work before it is killed again."""
        await asyncio.sleep(self.rng.uniform(0.2, 2.0))

    async def switch_kill(self) -> None:
        for n, share in enumerate(sorted(self.rng.uniform(0.1, 0.9) for _ in range(self.opts.kills))):
            await self._at(share)
            if n:
                await self._after_work()
            await self._kill_switch("switch")
            await asyncio.sleep(self.rng.uniform(self.opts.down_s_min, self.opts.down_s_max))
            await self._restart("switch")

    async def partner_kill(self) -> None:
        name = f"sim-{self.opts.partner}"
        await self._at(0.2)
        await asyncio.to_thread(self.stack.kill, name)
        self._note("kill -9", process=name)
        await asyncio.sleep(self.opts.outage_s)
        await self._restart(name)

    async def partner_hang(self) -> None:
        name = f"sim-{self.opts.partner}"
        await self._at(0.2)
        self.stack.pause(name)
        self._note("SIGSTOP", process=name)
        await asyncio.sleep(self.opts.outage_s)
        self.stack.resume(name)
        self._note("SIGCONT", process=name)

    async def replica_kill(self) -> None:
        names = self.stack.switch_names
        for n in range(self.opts.kills):
            await self._at(0.15 + 0.7 * n / max(1, self.opts.kills))
            name = names[n % len(names)]
            if n:
                await self._after_work()
            await self._kill_switch(name)
            await asyncio.sleep(self.opts.replica_down_s)
            await self._restart(name)


def _get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=http_timeout_s) as resp:
        return resp.read().decode()


def _wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _get_text(url)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout_s:g} s") from None
            time.sleep(0.1)


# ----------------------------------------------------------------------------- one scenario


def run_scenario(scenario: str, opts: ChaosOptions, workdir: Path, *, progress: bool = True) -> dict[str, Any]:
    """Start the stack, publish, play the fault, wait for quiescence, count; returns the counts
    (see `count`) with the faults played and the run's timings."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}, not {scenario!r}")
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in (*workdir.glob("sim-*.state"), *workdir.glob("logs/*.log")):
        stale.unlink()
    replicas = 2 if scenario == "replica-kill" else 1
    balancer_port = free_port() if replicas > 1 else None
    with (postgres_database(opts.pg_url) if replicas > 1 else _no_database()) as pg_url:
        stack = Stack(
            workdir,
            sim_args=[
                "--delay-ms", str(opts.sim_delay_ms), "--reject-rate", str(opts.reject_rate),
                "--return-rate", str(opts.return_rate), "--return-delay-ms", str(opts.return_delay_ms),
                "--partial-return-rate", str(opts.partial_return_rate), "--recall-accept-rate", str(opts.recall_accept_rate),
            ],
            partner_sim_args={p: ["--state", str(workdir / f"sim-{p}.state")] for p in PARTNERS},
            switch_env={**exceptions_env(opts), **({"MEKONG_DATABASE_URL": pg_url} if pg_url else {})},
            replicas=replicas,
            callback_base_url=f"https://127.0.0.1:{balancer_port}" if balancer_port else None,
        )
        t0 = time.monotonic()
        with stack:
            up_s = time.monotonic() - t0
            result = asyncio.run(_play(scenario, opts, stack, balancer_port, progress=progress))
            stopped = stack.stop()
        result["stack_up_s"] = round(up_s, 2)
        result["exit_codes"] = stopped
    result["scenario"] = scenario
    result["database"] = "postgresql" if replicas > 1 else "sqlite"
    result["workdir"] = str(workdir)
    return result


@contextmanager
def _no_database() -> Iterator[None]:
    yield None


async def _play(scenario: str, opts: ChaosOptions, stack: Stack, balancer_port: int | None, *, progress: bool) -> dict[str, Any]:
    planned, _ = plan_instructions(opts.count, bad_share=0.0, run_id="C", corridors=ALL_CORRIDORS, seed=opts.seed)
    tracked = [p.key for p in planned]
    balancer = None
    if balancer_port is not None:
        balancer = CallbackBalancer([("127.0.0.1", stack.replica_ports[n]) for n in stack.switch_names])
        await balancer.start(balancer_port)
    bar = tqdm(total=len(tracked), unit="final", desc=scenario, file=sys.stderr, mininterval=0.5, disable=not progress)
    say: Callable[[str], None] = (lambda line: tqdm.write(line, file=sys.stderr)) if progress else (lambda _line: None)
    follower = StatusFollower(stack.bootstrap_servers, set(tracked))
    following = asyncio.create_task(follower.run())
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all", enable_idempotence=False, linger_ms=5)
    await producer.start()
    published = 0
    recaller = Recaller(producer, planned, opts, follower, stack.signers, time.monotonic())

    def sent(key: str) -> None:
        nonlocal published
        published += 1
        recaller.on_published(key)

    async def ticker() -> None:
        while True:
            bar.set_postfix(published=published, events=follower.events, recalls=len(recaller.sent),
                            open_recalls=follower.unresolved_requests(), refresh=False)
            bar.update(len(follower.finals) - bar.n)
            await asyncio.sleep(0.5)

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    faults = Faults(stack, opts, started, say)
    play: Callable[[], Awaitable[None]] = getattr(faults, scenario.replace("-", "_"))
    recalling = asyncio.create_task(recaller.run())
    try:
        await asyncio.gather(publish(producer, planned, rate_per_s=opts.rate_per_s, on_sent=sent, signers=stack.signers), play())
        load_s = time.monotonic() - started
        say(f"[{load_s:7.2f} s] published {published}; faults over; waiting for quiescence "
            f"(all final and every recall decided, or no event for {opts.quiet_s:g} s -- {opts.recall_sla_s + opts.quiet_s:g} s "
            f"while a recall is open; at most {opts.settle_s_max:g} s)")
        repaired = time.monotonic()

        def settled() -> bool:
            return follower.done() and not recaller.pending_after_completion() and follower.unresolved_requests() == 0

        while not settled() and time.monotonic() - repaired < opts.settle_s_max:
            # an open recall ends by the recall SLA at the latest (chased meanwhile, without events)
            quiet = opts.quiet_s + (opts.recall_sla_s if follower.unresolved_requests() else 0)
            if time.monotonic() - max(follower.last_event_at, repaired) >= quiet:
                break
            await asyncio.sleep(0.2)
        # the partners' returns come return_delay_ms after a completion: let the last ones land
        await asyncio.sleep(max(0.0, opts.return_delay_ms / 1000 + 2.0 - (time.monotonic() - follower.last_event_at)))
        settle_s = time.monotonic() - repaired
        say(f"[{time.monotonic() - started:7.2f} s] quiesced: {len(follower.finals)} of {len(tracked)} final; "
            f"{len(recaller.sent)} recalls, {follower.unresolved_requests()} without an outcome")
    finally:
        recalling.cancel()
        await asyncio.gather(recalling, return_exceptions=True)
        await recaller.stop()
        ticking.cancel()
        follower.stop()
        await asyncio.gather(following, ticking, return_exceptions=True)
        bar.update(len(follower.finals) - bar.n)
        bar.close()
        await producer.stop()
        if balancer is not None:
            await balancer.stop()
    received = await _received(stack)
    sim_returns = {p: await _get_json(f"{stack.sim_url(p)}/sim/returns") for p in stack.partners}
    read = await read_topics(stack.bootstrap_servers, set(tracked), frozenset(recaller.sent))
    participant_of = {p.key: json.loads(p.value)["participant"] for p in planned if p.value is not None}
    unresolved = [iid for iid in tracked if iid not in read.dead_letters and not any(e.get("final") for _, e in read.events.get(iid, []))]
    states = await _switch_states(
        stack.replica_url(stack.switch_names[0]), [(participant_of[i], i) for i in unresolved], stack.api_headers,
        stack.ops_context,
    )
    result = count(tracked, read, received, states, recaller.sent, sim_returns)
    result["follower_redelivered"] = follower.redelivered
    # the counting read must have seen at least what the follower saw while the run went on
    result["records_per_partition"] = {"during_run": follower.per_partition, "counted": read.partitions}
    short = {tp: n for tp, n in follower.per_partition.items() if read.partitions.get(tp, 0) < n}
    if short:  # not a verdict on the switch: the count would rest on an incomplete read
        result["failed"].append(f"topic read incomplete {short}")
    result["faults"] = faults.log
    result["load_s"] = round(load_s, 2)
    result["settle_s"] = round(settle_s, 2)
    if balancer is not None:
        result["balancer"] = dict(balancer.stats)
    result["sim_stats"] = {p: await _get_json(f"{stack.sim_url(p)}/sim/stats") for p in stack.partners}
    return result


async def _get_json(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=http_timeout_s * 6)) as resp:
            resp.raise_for_status()
            return await resp.json()  # type: ignore[no-any-return]


async def _switch_states(
    url: str, keys: list[tuple[str, str]], headers: dict[str, str], ops_context: ssl.SSLContext | None
) -> dict[str, str]:
    """instruction id -> the payment's state in the switch ("NOT ADMITTED" when it has none)."""
    slots = asyncio.Semaphore(16)
    out: dict[str, str] = {}

    async def one(session: aiohttp.ClientSession, participant: str, iid: str) -> None:
        async with slots:
            async with session.get(f"{url}/v1/instructions/{participant}/{iid}", headers=headers,
                                   timeout=aiohttp.ClientTimeout(total=http_timeout_s)) as resp:
                out[iid] = (await resp.json())["state"] if resp.status == 200 else "NOT ADMITTED" if resp.status == 404 else f"HTTP {resp.status}"

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ops_context or True)) as session:
        await asyncio.gather(*(one(session, participant, iid) for participant, iid in keys))
    return out


async def _received(stack: Stack) -> dict[str, dict[str, Any]]:
    return {p: await _get_json(f"{stack.sim_url(p)}/sim/received") for p in stack.partners}


# ----------------------------------------------------------------------------- report

COLUMNS = (
    ("scenario", "scenario"),
    ("instructions", "instructions"),
    ("final", "final outcomes"),
    ("lost", "lost"),
    ("double_final", "double-final"),
    ("event_id_missing", "events without id"),
    ("event_ids_republished_identical", "republished-and-identical"),
    ("partner_conflicts", "partner conflicts"),
    ("non_final", "non-final"),
    ("switch_partner_disagree", "sw!=partner"),
    ("cancelled_and_completed", "cancelled+completed"),
    ("recalls_sent", "recalls"),
    ("recalls_unresolved", "recalls unresolved"),
    ("recall_conflicts", "recall conflicts"),
    ("returns_booked_cases", "returns booked"),
    ("returns_over", "returns over"),
    ("returns_mismatch", "returns mismatch"),
    ("verdict", "verdict"),
)


def table(results: list[dict[str, Any]]) -> str:
    rows = [[title for _, title in COLUMNS]]
    for r in results:
        verdict = "PASS" if not r["failed"] else "FAIL: " + ", ".join(r["failed"])
        rows.append([str(verdict if key == "verdict" else r[key]) for key, _ in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i in (0, len(COLUMNS) - 1) else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        details = [f"outcomes {r['outcomes']}"]
        if r["non_final_states"]:
            details.append(f"lost ones as the switch holds them {r['non_final_states']}")
        if r["silent"]:
            details.append(f"{r['silent']} without any status event")
        if r.get("events_reordered_by_version"):
            details.append(f"{r['events_reordered_by_version']} payments whose events reached the topic out of version order (read by payment_version)")
        if r.get("first_final_post_completion"):
            details.append(f"{r['first_final_post_completion']} whose first final event is a post-completion state (events out of order)")
        if r.get("recall_events_out_of_order"):
            details.append(f"{r['recall_events_out_of_order']} recall outcomes published before the event naming the request")
        if r["byte_identical_repeats"]:
            details.append(f"{r['byte_identical_repeats']} events repeated byte for byte")
        details.append(f"recalls {r['recalls_sent']} ({r['recalls_in_flight']} right after the instruction): "
                       f"outcomes {r['recall_outcomes']}")
        details.append(f"returns booked by the switch {r['returns_booked_cases']} (partial {r['returns_partial_cases']}) "
                       f"on {r['returns_uetrs']} payments; partners' pacs.004 {r['returns_partner']}; "
                       f"partner-unknown {r['returns_partner_unknown']}; cancelled, partner ACSC {r['cancelled_partner_acsc']}")
        details.append("faults: " + "; ".join(_fault_text(f) for f in r["faults"]))
        lines.append(f"{r['scenario']}: " + " | ".join(details))
    return "\n".join(lines)


def _fault_text(fault: dict[str, Any]) -> str:
    text = f"{fault['at_s']} s {fault['what']} {fault.get('process', '')}".strip()
    pending = fault.get("outbox_pending")
    if pending is not None:
        text += " (outbox pending: " + ", ".join(f"{kind} {n:g}" for kind, n in pending.items()) + ")" if pending else " (outbox unknown)"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    d = ChaosOptions()
    parser.add_argument("--scenario", default="all", help=f"one of {', '.join(SCENARIOS)}, a comma-separated list, or all")
    parser.add_argument("--count", type=int, default=d.count, help="instructions to publish per scenario")
    parser.add_argument("--rate", type=float, default=d.rate_per_s, help="instructions per second")
    parser.add_argument("--partner", default=d.partner, choices=PARTNERS, help="the partner stopped in partner-kill and partner-hang")
    parser.add_argument("--outage-s", type=float, default=d.outage_s, help="how long the partner stays down")
    parser.add_argument("--kills", type=int, default=d.kills, help="kills of the switch (switch-kill) or of a replica (replica-kill)")
    parser.add_argument("--down-s-min", type=float, default=d.down_s_min)
    parser.add_argument("--down-s-max", type=float, default=d.down_s_max)
    parser.add_argument("--replica-down-s", type=float, default=d.replica_down_s)
    parser.add_argument("--quiet-s", type=float, default=d.quiet_s, help="quiesced after this long without a status event")
    parser.add_argument("--settle-s-max", type=float, default=d.settle_s_max, help="bound on the wait for quiescence")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--return-rate", type=float, default=d.return_rate, help="share of completed payments a partner returns")
    parser.add_argument("--return-delay-ms", type=float, default=d.return_delay_ms)
    parser.add_argument("--partial-return-rate", type=float, default=d.partial_return_rate)
    parser.add_argument("--recall-share", type=float, default=d.recall_share, help="share of instructions recalled")
    parser.add_argument("--recall-accept-rate", type=float, default=d.recall_accept_rate)
    parser.add_argument("--recall-sla-s", type=float, default=d.recall_sla_s, help="the profiles' recall_sla_s in the run's config")
    parser.add_argument("--pg-url", default=d.pg_url, help="PostgreSQL server for replica-kill (a database is created and dropped)")
    parser.add_argument("--workdir", type=Path, default=Path("bench-out") / "chaos",
                        help="logs and state files, one folder per scenario (bench-out/ is not versioned)")
    parser.add_argument("--json", type=Path, help="write the results here (default: WORKDIR/chaos.json)")
    args = parser.parse_args(argv)
    scenarios = SCENARIOS if args.scenario == "all" else tuple(s.strip() for s in args.scenario.split(","))
    for s in scenarios:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)} or all")
    opts = ChaosOptions(
        count=args.count, rate_per_s=args.rate, partner=args.partner, outage_s=args.outage_s, kills=args.kills,
        down_s_min=args.down_s_min, down_s_max=args.down_s_max, replica_down_s=args.replica_down_s, quiet_s=args.quiet_s,
        settle_s_max=args.settle_s_max, seed=args.seed, pg_url=args.pg_url, return_rate=args.return_rate,
        return_delay_ms=args.return_delay_ms, partial_return_rate=args.partial_return_rate, recall_share=args.recall_share,
        recall_accept_rate=args.recall_accept_rate, recall_sla_s=args.recall_sla_s,
    )
    results = []
    for s in scenarios:
        results.append(run_scenario(s, opts, args.workdir / s))
        print(table(results[-1:]), file=sys.stderr, flush=True)
    print(table(results))
    path = args.json or args.workdir / "chaos.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"options": asdict(opts), "results": results}, indent=2, default=str) + "\n")
    print(f"results: {path}")
    return 1 if any(r["failed"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
