"""The composition root (STYLE §1, A2): the only place that builds the switch's parts and wires
them together. `Switch.start()` brings everything up in order, `Switch.stop()` takes it down in
the reverse order, finishing in-flight work first (SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Coroutine

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from adapters.registry import load_partners
from adapters.transport import HttpPartnerTransport
from fx.config import load_fx_config
from fx.quote import Quoter
from iso20022.schemas import SchemaSet, default_schema_dir
from switch import limits
from switch.config import SwitchConfig
from switch.domain.payment import PaymentState
from switch.entrypoints.http_app import build_app
from switch.entrypoints.kafka_consumer import InstructionConsumer
from switch.metrics import Metrics
from switch.service.group_commit import GroupCommitter
from switch.service.handlers import (
    ApplyPartnerStatuses,
    Deps,
    ExpireSubmitted,
    Outcome,
    RecordSendResults,
    apply_partner_statuses,
    expire_submitted,
    record_send_results,
)
from switch.service.inbound import AcceptInbound, ExpireInbound, accept_inbound, expire_inbound
from switch.service.resolver import ProxyResolver
from switch.service.senders import KafkaPublisher, PartnerSender
from switch.store.sql_store import Store

log = logging.getLogger(__name__)
group_commit_batch_max = 256
admin_timeout_ms = 10_000


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


async def ensure_topics(bootstrap_servers: str, topics: list[str], partitions: int) -> None:
    """Create the switch's topics if the cluster lacks them (operators may pre-create them)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=admin_timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing])
    finally:
        await admin.close()


