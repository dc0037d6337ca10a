"""pacs.002.001.10 FI-to-FI payment status report: model, build, parse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from lxml import etree

from iso20022._xml import (
    message_body,
    AGENT_SPEC,
    ELEMENTS,
    LIST,
    TEXT,
    AgentKeys,
    Tags,
    Writer,
    agent_in,
    compile_rules,
    flatten,
    to_element,
    write_group_header,
)
from iso20022.errors import XmlRejected
from iso20022.model import Agent
from iso20022.parsing import ISO_NAMESPACE_PREFIX
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
    """StsRsnInf: Rsn/Cd (an ISO external status reason code) or Rsn/Prtry (a partner's own code,
    e.g. NAPAS's numeric ones), and AddtlInf lines (<= 105 each). Exactly one of code and
    proprietary."""

    code: str | None = None
    additional_info: tuple[str, ...] = ()
    proprietary: str | None = None

    def __post_init__(self) -> None:
        if (self.code is None) == (self.proprietary is None):
            raise ValueError(f"a status reason has a code or a proprietary code, not {self.code!r} and {self.proprietary!r}")


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
    write_group_header(w, report.message_id, report.created_at, report.instructing_agent, report.instructed_agent)
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
        w.choice("Rsn", reason.code, reason.proprietary)
        for line in reason.additional_info:
            w.leaf("AddtlInf", line)
        w.close("StsRsnInf")


_ORIGINAL: Final = {"OrgnlMsgId": TEXT, "OrgnlMsgNmId": TEXT, "OrgnlCreDtTm": TEXT}
_BODY_RULES: Final = compile_rules(_Q.namespace, {
    "GrpHdr": {"MsgId": TEXT, "CreDtTm": TEXT, "InstgAgt": AGENT_SPEC, "InstdAgt": AGENT_SPEC},
    "OrgnlGrpInfAndSts": {**_ORIGINAL, "GrpSts": TEXT, "StsRsnInf": ELEMENTS},
    "TxInfAndSts": ELEMENTS,
})
_TX_RULES: Final = compile_rules(_Q.namespace, {
    "OrgnlGrpInf": _ORIGINAL,
    "OrgnlInstrId": TEXT,
    "OrgnlEndToEndId": TEXT,
    "OrgnlTxId": TEXT,
    "OrgnlUETR": TEXT,
    "TxSts": TEXT,
    "StsRsnInf": ELEMENTS,
    "AccptncDtTm": TEXT,
})
_REASON_RULES: Final = compile_rules(_Q.namespace, {"Rsn": {"Cd": TEXT, "Prtry": TEXT}, "AddtlInf": LIST})
_INSTRUCTING: Final = AgentKeys("GrpHdr/InstgAgt")
_INSTRUCTED: Final = AgentKeys("GrpHdr/InstdAgt")
_GROUP_ORIGINAL: Final = ("OrgnlGrpInfAndSts/OrgnlMsgId", "OrgnlGrpInfAndSts/OrgnlMsgNmId", "OrgnlGrpInfAndSts/OrgnlCreDtTm")
_TX_ORIGINAL: Final = ("OrgnlGrpInf/OrgnlMsgId", "OrgnlGrpInf/OrgnlMsgNmId", "OrgnlGrpInf/OrgnlCreDtTm")


def parse(root: etree._Element) -> PaymentStatusReport:
    """The model from a validated pacs.002.001.10 Document; XmlRejected (FF01) otherwise.

    Each element is visited once (flatten() with compiled rules), no ElementPath look-ups.
    """
    body = message_body(root, VERSION, _Q, "FIToFIPmtStsRpt")
    f = flatten(body, _BODY_RULES, {})
    if "GrpHdr" not in f:
        raise XmlRejected("FF01", "GrpHdr is missing")
    group_status = None
    if "OrgnlGrpInfAndSts" in f:
        group_status = GroupStatus(
            original=_original(f, _GROUP_ORIGINAL),
            status=f.get("OrgnlGrpInfAndSts/GrpSts"),
            reasons=_reasons(f.get("OrgnlGrpInfAndSts/StsRsnInf", ())),
        )
    return PaymentStatusReport(
        message_id=_required(f, "GrpHdr/MsgId"),
        created_at=_datetime(_required(f, "GrpHdr/CreDtTm")),
        transactions=tuple(_transaction(flatten(tx, _TX_RULES, {})) for tx in f.get("TxInfAndSts", ())),
        group_status=group_status,
        instructing_agent=agent_in(f, _INSTRUCTING),
        instructed_agent=agent_in(f, _INSTRUCTED),
    )


def _transaction(f: dict) -> TransactionReport:  # type: ignore[type-arg]
    status_text = _required(f, "TxSts")
    try:
        status = TransactionStatus(status_text)
    except ValueError:
        raise XmlRejected("FF01", f"TxInfAndSts/TxSts {status_text!r} is not a status this switch handles") from None
    accepted = f.get("AccptncDtTm")
    return TransactionReport(
        status=status,
        original_group=_original(f, _TX_ORIGINAL) if "OrgnlGrpInf" in f else None,
        original_instruction_id=f.get("OrgnlInstrId"),
        original_end_to_end_id=f.get("OrgnlEndToEndId"),
        original_tx_id=f.get("OrgnlTxId"),
        original_uetr=f.get("OrgnlUETR"),
        reasons=_reasons(f.get("StsRsnInf", ())),
        accepted_at=None if accepted is None else _datetime(accepted),
    )


def _original(f: dict, keys: tuple[str, str, str]) -> OriginalGroup:  # type: ignore[type-arg]
    message_id, name_id, created_key = keys
    created = f.get(created_key)
    return OriginalGroup(
        message_id=_required(f, message_id),
        message_name_id=_required(f, name_id),
        created_at=None if created is None else _datetime(created),
    )


def _reasons(elements: list[etree._Element] | tuple[()]) -> tuple[StatusReason, ...]:
    reasons = []
    for element in elements:
        f = flatten(element, _REASON_RULES, {})
        code, proprietary = f.get("Rsn/Cd"), f.get("Rsn/Prtry")
        if code is None and proprietary is None:
            raise XmlRejected("FF01", "StsRsnInf/Rsn/Cd or Rsn/Prtry is missing")
        reasons.append(StatusReason(code=code, additional_info=tuple(f.get("AddtlInf", ())), proprietary=None if code else proprietary))
    return tuple(reasons)


def _required(f: dict, key: str) -> str:  # type: ignore[type-arg]
    value = f.get(key)
    if value is None:
        raise XmlRejected("FF01", f"{key} is missing")
    return value  # type: ignore[no-any-return]


def _datetime(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise XmlRejected("FF01", f"{value!r} is not an ISO date-time") from None
