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
    Names,
    Writer,
    agent_from,
    amount_from,
    children,
    choice_from,
    date_from,
    datetime_from,
    first,
    required_in,
    text_in,
    write_agent,
)
from iso20022._xml import to_element as to_element_of
from iso20022.errors import XmlRejected
from iso20022.model import Agent, Amount
from iso20022.parsing import ISO_NAMESPACE_PREFIX, message_id_of
from iso20022.schemas import SchemaSet

VERSIONS: Final = ("pacs.008.001.08", "pacs.008.001.10", "pacs.008.001.13")
# From .13 on, AccptncDtTm moved into CdtTrfTxInf/AddtlDtTm.
_ACCEPTANCE_WRAPPED: Final = frozenset({"pacs.008.001.13"})
_NAMES: Final = {version: Names(ISO_NAMESPACE_PREFIX + version) for version in VERSIONS}

ChargeBearer = Literal["SLEV", "SHAR", "DEBT", "CRED"]


@dataclass(frozen=True, slots=True)
class Settlement:
    """SttlmInf: method (CLRG) and clearing system by code ("THN") or proprietary ("NAPAS")."""

    clearing_system_code: str | None = None
    clearing_system_proprietary: str | None = None
    method: str = "CLRG"


@dataclass(frozen=True, slots=True)
class PartyIdentification:
    """Id/PrvtId/Othr (or OrgId/Othr when organisation) with an optional scheme."""

    identifier: str
    scheme_code: str | None = None
    scheme_proprietary: str | None = None
    issuer: str | None = None
    organisation: bool = False


@dataclass(frozen=True, slots=True)
class Party:
    name: str | None = None
    country: str | None = None  # PstlAdr/Ctry
    identification: PartyIdentification | None = None


@dataclass(frozen=True, slots=True)
class Proxy:
    """Prxy: a proxy (mobile, national id...) with type code or proprietary type."""

    identifier: str
    type_code: str | None = None
    type_proprietary: str | None = None


@dataclass(frozen=True, slots=True)
class Account:
    """CashAccount: Id/IBAN or Id/Othr (+ SchmeNm), and/or a proxy (proxy-only needs .10+)."""

    iban: str | None = None
    other_id: str | None = None
    scheme_code: str | None = None
    scheme_proprietary: str | None = None
    proxy: Proxy | None = None


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
    _write_party(w, "Dbtr", tx.debtor)
    if tx.debtor_account is not None:
        _write_account(w, "DbtrAcct", tx.debtor_account)
    write_agent(w, "DbtrAgt", tx.debtor_agent)
    write_agent(w, "CdtrAgt", tx.creditor_agent)
    _write_party(w, "Cdtr", tx.creditor)
    if tx.creditor_account is not None:
        _write_account(w, "CdtrAcct", tx.creditor_account)
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


def _write_party(w: Writer, tag: str, party: Party) -> None:
    w.open(tag)
    if party.name is not None:
        w.leaf("Nm", party.name)
    if party.country is not None:
        w.open("PstlAdr")
        w.leaf("Ctry", party.country)
        w.close("PstlAdr")
    ident = party.identification
    if ident is not None:
        kind = "OrgId" if ident.organisation else "PrvtId"
        w.open("Id")
        w.open(kind)
        w.open("Othr")
        w.leaf("Id", ident.identifier)
        w.choice("SchmeNm", ident.scheme_code, ident.scheme_proprietary)
        if ident.issuer is not None:
            w.leaf("Issr", ident.issuer)
        w.close("Othr")
        w.close(kind)
        w.close("Id")
    w.close(tag)


def _write_account(w: Writer, tag: str, account: Account) -> None:
    w.open(tag)
    if account.iban is not None:
        w.open("Id")
        w.leaf("IBAN", account.iban)
        w.close("Id")
    elif account.other_id is not None:
        w.open("Id")
        w.open("Othr")
        w.leaf("Id", account.other_id)
        w.choice("SchmeNm", account.scheme_code, account.scheme_proprietary)
        w.close("Othr")
        w.close("Id")
    if account.proxy is not None:
        w.open("Prxy")
        w.choice("Tp", account.proxy.type_code, account.proxy.type_proprietary)
        w.leaf("Id", account.proxy.identifier)
        w.close("Prxy")
    w.close(tag)


