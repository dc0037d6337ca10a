"""The outbox relay: the only thing that talks to the outside after a commit (DESIGN "Inside the
switch"). Handlers write outgoing messages as outbox rows in the transaction that caused them;
the relay delivers them: pacs.008 and pacs.002 to partners over HTTP, events to Kafka.

- Rows a replica writes are leased to it; it gets them in memory right after the commit
  (`handoff`) and delivers them at once. A poller claims every other due row: a retry whose time
  has come, a row whose lease ran out because the replica holding it died. On PostgreSQL the
  claim skips rows another replica is claiming (FOR UPDATE SKIP LOCKED), so two replicas never
  take the same row; a starting replica leaves alone the rows others still hold.
- Each destination (a partner, Kafka) has its own queue and in-flight bound, so a slow or hung
  partner delays only its own corridor.
- A failed delivery is tried a few times at once, then scheduled in the database with
  exponential backoff and full jitter (any replica may pick it up), and retried until it is
  delivered, or until its deadline (a pacs.008: the partner's SLA). Only then does the switch
  decide: a payment whose partner never got the message (every attempt failed to connect) is
  rejected AB07; one whose message may have reached the partner (a timeout, a disconnect after
  sending, a 5xx) is left to the follow-up timer, which resends and enquires, never rejects.
- A paused partner (issue 11, switch/service/corridors.py): its rows are held, not delivered
  and not failed: parked in memory with their lease (a claim by the poller parks them again;
  a row whose in-memory retries were under way is parked before its next attempt) until the
  partner is resumed, then handed to its lane at once; rows another replica held come
  back through the poller when their lease runs out. A delivery already in flight finishes.
- A resend is the stored row: the same bytes and message id, so partners and participants can
  recognise it (pacs.008 MsgId, status `event_id`). To a partner that signs, each attempt goes in
  a business message signed at that moment (a fresh AppHdr CreDt and signature, PssblDplct on a
  resend), around the same stored Document.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from aiokafka import AIOKafkaProducer

from adapters.transport import HttpPartnerTransport, SendOutcome, SendResult
from switch import limits
from switch.log_context import payment_context, uetrs_field
from switch.metrics import Metrics
from switch.service.handlers import Outcome, RecordSendResults
from switch.service.partner_log import PartnerProblems, Problem
from switch.service.ports import DeliveryFailure, OutboxMessage
from switch.store.sql_store import Store  # the relay claims rows: a store method beyond the handlers' port

log = logging.getLogger(__name__)
KAFKA = "kafka"  # the lane of rows that go to Kafka topics (status, inbound)
# what a failed attempt says of the partner, for the log (switch/service/partner_log.py)
PROBLEM_OF: dict[SendOutcome, Problem] = {
    SendOutcome.FAILED: Problem.UNREACHABLE,
    SendOutcome.TIMEOUT: Problem.TIMEOUT,
    SendOutcome.DISCONNECTED: Problem.DISCONNECTED,
    SendOutcome.UNAVAILABLE: Problem.SERVER_ERROR,
    SendOutcome.SERVER_ERROR: Problem.SERVER_ERROR,
    SendOutcome.REFUSED: Problem.REJECTED,
}


def backoff_s(attempt: int) -> float:
    """Full-jitter exponential backoff for the `attempt`-th retry (0-based), bounded by limits."""
    ceiling = min(limits.relay_backoff_s_max, limits.partner_backoff_s_min * 2**attempt)
    return random.uniform(limits.partner_backoff_s_min, max(limits.partner_backoff_s_min, ceiling))


def _reason_from_refusal(result: SendResult) -> str:
    """A partner refusal body is JSON with an ISO `reason_code` (our simulators and the README
    contract); anything else is a format problem as far as the switch can tell."""
    try:
        code = json.loads(result.detail).get("reason_code")
    except (ValueError, AttributeError):
        code = None
    return code if isinstance(code, str) and len(code) == 4 else "FF01"


def failed_round(row: OutboxMessage, result: SendResult, *, ambiguous: bool, now: datetime) -> RecordSendResults:
    """What a failed delivery round of a partner row comes to (pure): a retry later, or a
    decision. Refused (4xx): the payments are rejected with the partner's code, unless an earlier
    attempt may have reached the partner (a refused resend changes nothing). Past the row's
    deadline: AB07 only if no attempt ever may have reached the partner; else nothing (the
    follow-up timer resends and enquires). Otherwise a retry with backoff, at the latest at the
    deadline, whose attempt then decides."""
    ever_ambiguous = ambiguous or row.ambiguous
    detail = f"{result.outcome.value}: {result.detail[:200]}"
    if result.outcome is SendOutcome.REFUSED:
        rejects = {} if ever_ambiguous else {u: (_reason_from_refusal(result), f"partner refused: {result.detail[:200]}") for u in row.uetrs}
        return RecordSendResults([], failures=[DeliveryFailure(row.id or 0, detail, ambiguous, None)], rejects=rejects)
    if row.deadline_at is not None and now >= row.deadline_at:
        rejects = {}
        if not ever_ambiguous:  # it never reached the partner, and the SLA has run out
            attempts = row.attempts + limits.relay_attempts_in_memory_max
            rejects = {u: ("AB07", f"partner unreachable after {attempts} attempts until the SLA deadline") for u in row.uetrs}
        return RecordSendResults([], failures=[DeliveryFailure(row.id or 0, detail, ambiguous, None)], rejects=rejects)
    retry_at = now + timedelta(seconds=backoff_s(row.attempts + limits.relay_attempts_in_memory_max))
    if row.deadline_at is not None:
        retry_at = min(retry_at, row.deadline_at)
    return RecordSendResults([], failures=[DeliveryFailure(row.id or 0, detail, ambiguous, retry_at)])


_SSL_OBJECT = re.compile(r" ssl:<[^>]*>")


def _described(result: SendResult) -> str:
    """A failed attempt in a few words: the outcome, the HTTP status, the start of the detail."""
    status = f" HTTP {result.http_status}" if result.http_status is not None else ""
    detail = _SSL_OBJECT.sub("", result.detail)  # aiohttp names the SSLContext object: noise
    return f"{result.outcome.value}{status}: {detail[:200]}"


class _Lane:
    """One destination: its queue and its bound on deliveries in flight."""

    def __init__(self, name: str, inflight_max: int) -> None:
        self.name = name
        self.queue: asyncio.Queue[OutboxMessage] = asyncio.Queue(maxsize=limits.outbox_queue_max)
        self.slots = asyncio.Semaphore(inflight_max)
        self.tasks: set[asyncio.Task[None]] = set()

    def backlog(self) -> int:
        return self.queue.qsize() + len(self.tasks)


class OutboxRelay:
    def __init__(
        self,
        store: Store,
        *,
        transports: Mapping[str, HttpPartnerTransport],
        inflight_max: Mapping[str, int],
        producer: AIOKafkaProducer,
        record: Callable[[RecordSendResults], Awaitable[Outcome]],
        metrics: Metrics,
        clock: Callable[[], datetime],
        single_process: bool,
        problems: PartnerProblems | None = None,
    ) -> None:
        """`problems`: where partner trouble is logged, rate-limited (shared with the handlers
        that log partner rejects, so one partner's lines are limited together)."""
        self._problems = problems or PartnerProblems()
        self._store = store
        self._transports = transports
        self._producer = producer
        self._record = record
        self._metrics = metrics
        self._clock = clock
        self._single_process = single_process  # SQLite: no other replica can hold a lease
        self._lanes = {p: _Lane(p, inflight_max[p]) for p in transports}
        self._lanes[KAFKA] = _Lane(KAFKA, limits.publish_batches_inflight_max)
        self._held: dict[int, datetime | None] = {}  # rows in memory (queued or in flight) -> lease end
        self._nudged = asyncio.Event()
        self.delivered = 0
        self._paused: frozenset[str] = frozenset()  # partners whose rows are held (issue 11)
        self._parked: dict[int, OutboxMessage] = {}  # held rows by outbox id

    def set_paused(self, partners: frozenset[str]) -> None:
        """The partners paused now (from the database, every replica within a second): rows of a
        partner no longer paused go to its lane at once."""
        resumed = self._paused - partners
        self._paused = frozenset(partners)
        if resumed:
            rows = [r for r in self._parked.values() if r.destination in resumed]
            for row in rows:
                del self._parked[row.id or 0]
            log.info("relay: %d held rows released for %s", len(rows), ", ".join(sorted(resumed)))
            self.handoff(rows)
            self.nudge()  # and whatever other replicas held, once their leases run out

    def held(self, partner: str) -> int:
        """How many rows for `partner` this replica holds while it is paused."""
        return sum(1 for r in self._parked.values() if r.destination == partner)

    # ------------------------------------------------------------------ intake
    def handoff(self, rows: Sequence[OutboxMessage]) -> None:
        """Rows this replica holds (just committed, or claimed): deliver them. Never waits: a
        full lane leaves the row in the outbox, where the poller finds it when its lease ends."""
        for row in rows:
            if row.id is None:
                continue
            if row.id in self._held:
                self._held[row.id] = row.lease_until  # claimed again: the lease was renewed
                continue
            if row.kind == "partner" and row.destination in self._paused:
                self._parked[row.id] = row  # held until the partner is resumed (a claim renews it)
                continue
            lane = self._lanes.get(KAFKA if row.kind != "partner" else row.destination)
            if lane is None:
                continue  # a partner this switch no longer serves: the row stays in the outbox
            try:
                lane.queue.put_nowait(row)
            except asyncio.QueueFull:
                self._metrics.delivery_failures.labels(row.kind, "queue_full").inc()
                continue
            self._held[row.id] = row.lease_until

    def nudge(self) -> None:
        """Claim due rows now rather than at the next poll (a follow-up requeued some)."""
        self._nudged.set()

    def backlog(self, *, kafka: bool = True) -> int:
        """Rows in memory, queued or in flight; `kafka=False`: the partner lanes' only (with the
        broker gone, waiting for the Kafka lane to empty is waiting for nothing)."""
        return sum(lane.backlog() for name, lane in self._lanes.items() if kafka or name != KAFKA)

    # ------------------------------------------------------------------ long-running tasks
    def tasks(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """The relay's loops, by name, for the composition root to run."""
        loops: dict[str, Callable[[], Awaitable[None]]] = {"relay-poller": self._poll_forever}
        for name, lane in self._lanes.items():
            loops[f"relay-{name}"] = (lambda lane=lane: self._lane_forever(lane))  # type: ignore[misc]
        return loops

    async def _poll_forever(self) -> None:
        """Runs until cancelled: claims due rows (retries, rows of replicas that died)."""
        first = True
        while True:
            try:
                async with self._store.unit_of_work() as uow:
                    claimed = await uow.outbox_claim_due(
                        self._clock(), limits.outbox_batch_max, ignore_leases=first and self._single_process
                    )
            except Exception:  # noqa: BLE001 - the database may be away for a moment: poll again
                log.exception("claiming due outbox rows failed")
                claimed = []
            first = False
            if claimed:
                log.info("relay claimed %d due outbox rows", len(claimed))
                self.handoff(claimed)
            if len(claimed) == limits.outbox_batch_max:
                continue
            try:
                async with asyncio.timeout(limits.outbox_poll_s):
                    await self._nudged.wait()
            except TimeoutError:
                pass
            self._nudged.clear()

    async def _lane_forever(self, lane: _Lane) -> None:
        """Runs until cancelled: takes the lane's rows and delivers them, bounded."""
        deliver = self._publish if lane.name == KAFKA else self._deliver
        while True:
            batch = [await lane.queue.get()]
            if lane.name == KAFKA:  # events go out in batches; one broker round trip for many
                while len(batch) < limits.status_publish_batch_max and not lane.queue.empty():
                    batch.append(lane.queue.get_nowait())
            await lane.slots.acquire()
            task = asyncio.create_task(self._guarded(deliver, lane, batch))
            lane.tasks.add(task)
            task.add_done_callback(lane.tasks.discard)

    async def _guarded(
        self, deliver: Callable[[list[OutboxMessage]], Awaitable[None]], lane: _Lane, batch: list[OutboxMessage]
    ) -> None:
        try:
            now = self._clock()
            live = [r for r in batch if (self._held.get(r.id or 0) or now) >= now]  # lease still ours
            if live:
                await deliver(live)
        except Exception:  # noqa: BLE001 - the rows stay in the outbox; their lease runs out and they are retried
            log.exception("delivering %d outbox rows to %s failed", len(batch), lane.name)
        finally:
            for row in batch:
                self._held.pop(row.id or 0, None)
            lane.slots.release()

    # ------------------------------------------------------------------ partners (HTTP)
    async def _deliver(self, rows: list[OutboxMessage]) -> None:
        (row,) = rows
        # the lines logged while this message is in hand name its payments and partner
        with payment_context(uetr=uetrs_field(row.uetrs), partner=row.destination):
            await self._deliver_row(row)

    async def _deliver_row(self, row: OutboxMessage) -> None:
        transport = self._transports[row.destination]
        ambiguous = False
        result: SendResult | None = None
        for attempt in range(limits.relay_attempts_in_memory_max):
            if row.destination in self._paused:  # paused meanwhile (issue 11): held, not failed
                self._parked[row.id or 0] = replace(row, lease_until=self._held.get(row.id or 0, row.lease_until))
                return
            # signed at send time (the transport): a fresh AppHdr per attempt, the stored Document
            result = await transport.submit(
                row.body, message_id=row.message_id, possible_duplicate=attempt > 0 or row.attempts > 0 or row.ambiguous
            )
            self._metrics.partner_request.labels(row.destination, result.outcome.value).observe(result.duration_s)
            self._metrics.partner_up.labels(row.destination).set(0 if result.outcome is SendOutcome.FAILED else 1)
            if result.outcome is SendOutcome.OK:
                self._problems.ok(row.destination)
                self._metrics.stage_duration.labels("submit").observe(max(0.0, (self._clock() - row.created_at).total_seconds()))
                await self._record(RecordSendResults(sent_outbox_ids=[row.id or 0], submitted_uetrs=row.uetrs))
                self.delivered += 1
                return
            self._metrics.delivery_failures.labels(row.kind, result.outcome.value).inc()
            self._problems.problem(
                row.destination, PROBLEM_OF[result.outcome],
                f"message {row.message_id}: {_described(result)}", uetrs=row.uetrs,
            )
            ambiguous = ambiguous or result.ambiguous
            if result.outcome is SendOutcome.REFUSED:
                break
            if attempt + 1 < limits.relay_attempts_in_memory_max:
                await asyncio.sleep(backoff_s(attempt))
        assert result is not None
        decided = failed_round(row, result, ambiguous=ambiguous, now=self._clock())
        if result.outcome is not SendOutcome.REFUSED and decided.failures[0].retry_at is None:  # the deadline ran out
            outcome = ("payments rejected AB07 (it never reached the partner)" if decided.rejects
                       else "left to the follow-up timer (it may have reached the partner): resends and enquiries go on")
            self._problems.problem(
                row.destination, Problem.GAVE_UP,
                f"message {row.message_id} after {row.attempts + limits.relay_attempts_in_memory_max} attempts, "
                f"its deadline passed: {outcome}", uetrs=row.uetrs,
            )
        await self._record(decided)

    # ------------------------------------------------------------------ Kafka (events)
    async def _publish(self, rows: list[OutboxMessage]) -> None:
        for attempt in range(limits.relay_attempts_in_memory_max):
            try:
                futures = [
                    await self._producer.send(
                        m.destination,
                        value=m.body,
                        key=(m.key or "").encode() or None,
                        headers=[("mekong.event_id", m.message_id.encode())],
                    )
                    for m in rows
                ]
                await asyncio.gather(*futures)
                break
            except Exception as exc:  # noqa: BLE001 - broker trouble: retry, then schedule
                self._metrics.delivery_failures.labels("status", "broker_error").inc()
                log.warning("publishing %d outbox rows failed (attempt %d): %s", len(rows), attempt + 1, exc)
                if attempt + 1 < limits.relay_attempts_in_memory_max:
                    await asyncio.sleep(backoff_s(attempt))
        else:
            now = self._clock()
            await self._record(
                RecordSendResults(
                    [],
                    failures=[
                        DeliveryFailure(m.id or 0, "broker did not acknowledge", False, now + timedelta(seconds=backoff_s(m.attempts + limits.relay_attempts_in_memory_max)))
                        for m in rows
                    ],
                )
            )
            return
        now = self._clock()
        for m in rows:
            self._metrics.stage_duration.labels("status_publish").observe(max(0.0, (now - m.created_at).total_seconds()))
        self.delivered += len(rows)
        await self._record(RecordSendResults(sent_outbox_ids=[m.id for m in rows if m.id]))

    # ------------------------------------------------------------------ stop
    async def drain(self, timeout_s: float, *, kafka: bool = True) -> None:
        """Let deliveries in flight finish for up to `timeout_s`, then cancel the rest: their rows
        stay in the outbox, and this replica's lease on them runs out (or, on SQLite, the next
        start takes them at once). `kafka=False`: the broker is gone, its lane's publishes are
        cancelled at once."""
        pending = [t for name, lane in self._lanes.items() if kafka or name != KAFKA for t in lane.tasks]
        if pending and timeout_s > 0:
            _, still = await asyncio.wait(pending, timeout=timeout_s)
            pending = list(still)
        pending += [t for t in self._lanes[KAFKA].tasks if not kafka]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
