"""Exception messages (pacs.028, pacs.004, camt.056, camt.029, admi.002) against the official XSDs."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from types import ModuleType
from typing import Any

import pytest

from iso20022 import admi002, camt029, camt056, pacs004, pacs028
from iso20022.errors import SchemaViolation, XmlRejected
from iso20022.model import Agent, Amount, ClearingSystemMember
from iso20022.pacs002 import OriginalGroup
from iso20022.parsing import message_id_of, parse_untrusted
from iso20022.schemas import SchemaSet

ICT = timezone(timedelta(hours=7))
CREATED_AT = datetime(2025, 3, 10, 9, 30, 15, 250000, tzinfo=ICT)
UETR = "4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e5a"
BAKONG = Agent(bicfi="ACLBKHPPXXX")
ITMX = Agent(clearing_member=ClearingSystemMember("THN01", system_code="THCBC"), country="TH")
NAPAS = Agent(clearing_member=ClearingSystemMember("970436", system_proprietary="NAPAS"))
ORIGINAL = OriginalGroup("MEKONG-20250310-000001", "pacs.008.001.13", CREATED_AT)

FULL_STATUS_REQUEST = pacs028.StatusRequest(
    message_id="MEKONG-STSREQ-1",
    created_at=CREATED_AT,
    transactions=(
        pacs028.StatusRequestTx("SR-1", ORIGINAL, "INSTR-1", "E2E-1", "TX-1", UETR),
        pacs028.StatusRequestTx("SR-2", OriginalGroup("MEKONG-20250310-000002", "pacs.008.001.08"), original_tx_id="TX-2"),
    ),
    instructing_agent=BAKONG,
    instructed_agent=ITMX,
)
MINIMAL_STATUS_REQUEST = pacs028.StatusRequest("M1", CREATED_AT, ())

FULL_RETURN = pacs004.PaymentReturn(
    message_id="NAPAS-RTR-1",
    created_at=CREATED_AT,
    transactions=(
        pacs004.ReturnTx(
            return_id="RTR-1",
            returned_amount=Amount("1650.00", "THB"),
            original_group=ORIGINAL,
            original_instruction_id="INSTR-1",
            original_end_to_end_id="E2E-1",
            original_tx_id="TX-1",
            original_uetr=UETR,
            original_settlement_amount=Amount("1650.00", "THB"),
            settlement_date=date(2025, 3, 11),
            returned_instructed_amount=Amount("200000", "KHR"),
            exchange_rate="0.00825",
            charge_bearer="SLEV",
            reason_code="AC04",
            additional_info=("Account closed", "Funds returned in full"),
            instructing_agent=NAPAS,
            instructed_agent=BAKONG,
        ),
        pacs004.ReturnTx("RTR-2", Amount("10", "VND"), reason_proprietary="NAPAS-68"),
    ),
    clearing_system_proprietary="NAPAS",
    instructing_agent=NAPAS,
    instructed_agent=BAKONG,
)
MINIMAL_RETURN = pacs004.PaymentReturn("M1", CREATED_AT, (pacs004.ReturnTx("R1", Amount("0.5", "USD")),))

FULL_CANCELLATION = camt056.CancellationRequest(
    assignment_id="MEKONG-CXL-1",
    created_at=CREATED_AT,
    assigner=BAKONG,
    assignee=ITMX,
    transactions=(
        camt056.CancellationTx(
            cancellation_id="CXL-1",
            original_group=ORIGINAL,
            original_instruction_id="INSTR-1",
            original_end_to_end_id="E2E-1",
            original_tx_id="TX-1",
            original_uetr=UETR,
            original_settlement_amount=Amount("1650.00", "THB"),
            original_settlement_date=date(2025, 3, 10),
            reason_code="DUPL",
            additional_info=("Sent twice",),
        ),
        camt056.CancellationTx("CXL-2", original_end_to_end_id="E2E-2", reason_proprietary="CUSTOMER-REQUEST"),
    ),
    case_id="CASE-1",
    case_creator=BAKONG,
)
MINIMAL_CANCELLATION = camt056.CancellationRequest("M1", CREATED_AT, BAKONG, ITMX, ())

FULL_RESOLUTION = camt029.Resolution(
    assignment_id="ITMX-RSLTN-1",
    created_at=CREATED_AT,
    assigner=ITMX,
    assignee=BAKONG,
    status="RJCR",
    transactions=(
        camt029.CancellationStatus(
            cancellation_status_id="CXLSTS-1",
            original_group=ORIGINAL,
            original_instruction_id="INSTR-1",
            original_end_to_end_id="E2E-1",
            original_tx_id="TX-1",
            original_uetr=UETR,
            status="RJCR",
            reason_code="NOOR",
            additional_info=("Original payment never received",),
        ),
        camt029.CancellationStatus(original_end_to_end_id="E2E-2", status="ACCR", reason_proprietary="OK"),
    ),
    case_id="CASE-1",
    case_creator=BAKONG,
)
MINIMAL_RESOLUTION = camt029.Resolution("M1", CREATED_AT, ITMX, BAKONG, "CNCL")

FULL_REJECT = admi002.MessageReject(
    reference="MEKONG-20250310-000001",
    reason_code="FF01",
    rejected_at=CREATED_AT,
    description="GrpHdr/NbOfTxs is 2 but 1 CdtTrfTxInf follow",
    additional_data='<NbOfTxs>2</NbOfTxs> & "more"',
)
MINIMAL_REJECT = admi002.MessageReject("M1", "FF02")

# module, a full and a minimal model, the versions build() takes (None: the module's only one)
CASES: list[tuple[ModuleType, Any, Any, tuple[str | None, ...]]] = [
    (pacs028, FULL_STATUS_REQUEST, MINIMAL_STATUS_REQUEST, (None,)),
    (pacs004, FULL_RETURN, MINIMAL_RETURN, (None,)),
    (camt056, FULL_CANCELLATION, MINIMAL_CANCELLATION, camt056.VERSIONS),
    (camt029, FULL_RESOLUTION, MINIMAL_RESOLUTION, camt029.VERSIONS),
    (admi002, FULL_REJECT, MINIMAL_REJECT, (None,)),
]
VERSIONED = [(module, full, minimal, version) for module, full, minimal, versions in CASES for version in versions]


def _ids(case: tuple[Any, ...]) -> str:
    return case[3] or case[0].VERSION


def _build(module: ModuleType, model: Any, version: str | None = None) -> bytes:
    return module.build(model) if version is None else module.build(model, version)  # type: ignore[no-any-return]


def _build_validated(module: ModuleType, model: Any, schemas: SchemaSet, version: str | None) -> bytes:
    if version is None:
        return module.build_validated(model, schemas)  # type: ignore[no-any-return]
    return module.build_validated(model, schemas, version)  # type: ignore[no-any-return]


def _without(body: bytes, tag: str) -> bytes:
    """body with the first <tag ...>...</tag> removed."""
    stripped, count = re.subn(rb"<%s[ >].*?</%s>" % (tag.encode(), tag.encode()), b"", body, count=1, flags=re.S)
    assert count == 1, tag
    return stripped


def _rejected(module: ModuleType, body: bytes, match: str) -> XmlRejected:
    with pytest.raises(XmlRejected, match=match) as rejected:
        module.parse(parse_untrusted(body))
    assert rejected.value.reason_code == "FF01"
    return rejected.value


@pytest.mark.parametrize("case", VERSIONED, ids=_ids)
def test_full_message_validates_and_parses_back(schemas: SchemaSet, case: tuple[Any, ...]) -> None:
    module, full, _minimal, version = case
    body = _build_validated(module, full, schemas, version)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = parse_untrusted(body)
    assert message_id_of(root) == (version or module.VERSION)
    assert module.parse(root) == full


@pytest.mark.parametrize("case", VERSIONED, ids=_ids)
def test_minimal_message_validates_and_parses_back(schemas: SchemaSet, case: tuple[Any, ...]) -> None:
    module, _full, minimal, version = case
    assert module.parse(parse_untrusted(_build_validated(module, minimal, schemas, version))) == minimal


@pytest.mark.parametrize("case", CASES, ids=lambda case: case[0].VERSION)
def test_parser_refuses_another_message(case: tuple[Any, ...]) -> None:
    module = case[0]
    other_module, other = (pacs004, MINIMAL_RETURN) if module is not pacs004 else (admi002, MINIMAL_REJECT)
    rejected = _rejected(module, _build(other_module, other), module.VERSION)
    assert other_module.VERSION in rejected.message


def test_camt_build_refuses_an_unknown_version() -> None:
    with pytest.raises(ValueError, match="camt.056.001.99"):
        camt056.build(MINIMAL_CANCELLATION, "camt.056.001.99")
    with pytest.raises(ValueError, match="camt.029.001.99"):
        camt029.build(MINIMAL_RESOLUTION, "camt.029.001.99")


MISSING: list[tuple[ModuleType, Any, str, str]] = [
    (pacs028, FULL_STATUS_REQUEST, "GrpHdr", "GrpHdr"),
    (pacs028, FULL_STATUS_REQUEST, "MsgId", "GrpHdr/MsgId"),
    (pacs028, FULL_STATUS_REQUEST, "StsReqId", "TxInf/StsReqId"),
    (pacs028, FULL_STATUS_REQUEST, "OrgnlGrpInf", "TxInf/OrgnlGrpInf"),
    (pacs028, FULL_STATUS_REQUEST, "OrgnlMsgNmId", "TxInf/OrgnlGrpInf/OrgnlMsgNmId"),
    (pacs004, FULL_RETURN, "SttlmMtd", "GrpHdr/SttlmInf/SttlmMtd"),
    (pacs004, FULL_RETURN, "NbOfTxs", "GrpHdr/NbOfTxs"),
    (pacs004, FULL_RETURN, "RtrId", "TxInf/RtrId"),
    (pacs004, FULL_RETURN, "RtrdIntrBkSttlmAmt", "TxInf/RtrdIntrBkSttlmAmt"),
    (camt056, FULL_CANCELLATION, "Assgnmt", "Assgnmt"),
    (camt056, FULL_CANCELLATION, "Assgne", "Assgnmt/Assgne/Agt"),
    (camt056, FULL_CANCELLATION, "CreDtTm", "Assgnmt/CreDtTm"),
    (camt056, FULL_CANCELLATION, "Cretr", "Case/Cretr/Agt"),
    (camt056, FULL_CANCELLATION, "Undrlyg", "Undrlyg"),
    (camt056, FULL_CANCELLATION, "CxlId", "Undrlyg/TxInf/CxlId"),
    (camt029, FULL_RESOLUTION, "Assgnr", "Assgnmt/Assgnr/Agt"),
    (camt029, FULL_RESOLUTION, "Sts", "Sts/Conf"),
    (camt029, FULL_RESOLUTION, "OrgnlMsgId", "CxlDtls/TxInfAndSts/OrgnlGrpInf/OrgnlMsgId"),
    (admi002, FULL_REJECT, "RltdRef", "RltdRef/Ref"),
    (admi002, FULL_REJECT, "Rsn", "Rsn"),
    (admi002, FULL_REJECT, "RjctgPtyRsn", "Rsn/RjctgPtyRsn"),
]


@pytest.mark.parametrize(("module", "model", "tag", "path"), MISSING, ids=[f"{m.VERSION}-{t}" for m, _, t, _ in MISSING])
def test_missing_mandatory_element_is_ff01_naming_it(module: ModuleType, model: Any, tag: str, path: str) -> None:
    rejected = _rejected(module, _without(_build(module, model), tag), re.escape(path))
    assert rejected.path == path


def test_pacs004_number_of_transactions_must_match(schemas: SchemaSet) -> None:
    body = pacs004.build(FULL_RETURN).replace(b"<NbOfTxs>2<", b"<NbOfTxs>3<")
    rejected = _rejected(pacs004, body, "NbOfTxs is 3 but 2 TxInf")
    assert rejected.path == "GrpHdr/NbOfTxs"


def test_pacs004_group_header_writes_nboftxs_and_settlement_in_xsd_order() -> None:
    body = pacs004.build(FULL_RETURN)
    assert b"<NbOfTxs>2</NbOfTxs><SttlmInf><SttlmMtd>CLRG</SttlmMtd><ClrSys><Prtry>NAPAS</Prtry></ClrSys></SttlmInf>" in body


def test_camt056_puts_every_transaction_under_one_undrlyg() -> None:
    body = camt056.build(FULL_CANCELLATION)
    assert body.count(b"<Undrlyg>") == 1
    assert b"<Undrlyg><TxInf><CxlId>CXL-1</CxlId>" in body


def test_camt056_reads_the_transactions_of_every_undrlyg_in_order(schemas: SchemaSet) -> None:
    body = camt056.build(FULL_CANCELLATION).replace(b"</TxInf><TxInf>", b"</TxInf></Undrlyg><Undrlyg><TxInf>")
    schemas.validate(parse_untrusted(body), camt056.VERSION)
    assert camt056.parse(parse_untrusted(body)) == FULL_CANCELLATION


def test_camt056_assignment_writes_creation_time_last() -> None:
    body = camt056.build(MINIMAL_CANCELLATION)
    assert re.search(rb"<Assgnmt><Id>M1</Id><Assgnr>.*</Assgne><CreDtTm>", body)


@pytest.mark.parametrize("module", [camt056, camt029])
@pytest.mark.parametrize("element", ["Assgnr", "Assgne"])
def test_camt_assigner_or_assignee_that_is_a_party_is_refused(module: ModuleType, element: str) -> None:
    model = FULL_CANCELLATION if module is camt056 else FULL_RESOLUTION
    body = re.sub(rb"<%s><Agt>.*?</Agt></%s>" % (element.encode(), element.encode()),
                  b"<%s><Pty><Nm>Someone</Nm></Pty></%s>" % (element.encode(), element.encode()),
                  _build(module, model), count=1, flags=re.S)
    rejected = _rejected(module, body, f"Assgnmt/{element}/Pty")
    assert rejected.path == f"Assgnmt/{element}/Pty"


def test_camt029_status_other_than_a_confirmation_is_refused(schemas: SchemaSet) -> None:
    body = camt029.build(MINIMAL_RESOLUTION).replace(b"<Conf>CNCL</Conf>", b"<AssgnmtCxlConf>true</AssgnmtCxlConf>")
    schemas.validate(parse_untrusted(body), camt029.VERSION)
    _rejected(camt029, body, "Sts/Conf")


def test_camt029_writes_cancellation_details_only_with_transactions() -> None:
    assert b"<CxlDtls>" not in camt029.build(MINIMAL_RESOLUTION)
    assert camt029.build(FULL_RESOLUTION).count(b"<CxlDtls>") == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: pacs004.ReturnTx("R1", Amount("1", "USD"), reason_code="AC04", reason_proprietary="X"),
        lambda: camt056.CancellationTx("C1", reason_code="DUPL", reason_proprietary="X"),
        lambda: camt029.CancellationStatus(reason_code="LEGL", reason_proprietary="X"),
        lambda: replace(MINIMAL_CANCELLATION, case_id="CASE-1"),
        lambda: replace(MINIMAL_RESOLUTION, case_creator=BAKONG),
    ],
    ids=["pacs004-reason", "camt056-reason", "camt029-reason", "camt056-case", "camt029-case"],
)
def test_models_refuse_what_the_xsd_cannot_carry(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_admi002_reason_longer_than_35_is_a_schema_violation(schemas: SchemaSet) -> None:
    assert schemas.text_max_length(admi002.VERSION, "Max35Text") == 35
    assert schemas.text_max_length(admi002.VERSION, "Max350Text") == 350
    with pytest.raises(SchemaViolation, match="RjctgPtyRsn"):
        admi002.build_validated(replace(MINIMAL_REJECT, reason_code="R" * 36), schemas)
