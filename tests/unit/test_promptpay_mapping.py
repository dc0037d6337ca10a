"""PromptPay / National ITMX mapping: a KHR -> THB payment as a Nexus-style pacs.008.001.13, and
pacs.002.001.10 statuses back into domain terms (DESIGN "Partner adapters", PARTNERS.md)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from adapters.base import load_profile
from adapters.promptpay.mapping import PromptPayMapping
from iso20022 import pacs002, pacs008
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch.domain.errors import InstructionRejected
from switch.domain.money import CURRENCIES, Money
from switch.domain.payment import Party, Payment, PaymentState
from tests.factories import SAMPLE_DEBTOR_ADDRESS, SAMPLE_DEBTOR_IDENTIFICATION

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "adapters" / "promptpay" / "fixtures" / "pacs008_khr_mobile.xml"
VERSION = "pacs.008.001.13"
NS = {"p": f"urn:iso:std:iso:20022:tech:xsd:{VERSION}"}
SWITCH_BIC = "NBCAKHPPXXX"
ICT = timezone(timedelta(hours=7))
CREATED_AT = datetime(2025, 3, 10, 9, 30, 15, 250000, tzinfo=ICT)
MESSAGE_ID = "M5f0e7a1c3b2d4e6f8a9b0c1d2e3f4a5b01"  # handlers.message_id(uetr, attempt=1)
RATE = "0.0082882132"

KHR, THB = CURRENCIES["KHR"], CURRENCIES["THB"]


def mobile_payment() -> Payment:
    """KHR 200,000 from a Bakong wallet to a PromptPay mobile proxy, quoted at RATE (ROUND_DOWN)."""
    source = Money(20_000_000, KHR)
    target_minor = int((Decimal("200000") * Decimal(RATE)).quantize(Decimal("0.01"), rounding="ROUND_DOWN") * 100)
    return Payment(
        uetr="5f0e7a1c-3b2d-4e6f-8a9b-0c1d2e3f4a5b",
        instruction_id="INS-2025-03-10-0001",
        participant="ACLBKHPPXXX",
        corridor="KH-TH",
        partner="promptpay",
        debtor=Party(name="Sok Dara", account="sok_dara@aclb", agent="ACLBKHPPXXX",
                     address=SAMPLE_DEBTOR_ADDRESS, identification=SAMPLE_DEBTOR_IDENTIFICATION),
        creditor=Party(name="Somchai Jaidee", proxy_type="MOBILE", proxy="0066812345678"),
        instructed=source,
        source=source,
        target=Money(target_minor, THB),
        fee=Money(200_000, KHR),
        fx_rate=RATE,
        quote_id="Q7d0c1f0e8c1b4b7e9c7e0f6c",
        remittance="Family support",
        state=PaymentState.QUOTED,
        reason_code=None,
        version=2,
        created_at=CREATED_AT - timedelta(seconds=1),
        updated_at=CREATED_AT - timedelta(seconds=1),
    )


def account_payment() -> Payment:
    return replace(mobile_payment(), creditor=Party(name="Somchai Jaidee", account="0041234567", agent="004"))


@pytest.fixture(scope="module")
def mapping() -> PromptPayMapping:
    return PromptPayMapping(load_profile(ROOT / "config" / "partners" / "promptpay.toml"), switch_bic=SWITCH_BIC)


def build(mapping: PromptPayMapping, payment: Payment, schemas: SchemaSet) -> bytes:
    message = mapping.to_pacs008([payment], message_id=MESSAGE_ID, created_at=CREATED_AT)
    return pacs008.build_validated(message, VERSION, schemas)


def tx_of(data: bytes) -> etree._Element:
    root = etree.fromstring(data)
    assert root.tag == f"{{{NS['p']}}}Document"
    (tx,) = root.findall("p:FIToFICstmrCdtTrf/p:CdtTrfTxInf", NS)
    return tx


def text(element: etree._Element, path: str) -> str:
    found = element.find(path, NS)
    assert found is not None, f"{path} is missing"
    return found.text or ""


# ---------------------------------------------------------------- profile


def test_profile_carries_the_public_promptpay_facts(mapping: PromptPayMapping) -> None:
    p = mapping.profile
    assert (p.pacs008_version, p.pacs002_version) == (VERSION, "pacs.002.001.10")
    assert (p.clearing_system_code, p.member_id_system_code, p.currency, p.amount_decimals) == ("THN", "THCBC", "THB", 2)
    assert p.nexus_style and p.text_rule == "latin"


# ---------------------------------------------------------------- pacs.008


def test_pacs008_for_a_mobile_proxy_validates_against_the_official_xsd(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    data = build(mapping, mobile_payment(), schemas)  # build_validated raises SchemaViolation otherwise
    schemas.validate(etree.fromstring(data), VERSION)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_pacs008_group_header_names_the_itmx_clearing_system(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    root = etree.fromstring(build(mapping, mobile_payment(), schemas))
    header = root.find("p:FIToFICstmrCdtTrf/p:GrpHdr", NS)
    assert header is not None
    assert text(header, "p:MsgId") == MESSAGE_ID
    assert datetime.fromisoformat(text(header, "p:CreDtTm")) == CREATED_AT
    assert text(header, "p:NbOfTxs") == "1"
    assert text(header, "p:SttlmInf/p:SttlmMtd") == "CLRG"
    assert text(header, "p:SttlmInf/p:ClrSys/p:Cd") == "THN"


def test_pacs008_carries_the_nexus_identity_fields(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    payment = mobile_payment()
    tx = tx_of(build(mapping, payment, schemas))
    assert text(tx, "p:PmtId/p:UETR") == payment.uetr
    assert text(tx, "p:PmtId/p:InstrId") == text(tx, "p:PmtId/p:EndToEndId") == payment.instruction_id
    assert text(tx, "p:PmtId/p:TxId") == "T" + payment.uetr.replace("-", "")
    assert datetime.fromisoformat(text(tx, "p:AddtlDtTm/p:AccptncDtTm")) == CREATED_AT
    assert tx.find("p:AccptncDtTm", NS) is None  # .13 moved it under AddtlDtTm


def test_pacs008_settles_in_thb_with_two_decimals_and_instructs_in_khr(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    payment = mobile_payment()
    tx = tx_of(build(mapping, payment, schemas))
    settled = tx.find("p:IntrBkSttlmAmt", NS)
    assert settled is not None and settled.get("Ccy") == "THB"
    assert re.fullmatch(r"[0-9]+\.[0-9]{2}", settled.text or "")
    assert Decimal(settled.text or "") == payment.target.to_decimal() == Decimal("1657.64")
    instructed = tx.find("p:InstdAmt", NS)
    assert instructed is not None and instructed.get("Ccy") == "KHR"
    assert instructed.text == "200000"  # integer riel, as KHR is used in practice
    assert text(tx, "p:XchgRate") == payment.fx_rate == RATE
    assert text(tx, "p:ChrgBr") == "SLEV"


def test_pacs008_xchg_rate_is_consistent_with_the_two_amounts(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    tx = tx_of(build(mapping, mobile_payment(), schemas))
    settled, instructed, rate = (Decimal(text(tx, p)) for p in ("p:IntrBkSttlmAmt", "p:InstdAmt", "p:XchgRate"))
    assert Decimal("0") <= instructed * rate - settled < Decimal("0.01")  # rounded down, in the liquidity account's favour


def test_pacs008_proxy_payment_names_itmx_as_creditor_agent(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    tx = tx_of(build(mapping, mobile_payment(), schemas))
    member = "p:CdtrAgt/p:FinInstnId/p:ClrSysMmbId"
    assert text(tx, f"{member}/p:ClrSysId/p:Cd") == "THCBC"
    assert text(tx, f"{member}/p:MmbId") == "ITMX"
    assert text(tx, "p:CdtrAcct/p:Prxy/p:Id") == "0066812345678"
    assert text(tx, "p:CdtrAcct/p:Prxy/p:Tp/p:Prtry") == "MBNO"
    assert tx.find("p:CdtrAcct/p:Id", NS) is None
    assert tx.find("p:InstdAgt", NS) is None  # no bank known yet: the network resolves the proxy


def test_pacs008_account_payment_names_the_thai_bank_code(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    tx = tx_of(build(mapping, account_payment(), schemas))
    member = "p:CdtrAgt/p:FinInstnId/p:ClrSysMmbId"
    assert text(tx, f"{member}/p:ClrSysId/p:Cd") == "THCBC"
    assert text(tx, f"{member}/p:MmbId") == "004"
    assert text(tx, "p:InstdAgt/p:FinInstnId/p:ClrSysMmbId/p:MmbId") == "004"
    assert text(tx, "p:CdtrAcct/p:Id/p:Othr/p:Id") == "0041234567"
    assert tx.find("p:CdtrAcct/p:Prxy", NS) is None


def test_pacs008_parties_and_remittance(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    payment = mobile_payment()
    tx = tx_of(build(mapping, payment, schemas))
    assert text(tx, "p:InstgAgt/p:FinInstnId/p:BICFI") == SWITCH_BIC
    assert text(tx, "p:Dbtr/p:Nm") == "Sok Dara"
    assert text(tx, "p:Dbtr/p:PstlAdr/p:Ctry") == "KH"
    assert text(tx, "p:DbtrAcct/p:Id/p:Othr/p:Id") == "sok_dara@aclb"
    assert text(tx, "p:DbtrAcct/p:Id/p:Othr/p:SchmeNm/p:Prtry") == "BAKONG"
    assert text(tx, "p:DbtrAgt/p:FinInstnId/p:BICFI") == "ACLBKHPPXXX"
    assert text(tx, "p:Cdtr/p:Nm") == "Somchai Jaidee"
    assert text(tx, "p:Cdtr/p:PstlAdr/p:Ctry") == "TH"
    assert text(tx, "p:RmtInf/p:Ustrd") == "Family support"
    assert [e.text for e in tx.findall("p:RmtInf/p:Strd/p:AddtlRmtInf", NS)] == [f"QUOTE:{payment.quote_id}"]


def test_pacs008_without_quote_carries_no_structured_remittance(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    tx = tx_of(build(mapping, replace(mobile_payment(), quote_id=None), schemas))
    assert tx.find("p:RmtInf/p:Strd", NS) is None


def test_pacs008_same_currency_payment_has_no_fx_fields(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    thb = Money(165_764, THB)
    tx = tx_of(build(mapping, replace(mobile_payment(), source=thb, instructed=thb, fx_rate=None), schemas))
    assert tx.find("p:InstdAmt", NS) is None and tx.find("p:XchgRate", NS) is None


def test_pacs008_thai_names_and_remittance_are_sent_transliterated_and_kept_on_the_payment(
    mapping: PromptPayMapping, schemas: SchemaSet
) -> None:
    payment = replace(
        mobile_payment(),
        debtor=Party(name="សុខ ដារា", account="sok_dara@aclb", agent="ACLBKHPPXXX"),
        creditor=Party(name="สมชาย ใจดี", proxy_type="MOBILE", proxy="0066812345678"),
        remittance="ค่าเช่า",
    )
    mapping.check_creditor(payment.creditor)  # admitted: no RR10 any more
    tx = tx_of(build(mapping, payment, schemas))
    assert text(tx, "p:Cdtr/p:Nm") == "smchay aichdi"
    assert text(tx, "p:Dbtr/p:Nm") == "sokh dara"
    assert text(tx, "p:RmtInf/p:Ustrd") == "khaecha"
    assert (payment.creditor.name, payment.debtor.name, payment.remittance) == ("สมชาย ใจดี", "សុខ ដារា", "ค่าเช่า")


def test_check_text_refuses_symbols_that_have_no_latin_form(mapping: PromptPayMapping) -> None:
    with pytest.raises(InstructionRejected) as exc:
        mapping.check_text("ค่าเช่า ☺", "remittance information", 140)
    assert exc.value.reason_code == "RR10"


def test_pacs008_matches_the_golden_file_byte_for_byte(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    assert build(mapping, mobile_payment(), schemas) == GOLDEN.read_bytes()


def test_the_golden_file_is_itself_valid(schemas: SchemaSet) -> None:
    schemas.validate(parse_untrusted(GOLDEN.read_bytes()), VERSION)


# ---------------------------------------------------------------- check_creditor


@pytest.mark.parametrize(
    "creditor",
    [
        Party(name="Somchai Jaidee", proxy_type="MOBILE", proxy="0066812345678"),
        Party(name="Somchai Jaidee", proxy_type="NATID", proxy="1101700230708"),
        Party(name="Somchai Jaidee", proxy_type="EWALLET", proxy="140000123456789"),
        Party(name="Somchai Jaidee", account="0041234567", agent="004"),
        Party(name="O'Brien (Thailand) Co., Ltd.", account="123456789012", agent="014"),
    ],
)
def test_check_creditor_accepts_valid_promptpay_creditors(mapping: PromptPayMapping, creditor: Party) -> None:
    mapping.check_creditor(creditor)


@pytest.mark.parametrize(
    ("creditor", "reason_code"),
    [
        (Party(name="Somchai", proxy_type="MOBILE", proxy="0812345678"), "BE23"),  # local format, no 0066
        (Party(name="Somchai", proxy_type="MOBILE", proxy="+66812345678"), "BE23"),
        (Party(name="Somchai", proxy_type="MOBILE", proxy="00668123456789"), "BE23"),  # one digit too many
        (Party(name="Somchai", proxy_type="EMAIL", proxy="somchai@example.th"), "BE23"),
        (Party(name="Somchai", proxy_type=None, proxy="0066812345678"), "BE23"),
        (Party(name="สมชาย ♥", proxy_type="MOBILE", proxy="0066812345678"), "RR10"),  # a symbol has no Latin form
        (Party(name="\u200b", proxy_type="MOBILE", proxy="0066812345678"), "RR10"),  # nothing Latin at all
        (Party(name="S" * 141, proxy_type="MOBILE", proxy="0066812345678"), "FF01"),
        (Party(name="Somchai", account="0041234567", agent="0004"), "RC01"),
        (Party(name="Somchai", account="12345", agent="004"), "AC01"),
    ],
)
def test_check_creditor_rejects_with_the_iso_reason(mapping: PromptPayMapping, creditor: Party, reason_code: str) -> None:
    with pytest.raises(InstructionRejected) as exc:
        mapping.check_creditor(creditor)
    assert exc.value.reason_code == reason_code


# ---------------------------------------------------------------- pacs.002


UETR = mobile_payment().uetr


def _status_root(schemas: SchemaSet, *transactions: pacs002.TransactionReport) -> etree._Element:
    report = pacs002.PaymentStatusReport(message_id="ITMX-STS-0001", created_at=CREATED_AT, transactions=transactions)
    return parse_untrusted(pacs002.build_validated(report, schemas))


def _tx(status: pacs002.TransactionStatus, *reasons: pacs002.StatusReason, uetr: str | None = UETR, tx_id: str | None = None) -> pacs002.TransactionReport:
    return pacs002.TransactionReport(
        status=status,
        original_group=pacs002.OriginalGroup(MESSAGE_ID, VERSION),
        original_end_to_end_id="INS-2025-03-10-0001",
        original_tx_id=tx_id,
        original_uetr=uetr,
        reasons=reasons,
    )


TS = pacs002.TransactionStatus


@pytest.mark.parametrize("status", [TS.ACSC, TS.ACCC])
def test_settlement_completed_maps_to_completed_without_reason(mapping: PromptPayMapping, schemas: SchemaSet, status: TS) -> None:
    report = mapping.parse_status(_status_root(schemas, _tx(status)))
    assert report.message_id == "ITMX-STS-0001"
    (s,) = report.statuses
    assert (s.uetr, s.original_message_id, s.target, s.reason_code) == (UETR, MESSAGE_ID, PaymentState.COMPLETED, None)


def test_reject_with_a_reason_maps_to_rejected_with_that_code(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    root = _status_root(schemas, _tx(TS.RJCT, pacs002.StatusReason("AC04", ("account closed",))))
    (s,) = mapping.parse_status(root).statuses
    assert (s.target, s.reason_code, s.detail) == (PaymentState.REJECTED, "AC04", "account closed")


def test_reject_without_a_reason_maps_to_ms03(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    (s,) = mapping.parse_status(_status_root(schemas, _tx(TS.RJCT))).statuses
    assert (s.target, s.reason_code) == (PaymentState.REJECTED, "MS03")


@pytest.mark.parametrize("status", [TS.ACSP, TS.ACTC, TS.PDNG])
def test_in_process_statuses_map_to_accepted(mapping: PromptPayMapping, schemas: SchemaSet, status: TS) -> None:
    (s,) = mapping.parse_status(_status_root(schemas, _tx(status))).statuses
    assert (s.target, s.reason_code) == (PaymentState.ACCEPTED, None)


def test_status_is_found_by_orgnl_tx_id_when_orgnl_uetr_is_absent(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    tx_id = "T" + UETR.replace("-", "")
    (s,) = mapping.parse_status(_status_root(schemas, _tx(TS.ACSC, uetr=None, tx_id=tx_id))).statuses
    assert (s.uetr, s.target) == (UETR, PaymentState.COMPLETED)


@pytest.mark.parametrize("tx_id", [None, "INS-2025-03-10-0001", "T" + "z" * 32, "T" + "0" * 31])
def test_status_without_a_usable_identity_is_skipped(mapping: PromptPayMapping, schemas: SchemaSet, tx_id: str | None) -> None:
    report = mapping.parse_status(_status_root(schemas, _tx(TS.ACSC, uetr=None, tx_id=tx_id), _tx(TS.ACSP)))
    assert [s.uetr for s in report.statuses] == [UETR]  # only the identifiable one


def test_several_transactions_keep_their_order(mapping: PromptPayMapping, schemas: SchemaSet) -> None:
    other = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    report = mapping.parse_status(_status_root(schemas, _tx(TS.ACSC), _tx(TS.RJCT, pacs002.StatusReason("AM04"), uetr=other)))
    assert [(s.uetr, s.target, s.reason_code) for s in report.statuses] == [
        (UETR, PaymentState.COMPLETED, None),
        (other, PaymentState.REJECTED, "AM04"),
    ]


def test_a_national_id_with_a_wrong_check_digit_is_a_warning_not_a_reject(caplog: pytest.LogCaptureFixture) -> None:
    from adapters.promptpay.mapping import PromptPayMapping
    from adapters.base import load_profile
    from pathlib import Path
    from switch.config import DEFAULT_CONFIG_DIR
    from switch.domain.payment import Party as _Party

    mapping = PromptPayMapping(load_profile(Path(DEFAULT_CONFIG_DIR) / "partners" / "promptpay.toml"), switch_bic="NBCAKHPPXXX")
    mapping.check_creditor(_Party(name="Somchai", proxy_type="NATID", proxy="1101700203450"))  # valid check digit
    assert mapping.natid_check_digit_warnings == 0
    with caplog.at_level("WARNING"):
        mapping.check_creditor(_Party(name="Somchai", proxy_type="NATID", proxy="1101700203451"))  # wrong one: no raise
    assert mapping.natid_check_digit_warnings == 1
    assert "check digit" in caplog.text


@pytest.mark.parametrize(("proxy", "ok"), [("0066812345678", True), ("0066912345678", True), ("0066612345678", True),
                                           ("0066212345678", False), ("0066123456789", False)])
def test_mobile_proxies_must_be_thai_mobiles_by_libphonenumber(proxy: str, ok: bool) -> None:
    from pathlib import Path

    from adapters.base import load_profile
    from adapters.promptpay.mapping import PromptPayMapping
    from switch.config import DEFAULT_CONFIG_DIR
    from switch.domain.errors import InstructionRejected
    from switch.domain.payment import Party as _Party

    mapping = PromptPayMapping(load_profile(Path(DEFAULT_CONFIG_DIR) / "partners" / "promptpay.toml"), switch_bic="NBCAKHPPXXX")
    creditor = _Party(name="Somchai", proxy_type="MOBILE", proxy=proxy)
    if ok:
        mapping.check_creditor(creditor)
    else:
        with pytest.raises(InstructionRejected) as info:
            mapping.check_creditor(creditor)
        assert info.value.reason_code == "BE23"
