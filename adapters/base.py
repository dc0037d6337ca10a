"""What every partner adapter is made of (STYLE §7): a profile (data), a pure mapping and a
transport. The profile is read from `config/partners/<partner>.toml`; what the data cannot say
lives in the partner's `mapping.py`."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, Mapping, Protocol, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lxml import etree
from stdnum import luhn

from adapters.text import TextOverflow, TextRule
from iso20022 import apphdr
from iso20022.pacs008 import CustomerCreditTransfer
from iso20022.reason_codes import REASON_CODES
from iso20022.reports import REPORT_VERSIONS
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from switch import limits
from switch.domain.payment import Party, Payment, PaymentState
from switch.domain.rate_limit import Rate
from switch.domain.settlement import Calendar


class ProxyRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    pattern: str  # full-match regular expression for the proxy value
    iso_type: str  # ExternalProxyAccountType1Code / partner code put in CdtrAcct/Prxy/Tp
    description: str = ""


class PartnerLimits(BaseModel):
    """The partner's abuse limit on the partner port (issue 8 item 6): how many messages it may
    POST a second on average (`messages_per_s`) and at once (`burst`); more are answered 429.
    Unset values take the defaults of switch/limits.py."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    messages_per_s: int = Field(default=limits.partner_messages_per_s_default, ge=1, le=limits.rate_per_s_max)
    burst: int = Field(default=limits.partner_burst_default, ge=1, le=limits.rate_burst_max)

    def rate(self) -> Rate:
        return Rate(self.messages_per_s, self.burst)


class PartnerTls(BaseModel):
    """The certificate the partner is known by (mutual TLS, switch/tls.py): subject CN and/or
    SPKI SHA-256 pins (lowercase hex), issued by a CA of its bundle. Paths are relative to the
    PKI directory ([security] pki_dir)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    subject_cn: str | None = None
    spki_sha256: tuple[str, ...] = ()
    ca_bundle: str

    @model_validator(mode="after")
    def _names_an_identity(self) -> "PartnerTls":
        if self.subject_cn is None and not self.spki_sha256:
            raise ValueError("[tls] must pin subject_cn and/or spki_sha256")
        for pin in self.spki_sha256:
            if re.fullmatch(r"[0-9a-f]{64}", pin) is None:
                raise ValueError(f"[tls] spki_sha256 {pin!r} is not 64 lowercase hex digits")
        return self


class PartnerSigning(BaseModel):
    """Signed business application headers with this partner (iso20022/apphdr.py): every ISO
    message both ways travels as a BizMsg (AppHdr + Document) signed by its sender. The partner
    is named in AppHdr Fr (its messages) and To (ours) by a BIC or by a clearing-system member id;
    its messages are verified against `certificate` (relative to the PKI directory), never against
    a certificate the message carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    # true: a message without a valid signed header is refused. false (a partner moving to
    # signatures): a bare Document is still taken; a signed one is checked all the same
    required: bool = True
    certificate: str  # PEM: the partner's signing certificate, and the next one during a key rotation
    bicfi: str | None = Field(default=None, pattern=r"^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")
    member_id: str | None = Field(default=None, min_length=1, max_length=35)  # FinInstnId/ClrSysMmbId/MmbId
    system_code: str | None = Field(default=None, min_length=1, max_length=5)  # ClrSysMmbId/ClrSysId/Cd
    system_proprietary: str | None = Field(default=None, min_length=1, max_length=35)  # ClrSysMmbId/ClrSysId/Prtry
    # how far the AppHdr CreDt may be from the switch's clock, either way (transit and clock skew)
    credt_window_s: float = Field(default=limits.apphdr_credt_window_s_default, gt=0, le=limits.apphdr_credt_window_s_max)

    @model_validator(mode="after")
    def _names_the_partner(self) -> "PartnerSigning":
        if (self.bicfi is None) == (self.member_id is None):
            raise ValueError("[signing] names the partner by bicfi or by member_id, exactly one")
        if self.bicfi is not None and (self.system_code or self.system_proprietary):
            raise ValueError("[signing] system_code / system_proprietary go with member_id, not bicfi")
        if self.system_code is not None and self.system_proprietary is not None:
            raise ValueError("[signing] system_code or system_proprietary, not both")
        return self

    def party(self) -> apphdr.Party:
        """The partner as AppHdr Fr / To."""
        return apphdr.Party(bicfi=self.bicfi, member_id=self.member_id, system_code=self.system_code, system_proprietary=self.system_proprietary)


