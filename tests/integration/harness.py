"""A running switch for integration tests: one partner's simulator (PromptPay unless told
otherwise) and the switch in this process, on their own topics and consumer group of the
session's Tansu broker. Partner traffic is mutual TLS with the session's development PKI
(conftest.py `pki_dir`, found through MEKONG_PKI_DIR), and every ISO message goes as a business
message signed with the sender's development signing key (`signed_as` signs one as a partner
would); /v1, /metrics and /readyz are on the switch's operations port (`Running.url`), TLS too:
`Running.ops_session()` or, per request, `ssl=Running.ops_ssl()` trust it and present a
development client certificate. Records the tests publish are signed by the participant they
come from with that PKI's participant keys (`signed`), as the switch requires."""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from adapters.base import load_profile
from adapters.simulator import SIMULATORS, PartnerSimulator, SimBehaviour
from iso20022.schemas import SchemaSet, default_schema_dir
from switch import config as config_mod
from switch.broker import restartable_port, free_port
from switch.config import ApiToken, SwitchConfig
from switch.entrypoints.api_auth import new_token, token_hash
from switch.entrypoints.main import Switch
from switch.broker import TansuBroker
from switch.signing import Sealer, load_simulator_signing
from switch.store.sql_store import Store
from switch.tls import load_simulator_tls, ops_client_context
from switch.tools.signer import ParticipantSigners

DEFAULT_SENDER = "ACLBKHPPXXX"  # who signs a record that names no participant of its own (hostile bytes)

HUB_BIC = "NBCAKHPPXXX"  # config/switch.toml agent_bic


def pki_dir() -> Path:
    """The session's development PKI (tests/integration/conftest.py makes it)."""
    return Path(os.environ["MEKONG_PKI_DIR"])


@functools.cache
def _signers(directory: Path) -> ParticipantSigners:
    return ParticipantSigners.from_pki(directory)


def signers() -> ParticipantSigners:
    """The participants' private keys of the session's PKI."""
    return _signers(pki_dir())


def signed(value: bytes | None, participant: str | None = None) -> list[tuple[str, bytes]]:
    """The signature headers for `value`, signed by `participant`, or by the participant the
    JSON record names (DEFAULT_SENDER for bytes that name none)."""
    if participant is not None:
        return signers().headers(participant, value)
    return signers().headers_as_named(value, default=DEFAULT_SENDER)


def partner_session(partner: str) -> aiohttp.ClientSession:
    """An HTTP client that presents `partner`'s certificate and trusts the hub's (as its network would)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=load_simulator_tls(pki_dir(), partner).client))


def partner_signing(partner: str, config_dir: Path | None = None) -> Sealer:
    """`partner`'s side of signed business messages (its development signing key), as its simulator has it."""
    profile = load_profile(Path(config_dir or config_mod.DEFAULT_CONFIG_DIR) / "partners" / f"{partner}.toml")
    assert profile.signing is not None, f"{partner}'s profile has no [signing]"
    return load_simulator_signing(pki_dir(), partner, profile.signing, hub_bic=HUB_BIC)


def signed_as(partner: str, document: bytes, *, now: datetime | None = None) -> bytes:
    """`document` as `partner` sends it: in a business message signed with its key (CreDt `now`)."""
    from switch.signing import HUB

    return partner_signing(partner).seal(HUB, document, now=now or datetime.now(timezone.utc))


