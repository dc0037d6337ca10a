"""The composition root (STYLE §1, A2): the only place that builds the switch's parts and wires
them together. `Switch.start()` brings everything up in order, `Switch.stop()` takes it down in
the reverse order, finishing in-flight work first (SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Coroutine, Final

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.metadata import MetadataRequest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from adapters.registry import load_partners
from adapters.transport import HttpPartnerTransport
from fx.config import load_fx_config
from fx.quote import Quoter
from iso20022 import apphdr
from iso20022.schemas import SchemaSet, default_schema_dir
from switch import limits
from switch import config as config_mod
from switch.config import SwitchConfig
from switch.screening import build_screener
from switch.domain.corridor_rules import NO_CONTROLS, ControlKind, Controls
from switch.domain.payment import PaymentState
from switch.domain.pan import PanTokens
from switch.entrypoints.api_auth import ApiCertificates, ApiTokens
from switch.entrypoints.dead_letters import DeadLetters
from switch.entrypoints.http_app import build_ops_app, build_partner_app
from switch.entrypoints.kafka_consumer import InstructionConsumer
from switch.entrypoints.rate_providers import HttpRateFeed, KafkaRateConsumer, shown_feed_url
from switch.kafka_auth import KeyRing, client_options, load_key_ring
from switch.metrics import Metrics
from switch.service.audit import audit_alone, audit_config_loaded, audit_participant_keys
from switch.service.audit import entry as audit_entry
from switch.service.bus import MessageBus
from switch.domain.case import CASE_OPEN, CaseKind, CaseState
from switch.service.case_timer import FollowUpCases
from switch.service.follow_up import FollowUpPayments
from switch.domain.recon import BREAK_NOT_CLOSED, BreakKind
from switch.domain.settlement import cycle_at
from switch.service.settlement import CYCLE_CLOSED, CYCLE_OPEN, CloseCycle, OpenCycles, ReconcileCycle, settlement_calendars
from switch.service.settlement import due_at as settlement_due_at
from switch.service.handlers import Deps, Outcome
from switch.service.rate_limits import RateLimits
from switch.service.partner_log import PartnerProblems
from switch.service.relay import OutboxRelay
from switch.service.resolver import ProxyResolver
from switch.store.sql_store import Lease, Store, shown_url
from switch.signing import Sealer, load_switch_signing
from switch.tls import OpsTls, PartnerTlsSettings, SwitchTls, load_ops_tls, load_switch_tls

log = logging.getLogger(__name__)
CASE_NOT_CLOSED: Final = sorted(CASE_OPEN | {CaseState.UNANSWERED})  # the states switch_cases_open counts (issue 9)
admin_timeout_ms = 10_000


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class StartupError(RuntimeError):
    """The switch cannot start, for a reason an operator fixes outside it: the broker or the
    database does not answer, a port is taken. `mekong run` prints the message (which says
    which host and port) and exits 1, without a traceback."""


def _first_line(exc: BaseException, *, hide: str | None = None) -> str:
    """An exception in a few words for a start-up message (never a password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if hide:
        text = text.replace(hide, "***")
    return text[:200]


async def ensure_topics(bootstrap_servers: str, topics: list[str], partitions: int, **client: Any) -> None:
    """Create the switch's topics if the cluster lacks them (operators may pre-create them).
    `client`: how to authenticate to the broker (kafka_auth.client_options)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=admin_timeout_ms, **client)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing])
    finally:
        await admin.close()


async def _listen(site: web.TCPSite, what: str, host: str, port: int) -> None:
    """Start listening, or say which host:port could not be had (taken, or not this machine's)."""
    try:
        await site.start()
    except OSError as exc:
        reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or _first_line(exc))
        raise StartupError(f"the {what} {host}:{port} cannot be opened: {reason}") from None


def _password(url: str) -> str | None:
    try:
        return make_url(url).password  # type: ignore[return-value]
    except Exception:  # noqa: BLE001 - no password to hide in an unreadable URL
        return None


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
        self.metrics.fx.init_corridors(c.id for c in config.corridors)
        self._owns_store = store is None  # a store handed in is closed by whoever made it
        self.store = store or Store(config.switch.database_url)
        self.schema_dir = Path(schema_dir or config.switch.schema_dir or default_schema_dir())
        # who this replica is to the others: the holder of its outbox leases
        self.replica_id = f"{socket.gethostname()[:32]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._tasks: list[asyncio.Task[Any]] = []
        self._stack: contextlib.AsyncExitStack | None = None
        self._consumer: InstructionConsumer | None = None
        self._consumer_task: asyncio.Task[Any] | None = None
        self._started = False
        self.http_port: int | None = None  # the partner port
        self.ops_port: int | None = None  # the operations port
        self.tls: SwitchTls | None = None
        self.signing: Sealer | None = None  # signed business application headers; None: --insecure-dev
        self.key_ring: KeyRing | None = None  # the participants' Kafka signing keys; None: --insecure-dev
        self.ops_tls: OpsTls | None = None  # the operations port's (None: --insecure-dev, plain HTTP)
        self.controls: Controls = NO_CONTROLS  # the operators' corridor / partner switches, as last read (issue 11)
        self._reloads: set[asyncio.Task[Any]] = set()  # reloads on SIGHUP in progress
        self._reload_lock = asyncio.Lock()
        self._hup_installed = False
        self.partner_problems = PartnerProblems()  # partner trouble, logged rate-limited (relay, handlers)
        # the last broker probe (a metadata request, every limits.kafka_probe_interval_s): /readyz
        # reads it, never asks the broker itself
        self.broker_reachable = False
        self._producer: AIOKafkaProducer | None = None
        self._close_by: float | None = None  # loop time by which stop() must have closed everything
        self.screener: Any = None  # the screening port (issue 12), built at start; None: screening off

    # ------------------------------------------------------------------ wiring
    async def start(self) -> None:
        """Bring everything up in order. Each part registers how it is taken down; if any step
        fails, what was started is taken down again (in reverse) and the error is raised."""
        async with contextlib.AsyncExitStack() as stack:
            await self._start(stack)
            self._stack = stack.pop_all()
        self._started = True

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        cfg = self.config
        if self._owns_store:
            stack.push_async_callback(self._bounded(self.store.close, "the database connections"))
        await self._database_answers()
        self.store.lease = Lease(self.replica_id, limits.outbox_lease_s)
        await audit_config_loaded(self.store, Path(cfg.config_dir), replica=self.replica_id, at=self.clock())
        self.key_ring = self._participant_keys()
        if self.key_ring is not None:
            await audit_participant_keys(self.store, self.key_ring, replica=self.replica_id, at=self.clock())
        schemas = SchemaSet(self.schema_dir)
        partners = {c.partner for c in cfg.corridors if c.enabled} | {r.partner for r in cfg.inbound_routes if r.enabled}
        mappings = load_partners(
            Path(cfg.config_dir), partners, switch_bic=cfg.switch.agent_bic, base_urls=cfg.partner_urls, timing=cfg.partner_timing
        )
        mappings, self.tls = self._partner_tls(mappings)
        self.signing = self._partner_signing(mappings)
        if self.signing is not None:
            schemas.xml_schema(apphdr.HEAD_VERSION)
        # the operations port: TLS with client certificates asked for, unless --insecure-dev
        self.ops_tls = None if cfg.security.insecure_dev else load_ops_tls(cfg.security.pki_path())
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
        fx = load_fx_config(Path(cfg.config_dir) / "fx.toml", env=os.environ)
        self.fx_config = fx
        if cfg.pan_key is None:  # a key per process would give each replica other tokens for one card
            raise ValueError("no card-number token key: set MEKONG_PAN_KEY_FILE (or MEKONG_PAN_KEY), see README")
        self.deps = Deps(
            config=cfg, mappings=mappings, quoter=Quoter(fx.rate_book(self.clock())), schemas=schemas, metrics=self.metrics, clock=self.clock,
            pans=PanTokens(bytes.fromhex(cfg.pan_key.get_secret_value())),
            calendars=settlement_calendars([m.profile for m in mappings.values()], Path(cfg.config_dir)),
            partner_problems=self.partner_problems,
        )
        self.metrics.initialise_known_labels(  # so increase() sees the first event of each (issue 11 item 5)
            corridors=[c.id for c in cfg.corridors if c.enabled] + [r.id for r in cfg.inbound_routes if r.enabled],
            partners=mappings,
            settling=self.deps.calendars,
            proxy=[p for p, m in mappings.items() if m.profile.proxy_resolution],
        )
        self.metrics.init_corridors([c.id for c in cfg.corridors], sorted(mappings))  # issue 11: series at 0
        # sanctions screening (issue 12): the embedded list loads here, off the event loop, and
        # rigour's name data in the background once the switch is up (below); None when [screening] is off
        self.screener = await asyncio.to_thread(build_screener, cfg, self.metrics)
        self.deps.screener = self.screener  # the edges screen with it (switch/service/screening.py)
        if self.screener is not None:
            log.info("screening: %s", self.screener.reload() if self.screener.provider == "yente" else self.screener.describe())
            close = getattr(self.screener, "close", None)
            if close is not None:
                stack.push_async_callback(self._bounded(close, "the screening API client"))
        k = cfg.kafka
        broker_auth = client_options(cfg)
        async with self._broker_answers("creating topics"):
            await ensure_topics(
                k.bootstrap_servers,
                [k.instructions_topic, k.status_topic, k.inbound_topic, k.inbound_replies_topic, k.requests_topic, k.statements_topic,
                 k.quotes_topic, k.dlq_topic, *([fx.providers.kafka.topic] if fx.providers.kafka.enabled else [])],
                k.partitions,
                **broker_auth,
            )
        producer = AIOKafkaProducer(
            bootstrap_servers=k.bootstrap_servers,
            client_id=k.client_id,
            acks="all",
            enable_idempotence=False,  # Tansu has no idempotent producer; the outbox makes sends repeatable
            linger_ms=limits.producer_linger_ms,
            max_request_size=limits.kafka_request_bytes_max,
            **broker_auth,
        )
        # also when start() fails half-way; with the broker gone it cannot flush: a moment only
        stack.push_async_callback(self._bounded(producer.stop, "the Kafka producer", broker=True))
        async with self._broker_answers("starting the producer"):
            await producer.start()
        self._producer = producer
        self.broker_reachable = True
        self._dead_letters = DeadLetters(k, producer, broker_auth)  # the toolbox's dead-letter reader (issue 11)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=sum(m.profile.inflight_max for m in mappings.values()) + 8)
        )
        stack.push_async_callback(self._bounded(session.close, "the partner HTTP client"))

        self.bus = MessageBus(self.store, self.deps, on_commit=self._dispatch, metrics=self.metrics)
        self.relay = OutboxRelay(
            self.store,
            transports={
                partner: HttpPartnerTransport(
                    session, m.profile.base_url, timeout_s=m.profile.timeout_s, inflight_max=m.profile.inflight_max,
                    ssl_context=self.tls.clients[partner] if self.tls else None,
                    seal=self._seal_for(partner),
                )
                for partner, m in mappings.items()
            },
            inflight_max={partner: m.profile.inflight_max for partner, m in mappings.items()},
            producer=producer,
            record=self.bus.handle,
            metrics=self.metrics,
            clock=self.clock,
            single_process=self.store.is_sqlite,
            problems=self.partner_problems,
        )
        await self.refresh_controls()  # paused partners are held from the relay's first row on (issue 11)
        stack.push_async_callback(self._bounded(self._cancel_tasks, "the switch's tasks"))  # before the producer and session close
        for name, loop in {**self.bus.tasks(), **self.relay.tasks()}.items():
            self._spawn(loop(), name)

        await self._serve_http(stack)
        await self._start_rate_providers(stack, session)

        resolver = ProxyResolver(
            session, mappings, schemas, switch_bic=cfg.switch.agent_bic, clock=self.clock, metrics=self.metrics,
            ssl_contexts=self.tls.clients if self.tls else None, signing=self.signing,
        )
        self._consumer = InstructionConsumer(
            cfg, self.bus, producer, metrics=self.metrics, key_ring=self.key_ring, resolver=resolver,
            rate_limits=self._limits("kafka", cfg.participant_rates()),
        )
        # not bounded like the steps above: the broker has answered them, and joining the group
        # may wait out a rebalance (a replica that left without saying so) for longer
        await self._consumer.start()
        self._consumer_task = self._spawn(self._consumer.run(), "consumer")
        self._spawn(self._probe_broker_forever(), "broker-probe")
        self._spawn(self._follow_up_forever(), "follow-up")
        self._spawn(self._controls_forever(), "controls")
        if self.deps.calendars:
            self._spawn(self._settle_forever(), "settlement")
        if self.store.is_sqlite:
            self._spawn(self._checkpoint_forever(), "sqlite-checkpoint")
        self.metrics.watch_gc()
        stack.callback(self.metrics.unwatch_gc)
        log.info(
            "switch up: replica %s, partner port %s://%s:%s, operations port %s://%s:%s%s, kafka %s, db %s, signatures %s",
            self.replica_id, "http" if self.tls is None else "https", cfg.http.host, self.http_port,
            "http" if self.ops_tls is None else "https", cfg.http.ops_host, self.ops_port,
            " (client certificates asked for)" if self.ops_tls is not None and self.ops_tls.client_certificates else "",
            k.bootstrap_servers, shown_url(self.store.url),
            "OFF" if self.signing is None else ", ".join(sorted(self.signing.counterparts)) or "no partner signs",
        )
        warm_up = getattr(self.screener, "start_warm_up", None)
        if warm_up is not None:  # the embedded screening's name data, now that the switch is up (embedded.py)
            warm_up()

    async def _start_rate_providers(self, stack: contextlib.AsyncExitStack, session: aiohttp.ClientSession) -> None:
        """The live FX rate providers config/fx.toml enables (issue 11): tasks that update this
        replica's rate book. Each replica reads them itself; nothing about rates is shared."""
        providers = self.fx_config.providers
        book = self.deps.quoter.book
        self.metrics.fx.rate_updates.labels("static", "applied").inc(len(self.fx_config.rates))  # loaded at start
        if providers.http.enabled:
            assert providers.http.url is not None  # load_fx_config checks it
            h = providers.http
            self.rate_feed = HttpRateFeed(
                session, h.url, book, self.metrics.fx, poll_s=h.poll_s, timeout_s=h.timeout_s,
                backoff_s_min=h.backoff_s_min, backoff_s_max=h.backoff_s_max,
            )
            self._spawn(self.rate_feed.run(), "fx-rate-feed")
            log.info("FX rates: polling %s every %g s", shown_feed_url(h.url), h.poll_s)
        if providers.kafka.enabled:
            k = self.config.kafka
            self.rate_consumer = KafkaRateConsumer(
                k.bootstrap_servers, providers.kafka.topic, book, self.metrics.fx, client_id=f"{k.client_id}-fx-rates",
                **client_options(self.config),
            )
            async with self._broker_answers("reading the FX rate topic"):
                await self.rate_consumer.start()
            stack.push_async_callback(self._bounded(self.rate_consumer.stop, "the FX rate consumer", broker=True))
            task = self._spawn(self.rate_consumer.run(), "fx-rate-topic")

            async def cancel_first() -> None:  # the loop ends before its consumer stops
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

            stack.push_async_callback(cancel_first)
            log.info("FX rates: reading topic %s", providers.kafka.topic)
    async def _database_answers(self) -> None:
        """Start the store (migrations included) within limits.database_connect_timeout_s, or say
        which database did not answer (its URL with the password hidden)."""
        url = self.store.url
        try:
            async with asyncio.timeout(limits.database_connect_timeout_s):
                await self.store.start(migrate=True)
        except (OSError, TimeoutError) as exc:
            detail = f"no answer within {limits.database_connect_timeout_s:g} s" if isinstance(exc, TimeoutError) else _first_line(exc)
            raise StartupError(f"the database {shown_url(url)} did not answer: {detail}") from None
        except DBAPIError as exc:  # it answered, and said no (unknown database, authentication failed, ...)
            raise StartupError(
                f"the database {shown_url(url)} cannot be used: {_first_line(exc.orig or exc, hide=_password(url))}"
            ) from None

    @contextlib.asynccontextmanager
    async def _broker_answers(self, doing: str) -> Any:
        """A step that needs the broker, within [kafka] connect_timeout_s; if the broker does not
        answer, a StartupError that names the bootstrap servers (host:port)."""
        k = self.config.kafka
        try:
            async with asyncio.timeout(k.connect_timeout_s):
                yield
        except (KafkaError, OSError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                detail = f"no answer within {k.connect_timeout_s:g} s"
            elif isinstance(exc, KafkaConnectionError):
                detail = "no connection (refused, closed or unreachable)"
            else:
                detail = _first_line(exc)
            raise StartupError(f"Kafka at {k.bootstrap_servers} did not answer ({doing}): {detail}") from None

    def _bounded(
        self, close: Callable[[], Coroutine[Any, Any, Any]], what: str, *, broker: bool = False
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        """`close`, bounded: by the shutdown grace once stop() has begun, else by
        limits.shutdown_close_s_min (a start that failed half-way); `broker`: it talks to the
        broker, so with the broker gone (the last probe) it gets a moment only. A client that
        does not close in time (a producer flushing to a broker that is gone) is left, said in
        one line."""

        async def bounded() -> None:
            loop = asyncio.get_running_loop()
            budget = limits.shutdown_close_s_min if self._close_by is None else self._close_by - loop.time()
            if broker and not self.broker_reachable:
                budget = min(budget, limits.shutdown_broker_gone_close_s)
            try:
                async with asyncio.timeout(max(0.05, budget)):
                    await close()
            except TimeoutError:
                log.warning("closing %s did not finish within %.1f s%s: left behind", what, max(0.05, budget),
                            " (the broker does not answer)" if broker and not self.broker_reachable else "")
            except Exception as exc:  # noqa: BLE001 - closing the rest matters more than this one
                log.warning("closing %s failed: %s", what, _first_line(exc))

        return bounded

    async def _probe_broker_forever(self) -> None:
        """Runs until cancelled: a cheap broker probe (a metadata request through the producer's
        client, bounded), its result kept for /readyz; a lost or regained broker is logged once.
        Never ends on its own: a probe that fails in any way means "not ready", not a crash."""
        assert self._producer is not None
        k = self.config.kafka
        while True:
            try:
                async with asyncio.timeout(limits.kafka_probe_timeout_s):
                    await self._ask_broker()
                reachable, why = True, ""
            except Exception as exc:  # noqa: BLE001 - whatever the probe meets, the broker is not usable: not ready
                reachable, why = False, "no answer" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {_first_line(exc)}"
            if reachable != self.broker_reachable:
                if reachable:
                    log.warning("Kafka at %s answers again: ready", k.bootstrap_servers)
                else:
                    log.warning("Kafka at %s does not answer (%s): not ready until it does", k.bootstrap_servers, why)
            self.broker_reachable = reachable
            await asyncio.sleep(limits.kafka_probe_interval_s)

    async def _ask_broker(self) -> None:
        """The probe itself: a metadata request for the instructions topic alone (a few hundred
        bytes, not the whole cluster's topics) to the known brokers in turn, until one answers."""
        assert self._producer is not None
        client = self._producer.client
        request = MetadataRequest([self.config.kafka.instructions_topic], allow_auto_topic_creation=False)
        last: KafkaError = KafkaConnectionError("no broker known")
        for node in [b.nodeId for b in client.cluster.brokers()]:
            try:
                await client.send(node, request)
                return
            except KafkaError as exc:
                last = exc
        raise last

    def _participant_keys(self) -> KeyRing | None:
        """The participants' Kafka signing keys (kafka_auth.py), or, with --insecure-dev, none
        said loudly: records are then taken as the participant they name, unchecked."""
        cfg = self.config
        if cfg.security.insecure_dev:
            log.warning(
                "INSECURE DEV MODE: Kafka record signatures are not checked; any client that can publish on %s, %s or %s "
                "speaks for any participant. Never in production.", cfg.kafka.instructions_topic, cfg.kafka.inbound_replies_topic,
                cfg.kafka.requests_topic,
            )
            return None
        ring = load_key_ring(cfg.participants, cfg.security.pki_path())
        for participant in cfg.participants:
            keys = ring.keys_of(participant.code)
            if not keys:
                log.warning("participant %s has no Kafka signing key: every record naming it is refused", participant.code)
            else:
                log.info("participant %s signs with key%s %s", participant.code, "s" if len(keys) > 1 else "",
                         ", ".join(k.key_id for k in keys))
        return ring

    def _partner_tls(self, mappings: dict[str, Any]) -> tuple[dict[str, Any], SwitchTls | None]:
        """Mutual TLS with the partners (switch/tls.py), or, with --insecure-dev, plain HTTP said
        loudly: partner URLs given as https:// are called over http:// then."""
        cfg = self.config
        if cfg.security.insecure_dev:
            log.warning(
                "INSECURE DEV MODE: the partner port serves plain HTTP without client certificates and partners "
                "are called over plain HTTP; anyone who reaches the port can speak for any partner. The operations "
                "port serves plain HTTP too: API tokens travel in clear. Never in production."
            )
            for partner, m in mappings.items():
                if m.profile.base_url.startswith("https://"):
                    plain = "http://" + m.profile.base_url.removeprefix("https://")
                    mappings[partner] = type(m)(m.profile.model_copy(update={"base_url": plain}), switch_bic=cfg.switch.agent_bic)
            return mappings, None
        for partner, m in mappings.items():
            if not m.profile.base_url.startswith("https://"):
                raise ValueError(f"partner {partner}: base_url {m.profile.base_url} is not https:// (TLS is on; --insecure-dev for plain HTTP)")
        settings = {
            partner: None if m.profile.tls is None
            else PartnerTlsSettings(m.profile.tls.subject_cn, m.profile.tls.spki_sha256, m.profile.tls.ca_bundle)
            for partner, m in mappings.items()
        }
        return mappings, load_switch_tls(cfg.security.pki_path(), settings)

    def _partner_signing(self, mappings: dict[str, Any]) -> Sealer | None:
        """Signed business application headers (switch/signing.py) with the partners whose profile
        has [signing]; with --insecure-dev none at all, said loudly (with TLS, in _partner_tls)."""
        cfg = self.config
        if cfg.security.insecure_dev:
            log.warning(
                "INSECURE DEV MODE: ISO messages are neither signed nor checked for signatures (no AppHdr); "
                "a partner's message is believed as it comes. Never in production."
            )
            return None
        for partner, m in sorted(mappings.items()):
            if m.profile.signing is None:
                log.warning("partner %s does not sign (no [signing] in its profile): its messages go and come bare", partner)
            elif not m.profile.signing.required:
                log.warning("partner %s: signatures not required yet, a bare Document is taken from it", partner)
        return load_switch_signing(
            cfg.security.pki_path(), cfg.switch.agent_bic, {partner: m.profile.signing for partner, m in mappings.items()}
        )

    def _seal_for(self, partner: str) -> Callable[[bytes, bool], bytes] | None:
        """How the relay's transport signs each attempt to `partner` (None: it goes bare)."""
        signing = self.signing
        if signing is None or not signing.signs_with(partner):
            return None
        return lambda document, duplicate: signing.seal(partner, document, now=self.clock(), possible_duplicate=duplicate)

    async def _serve_http(self, stack: contextlib.AsyncExitStack) -> None:
        """Two sites: the partner port (mutual TLS unless --insecure-dev) and the operations port."""
        cfg = self.config
        partner_limits = self._limits("partner_port", {p: m.profile.limits.rate() for p, m in self.deps.mappings.items()})
        partner_runner = web.AppRunner(
            build_partner_app(self.bus, partner_auth=self.tls.authenticator if self.tls else None, signing=self.signing,
                              partner_limits=partner_limits),
            access_log=None,
        )
        await partner_runner.setup()
        stack.push_async_callback(self._bounded(partner_runner.cleanup, "the partner port"))
        site = web.TCPSite(partner_runner, cfg.http.host, cfg.http.port, ssl_context=self.tls.server if self.tls else None)
        await _listen(site, "partner port", cfg.http.host, cfg.http.port)
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ops_runner = web.AppRunner(
            build_ops_app(
                self.bus, readiness=self.readiness, refresh_gauges=self.refresh_gauges, api_tokens=ApiTokens(cfg.api_tokens),
                api_certificates=ApiCertificates(cfg.api_certificates), dead_letters=self._dead_letters,
                reload_config=lambda actor: self.reload_config(actor=actor), controls_changed=self.refresh_controls,
            ),
            access_log=None,
        )
        await ops_runner.setup()
        stack.push_async_callback(self._bounded(ops_runner.cleanup, "the operations port"))
        ops_site = web.TCPSite(ops_runner, cfg.http.ops_host, cfg.http.ops_port, ssl_context=self.ops_tls.server if self.ops_tls else None)
        await _listen(ops_site, "operations port", cfg.http.ops_host, cfg.http.ops_port)
        self.ops_port = ops_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def _limits(self, edge: str, rates: dict[str, Any]) -> RateLimits:
        """An edge's rate limits (issue 8 item 6), their metric series there from the start."""
        for party in rates:
            self.metrics.rate_limited.labels(edge, party)
        return RateLimits(rates)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def _cancel_tasks(self) -> None:
        """Cancel the long-running tasks and wait for them; a task whose clean-up waits on the
        broker (the consumer leaving its group) is cancelled again until it ends (the caller
        bounds the whole)."""
        pending = [t for t in self._tasks if not t.done()]
        while pending:
            for task in pending:
                task.cancel()
            _, still = await asyncio.wait(pending, timeout=0.5)
            pending = list(still)
        for task in self._tasks:  # retrieve the outcomes: no "exception was never retrieved"
            if not task.cancelled():
                task.exception()
        self._tasks.clear()

    def _dispatch(self, outcome: Outcome) -> None:
        """After a commit: the new outbox rows (leased to this replica) go to the relay."""
        self.relay.handoff(outcome.partner_outbox)
        self.relay.handoff(outcome.status_outbox)

    async def _follow_up_forever(self) -> None:
        """Runs until cancelled: the follow-up timer. Claims due payments in batches (a claim is a
        lease: no other replica acts on them) and lets the handler resend, time out or answer."""
        while True:
            try:
                outcome = await self.bus.handle(FollowUpPayments(limits.follow_up_batch_max))
                cases = await self.bus.handle(FollowUpCases(limits.follow_up_batch_max))  # enquiries, recalls (issue 9)
            except Exception:  # noqa: BLE001 - the database may be away for a moment: the next tick retries
                log.exception("follow-up round failed")
                outcome = cases = None
            if (outcome is not None and outcome.partner_outbox) or (cases is not None and cases.partner_outbox):
                self.relay.nudge()
            claimed = max(o.counts.get("claimed", 0) for o in (outcome, cases)) if outcome is not None and cases is not None else 0
            if outcome is None or claimed < limits.follow_up_batch_max:
                await asyncio.sleep(limits.follow_up_poll_s)

    async def _settle_forever(self) -> None:
        """Runs until cancelled: the settlement timer (issue 10). Opens each partner's current
        cycle, closes the cycles past their cut-off and reconciles those whose report is in;
        each in its own transaction, decided by the cycle row's version (replicas never both)."""
        while True:
            try:
                now = self.clock()
                current = [cycle_at(calendar, now).id for calendar in self.deps.calendars.values()]
                async with self.store.reader() as uow:
                    known = await uow.cycles_get(current)
                    due = await uow.cycles_due(now, limits.settlement_cycles_due_max)
                if len(known) < len(current):  # a new cycle has begun: one write, by whichever replica comes first
                    await self.bus.handle(OpenCycles())
                for cycle in due:
                    cmd = CloseCycle(cycle.id) if cycle.state == CYCLE_OPEN else ReconcileCycle(cycle.id)
                    outcome = await self.bus.handle(cmd)
                    if outcome.partner_outbox or outcome.status_outbox:
                        self.relay.nudge()
            except Exception:  # noqa: BLE001 - the database may be away for a moment: the next tick retries
                log.exception("settlement round failed")
            await asyncio.sleep(limits.follow_up_poll_s)

    # ------------------------------------------------------------------ corridors at run time (issue 11)
    async def _controls_forever(self) -> None:
        """Runs until cancelled: reads the operators' corridor and partner switches every
        limits.controls_refresh_s, so this replica's relay holds (or releases) a partner's rows
        within about a second of a change made on any replica. Admission does not wait for this:
        it reads the switches in its own transaction."""
        while True:
            await asyncio.sleep(limits.controls_refresh_s)
            try:
                await self.refresh_controls()
            except Exception:  # noqa: BLE001 - the database may be away for a moment: the next tick retries
                log.exception("reading the corridor controls failed")

    async def refresh_controls(self) -> None:
        """Read the switches now: the relay's paused partners and the gauges."""
        async with self.store.reader() as uow:
            controls = Controls.of(await uow.controls_get())
        paused = frozenset(p for p in self.deps.mappings if controls.off(ControlKind.PARTNER, p) is not None)
        for partner in sorted(paused - self.relay_paused()):
            log.warning("partner %s is paused (%s): its messages are held", partner, controls.off(ControlKind.PARTNER, partner).reason)  # type: ignore[union-attr]
        self.relay.set_paused(paused)
        self.controls = controls
        for c in self.config.corridors:
            on = c.enabled and controls.off(ControlKind.CORRIDOR, c.id) is None
            self.metrics.corridor_enabled.labels(c.id).set(1 if on else 0)
        for partner in self.deps.mappings:
            self.metrics.partner_paused.labels(partner).set(1 if partner in paused else 0)

    def relay_paused(self) -> frozenset[str]:
        return self.relay._paused

    async def reload_config(self, *, actor: str) -> dict[str, Any]:
        """Re-read the configuration directory (SIGHUP, POST /v1/config/reload) and apply what can
        change without a restart: corridors (partner, currencies, amount_max, fees, spread, quote
        validity, hours, holidays, default tier, compliance profile), tiers, the compliance
        profiles (issue 12) and the static FX table. Payments in
        flight keep what they were admitted with (their quote and fee are stored). A directory
        that does not validate changes nothing: the problems are logged, counted
        (switch_config_reloads_total{outcome="failed"}) and audited. What needs a restart
        (switch.toml, participants, inbound routes, partner profiles, tokens) is reported, not
        applied."""
        async with self._reload_lock:
            cfg = self.config
            directory = Path(cfg.config_dir)
            now = self.clock()
            try:
                loaded = config_mod.load(directory)
                fx = load_fx_config(directory / "fx.toml", env=os.environ)
                fields = {name: getattr(cfg, name) for name in type(cfg).model_fields}
                fields.update(corridors=loaded.corridors, tiers=loaded.tiers, usage_timezone=loaded.usage_timezone,
                              corridor_holidays=loaded.corridor_holidays, compliance_profiles=loaded.compliance_profiles)
                new_cfg = type(cfg).model_validate(fields)
                static = fx.static_provider(now).table  # stamped now: the reloaded table quotes afresh
            except Exception as exc:  # noqa: BLE001 - any problem of the files keeps the running configuration
                problems = [str(p) for p in getattr(exc, "problems", None) or [exc]]
                self.metrics.config_reloads.labels("failed").inc()
                log.error("configuration reload (%s) refused, the running configuration stays: %s", actor, "; ".join(problems)[:2000])
                await audit_alone(self.store, [audit_entry(at=now, actor=actor, action="config.reload_refused", subject=str(directory),
                                                           detail={"problems": problems[:20], "replica": self.replica_id})])
                return {"applied": False, "problems": problems}
            restart = [name for name in ("participants", "inbound_routes", "directory") if getattr(loaded, name) != getattr(cfg, name)]
            # FX: the same book stays, the live providers feed it; its static rates
            # are replaced (never a live rate) and the guard follows fx.toml; pivot and providers
            # are wired at start
            restart += [f"fx.{name}" for name in ("pivot", "providers") if getattr(fx, name) != getattr(self.fx_config, name)]
            unserved = sorted({c.id for c in new_cfg.corridors if c.enabled and c.partner not in self.deps.mappings})
            old_ids = {c.id: c for c in cfg.corridors}
            changed = sorted(c.id for c in new_cfg.corridors if old_ids.get(c.id) != c)
            removed = sorted(set(old_ids) - {c.id for c in new_cfg.corridors})
            profiles = sorted(n for n in {*cfg.compliance_profiles, *new_cfg.compliance_profiles}
                              if cfg.compliance_profiles.get(n) != new_cfg.compliance_profiles.get(n))
            self.config = new_cfg
            self.deps.config = new_cfg
            self.deps.quoter.book.stale_after_s = fx.stale_after_s
            self.deps.quoter.book.load_static(static)
            self.metrics.fx.rate_updates.labels("static", "applied").inc(len(static))
            self.metrics.init_corridors([c.id for c in new_cfg.corridors], sorted(self.deps.mappings))
            self.metrics.config_reloads.labels("applied").inc()
            await audit_config_loaded(self.store, directory, replica=self.replica_id, at=now)
            result = {"applied": True, "corridors_changed": changed, "corridors_removed": removed,
                      "compliance_profiles_changed": profiles,
                      "needs_restart": restart, "corridors_without_partner": unserved}
            await audit_alone(self.store, [audit_entry(at=now, actor=actor, action="config.reloaded", subject=str(directory),
                                                       detail={**result, "replica": self.replica_id})])
            log.info("configuration reloaded (%s): corridors changed %s, removed %s%s%s", actor, changed or "none", removed or "none",
                     f"; needs a restart to apply: {', '.join(restart)}" if restart else "",
                     f"; corridors whose partner this replica does not serve (restart): {', '.join(unserved)}" if unserved else "")
            await self.refresh_controls()
            if self.screener is not None and self.screener.provider == "embedded":
                # the list file is re-read (issue 12: a list update without a restart); one that does
                # not load keeps the running list
                try:
                    result["screening_list"] = await asyncio.to_thread(self.screener.reload)
                except ValueError as exc:
                    result["screening_list_problem"] = str(exc)
                    log.error("screening list reload refused, the running list stays: %s", exc)
            return result

    def install_reload_signal(self) -> None:
        """SIGHUP reloads the configuration (`kill -HUP <pid>`, a Kubernetes ConfigMap change with
        a reloader). Each reload runs as its own task; one at a time."""

        def on_hup() -> None:
            task = asyncio.create_task(self.reload_config(actor="signal SIGHUP"), name="config-reload")
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)

        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hup)
        self._hup_installed = True

    async def _checkpoint_forever(self) -> None:
        """Runs until cancelled: keeps the SQLite WAL short without blocking the loop."""
        while True:
            await asyncio.sleep(limits.sqlite_checkpoint_interval_s)
            await self.store.checkpoint()

    # ------------------------------------------------------------------ observability
    def partitions_assigned(self) -> bool:
        return self._consumer is not None and self._consumer.assigned.is_set()

    def kafka_ready(self) -> bool:
        """The Kafka edge runs and the broker answered the last probe (cached: no round trip)."""
        return self._started and self._consumer_task is not None and not self._consumer_task.done() and self.broker_reachable

    async def _database_ready(self) -> bool:
        try:
            async with asyncio.timeout(limits.database_probe_timeout_s):
                return await self.store.ping()
        except TimeoutError:
            return False

    async def refresh_gauges(self) -> None:
        """The gauges that are read from the database: unsent outbox rows, open and stuck payments."""
        open_states = [PaymentState.SUBMITTED, PaymentState.ACCEPTED, PaymentState.TIMED_OUT]
        async with self.store.reader() as uow:
            pending = await uow.outbox_pending_count()
            counts = await uow.open_counts(open_states)
            cases = await uow.case_counts([s.value for s in CASE_NOT_CLOSED])
            breaks = await uow.break_counts()
            recent = {p: await uow.cycles_list(p, 10) for p in self.deps.calendars}
            # issue 12: screening holds waiting for a decision (a few rows), and those past half their deadline
            held_count = await uow.holds_open_count()
            held = await uow.holds_list(True, 500) if held_count else []
        self.metrics.screening_held.set(held_count)
        self.metrics.screening_held_overdue.set(sum(1 for h in held if self.clock() >= h.held_at + (h.deadline_at - h.held_at) / 2))
        for kind in ("partner", "status"):
            self.metrics.outbox_pending.labels(kind).set(pending.get(kind, 0))
        for partner in self.deps.mappings:
            in_flight = counts.get((partner, "SUBMITTED"), 0) + counts.get((partner, "ACCEPTED"), 0)
            self.metrics.in_flight.labels(partner).set(in_flight)
            self.metrics.stuck.labels(partner).set(counts.get((partner, "TIMED_OUT"), 0))
        for kind in CaseKind:
            for state in CASE_NOT_CLOSED:
                self.metrics.cases_open.labels(kind.value, state.value).set(cases.get((kind.value, state.value), 0))
        now = self.clock()
        for rate in self.deps.quoter.book.in_force():  # issue 11: how old each pair's newest rate is
            self.metrics.fx.rate_age.labels(f"{rate.base}_{rate.quote}").set(max(0.0, (now - rate.as_of).total_seconds()))
        for partner in self.deps.calendars:  # issue 10: open breaks, reports past their due time
            for b_kind in BreakKind:
                open_n = sum(n for (p, k, st), n in breaks.items() if p == partner and k == b_kind.value and st in BREAK_NOT_CLOSED)
                self.metrics.recon_breaks_open.labels(partner, b_kind.value).set(open_n)
            due_s = self.deps.mappings[partner].profile.settlement.report_due_s
            late = [c for c in recent[partner] if c.state == CYCLE_CLOSED and settlement_due_at(c, due_s) < now]
            self.metrics.reports_late.labels(partner).set(len(late))

    async def readiness(self) -> tuple[dict[str, bool], dict[str, Any]]:
        """What /readyz reports: the database answers (bounded) and the Kafka edge runs with the
        broker answering its probe. partitions_assigned:
        this replica consumes instructions now (one without partitions still serves partner
        callbacks and its relay and timers, so that does not make it unready)."""
        checks = {"database": await self._database_ready(), "kafka": self.kafka_ready()}
        return checks, {
            "partitions_assigned": self.partitions_assigned(),
            "replica": self.replica_id,
            "insecure_dev": self.config.security.insecure_dev,
            # partners whose messages are signed both ways; [] with --insecure-dev (said loudly)
            "signatures": sorted(self.signing.counterparts) if self.signing is not None else [],
            "kafka_signatures": self.key_ring is not None,  # false only with --insecure-dev
        }

    def backlog(self) -> int:
        """Work accepted but not yet delivered, in memory (for draining and the demo)."""
        return self.relay.backlog() + self.bus.pending()

    # ------------------------------------------------------------------ lifecycle
    async def stop(self, *, drain_s: float = limits.shutdown_drain_s_max, grace_s: float | None = None) -> None:
        """Stop taking work, finish what is in flight (for at most `drain_s`), then close
        everything, all within `grace_s` (default [switch] shutdown_grace_s), even with the broker
        or a partner gone: each step gets what is left of the grace, and the clients are closed in
        the last limits.shutdown_close_s_min of it. Whatever is not delivered by then stays in the
        outbox, due for the relay of whichever replica comes next (its lease runs out)."""
        if not self._started:
            return
        if self._hup_installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._hup_installed = False
        loop = asyncio.get_running_loop()
        grace = self.config.switch.shutdown_grace_s if grace_s is None else grace_s
        began = loop.time()
        self._close_by = began + grace - 0.5  # a margin for what runs after the last client closed
        drain_by = began + max(0.0, grace - limits.shutdown_close_s_min)
        if self._consumer is not None:
            self._consumer.stop_soon()  # it commits what it processed and leaves its group
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._consumer_task),
                                       timeout=max(0.0, min(limits.shutdown_drain_s_max, drain_by - loop.time())))
        deadline = min(loop.time() + drain_s, drain_by)
        # with the broker gone (the last probe), events cannot be published: they stay in the
        # outbox, and only the partners' deliveries are waited for
        while self.relay.backlog(kafka=self.broker_reachable) + self.bus.pending() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await self.relay.drain(max(0.0, deadline - loop.time()), kafka=self.broker_reachable)
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self._started = False
        self._close_by = None
        log.info("stopped in %.1f s (grace %g s)", loop.time() - began, grace)

    async def wait_failed(self) -> None:
        """Return when any long-running task ends on its own (which is a failure)."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        raise RuntimeError(f"task {next(iter(done)).get_name()} stopped")