def parse(root: etree._Element) -> CustomerCreditTransfer:
    """The model from a validated pacs.008 Document; XmlRejected (FF01) on inconsistency.

    One pass over each element's children (dicts by Clark tag), no ElementPath look-ups.
    """
    version = message_id_of(root)
    n = _NAMES.get(version)
    if n is None:
        raise XmlRejected("FF01", f"unsupported message {version}; expected one of {VERSIONS}")
    body = first(root, n.FIToFICstmrCdtTrf)
    if body is None:
        raise XmlRejected("FF01", "FIToFICstmrCdtTrf is missing")
    header = None
    tx_elements = []
    header_tag, tx_tag = n.GrpHdr, n.CdtTrfTxInf
    for child in body:
        tag = child.tag
        if tag == tx_tag:
            tx_elements.append(child)
        elif tag == header_tag and header is None:
            header = child
    if header is None:
        raise XmlRejected("FF01", "GrpHdr is missing")
    wrapped = version in _ACCEPTANCE_WRAPPED
    transactions = tuple(_parse_transaction(tx, n, wrapped) for tx in tx_elements)
    fields = children(header)
    declared = required_in(fields, n.NbOfTxs, "GrpHdr/NbOfTxs")
    if declared != str(len(transactions)):
        raise XmlRejected("FF01", f"GrpHdr/NbOfTxs is {declared} but {len(transactions)} CdtTrfTxInf follow")
    created_at = datetime_from("CreDtTm", text_in(fields, n.CreDtTm))
    if created_at is None:
        raise XmlRejected("FF01", "GrpHdr/CreDtTm is missing")
    message_id = required_in(fields, n.MsgId, "GrpHdr/MsgId")
    settlement = fields.get(n.SttlmInf)
    settlement_fields = {} if settlement is None else children(settlement)
    code, proprietary = choice_from(settlement_fields.get(n.ClrSys), n)
    return CustomerCreditTransfer(
        message_id=message_id,
        created_at=created_at,
        settlement=Settlement(
            clearing_system_code=code,
            clearing_system_proprietary=proprietary,
            method=required_in(settlement_fields, n.SttlmMtd, "GrpHdr/SttlmInf/SttlmMtd"),
        ),
        transactions=transactions,
        total_settlement_amount=amount_from(fields.get(n.TtlIntrBkSttlmAmt)),
        settlement_date=date_from("IntrBkSttlmDt", text_in(fields, n.IntrBkSttlmDt)),
    )