class PartnerExceptions(BaseModel):
    """How the partner handles payments that go wrong (issue 9): status enquiries (pacs.028 ->
    pacs.002), returns (pacs.004) and recalls (camt.056 -> camt.029), message versions, timings,
    and how it expects to hear that one of its messages could not be processed. Unset values are
    the defaults below; each profile marks what it assumes [U] / [O]."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    pacs028_version: str = Field(default="pacs.028.001.03", pattern=r"^pacs\.028\.001\.\d\d$")
    pacs004_version: str = Field(default="pacs.004.001.10", pattern=r"^pacs\.004\.001\.\d\d$")
    camt056_version: str = Field(default="camt.056.001.08", pattern=r"^camt\.056\.001\.\d\d$")
    camt029_version: str = Field(default="camt.029.001.09", pattern=r"^camt\.029\.001\.\d\d$")
    # an outbound payment with no final pacs.002 this long after admission gets a pacs.028, then
    # again with a growing interval (x1.5), up to the SLA and past it at most every
    # enquiry_interval_s_max; an answer "not received" (RJCT AG09) resends the pacs.008 byte for byte
    enquire_after_s: float = Field(default=20.0, gt=0)
    enquiry_interval_s_max: float = Field(default=300.0, gt=0)
    not_found_reason: str = Field(default="AG09", pattern=r"^[A-Z0-9]{4}$")  # pacs.002 RJCT reason meaning "never received"
    # a recall (camt.056) unanswered this long is chased (camt.056 again, same ids) every
    # recall_chase_after_s, and reported UNANSWERED to the participant at recall_sla_s
    recall_sla_s: float = Field(default=600.0, gt=0)
    recall_chase_after_s: float = Field(default=120.0, gt=0)
    # a recall of an inbound payment: how long the beneficiary participant has to answer
    recall_reply_s: float = Field(default=300.0, gt=0)
    # return reason codes the partner may use in a pacs.004 (ISO ExternalReturnReason1Code)
    return_reasons: tuple[str, ...] = ("AC01", "AC03", "AC04", "AC06", "AG01", "AM05", "BE04", "CUST", "DUPL", "FOCR", "FRAD", "MD06", "MS02", "NARR", "RR04", "TECH")
    # a partner message the switch cannot process (valid XML, but no original, wrong state,
    # unknown reference): "admi.002" -> an admi.002 to the partner (and HTTP 422 with the code);
    # "http" -> only the HTTP refusal with the code, as before
    message_rejects: Literal["admi.002", "http"] = "admi.002"

    @model_validator(mode="after")
    def _timings(self) -> "PartnerExceptions":
        if self.recall_chase_after_s >= self.recall_sla_s:
            raise ValueError("[exceptions] recall_chase_after_s must be below recall_sla_s")
        return self


class Holiday(BaseModel):
    """A day without a cut-off. `mark`: V stated by an official source, O observed in public
    data, U unverified (the shipped calendars are U unless they say otherwise)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    date: date
    name: str = Field(min_length=1)
    mark: Literal["V", "O", "U"] = "U"


