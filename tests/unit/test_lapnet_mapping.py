"""LAPNet conformance: a KHR -> LAK payment as pacs.008.001.08 (8-digit IIN ending 0418 under
ClrSysId/Prtry LAPNET, clearing system Prtry LAPNET, whole kip, Latin names), and ISO reasons back
(config/partners/lapnet.toml)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adapters.iso_mapping import IsoMapping
from adapters.lapnet.mapping import LapnetMapping
from adapters.registry import MAPPINGS
from adapters.simulator import SIMULATORS
from iso20022 import pacs002, pacs008
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch.domain.errors import InstructionRejected
from switch.domain.money import AmountError, Money
from switch.domain.payment import Party, PaymentState
from tests.unit.partner_kit import ROOT, build, header_of, mapping_for, payment, status_root, text, tx_of

FIXTURES = ROOT / "adapters" / "lapnet" / "fixtures"
VERSION = "pacs.008.001.08"
NS = {"p": f"urn:iso:std:iso:20022:tech:xsd:{VERSION}"}


@pytest.fixture(scope="module")
def mapping() -> IsoMapping:
    return mapping_for("lapnet")


def test_profile_carries_the_public_lapnet_facts(mapping: IsoMapping) -> None:
    p = mapping.profile
    assert MAPPINGS["lapnet"] is LapnetMapping and "lapnet" in SIMULATORS
    assert (p.pacs008_version, p.pacs002_version, p.currency, p.amount_decimals) == (VERSION, "pacs.002.001.10", "LAK", 0)
    assert (p.clearing_system_code, p.clearing_system_proprietary) == (None, "LAPNET")
    assert (p.member_id_system_code, p.member_id_system_proprietary) == (None, "LAPNET")
    assert p.text_rule == "latin" and p.reason_codes == {} and p.assumptions


def test_pacs008_matches_the_golden_file_byte_for_byte(mapping: IsoMapping, schemas: SchemaSet) -> None:
    assert build(mapping, payment("lapnet"), schemas) == (FIXTURES / "pacs008_khr_account.xml").read_bytes()


def test_the_golden_files_are_valid(schemas: SchemaSet) -> None:
    schemas.validate(parse_untrusted((FIXTURES / "pacs008_khr_account.xml").read_bytes()), VERSION)
    schemas.validate(parse_untrusted((FIXTURES / "pacs002_reject_ac04.xml").read_bytes()), "pacs.002.001.10")


def test_pacs008_names_lapnet_and_the_iin(mapping: IsoMapping, schemas: SchemaSet) -> None:
    data = build(mapping, payment("lapnet"), schemas)
    assert text(mapping, header_of(mapping, data), "p:SttlmInf/p:ClrSys/p:Prtry") == "LAPNET"
    tx = tx_of(mapping, data)
    member = "p:CdtrAgt/p:FinInstnId/p:ClrSysMmbId"
    assert text(mapping, tx, f"{member}/p:ClrSysId/p:Prtry") == "LAPNET"
    assert tx.find(f"{member}/p:ClrSysId/p:Cd", NS) is None
    assert text(mapping, tx, f"{member}/p:MmbId") == "27710418"


def test_pacs008_settles_whole_kip(mapping: IsoMapping, schemas: SchemaSet) -> None:
    tx = tx_of(mapping, build(mapping, payment("lapnet"), schemas))
    settled = tx.find("p:IntrBkSttlmAmt", NS)
    assert settled is not None and (settled.get("Ccy"), settled.text) == ("LAK", "1065190")


def test_kip_with_decimals_is_refused_with_ch20_and_never_sent_with_decimals(mapping: IsoMapping) -> None:
    with pytest.raises(AmountError) as exc:
        Money.parse("1065190.50", "LAK")
    assert exc.value.reason_code == "CH20"
    with pytest.raises(ValueError):  # 50 att cannot be written in whole kip: a programmer error, not rounded
        Money(106_519_050, Money.parse("1", "LAK").currency).to_text(mapping.profile.amount_decimals)


def test_lao_and_khmer_names_are_sent_in_latin_and_kept_on_the_payment(mapping: IsoMapping, schemas: SchemaSet) -> None:
    p = payment("lapnet")
    tx = tx_of(mapping, build(mapping, p, schemas))
    assert (text(mapping, tx, "p:Cdtr/p:Nm"), text(mapping, tx, "p:Dbtr/p:Nm")) == ("somphn ekvmani", "sokh dara")
    assert (p.creditor.name, p.debtor.name) == ("ສົມພອນ ແກ້ວມະນີ", "សុខ ដារា")


@pytest.mark.parametrize(
    ("creditor", "reason_code"),
    [
        (Party(name="Somphone", account="0101000123456789", agent="27710419"), "RC01"),  # not ...0418
        (Party(name="Somphone", account="0101000123456789", agent="2771041"), "RC01"),
        (Party(name="Somphone", account="0101-000", agent="27710418"), "AC01"),
        (Party(name="Somphone", proxy_type="MOBILE", proxy="8562012345678"), "BE23"),
        (Party(name="ສົມພອນ ☎", account="0101000123456789", agent="27710418"), "RR10"),
    ],
)
def test_check_creditor_rejects_with_the_iso_reason(mapping: IsoMapping, creditor: Party, reason_code: str) -> None:
    with pytest.raises(InstructionRejected) as exc:
        mapping.check_creditor(creditor)
    assert exc.value.reason_code == reason_code


def test_the_golden_reject_maps_to_its_iso_code(mapping: IsoMapping) -> None:
    (s,) = mapping.parse_status(parse_untrusted((FIXTURES / "pacs002_reject_ac04.xml").read_bytes())).statuses
    assert (s.uetr, s.target, s.reason_code, s.detail) == (payment("lapnet").uetr, PaymentState.REJECTED, "AC04", "account closed")


def test_a_proprietary_lapnet_code_becomes_ms03_with_the_code_kept(mapping: IsoMapping, schemas: SchemaSet) -> None:
    root = status_root(schemas, mapping, payment("lapnet").uetr, pacs002.StatusReason(proprietary="E042", additional_info=("?",)))
    (s,) = mapping.parse_status(root).statuses
    assert (s.reason_code, s.detail) == ("MS03", "LAPNet code E042: ?")


def test_the_simulator_takes_what_the_mapping_builds_and_refuses_decimals(mapping: IsoMapping, schemas: SchemaSet) -> None:
    sim = SIMULATORS["lapnet"](mapping.profile, schemas, callback_url="http://127.0.0.1:9/none")
    message = pacs008.parse(parse_untrusted(build(mapping, payment("lapnet"), schemas)))
    tx = message.transactions[0]
    assert sim.check(message, tx) is None
    problem = sim.check(message, replace(tx, settlement_amount=pacs008.Amount("1065190.00", "LAK")))
    assert problem is not None and problem[0] == "CH20"
    assert sim.reason("AC04", "closed") == pacs002.StatusReason("AC04", ("closed",))  # ISO codes in Rsn/Cd
