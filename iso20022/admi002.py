"""admi.002.001.01 message reject: a message refused before any business processing.

RltdRef/Ref names the rejected message (its MsgId); Rsn/RjctgPtyRsn (<= 35) says why, e.g. an ISO
reason code such as FF01; Rsn/RsnDesc (<= 350) and Rsn/AddtlData (<= 20000) explain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from lxml import etree

from iso20022._xml import (
    TEXT,
    Tags,
    Writer,
    compile_rules,
    datetime_in,
    flatten,
    message_body,
    required_in,
    to_element,
)
from iso20022.errors import XmlRejected
from iso20022.parsing import ISO_NAMESPACE_PREFIX
from iso20022.schemas import SchemaSet

VERSION: Final = "admi.002.001.01"
_Q: Final = Tags(ISO_NAMESPACE_PREFIX + VERSION)


@dataclass(frozen=True, slots=True)
class MessageReject:
    reference: str  # RltdRef/Ref: the rejected message's id
    reason_code: str  # Rsn/RjctgPtyRsn
    rejected_at: datetime | None = None  # Rsn/RjctnDtTm
    description: str | None = None  # Rsn/RsnDesc
    additional_data: str | None = None  # Rsn/AddtlData


def build(reject: MessageReject) -> bytes:
    """UTF-8 bytes with an XML declaration; not validated."""
    w = Writer(_Q.namespace)
    w.open(VERSION)  # the message element is named after the message
    w.open("RltdRef")
    w.leaf("Ref", reject.reference)
    w.close("RltdRef")
    w.open("Rsn")
    w.leaf("RjctgPtyRsn", reject.reason_code)
    if reject.rejected_at is not None:
        w.leaf("RjctnDtTm", reject.rejected_at.isoformat())
    if reject.description is not None:
        w.leaf("RsnDesc", reject.description)
    if reject.additional_data is not None:
        w.leaf("AddtlData", reject.additional_data)
    w.close("Rsn")
    w.close(VERSION)
    return w.to_bytes()


def build_validated(reject: MessageReject, schemas: SchemaSet) -> bytes:
    """build(), then validate against the official XSD (SchemaViolation); returns the same bytes."""
    data = build(reject)
    schemas.validate(to_element(data), VERSION)
    return data


_BODY_RULES: Final = compile_rules(_Q.namespace, {
    "RltdRef": {"Ref": TEXT},
    "Rsn": {"RjctgPtyRsn": TEXT, "RjctnDtTm": TEXT, "RsnDesc": TEXT, "AddtlData": TEXT},
})


def parse(root: etree._Element) -> MessageReject:
    """The model from a validated admi.002.001.01 Document; XmlRejected (FF01) otherwise."""
    f = flatten(message_body(root, VERSION, _Q, VERSION), _BODY_RULES, {})
    if "Rsn" not in f:
        raise XmlRejected("FF01", "Rsn is missing", path="Rsn")
    return MessageReject(
        reference=required_in(f, "RltdRef/Ref"),
        reason_code=required_in(f, "Rsn/RjctgPtyRsn"),
        rejected_at=datetime_in(f, "Rsn/RjctnDtTm"),
        description=f.get("Rsn/RsnDesc"),
        additional_data=f.get("Rsn/AddtlData"),
    )
