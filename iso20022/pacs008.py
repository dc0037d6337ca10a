"""pacs.008 FI-to-FI customer credit transfer: one model, built for .08, .10 and .13.

build() emits elements in the XSD sequence order of each version and validates nothing; use
build_validated() (or SchemaSet.validate on to_element()) before sending. parse() reads any of the
three versions back into the model; it expects a document that already passed validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Literal

from lxml import etree

from iso20022._xml import (
    ACCOUNT_SPEC,
    AGENT_SPEC,
    CHOICE_SPEC,
    ELEMENT,
    LIST,
    PARTY_SPEC,
    TEXT,
    AccountKeys,
    AgentKeys,
    Every,
    PartyKeys,
    Writer,
    account_in,
    agent_in,
    amount_in,
    compile_rules,
    date_from,
    datetime_from,
    flatten,
    party_in,
    write_account,
    write_agent,
    write_party,
)
from iso20022._xml import to_element as to_element_of
from iso20022.errors import XmlRejected
# Party, PartyIdentification, Proxy and Account are shared with pain.001 and acmt.023/024; they stay
# importable from here (pacs008.Party, ...). A proxy-only Account needs pacs.008.001.10 or later.
from iso20022.model import Account, Agent, Amount, Party, PartyIdentification, Proxy  # noqa: F401
from iso20022.parsing import ISO_NAMESPACE_PREFIX, message_id_of
from iso20022.schemas import SchemaSet

VERSIONS: Final = ("pacs.008.001.08", "pacs.008.001.10", "pacs.008.001.13")
# From .13 on, AccptncDtTm moved into CdtTrfTxInf/AddtlDtTm.
_ACCEPTANCE_WRAPPED: Final = frozenset({"pacs.008.001.13"})

ChargeBearer = Literal["SLEV", "SHAR", "DEBT", "CRED"]


@dataclass(frozen=True, slots=True)
class Settlement:
    """SttlmInf: method (CLRG) and clearing system by code ("THN") or proprietary ("NAPAS")."""

    clearing_system_code: str | None = None
    clearing_system_proprietary: str | None = None
    method: str = "CLRG"


@dataclass(frozen=True, slots=True)
class CreditTransfer:
    """One CdtTrfTxInf."""

    end_to_end_id: str
    uetr: str
    settlement_amount: Amount
    charge_bearer: ChargeBearer
    debtor: Party
    debtor_agent: Agent
    creditor_agent: Agent
    creditor: Party
    instruction_id: str | None = None
    tx_id: str | None = None
    accepted_at: datetime | None = None
    instructed_amount: Amount | None = None
    exchange_rate: str | None = None  # BaseOneRate as text, e.g. "0.0081234"
    instructing_agent: Agent | None = None
    instructed_agent: Agent | None = None
    debtor_account: Account | None = None
    creditor_account: Account | None = None
    purpose_code: str | None = None
    remittance_lines: tuple[str, ...] = ()  # RmtInf/Ustrd, each <= 140
    additional_remittance: tuple[str, ...] = ()  # RmtInf/Strd/AddtlRmtInf, <= 3 x 140 (Nexus quote id)


@dataclass(frozen=True, slots=True)
class CustomerCreditTransfer:
    """FIToFICstmrCdtTrf; NbOfTxs is derived from len(transactions)."""

    message_id: str
    created_at: datetime
    settlement: Settlement
    transactions: tuple[CreditTransfer, ...]
    total_settlement_amount: Amount | None = None
    settlement_date: date | None = None


def build(message: CustomerCreditTransfer, version: str) -> bytes:
    """UTF-8 bytes with an XML declaration, for version (one of VERSIONS); not validated."""
    w = Writer(ISO_NAMESPACE_PREFIX + version)
    w.open("FIToFICstmrCdtTrf")
    w.open("GrpHdr")
    w.leaf("MsgId", message.message_id)
    w.leaf("CreDtTm", message.created_at.isoformat())
    w.leaf("NbOfTxs", str(len(message.transactions)))
    if message.total_settlement_amount is not None:
        w.amount("TtlIntrBkSttlmAmt", message.total_settlement_amount)
    if message.settlement_date is not None:
        w.leaf("IntrBkSttlmDt", message.settlement_date.isoformat())
    w.open("SttlmInf")
    w.leaf("SttlmMtd", message.settlement.method)
    w.choice("ClrSys", message.settlement.clearing_system_code, message.settlement.clearing_system_proprietary)
    w.close("SttlmInf")
    w.close("GrpHdr")
    wrapped = version in _ACCEPTANCE_WRAPPED
    for tx in message.transactions:
        _write_transaction(w, tx, wrapped)
    w.close("FIToFICstmrCdtTrf")
    return w.to_bytes()


def to_element(message: CustomerCreditTransfer, version: str) -> etree._Element:
    """The Document element, e.g. to validate with SchemaSet.validate."""
    return to_element_of(build(message, version))


def build_validated(message: CustomerCreditTransfer, version: str, schemas: SchemaSet) -> bytes:
    """build(), then validate against the official XSD (SchemaViolation); returns the same bytes."""
    data = build(message, version)
    schemas.validate(to_element_of(data), version)
    return data


def _write_transaction(w: Writer, tx: CreditTransfer, wrapped: bool) -> None:
    w.open("CdtTrfTxInf")
    w.open("PmtId")
    if tx.instruction_id is not None:
        w.leaf("InstrId", tx.instruction_id)
    w.leaf("EndToEndId", tx.end_to_end_id)
    if tx.tx_id is not None:
        w.leaf("TxId", tx.tx_id)
    w.leaf("UETR", tx.uetr)
    w.close("PmtId")
    w.amount("IntrBkSttlmAmt", tx.settlement_amount)
    if tx.accepted_at is not None:
        if wrapped:
            w.open("AddtlDtTm")
        w.leaf("AccptncDtTm", tx.accepted_at.isoformat())
        if wrapped:
            w.close("AddtlDtTm")
    if tx.instructed_amount is not None:
        w.amount("InstdAmt", tx.instructed_amount)
    if tx.exchange_rate is not None:
        w.leaf("XchgRate", tx.exchange_rate)
    w.leaf("ChrgBr", tx.charge_bearer)
    if tx.instructing_agent is not None:
        write_agent(w, "InstgAgt", tx.instructing_agent)
    if tx.instructed_agent is not None:
        write_agent(w, "InstdAgt", tx.instructed_agent)
    write_party(w, "Dbtr", tx.debtor)
    if tx.debtor_account is not None:
        write_account(w, "DbtrAcct", tx.debtor_account)
    write_agent(w, "DbtrAgt", tx.debtor_agent)
    write_agent(w, "CdtrAgt", tx.creditor_agent)
    write_party(w, "Cdtr", tx.creditor)
    if tx.creditor_account is not None:
        write_account(w, "CdtrAcct", tx.creditor_account)
    w.choice("Purp", tx.purpose_code, None)
    if tx.remittance_lines or tx.additional_remittance:
        w.open("RmtInf")
        for line in tx.remittance_lines:
            w.leaf("Ustrd", line)
        if tx.additional_remittance:
            w.open("Strd")
            for line in tx.additional_remittance:
                w.leaf("AddtlRmtInf", line)
            w.close("Strd")
        w.close("RmtInf")
    w.close("CdtTrfTxInf")


_HEADER_SPEC: Final = {
    "MsgId": TEXT,
    "CreDtTm": TEXT,
    "NbOfTxs": TEXT,
    "TtlIntrBkSttlmAmt": ELEMENT,
    "IntrBkSttlmDt": TEXT,
    "SttlmInf": {"SttlmMtd": TEXT, "ClrSys": CHOICE_SPEC},
}
_TX_SPEC: Final = {
    "PmtId": {"InstrId": TEXT, "EndToEndId": TEXT, "TxId": TEXT, "UETR": TEXT},
    "IntrBkSttlmAmt": ELEMENT,
    "AccptncDtTm": TEXT,  # .08 / .10
    "AddtlDtTm": {"AccptncDtTm": TEXT},  # .13
    "InstdAmt": ELEMENT,
    "XchgRate": TEXT,
    "ChrgBr": TEXT,
    "InstgAgt": AGENT_SPEC,
    "InstdAgt": AGENT_SPEC,
    "Dbtr": PARTY_SPEC,
    "DbtrAcct": ACCOUNT_SPEC,
    "DbtrAgt": AGENT_SPEC,
    "CdtrAgt": AGENT_SPEC,
    "Cdtr": PARTY_SPEC,
    "CdtrAcct": ACCOUNT_SPEC,
    "Purp": CHOICE_SPEC,
    "RmtInf": Every({"Ustrd": LIST, "Strd": Every({"AddtlRmtInf": LIST})}),
}
_RULES: Final = {
    version: (compile_rules(ISO_NAMESPACE_PREFIX + version, _HEADER_SPEC),
              compile_rules(ISO_NAMESPACE_PREFIX + version, _TX_SPEC),
              f"{{{ISO_NAMESPACE_PREFIX + version}}}")
    for version in VERSIONS
}
_AGENTS: Final = {prefix: AgentKeys(prefix) for prefix in ("InstgAgt", "InstdAgt", "DbtrAgt", "CdtrAgt")}


def parse(root: etree._Element) -> CustomerCreditTransfer:
    """The model from a validated pacs.008 Document; XmlRejected (FF01) on inconsistency.

    Each element is visited once (flatten() with per-version rules), no ElementPath look-ups.
    """
    version = message_id_of(root)
    rules = _RULES.get(version)
    if rules is None:
        raise XmlRejected("FF01", f"unsupported message {version}; expected one of {VERSIONS}")
    header_rules, tx_rules, ns = rules
    body_tag, header_tag, tx_tag = ns + "FIToFICstmrCdtTrf", ns + "GrpHdr", ns + "CdtTrfTxInf"
    body = next((child for child in root if child.tag == body_tag), None)
    if body is None:
        raise XmlRejected("FF01", "FIToFICstmrCdtTrf is missing")
    header = None
    tx_elements = []
    for child in body:
        tag = child.tag
        if tag == tx_tag:
            tx_elements.append(child)
        elif tag == header_tag and header is None:
            header = child
    if header is None:
        raise XmlRejected("FF01", "GrpHdr is missing")
    acceptance_key = "AddtlDtTm/AccptncDtTm" if version in _ACCEPTANCE_WRAPPED else "AccptncDtTm"
    transactions = tuple(_transaction(flatten(tx, tx_rules, {}), acceptance_key) for tx in tx_elements)
    fields = flatten(header, header_rules, {})
    declared = _required(fields, "NbOfTxs", "GrpHdr")
    if declared != str(len(transactions)):
        raise XmlRejected("FF01", f"GrpHdr/NbOfTxs is {declared} but {len(transactions)} CdtTrfTxInf follow")
    created_at = datetime_from("CreDtTm", fields.get("CreDtTm"))
    if created_at is None:
        raise XmlRejected("FF01", "GrpHdr/CreDtTm is missing")
    return CustomerCreditTransfer(
        message_id=_required(fields, "MsgId", "GrpHdr"),
        created_at=created_at,
        settlement=Settlement(
            clearing_system_code=fields.get("SttlmInf/ClrSys/Cd"),
            clearing_system_proprietary=fields.get("SttlmInf/ClrSys/Prtry"),
            method=_required(fields, "SttlmInf/SttlmMtd", "GrpHdr"),
        ),
        transactions=transactions,
        total_settlement_amount=amount_in(fields, "TtlIntrBkSttlmAmt"),
        settlement_date=date_from("IntrBkSttlmDt", fields.get("IntrBkSttlmDt")),
    )


def _required(fields: dict, key: str, where: str) -> str:  # type: ignore[type-arg]
    value = fields.get(key)
    if value is None:
        raise XmlRejected("FF01", f"{where}/{key} is missing")
    return value  # type: ignore[no-any-return]


def _transaction(f: dict, acceptance_key: str) -> CreditTransfer:  # type: ignore[type-arg]
    amount = amount_in(f, "IntrBkSttlmAmt")
    debtor_agent = agent_in(f, _AGENTS["DbtrAgt"])
    creditor_agent = agent_in(f, _AGENTS["CdtrAgt"])
    if amount is None or debtor_agent is None or creditor_agent is None:
        raise XmlRejected("FF01", "CdtTrfTxInf lacks IntrBkSttlmAmt, DbtrAgt or CdtrAgt")
    get = f.get
    return CreditTransfer(
        end_to_end_id=_required(f, "PmtId/EndToEndId", "CdtTrfTxInf"),
        uetr=_required(f, "PmtId/UETR", "CdtTrfTxInf"),
        settlement_amount=amount,
        charge_bearer=_required(f, "ChrgBr", "CdtTrfTxInf"),  # type: ignore[arg-type]  # XSD enumerates it
        debtor=_party(f, "Dbtr"),
        debtor_agent=debtor_agent,
        creditor_agent=creditor_agent,
        creditor=_party(f, "Cdtr"),
        instruction_id=get("PmtId/InstrId"),
        tx_id=get("PmtId/TxId"),
        accepted_at=datetime_from(acceptance_key, get(acceptance_key)),
        instructed_amount=amount_in(f, "InstdAmt"),
        exchange_rate=get("XchgRate"),
        instructing_agent=agent_in(f, _AGENTS["InstgAgt"]),
        instructed_agent=agent_in(f, _AGENTS["InstdAgt"]),
        debtor_account=account_in(f, _ACCOUNTS["DbtrAcct"], "CdtTrfTxInf"),
        creditor_account=account_in(f, _ACCOUNTS["CdtrAcct"], "CdtTrfTxInf"),
        purpose_code=get("Purp/Cd"),
        remittance_lines=tuple(get("RmtInf/Ustrd", ())),
        additional_remittance=tuple(get("RmtInf/Strd/AddtlRmtInf", ())),
    )


_PARTIES: Final = {tag: PartyKeys(tag) for tag in ("Dbtr", "Cdtr")}
_ACCOUNTS: Final = {tag: AccountKeys(tag) for tag in ("DbtrAcct", "CdtrAcct")}


def _party(f: dict, tag: str) -> Party:  # type: ignore[type-arg]
    party = party_in(f, _PARTIES[tag], "CdtTrfTxInf")
    if party is None:
        raise XmlRejected("FF01", f"CdtTrfTxInf/{tag} is missing", path=f"CdtTrfTxInf/{tag}")
    return party
