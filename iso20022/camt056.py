"""camt.056 FI-to-FI payment cancellation request (recall): model, build, parse.

Built as camt.056.001.08 by default (or .12: the same shape for what the switch models); parsed
in either. One Undrlyg holding one TxInf per payment to cancel, each with one cancellation
reason (CxlRsnInf). Assigner, assignee and case creator are agents. The answer is a camt.029.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
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
    date_in,
    original_group_in,
    write_case,
    write_case_assignment,
    write_reason,
    write_references,
)
from iso20022._xml import (
    ELEMENT,
    ELEMENTS,
    TEXT,
    Every,
    Tags,
    Writer,
    amount_in,
    compile_rules,
    flatten,
    required_in,
    to_element,
)
from iso20022.errors import XmlRejected
from iso20022.model import Agent, Amount
from iso20022.pacs002 import OriginalGroup
from iso20022.parsing import ISO_NAMESPACE_PREFIX
from iso20022.schemas import SchemaSet

VERSION: Final = "camt.056.001.08"
VERSIONS: Final = ("camt.056.001.08", "camt.056.001.12")


@dataclass(frozen=True, slots=True)
class CancellationTx:
    """One Undrlyg/TxInf: CxlId, the original payment and one cancellation reason.

    reason_code is CxlRsnInf/Rsn/Cd (an ISO external cancellation reason, e.g. DUPL, FRAD, CUST),
    or reason_proprietary CxlRsnInf/Rsn/Prtry; not both.
    """

    cancellation_id: str
    original_group: OriginalGroup | None = None
    original_instruction_id: str | None = None
    original_end_to_end_id: str | None = None
    original_tx_id: str | None = None
    original_uetr: str | None = None
    original_settlement_amount: Amount | None = None  # OrgnlIntrBkSttlmAmt
    original_settlement_date: date | None = None  # OrgnlIntrBkSttlmDt
    reason_code: str | None = None
    reason_proprietary: str | None = None
    additional_info: tuple[str, ...] = ()  # CxlRsnInf/AddtlInf, <= 105 each

    def __post_init__(self) -> None:
        check_reason(self.reason_code, self.reason_proprietary)


@dataclass(frozen=True, slots=True)
class CancellationRequest:
    """FIToFIPmtCxlReq: Assgnmt (Id, Assgnr/Agt, Assgne/Agt, CreDtTm), Case (Id, Cretr/Agt), TxInf."""

    assignment_id: str
    created_at: datetime
    assigner: Agent
    assignee: Agent
    transactions: tuple[CancellationTx, ...]
    case_id: str | None = None
    case_creator: Agent | None = None  # with case_id: Case needs both

    def __post_init__(self) -> None:
        check_case(self.case_id, self.case_creator)


def build(request: CancellationRequest, version: str = VERSION) -> bytes:
    """UTF-8 bytes with an XML declaration, for version (one of VERSIONS); not validated."""
    if version not in VERSIONS:
        raise ValueError(f"unsupported version {version!r}; expected one of {VERSIONS}")
    w = Writer(ISO_NAMESPACE_PREFIX + version)
    w.open("FIToFIPmtCxlReq")
    write_case_assignment(w, request.assignment_id, request.assigner, request.assignee, request.created_at)
    write_case(w, "Case", request.case_id, request.case_creator)
    w.open("Undrlyg")
    for tx in request.transactions:
        w.open("TxInf")
        w.leaf("CxlId", tx.cancellation_id)
        write_references(w, tx.original_group, tx.original_instruction_id, tx.original_end_to_end_id,
                         tx.original_tx_id, tx.original_uetr)
        if tx.original_settlement_amount is not None:
            w.amount("OrgnlIntrBkSttlmAmt", tx.original_settlement_amount)
        if tx.original_settlement_date is not None:
            w.leaf("OrgnlIntrBkSttlmDt", tx.original_settlement_date.isoformat())
        write_reason(w, "CxlRsnInf", tx.reason_code, tx.reason_proprietary, tx.additional_info)
        w.close("TxInf")
    w.close("Undrlyg")
    w.close("FIToFIPmtCxlReq")
    return w.to_bytes()


def build_validated(request: CancellationRequest, schemas: SchemaSet, version: str = VERSION) -> bytes:
    """build(), then validate against version's official XSD (SchemaViolation); returns the same bytes."""
    data = build(request, version)
    schemas.validate(to_element(data), version)
    return data


_BODY_SPEC: Final = {"Assgnmt": CASE_ASSIGNMENT_SPEC, "Case": CASE_SPEC, "Undrlyg": Every({"TxInf": ELEMENTS})}
_TX_SPEC: Final = {
    "CxlId": TEXT,
    **REFERENCES_SPEC,
    "OrgnlIntrBkSttlmAmt": ELEMENT,
    "OrgnlIntrBkSttlmDt": TEXT,
    "CxlRsnInf": REASON_SPEC,
}
_RULES: Final = {
    version: (Tags(ISO_NAMESPACE_PREFIX + version),
              compile_rules(ISO_NAMESPACE_PREFIX + version, _BODY_SPEC),
              compile_rules(ISO_NAMESPACE_PREFIX + version, _TX_SPEC))
    for version in VERSIONS
}


def parse(root: etree._Element) -> CancellationRequest:
    """The model from a validated camt.056 Document (one of VERSIONS); XmlRejected (FF01) otherwise.

    TxInf of every Undrlyg are read in document order; the switch needs CxlId on each (optional in
    the XSD). An assigner, assignee or case creator that is a party rather than an agent is FF01.
    """
    f, tx_rules, header = case_assignment_in(root, VERSIONS, _RULES, "FIToFIPmtCxlReq", "Case")
    if "Undrlyg" not in f:
        raise XmlRejected("FF01", "Undrlyg is missing", path="Undrlyg")
    return CancellationRequest(
        transactions=tuple(_transaction(flatten(tx, tx_rules, {})) for tx in f.get("Undrlyg/TxInf", ())),
        **header,
    )


def _transaction(f: dict) -> CancellationTx:  # type: ignore[type-arg]
    return CancellationTx(
        cancellation_id=required_in(f, "CxlId", "Undrlyg/TxInf"),
        original_group=original_group_in(f, "Undrlyg/TxInf"),
        original_instruction_id=f.get("OrgnlInstrId"),
        original_end_to_end_id=f.get("OrgnlEndToEndId"),
        original_tx_id=f.get("OrgnlTxId"),
        original_uetr=f.get("OrgnlUETR"),
        original_settlement_amount=amount_in(f, "OrgnlIntrBkSttlmAmt"),
        original_settlement_date=date_in(f, "OrgnlIntrBkSttlmDt", "Undrlyg/TxInf"),
        reason_code=f.get("CxlRsnInf/Rsn/Cd"),
        reason_proprietary=f.get("CxlRsnInf/Rsn/Prtry"),
        additional_info=tuple(f.get("CxlRsnInf/AddtlInf", ())),
    )