@dataclass
class Running:
    switch: Switch
    sim: PartnerSimulator
    config: SwitchConfig
    sim_port: int
    others: list[Switch] = field(default_factory=list)  # more replicas on the same database and group
    tokens: dict[str, str] = field(default_factory=dict)  # role -> a bearer token made for this run
    _ops_contexts: dict[str | None, ssl.SSLContext] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The operations port: /v1, /metrics, /readyz (TLS unless --insecure-dev)."""
        scheme = "http" if self.config.security.insecure_dev else "https"
        return f"{scheme}://127.0.0.1:{self.switch.ops_port}"

    def ops_ssl(self, client: str | None = "monitor") -> ssl.SSLContext | bool:
        """TLS to the operations port: its CA trusted, presenting the development client
        certificate `client` (operator, auditor, monitor, a participant's code; None: none). By
        default the monitor's, which may read /metrics and nothing else: a /v1 call sends a token
        (`auth`), which decides."""
        if self.config.security.insecure_dev:
            return True  # plain HTTP: nothing to set up
        if client not in self._ops_contexts:
            self._ops_contexts[client] = ops_client_context(pki_dir(), client)
        return self._ops_contexts[client]

    def ops_session(self, client: str | None = "monitor") -> aiohttp.ClientSession:
        """An HTTP client for the operations port (see ops_ssl)."""
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ops_ssl(client)))

    @property
    def partner_url(self) -> str:
        """The partner port (mutual TLS unless --insecure-dev): + /iso20022/<partner>."""
        scheme = "http" if self.config.security.insecure_dev else "https"
        return f"{scheme}://127.0.0.1:{self.switch.http_port}"

    @property
    def auth(self) -> dict[str, str]:
        """The operator's Authorization header, for the /v1 API."""
        return self.auth_as("operator")

    def auth_as(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


# The roles the harness makes a token for (secrets made per run, never stored)
TEST_ROLES = ("operator", "auditor", "participant:ACLBKHPPXXX", "participant:ABAAKHPPXXX")


def make_secrets() -> tuple[dict[str, str], tuple[ApiToken, ...], str]:
    """Fresh API tokens per role (and their hashes as the config holds them) and a PAN key."""
    tokens = {role: new_token() for role in TEST_ROLES}
    entries = tuple(ApiToken(name=f"test-{i}", role=role, sha256=token_hash(t)) for i, (role, t) in enumerate(tokens.items()))
    return tokens, entries, os.urandom(32).hex()


@asynccontextmanager
async def running_switch(
    broker: TansuBroker,
    store: Store,
    behaviour: SimBehaviour | None = None,
    *,
    partner_up: bool = True,
    confirm_timeout_s: float | None = None,
    partner: str = "promptpay",
    timing: dict[str, float] | None = None,
    partner_urls: Mapping[str, str] | None = None,
    replicas: int = 1,
    config_dir: Path | None = None,
    sim_certificate_of: str | None = None,
    insecure_dev: bool = False,
    settlement_every_s: float | None = None,
    sim_reports: bool = True,
) -> AsyncIterator[Running]:
    """Simulator + switch in this process, on their own topics and consumer group. With
    `partner_up=False` the simulator is built but not started: the partner is unreachable.
    `partner` picks the network whose simulator runs (promptpay, lapnet, napas, unionpay);
    `partner_urls` points other partners at servers the test runs itself; `timing` overrides the
    partner profile's sla_s / resend_after_s / timeout_s (short drills). `replicas` > 1 (PostgreSQL)
    starts more switches on the same database and consumer group, each with its own store
    (connection pool) and HTTP port; the partner calls the first one back. `config_dir` replaces
    the shipped configuration; `sim_certificate_of` makes the simulator present another
    network's certificates (an impostor at the partner's address); `insecure_dev` runs both
    without TLS (`mekong run --insecure-dev`)."""
    tag = uuid.uuid4().hex[:8]
    sim_port, http_port = restartable_port(), free_port()  # the simulator may be stopped and started again
    scheme = "http" if insecure_dev else "https"
    base = config_mod.load(
        config_dir,
        env={
            "MEKONG_KAFKA_BOOTSTRAP": broker.bootstrap_servers,
            "MEKONG_HTTP_PORT": str(http_port),
            "MEKONG_OPS_PORT": "0",
            "MEKONG_PKI_DIR": str(pki_dir()),
            "MEKONG_INSECURE_DEV": "1" if insecure_dev else "0",
            f"MEKONG_PARTNER_URL_{partner.upper()}": f"{scheme}://127.0.0.1:{sim_port}",
            **{f"MEKONG_PARTNER_URL_{p.upper()}": url for p, url in (partner_urls or {}).items()},
        }
    )
    kafka = base.kafka.model_copy(
        update={
            "group_id": f"switch-{tag}",
            "instructions_topic": f"instructions-{tag}",
            "status_topic": f"status-{tag}",
            "inbound_topic": f"inbound-{tag}",
            "inbound_replies_topic": f"replies-{tag}",
            "requests_topic": f"requests-{tag}",
            "statements_topic": f"statements-{tag}",
            "quotes_topic": f"quotes-{tag}",
            "dlq_topic": f"dlq-{tag}",
            "partitions": 2,
        }
    )
    tokens, token_entries, pan_key = make_secrets()
    if settlement_every_s is not None:
        timing = {**(timing or {}), "settlement_every_s": settlement_every_s}
    cfg = base.model_copy(update={"kafka": kafka, "partner_timing": {partner: timing} if timing else {}})
    cfg = cfg.model_copy(update={"api_tokens": token_entries, "pan_key": SecretStr(pan_key)})
    if confirm_timeout_s is None and timing and "sla_s" in timing:  # the answer must beat a short SLA
        confirm_timeout_s = min(r.confirm_timeout_s for r in cfg.inbound_routes) if cfg.inbound_routes else None
        confirm_timeout_s = min(confirm_timeout_s or timing["sla_s"] / 2, timing["sla_s"] / 2)
    if confirm_timeout_s is not None:  # inbound: how long the participant has to answer
        routes = tuple(r.model_copy(update={"confirm_timeout_s": confirm_timeout_s}) for r in cfg.inbound_routes)
        cfg = cfg.model_copy(update={"inbound_routes": routes})
    schemas = SchemaSet(Path(default_schema_dir()))
    profile = load_profile(Path(cfg.config_dir) / "partners" / f"{partner}.toml")
    calendar = None
    if settlement_every_s is not None and sim_reports:
        calendar = profile.settlement_calendar(
            Path(cfg.config_dir), env={f"MEKONG_PARTNER_SETTLEMENT_EVERY_S_{partner.upper()}": f"{settlement_every_s:g}"}
        )
    sim = SIMULATORS[partner](
        profile,
        schemas,
        callback_url=f"{scheme}://127.0.0.1:{http_port}/iso20022/{partner}",
        behaviour=behaviour,
        tls=None if insecure_dev else load_simulator_tls(pki_dir(), sim_certificate_of or partner),
        signing=None if insecure_dev else partner_signing(partner, config_dir),
        calendar=calendar,
    )
    if partner_up:
        await sim.start(port=sim_port)
    sw = Switch(cfg, store=store)
    await sw.start()
    others: list[Switch] = []
    extra_stores: list[Store] = []
    try:
        for _ in range(replicas - 1):
            extra = Store(store.url, pg_schema=store.pg_schema)
            await extra.start(migrate=False)
            extra_stores.append(extra)
            other_cfg = cfg.model_copy(update={"http": cfg.http.model_copy(update={"port": free_port()})})
            other = Switch(other_cfg, store=extra)
            await other.start()
            others.append(other)
        yield Running(sw, sim, cfg, sim_port, others, tokens)
    finally:
        for other in others:
            await other.stop()
        for extra in extra_stores:
            await extra.close()
        await sw.stop()
        await sim.stop()


async def topic_partitions(consumer: Any, topic: str) -> set[int]:
    """The topic's partitions, from fresh cluster metadata: a consumer just started may not have
    fetched the topic yet, and guessing (say partitions 0 and 1) misses records on the others."""
    for _ in range(50):
        await consumer.topics()  # a metadata request for every topic
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await asyncio.sleep(0.1)
    raise AssertionError(f"the broker does not know topic {topic}")