def _parse_transaction(tx: etree._Element, n: Names, wrapped: bool) -> CreditTransfer:
    fields = children(tx)
    get = fields.get
    amount = amount_from(get(n.IntrBkSttlmAmt))
    debtor_agent = agent_from(get(n.DbtrAgt), n)
    creditor_agent = agent_from(get(n.CdtrAgt), n)
    if amount is None or debtor_agent is None or creditor_agent is None:
        raise XmlRejected("FF01", "CdtTrfTxInf lacks IntrBkSttlmAmt, DbtrAgt or CdtrAgt")
    payment_id = get(n.PmtId)
    ids = {} if payment_id is None else children(payment_id)
    if wrapped:
        extra_times = get(n.AddtlDtTm)
        accepted_text = None if extra_times is None else text_in(children(extra_times), n.AccptncDtTm)
        accepted_at = datetime_from("AddtlDtTm/AccptncDtTm", accepted_text)
    else:
        accepted_at = datetime_from("AccptncDtTm", text_in(fields, n.AccptncDtTm))
    remittance_lines: list[str] = []
    additional_remittance: list[str] = []
    if n.RmtInf in fields:
        for remittance in tx.iterchildren(n.RmtInf):
            remittance_lines.extend(e.text or "" for e in remittance.iterchildren(n.Ustrd))
            for structured in remittance.iterchildren(n.Strd):
                additional_remittance.extend(e.text or "" for e in structured.iterchildren(n.AddtlRmtInf))
    return CreditTransfer(
        end_to_end_id=required_in(ids, n.EndToEndId, "CdtTrfTxInf/PmtId/EndToEndId"),
        uetr=required_in(ids, n.UETR, "CdtTrfTxInf/PmtId/UETR"),
        settlement_amount=amount,
        charge_bearer=required_in(fields, n.ChrgBr, "CdtTrfTxInf/ChrgBr"),  # type: ignore[arg-type]  # XSD enumerates it
        debtor=_parse_party(get(n.Dbtr), n, "Dbtr"),
        debtor_agent=debtor_agent,
        creditor_agent=creditor_agent,
        creditor=_parse_party(get(n.Cdtr), n, "Cdtr"),
        instruction_id=text_in(ids, n.InstrId),
        tx_id=text_in(ids, n.TxId),
        accepted_at=accepted_at,
        instructed_amount=amount_from(get(n.InstdAmt)),
        exchange_rate=text_in(fields, n.XchgRate),
        instructing_agent=agent_from(get(n.InstgAgt), n),
        instructed_agent=agent_from(get(n.InstdAgt), n),
        debtor_account=_parse_account(get(n.DbtrAcct), n),
        creditor_account=_parse_account(get(n.CdtrAcct), n),
        purpose_code=choice_from(get(n.Purp), n)[0],
        remittance_lines=tuple(remittance_lines),
        additional_remittance=tuple(additional_remittance),
    )


def _parse_party(party: etree._Element | None, n: Names, tag: str) -> Party:
    if party is None:
        raise XmlRejected("FF01", f"CdtTrfTxInf/{tag} is missing")
    fields = children(party)
    identification = None
    id_element = fields.get(n.Id)
    if id_element is not None:
        kinds = children(id_element)
        for kind, organisation in ((n.PrvtId, False), (n.OrgId, True)):
            kind_element = kinds.get(kind)
            other = None if kind_element is None else first(kind_element, n.Othr)
            if other is not None:
                other_fields = children(other)
                code, proprietary = choice_from(other_fields.get(n.SchmeNm), n)
                identification = PartyIdentification(
                    identifier=required_in(other_fields, n.Id, "Othr/Id"),
                    scheme_code=code,
                    scheme_proprietary=proprietary,
                    issuer=text_in(other_fields, n.Issr),
                    organisation=organisation,
                )
                break
    address = fields.get(n.PstlAdr)
    return Party(
        name=text_in(fields, n.Nm),
        country=None if address is None else text_in(children(address), n.Ctry),
        identification=identification,
    )


def _parse_account(account: etree._Element | None, n: Names) -> Account | None:
    if account is None:
        return None
    fields = children(account)
    proxy = None
    proxy_element = fields.get(n.Prxy)
    if proxy_element is not None:
        proxy_fields = children(proxy_element)
        type_code, type_proprietary = choice_from(proxy_fields.get(n.Tp), n)
        proxy = Proxy(
            identifier=required_in(proxy_fields, n.Id, "Prxy/Id"),
            type_code=type_code,
            type_proprietary=type_proprietary,
        )
    iban = other_id = scheme_code = scheme_proprietary = None
    id_element = fields.get(n.Id)
    if id_element is not None:
        ids = children(id_element)
        iban = text_in(ids, n.IBAN)
        other = ids.get(n.Othr)
        if other is not None:
            other_fields = children(other)
            other_id = text_in(other_fields, n.Id)
            scheme_code, scheme_proprietary = choice_from(other_fields.get(n.SchmeNm), n)
    return Account(
        iban=iban,
        other_id=other_id,
        scheme_code=scheme_code,
        scheme_proprietary=scheme_proprietary,
        proxy=proxy,
    )
