"""pacs.028.001.03 FI-to-FI payment status request ("what became of this payment?"): model, build, parse.

The switch asks a partner about payments it sent (or a partner asks the switch); the answer is a
pacs.002. One TxInf per payment asked about, each with its StsReqId and the original message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from lxml import etree

from iso20022._refs import REFERENCES_SPEC, original_group_in, required_datetime, write_references
from iso20022._xml import (
    AGENT_SPEC,
    ELEMENTS,
    TEXT,
    AgentKeys,
    Tags,
    Writer,
    agent_in,
    compile_rules,
    flatten,
    message_body,
    required_in,
    to_element,
    write_group_header,
)
from iso20022.errors import XmlRejected
from iso20022.model import Agent
from iso20022.pacs002 import OriginalGroup
from iso20022.parsing import ISO_NAMESPACE_PREFIX
from iso20022.schemas import SchemaSet

VERSION: Final = "pacs.028.001.03"
_Q: Final = Tags(ISO_NAMESPACE_PREFIX + VERSION)


@dataclass(frozen=True, slots=True)
class StatusRequestTx:
    """One TxInf: StsReqId, OrgnlGrpInf (the original message) and the original payment's ids."""

    status_request_id: str
    original_group: OriginalGroup
    original_instruction_id: str | None = None
    original_end_to_end_id: str | None = None
    original_tx_id: str | None = None
    original_uetr: str | None = None


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """FIToFIPmtStsReq."""

    message_id: str
    created_at: datetime
    transactions: tuple[StatusRequestTx, ...]
    instructing_agent: Agent | None = None
    instructed_agent: Agent | None = None


def build(request: StatusRequest) -> bytes:
    """UTF-8 bytes with an XML declaration; not validated."""
    w = Writer(_Q.namespace)
    w.open("FIToFIPmtStsReq")
    write_group_header(w, request.message_id, request.created_at, request.instructing_agent, request.instructed_agent)
    for tx in request.transactions:
        w.open("TxInf")
        w.leaf("StsReqId", tx.status_request_id)
        write_references(w, tx.original_group, tx.original_instruction_id, tx.original_end_to_end_id,
                         tx.original_tx_id, tx.original_uetr)
        w.close("TxInf")
    w.close("FIToFIPmtStsReq")
    return w.to_bytes()


def build_validated(request: StatusRequest, schemas: SchemaSet) -> bytes:
    """build(), then validate against the official XSD (SchemaViolation); returns the same bytes."""
    data = build(request)
    schemas.validate(to_element(data), VERSION)
    return data


_BODY_RULES: Final = compile_rules(_Q.namespace, {
    "GrpHdr": {"MsgId": TEXT, "CreDtTm": TEXT, "InstgAgt": AGENT_SPEC, "InstdAgt": AGENT_SPEC},
    "TxInf": ELEMENTS,
})
_TX_RULES: Final = compile_rules(_Q.namespace, {"StsReqId": TEXT, **REFERENCES_SPEC})
_INSTRUCTING: Final = AgentKeys("GrpHdr/InstgAgt")
_INSTRUCTED: Final = AgentKeys("GrpHdr/InstdAgt")


def parse(root: etree._Element) -> StatusRequest:
    """The model from a validated pacs.028.001.03 Document; XmlRejected (FF01) otherwise.

    The XSD makes StsReqId and OrgnlGrpInf optional; the switch needs both on every TxInf.
    """
    body = message_body(root, VERSION, _Q, "FIToFIPmtStsReq")
    f = flatten(body, _BODY_RULES, {})
    if "GrpHdr" not in f:
        raise XmlRejected("FF01", "GrpHdr is missing", path="GrpHdr")
    return StatusRequest(
        message_id=required_in(f, "GrpHdr/MsgId"),
        created_at=required_datetime(f, "GrpHdr/CreDtTm"),
        transactions=tuple(_transaction(flatten(tx, _TX_RULES, {})) for tx in f.get("TxInf", ())),
        instructing_agent=agent_in(f, _INSTRUCTING),
        instructed_agent=agent_in(f, _INSTRUCTED),
    )


def _transaction(f: dict) -> StatusRequestTx:  # type: ignore[type-arg]
    original_group = original_group_in(f, "TxInf")
    if original_group is None:
        raise XmlRejected("FF01", "TxInf/OrgnlGrpInf is missing", path="TxInf/OrgnlGrpInf")
    return StatusRequestTx(
        status_request_id=required_in(f, "StsReqId", "TxInf"),
        original_group=original_group,
        original_instruction_id=f.get("OrgnlInstrId"),
        original_end_to_end_id=f.get("OrgnlEndToEndId"),
        original_tx_id=f.get("OrgnlTxId"),
        original_uetr=f.get("OrgnlUETR"),
    )
