"""NAPAS conformance: a KHR -> VND payment as pacs.008.001.08 (6-digit BIN under ClrSysId/Cd VN,
clearing system Prtry NAPAS, whole dong, upper-case ASCII names with Đ -> D), and NAPAS's numeric
result codes in pacs.002 Rsn/Prtry mapped to ISO reasons (config/partners/napas.toml)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lxml import etree

from adapters.iso_mapping import IsoMapping
from adapters.napas.mapping import NapasMapping
from adapters.registry import MAPPINGS
from adapters.simulator import SIMULATORS, PartnerSimulator
from iso20022 import pacs002, pacs008
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch.domain.errors import InstructionRejected
from switch.domain.money import CURRENCIES, AmountError, Money
from switch.domain.payment import Party, PaymentState
from tests.unit.partner_kit import ROOT, TS, build, header_of, mapping_for, payment, status_root, text, tx_of

FIXTURES = ROOT / "adapters" / "napas" / "fixtures"
VERSION = "pacs.008.001.08"
VND = CURRENCIES["VND"]


@pytest.fixture(scope="module")
def mapping() -> IsoMapping:
    return mapping_for("napas")


def test_napas_is_registered_with_its_mapping_and_a_simulator() -> None:
    assert MAPPINGS["napas"] is NapasMapping and issubclass(SIMULATORS["napas"], PartnerSimulator)


def test_profile_carries_the_public_napas_facts(mapping: IsoMapping) -> None:
    p = mapping.profile
    assert (p.pacs008_version, p.pacs002_version, p.currency, p.amount_decimals) == (VERSION, "pacs.002.001.10", "VND", 0)
    assert (p.clearing_system_code, p.clearing_system_proprietary) == (None, "NAPAS")
    assert (p.member_id_system_code, p.member_id_system_proprietary) == ("VN", None)
    assert p.text_rule == "ascii_upper" and p.assumptions


# ---------------------------------------------------------------- pacs.008


def test_pacs008_matches_the_golden_file_byte_for_byte(mapping: IsoMapping, schemas: SchemaSet) -> None:
    assert build(mapping, payment("napas"), schemas) == (FIXTURES / "pacs008_khr_account.xml").read_bytes()


def test_the_golden_files_are_valid(schemas: SchemaSet) -> None:
    schemas.validate(parse_untrusted((FIXTURES / "pacs008_khr_account.xml").read_bytes()), VERSION)
    schemas.validate(parse_untrusted((FIXTURES / "pacs002_reject_51.xml").read_bytes()), "pacs.002.001.10")


def test_pacs008_names_the_napas_clearing_system_and_the_bin(mapping: IsoMapping, schemas: SchemaSet) -> None:
    data = build(mapping, payment("napas"), schemas)
    header = header_of(mapping, data)
    assert text(mapping, header, "p:SttlmInf/p:ClrSys/p:Prtry") == "NAPAS"
    assert header.find("p:SttlmInf/p:ClrSys/p:Cd", {"p": f"urn:iso:std:iso:20022:tech:xsd:{VERSION}"}) is None
    tx = tx_of(mapping, data)
    for agent in ("p:CdtrAgt", "p:InstdAgt"):
        assert text(mapping, tx, f"{agent}/p:FinInstnId/p:ClrSysMmbId/p:ClrSysId/p:Cd") == "VN"
        assert text(mapping, tx, f"{agent}/p:FinInstnId/p:ClrSysMmbId/p:MmbId") == "970436"
    assert text(mapping, tx, "p:CdtrAcct/p:Id/p:Othr/p:Id") == "0011004123456"
    assert tx.find("p:CdtrAcct/p:Id/p:Othr/p:SchmeNm", {"p": f"urn:iso:std:iso:20022:tech:xsd:{VERSION}"}) is None


def test_pacs008_settles_whole_dong_and_instructs_khr(mapping: IsoMapping, schemas: SchemaSet) -> None:
    tx = tx_of(mapping, build(mapping, payment("napas"), schemas))
    settled = tx.find("p:IntrBkSttlmAmt", {"p": f"urn:iso:std:iso:20022:tech:xsd:{VERSION}"})
    assert settled is not None and (settled.get("Ccy"), settled.text) == ("VND", "1278200")
    assert text(mapping, tx, "p:InstdAmt") == "200000"
    rate, instructed = Decimal(text(mapping, tx, "p:XchgRate")), Decimal(text(mapping, tx, "p:InstdAmt"))
    assert Decimal(0) <= instructed * rate - Decimal(settled.text or "") < 1


def test_vnd_with_decimals_is_refused_with_ch20() -> None:
    with pytest.raises(AmountError) as exc:
        Money.parse("1278200.5", "VND")
    assert exc.value.reason_code == "CH20"
    assert Money.parse("1278200", "VND") == Money(1_278_200, VND)


def test_vietnamese_names_go_upper_case_ascii_with_d_for_dj(mapping: IsoMapping, schemas: SchemaSet) -> None:
    p = payment("napas", creditor=Party(name="Trần Thị Hồng Đào", account="0011004123456", agent="970436"), remittance="Tiền nhà tháng 3")
    tx = tx_of(mapping, build(mapping, p, schemas))
    assert text(mapping, tx, "p:Cdtr/p:Nm") == "TRAN THI HONG DAO"
    assert text(mapping, tx, "p:Dbtr/p:Nm") == "SOKH DARA"  # the Khmer debtor name, same rule
    assert text(mapping, tx, "p:RmtInf/p:Ustrd") == "TIEN NHA THANG 3"
    assert p.creditor.name == "Trần Thị Hồng Đào"  # the original stays on the payment


def test_a_decomposed_vietnamese_name_is_the_same_name(mapping: IsoMapping) -> None:
    composed, decomposed = "Nguyễn Văn Đức", "Nguye\u0302\u0303n Va\u0306n Đu\u031bc"
    assert mapping.wire_text(decomposed, "creditor name", 14) == mapping.wire_text(composed, "creditor name", 14) == "NGUYEN VAN DUC"


def test_lengths_count_characters_not_bytes(mapping: IsoMapping) -> None:
    name = "Đặng Thị Ánh Nguyệt"  # 19 characters, 29 UTF-8 bytes
    assert len(name.encode()) > 19
    assert mapping.wire_text(name, "creditor name", 19) == "DANG THI ANH NGUYET"
    with pytest.raises(InstructionRejected) as exc:
        mapping.wire_text(name, "creditor name", 18)
    assert exc.value.reason_code == "FF01"


def test_a_latin_form_longer_than_the_maximum_is_truncated(mapping: IsoMapping) -> None:
    name = "王小明"  # 3 characters, 12 in Latin
    assert mapping.wire_text(name, "creditor name", 5) == "WANGX"
    assert mapping.profile.text_overflow == "truncate"


@pytest.mark.parametrize("name", ["Đức ☺", "\u200b", "Nguyễn\tVăn"])
def test_names_without_an_acceptable_form_are_refused_with_rr10(mapping: IsoMapping, name: str) -> None:
    with pytest.raises(InstructionRejected) as exc:
        mapping.check_creditor(Party(name=name, account="0011004123456", agent="970436"))
    assert exc.value.reason_code == "RR10"


def test_a_napas_card_travels_under_the_card_scheme(mapping: IsoMapping, schemas: SchemaSet) -> None:
    card = Party(name="Le Van Nam", account="9704366612345678", agent="970436")
    mapping.check_creditor(card)
    tx = tx_of(mapping, build(mapping, payment("napas", creditor=card), schemas))
    assert text(mapping, tx, "p:CdtrAcct/p:Id/p:Othr/p:Id") == "9704366612345678"
    assert text(mapping, tx, "p:CdtrAcct/p:Id/p:Othr/p:SchmeNm/p:Prtry") == "CARD"


@pytest.mark.parametrize(
    ("creditor", "reason_code"),
    [
        (Party(name="Le Van Nam", account="0011004123456", agent="970"), "RC01"),
        (Party(name="Le Van Nam", account="0011004123456", agent="27710418"), "RC01"),  # a LAPNet IIN
        (Party(name="Le Van Nam", account="00110041234567890123", agent="970436"), "AC01"),  # 20 characters
        (Party(name="Le Van Nam", account="0011-004", agent="970436"), "AC01"),
        (Party(name="Le Van Nam", proxy_type="MOBILE", proxy="0066812345678"), "BE23"),
        (Party(name="N" * 71, account="0011004123456", agent="970436"), "FF01"),
    ],
)
def test_check_creditor_rejects_with_the_iso_reason(mapping: IsoMapping, creditor: Party, reason_code: str) -> None:
    with pytest.raises(InstructionRejected) as exc:
        mapping.check_creditor(creditor)
    assert exc.value.reason_code == reason_code


# ---------------------------------------------------------------- pacs.002


@pytest.mark.parametrize(
    ("napas_code", "iso_code"),
    [("68", "AB05"), ("14", "AC01"), ("12", "AC04"), ("51", "AM04"), ("13", "AM02"), ("30", "FF01"), ("91", "AB07")],
)
def test_napas_result_codes_map_to_iso_reasons(mapping: IsoMapping, schemas: SchemaSet, napas_code: str, iso_code: str) -> None:
    uetr = payment("napas").uetr
    root = status_root(schemas, mapping, uetr, pacs002.StatusReason(proprietary=napas_code, additional_info=("x",)))
    (s,) = mapping.parse_status(root).statuses
    assert (s.target, s.reason_code) == (PaymentState.REJECTED, iso_code)
    assert s.detail == f"NAPAS code {napas_code}: x"


def test_an_unknown_napas_code_becomes_ms03_and_keeps_the_code(mapping: IsoMapping, schemas: SchemaSet) -> None:
    root = status_root(schemas, mapping, payment("napas").uetr, pacs002.StatusReason(proprietary="99"))
    (s,) = mapping.parse_status(root).statuses
    assert (s.reason_code, s.detail) == ("MS03", "NAPAS code 99")


def test_a_numeric_code_in_rsn_cd_is_still_read_through_the_table(mapping: IsoMapping, schemas: SchemaSet) -> None:
    root = status_root(schemas, mapping, payment("napas").uetr, pacs002.StatusReason("51"))
    (s,) = mapping.parse_status(root).statuses
    assert (s.reason_code, s.detail) == ("AM04", "NAPAS code 51")


def test_an_iso_code_from_napas_is_taken_as_it_is(mapping: IsoMapping, schemas: SchemaSet) -> None:
    root = status_root(schemas, mapping, payment("napas").uetr, pacs002.StatusReason("CH20", ("decimals",)))
    (s,) = mapping.parse_status(root).statuses
    assert (s.reason_code, s.detail) == ("CH20", "decimals")


def test_the_golden_reject_maps_to_am04(mapping: IsoMapping) -> None:
    root = parse_untrusted((FIXTURES / "pacs002_reject_51.xml").read_bytes())
    reason = pacs002.parse(root).transactions[0].reasons[0]
    assert (reason.code, reason.proprietary) == (None, "51")
    (s,) = mapping.parse_status(root).statuses
    assert (s.uetr, s.target, s.reason_code) == (payment("napas").uetr, PaymentState.REJECTED, "AM04")


def test_accepted_status_carries_no_reason(mapping: IsoMapping, schemas: SchemaSet) -> None:
    (s,) = mapping.parse_status(status_root(schemas, mapping, payment("napas").uetr, status=TS.ACSC)).statuses
    assert (s.target, s.reason_code) == (PaymentState.COMPLETED, None)


# ---------------------------------------------------------------- simulator


def _simulator(schemas: SchemaSet, mapping: IsoMapping) -> PartnerSimulator:
    return SIMULATORS["napas"](mapping.profile, schemas, callback_url="http://127.0.0.1:9/none")


def test_the_simulator_takes_what_the_mapping_builds(mapping: IsoMapping, schemas: SchemaSet) -> None:
    message = pacs008.parse(parse_untrusted(build(mapping, payment("napas"), schemas)))
    assert _simulator(schemas, mapping).check(message, message.transactions[0]) is None


@pytest.mark.parametrize(
    ("change", "reason_code"),
    [
        ({"settlement_amount": pacs008.Amount("1278200.5", "VND")}, "CH20"),
        ({"settlement_amount": pacs008.Amount("1278200.00", "VND")}, "CH20"),
        ({"creditor": pacs008.Party(name="Nguyen Van Duc", country="VN")}, "RR10"),  # not upper-case
        ({"creditor": pacs008.Party(name="NGUYỄN VĂN ĐỨC", country="VN")}, "RR10"),  # not ASCII
        ({"settlement_amount": pacs008.Amount("1278200", "USD")}, "CURR"),
    ],
)
def test_the_simulator_applies_the_napas_rules(mapping: IsoMapping, schemas: SchemaSet, change: dict[str, object], reason_code: str) -> None:
    from dataclasses import replace

    message = pacs008.parse(parse_untrusted(build(mapping, payment("napas"), schemas)))
    tx = replace(message.transactions[0], **change)  # type: ignore[arg-type]
    problem = _simulator(schemas, mapping).check(message, tx)
    assert problem is not None and problem[0] == reason_code


@pytest.mark.parametrize(("iso", "wire"), [("AM04", ("51", None)), ("AB05", ("68", None)), ("CH20", (None, "CH20")), ("99", ("99", None))])
def test_the_simulator_rejects_in_napas_codes(mapping: IsoMapping, schemas: SchemaSet, iso: str, wire: tuple[str | None, str | None]) -> None:
    reason = _simulator(schemas, mapping).reason(iso, "why")
    assert (reason.proprietary, reason.code) == wire
    assert reason.additional_info == ("why",)


def test_the_simulator_reject_round_trips_through_the_mapping(mapping: IsoMapping, schemas: SchemaSet) -> None:
    sim = _simulator(schemas, mapping)
    root = status_root(schemas, mapping, payment("napas").uetr, sim.reason("AC04", "closed"))
    assert etree.tostring(root).count(b"<Prtry>12</Prtry>") == 1
    (s,) = mapping.parse_status(root).statuses
    assert s.reason_code == "AC04"
