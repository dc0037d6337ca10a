"""What every partner adapter is made of (STYLE §7): a profile (data), a pure mapping and a
transport. The profile is read from `config/partners/<partner>.toml`; what the data cannot say
lives in the partner's `mapping.py`."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Mapping, Protocol, Sequence

from lxml import etree

from iso20022.pacs008 import CustomerCreditTransfer
from pydantic import BaseModel, ConfigDict, Field

from switch.domain.payment import Party, Payment, PaymentState


class ProxyRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    pattern: str  # full-match regular expression for the proxy value
    iso_type: str  # ExternalProxyAccountType1Code / partner code put in CdtrAcct/Prxy/Tp
    description: str = ""


class PartnerProfile(BaseModel):
    """A partner network's rules as data. Unknown facts are marked `assumed` in the TOML."""

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
    account_pattern: str  # creditor account number
    text_rule: Literal["latin", "ascii_upper"]
    name_chars_max: int = Field(ge=1, le=140)
    remittance_chars_max: int = Field(ge=1, le=140)
    proxies: Mapping[str, ProxyRule] = {}
    nexus_style: bool = False  # UETR, AccptncDtTm and quote id carried as Nexus does
    charge_bearer: Literal["SLEV", "SHAR", "DEBT", "CRED"] = "SLEV"
    transactions_per_message_max: int = Field(default=1, ge=1, le=1000)  # NbOfTxs of one pacs.008
    sla_s: float = Field(gt=0)  # a final pacs.002 is expected within this
    base_url: str  # where the partner (or its simulator) takes ISO messages
    timeout_s: float = Field(gt=0, le=60)
    inflight_max: int = Field(ge=1, le=1024)
    assumptions: tuple[str, ...] = ()  # what the profile assumes beyond public facts

    def proxy_rule(self, proxy_type: str) -> ProxyRule | None:
        return self.proxies.get(proxy_type)

    def member_id_ok(self, value: str) -> bool:
        return re.fullmatch(self.member_id_pattern, value) is not None

    def account_ok(self, value: str) -> bool:
        return re.fullmatch(self.account_pattern, value) is not None


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
