"""pacs.004.001.10 payment return: model, build, parse.

A return sends settled funds back (e.g. after an accepted camt.056 cancellation, or when the
creditor account is closed). GrpHdr/NbOfTxs is derived from the transactions and checked on parse;
GrpHdr/SttlmInf (mandatory) carries the settlement method and clearing system. Each TxInf carries
one return reason (RtrRsnInf).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from lxml import etree

from iso20022._refs import (
    REASON_SPEC,
    REFERENCES_SPEC,
    check_reason,
    date_in,
    original_group_in,
    required_datetime,
    write_reason,
    write_references,
)
from iso20022._xml import (
    AGENT_SPEC,
    CHOICE_SPEC,
    ELEMENT,
    ELEMENTS,
    TEXT,
    AgentKeys,
    Tags,
    Writer,
    agent_in,
    amount_in,
    compile_rules,
    flatten,
    message_body,
    required_in,
    to_element,
    write_agents,
)
from iso20022.errors import XmlRejected
from iso20022.model import Agent, Amount
from iso20022.pacs002 import OriginalGroup
from iso20022.parsing import ISO_NAMESPACE_PREFIX
from iso20022.schemas import SchemaSet

VERSION: Final = "pacs.004.001.10"
_Q: Final = Tags(ISO_NAMESPACE_PREFIX + VERSION)


@dataclass(frozen=True, slots=True)
class ReturnTx:
    """One TxInf: RtrId, the original payment, the returned amount and one return reason.

    reason_code is RtrRsnInf/Rsn/Cd (an ISO external return reason, e.g. AC04, MD06), or
    reason_proprietary RtrRsnInf/Rsn/Prtry; not both.
    """

    return_id: str
    returned_amount: Amount  # RtrdIntrBkSttlmAmt
    original_group: OriginalGroup | None = None
    original_instruction_id: str | None = None
    original_end_to_end_id: str | None = None
    original_tx_id: str | None = None
    original_uetr: str | None = None
    original_settlement_amount: Amount | None = None  # OrgnlIntrBkSttlmAmt
    settlement_date: date | None = None  # IntrBkSttlmDt
    returned_instructed_amount: Amount | None = None  # RtrdInstdAmt
    exchange_rate: str | None = None  # XchgRate
    charge_bearer: str | None = None  # ChrgBr
    reason_code: str | None = None
    reason_proprietary: str | None = None
    additional_info: tuple[str, ...] = ()  # RtrRsnInf/AddtlInf, <= 105 each
    instructing_agent: Agent | None = None
    instructed_agent: Agent | None = None

    def __post_init__(self) -> None:
        check_reason(self.reason_code, self.reason_proprietary)


@dataclass(frozen=True, slots=True)
class PaymentReturn:
    """PmtRtr; GrpHdr/NbOfTxs is derived from len(transactions)."""

    message_id: str
    created_at: datetime
    transactions: tuple[ReturnTx, ...]
    settlement_method: str = "CLRG"
    clearing_system_code: str | None = None
    clearing_system_proprietary: str | None = None
    instructing_agent: Agent | None = None
    instructed_agent: Agent | None = None


def build(message: PaymentReturn) -> bytes:
    """UTF-8 bytes with an XML declaration; not validated."""
    w = Writer(_Q.namespace)
    w.open("PmtRtr")
    w.open("GrpHdr")
    w.leaf("MsgId", message.message_id)
    w.leaf("CreDtTm", message.created_at.isoformat())
    w.leaf("NbOfTxs", str(len(message.transactions)))
    w.open("SttlmInf")
    w.leaf("SttlmMtd", message.settlement_method)
    w.choice("ClrSys", message.clearing_system_code, message.clearing_system_proprietary)
    w.close("SttlmInf")
    write_agents(w, message.instructing_agent, message.instructed_agent)
    w.close("GrpHdr")
    for tx in message.transactions:
        _write_transaction(w, tx)
    w.close("PmtRtr")
    return w.to_bytes()


def build_validated(message: PaymentReturn, schemas: SchemaSet) -> bytes:
    """build(), then validate against the official XSD (SchemaViolation); returns the same bytes."""
    data = build(message)
    schemas.validate(to_element(data), VERSION)
    return data


def _write_transaction(w: Writer, tx: ReturnTx) -> None:
    w.open("TxInf")
    w.leaf("RtrId", tx.return_id)
    write_references(w, tx.original_group, tx.original_instruction_id, tx.original_end_to_end_id,
                     tx.original_tx_id, tx.original_uetr)
    if tx.original_settlement_amount is not None:
        w.amount("OrgnlIntrBkSttlmAmt", tx.original_settlement_amount)
    w.amount("RtrdIntrBkSttlmAmt", tx.returned_amount)
    if tx.settlement_date is not None:
        w.leaf("IntrBkSttlmDt", tx.settlement_date.isoformat())
    if tx.returned_instructed_amount is not None:
        w.amount("RtrdInstdAmt", tx.returned_instructed_amount)
    if tx.exchange_rate is not None:
        w.leaf("XchgRate", tx.exchange_rate)
    if tx.charge_bearer is not None:
        w.leaf("ChrgBr", tx.charge_bearer)
    write_agents(w, tx.instructing_agent, tx.instructed_agent)
    write_reason(w, "RtrRsnInf", tx.reason_code, tx.reason_proprietary, tx.additional_info)
    w.close("TxInf")


_BODY_RULES: Final = compile_rules(_Q.namespace, {
    "GrpHdr": {
        "MsgId": TEXT,
        "CreDtTm": TEXT,
        "NbOfTxs": TEXT,
        "SttlmInf": {"SttlmMtd": TEXT, "ClrSys": CHOICE_SPEC},
        "InstgAgt": AGENT_SPEC,
        "InstdAgt": AGENT_SPEC,
    },
    "TxInf": ELEMENTS,
})
_TX_RULES: Final = compile_rules(_Q.namespace, {
    "RtrId": TEXT,
    **REFERENCES_SPEC,
    "OrgnlIntrBkSttlmAmt": ELEMENT,
    "RtrdIntrBkSttlmAmt": ELEMENT,
    "IntrBkSttlmDt": TEXT,
    "RtrdInstdAmt": ELEMENT,
    "XchgRate": TEXT,
    "ChrgBr": TEXT,
    "InstgAgt": AGENT_SPEC,
    "InstdAgt": AGENT_SPEC,
    "RtrRsnInf": REASON_SPEC,
})
_INSTRUCTING: Final = AgentKeys("GrpHdr/InstgAgt")
_INSTRUCTED: Final = AgentKeys("GrpHdr/InstdAgt")
_TX_INSTRUCTING: Final = AgentKeys("InstgAgt")
_TX_INSTRUCTED: Final = AgentKeys("InstdAgt")


def parse(root: etree._Element) -> PaymentReturn:
    """The model from a validated pacs.004.001.10 Document; XmlRejected (FF01) otherwise.

    The switch needs RtrId on every TxInf (optional in the XSD); NbOfTxs must count the TxInf.
    """
    body = message_body(root, VERSION, _Q, "PmtRtr")
    f = flatten(body, _BODY_RULES, {})
    if "GrpHdr" not in f:
        raise XmlRejected("FF01", "GrpHdr is missing", path="GrpHdr")
    transactions = tuple(_transaction(flatten(tx, _TX_RULES, {})) for tx in f.get("TxInf", ()))
    declared = required_in(f, "GrpHdr/NbOfTxs")
    if declared != str(len(transactions)):
        raise XmlRejected("FF01", f"GrpHdr/NbOfTxs is {declared} but {len(transactions)} TxInf follow",
                          path="GrpHdr/NbOfTxs")
    return PaymentReturn(
        message_id=required_in(f, "GrpHdr/MsgId"),
        created_at=required_datetime(f, "GrpHdr/CreDtTm"),
        transactions=transactions,
        settlement_method=required_in(f, "GrpHdr/SttlmInf/SttlmMtd"),
        clearing_system_code=f.get("GrpHdr/SttlmInf/ClrSys/Cd"),
        clearing_system_proprietary=f.get("GrpHdr/SttlmInf/ClrSys/Prtry"),
        instructing_agent=agent_in(f, _INSTRUCTING),
        instructed_agent=agent_in(f, _INSTRUCTED),
    )


def _transaction(f: dict) -> ReturnTx:  # type: ignore[type-arg]
    returned = amount_in(f, "RtrdIntrBkSttlmAmt")
    if returned is None:
        raise XmlRejected("FF01", "TxInf/RtrdIntrBkSttlmAmt is missing", path="TxInf/RtrdIntrBkSttlmAmt")
    return ReturnTx(
        return_id=required_in(f, "RtrId", "TxInf"),
        returned_amount=returned,
        original_group=original_group_in(f, "TxInf"),
        original_instruction_id=f.get("OrgnlInstrId"),
        original_end_to_end_id=f.get("OrgnlEndToEndId"),
        original_tx_id=f.get("OrgnlTxId"),
        original_uetr=f.get("OrgnlUETR"),
        original_settlement_amount=amount_in(f, "OrgnlIntrBkSttlmAmt"),
        settlement_date=date_in(f, "IntrBkSttlmDt", "TxInf"),
        returned_instructed_amount=amount_in(f, "RtrdInstdAmt"),
        exchange_rate=f.get("XchgRate"),
        charge_bearer=f.get("ChrgBr"),
        reason_code=f.get("RtrRsnInf/Rsn/Cd"),
        reason_proprietary=f.get("RtrRsnInf/Rsn/Prtry"),
        additional_info=tuple(f.get("RtrRsnInf/AddtlInf", ())),
        instructing_agent=agent_in(f, _TX_INSTRUCTING),
        instructed_agent=agent_in(f, _TX_INSTRUCTED),
    )
