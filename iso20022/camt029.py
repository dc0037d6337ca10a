"""camt.029 resolution of investigation (the answer to a camt.056): model, build, parse.

Built as camt.029.001.09 by default (or .14: the same shape for what the switch models); parsed
in either. Sts/Conf is the case's outcome (e.g. CNCL cancelled as requested, RJCR rejected, PDCR
pending); one CxlDtls holds one TxInfAndSts per payment, with TxCxlSts (ACCR, RJCR, PDCR) and
one reason (CxlStsRsnInf, e.g. LEGL, CUST, AGNT, NOOR, ARDT, AC04, AM04, NOAS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from lxml import etree

from iso20022._refs import (
    CASE_ASSIGNMENT_SPEC,
    CASE_SPEC,
    REASON_SPEC,
    REFERENCES_SPEC,
    case_assignment_in,
    check_case,
    check_reason,
    original_group_in,
    write_case,
    write_case_assignment,
    write_reason,
    write_references,
)
from iso20022._xml import (
    ELEMENTS,
    TEXT,
    Every,
    Tags,
    Writer,
    compile_rules,
    flatten,
    required_in,
    to_element,
)
from iso20022.model import Agent
from iso20022.pacs002 import OriginalGroup
from iso20022.parsing import ISO_NAMESPACE_PREFIX
from iso20022.schemas import SchemaSet

VERSION: Final = "camt.029.001.09"
VERSIONS: Final = ("camt.029.001.09", "camt.029.001.14")


@dataclass(frozen=True, slots=True)
class CancellationStatus:
    """One CxlDtls/TxInfAndSts. reason_code is CxlStsRsnInf/Rsn/Cd, reason_proprietary Rsn/Prtry; not both."""

    cancellation_status_id: str | None = None  # CxlStsId
    original_group: OriginalGroup | None = None
    original_instruction_id: str | None = None
    original_end_to_end_id: str | None = None
    original_tx_id: str | None = None
    original_uetr: str | None = None
    status: str | None = None  # TxCxlSts: ACCR, RJCR, PDCR
    reason_code: str | None = None
    reason_proprietary: str | None = None
    additional_info: tuple[str, ...] = ()  # CxlStsRsnInf/AddtlInf, <= 105 each

    def __post_init__(self) -> None:
        check_reason(self.reason_code, self.reason_proprietary)


@dataclass(frozen=True, slots=True)
class Resolution:
    """RsltnOfInvstgtn: Assgnmt, RslvdCase (Id, Cretr/Agt), Sts/Conf (mandatory) and the statuses.

    A document whose Sts is another choice than Conf (RjctdMod, DplctOf, AssgnmtCxlConf) is not
    one the switch handles: parse rejects it.
    """

    assignment_id: str
    created_at: datetime
    assigner: Agent
    assignee: Agent
    status: str  # Sts/Conf
    transactions: tuple[CancellationStatus, ...] = ()
    case_id: str | None = None  # RslvdCase/Id
    case_creator: Agent | None = None  # RslvdCase/Cretr/Agt, with case_id

    def __post_init__(self) -> None:
        check_case(self.case_id, self.case_creator)


def build(resolution: Resolution, version: str = VERSION) -> bytes:
    """UTF-8 bytes with an XML declaration, for version (one of VERSIONS); not validated."""
    if version not in VERSIONS:
        raise ValueError(f"unsupported version {version!r}; expected one of {VERSIONS}")
    w = Writer(ISO_NAMESPACE_PREFIX + version)
    w.open("RsltnOfInvstgtn")
    write_case_assignment(w, resolution.assignment_id, resolution.assigner, resolution.assignee,
                          resolution.created_at)
    write_case(w, "RslvdCase", resolution.case_id, resolution.case_creator)
    w.open("Sts")
    w.leaf("Conf", resolution.status)
    w.close("Sts")
    if resolution.transactions:
        w.open("CxlDtls")
        for tx in resolution.transactions:
            w.open("TxInfAndSts")
            if tx.cancellation_status_id is not None:
                w.leaf("CxlStsId", tx.cancellation_status_id)
            write_references(w, tx.original_group, tx.original_instruction_id, tx.original_end_to_end_id,
                             tx.original_tx_id, tx.original_uetr)
            if tx.status is not None:
                w.leaf("TxCxlSts", tx.status)
            write_reason(w, "CxlStsRsnInf", tx.reason_code, tx.reason_proprietary, tx.additional_info)
            w.close("TxInfAndSts")
        w.close("CxlDtls")
    w.close("RsltnOfInvstgtn")
    return w.to_bytes()


def build_validated(resolution: Resolution, schemas: SchemaSet, version: str = VERSION) -> bytes:
    """build(), then validate against version's official XSD (SchemaViolation); returns the same bytes."""
    data = build(resolution, version)
    schemas.validate(to_element(data), version)
    return data


_BODY_SPEC: Final = {
    "Assgnmt": CASE_ASSIGNMENT_SPEC,
    "RslvdCase": CASE_SPEC,
    "Sts": {"Conf": TEXT},
    "CxlDtls": Every({"TxInfAndSts": ELEMENTS}),
}
_TX_SPEC: Final = {"CxlStsId": TEXT, **REFERENCES_SPEC, "TxCxlSts": TEXT, "CxlStsRsnInf": REASON_SPEC}
_RULES: Final = {
    version: (Tags(ISO_NAMESPACE_PREFIX + version),
              compile_rules(ISO_NAMESPACE_PREFIX + version, _BODY_SPEC),
              compile_rules(ISO_NAMESPACE_PREFIX + version, _TX_SPEC))
    for version in VERSIONS
}


def parse(root: etree._Element) -> Resolution:
    """The model from a validated camt.029 Document (one of VERSIONS); XmlRejected (FF01) otherwise.

    TxInfAndSts of every CxlDtls are read in document order. An assigner, assignee or case creator
    that is a party rather than an agent is FF01, and so is a Sts without Conf.
    """
    f, tx_rules, header = case_assignment_in(root, VERSIONS, _RULES, "RsltnOfInvstgtn", "RslvdCase")
    return Resolution(
        status=required_in(f, "Sts/Conf"),
        transactions=tuple(_status(flatten(tx, tx_rules, {})) for tx in f.get("CxlDtls/TxInfAndSts", ())),
        **header,
    )


def _status(f: dict) -> CancellationStatus:  # type: ignore[type-arg]
    return CancellationStatus(
        cancellation_status_id=f.get("CxlStsId"),
        original_group=original_group_in(f, "CxlDtls/TxInfAndSts"),
        original_instruction_id=f.get("OrgnlInstrId"),
        original_end_to_end_id=f.get("OrgnlEndToEndId"),
        original_tx_id=f.get("OrgnlTxId"),
        original_uetr=f.get("OrgnlUETR"),
        status=f.get("TxCxlSts"),
        reason_code=f.get("CxlStsRsnInf/Rsn/Cd"),
        reason_proprietary=f.get("CxlStsRsnInf/Rsn/Prtry"),
        additional_info=tuple(f.get("CxlStsRsnInf/AddtlInf", ())),
    )
