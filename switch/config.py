"""The switch's configuration: reviewed TOML files in a config directory, validated at load.

Layout of the directory (the shipped one is `config/` at the project root):
  switch.toml        the switch itself: identity, Kafka, database, HTTP
  participants.toml  Bakong participants allowed to send instructions
  corridors.toml     which partner serves which route, currencies, limits, fees, spread
  inbound.toml       partner networks paying Bakong customers, and the mobile-number directory
  compliance.toml    the party data each corridor and inbound route requires (issue 12, FATF R16)
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

import contextlib
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Literal, Mapping, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from switch import limits
from switch.config_lines import TomlLines
from switch.domain.compliance import CREDITOR_NEEDS, Need, Requirements
from switch.domain.corridor_rules import OperatingHours, TierLimits, hours_from_table, zone
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
    quotes_topic: str = "mekong.quotes"  # answers to participants' quote requests (issue 11)
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


class ScreeningConfig(_Model):
    """The sanctions-screening step (issue 12), switch.toml [screening]. Every payment's parties
    are screened at admission (outbound) and booking (inbound); a possible match holds the
    payment until an operator releases or rejects it (RR04), at the latest `hold_deadline_s`
    after it was held (then rejected RR04: fail closed)."""

    enabled: bool = True
    provider: Literal["embedded", "yente"] = "embedded"
    # embedded: a FollowTheMoney entity list (JSON lines, as OpenSanctions exports it); relative:
    # to the config directory. Reloaded with the configuration (SIGHUP, POST /v1/config/reload).
    list_path: str = "screening/demo-list.ftm.json"
    threshold: float = Field(default=0.7, gt=0, le=1)  # a score at or above it holds the payment
    # yente (or a compatible API): POST {url}/match/{dataset}?algorithm=...&threshold=...
    url: str | None = None  # MEKONG_SCREENING_URL overrides
    dataset: str = "default"
    algorithm: str = "logic-v2"
    timeout_s: float = Field(default=2.0, gt=0, le=30)
    hold_deadline_s: float = Field(default=14400, gt=0, le=7 * 86400)  # an operator decides within it


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
    screening: ScreeningConfig = ScreeningConfig()


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
    # issue 11 (FX quotes): a percentage fee on top of the fixed `fee` (bps of the source amount),
    # and which side the amounts' rounding favours: "switch" (the liquidity provider: the
    # customer never gets a fraction more than the rate gives) or "customer" (docs/operations/fx-quotes.md)
    fee_bps: int = Field(default=0, ge=0, le=1000)
    rounding_favours: Literal["switch", "customer"] = "switch"
    quote_validity_s: int = Field(default=600, ge=1, le=3600)
    # A partner's return (pacs.004) of a payment of this corridor is converted back to the
    # debtor's currency at the payment's original rate ("original": neither side gains from the FX
    # move, after the Nexus fairness rule) or at the rate of the day ("current"); the corridor's
    # fee is kept (`return_fee = "keep"`, it paid for a service rendered) or refunded pro rata
    # ("refund") with the returned share (issue 9)
    return_fx: Literal["original", "current"] = "original"
    return_fee: Literal["keep", "refund"] = "keep"
    # Operating hours (issue 11): windows per weekday ("mon".."sun" -> ["08:00-17:00", ...]) in
    # `timezone`; a weekday not listed is closed. No `hours`: open 24/7 (instant payments).
    # `holidays`: a calendar file (relative to the config directory, config/calendars/*.toml)
    # whose holidays close the corridor all day (local dates in `timezone`).
    timezone: str | None = None
    hours: Mapping[str, tuple[str, ...]] | None = None
    holidays: str | None = None
    # the debtor tier (corridors.toml [tiers.<name>]) of an instruction that names none
    default_tier: str | None = None
    # the compliance profile (compliance.toml [profiles.<name>], issue 12): the party data its
    # payments must carry; None: no data rule beyond the contract's
    compliance: str | None = None

    @field_validator("source_currencies", "target_currency")
    @classmethod
    def _known_currency(cls, value: Any) -> Any:
        for code in (value,) if isinstance(value, str) else value:
            if code not in CURRENCIES:
                raise ValueError(f"unknown currency {code!r}")
        return value

    @model_validator(mode="after")
    def _limits_cover_currencies(self) -> "Corridor":
        if (self.hours is not None or self.holidays is not None) and self.timezone is None:
            raise ValueError(f"corridor {self.id}: hours and holidays need a timezone (e.g. Asia/Phnom_Penh)")
        if self.timezone is not None:
            zone(self.timezone)
        if self.hours is not None:
            hours_from_table(self.timezone or "UTC", self.hours, frozenset())  # the windows read
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


class Tier(_Model):
    """A debtor tier (issue 11): the most one payment (`tx_max`) and one debtor's payments of one
    corridor in a day (`day_max`) may be, per source currency, decimal text. A currency not
    listed has no such limit of the tier (the corridor's amount_max still holds)."""

    tx_max: Mapping[str, str] = {}
    day_max: Mapping[str, str] = {}

    @model_validator(mode="after")
    def _amounts(self) -> "Tier":
        for table in (self.tx_max, self.day_max):
            for code, text in table.items():
                if code not in CURRENCIES:
                    raise ValueError(f"unknown currency {code!r}")
                Money.parse(text, code)
        return self

    def limits(self, name: str, code: str) -> TierLimits:
        tx, day = self.tx_max.get(code), self.day_max.get(code)
        return TierLimits(
            name,
            None if tx is None else Money.parse(tx, code).amount_minor,
            None if day is None else Money.parse(day, code).amount_minor,
        )


class CorridorsFile(_Model):
    # the day a debtor's daily usage counts in (issue 11): the debtors are Bakong customers
    usage_timezone: str = "Asia/Phnom_Penh"
    tiers: Mapping[str, Tier] = {}
    corridors: tuple[Corridor, ...]

    @model_validator(mode="after")
    def _tiers_known(self) -> "CorridorsFile":
        zone(self.usage_timezone)
        for name in self.tiers:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
                raise ValueError(f"tier name {name!r}: lower-case letters, digits and _, at most 32")
        for c in self.corridors:
            if c.default_tier is not None and c.default_tier not in self.tiers:
                raise ValueError(f"corridor {c.id}: default_tier {c.default_tier!r} is not a tier of [tiers]")
        return self


DebtorNeed = Literal["name", "account", "address", "identification", "address_or_identification"]
CreditorNeed = Literal["name", "account", "address"]
assert set(get_args(DebtorNeed)) == {n.value for n in Need} and set(get_args(CreditorNeed)) == {n.value for n in CREDITOR_NEEDS}


class ComplianceProfile(_Model):
    """A compliance profile (config/compliance.toml [profiles.<name>], issue 12): the party data
    required always (`debtor`, `creditor`) and at or above `threshold` in the amount's currency
    (`debtor_above`, `creditor_above`). A currency without a threshold counts as above it (fail
    safe). switch/domain/compliance.py applies it; docs/operations/compliance.md explains it."""

    description: str = ""
    debtor: tuple[DebtorNeed, ...] = ()
    creditor: tuple[CreditorNeed, ...] = ()
    debtor_above: tuple[DebtorNeed, ...] = ()
    creditor_above: tuple[CreditorNeed, ...] = ()
    threshold: Mapping[str, str] = {}  # per currency, decimal text

    @field_validator("threshold")
    @classmethod
    def _amounts(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for code, text in value.items():
            if code not in CURRENCIES:
                raise ValueError(f"unknown currency {code!r} (known: {', '.join(CURRENCIES)})")
            try:  # above zero (Money.parse): data required at any amount is listed in debtor/creditor
                Money.parse(str(text), code)
            except ValueError as exc:
                raise ValueError(f"{code} {text!r} is not an amount: {exc}") from None
        return value

    def requirements(self, name: str) -> Requirements:
        return Requirements(
            name=name,
            debtor=frozenset(Need(n) for n in self.debtor),
            creditor=frozenset(Need(n) for n in self.creditor),
            debtor_above=frozenset(Need(n) for n in self.debtor_above),
            creditor_above=frozenset(Need(n) for n in self.creditor_above),
            threshold_minor={code: Money.parse(str(text), code).amount_minor for code, text in self.threshold.items()},
        )


class ComplianceFile(_Model):
    profiles: Mapping[str, ComplianceProfile] = {}

    @field_validator("profiles")
    @classmethod
    def _names(cls, value: Mapping[str, ComplianceProfile]) -> Mapping[str, ComplianceProfile]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
                raise ValueError(f"profile name {name!r}: lower-case letters, digits and _, at most 32")
        return value


class _CalendarDays(BaseModel):
    """The holidays of a config/calendars/*.toml file (the rest of it is the settlement's)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    class _Day(BaseModel):
        model_config = ConfigDict(frozen=True, extra="ignore")
        date: date

    holidays: tuple[_Day, ...] = ()


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
    compliance: str | None = None  # compliance.toml [profiles.<name>] (issue 12); None: no data rule

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
    screening: ScreeningConfig = ScreeningConfig()  # switch.toml [screening] (issue 12)
    corridors: tuple[Corridor, ...]
    tiers: Mapping[str, Tier] = {}  # corridors.toml [tiers] (issue 11)
    usage_timezone: str = "Asia/Phnom_Penh"
    corridor_holidays: Mapping[str, frozenset[date]] = {}  # corridor id -> its calendar's holidays
    inbound_routes: tuple[InboundRoute, ...] = ()
    directory: tuple[DirectoryEntry, ...] = ()
    compliance_profiles: Mapping[str, ComplianceProfile] = {}  # compliance.toml [profiles] (issue 12)
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

    def corridor_hours(self, corridor_id: str) -> OperatingHours | None:
        """The corridor's operating hours and holidays; None: open 24/7."""
        return self._hours.get(corridor_id)

    def tier_limits(self, corridor: Corridor, tier: str | None, code: str) -> TierLimits | None:
        """The limits of `tier` (None: the corridor's default) in source currency `code`; None
        when the corridor has no tier. Raises KeyError for a tier the file does not name."""
        name = tier or corridor.default_tier
        if name is None:
            return None
        return self._tier_limits[(name, code)] if (name, code) in self._tier_limits else self.tiers[name].limits(name, code)

    @cached_property
    def _tier_limits(self) -> dict[tuple[str, str], TierLimits]:
        return {(n, code): t.limits(n, code) for n, t in self.tiers.items() for code in CURRENCIES}

    @cached_property
    def _hours(self) -> dict[str, OperatingHours]:
        out: dict[str, OperatingHours] = {}
        for c in self.corridors:
            holidays = self.corridor_holidays.get(c.id, frozenset())
            if c.timezone is None or (c.hours is None and not holidays):
                continue
            table = c.hours if c.hours is not None else {d: ("00:00-24:00",) for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
            out[c.id] = hours_from_table(c.timezone, table, holidays)
        return out

    def participant(self, code: str) -> Participant | None:
        return self._participants_by_code.get(code)

    def compliance(self, profile: str | None) -> Requirements | None:
        """The requirements of a corridor's or inbound route's compliance profile (issue 12);
        None: no profile named. A name the file does not have raises KeyError (`check` refuses
        such a configuration, so it cannot happen after `load`)."""
        return None if profile is None else self._compliance[profile]

    @cached_property
    def _compliance(self) -> dict[str, Requirements]:
        return {name: p.requirements(name) for name, p in self.compliance_profiles.items()}

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


# ------------------------------------------------------------------ problems, all of them at once


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the configuration, where a person fixes it: the file (or
    `environment` for a variable) and the line of the offending key or table, when known."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line is not None else f"{self.file}: {self.message}"


class ConfigErrors(ValueError):
    """The configuration cannot be used: every problem found, not only the first."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


ENVIRONMENT = "environment"  # the file name of a problem with an environment variable

# Every MEKONG_* variable anything in the project reads. The switch reads the first group; the rest
# belong to the tools around it (compose, the CLI's API client, the tests) and may share its
# environment. A MEKONG_* variable not listed here (nor a MEKONG_PARTNER_<FIELD>_<PARTNER>) is a
# typo until proven otherwise: `mekong config check` and `mekong run` name it. A part that reads a
# new variable adds it here.
SWITCH_ENV: Final = frozenset({
    "MEKONG_CONFIG_DIR", "MEKONG_KAFKA_BOOTSTRAP", "MEKONG_DATABASE_URL", "MEKONG_HTTP_HOST", "MEKONG_HTTP_PORT",
    "MEKONG_OPS_HOST", "MEKONG_OPS_PORT", "MEKONG_PUBLIC_URL", "MEKONG_SCHEMA_DIR", "MEKONG_PKI_DIR", "MEKONG_INSECURE_DEV",
    "MEKONG_API_TOKENS_FILE", "MEKONG_PAN_KEY_FILE", "MEKONG_PAN_KEY", "MEKONG_KAFKA_SASL_PASSWORD_FILE",
    "MEKONG_KAFKA_SASL_PASSWORD", "MEKONG_SHUTDOWN_GRACE_S", "MEKONG_KAFKA_CONNECT_TIMEOUT_S", "MEKONG_LOG_FORMAT",
    "MEKONG_FX_FEED_URL",  # the FX rate feed's URL (config/fx.toml [providers.http], issue 11 quotes)
    "MEKONG_SCREENING_URL",  # the external screening API (switch.toml [screening] url, issue 12)
})
TOOLS_ENV: Final = frozenset({
    "MEKONG_CONFIG_HOST_DIR", "MEKONG_DB_PASSWORD",  # deploy/ compose
    "MEKONG_OPS_URL", "MEKONG_API_TOKEN",  # the CLI's operations API client
    "MEKONG_TEST_PG_URL", "MEKONG_SHARED_XSD_DIR", "MEKONG_STATEFUL_EXAMPLES", "MEKONG_FUZZ_EXAMPLES",  # tests
    "MEKONG_LOAD_SASL_PASSWORD_FILE",  # mekong load
    # deploy/build-image.sh (the image's build stage)
    "MEKONG_BUILD_VENV", "MEKONG_BUILD_SRC", "MEKONG_BUILD_SCHEMA_DIR", "MEKONG_BUILD_XSD_DIR", "MEKONG_BUILD_CONFIG_DIR",
})
PARTNER_URL_ENV: Final = "MEKONG_PARTNER_URL_"


class _Problems:
    """Collects problems; `located` turns a path in a file's data into that file's line."""

    def __init__(self) -> None:
        self.items: list[ConfigProblem] = []
        self._lines: dict[Path, TomlLines] = {}
        self.index: dict[str, list[int]] = {}  # array key -> position in the file of each entry kept
        self.incomplete: set[str] = set()  # arrays with an entry left out (reported): checks against them would mislead

    def entry(self, key: str, i: int) -> int:
        """The position in its file of the i-th entry kept of array `key`."""
        kept = self.index.get(key)
        return kept[i] if kept is not None and i < len(kept) else i

    def add(self, file: Path | str, line: int | None, message: str) -> None:
        self.items.append(ConfigProblem(str(file), line, message))

    def at(self, file: Path, path: Sequence[str | int], message: str) -> None:
        self.add(file, self.line(file, path), message)

    def line(self, file: Path, path: Sequence[str | int]) -> int | None:
        lines = self._lines.get(file)
        if lines is None:
            try:
                lines = self._lines[file] = TomlLines(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                return None
        return lines.line(path)

    def read(self, file: Path, *, decimals: bool = False) -> dict[str, Any] | None:
        """The file's data, or None with the problem recorded (missing, or not TOML)."""
        try:
            with file.open("rb") as fh:
                return tomllib.load(fh, parse_float=Decimal) if decimals else tomllib.load(fh)
        except FileNotFoundError:
            self.add(file, None, "file not found")
        except OSError as exc:
            self.add(file, None, f"cannot read: {exc.strerror}")
        except tomllib.TOMLDecodeError as exc:
            text = str(exc)
            found = re.search(r"\(at line (\d+), column (\d+)\)$", text)
            if found:
                self.add(file, int(found.group(1)), f"invalid TOML: {text[:found.start()].strip()} (column {found.group(2)})")
            else:
                self.add(file, None, f"invalid TOML: {text}")
        return None

    def validate(self, model: type[ModelT], data: Any, file: Path, *, prefix: Sequence[str | int] = ()) -> ModelT | None:
        """`data` as `model`, or None with one problem per pydantic error, each at its key's line."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(prefix) + tuple(error["loc"])
                self.at(file, loc, f"{_shown_loc(loc)}{_message(error)}")
            return None


ModelT = TypeVar("ModelT", bound=BaseModel)


def _shown_loc(loc: Sequence[str | int]) -> str:
    """`corridors[1].fee.USD: ` for a pydantic loc; nothing for the file's root."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return f"{out}: " if out else ""


def _message(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if error["type"] == "extra_forbidden":
        return "unknown key (a typo?)"
    if error["type"] == "missing":
        return "required key missing"
    return message


def _read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def load(
    config_dir: str | Path | None = None, env: Mapping[str, str] | None = None, *, insecure_dev: bool | None = None
) -> SwitchConfig:
    """Load and validate the config directory, then apply environment overrides. Everything a
    start checks on configuration is checked here (references between files, duplicates, every
    enabled corridor priced, partner profiles and calendars, environment variable names, TLS),
    and every problem is reported at once: ConfigErrors, one `file:line: message` each.
    `insecure_dev` overrides [security] insecure_dev (`mekong run --insecure-dev`)."""
    cfg, problems = check(config_dir, env, insecure_dev=insecure_dev, secrets=False)
    if problems:
        raise ConfigErrors(problems)
    assert cfg is not None
    return cfg


def check(
    config_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    insecure_dev: bool | None = None,
    secrets: bool = True,
) -> tuple[SwitchConfig | None, list[ConfigProblem]]:
    """The configuration and every problem with it (`mekong config check`). With `secrets`, the
    secrets a start needs must be there too (the card-number token key); a review of the files
    alone (CI without the deployment's secrets) passes secrets=False."""
    env = os.environ if env is None else env
    directory = Path(config_dir or env.get("MEKONG_CONFIG_DIR") or DEFAULT_CONFIG_DIR)
    out = _Problems()
    files = {name: directory / f"{name}.toml" for name in ("switch", "participants", "corridors", "inbound", "fx", "compliance")}

    # arrays of entries are validated entry by entry, so that one bad corridor does not hide the
    # problems of the others nor stop the checks across files; `index` maps an entry kept back to
    # its position in the file (for its line)
    index: dict[str, list[int]] = {}

    def parsed(name: str, model: type[ModelT], arrays: Mapping[str, type[BaseModel]] = {}, path: Path | None = None) -> ModelT | None:
        path = path or files[name]
        data = out.read(path)
        if data is None:
            return None
        for key, item_model in arrays.items():
            items = data.get(key)
            if not isinstance(items, list):
                continue
            kept = [i for i, item in enumerate(items) if out.validate(item_model, item, path, prefix=(key, i)) is not None]
            index[key] = kept
            if len(kept) < len(items):
                out.incomplete.add(key)
            data[key] = [items[i] for i in kept]
        return out.validate(model, data, path)

    base = parsed("switch", SwitchFile)
    participants = parsed("participants", ParticipantsFile, {"participants": Participant})
    corridors = parsed("corridors", CorridorsFile, {"corridors": Corridor})
    inbound = parsed("inbound", InboundFile, {"routes": InboundRoute, "directory": DirectoryEntry}) if files["inbound"].exists() else InboundFile()
    # issue 12: without the file, no profiles (a corridor naming one is then reported)
    compliance = parsed("compliance", ComplianceFile) if files["compliance"].exists() else ComplianceFile()

    tokens_file = env.get("MEKONG_API_TOKENS_FILE")
    tokens_path = Path(tokens_file) if tokens_file else directory / "operators.toml"
    api_file: TokensFile | None = TokensFile()
    if tokens_file and not tokens_path.is_file():
        out.add(ENVIRONMENT, None, f"MEKONG_API_TOKENS_FILE names no file: {tokens_path}")
    elif tokens_path.exists():
        api_file = parsed("operators", TokensFile, {"tokens": ApiToken, "certificates": ApiCertificate}, path=tokens_path)
    out.index = index

    _check_duplicates(out, files, participants, corridors, inbound, api_file, tokens_path)
    partner_names = _known_partners(directory)
    _check_env(out, env, partner_names)

    cfg = _assemble(out, directory, env, base, participants, corridors, inbound, api_file, tokens_path, insecure_dev)
    if cfg is not None and compliance is not None:
        cfg = cfg.model_copy(update={"compliance_profiles": compliance.profiles})
    if corridors is not None and inbound is not None and compliance is not None:
        _check_compliance(out, files, corridors, inbound, compliance)
    if participants is not None:
        for i, participant in enumerate(participants.participants):
            for code in participant.currencies:
                if code not in CURRENCIES:
                    out.at(files["participants"], ("participants", out.entry("participants", i), "currencies"),
                           f"participant {participant.code}: unknown currency {code!r}")
    if cfg is not None:
        _check_references(out, directory, files, cfg, partner_names)
        profiles = _check_partners(out, directory, files, cfg, env)
        _check_fx(out, files, cfg)
        _check_screening(out, directory, files, cfg)
        if secrets and cfg.pan_key is None:  # Switch.start refuses it: a key per process would split tokens
            out.add(ENVIRONMENT, None, "no card-number token key: set MEKONG_PAN_KEY_FILE (or MEKONG_PAN_KEY), see README")
        if secrets and not cfg.security.insecure_dev:
            _check_pki(out, files, cfg, profiles)
    # the directory's files first, then others (a tokens file, the PKI), the environment last; each in line order
    inside = str(directory)
    problems = sorted(out.items, key=lambda p: (p.file == ENVIRONMENT, not p.file.startswith(inside), p.file, p.line or 0))
    return (cfg if not problems else None), problems


def _known_partners(directory: Path) -> list[str]:
    """Partners the switch can talk to: an adapter and a profile in partners/."""
    from adapters.registry import MAPPINGS  # adapters read this module: imported when used

    return sorted(p for p in MAPPINGS if (directory / "partners" / f"{p}.toml").is_file())


def _check_duplicates(
    out: _Problems,
    files: Mapping[str, Path],
    participants: ParticipantsFile | None,
    corridors: CorridorsFile | None,
    inbound: InboundFile | None,
    api_file: TokensFile | None,
    tokens_path: Path,
) -> None:
    """Ids that must be unique. A repeated corridor id is not harmless: lookups by id keep the
    last entry (a dict built from the list), so a second KH-TH naming lapnet silently sent every
    KH-TH payment to LAPNet."""

    def unique(file: Path, table: str, key: str, values: Sequence[str], what: str) -> None:
        first: dict[str, int] = {}
        for i, value in enumerate(values):
            if value in first:
                where = out.line(file, (table, out.entry(table, first[value]), key))
                out.at(file, (table, out.entry(table, i), key), f"duplicated {what} {value}" + (f" (first at line {where})" if where else ""))
            else:
                first[value] = i

    if corridors is not None:
        unique(files["corridors"], "corridors", "id", [c.id for c in corridors.corridors], "corridor id")
    if inbound is not None:
        unique(files["inbound"], "routes", "id", [r.id for r in inbound.routes], "inbound route id")
        unique(files["inbound"], "directory", "mobile", [d.mobile for d in inbound.directory], "directory mobile")
    if participants is not None:
        unique(files["participants"], "participants", "code", [p.code for p in participants.participants], "participant code")
        unique(files["participants"], "participants", "bakong_suffix", [p.bakong_suffix for p in participants.participants],
               "participant bakong_suffix")
    if api_file is not None:
        unique(tokens_path, "tokens", "name", [t.name for t in api_file.tokens], "operator name")
        unique(tokens_path, "certificates", "name", [c.name for c in api_file.certificates], "operator name")


def _check_env(out: _Problems, env: Mapping[str, str], partners: Sequence[str]) -> None:
    """Every MEKONG_* variable is one something reads: a typo (MEKONG_PARTNER_URL_PROMTPAY) would
    otherwise be ignored and the switch would call the profile's URL instead."""
    url_vars = [f"{PARTNER_URL_ENV}{p.upper()}" for p in partners]
    timing_prefixes = [f"MEKONG_PARTNER_{field.upper()}_" for field in PARTNER_TIMING_FIELDS]
    for name in sorted(env):
        if not name.startswith("MEKONG_") or name in SWITCH_ENV or name in TOOLS_ENV:
            continue
        if name.startswith(PARTNER_URL_ENV):
            if name not in url_vars:
                out.add(ENVIRONMENT, None, f"{name}: no partner {name.removeprefix(PARTNER_URL_ENV).lower()!r} "
                        f"(known: {', '.join(url_vars)})")
            continue
        prefix = next((p for p in sorted(timing_prefixes, key=len, reverse=True) if name.startswith(p)), None)
        if prefix is not None:
            partner = name.removeprefix(prefix).lower()
            if partner not in partners:
                out.add(ENVIRONMENT, None, f"{name}: no partner {partner!r} (known: {', '.join(partners)})")
                continue
            try:
                float(env[name])
            except ValueError:
                out.add(ENVIRONMENT, None, f"{name}: {env[name]!r} is not a number of seconds")
            continue
        out.add(ENVIRONMENT, None, f"{name}: not a variable the switch knows (known: {', '.join(sorted(SWITCH_ENV))}, "
                f"{PARTNER_URL_ENV}<PARTNER>, MEKONG_PARTNER_<TIMING>_<PARTNER>)")


def _assemble(
    out: _Problems,
    directory: Path,
    env: Mapping[str, str],
    base: SwitchFile | None,
    participants: ParticipantsFile | None,
    corridors: CorridorsFile | None,
    inbound: InboundFile | None,
    api_file: TokensFile | None,
    tokens_path: Path,
    insecure_dev: bool | None,
) -> SwitchConfig | None:
    """The files with the environment's overrides applied, or None (problems recorded)."""
    if base is None or participants is None or corridors is None or inbound is None or api_file is None:
        return None
    overrides = {
        "database_url": env.get("MEKONG_DATABASE_URL"),
        "schema_dir": env.get("MEKONG_SCHEMA_DIR"),
        "shutdown_grace_s": env.get("MEKONG_SHUTDOWN_GRACE_S"),
    }
    kafka_updates: dict[str, Any] = {}
    if env.get("MEKONG_KAFKA_BOOTSTRAP"):
        kafka_updates["bootstrap_servers"] = env["MEKONG_KAFKA_BOOTSTRAP"]
    if env.get("MEKONG_KAFKA_CONNECT_TIMEOUT_S"):
        kafka_updates["connect_timeout_s"] = env["MEKONG_KAFKA_CONNECT_TIMEOUT_S"]
    try:  # validated again: an override is checked like the file
        switch = SwitchSection.model_validate({**base.switch.model_dump(), **{k: v for k, v in overrides.items() if v}})
        kafka = KafkaConfig.model_validate({**base.kafka.model_dump(), **kafka_updates})
    except ValidationError as exc:
        for error in exc.errors():
            out.add(ENVIRONMENT, None, f"{_shown_loc(error['loc'])}{_message(error)}")
        return None
    http_updates: dict[str, Any] = {}
    for var, key in (("MEKONG_HTTP_HOST", "host"), ("MEKONG_OPS_HOST", "ops_host"), ("MEKONG_PUBLIC_URL", "public_url")):
        if env.get(var):
            http_updates[key] = env[var]
    for var, key in (("MEKONG_HTTP_PORT", "port"), ("MEKONG_OPS_PORT", "ops_port")):
        if env.get(var):
            try:
                http_updates[key] = int(env[var])
            except ValueError:
                out.add(ENVIRONMENT, None, f"{var}: {env[var]!r} is not a port number")
    try:
        http = HttpConfig.model_validate({**base.http.model_dump(), **http_updates})
    except ValidationError as exc:
        for error in exc.errors():
            out.add(ENVIRONMENT, None, f"http.{_shown_loc(error['loc'])}{_message(error)}")
        return None
    security_updates: dict[str, Any] = {}
    if env.get("MEKONG_PKI_DIR"):
        security_updates["pki_dir"] = env["MEKONG_PKI_DIR"]
    if env.get("MEKONG_INSECURE_DEV"):
        security_updates["insecure_dev"] = env["MEKONG_INSECURE_DEV"].strip().lower() in ("1", "true", "yes")
    if insecure_dev is not None:
        security_updates["insecure_dev"] = insecure_dev
    security = SecurityConfig.model_validate({**base.security.model_dump(), **security_updates})
    partner_urls = {
        key.removeprefix(PARTNER_URL_ENV).lower(): value for key, value in env.items() if key.startswith(PARTNER_URL_ENV) and value
    }
    partner_timing: dict[str, dict[str, float]] = {}
    for key, value in env.items():
        for field in PARTNER_TIMING_FIELDS:
            prefix = f"MEKONG_PARTNER_{field.upper()}_"
            if key.startswith(prefix) and value:
                with contextlib.suppress(ValueError):  # reported by _check_env
                    partner_timing.setdefault(key.removeprefix(prefix).lower(), {})[field] = float(value)
    pan_key = env.get("MEKONG_PAN_KEY")
    sasl_password = env.get("MEKONG_KAFKA_SASL_PASSWORD")
    try:
        if env.get("MEKONG_PAN_KEY_FILE"):
            pan_key = Path(env["MEKONG_PAN_KEY_FILE"]).read_text(encoding="ascii").strip()
        if env.get("MEKONG_KAFKA_SASL_PASSWORD_FILE"):
            sasl_password = Path(env["MEKONG_KAFKA_SASL_PASSWORD_FILE"]).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:  # the message names the file, never its content
        out.add(ENVIRONMENT, None, f"cannot read a secret file: {exc}")
        return None
    # issue 11: the holidays of each corridor's calendar file (config/calendars/*.toml)
    corridor_holidays: dict[str, frozenset[date]] = {}
    for i, c in enumerate(corridors.corridors):
        if c.holidays is None:
            continue
        calendar = out.read(directory / c.holidays) if (directory / c.holidays).is_file() else None
        if calendar is None:
            out.at(directory / "corridors.toml", ("corridors", out.entry("corridors", i), "holidays"),
                   f"corridor {c.id}: holidays {c.holidays!r} is not a calendar file of the config directory")
            return None
        days = out.validate(_CalendarDays, calendar, directory / c.holidays)
        if days is None:
            return None
        corridor_holidays[c.id] = frozenset(h.date for h in days.holidays)
    try:
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
            screening=base.screening.model_copy(update={"url": env["MEKONG_SCREENING_URL"]})
            if env.get("MEKONG_SCREENING_URL") else base.screening,
            participants=participants.participants,
            participant_limits=participants.limits,
            corridors=corridors.corridors,
            tiers=corridors.tiers,
            usage_timezone=corridors.usage_timezone,
            corridor_holidays=corridor_holidays,
            inbound_routes=inbound.routes,
            directory=inbound.directory,
            partner_urls=partner_urls,
        )
    except ValidationError as exc:  # the checks across the tokens file, participants and secrets
        for error in exc.errors():
            message = _message(error)
            if "participants" in out.incomplete and "is not a participant" in message:
                continue  # its participant's entry is invalid, reported already
            out.add(tokens_path if "API" in message else ENVIRONMENT, None, message)
        return None


def _check_references(out: _Problems, directory: Path, files: Mapping[str, Path], cfg: SwitchConfig, partners: Sequence[str]) -> None:
    """Corridors and inbound routes name partners the switch has a profile and an adapter for."""
    known = ", ".join(partners)
    for i, corridor in enumerate(cfg.corridors):
        if corridor.partner not in partners:
            out.at(files["corridors"], ("corridors", out.entry("corridors", i), "partner"),
                   f"corridor {corridor.id}: unknown partner {corridor.partner!r} (known: {known})")
    for i, route in enumerate(cfg.inbound_routes):
        if route.partner not in partners:
            out.at(files["inbound"], ("routes", out.entry("routes", i), "partner"),
                   f"inbound route {route.id}: unknown partner {route.partner!r} (known: {known})")


def _check_compliance(out: _Problems, files: Mapping[str, Path], corridors: CorridorsFile, inbound: InboundFile,
                      compliance: ComplianceFile) -> None:
    """Corridors and inbound routes name profiles compliance.toml has (issue 12)."""
    known = ", ".join(sorted(compliance.profiles)) or "none"
    for i, corridor in enumerate(corridors.corridors):
        if corridor.compliance is not None and corridor.compliance not in compliance.profiles:
            out.at(files["corridors"], ("corridors", out.entry("corridors", i), "compliance"),
                   f"corridor {corridor.id}: unknown compliance profile {corridor.compliance!r} (known: {known})")
    for i, route in enumerate(inbound.routes):
        if route.compliance is not None and route.compliance not in compliance.profiles:
            out.at(files["inbound"], ("routes", out.entry("routes", i), "compliance"),
                   f"inbound route {route.id}: unknown compliance profile {route.compliance!r} (known: {known})")


def _check_partners(
    out: _Problems, directory: Path, files: Mapping[str, Path], cfg: SwitchConfig, env: Mapping[str, str]
) -> dict[str, Any]:
    """The profiles a start loads (the partners of enabled corridors and inbound routes), with
    the environment's URL and timing overrides, their settlement calendars, and what
    Switch.start refuses: a plain-HTTP partner URL with TLS on, an inbound confirm_timeout_s
    that does not leave room in the partner's SLA."""
    from adapters.base import PartnerExceptions, PartnerProfile  # adapters read this module: imported when used

    partners = {c.partner for c in cfg.corridors if c.enabled} | {r.partner for r in cfg.inbound_routes if r.enabled}
    profiles: dict[str, PartnerProfile] = {}
    for partner in sorted(partners):
        path = directory / "partners" / f"{partner}.toml"
        if not path.is_file():
            continue  # an unknown partner: reported by _check_references
        data = out.read(path)
        if data is None:
            continue
        if cfg.partner_urls.get(partner):
            data["base_url"] = cfg.partner_urls[partner]
        profile = out.validate(PartnerProfile, data, path)
        if profile is None:
            continue
        overrides = dict(cfg.partner_timing.get(partner, {}))
        if overrides:
            data = profile.model_dump()
            data["exceptions"] = {**data["exceptions"], **{k: overrides.pop(k) for k in list(overrides) if k in PartnerExceptions.model_fields}}
            overrides.pop("settlement_every_s", None)  # checked with the calendar below
            try:
                profile = PartnerProfile.model_validate({**data, **overrides})
            except ValidationError as exc:
                for error in exc.errors():
                    out.add(ENVIRONMENT, None, f"MEKONG_PARTNER_*_{partner.upper()}: {_shown_loc(error['loc'])}{_message(error)}")
                continue
        profiles[partner] = profile
        if not cfg.security.insecure_dev and not profile.base_url.startswith("https://"):
            where = (ENVIRONMENT, None) if cfg.partner_urls.get(partner) else (path, out.line(path, ("base_url",)))
            out.add(where[0], where[1], f"partner {partner}: base_url {profile.base_url} is not https:// "
                    "(TLS is on; insecure_dev for plain HTTP)")
        if profile.settlement is not None:
            _check_calendar(out, directory, path, profile, env)
    for i, route in enumerate(cfg.inbound_routes):  # the partner must hear the answer within its SLA
        profile = profiles.get(route.partner)
        if route.enabled and profile is not None and route.confirm_timeout_s >= profile.sla_s:
            out.at(files["inbound"], ("routes", out.entry("routes", i), "confirm_timeout_s"),
                   f"inbound route {route.id}: confirm_timeout_s {route.confirm_timeout_s:g} must be below "
                   f"{route.partner}'s SLA of {profile.sla_s:g} s")
    return profiles


def _check_pki(out: _Problems, files: Mapping[str, Path], cfg: SwitchConfig, profiles: Mapping[str, Any]) -> None:
    """The key material a start reads from the PKI directory ([security] pki_dir): each
    participant's Kafka signing key (at its `keys` entry's line), the partner port's and the
    operations port's TLS, the signed business messages' certificates and keys."""
    from switch.kafka_auth import ParticipantKeyError, load_key_ring  # these read this module: imported when used
    from switch.signing import SigningSetupError, load_switch_signing
    from switch.tls import PartnerTlsSettings, TlsSetupError, load_ops_tls, load_switch_tls

    pki = cfg.security.pki_path()
    for i, participant in enumerate(cfg.participants):
        for n, entry in enumerate(participant.keys):
            try:
                load_key_ring([participant.model_copy(update={"keys": (entry,)})], pki)
            except ParticipantKeyError as exc:
                out.at(files["participants"], ("participants", out.entry("participants", i), "keys", n), str(exc))
    tls = {p: None if m.tls is None else PartnerTlsSettings(m.tls.subject_cn, m.tls.spki_sha256, m.tls.ca_bundle) for p, m in profiles.items()}
    for what, load_part in (
        ("partner port TLS", lambda: load_switch_tls(pki, tls)),
        ("operations port TLS", lambda: load_ops_tls(pki)),
        ("signed business messages", lambda: load_switch_signing(pki, cfg.switch.agent_bic, {p: m.signing for p, m in profiles.items()})),
    ):
        try:
            load_part()
        except (TlsSetupError, SigningSetupError, ValueError) as exc:
            out.add(str(pki), None, f"{what}: {exc}")


def _check_calendar(out: _Problems, directory: Path, profile_path: Path, profile: Any, env: Mapping[str, str]) -> None:
    from adapters.base import CalendarFile  # adapters read this module: imported when used

    calendar = profile.settlement.calendar
    if calendar is not None:
        path = directory / calendar
        if not path.is_file():
            out.at(profile_path, ("settlement", "calendar"), f"partner {profile.partner}: calendar {calendar} not found")
            return
        data = out.read(path)
        if data is None or out.validate(CalendarFile, data, path) is None:
            return
    try:
        profile.settlement_calendar(directory, env=env)
    except (ValueError, ValidationError) as exc:
        out.at(profile_path, ("settlement",), f"partner {profile.partner}: settlement: {exc}")


def _check_screening(out: _Problems, directory: Path, files: Mapping[str, Path], cfg: SwitchConfig) -> None:
    """The screening a start builds (issue 12): the embedded list is readable and begins with
    FollowTheMoney entities (read with followthemoney only; a start loads it all), a yente
    provider has a URL."""
    screening = cfg.screening
    if not screening.enabled:
        return
    if screening.provider == "yente":
        if not screening.url:
            out.at(files["switch"], ("screening", "provider"),
                   "screening: provider yente needs url (or MEKONG_SCREENING_URL)")
        return
    from switch.screening import list_file  # the screening package reads this module: imported when used
    from switch.screening.entities import check_list

    try:
        check_list(list_file(directory, screening))
    except ValueError as exc:
        out.at(files["switch"], ("screening", "list_path"), f"screening: {exc}")


def _check_fx(out: _Problems, files: Mapping[str, Path], cfg: SwitchConfig) -> None:
    """fx.toml valid, and every enabled corridor priced: a rate route (direct, inverse or via the
    pivot) from each source currency to its target currency. Without one every payment of the
    corridor would be refused at run time; staleness is the providers' matter, not the files'."""
    from fx.config import FxConfig  # fx reads switch.domain only, but keep config import-light
    from fx.rates import RateBook, RateUnavailable

    path = files["fx"]
    data = out.read(path, decimals=True)
    fx = None if data is None else out.validate(FxConfig, data, path)
    if fx is None:
        return
    book = RateBook(pivot=fx.pivot, stale_after_s=None, rates=fx.static_provider().table)
    latest = max(e.as_of for e in fx.rates)
    for i, corridor in enumerate(cfg.corridors):
        if not corridor.enabled:
            continue
        for code in corridor.source_currencies:
            if code == corridor.target_currency:
                continue
            try:
                book.rate(code, corridor.target_currency, now=latest)
            except RateUnavailable:
                out.at(files["corridors"], ("corridors", out.entry("corridors", i), "source_currencies"),
                       f"corridor {corridor.id}: no FX rate for {code} -> {corridor.target_currency} in {path.name} "
                       f"(directly or via {fx.pivot})")
