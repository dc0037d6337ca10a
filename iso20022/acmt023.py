"""acmt.023.001.04 identification verification request: "who is behind these proxies/accounts?"

The switch asks a partner (e.g. PromptPay, Nexus-style) to resolve one or more proxies (mobile,
national id, e-wallet) or accounts in one message: one Vrfctn per item, each with an Id unique in
the message that the acmt.024 report answers in Rpt/OrgnlId. build() writes elements in XSD
sequence order and validates nothing; parse() expects a document that already passed validation.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from iso20022._xml import message_body, ELEMENTS, TEXT, Tags, Writer, compile_rules, flatten, required_in, to_element
from iso20022.errors import XmlRejected
from iso20022.model import Assignment, PartyAndAccount
from iso20022.parsing import ISO_NAMESPACE_PREFIX
from iso20022.schemas import SchemaSet

VERSION: Final = "acmt.023.001.04"
_Q: Final = Tags(ISO_NAMESPACE_PREFIX + VERSION)


@dataclass(frozen=True, slots=True)
class Verification:
    """One Vrfctn: Id (unique in the message) and the PtyAndAcctId to verify."""

    verification_id: str
    party_and_account: PartyAndAccount


@dataclass(frozen=True, slots=True)
class IdentificationVerificationRequest:
    """IdVrfctnReq: one or more verifications (a batch of proxies)."""

    assignment: Assignment
    verifications: tuple[Verification, ...]


def build(request: IdentificationVerificationRequest) -> bytes:
    """UTF-8 bytes with an XML declaration; not validated."""
    w = Writer(_Q.namespace)
    w.open("IdVrfctnReq")
    write_assignment(w, request.assignment)
    for verification in request.verifications:
        w.open("Vrfctn")
        w.leaf("Id", verification.verification_id)
        write_party_and_account(w, "PtyAndAcctId", verification.party_and_account)
        w.close("Vrfctn")
    w.close("IdVrfctnReq")
    return w.to_bytes()


def build_validated(request: IdentificationVerificationRequest, schemas: SchemaSet) -> bytes:
    """build(), then validate against the official XSD (SchemaViolation); returns the same bytes."""
    data = build(request)
    schemas.validate(to_element(data), VERSION)
    return data


_BODY_RULES: Final = compile_rules(_Q.namespace, {"Assgnmt": ASSIGNMENT_SPEC, "Vrfctn": ELEMENTS})
_VERIFICATION_RULES: Final = compile_rules(_Q.namespace, {"Id": TEXT, "PtyAndAcctId": PARTY_AND_ACCOUNT_SPEC})
_PARTY_AND_ACCOUNT: Final = PartyAndAccountKeys("PtyAndAcctId")


def parse(root: etree._Element) -> IdentificationVerificationRequest:
    """The model from a validated acmt.023.001.04 Document.

    XmlRejected FF01 (.path set): another message, a missing element, an assigner or assignee that
    is a party rather than an agent, or a Vrfctn/Id used twice (the report could not be matched).
    """
    body = message_body(root, VERSION, _Q, "IdVrfctnReq")
    f = flatten(body, _BODY_RULES, {})
    assignment = assignment_in(f)
    verifications = []
    seen: set[str] = set()
    for element in f.get("Vrfctn", ()):
        v = flatten(element, _VERIFICATION_RULES, {})
        identifier = required_in(v, "Id", "Vrfctn")
        where = f"Vrfctn[{identifier}]"
        if identifier in seen:
            raise XmlRejected("FF01", f"{where}/Id is used by two verifications", path=f"{where}/Id")
        seen.add(identifier)
        party_and_account = party_and_account_in(v, _PARTY_AND_ACCOUNT, where)
        if party_and_account is None:
            raise XmlRejected("FF01", f"{where}/PtyAndAcctId is missing", path=f"{where}/PtyAndAcctId")
        verifications.append(Verification(verification_id=identifier, party_and_account=party_and_account))
    return IdentificationVerificationRequest(assignment=assignment, verifications=tuple(verifications))
