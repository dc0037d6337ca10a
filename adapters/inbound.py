"""Inbound payments, the partner side: a partner's pacs.008 read into plain values, and the
pacs.002 the switch answers it with. Shared by every partner (the profile says which versions);
pure, no I/O.

The partner converts before it sends: the pacs.008's IntrBkSttlmAmt is what the Bakong account
is credited with (KHR or USD), InstdAmt and XchgRate say what the payer sent, when given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import phonenumbers
from lxml import etree

from iso20022 import pacs002, pacs008
from iso20022.model import Agent, Amount
from iso20022.model import Party as WireParty
from iso20022.model import PostalAddress as WireAddress
from switch.domain.payment import Identification, PostalAddress

# Proxy type codes a partner may use for "pay this Bakong mobile number" (ISO
# ExternalProxyAccountType1Code MOBL / TELE, Nexus MBNO) [U: partners' own codes are not public].
MOBILE_PROXY_TYPES: Final = frozenset({"MBNO", "MOBL", "TELE", "MOBILE"})
answer_prefix: Final = "R"  # pacs.002 MsgId toward the partner: R + the UETR's 32 hex digits
# pacs.002 MsgId of a DUPL answer to a pacs.008 that reused a UETR or a message id: D + 34 hex
# digits of a hash of (sender, its message id, the UETR), so a resend of that message is answered
# with the same DUPL message and R + UETR stays the payment's own answer
duplicate_answer_prefix: Final = "D"
NATIONAL_ID_SCHEME: Final = "NIDN"  # Id/PrvtId/Othr/SchmeNm/Cd of a national identity number [O ISO ExternalPersonIdentification1Code]


@dataclass(frozen=True, slots=True)
class InboundTransfer:
    """One CdtTrfTxInf of a partner's pacs.008, in plain values."""

    uetr: str
    end_to_end_id: str
    amount: Amount  # IntrBkSttlmAmt: what the Bakong account is credited with
    instructed_amount: Amount | None
    exchange_rate: str | None
    debtor_name: str
    debtor_account: str
    debtor_agent: str
    creditor_name: str
    creditor_account: str | None  # Bakong `name@bank`
    creditor_proxy_type: str | None
    creditor_proxy: str | None
    remittance: str | None
    # issue 12: the parties' postal addresses and the debtor's identification, as the pacs.008 gives them
    debtor_address: PostalAddress | None = None
    debtor_identification: Identification | None = None
    creditor_address: PostalAddress | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    message_id: str
    transfers: tuple[InboundTransfer, ...]


def read_pacs008(root: etree._Element) -> InboundMessage:
    """A validated pacs.008 (any supported version) as inbound transfers."""
    message = pacs008.parse(root)
    return InboundMessage(message.message_id, tuple(_transfer(tx) for tx in message.transactions))


def _agent_id(agent: Agent | None) -> str:
    if agent is None:
        return ""
    if agent.clearing_member is not None:
        return agent.clearing_member.member_id
    return agent.bicfi or ""


def _transfer(tx: pacs008.CreditTransfer) -> InboundTransfer:
    account = tx.creditor_account
    proxy = account.proxy if account is not None else None
    debtor_account = tx.debtor_account
    debtor_account_id = ""
    if debtor_account is not None:
        debtor_account_id = debtor_account.other_id or debtor_account.iban or (
            debtor_account.proxy.identifier if debtor_account.proxy else ""
        )
    lines = tx.remittance_lines
    return InboundTransfer(
        uetr=tx.uetr,
        end_to_end_id=tx.end_to_end_id,
        amount=tx.settlement_amount,
        instructed_amount=tx.instructed_amount,
        exchange_rate=tx.exchange_rate,
        debtor_name=tx.debtor.name or "",
        debtor_account=debtor_account_id[:34],
        debtor_agent=_agent_id(tx.debtor_agent)[:35],
        creditor_name=tx.creditor.name or "",
        creditor_account=account.other_id if account is not None else None,
        creditor_proxy_type=(proxy.type_code or proxy.type_proprietary) if proxy is not None else None,
        creditor_proxy=proxy.identifier if proxy is not None else None,
        remittance=lines[0] if lines else None,
        debtor_address=postal_address(tx.debtor),
        debtor_identification=identification(tx.debtor),
        creditor_address=postal_address(tx.creditor),
    )


