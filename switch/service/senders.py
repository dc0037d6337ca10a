"""The two outbox senders. Rows are written by the handlers in the same transaction as the state
change; these tasks deliver them after the commit and mark them sent. On start the switch hands
them every row still unsent, so a crash between commit and send loses nothing; a resend reuses
the stored bytes and message id, so the partner can recognise it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from aiokafka import AIOKafkaProducer

from adapters.transport import HttpPartnerTransport, SendOutcome, SendResult
from switch import limits
from switch.domain.payment import PaymentState
from switch.metrics import Metrics
from switch.service.handlers import Outcome, RecordSendResults
from switch.store.sql_store import OutboxMessage

log = logging.getLogger(__name__)


def backoff_s(attempt: int) -> float:
    """Full jitter exponential backoff, bounded by limits."""
    ceiling = min(limits.partner_backoff_s_max, limits.partner_backoff_s_min * 2**attempt)
    return random.uniform(limits.partner_backoff_s_min, ceiling)


def _reason_from_refusal(result: SendResult) -> str:
    """A partner refusal body is JSON with an ISO `reason_code` (our simulators and the README
    contract); anything else is a format problem as far as the switch can tell."""
    try:
        code = json.loads(result.detail).get("reason_code")
    except (ValueError, AttributeError):
        code = None
    return code if isinstance(code, str) and len(code) == 4 else "FF01"


class PartnerSender:
    """Delivers pacs.008 outbox rows to one partner, bounded by its in-flight limit."""

    def __init__(
        self,
        partner: str,
        transport: HttpPartnerTransport,
        *,
        record_results: Callable[[RecordSendResults], Awaitable[Outcome]],
        metrics: Metrics,
        inflight_max: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.partner = partner
        self._clock = clock
        self._transport = transport
        self._record_results = record_results
        self._metrics = metrics
        self._queue: asyncio.Queue[OutboxMessage] = asyncio.Queue(maxsize=limits.outbox_queue_max)
        self._slots = asyncio.Semaphore(inflight_max)
        self._tasks: set[asyncio.Task[None]] = set()

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        for m in messages:
            await self._queue.put(m)

    def backlog(self) -> int:
        return self._queue.qsize() + len(self._tasks)

    async def run(self) -> None:
        """Runs until cancelled."""
        while True:
            message = await self._queue.get()
            await self._slots.acquire()
            task = asyncio.create_task(self._deliver(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout_s: float) -> None:
        """Let deliveries in flight finish for up to `timeout_s`, then cancel the rest: their
        outbox rows stay unsent and go out again at the next start."""
        await _finish_or_cancel(self._tasks, timeout_s)

    async def _deliver(self, message: OutboxMessage) -> None:
        try:
            await self._deliver_with_retries(message)
        except Exception:  # noqa: BLE001 - the row stays unsent and is retried at the next start
            log.exception("delivery of %s to %s failed", message.message_id, self.partner)
        finally:
            self._slots.release()

    async def _deliver_with_retries(self, message: OutboxMessage) -> None:
        outcomes: list[SendOutcome] = []
        for attempt in range(limits.partner_attempts_max):
            result = await self._transport.submit(message.body, message_id=message.message_id)
            outcomes.append(result.outcome)
            self._metrics.partner_request.labels(self.partner, result.outcome.value).observe(result.duration_s)
            self._metrics.partner_up.labels(self.partner).set(0 if result.outcome is SendOutcome.FAILED else 1)
            if result.outcome is SendOutcome.OK:
                self._metrics.stage_duration.labels("submit").observe(
                    max(0.0, (self._clock() - message.created_at).total_seconds())
                )
                await self._record_results(
                    RecordSendResults(
                        sent_outbox_ids=[message.id] if message.id else [],
                        submitted_uetrs=message.uetrs,
                    )
                )
                return
            if result.outcome is SendOutcome.REFUSED:
                failure = (PaymentState.REJECTED, _reason_from_refusal(result), f"partner refused: {result.detail[:200]}")
                break
            await asyncio.sleep(backoff_s(attempt))
        else:
            if all(o is SendOutcome.FAILED for o in outcomes):
                failure = (PaymentState.REJECTED, "AB07", f"partner unreachable after {len(outcomes)} attempts")
            else:
                failure = (PaymentState.TIMED_OUT, "AB06", f"no answer from the partner after {len(outcomes)} attempts")
        if not message.uetrs:
            # an answer to a partner (an inbound payment's pacs.002) moves no payment: it stays
            # unsent in the outbox and goes out again at the next start; a resend of the
            # partner's pacs.008 gets it sooner
            log.warning("could not deliver %s to %s (%s); kept for the next start", message.message_id, self.partner, failure[2])
            return
        await self._record_results(
            RecordSendResults(
                sent_outbox_ids=[message.id] if message.id else [], failures={uetr: failure for uetr in message.uetrs}
            )
        )


class KafkaPublisher:
    """Publishes status (and inbound) outbox rows to Kafka, then marks them sent."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        *,
        record_results: Callable[[RecordSendResults], Awaitable[Outcome]],
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self._producer = producer
        self._clock = clock
        self._record_results = record_results
        self._metrics = metrics
        self._queue: asyncio.Queue[OutboxMessage] = asyncio.Queue(maxsize=limits.outbox_queue_max)
        self._acks = asyncio.Semaphore(limits.publish_batches_inflight_max)
        self._tasks: set[asyncio.Task[None]] = set()
        self.published = 0

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        for m in messages:
            await self._queue.put(m)

    async def run(self) -> None:
        """Runs until cancelled."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < limits.status_publish_batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # the next batch goes out while this one waits for the broker's acknowledgement
            await self._acks.acquire()
            task = asyncio.create_task(self._publish(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def backlog(self) -> int:
        return self._queue.qsize() + len(self._tasks)

    async def drain(self, timeout_s: float) -> None:
        """As PartnerSender.drain, for batches awaiting the broker's acknowledgement."""
        await _finish_or_cancel(self._tasks, timeout_s)

    async def _publish(self, batch: list[OutboxMessage]) -> None:
        try:
            await self._publish_with_retries(batch)
        finally:
            self._acks.release()

    async def _publish_with_retries(self, batch: list[OutboxMessage]) -> None:
        for attempt in range(limits.partner_attempts_max * 4):
            try:
                futures = [
                    await self._producer.send(m.destination, value=m.body, key=(m.key or "").encode() or None)
                    for m in batch
                ]
                await asyncio.gather(*futures)
                break
            except Exception:  # noqa: BLE001 - broker trouble: keep the rows, retry with backoff
                log.exception("publishing %d outbox rows failed (attempt %d)", len(batch), attempt + 1)
                await asyncio.sleep(backoff_s(attempt))
        else:
            log.error("giving up on %d outbox rows for now; they are retried at the next start", len(batch))
            return
        now = self._clock()
        for m in batch:
            self._metrics.stage_duration.labels("status_publish").observe(max(0.0, (now - m.created_at).total_seconds()))
        self.published += len(batch)
        await self._record_results(RecordSendResults(sent_outbox_ids=[m.id for m in batch if m.id]))


async def _finish_or_cancel(tasks: set[asyncio.Task[None]], timeout_s: float) -> None:
    pending = list(tasks)
    if pending and timeout_s > 0:
        _, still = await asyncio.wait(pending, timeout=timeout_s)
        pending = list(still)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
