"""acmt.024.001.04 identification verification report: the answer to an acmt.023.

One Rpt per Vrfctn of the request: OrgnlId (the request's Vrfctn/Id), Vrfctn true/false, a reason
(e.g. BE23 when a proxy is unknown), the original party and account as asked, and the updated
ones: creditor name (Pty/Nm), account (Acct/Id/Othr/Id) and agent (Agt/FinInstnId/ClrSysMmbId,
e.g. 014 in THCBC). build() writes elements in XSD sequence order and validates nothing; parse()
expects a document that already passed validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from lxml import etree

from iso20022._acmt import (
    ASSIGNMENT_SPEC,
    PARTY_AND_ACCOUNT_SPEC,
    PartyAndAccountKeys,
    assignment_in,
    party_and_account_in,
    write_assignment,
    write_party_and_account,
)
from iso20022._xml import (
    message_body,
    CHOICE_SPEC,
    ELEMENTS,
    TEXT,
    Tags,
    Writer,
    compile_rules,
    datetime_in,
    flatten,
    required_in,
    to_element,
)
from iso20022.errors import XmlRejected
from iso20022.model import Assignment, PartyAndAccount
from iso20022.parsing import ISO_NAMESPACE_PREFIX
from iso20022.schemas import SchemaSet

VERSION: Final = "acmt.024.001.04"
_Q: Final = Tags(ISO_NAMESPACE_PREFIX + VERSION)
_BOOLEAN: Final = {"true": True, "1": True, "false": False, "0": False}  # xs:boolean's lexical space


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """One Rpt. reason_code is Rsn/Cd (ExternalVerificationReason1Code, e.g. BE23), or Rsn/Prtry."""

    original_id: str
    verified: bool
    reason_code: str | None = None
    reason_proprietary: str | None = None
    original_party_and_account: PartyAndAccount | None = None
    updated_party_and_account: PartyAndAccount | None = None


@dataclass(frozen=True, slots=True)
class IdentificationVerificationReport:
    """IdVrfctnRpt; original_message_id / original_created_at are OrgnlAssgnmt/MsgId and /CreDtTm."""

    assignment: Assignment
    reports: tuple[VerificationReport, ...]
    original_message_id: str | None = None
    original_created_at: datetime | None = None


def build(report: IdentificationVerificationReport) -> bytes:
    """UTF-8 bytes with an XML declaration; not validated."""
    w = Writer(_Q.namespace)
    w.open("IdVrfctnRpt")
    write_assignment(w, report.assignment)
    if report.original_message_id is not None or report.original_created_at is not None:
        w.open("OrgnlAssgnmt")
        if report.original_message_id is not None:
            w.leaf("MsgId", report.original_message_id)
        if report.original_created_at is not None:
            w.leaf("CreDtTm", report.original_created_at.isoformat())
        w.close("OrgnlAssgnmt")
    for item in report.reports:
        w.open("Rpt")
        w.leaf("OrgnlId", item.original_id)
        w.leaf("Vrfctn", "true" if item.verified else "false")
        w.choice("Rsn", item.reason_code, item.reason_proprietary)
        if item.original_party_and_account is not None:
            write_party_and_account(w, "OrgnlPtyAndAcctId", item.original_party_and_account)
        if item.updated_party_and_account is not None:
            write_party_and_account(w, "UpdtdPtyAndAcctId", item.updated_party_and_account)
        w.close("Rpt")
    w.close("IdVrfctnRpt")
    return w.to_bytes()


def build_validated(report: IdentificationVerificationReport, schemas: SchemaSet) -> bytes:
    """build(), then validate against the official XSD (SchemaViolation); returns the same bytes."""
    data = build(report)
    schemas.validate(to_element(data), VERSION)
    return data


_BODY_RULES: Final = compile_rules(_Q.namespace, {
    "Assgnmt": ASSIGNMENT_SPEC,
    "OrgnlAssgnmt": {"MsgId": TEXT, "CreDtTm": TEXT},
    "Rpt": ELEMENTS,
})
_REPORT_RULES: Final = compile_rules(_Q.namespace, {
    "OrgnlId": TEXT,
    "Vrfctn": TEXT,
    "Rsn": CHOICE_SPEC,
    "OrgnlPtyAndAcctId": PARTY_AND_ACCOUNT_SPEC,
    "UpdtdPtyAndAcctId": PARTY_AND_ACCOUNT_SPEC,
})
_ORIGINAL: Final = PartyAndAccountKeys("OrgnlPtyAndAcctId")
_UPDATED: Final = PartyAndAccountKeys("UpdtdPtyAndAcctId")


def parse(root: etree._Element) -> IdentificationVerificationReport:
    """The model from a validated acmt.024.001.04 Document.

    XmlRejected FF01 (.path set): another message, a missing element, an assigner or assignee that
    is a party rather than an agent, or an OrgnlId answered twice.
    """
    body = message_body(root, VERSION, _Q, "IdVrfctnRpt")
    f = flatten(body, _BODY_RULES, {})
    assignment = assignment_in(f)
    reports = []
    seen: set[str] = set()
    for element in f.get("Rpt", ()):
        r = flatten(element, _REPORT_RULES, {})
        original_id = required_in(r, "OrgnlId", "Rpt")
        where = f"Rpt[{original_id}]"
        if original_id in seen:
            raise XmlRejected("FF01", f"{where}/OrgnlId is answered twice", path=f"{where}/OrgnlId")
        seen.add(original_id)
        verified_text = required_in(r, "Vrfctn", where).strip()
        verified = _BOOLEAN.get(verified_text)
        if verified is None:
            raise XmlRejected("FF01", f"{where}/Vrfctn {verified_text!r} is not a boolean", path=f"{where}/Vrfctn")
        code = r.get("Rsn/Cd")
        reports.append(VerificationReport(
            original_id=original_id,
            verified=verified,
            reason_code=code,
            reason_proprietary=r.get("Rsn/Prtry") if code is None else None,
            original_party_and_account=party_and_account_in(r, _ORIGINAL, where),
            updated_party_and_account=party_and_account_in(r, _UPDATED, where),
        ))
    return IdentificationVerificationReport(
        assignment=assignment,
        reports=tuple(reports),
        original_message_id=f.get("OrgnlAssgnmt/MsgId"),
        original_created_at=datetime_in(f, "OrgnlAssgnmt/CreDtTm"),
    )
