"""pain.002.001.12 customer payment status report: the switch's answer to a pain.001 sender.

One OrgnlGrpInfAndSts for the original message, then per original PmtInf an OrgnlPmtInfAndSts
with a TxInfAndSts per transaction. Status reasons are pacs002.StatusReason (Rsn/Cd or Rsn/Prtry
plus AddtlInf), so a partner's reason can be passed on unchanged. build() writes elements in XSD
sequence order and validates nothing; parse() expects a document that already passed validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from lxml import etree

from iso20022._xml import (
    message_body,
    ELEMENT,
    ELEMENTS,
    LIST,
    PARTY_SPEC,
    TEXT,
    PartyKeys,
    Tags,
    Writer,
    amount_in,
    compile_rules,
    datetime_in,
    flatten,
    party_in,
    required_in,
    to_element,
    write_party,
)
from iso20022.errors import XmlRejected
from iso20022.model import Amount, Party
from iso20022.pacs002 import StatusReason
from iso20022.parsing import ISO_NAMESPACE_PREFIX
from iso20022.schemas import SchemaSet

VERSION: Final = "pain.002.001.12"
ORIGINAL_MESSAGE_NAME_ID: Final = "pain.001.001.09"
_Q: Final = Tags(ISO_NAMESPACE_PREFIX + VERSION)


class TransactionStatus(StrEnum):
    """ExternalPaymentTransactionStatus1Code values the switch reports to participants."""

    ACCC = "ACCC"  # AcceptedSettlementCompletedCreditorAccount
    ACCP = "ACCP"  # AcceptedCustomerProfile
    ACSC = "ACSC"  # AcceptedSettlementCompleted
    ACSP = "ACSP"  # AcceptedSettlementInProcess
    ACTC = "ACTC"  # AcceptedTechnicalValidation
    PDNG = "PDNG"  # Pending
    RJCT = "RJCT"  # Rejected


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """OrgnlGrpInfAndSts: the original pain.001 and, optionally, a status for all of it.

    status is GrpSts (ExternalPaymentGroupStatus1Code: e.g. ACCP, ACTC, PART, RCVD, RJCT).
    """

    original_message_id: str
    original_message_name_id: str = ORIGINAL_MESSAGE_NAME_ID
    original_created_at: datetime | None = None
    original_tx_count: int | None = None  # OrgnlNbOfTxs
    original_control_sum: str | None = None  # OrgnlCtrlSum, as on the wire
    status: str | None = None
    reasons: tuple[StatusReason, ...] = ()


@dataclass(frozen=True, slots=True)
class TransactionReport:
    """One TxInfAndSts; original_amount is OrgnlTxRef/Amt/InstdAmt."""

    status: TransactionStatus
    original_instruction_id: str | None = None
    original_end_to_end_id: str | None = None
    original_uetr: str | None = None
    reasons: tuple[StatusReason, ...] = ()
    accepted_at: datetime | None = None
    original_amount: Amount | None = None


@dataclass(frozen=True, slots=True)
class PaymentInstructionStatus:
    """One OrgnlPmtInfAndSts; status is PmtInfSts (ExternalPaymentGroupStatus1Code)."""

    original_payment_information_id: str
    transactions: tuple[TransactionReport, ...] = ()
    original_tx_count: int | None = None  # OrgnlNbOfTxs
    original_control_sum: str | None = None  # OrgnlCtrlSum
    status: str | None = None
    reasons: tuple[StatusReason, ...] = ()


@dataclass(frozen=True, slots=True)
class CustomerPaymentStatusReport:
    """CstmrPmtStsRpt."""

    message_id: str
    created_at: datetime
    group_status: GroupStatus
    payment_instructions: tuple[PaymentInstructionStatus, ...] = ()
    initiating_party: Party | None = None


def build(report: CustomerPaymentStatusReport) -> bytes:
    """UTF-8 bytes with an XML declaration; not validated."""
    w = Writer(_Q.namespace)
    w.open("CstmrPmtStsRpt")
    w.open("GrpHdr")
    w.leaf("MsgId", report.message_id)
    w.leaf("CreDtTm", report.created_at.isoformat())
    if report.initiating_party is not None:
        write_party(w, "InitgPty", report.initiating_party)
    w.close("GrpHdr")
    group = report.group_status
    w.open("OrgnlGrpInfAndSts")
    w.leaf("OrgnlMsgId", group.original_message_id)
    w.leaf("OrgnlMsgNmId", group.original_message_name_id)
    if group.original_created_at is not None:
        w.leaf("OrgnlCreDtTm", group.original_created_at.isoformat())
    _write_totals(w, group.original_tx_count, group.original_control_sum)
    if group.status is not None:
        w.leaf("GrpSts", group.status)
    _write_reasons(w, group.reasons)
    w.close("OrgnlGrpInfAndSts")
    for instruction in report.payment_instructions:
        w.open("OrgnlPmtInfAndSts")
        w.leaf("OrgnlPmtInfId", instruction.original_payment_information_id)
        _write_totals(w, instruction.original_tx_count, instruction.original_control_sum)
        if instruction.status is not None:
            w.leaf("PmtInfSts", instruction.status)
        _write_reasons(w, instruction.reasons)
        for tx in instruction.transactions:
            _write_transaction(w, tx)
        w.close("OrgnlPmtInfAndSts")
    w.close("CstmrPmtStsRpt")
    return w.to_bytes()


def build_validated(report: CustomerPaymentStatusReport, schemas: SchemaSet) -> bytes:
    """build(), then validate against the official XSD (SchemaViolation); returns the same bytes."""
    data = build(report)
    schemas.validate(to_element(data), VERSION)
    return data


def _write_totals(w: Writer, count: int | None, control_sum: str | None) -> None:
    if count is not None:
        w.leaf("OrgnlNbOfTxs", str(count))
    if control_sum is not None:
        w.leaf("OrgnlCtrlSum", control_sum)


def _write_reasons(w: Writer, reasons: tuple[StatusReason, ...]) -> None:
    for reason in reasons:
        w.open("StsRsnInf")
        w.choice("Rsn", reason.code, reason.proprietary)
        for line in reason.additional_info:
            w.leaf("AddtlInf", line)
        w.close("StsRsnInf")


def _write_transaction(w: Writer, tx: TransactionReport) -> None:
    w.open("TxInfAndSts")
    if tx.original_instruction_id is not None:
        w.leaf("OrgnlInstrId", tx.original_instruction_id)
    if tx.original_end_to_end_id is not None:
        w.leaf("OrgnlEndToEndId", tx.original_end_to_end_id)
    if tx.original_uetr is not None:
        w.leaf("OrgnlUETR", tx.original_uetr)
    w.leaf("TxSts", tx.status.value)
    _write_reasons(w, tx.reasons)
    if tx.accepted_at is not None:
        w.leaf("AccptncDtTm", tx.accepted_at.isoformat())
    if tx.original_amount is not None:
        w.open("OrgnlTxRef")
        w.open("Amt")
        w.amount("InstdAmt", tx.original_amount)
        w.close("Amt")
        w.close("OrgnlTxRef")
    w.close("TxInfAndSts")


_TOTALS: Final = {"OrgnlNbOfTxs": TEXT, "OrgnlCtrlSum": TEXT}
_BODY_RULES: Final = compile_rules(_Q.namespace, {
    "GrpHdr": {"MsgId": TEXT, "CreDtTm": TEXT, "InitgPty": PARTY_SPEC},
    "OrgnlGrpInfAndSts": {
        "OrgnlMsgId": TEXT, "OrgnlMsgNmId": TEXT, "OrgnlCreDtTm": TEXT, **_TOTALS, "GrpSts": TEXT,
        "StsRsnInf": ELEMENTS,
    },
    "OrgnlPmtInfAndSts": ELEMENTS,
})
_INSTRUCTION_RULES: Final = compile_rules(_Q.namespace, {
    "OrgnlPmtInfId": TEXT, **_TOTALS, "PmtInfSts": TEXT, "StsRsnInf": ELEMENTS, "TxInfAndSts": ELEMENTS,
})
_TX_RULES: Final = compile_rules(_Q.namespace, {
    "OrgnlInstrId": TEXT,
    "OrgnlEndToEndId": TEXT,
    "OrgnlUETR": TEXT,
    "TxSts": TEXT,
    "StsRsnInf": ELEMENTS,
    "AccptncDtTm": TEXT,
    "OrgnlTxRef": {"Amt": {"InstdAmt": ELEMENT}},
})
_REASON_RULES: Final = compile_rules(_Q.namespace, {"Rsn": {"Cd": TEXT, "Prtry": TEXT}, "AddtlInf": LIST})
_INITIATING: Final = PartyKeys("GrpHdr/InitgPty")


def parse(root: etree._Element) -> CustomerPaymentStatusReport:
    """The model from a validated pain.002.001.12 Document; XmlRejected (FF01, .path set) otherwise."""
    body = message_body(root, VERSION, _Q, "CstmrPmtStsRpt")
    f = flatten(body, _BODY_RULES, {})
    if "OrgnlGrpInfAndSts" not in f:
        raise XmlRejected("FF01", "OrgnlGrpInfAndSts is missing", path="OrgnlGrpInfAndSts")
    where = "OrgnlGrpInfAndSts"
    group = GroupStatus(
        original_message_id=required_in(f, f"{where}/OrgnlMsgId"),
        original_message_name_id=required_in(f, f"{where}/OrgnlMsgNmId"),
        original_created_at=datetime_in(f, f"{where}/OrgnlCreDtTm"),
        original_tx_count=_count(f, f"{where}/OrgnlNbOfTxs"),
        original_control_sum=f.get(f"{where}/OrgnlCtrlSum"),
        status=f.get(f"{where}/GrpSts"),
        reasons=_reasons(f.get(f"{where}/StsRsnInf", ()), where),
    )
    created_at = datetime_in(f, "GrpHdr/CreDtTm")
    if created_at is None:
        raise XmlRejected("FF01", "GrpHdr/CreDtTm is missing", path="GrpHdr/CreDtTm")
    return CustomerPaymentStatusReport(
        message_id=required_in(f, "GrpHdr/MsgId"),
        created_at=created_at,
        group_status=group,
        payment_instructions=tuple(
            _instruction(flatten(element, _INSTRUCTION_RULES, {})) for element in f.get("OrgnlPmtInfAndSts", ())
        ),
        initiating_party=party_in(f, _INITIATING),
    )


def _instruction(f: dict) -> PaymentInstructionStatus:  # type: ignore[type-arg]
    identifier = required_in(f, "OrgnlPmtInfId", "OrgnlPmtInfAndSts")
    where = f"OrgnlPmtInfAndSts[{identifier}]"
    return PaymentInstructionStatus(
        original_payment_information_id=identifier,
        transactions=tuple(_transaction(flatten(tx, _TX_RULES, {}), where) for tx in f.get("TxInfAndSts", ())),
        original_tx_count=_count(f, "OrgnlNbOfTxs", where),
        original_control_sum=f.get("OrgnlCtrlSum"),
        status=f.get("PmtInfSts"),
        reasons=_reasons(f.get("StsRsnInf", ()), where),
    )


def _transaction(f: dict, where: str) -> TransactionReport:  # type: ignore[type-arg]
    reference = f.get("OrgnlEndToEndId") or f.get("OrgnlUETR") or f.get("OrgnlInstrId") or "?"
    where = f"{where}/TxInfAndSts[{reference}]"
    status_text = required_in(f, "TxSts", where)
    try:
        status = TransactionStatus(status_text)
    except ValueError:
        raise XmlRejected(
            "FF01", f"{where}/TxSts {status_text!r} is not a status this switch handles", path=f"{where}/TxSts"
        ) from None
    return TransactionReport(
        status=status,
        original_instruction_id=f.get("OrgnlInstrId"),
        original_end_to_end_id=f.get("OrgnlEndToEndId"),
        original_uetr=f.get("OrgnlUETR"),
        reasons=_reasons(f.get("StsRsnInf", ()), where),
        accepted_at=datetime_in(f, "AccptncDtTm", where),
        original_amount=amount_in(f, "OrgnlTxRef/Amt/InstdAmt"),
    )


def _reasons(elements: list[etree._Element] | tuple[()], where: str) -> tuple[StatusReason, ...]:
    reasons = []
    for element in elements:
        f = flatten(element, _REASON_RULES, {})
        code, proprietary = f.get("Rsn/Cd"), f.get("Rsn/Prtry")
        if code is None and proprietary is None:
            raise XmlRejected("FF01", f"{where}/StsRsnInf/Rsn is missing", path=f"{where}/StsRsnInf/Rsn")
        reasons.append(StatusReason(
            code=code, additional_info=tuple(f.get("AddtlInf", ())), proprietary=None if code is not None else proprietary
        ))
    return tuple(reasons)


def _count(f: dict, key: str, where: str = "") -> int | None:  # type: ignore[type-arg]
    value = f.get(key)
    if value is None:
        return None
    if not value.isdigit():  # Max15NumericText: only in a document that skipped validation
        path = f"{where}/{key}" if where else key
        raise XmlRejected("FF01", f"{path} {value!r} is not a number", path=path)
    return int(value)