def postal_address(party: WireParty) -> PostalAddress | None:
    """A party's PstlAdr as the domain address (issue 12); None without one or with no country
    (the domain address always has a country). A PstlAdr with Ctry alone is an address too."""
    wire: WireAddress | None = party.address
    if wire is None:
        return PostalAddress(country=party.country) if party.country else None
    if wire.country is None:
        return None
    return PostalAddress(country=wire.country, town=wire.town, street=wire.street, building=wire.building,
                         post_code=wire.post_code, subdivision=wire.subdivision, lines=wire.lines)


def identification(party: WireParty) -> Identification | None:
    """A party's Id (issue 12): OrgId/LEI, PrvtId/DtAndPlcOfBirth, and a PrvtId/Othr under the NIDN
    scheme (its Issr the issuer); None when the pacs.008 gives none of them."""
    other = party.identification
    national = other if other is not None and not other.organisation and other.scheme_code == NATIONAL_ID_SCHEME else None
    birth = party.birth
    if party.lei is None and birth is None and national is None:
        return None
    return Identification(
        national_id=national.identifier if national else None,
        national_id_issuer=national.issuer if national else None,
        birth_date=birth.birth_date if birth else None,
        birth_city=birth.city if birth else None,
        birth_country=birth.country if birth else None,
        lei=party.lei,
    )


def bakong_mobile(value: str) -> str | None:
    """A Cambodian mobile number as Bakong writes it (855 + national number, no `+`), or None
    when it is not a valid Cambodian number. Parsed by `phonenumbers` (Google's libphonenumber
    metadata): accepts +855..., 855..., 0... and separators."""
    text = value.strip()
    if text.startswith("855"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, "KH")
    except phonenumbers.NumberParseException:
        return None
    if number.country_code != 855 or not phonenumbers.is_valid_number(number):
        return None
    return f"855{number.national_number}"


def answer_message_id(uetr: str) -> str:
    return answer_prefix + uetr.replace("-", "")


def duplicate_answer_message_id(partner: str, message_id: str, uetr: str) -> str:
    digest = hashlib.sha256(f"{partner}\n{message_id}\n{uetr}".encode()).hexdigest()
    return duplicate_answer_prefix + digest[:34]  # Max35Text


def status_report(
    *,
    switch_bic: str,
    uetr: str,
    end_to_end_id: str,
    accepted: bool,
    reason_code: str | None,
    detail: str | None,
    at: datetime,
    message_id: str | None = None,
) -> pacs002.PaymentStatusReport:
    """The switch's final answer to one inbound transfer (one pacs.002 per payment, so a resend
    of the partner's pacs.008 can be answered with exactly the same message). message_id: the
    MsgId when it is not the payment's own answer (a DUPL answer)."""
    reasons: Sequence[pacs002.StatusReason] = ()
    if not accepted:
        reasons = (pacs002.StatusReason(reason_code or "MS03", ((detail or "")[:105],) if detail else ()),)
    return pacs002.PaymentStatusReport(
        message_id=message_id or answer_message_id(uetr),
        created_at=at,
        instructing_agent=Agent(bicfi=switch_bic),
        transactions=(
            pacs002.TransactionReport(
                status=pacs002.TransactionStatus.ACSC if accepted else pacs002.TransactionStatus.RJCT,
                original_end_to_end_id=end_to_end_id,
                original_uetr=uetr,
                reasons=tuple(reasons),
                accepted_at=at if accepted else None,
            ),
        ),
    )
