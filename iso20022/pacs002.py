"""pacs.002.001.10 FI-to-FI payment status report: model, build, parse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from lxml import etree

from iso20022._xml import Tags, Writer, agent_of, kids, required_text, to_element, write_agent
from iso20022.errors import XmlRejected
from iso20022.model import Agent
from iso20022.parsing import ISO_NAMESPACE_PREFIX, message_id_of
from iso20022.schemas import SchemaSet

VERSION: Final = "pacs.002.001.10"
_Q: Final = Tags(ISO_NAMESPACE_PREFIX + VERSION)


class TransactionStatus(StrEnum):
    ACCC = "ACCC"  # AcceptedSettlementCompletedCreditorAccount
    ACSC = "ACSC"  # AcceptedSettlementCompleted
    ACSP = "ACSP"  # AcceptedSettlementInProcess
    ACTC = "ACTC"  # AcceptedTechnicalValidation
    PDNG = "PDNG"  # Pending
    RJCT = "RJCT"  # Rejected


@dataclass(frozen=True, slots=True)
class StatusReason:
    """StsRsnInf: Rsn/Cd (an ISO external status reason code) and AddtlInf lines (<= 105 each)."""

    code: str
    additional_info: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OriginalGroup:
    message_id: str
    message_name_id: str  # e.g. "pacs.008.001.13"
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """OrgnlGrpInfAndSts."""

    original: OriginalGroup
    status: str | None = None
    reasons: tuple[StatusReason, ...] = ()


@dataclass(frozen=True, slots=True)
class TransactionReport:
    """One TxInfAndSts."""

    status: TransactionStatus
    original_group: OriginalGroup | None = None
    original_instruction_id: str | None = None
    original_end_to_end_id: str | None = None
    original_tx_id: str | None = None
    original_uetr: str | None = None
    reasons: tuple[StatusReason, ...] = ()
    accepted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PaymentStatusReport:
    message_id: str
    created_at: datetime
    transactions: tuple[TransactionReport, ...]
    group_status: GroupStatus | None = None
    instructing_agent: Agent | None = None
    instructed_agent: Agent | None = None


def build(report: PaymentStatusReport) -> bytes:
    """UTF-8 bytes with an XML declaration; not validated."""
    w = Writer(_Q.namespace)
    w.open("FIToFIPmtStsRpt")
    w.open("GrpHdr")
    w.leaf("MsgId", report.message_id)
    w.leaf("CreDtTm", report.created_at.isoformat())
    if report.instructing_agent is not None:
        write_agent(w, "InstgAgt", report.instructing_agent)
    if report.instructed_agent is not None:
        write_agent(w, "InstdAgt", report.instructed_agent)
    w.close("GrpHdr")
    if report.group_status is not None:
        w.open("OrgnlGrpInfAndSts")
        _write_original(w, report.group_status.original)
        if report.group_status.status is not None:
            w.leaf("GrpSts", report.group_status.status)
        _write_reasons(w, report.group_status.reasons)
        w.close("OrgnlGrpInfAndSts")
    for tx in report.transactions:
        w.open("TxInfAndSts")
        if tx.original_group is not None:
            w.open("OrgnlGrpInf")
            _write_original(w, tx.original_group)
            w.close("OrgnlGrpInf")
        for tag, value in (
            ("OrgnlInstrId", tx.original_instruction_id),
            ("OrgnlEndToEndId", tx.original_end_to_end_id),
            ("OrgnlTxId", tx.original_tx_id),
            ("OrgnlUETR", tx.original_uetr),
        ):
            if value is not None:
                w.leaf(tag, value)
        w.leaf("TxSts", tx.status.value)
        _write_reasons(w, tx.reasons)
        if tx.accepted_at is not None:
            w.leaf("AccptncDtTm", tx.accepted_at.isoformat())
        w.close("TxInfAndSts")
    w.close("FIToFIPmtStsRpt")
    return w.to_bytes()


def build_validated(report: PaymentStatusReport, schemas: SchemaSet) -> bytes:
    """build(), then validate against the official XSD (SchemaViolation); returns the same bytes."""
    data = build(report)
    schemas.validate(to_element(data), VERSION)
    return data


def _write_original(w: Writer, original: OriginalGroup) -> None:
    w.leaf("OrgnlMsgId", original.message_id)
    w.leaf("OrgnlMsgNmId", original.message_name_id)
    if original.created_at is not None:
        w.leaf("OrgnlCreDtTm", original.created_at.isoformat())


def _write_reasons(w: Writer, reasons: tuple[StatusReason, ...]) -> None:
    for reason in reasons:
        w.open("StsRsnInf")
        w.choice("Rsn", reason.code, None)
        for line in reason.additional_info:
            w.leaf("AddtlInf", line)
        w.close("StsRsnInf")


def parse(root: etree._Element) -> PaymentStatusReport:
    """The model from a validated pacs.002.001.10 Document; XmlRejected (FF01) otherwise."""
    q = _Q
    if message_id_of(root) != VERSION:
        raise XmlRejected("FF01", f"expected {VERSION}, got {message_id_of(root)}")
    body = root.find(q["FIToFIPmtStsRpt"])
    if body is None:
        raise XmlRejected("FF01", "FIToFIPmtStsRpt is missing")
    header = _required(kids(body), "GrpHdr")
    fields = kids(header)
    group_status = None
    transactions = []
    for child in body:
        if child.tag == q["TxInfAndSts"]:
            transactions.append(_parse_transaction(child))
        elif child.tag == q["OrgnlGrpInfAndSts"]:
            group = kids(child)
            group_status = GroupStatus(
                original=_parse_original(group),
                status=_text(group, "GrpSts"),
                reasons=_parse_reasons(child),
            )
    return PaymentStatusReport(
        message_id=_required(fields, "MsgId").text or "",
        created_at=_datetime(_required(fields, "CreDtTm").text or ""),
        transactions=tuple(transactions),
        group_status=group_status,
        instructing_agent=agent_of(header, q, "InstgAgt") if q["InstgAgt"] in fields else None,
        instructed_agent=agent_of(header, q, "InstdAgt") if q["InstdAgt"] in fields else None,
    )


def _parse_transaction(tx: etree._Element) -> TransactionReport:
    fields = kids(tx)
    status_text = _required(fields, "TxSts").text or ""
    try:
        status = TransactionStatus(status_text)
    except ValueError:
        raise XmlRejected("FF01", f"TxInfAndSts/TxSts {status_text!r} is not a status this switch handles") from None
    original = fields.get(_Q["OrgnlGrpInf"])
    accepted = _text(fields, "AccptncDtTm")
    return TransactionReport(
        status=status,
        original_group=None if original is None else _parse_original(kids(original)),
        original_instruction_id=_text(fields, "OrgnlInstrId"),
        original_end_to_end_id=_text(fields, "OrgnlEndToEndId"),
        original_tx_id=_text(fields, "OrgnlTxId"),
        original_uetr=_text(fields, "OrgnlUETR"),
        reasons=_parse_reasons(tx) if _Q["StsRsnInf"] in fields else (),
        accepted_at=None if accepted is None else _datetime(accepted),
    )


def _parse_original(fields: dict[str, etree._Element]) -> OriginalGroup:
    created = _text(fields, "OrgnlCreDtTm")
    return OriginalGroup(
        message_id=_required(fields, "OrgnlMsgId").text or "",
        message_name_id=_required(fields, "OrgnlMsgNmId").text or "",
        created_at=None if created is None else _datetime(created),
    )


def _parse_reasons(parent: etree._Element) -> tuple[StatusReason, ...]:
    return tuple(
        StatusReason(
            code=required_text(reason, _Q, "Rsn/Cd"),
            additional_info=tuple(e.text or "" for e in reason.iterchildren(_Q["AddtlInf"])),
        )
        for reason in parent.iterchildren(_Q["StsRsnInf"])
    )


def _text(fields: dict[str, etree._Element], tag: str) -> str | None:
    element = fields.get(_Q[tag])
    return None if element is None else element.text


def _required(fields: dict[str, etree._Element], tag: str) -> etree._Element:
    element = fields.get(_Q[tag])
    if element is None:
        raise XmlRejected("FF01", f"{tag} is missing")
    return element


def _datetime(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise XmlRejected("FF01", f"{value!r} is not an ISO date-time") from None