class Switch:
    def __init__(
        self,
        config: SwitchConfig,
        *,
        schema_dir: Path | None = None,
        clock: Callable[[], datetime] = utc_now,
        store: Store | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.metrics = Metrics()
        self._owns_store = store is None  # a store handed in is closed by whoever made it
        self.store = store or Store(config.switch.database_url)
        self.schema_dir = Path(schema_dir or config.switch.schema_dir or default_schema_dir())
        self._tasks: list[asyncio.Task[Any]] = []
        self._senders: dict[str, PartnerSender] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: InstructionConsumer | None = None
        self._consumer_task: asyncio.Task[Any] | None = None
        self._started = False
        self.http_port: int | None = None

    # ------------------------------------------------------------------ wiring
    async def start(self) -> None:
        cfg = self.config
        await self.store.start(migrate=True)
        schemas = SchemaSet(self.schema_dir)
        partners = {c.partner for c in cfg.corridors if c.enabled} | {r.partner for r in cfg.inbound_routes if r.enabled}
        mappings = load_partners(
            Path(cfg.config_dir), partners, switch_bic=cfg.switch.agent_bic, base_urls=cfg.partner_urls
        )
        for mapping in mappings.values():  # compile the XSDs now, not on the first payment
            schemas.xml_schema(mapping.profile.pacs008_version)
            schemas.xml_schema(mapping.profile.pacs002_version)
        for route in cfg.inbound_routes:  # the partner must hear the answer within its SLA
            if route.enabled and route.confirm_timeout_s >= mappings[route.partner].profile.sla_s:
                raise ValueError(
                    f"inbound route {route.id}: confirm_timeout_s {route.confirm_timeout_s:g} must be below "
                    f"{route.partner}'s SLA of {mappings[route.partner].profile.sla_s:g} s"
                )
        for version in ("pain.001.001.09", "pain.002.001.12", "acmt.023.001.04", "acmt.024.001.04"):
            schemas.xml_schema(version)
        fx = load_fx_config(Path(cfg.config_dir) / "fx.toml")
        self.deps = Deps(
            config=cfg, mappings=mappings, quoter=Quoter(fx.rate_book()), schemas=schemas, metrics=self.metrics, clock=self.clock
        )
        k = cfg.kafka
        await ensure_topics(
            k.bootstrap_servers,
            [k.instructions_topic, k.status_topic, k.inbound_topic, k.inbound_replies_topic, k.dlq_topic],
            k.partitions,
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=k.bootstrap_servers,
            client_id=k.client_id,
            acks="all",
            enable_idempotence=False,  # Tansu has no idempotent producer; the outbox makes sends repeatable
            linger_ms=limits.producer_linger_ms,
            max_request_size=limits.kafka_request_bytes_max,
        )
        await self._producer.start()

        self.status_committer: GroupCommitter[ApplyPartnerStatuses] = self._committer("statuses", apply_partner_statuses)
        self._results_committer: GroupCommitter[RecordSendResults] = self._committer("send-results", record_send_results)
        self.inbound_committer: GroupCommitter[AcceptInbound] = self._committer("inbound", accept_inbound)
        self._publisher = KafkaPublisher(
            self._producer, record_results=self._results_committer.submit, metrics=self.metrics, clock=self.clock
        )
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=sum(m.profile.inflight_max for m in mappings.values()) + 8)
        )
        for partner, mapping in mappings.items():
            p = mapping.profile
            self._senders[partner] = PartnerSender(
                partner,
                HttpPartnerTransport(self._session, p.base_url, timeout_s=p.timeout_s, inflight_max=p.inflight_max),
                record_results=self._results_committer.submit,
                metrics=self.metrics,
                inflight_max=p.inflight_max,
                clock=self.clock,
            )
        for committer in (self.status_committer, self._results_committer, self.inbound_committer):
            self._spawn(committer.run(), committer.name)
        self._spawn(self._publisher.run(), "publisher")
        for partner, sender in self._senders.items():
            self._spawn(sender.run(), f"sender-{partner}")
        await self._recover_outbox()

        app = build_app(self)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.http.host, cfg.http.port)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        resolver = ProxyResolver(
            self._session, mappings, schemas, switch_bic=cfg.switch.agent_bic, clock=self.clock, metrics=self.metrics
        )
        self._consumer = InstructionConsumer(
            cfg, self.store, self.deps, self._producer, on_commit=self._dispatch, metrics=self.metrics, resolver=resolver
        )
        await self._consumer.start()
        self._consumer_task = self._spawn(self._consumer.run(), "consumer")
        self._spawn(self._sweep_forever(), "sla-sweeper")
        if self.store.is_sqlite:
            self._spawn(self._checkpoint_forever(), "sqlite-checkpoint")
        self.metrics.watch_gc()
        self._started = True
        log.info("switch up: http %s:%s, kafka %s, db %s", cfg.http.host, self.http_port, k.bootstrap_servers, self.store.url)

    def _committer(self, name: str, handler: Any) -> GroupCommitter[Any]:
        return GroupCommitter(
            name, self.store, self.deps, handler, on_commit=self._dispatch, batch_max=group_commit_batch_max, queue_max=limits.outbox_queue_max
        )

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def _dispatch(self, outcome: Outcome) -> None:
        """After a commit: hand the new outbox rows to whoever delivers them."""
        for message in outcome.partner_outbox:
            await self._senders[message.destination].enqueue([message])
        if outcome.status_outbox:
            await self._publisher.enqueue(outcome.status_outbox)

    async def _recover_outbox(self) -> None:
        """Rows committed but never sent (a crash, a stop) go out again, byte-identical."""
        async with self.store.reader() as uow:
            for kind in ("partner", "status"):
                after = 0
                while True:
                    rows = await uow.outbox_pending(kind, limits.outbox_batch_max, after_id=after)
                    if not rows:
                        break
                    after = rows[-1].id or after
                    if kind == "partner":
                        for row in rows:
                            if row.destination in self._senders:
                                await self._senders[row.destination].enqueue([row])
                    else:
                        await self._publisher.enqueue(rows)
                    log.info("recovered %d unsent %s outbox rows", len(rows), kind)

    async def _sweep_forever(self) -> None:
        """Runs until cancelled: moves payments past their partner's SLA to TIMED_OUT."""
        while True:
            await asyncio.sleep(limits.sla_sweep_interval_s)
            for partner, mapping in self.deps.mappings.items():
                async with self.store.unit_of_work() as uow:
                    outcome = await expire_submitted(ExpireSubmitted(partner, mapping.profile.sla_s), uow, self.deps)
                await self._dispatch(outcome)
            for route in self.config.inbound_routes:
                if route.enabled and route.partner in self.deps.mappings:
                    async with self.store.unit_of_work() as uow:
                        outcome = await expire_inbound(ExpireInbound(route.partner, route.confirm_timeout_s), uow, self.deps)
                    await self._dispatch(outcome)

    async def _checkpoint_forever(self) -> None:
        """Runs until cancelled: keeps the SQLite WAL short without blocking the loop."""
        while True:
            await asyncio.sleep(limits.sqlite_checkpoint_interval_s)
            await self.store.checkpoint()

    # ------------------------------------------------------------------ observability
    def partitions_assigned(self) -> bool:
        return self._consumer is not None and self._consumer.assigned.is_set()

    def kafka_ready(self) -> bool:
        return self._started and self._consumer_task is not None and not self._consumer_task.done()

    async def refresh_gauges(self) -> None:
        open_states = [PaymentState.SUBMITTED, PaymentState.ACCEPTED, PaymentState.TIMED_OUT]
        async with self.store.reader() as uow:
            pending = await uow.outbox_pending_count()
            counts = await uow.open_counts(open_states)
        for kind in ("partner", "status"):
            self.metrics.outbox_pending.labels(kind).set(pending.get(kind, 0))
        for partner in self.deps.mappings:
            self.metrics.in_flight.labels(partner).set(counts.get((partner, "SUBMITTED"), 0) + counts.get((partner, "ACCEPTED"), 0))
            self.metrics.stuck.labels(partner).set(counts.get((partner, "TIMED_OUT"), 0))

    def backlog(self) -> int:
        """Work accepted but not yet delivered, in memory (for draining and the demo)."""
        return (
            sum(s.backlog() for s in self._senders.values())
            + self._publisher.backlog()
            + self.status_committer.pending()
            + self._results_committer.pending()
            + self.inbound_committer.pending()
        )

    # ------------------------------------------------------------------ lifecycle
    async def stop(self, *, drain_s: float = limits.shutdown_drain_s_max) -> None:
        """Stop taking work, finish what is in flight (for at most `drain_s`), then close
        everything. Whatever is not delivered by then stays in the outbox for the next start."""
        if not self._started:
            return
        if self._consumer is not None:
            self._consumer.stop_soon()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._consumer_task), timeout=limits.shutdown_drain_s_max)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        while self._started and self.backlog() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for sender in self._senders.values():
            await sender.drain(max(0.0, deadline - loop.time()))
        await self._publisher.drain(max(0.0, deadline - loop.time()))
        if self._runner is not None:
            await self._runner.cleanup()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
        if self._producer is not None:
            await self._producer.stop()
        if self._owns_store:
            await self.store.close()
        self.metrics.unwatch_gc()
        self._started = False

    async def wait_failed(self) -> None:
        """Return when any long-running task ends on its own (which is a failure)."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        raise RuntimeError(f"task {next(iter(done)).get_name()} stopped")
