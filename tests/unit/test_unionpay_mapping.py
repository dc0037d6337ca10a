"""UnionPay conformance: a KHR -> CNY payment as pacs.008.001.10 (8-digit IIN under ClrSysId/Prtry
UNIONPAY, clearing system Prtry UNIONPAY and never UPI, CNY with 2 decimals, Luhn-checked card
PAN, Latin names), and ISO reasons back (config/partners/unionpay.toml)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from adapters.base import PartnerProfile, load_profile, luhn_ok
from adapters.iso_mapping import IsoMapping
from adapters.registry import MAPPINGS
from adapters.simulator import SIMULATORS
from adapters.unionpay.mapping import UnionPayMapping
from iso20022 import pacs002, pacs008
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch.domain.errors import InstructionRejected
from switch.domain.payment import Party, PaymentState
from tests.unit.partner_kit import ROOT, build, header_of, mapping_for, payment, status_root, text, tx_of

FIXTURES = ROOT / "adapters" / "unionpay" / "fixtures"
PROFILE = ROOT / "config" / "partners" / "unionpay.toml"
VERSION = "pacs.008.001.10"
NS = {"p": f"urn:iso:std:iso:20022:tech:xsd:{VERSION}"}
PAN = "6212345678901232"


@pytest.fixture(scope="module")
def mapping() -> IsoMapping:
    return mapping_for("unionpay")


def test_profile_carries_the_public_unionpay_facts(mapping: IsoMapping) -> None:
    p = mapping.profile
    assert MAPPINGS["unionpay"] is UnionPayMapping and "unionpay" in SIMULATORS
    assert (p.pacs008_version, p.pacs002_version, p.currency, p.amount_decimals) == (VERSION, "pacs.002.001.10", "CNY", 2)
    assert (p.clearing_system_code, p.clearing_system_proprietary, p.member_id_system_proprietary) == (None, "UNIONPAY", "UNIONPAY")
    assert p.card_luhn and p.text_rule == "latin" and p.assumptions


def test_pacs008_matches_the_golden_file_byte_for_byte(mapping: IsoMapping, schemas: SchemaSet) -> None:
    assert build(mapping, payment("unionpay"), schemas) == (FIXTURES / "pacs008_khr_card.xml").read_bytes()


def test_the_golden_files_are_valid(schemas: SchemaSet) -> None:
    schemas.validate(parse_untrusted((FIXTURES / "pacs008_khr_card.xml").read_bytes()), VERSION)
    schemas.validate(parse_untrusted((FIXTURES / "pacs002_reject_ac01.xml").read_bytes()), "pacs.002.001.10")


def test_unionpay_is_never_called_upi(mapping: IsoMapping, schemas: SchemaSet) -> None:
    data = build(mapping, payment("unionpay"), schemas)
    assert b">UPI<" not in data and b"UPI" not in data.replace(b"UNIONPAY", b"")
    assert text(mapping, header_of(mapping, data), "p:SttlmInf/p:ClrSys/p:Prtry") == "UNIONPAY"
    assert b"UPI" not in (FIXTURES / "pacs008_khr_card.xml").read_bytes().replace(b"UNIONPAY", b"")


@pytest.mark.parametrize("field", ["clearing_system_proprietary", "clearing_system_code", "member_id_system_proprietary"])
def test_a_profile_naming_upi_outside_india_does_not_load(field: str) -> None:
    data = load_profile(PROFILE).model_dump()
    data[field] = "UPI"
    with pytest.raises(ValueError, match="UPI is India"):
        PartnerProfile.model_validate(data)


def test_pacs008_sends_the_iin_and_the_card(mapping: IsoMapping, schemas: SchemaSet) -> None:
    tx = tx_of(mapping, build(mapping, payment("unionpay"), schemas))
    member = "p:CdtrAgt/p:FinInstnId/p:ClrSysMmbId"
    assert (text(mapping, tx, f"{member}/p:ClrSysId/p:Prtry"), text(mapping, tx, f"{member}/p:MmbId")) == ("UNIONPAY", "01040000")
    assert text(mapping, tx, "p:CdtrAcct/p:Id/p:Othr/p:Id") == PAN
    assert text(mapping, tx, "p:CdtrAcct/p:Id/p:Othr/p:SchmeNm/p:Prtry") == "CARD"


def test_pacs008_settles_cny_with_two_decimals(mapping: IsoMapping, schemas: SchemaSet) -> None:
    tx = tx_of(mapping, build(mapping, payment("unionpay"), schemas))
    settled = tx.find("p:IntrBkSttlmAmt", NS)
    assert settled is not None and (settled.get("Ccy"), settled.text) == ("CNY", "354.98")


def test_chinese_names_go_as_pinyin_and_the_original_is_kept(mapping: IsoMapping, schemas: SchemaSet) -> None:
    p = payment("unionpay")
    tx = tx_of(mapping, build(mapping, p, schemas))
    assert text(mapping, tx, "p:Cdtr/p:Nm") == "WangXiaoMing"
    assert p.creditor.name == "王小明"


def test_a_merchant_id_is_sent_without_the_card_scheme(mapping: IsoMapping, schemas: SchemaSet) -> None:
    merchant = Party(name="Shanghai Tea House", account="123456789012345", agent="26760764")
    mapping.check_creditor(merchant)
    tx = tx_of(mapping, build(mapping, payment("unionpay", creditor=merchant), schemas))
    assert text(mapping, tx, "p:CdtrAcct/p:Id/p:Othr/p:Id") == "123456789012345"
    assert tx.find("p:CdtrAcct/p:Id/p:Othr/p:SchmeNm", NS) is None


@pytest.mark.parametrize(
    ("creditor", "reason_code"),
    [
        (Party(name="Wang", account="6212345678901233", agent="01040000"), "AC01"),  # Luhn fails
        (Party(name="Wang", account="621234567890", agent="01040000"), "AC01"),  # too short
        (Party(name="Wang", account=PAN, agent="0104000"), "RC01"),
        (Party(name="Wang", account=PAN, agent="ICBKCNBJXXX"), "RC01"),
        (Party(name="王小明 ☺", account=PAN, agent="01040000"), "RR10"),
        (Party(name="Wang", proxy_type="MOBILE", proxy="8613812345678"), "BE23"),
    ],
)
def test_check_creditor_rejects_with_the_iso_reason(mapping: IsoMapping, creditor: Party, reason_code: str) -> None:
    with pytest.raises(InstructionRejected) as exc:
        mapping.check_creditor(creditor)
    assert exc.value.reason_code == reason_code


@pytest.mark.parametrize(("pan", "ok"), [(PAN, True), ("6212345678901233", False), ("4111111111111111", True), ("79927398713", True), ("7992739871x", False)])
def test_luhn(pan: str, ok: bool) -> None:
    assert luhn_ok(pan) is ok


def test_the_golden_reject_maps_to_its_iso_code(mapping: IsoMapping) -> None:
    (s,) = mapping.parse_status(parse_untrusted((FIXTURES / "pacs002_reject_ac01.xml").read_bytes())).statuses
    assert (s.target, s.reason_code, s.detail) == (PaymentState.REJECTED, "AC01", "card number unknown")


def test_a_proprietary_unionpay_code_becomes_ms03_with_the_code_kept(mapping: IsoMapping, schemas: SchemaSet) -> None:
    root = status_root(schemas, mapping, payment("unionpay").uetr, pacs002.StatusReason(proprietary="05"))
    (s,) = mapping.parse_status(root).statuses
    assert (s.reason_code, s.detail) == ("MS03", "UnionPay International code 05")


def test_the_simulator_takes_what_the_mapping_builds_and_checks_the_card(mapping: IsoMapping, schemas: SchemaSet) -> None:
    sim = SIMULATORS["unionpay"](mapping.profile, schemas, callback_url="http://127.0.0.1:9/none")
    message = pacs008.parse(parse_untrusted(build(mapping, payment("unionpay"), schemas)))
    tx = message.transactions[0]
    assert sim.check(message, tx) is None
    bad_luhn = replace(tx, creditor_account=pacs008.Account(other_id="6212345678901233", scheme_proprietary="CARD"))
    no_scheme = replace(tx, creditor_account=pacs008.Account(other_id=PAN))
    upi = replace(message, settlement=pacs008.Settlement(clearing_system_code="UPI"))
    assert [sim.check(message, bad_luhn), sim.check(message, no_scheme), sim.check(upi, tx)] == [
        ("AC01", "card number fails the Luhn check"),
        ("AC01", "card number without the card scheme"),
        ("FF01", "wrong clearing system"),
    ]
