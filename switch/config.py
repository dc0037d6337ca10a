"""The switch's configuration: reviewed TOML files in a config directory, validated at load.

Layout of the directory (the shipped one is `config/` at the project root):
  switch.toml        the switch itself: identity, Kafka, database, HTTP
  participants.toml  Bakong participants allowed to send instructions
  corridors.toml     which partner serves which route, currencies, limits, fees, spread
  inbound.toml       partner networks paying Bakong customers, and the mobile-number directory
  partners/*.toml    one partner profile per network (adapters/<partner>/profile.py reads them)
  fx.toml            rates for the static provider (fx/config.py)
  operators.toml     who may call the HTTP API (/v1, /metrics): name, role and the SHA-256 of each
                     bearer token (never the token), and the client certificates (subject CN / SPKI
                     pin -> role); production gives its own file in MEKONG_API_TOKENS_FILE

Environment overrides (documented in the README): MEKONG_CONFIG_DIR, MEKONG_KAFKA_BOOTSTRAP,
MEKONG_DATABASE_URL, MEKONG_HTTP_HOST, MEKONG_HTTP_PORT, MEKONG_OPS_HOST, MEKONG_OPS_PORT, MEKONG_PUBLIC_URL, MEKONG_SCHEMA_DIR,
MEKONG_PKI_DIR, MEKONG_INSECURE_DEV (1: plain HTTP with the partners and on the operations port, unsigned Kafka records let in, development only),
MEKONG_PARTNER_URL_<PARTNER> (e.g. MEKONG_PARTNER_URL_PROMPTPAY).
Secrets come only from the environment, never from the reviewed files: MEKONG_API_TOKENS_FILE
(the API tokens file, replacing operators.toml), MEKONG_PAN_KEY_FILE (a file holding the card-number
token key, 64+ hex digits) or MEKONG_PAN_KEY (the same, inline; the file is preferred),
MEKONG_KAFKA_SASL_PASSWORD_FILE or MEKONG_KAFKA_SASL_PASSWORD (the switch's password at a broker
that requires SASL/SCRAM).
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import cached_property
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from switch import limits
from switch.domain.money import CURRENCIES, Money
from switch.domain.rate_limit import Rate

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = PROJECT_ROOT / "config"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaConfig(_Model):
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "mekong-switch"
    client_id: str = "mekong-switch"
    instructions_topic: str = "mekong.instructions"
    status_topic: str = "mekong.status"
    inbound_topic: str = "mekong.inbound"
    inbound_replies_topic: str = "mekong.inbound.replies"
    dlq_topic: str = "mekong.dlq"
    requests_topic: str = "mekong.requests"  # participants' returns, recalls and recall answers (issue 9)
    statements_topic: str = "mekong.statements"  # each cycle's settlement statement per participant (issue 10)
    partitions: int = Field(default=4, ge=1)  # used when the switch creates missing topics
    # at start: how long the broker may take to answer before `mekong run` names it and exits 1
    # (MEKONG_KAFKA_CONNECT_TIMEOUT_S; issue 11)
    connect_timeout_s: float = Field(default=limits.kafka_connect_timeout_s_default, gt=0, le=300)
    # How the switch's own clients authenticate to the broker (README "Broker authentication and
    # ACLs"). PLAINTEXT: none (Tansu in development). SASL_*: SCRAM with `sasl_username` and the
    # password from MEKONG_KAFKA_SASL_PASSWORD_FILE (or MEKONG_KAFKA_SASL_PASSWORD). SSL/SASL_SSL:
    # TLS trusting `ssl_cafile` (default: the system's CAs); with `ssl_certfile` + `ssl_keyfile`
    # the switch presents a client certificate (mutual TLS). Paths are relative to the PKI dir.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = Field(default=None, min_length=1)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @model_validator(mode="after")
    def _security_settings_agree(self) -> "KafkaConfig":
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and (self.sasl_mechanism is None or self.sasl_username is None):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism and sasl_username")
        if not sasl and (self.sasl_mechanism is not None or self.sasl_username is not None):
            raise ValueError(f"sasl_mechanism / sasl_username are for SASL_PLAINTEXT or SASL_SSL, not {self.security_protocol}")
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        if not tls and any(f is not None for f in (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile)):
            raise ValueError(f"ssl_* files are for SSL or SASL_SSL, not {self.security_protocol}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (a client certificate and its key)")
        return self


class HttpConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # the partner port: /iso20022/{partner} only, mutual TLS
    public_url: str | None = None  # what partners call back; default https://host:port
    # the operations port: /v1/*, /metrics, /healthz, /readyz; TLS with client certificates asked for
    # (switch/tls.py load_ops_tls), plain HTTP only with insecure_dev; loopback by default
    ops_host: str = "127.0.0.1"
    ops_port: int = Field(default=8090, ge=0, le=65535)


class SecurityConfig(_Model):
    # certificates and keys (the layout `mekong pki init` writes); relative: to the project root
    pki_dir: str = "pki"
    # development only, reported loudly: plain HTTP with the partners and on the operations port,
    # no client certificates, and Kafka records admitted without their signatures being checked
    # (switch/kafka_auth.py)
    insecure_dev: bool = False

    def pki_path(self) -> Path:
        path = Path(self.pki_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path


class SwitchSection(_Model):
    name: str = "Mekong Switch"
    agent_bic: str = Field(pattern=r"^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")
    country: str = Field(pattern=r"^[A-Z]{2}$")
    database_url: str = "sqlite+aiosqlite:///mekong.db"
    schema_dir: str | None = None
    # SIGTERM: the whole shutdown (stop consuming, drain, close) ends within this; what is not
    # delivered by then stays in the outbox (MEKONG_SHUTDOWN_GRACE_S; issue 11)
    shutdown_grace_s: float = Field(default=limits.shutdown_grace_s_default, gt=limits.shutdown_close_s_min,
                                    le=limits.shutdown_grace_s_max)


class SwitchFile(_Model):
    switch: SwitchSection
    kafka: KafkaConfig = KafkaConfig()
    http: HttpConfig = HttpConfig()
    security: SecurityConfig = SecurityConfig()


class ParticipantKey(_Model):
    """A public key a participant signs its Kafka records with (Ed25519; switch/kafka_auth.py).
    Exactly one of `public_key_file` (PEM SubjectPublicKeyInfo, relative to the PKI directory, as
    `mekong pki init` writes participants/<code>.pub) or `public_key` (base64 of the 32 raw bytes).
    `id` is derived from the key (the first 16 hex digits of the SHA-256 of its raw bytes); when
    given it must match, so a replaced file stops the switch at start. `not_after`: the key signs
    nothing after this instant (with a UTC offset), for a rotation with a deadline."""

    id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    public_key_file: str | None = Field(default=None, min_length=1)
    public_key: str | None = Field(default=None, min_length=1)
    not_after: datetime | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "ParticipantKey":
        if (self.public_key_file is None) == (self.public_key is None):
            raise ValueError("give exactly one of public_key_file or public_key")
        if self.not_after is not None and self.not_after.utcoffset() is None:
            raise ValueError("not_after needs a UTC offset, e.g. 2027-01-31T00:00:00Z")
        return self


class ParticipantLimits(_Model):
    """A participant's abuse limit on Kafka (issue 8 item 6): how many instructions it may publish
    a second on average (`instructions_per_s`; each transaction of a pain.001 counts) and at once
    (`burst`); more are refused (reason SL15) and dead-lettered `rate_limited`. Unset values take
    the defaults of switch/limits.py."""

    instructions_per_s: int = Field(default=limits.participant_instructions_per_s_default, ge=1, le=limits.rate_per_s_max)
    burst: int = Field(default=limits.participant_burst_default, ge=1, le=limits.rate_burst_max)

    def rate(self) -> Rate:
        return Rate(self.instructions_per_s, self.burst)


class Participant(_Model):
    code: str = Field(pattern=r"^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")
    name: str
    bakong_suffix: str = Field(pattern=r"^[a-z0-9_]+$")  # `name@<suffix>` accounts belong here
    currencies: tuple[str, ...]
    # the keys its Kafka records may be signed with; none: every record naming it is refused
    keys: tuple[ParticipantKey, ...] = ()
    limits: ParticipantLimits | None = None  # None: the file's [limits]


class ParticipantsFile(_Model):
    limits: ParticipantLimits = ParticipantLimits()  # every participant's, unless its entry has its own
    participants: tuple[Participant, ...]


class Corridor(_Model):
    id: str = Field(pattern=r"^[A-Z]{2}-[A-Z]{2,3}$")
    partner: str
    enabled: bool = True
    source_currencies: tuple[str, ...]
    target_currency: str
    amount_max: Mapping[str, str]  # per source currency, decimal text, one payment
    fee: Mapping[str, str] = {}  # fixed fee per source currency, decimal text
    spread_bps: int = Field(default=0, ge=0, le=1000)
    quote_validity_s: int = Field(default=600, ge=1, le=3600)
    # A partner's return (pacs.004) of a payment of this corridor is converted back to the
    # debtor's currency at the payment's original rate ("original": neither side gains from the FX
    # move, after the Nexus fairness rule) or at the rate of the day ("current"); the corridor's
    # fee is kept (`return_fee = "keep"`, it paid for a service rendered) or refunded pro rata
    # ("refund") with the returned share (issue 9)
    return_fx: Literal["original", "current"] = "original"
    return_fee: Literal["keep", "refund"] = "keep"

    @field_validator("source_currencies", "target_currency")
    @classmethod
    def _known_currency(cls, value: Any) -> Any:
        for code in (value,) if isinstance(value, str) else value:
            if code not in CURRENCIES:
                raise ValueError(f"unknown currency {code!r}")
        return value

    @model_validator(mode="after")
    def _limits_cover_currencies(self) -> "Corridor":
        for code in self.source_currencies:
            if code not in self.amount_max:
                raise ValueError(f"corridor {self.id}: no amount_max for {code}")
            Money.parse(self.amount_max[code], code)
            self._parse_fee(code)
        return self

    def amount_max_money(self, code: str) -> Money:
        return self._limits[code][0]

    def fee_money(self, code: str) -> Money:
        return self._limits[code][1]

    @cached_property
    def _limits(self) -> dict[str, tuple[Money, Money]]:
        """Per source currency: (maximum per payment, fee), parsed once."""
        return {code: (Money.parse(self.amount_max[code], code), self._parse_fee(code)) for code in self.source_currencies}

    def _parse_fee(self, code: str) -> Money:
        text = self.fee.get(code, "0")
        return Money(0, CURRENCIES[code]) if Decimal(text) == 0 else Money.parse(text, code)


class CorridorsFile(_Model):
    corridors: tuple[Corridor, ...]


class InboundRoute(_Model):
    """A partner network paying Bakong customers: which currencies it may credit, up to which
    amount, and how long the beneficiary participant has to confirm before the switch answers
    the partner with a timeout reject (AB05)."""

    id: str = Field(pattern=r"^[A-Z]{2,3}-[A-Z]{2}$")  # e.g. TH-KH
    partner: str
    enabled: bool = True
    currencies: tuple[str, ...]  # settlement currencies a Bakong account can be credited in
    amount_max: Mapping[str, str]
    confirm_timeout_s: float = Field(gt=0, le=3600)

    @model_validator(mode="after")
    def _limits_cover_currencies(self) -> "InboundRoute":
        for code in self.currencies:
            if code not in CURRENCIES:
                raise ValueError(f"inbound route {self.id}: unknown currency {code!r}")
            if code not in self.amount_max:
                raise ValueError(f"inbound route {self.id}: no amount_max for {code}")
            Money.parse(self.amount_max[code], code)
        return self

    @cached_property
    def amount_max_money(self) -> dict[str, Money]:
        return {code: Money.parse(self.amount_max[code], code) for code in self.currencies}


class DirectoryEntry(_Model):
    """A Bakong mobile number (E.164 digits, no `+`) and the account it pays into."""

    mobile: str = Field(pattern=r"^855[0-9]{8,9}$")
    account: str = Field(pattern=r"^[^@\s]+@[a-z0-9_]+$", max_length=32)


class InboundFile(_Model):
    routes: tuple[InboundRoute, ...] = ()
    directory: tuple[DirectoryEntry, ...] = ()


# The API's roles (issue 8): operator (every payment, read and act), auditor (every payment, read
# only), participant:<BIC> (its own payments only), monitor (/metrics only: what Prometheus scrapes with)
API_ROLE_PATTERN = r"^(operator|auditor|monitor|participant:[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?)$"


class ApiToken(_Model):
    """One bearer token allowed on the API: who holds it, its role, and the SHA-256 (hex) of the
    token. A fast hash is enough: tokens are 32 random bytes (`mekong tokens new`), so there is
    nothing to guess from the hash, which a slow (password) hash only protects for low-entropy
    secrets; and it is computed on every API request."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: str = Field(pattern=API_ROLE_PATTERN)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ApiCertificate(_Model):
    """A client certificate allowed on the API (the operations port's mutual TLS): who holds it,
    its role, and what names it: its subject CN and/or the SHA-256 of its SubjectPublicKeyInfo
    (lowercase hex; pin the key to tell two certificates with one name apart). The certificate
    must also be issued by the operations port's client CA (the TLS handshake checks that)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: str = Field(pattern=API_ROLE_PATTERN)
    subject_cn: str | None = Field(default=None, min_length=1, max_length=255)
    spki_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _names_a_certificate(self) -> "ApiCertificate":
        if self.subject_cn is None and self.spki_sha256 is None:
            raise ValueError(f"API certificate {self.name}: give subject_cn and/or spki_sha256")
        return self


class TokensFile(_Model):
    tokens: tuple[ApiToken, ...] = ()
    certificates: tuple[ApiCertificate, ...] = ()


PAN_KEY_PATTERN = r"^[0-9a-fA-F]{64,}$"  # at least 32 random bytes, hex


class SwitchConfig(_Model):
    """Everything the composition root needs, already overridden by the environment."""

    config_dir: str
    switch: SwitchSection
    kafka: KafkaConfig
    http: HttpConfig
    participants: tuple[Participant, ...]
    participant_limits: ParticipantLimits = ParticipantLimits()  # participants.toml [limits]
    security: SecurityConfig = SecurityConfig()
    corridors: tuple[Corridor, ...]
    inbound_routes: tuple[InboundRoute, ...] = ()
    directory: tuple[DirectoryEntry, ...] = ()
    partner_urls: Mapping[str, str] = {}  # partner id -> base URL override
    # partner id -> profile timing overrides (sla_s, resend_after_s, timeout_s), from the
    # environment (MEKONG_PARTNER_SLA_S_<PARTNER>, ...): for drills and tests with short outages
    partner_timing: Mapping[str, Mapping[str, float]] = {}
    api_tokens: tuple[ApiToken, ...] = ()  # who may call /v1 (hashes only)
    api_certificates: tuple[ApiCertificate, ...] = ()  # ... or with which client certificate
    pan_key: SecretStr | None = None  # the card-number token key (hex); never printed
    kafka_sasl_password: SecretStr | None = None  # the switch's SASL password at the broker; never printed

    @model_validator(mode="after")
    def _token_roles_name_participants(self) -> "SwitchConfig":
        for what, holder in [("API token", t) for t in self.api_tokens] + [("API certificate", c) for c in self.api_certificates]:
            code = holder.role.removeprefix("participant:")
            if code != holder.role and self.participant(code) is None:
                raise ValueError(f"{what} {holder.name}: {code} is not a participant of this switch")
        if len({t.sha256 for t in self.api_tokens}) != len(self.api_tokens):
            raise ValueError("two API tokens share one hash")
        names = [(c.subject_cn, c.spki_sha256) for c in self.api_certificates]
        if len(set(names)) != len(names):
            raise ValueError("two API certificates are named alike (subject_cn and spki_sha256)")
        if self.pan_key is not None:
            if not re.fullmatch(PAN_KEY_PATTERN, self.pan_key.get_secret_value()):
                raise ValueError("the PAN key must be at least 64 hex digits (32 random bytes)")
        if self.kafka.security_protocol.startswith("SASL_") and self.kafka_sasl_password is None:
            raise ValueError(f"[kafka] security_protocol {self.kafka.security_protocol}: set MEKONG_KAFKA_SASL_PASSWORD_FILE "
                             "(or MEKONG_KAFKA_SASL_PASSWORD)")
        return self

    def corridor(self, corridor_id: str) -> Corridor | None:
        return self._corridors_by_id.get(corridor_id)

    def participant(self, code: str) -> Participant | None:
        return self._participants_by_code.get(code)

    def participant_rates(self) -> dict[str, Rate]:
        """Each participant's instruction rate (its own [limits], else the file's)."""
        return {p.code: (p.limits or self.participant_limits).rate() for p in self.participants}

    def inbound_route(self, partner: str) -> InboundRoute | None:
        """The enabled inbound route a partner pays Bakong customers through."""
        return self._inbound_by_partner.get(partner)

    def participant_by_suffix(self, suffix: str) -> Participant | None:
        return self._participants_by_suffix.get(suffix)

    def account_of_mobile(self, mobile: str) -> str | None:
        return self._directory.get(mobile)

    @cached_property
    def _inbound_by_partner(self) -> dict[str, InboundRoute]:
        return {r.partner: r for r in self.inbound_routes if r.enabled}

    @cached_property
    def _participants_by_suffix(self) -> dict[str, Participant]:
        return {p.bakong_suffix: p for p in self.participants}

    @cached_property
    def _directory(self) -> dict[str, str]:
        return {e.mobile: e.account for e in self.directory}

    @cached_property
    def _corridors_by_id(self) -> dict[str, Corridor]:
        return {c.id: c for c in self.corridors}

    @cached_property
    def _participants_by_code(self) -> dict[str, Participant]:
        return {p.code: p for p in self.participants}

    @property
    def public_url(self) -> str:
        scheme = "http" if self.security.insecure_dev else "https"
        return self.http.public_url or f"{scheme}://{self.http.host}:{self.http.port}"


PARTNER_TIMING_FIELDS = ("sla_s", "resend_after_s", "timeout_s", "enquire_after_s", "enquiry_interval_s_max")
# the recall timings too (MEKONG_PARTNER_RECALL_SLA_S_<PARTNER>, ...): the demo shortens them
PARTNER_TIMING_FIELDS += ("recall_sla_s", "recall_chase_after_s", "recall_reply_s")
# and the settlement cycle (MEKONG_PARTNER_SETTLEMENT_EVERY_S_<PARTNER>): the demo's short cycles,
# [settlement] every_s in the profile (issue 10)
PARTNER_TIMING_FIELDS += ("settlement_every_s",)


def _read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def load(config_dir: str | Path | None = None, env: Mapping[str, str] | None = None) -> SwitchConfig:
    """Load and validate the config directory, then apply environment overrides."""
    env = os.environ if env is None else env
    directory = Path(config_dir or env.get("MEKONG_CONFIG_DIR") or DEFAULT_CONFIG_DIR)
    base = SwitchFile.model_validate(_read_toml(directory / "switch.toml"))
    participants = ParticipantsFile.model_validate(_read_toml(directory / "participants.toml"))
    corridors = CorridorsFile.model_validate(_read_toml(directory / "corridors.toml"))
    inbound_path = directory / "inbound.toml"
    inbound = InboundFile.model_validate(_read_toml(inbound_path)) if inbound_path.exists() else InboundFile()
    switch = SwitchSection.model_validate(  # validated again: an override is checked like the file
        {
            **base.switch.model_dump(),
            **{
                k: v
                for k, v in {
                    "database_url": env.get("MEKONG_DATABASE_URL"),
                    "schema_dir": env.get("MEKONG_SCHEMA_DIR"),
                    "shutdown_grace_s": env.get("MEKONG_SHUTDOWN_GRACE_S"),
                }.items()
                if v
            },
        }
    )
    kafka_updates: dict[str, Any] = {}
    if env.get("MEKONG_KAFKA_BOOTSTRAP"):
        kafka_updates["bootstrap_servers"] = env["MEKONG_KAFKA_BOOTSTRAP"]
    if env.get("MEKONG_KAFKA_CONNECT_TIMEOUT_S"):
        kafka_updates["connect_timeout_s"] = env["MEKONG_KAFKA_CONNECT_TIMEOUT_S"]
    kafka = KafkaConfig.model_validate({**base.kafka.model_dump(), **kafka_updates})
    http_updates: dict[str, Any] = {}
    if env.get("MEKONG_HTTP_HOST"):
        http_updates["host"] = env["MEKONG_HTTP_HOST"]
    if env.get("MEKONG_HTTP_PORT"):
        http_updates["port"] = int(env["MEKONG_HTTP_PORT"])
    if env.get("MEKONG_OPS_HOST"):
        http_updates["ops_host"] = env["MEKONG_OPS_HOST"]
    if env.get("MEKONG_OPS_PORT"):
        http_updates["ops_port"] = int(env["MEKONG_OPS_PORT"])
    if env.get("MEKONG_PUBLIC_URL"):
        http_updates["public_url"] = env["MEKONG_PUBLIC_URL"]
    http = HttpConfig.model_validate({**base.http.model_dump(), **http_updates})
    security_updates: dict[str, Any] = {}
    if env.get("MEKONG_PKI_DIR"):
        security_updates["pki_dir"] = env["MEKONG_PKI_DIR"]
    if env.get("MEKONG_INSECURE_DEV"):
        security_updates["insecure_dev"] = env["MEKONG_INSECURE_DEV"].strip().lower() in ("1", "true", "yes")
    security = SecurityConfig.model_validate({**base.security.model_dump(), **security_updates})
    partner_urls = {
        key.removeprefix("MEKONG_PARTNER_URL_").lower(): value
        for key, value in env.items()
        if key.startswith("MEKONG_PARTNER_URL_") and value
    }
    partner_timing: dict[str, dict[str, float]] = {}
    for key, value in env.items():
        for field in PARTNER_TIMING_FIELDS:
            prefix = f"MEKONG_PARTNER_{field.upper()}_"
            if key.startswith(prefix) and value:
                partner_timing.setdefault(key.removeprefix(prefix).lower(), {})[field] = float(value)
    tokens_file = env.get("MEKONG_API_TOKENS_FILE")
    tokens_path = Path(tokens_file) if tokens_file else directory / "operators.toml"
    if tokens_file and not tokens_path.is_file():
        raise ValueError(f"MEKONG_API_TOKENS_FILE names no file: {tokens_path}")
    api_file = TokensFile.model_validate(_read_toml(tokens_path)) if tokens_path.exists() else TokensFile()
    pan_key = env.get("MEKONG_PAN_KEY")
    if env.get("MEKONG_PAN_KEY_FILE"):
        pan_key = Path(env["MEKONG_PAN_KEY_FILE"]).read_text(encoding="ascii").strip()
    sasl_password = env.get("MEKONG_KAFKA_SASL_PASSWORD")
    if env.get("MEKONG_KAFKA_SASL_PASSWORD_FILE"):
        sasl_password = Path(env["MEKONG_KAFKA_SASL_PASSWORD_FILE"]).read_text(encoding="utf-8").rstrip("\r\n")
    return SwitchConfig(
        api_tokens=api_file.tokens,
        api_certificates=api_file.certificates,
        pan_key=SecretStr(pan_key) if pan_key else None,
        kafka_sasl_password=SecretStr(sasl_password) if sasl_password else None,
        config_dir=str(directory),
        partner_timing=partner_timing,
        switch=switch,
        kafka=kafka,
        http=http,
        security=security,
        participants=participants.participants,
        participant_limits=participants.limits,
        corridors=corridors.corridors,
        inbound_routes=inbound.routes,
        directory=inbound.directory,
        partner_urls=partner_urls,
    )