class CalendarFile(BaseModel):
    """config/calendars/<country>.toml: a country's business calendar for settlement."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    country: str = Field(pattern=r"^[A-Z]{2}$")
    weekends: tuple[int, ...] = (6, 7)  # ISO weekdays: 6 Saturday, 7 Sunday
    holidays: tuple[Holiday, ...] = ()
    notes: tuple[str, ...] = ()  # what the file assumes, [U] / [O]

    @model_validator(mode="after")
    def _days(self) -> "CalendarFile":
        if not set(self.weekends) <= set(range(1, 8)) or len(set(self.weekends)) == 7:
            raise ValueError(f"weekends {list(self.weekends)}: ISO weekdays 1..7, not all of them")
        days = [h.date for h in self.holidays]
        if len(set(days)) != len(days):
            raise ValueError("a holiday is listed twice")
        return self


def load_calendar_file(path: Path) -> CalendarFile:
    with path.open("rb") as fh:
        return CalendarFile.model_validate(tomllib.load(fh))


class PartnerSettlement(BaseModel):
    """When and how the partner network settles with the hub (issue 10): the cycles (cut-off
    times in the network's time zone on its business days, or every `every_s` seconds for the
    demo and tests), the settlement currency and account, and the report it sends per cycle.
    The real networks' settlement windows are not public: each profile marks its values [U]."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    currency: str = Field(pattern=r"^[A-Z]{3}$")  # the network's settlement currency
    timezone: str  # IANA name, e.g. "Asia/Bangkok"
    cut_offs: tuple[str, ...] = ()  # local "HH:MM" times, ascending
    # the business calendar: a file relative to the config directory (config/calendars/th.toml) ...
    calendar: str | None = None
    # ... or inline (when `calendar` is not given)
    weekends: tuple[int, ...] | None = None  # ISO weekdays without a cut-off (default 6, 7)
    holidays: tuple[date, ...] = ()
    report: str  # the report the network sends each cycle: camt.053.001.08 or camt.054.001.08
    report_due_s: float = Field(gt=0)  # the report is late when it has not come this long after the cut-off
    account_id: str = Field(min_length=1, max_length=34)  # the hub's settlement account at the network (Acct/Id/Othr/Id)
    every_s: float | None = Field(default=None, ge=1)  # demo/tests: a cycle every N seconds instead of cut_offs
    # entries per report page the network sends (simulators use it); a page travels as one HTTP
    # body, so entries x their size (about 0.7 kB each in camt.053) must fit the partner port's body limit
    page_entries_max: int = Field(default=1000, ge=1, le=10_000)

    @field_validator("cut_offs")
    @classmethod
    def _times(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            if re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", text) is None:
                raise ValueError(f"cut-off {text!r} is not a local time HH:MM")
        if list(value) != sorted(set(value)):
            raise ValueError(f"cut-offs {list(value)} must be ascending and distinct")
        return value

    @field_validator("report")
    @classmethod
    def _report(cls, value: str) -> str:
        if value not in REPORT_VERSIONS:
            raise ValueError(f"report {value!r}: one of {', '.join(REPORT_VERSIONS)}")
        return value

    @field_validator("every_s")
    @classmethod
    def _whole_seconds(cls, value: float | None) -> float | None:
        if value is not None and not float(value).is_integer():
            raise ValueError(f"every_s {value!r}: a whole number of seconds (cycle ids name the cut-off to the second)")
        return value

    @model_validator(mode="after")
    def _cycles(self) -> "PartnerSettlement":
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone") from None
        if not self.cut_offs and self.every_s is None:
            raise ValueError("[settlement] needs cut_offs (or every_s)")
        if self.calendar is not None and (self.weekends is not None or self.holidays):
            raise ValueError("[settlement] takes a calendar file or inline weekends / holidays, not both")
        return self

    def cut_off_times(self) -> tuple[time, ...]:
        return tuple(time.fromisoformat(text) for text in self.cut_offs)


# MEKONG_PARTNER_SETTLEMENT_EVERY_S_<PARTNER>: the demo's short cycles (switch/config.py reads it
# for the switch as a partner timing; simulators pass their environment to settlement_calendar)
SETTLEMENT_EVERY_S_ENV = "MEKONG_PARTNER_SETTLEMENT_EVERY_S_"


class PartnerAddress(BaseModel):
    """[address] (issue 12): what the pacs.008 carries for a party whose address the payment lacks
    (an old instruction below the corridor's threshold, a creditor known only by a proxy). Every
    party goes out with TwnNm and Ctry (CBPR+ since November 2026); the country is the debtor's
    (the switch's country) or the creditor's (the partner's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unknown_town: str = Field(default="NOTPROVIDED", min_length=1, max_length=35)
    lines_max: int = Field(default=2, ge=0, le=2)  # AdrLine per party: CBPR+ hybrid allows two


class PartnerProfile(BaseModel):
    """A partner network's rules as data. What the public facts do not say is listed, tagged [U]
    or [O], under `assumptions` in the TOML."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partner: str = Field(pattern=r"^[a-z]+$")
    network: str
    country: str = Field(pattern=r"^[A-Z]{2}$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    amount_decimals: int = Field(ge=0, le=5)
    pacs008_version: str = Field(pattern=r"^pacs\.008\.001\.\d\d$")
    pacs002_version: str = Field(pattern=r"^pacs\.002\.001\.\d\d$")
    clearing_system_code: str | None = None  # GrpHdr/SttlmInf/ClrSys/Cd (ISO external code)
    clearing_system_proprietary: str | None = None  # GrpHdr/SttlmInf/ClrSys/Prtry
    member_id_system_code: str | None = None  # FinInstnId/ClrSysMmbId/ClrSysId/Cd
    member_id_system_proprietary: str | None = None  # FinInstnId/ClrSysMmbId/ClrSysId/Prtry
    member_id_pattern: str  # creditor agent identifier (bank code, BIN, IIN)
    proxy_network_member_id: str | None = None  # creditor agent for proxies the network resolves
    proxy_resolution: bool = False  # resolve proxies with acmt.023 / acmt.024 before the pacs.008
    account_pattern: str  # creditor account number
    card_pattern: str | None = None  # creditor account numbers that are card PANs (NAPAS 9704..., UnionPay)
    card_luhn: bool = False  # a PAN must pass the Luhn check (AC01 otherwise)
    card_scheme_proprietary: str | None = None  # CdtrAcct/Id/Othr/SchmeNm/Prtry for a PAN
    text_rule: TextRule  # adapters/text.py: Latin transliteration, upper-case ASCII for NAPAS
    text_overflow: TextOverflow = "truncate"  # a Latin form longer than the maximum: cut or FF01
    name_chars_max: int = Field(ge=1, le=140)
    remittance_chars_max: int = Field(ge=1, le=140)
    # The partner's own status reason codes (pacs.002 StsRsnInf/Rsn/Prtry, or a non-ISO Rsn/Cd)
    # -> ISO external status reason codes. A code missing here becomes MS03, the code kept in the detail.
    reason_codes: Mapping[str, str] = {}
    proxies: Mapping[str, ProxyRule] = {}
    nexus_style: bool = False  # UETR, AccptncDtTm and quote id carried as Nexus does
    charge_bearer: Literal["SLEV", "SHAR", "DEBT", "CRED"] = "SLEV"
    transactions_per_message_max: int = Field(default=1, ge=1, le=1000)  # NbOfTxs of one pacs.008
    sla_s: float = Field(gt=0)  # a final pacs.002 is expected within this
    # no final pacs.002 this long after admission: the pacs.008 is resent byte for byte (the
    # partner answers a resend with its stored status); then again at a growing interval
    resend_after_s: float = Field(default=15.0, gt=0)
    base_url: str  # where the partner (or its simulator) takes ISO messages
    timeout_s: float = Field(gt=0, le=60)
    inflight_max: int = Field(ge=1, le=1024)
    assumptions: tuple[str, ...] = ()  # what the profile assumes beyond public facts
    tls: PartnerTls | None = None  # required unless the switch runs --insecure-dev
    # signed business application headers both ways; None: the partner neither signs nor takes
    # signed messages (bare Documents). Off with --insecure-dev.
    signing: PartnerSigning | None = None
    limits: PartnerLimits = PartnerLimits()  # [limits]: messages per second on the partner port
    exceptions: PartnerExceptions = PartnerExceptions()  # [exceptions]: enquiries, returns, recalls (issue 9)
    settlement: PartnerSettlement | None = None  # [settlement]: cycles and the report (issue 10); every shipped profile has one
    address: PartnerAddress = PartnerAddress()  # [address]: the parties' postal address fallback (issue 12)

    @model_validator(mode="after")
    def _codes_are_consistent(self) -> "PartnerProfile":
        for partner_code, iso in self.reason_codes.items():
            if iso not in REASON_CODES:
                raise ValueError(f"reason_codes: {partner_code!r} -> {iso!r} is not an ISO code this switch maps")
        if self.country != "IN" and "UPI" in (self.clearing_system_code, self.clearing_system_proprietary,
                                              self.member_id_system_code, self.member_id_system_proprietary):
            raise ValueError("UPI is India's Unified Payments Interface (ISO clearing code); UnionPay is not UPI")
        if self.resend_after_s >= self.sla_s:
            raise ValueError(f"resend_after_s {self.resend_after_s:g} must be below the SLA of {self.sla_s:g} s")
        if (self.card_luhn or self.card_scheme_proprietary) and self.card_pattern is None:
            raise ValueError("card_luhn / card_scheme_proprietary need a card_pattern")
        return self

    def proxy_rule(self, proxy_type: str) -> ProxyRule | None:
        return self.proxies.get(proxy_type)

    def member_id_ok(self, value: str) -> bool:
        return re.fullmatch(self.member_id_pattern, value) is not None

    def account_ok(self, value: str) -> bool:
        return re.fullmatch(self.account_pattern, value) is not None

    def is_card(self, account: str) -> bool:
        return self.card_pattern is not None and re.fullmatch(self.card_pattern, account) is not None

    def partner_code_for(self, iso_code: str) -> str | None:
        """The partner's own code for an ISO reason (the first in the table), for simulators."""
        return next((code for code, iso in self.reason_codes.items() if iso == iso_code), None)

    def settlement_calendar(self, config_dir: Path, *, env: AbcMapping[str, str] | None = None) -> Calendar:
        """The partner's settlement calendar: [settlement] with its calendar file (relative to
        `config_dir`) read. With `env`, MEKONG_PARTNER_SETTLEMENT_EVERY_S_<PARTNER> there
        replaces every_s (the switch gets it through switch/config.py; a simulator passes
        os.environ). ValueError when the profile has no [settlement] or a value is wrong."""
        s = self.settlement
        if s is None:
            raise ValueError(f"partner {self.partner}: the profile has no [settlement] section")
        every_s = s.every_s
        override = (env or {}).get(SETTLEMENT_EVERY_S_ENV + self.partner.upper())
        if override:
            every_s = PartnerSettlement.model_validate({**s.model_dump(), "every_s": float(override)}).every_s
        weekends: tuple[int, ...] = s.weekends if s.weekends is not None else (6, 7)
        holidays: tuple[date, ...] = s.holidays
        if s.calendar is not None:
            calendar_file = load_calendar_file(config_dir / s.calendar)
            weekends, holidays = calendar_file.weekends, tuple(h.date for h in calendar_file.holidays)
        return Calendar(
            partner=self.partner,
            timezone=s.timezone,
            cut_offs=s.cut_off_times(),
            weekends=frozenset(weekends),
            holidays=frozenset(holidays),
            every_s=every_s,
        )


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of a card PAN (python-stdnum)."""
    return digits.isdigit() and luhn.is_valid(digits)


def load_profile(path: Path, *, base_url: str | None = None) -> PartnerProfile:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    if base_url:
        data["base_url"] = base_url
    return PartnerProfile.model_validate(data)


@dataclass(frozen=True, slots=True)
class PartnerStatus:
    """One transaction status from a partner's pacs.002, already in domain terms."""

    uetr: str
    original_message_id: str | None
    target: PaymentState
    reason_code: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class StatusReport:
    message_id: str
    statuses: tuple[PartnerStatus, ...]


class PartnerMapping(Protocol):
    """Pure translation between domain values and the partner's ISO 20022 flavour."""

    profile: PartnerProfile

    def check_creditor(self, creditor: Party) -> None:
        """Raise InstructionRejected (with the ISO reason code) if the partner cannot take it."""

    def to_pacs008(self, payments: Sequence[Payment], *, message_id: str, created_at: datetime) -> CustomerCreditTransfer:
        """One pacs.008 carrying these payments, not yet validated."""

    def parse_status(self, root: etree._Element) -> StatusReport:
        """A validated pacs.002 in the profile's version, as domain statuses."""

    def check_text(self, text: str, what: str, chars_max: int) -> None:
        """Raise InstructionRejected (RR10, FF01) for text the partner cannot carry."""

    def status_request(self, payment: Payment, *, message_id: str, created_at: datetime) -> Any:
        """A pacs.028 (iso20022.pacs028.StatusRequest) about one payment sent to the partner (issue 9)."""
