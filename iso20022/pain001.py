"""pain.001.001.09 customer credit transfer initiation: a participant's batch of transfers.

A message holds one or more PmtInf (one debtor, debtor account and debtor agent each), and each
PmtInf one or more CdtTrfTxInf. build() derives the control totals (GrpHdr and PmtInf NbOfTxs and
CtrlSum) from the transactions and validates nothing; use build_validated() before sending. parse()
reads a document that already passed validation and recomputes every control total it declares:
a count that differs is FF01, a CtrlSum that differs is AM10 (InvalidControlSum); XmlRejected.path
names the element. Amounts stay text exactly as on the wire; sums are exact Decimals, never floats.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from typing import Final, Literal, NoReturn

from lxml import etree

from iso20022._xml import (
    message_body,
    ACCOUNT_SPEC,
    AGENT_SPEC,
    CHOICE_SPEC,
    ELEMENT,
    ELEMENTS,
    LIST,
    PARTY_SPEC,
    TEXT,
    AccountKeys,
    AgentKeys,
    PartyKeys,
    Tags,
    Writer,
    account_in,
    agent_in,
    amount_in,
    compile_rules,
    date_from,
    datetime_in,
    flatten,
    party_in,
    required_in,
    write_account,
    write_agent,
    write_party,
)
from iso20022._xml import to_element as to_element_of
from iso20022.errors import XmlRejected
from iso20022.model import Account, Agent, Amount, Party
from iso20022.parsing import ISO_NAMESPACE_PREFIX
from iso20022.schemas import SchemaSet

VERSION: Final = "pain.001.001.09"
_Q: Final = Tags(ISO_NAMESPACE_PREFIX + VERSION)

PaymentMethod = Literal["CHK", "TRF", "TRA"]

# Exact sums: amounts have at most 18 digits, so 100 digits never round; a rounding would raise.
_EXACT: Final = Context(prec=100, traps=[InvalidOperation, Inexact, Rounded])


@dataclass(frozen=True, slots=True)
class CreditTransferTransaction:
    """One CdtTrfTxInf.

    amount is Amt/InstdAmt; when transfer_currency is set it is Amt/EqvtAmt/Amt instead (an amount
    in the debtor's currency, to be transferred in EqvtAmt/CcyOfTrf). creditor_agent, creditor and
    creditor_account are optional in the XSD; pain.001.001.09 requires CdtrAcct/Id whenever CdtrAcct
    is present, so a proxy-addressed creditor carries an Id next to Prxy.
    """

    end_to_end_id: str
    amount: Amount
    instruction_id: str | None = None
    uetr: str | None = None
    transfer_currency: str | None = None
    creditor_agent: Agent | None = None
    creditor: Party | None = None
    creditor_account: Account | None = None
    purpose_code: str | None = None  # Purp/Cd
    remittance_lines: tuple[str, ...] = ()  # RmtInf/Ustrd, each <= 140
    # XchgRateInf/CtrctId: the FX contract the debtor agent agreed (Max35Text); the switch reads
    # its own quote id there (issue 11)
    exchange_contract_id: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentInstruction:
    """One PmtInf: NbOfTxs and CtrlSum are derived from transactions.

    requested_execution_date is ReqdExctnDt/Dt for a date, ReqdExctnDt/DtTm for a datetime.
    debtor_account.currency is DbtrAcct/Ccy, the debtor account's currency.
    """

    payment_information_id: str
    requested_execution_date: date | datetime
    debtor: Party
    debtor_account: Account
    debtor_agent: Agent
    transactions: tuple[CreditTransferTransaction, ...]
    payment_method: PaymentMethod = "TRF"


@dataclass(frozen=True, slots=True)
class CustomerCreditTransferInitiation:
    """CstmrCdtTrfInitn; GrpHdr/NbOfTxs and GrpHdr/CtrlSum are derived from the transactions."""

    message_id: str
    created_at: datetime
    initiating_party: Party
    payment_instructions: tuple[PaymentInstruction, ...]


def control_sum(transactions: Iterable[CreditTransferTransaction]) -> Decimal:
    """The exact sum of the transaction amounts, whatever their currencies (ISO's CtrlSum rule)."""
    total = Decimal(0)
    for tx in transactions:
        total = _EXACT.add(total, Decimal(tx.amount.value))
    return total


def all_transactions(message: CustomerCreditTransferInitiation) -> tuple[CreditTransferTransaction, ...]:
    """Every CdtTrfTxInf of every PmtInf, in document order."""
    return tuple(tx for instruction in message.payment_instructions for tx in instruction.transactions)


def build(message: CustomerCreditTransferInitiation) -> bytes:
    """UTF-8 bytes with an XML declaration; not validated."""
    w = Writer(_Q.namespace)
    w.open("CstmrCdtTrfInitn")
    w.open("GrpHdr")
    w.leaf("MsgId", message.message_id)
    w.leaf("CreDtTm", message.created_at.isoformat())
    transactions = all_transactions(message)
    w.leaf("NbOfTxs", str(len(transactions)))
    w.leaf("CtrlSum", _decimal_text(control_sum(transactions)))
    write_party(w, "InitgPty", message.initiating_party)
    w.close("GrpHdr")
    for instruction in message.payment_instructions:
        _write_instruction(w, instruction)
    w.close("CstmrCdtTrfInitn")
    return w.to_bytes()


def to_element(message: CustomerCreditTransferInitiation) -> etree._Element:
    """The Document element, e.g. to validate with SchemaSet.validate."""
    return to_element_of(build(message))


def build_validated(message: CustomerCreditTransferInitiation, schemas: SchemaSet) -> bytes:
    """build(), then validate against the official XSD (SchemaViolation); returns the same bytes."""
    data = build(message)
    schemas.validate(to_element_of(data), VERSION)
    return data


def _write_instruction(w: Writer, instruction: PaymentInstruction) -> None:
    w.open("PmtInf")
    w.leaf("PmtInfId", instruction.payment_information_id)
    w.leaf("PmtMtd", instruction.payment_method)
    w.leaf("NbOfTxs", str(len(instruction.transactions)))
    w.leaf("CtrlSum", _decimal_text(control_sum(instruction.transactions)))
    w.open("ReqdExctnDt")
    when = instruction.requested_execution_date
    if isinstance(when, datetime):
        w.leaf("DtTm", when.isoformat())
    else:
        w.leaf("Dt", when.isoformat())
    w.close("ReqdExctnDt")
    write_party(w, "Dbtr", instruction.debtor)
    write_account(w, "DbtrAcct", instruction.debtor_account)
    write_agent(w, "DbtrAgt", instruction.debtor_agent)
    for tx in instruction.transactions:
        _write_transaction(w, tx)
    w.close("PmtInf")


def _write_transaction(w: Writer, tx: CreditTransferTransaction) -> None:
    w.open("CdtTrfTxInf")
    w.open("PmtId")
    if tx.instruction_id is not None:
        w.leaf("InstrId", tx.instruction_id)
    w.leaf("EndToEndId", tx.end_to_end_id)
    if tx.uetr is not None:
        w.leaf("UETR", tx.uetr)
    w.close("PmtId")
    w.open("Amt")
    if tx.transfer_currency is None:
        w.amount("InstdAmt", tx.amount)
    else:
        w.open("EqvtAmt")
        w.amount("Amt", tx.amount)
        w.leaf("CcyOfTrf", tx.transfer_currency)
        w.close("EqvtAmt")
    w.close("Amt")
    if tx.exchange_contract_id is not None:
        w.open("XchgRateInf")
        w.leaf("CtrctId", tx.exchange_contract_id)
        w.close("XchgRateInf")
    if tx.creditor_agent is not None:
        write_agent(w, "CdtrAgt", tx.creditor_agent)
    if tx.creditor is not None:
        write_party(w, "Cdtr", tx.creditor)
    if tx.creditor_account is not None:
        write_account(w, "CdtrAcct", tx.creditor_account)
    w.choice("Purp", tx.purpose_code, None)
    if tx.remittance_lines:
        w.open("RmtInf")
        for line in tx.remittance_lines:
            w.leaf("Ustrd", line)
        w.close("RmtInf")
    w.close("CdtTrfTxInf")


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")  # never exponent notation, which xs:decimal does not allow


_HEADER_RULES: Final = compile_rules(_Q.namespace, {
    "MsgId": TEXT,
    "CreDtTm": TEXT,
    "NbOfTxs": TEXT,
    "CtrlSum": TEXT,
    "InitgPty": PARTY_SPEC,
})
_INSTRUCTION_RULES: Final = compile_rules(_Q.namespace, {
    "PmtInfId": TEXT,
    "PmtMtd": TEXT,
    "NbOfTxs": TEXT,
    "CtrlSum": TEXT,
    "ReqdExctnDt": {"Dt": TEXT, "DtTm": TEXT},
    "Dbtr": PARTY_SPEC,
    "DbtrAcct": ACCOUNT_SPEC,
    "DbtrAgt": AGENT_SPEC,
    "CdtTrfTxInf": ELEMENTS,
})
_TX_RULES: Final = compile_rules(_Q.namespace, {
    "PmtId": {"InstrId": TEXT, "EndToEndId": TEXT, "UETR": TEXT},
    "Amt": {"InstdAmt": ELEMENT, "EqvtAmt": {"Amt": ELEMENT, "CcyOfTrf": TEXT}},
    "XchgRateInf": {"CtrctId": TEXT},
    "CdtrAgt": AGENT_SPEC,
    "Cdtr": PARTY_SPEC,
    "CdtrAcct": ACCOUNT_SPEC,
    "Purp": CHOICE_SPEC,
    "RmtInf": {"Ustrd": LIST},
})
_INITIATING: Final = PartyKeys("InitgPty")
_DEBTOR: Final = PartyKeys("Dbtr")
_DEBTOR_ACCOUNT: Final = AccountKeys("DbtrAcct")
_DEBTOR_AGENT: Final = AgentKeys("DbtrAgt")
_CREDITOR: Final = PartyKeys("Cdtr")
_CREDITOR_ACCOUNT: Final = AccountKeys("CdtrAcct")
_CREDITOR_AGENT: Final = AgentKeys("CdtrAgt")


def parse(root: etree._Element) -> CustomerCreditTransferInitiation:
    """The model from a validated pain.001.001.09 Document, control totals checked.

    XmlRejected: FF01 for a wrong message, a missing element or a wrong NbOfTxs, AM10 for a
    CtrlSum that is not the sum of the amounts; .path names the element ("GrpHdr/CtrlSum",
    "PmtInf[PMT-1]/NbOfTxs").
    """
    body = message_body(root, VERSION, _Q, "CstmrCdtTrfInitn")
    header_tag, instruction_tag = _Q["GrpHdr"], _Q["PmtInf"]
    header = None
    instruction_elements = []
    for child in body:
        if child.tag == instruction_tag:
            instruction_elements.append(child)
        elif child.tag == header_tag and header is None:
            header = child
    if header is None:
        raise XmlRejected("FF01", "GrpHdr is missing", path="GrpHdr")
    instructions = tuple(_instruction(flatten(element, _INSTRUCTION_RULES, {})) for element in instruction_elements)
    fields = flatten(header, _HEADER_RULES, {})
    transactions = tuple(tx for instruction in instructions for tx in instruction.transactions)
    _check_totals(fields, transactions, "GrpHdr", required=True)
    created_at = datetime_in(fields, "CreDtTm", "GrpHdr")
    if created_at is None:
        raise XmlRejected("FF01", "GrpHdr/CreDtTm is missing", path="GrpHdr/CreDtTm")
    return CustomerCreditTransferInitiation(
        message_id=required_in(fields, "MsgId", "GrpHdr"),
        created_at=created_at,
        initiating_party=party_in(fields, _INITIATING, "GrpHdr") or _missing("GrpHdr/InitgPty"),
        payment_instructions=instructions,
    )


def _instruction(f: dict) -> PaymentInstruction:  # type: ignore[type-arg]
    identifier = required_in(f, "PmtInfId", "PmtInf")
    where = f"PmtInf[{identifier}]"
    transactions = tuple(_transaction(flatten(tx, _TX_RULES, {}), where) for tx in f.get("CdtTrfTxInf", ()))
    _check_totals(f, transactions, where, required=False)
    when: date | datetime | None
    if "ReqdExctnDt/DtTm" in f:
        when = datetime_in(f, "ReqdExctnDt/DtTm", where)
    else:
        when = date_from(f"{where}/ReqdExctnDt/Dt", f.get("ReqdExctnDt/Dt"))
    if when is None:
        _missing(f"{where}/ReqdExctnDt")
    return PaymentInstruction(
        payment_information_id=identifier,
        requested_execution_date=when,
        debtor=party_in(f, _DEBTOR, where) or _missing(f"{where}/Dbtr"),
        debtor_account=account_in(f, _DEBTOR_ACCOUNT, where) or _missing(f"{where}/DbtrAcct"),
        debtor_agent=agent_in(f, _DEBTOR_AGENT) or _missing(f"{where}/DbtrAgt"),
        transactions=transactions,
        payment_method=required_in(f, "PmtMtd", where),  # type: ignore[arg-type]  # XSD enumerates it
    )


def _transaction(f: dict, where: str) -> CreditTransferTransaction:  # type: ignore[type-arg]
    end_to_end_id = required_in(f, "PmtId/EndToEndId", f"{where}/CdtTrfTxInf")
    where = f"{where}/CdtTrfTxInf[{end_to_end_id}]"
    transfer_currency = f.get("Amt/EqvtAmt/CcyOfTrf")
    amount = amount_in(f, "Amt/InstdAmt") if transfer_currency is None else amount_in(f, "Amt/EqvtAmt/Amt")
    if amount is None:
        _missing(f"{where}/Amt/InstdAmt")
    get = f.get
    return CreditTransferTransaction(
        end_to_end_id=end_to_end_id,
        amount=amount,
        instruction_id=get("PmtId/InstrId"),
        uetr=get("PmtId/UETR"),
        transfer_currency=transfer_currency,
        creditor_agent=agent_in(f, _CREDITOR_AGENT),
        creditor=party_in(f, _CREDITOR, where),
        creditor_account=account_in(f, _CREDITOR_ACCOUNT, where),
        purpose_code=get("Purp/Cd"),
        remittance_lines=tuple(get("RmtInf/Ustrd", ())),
        exchange_contract_id=get("XchgRateInf/CtrctId"),
    )


def _check_totals(
    f: dict, transactions: tuple[CreditTransferTransaction, ...], where: str, *, required: bool  # type: ignore[type-arg]
) -> None:
    """Compare the declared NbOfTxs (FF01) and CtrlSum (AM10) with the transactions."""
    declared_count = f.get("NbOfTxs")
    if declared_count is None:
        if required:
            _missing(f"{where}/NbOfTxs")
    elif not declared_count.isdigit() or int(declared_count) != len(transactions):
        raise XmlRejected(
            "FF01", f"{where}/NbOfTxs is {declared_count} but {len(transactions)} CdtTrfTxInf follow",
            path=f"{where}/NbOfTxs",
        )
    declared_sum = f.get("CtrlSum")
    if declared_sum is None:
        return
    try:
        actual = control_sum(transactions)
        matches = Decimal(declared_sum) == actual
    except InvalidOperation:  # only in a document that skipped validation
        raise XmlRejected("FF01", f"{where}/CtrlSum or an amount under it is not a decimal", path=f"{where}/CtrlSum") from None
    if not matches:
        raise XmlRejected(
            "AM10",
            f"{where}/CtrlSum is {declared_sum} but the {len(transactions)} amounts sum to {_decimal_text(actual)}",
            path=f"{where}/CtrlSum",
        )


def _missing(path: str) -> NoReturn:
    raise XmlRejected("FF01", f"{path} is missing", path=path)
