"""Message-model types shared by the builders and parsers (frozen, no behaviour)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class Amount:
    """An amount exactly as on the wire ("1500.00"); the domain converts it, never this layer."""

    value: str
    currency: str


@dataclass(frozen=True, slots=True)
class ClearingSystemMember:
    """ClrSysMmbId: MmbId plus ClrSysId/Cd (e.g. "THCBC") or ClrSysId/Prtry."""

    member_id: str
    system_code: str | None = None
    system_proprietary: str | None = None


@dataclass(frozen=True, slots=True)
class Agent:
    """A financial institution by BICFI and/or clearing-system membership (FinInstnId/PstlAdr/Ctry too)."""

    bicfi: str | None = None
    clearing_member: ClearingSystemMember | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class PartyIdentification:
    """Id/PrvtId/Othr (or OrgId/Othr when organisation) with an optional scheme."""

    identifier: str
    scheme_code: str | None = None
    scheme_proprietary: str | None = None
    issuer: str | None = None
    organisation: bool = False


@dataclass(frozen=True, slots=True)
class PostalAddress:
    """PstlAdr (PostalAddress24/27) as the switch uses it: structured elements, or hybrid (TwnNm and
    Ctry plus at most two AdrLine; issue 12, CBPR+). Emitted in XSD order: StrtNm, BldgNb, PstCd,
    TwnNm, CtrySubDvsn, Ctry, AdrLine."""

    country: str | None = None  # Ctry
    town: str | None = None  # TwnNm
    street: str | None = None  # StrtNm
    building: str | None = None  # BldgNb
    post_code: str | None = None  # PstCd
    subdivision: str | None = None  # CtrySubDvsn
    lines: tuple[str, ...] = ()  # AdrLine


@dataclass(frozen=True, slots=True)
class BirthPlace:
    """Id/PrvtId/DtAndPlcOfBirth: BirthDt, CityOfBirth, CtryOfBirth (all three required by the XSD)."""

    birth_date: date
    city: str
    country: str


@dataclass(frozen=True, slots=True)
class Party:
    """A party: Nm, PstlAdr, and Id: PrvtId (DtAndPlcOfBirth, Othr) or OrgId (LEI, Othr).

    `country` alone is the short form (PstlAdr/Ctry only); `address`, when given, wins over it.
    Id is an XSD choice: an LEI (or an organisation's Othr) makes it OrgId, and the birth details
    are then left out."""

    name: str | None = None
    country: str | None = None  # PstlAdr/Ctry
    identification: PartyIdentification | None = None  # the first Id/(PrvtId|OrgId)/Othr
    address: PostalAddress | None = None  # issue 12: the full PstlAdr
    birth: BirthPlace | None = None  # issue 12: Id/PrvtId/DtAndPlcOfBirth
    lei: str | None = None  # issue 12: Id/OrgId/LEI

    @property
    def postal_country(self) -> str | None:
        return self.address.country if self.address is not None else self.country


@dataclass(frozen=True, slots=True)
class Proxy:
    """Prxy: a proxy (mobile, national id...) with type code or proprietary type."""

    identifier: str
    type_code: str | None = None
    type_proprietary: str | None = None


@dataclass(frozen=True, slots=True)
class Account:
    """CashAccount: Id/IBAN or Id/Othr (+ SchmeNm), Ccy, and/or a proxy.

    Whether a proxy alone is enough depends on the message: CashAccount38 (pacs.008.001.08,
    pain.001.001.09) requires Id, CashAccount40 (pacs.008.001.10+, acmt.023/024) does not.
    """

    iban: str | None = None
    other_id: str | None = None
    scheme_code: str | None = None
    scheme_proprietary: str | None = None
    proxy: Proxy | None = None
    currency: str | None = None  # Ccy, e.g. the debtor account's currency



@dataclass(frozen=True, slots=True)
class PartyAndAccount:
    """IdentificationInformation5 of acmt.023/024 (PtyAndAcctId, OrgnlPtyAndAcctId, UpdtdPtyAndAcctId).

    Pty, Acct (e.g. a proxy to resolve, or the account it resolves to) and Agt (the account's agent).
    """

    party: Party | None = None
    account: Account | None = None
    agent: Agent | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    """Assgnmt of acmt.023/024: MsgId, CreDtTm, Assgnr/Agt (sender) and Assgne/Agt (receiver)."""

    message_id: str
    created_at: datetime
    assigner: Agent
    assignee: Agent
