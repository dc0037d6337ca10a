"""Issue 12: FATF R16 party data in instruction v1, pain.001 and pacs.008 (every shipped
profile), the inbound event, and the store's `parties` column codec."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from lxml import etree
from pydantic import ValidationError

from adapters.inbound import read_pacs008
from adapters.simulator_inbound import InboundOriginator, InboundSpec
from iso20022 import pacs008
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch.contracts import InboundPaymentV1, InstructionV1
from switch.domain.errors import InstructionRejected
from switch.domain.payment import Identification, Party, PostalAddress
from switch.entrypoints.pain001_edge import identification, postal_address
from switch.store.sql_store import parties_from_json, parties_json
from switch.tools.pain001_samples import pain001_from_instructions
from tests.factories import (
    PARTNER_SAMPLES,
    SAMPLE_DEBTOR_ADDRESS,
    SAMPLE_DEBTOR_IDENTIFICATION,
    sample_instruction,
    sample_partner_instruction,
)
from tests.unit.partner_kit import ROOT, build, mapping_for, ns, payment

PARTNERS = ("promptpay", "lapnet", "napas", "unionpay")
PLAIN_DEBTOR = {"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "KHR"}


def _debtor(**changes: Any) -> dict[str, Any]:
    doc = sample_instruction()
    doc["debtor"].update(changes)
    return doc


def _refusal(doc: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as exc:
        InstructionV1.model_validate_json(json.dumps(doc))
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.value.errors())


# ---------------------------------------------------------------- instruction v1


def test_the_new_fields_are_accepted_and_become_domain_values() -> None:
    doc = sample_partner_instruction("lapnet")
    doc["debtor"]["address"]["subdivision"] = "Phnom Penh Capital"
    ins = InstructionV1.model_validate_json(json.dumps(doc))
    assert ins.debtor.address is not None and ins.debtor.address.town == "Phnom Penh"
    assert postal_address(ins.debtor.address) == replace(SAMPLE_DEBTOR_ADDRESS, subdivision="Phnom Penh Capital")
    assert identification(ins.debtor.identification) == SAMPLE_DEBTOR_IDENTIFICATION
    assert ins.creditor is not None
    assert postal_address(ins.creditor.address) == PostalAddress(
        country="LA", town="Vientiane", lines=("Ban Sisaket", "Chanthabouly")
    )


def test_a_hybrid_address_and_an_lei_are_accepted() -> None:
    doc = _debtor(address={"town": "Phnom Penh", "country": "KH", "lines": ["No. 41, Preah Norodom Boulevard"]},
                  identification={"lei": "5493001KJTIIGC8Y1R12"})
    ins = InstructionV1.model_validate_json(json.dumps(doc))
    assert identification(ins.debtor.identification) == Identification(lei="5493001KJTIIGC8Y1R12")
    assert postal_address(ins.debtor.address) == PostalAddress(
        country="KH", town="Phnom Penh", lines=("No. 41, Preah Norodom Boulevard",)
    )


def test_the_json_edge_validates_from_python_values_too() -> None:
    """The Kafka edge validates the decoded JSON (model_validate): a birth date is still text there."""
    ins = InstructionV1.model_validate(sample_instruction())
    assert ins.debtor.identification is not None and ins.debtor.identification.birth is not None
    assert ins.debtor.identification.birth.date == "1985-04-12"


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"address": {"town": "Phnom Penh", "country": "XX"}}, "debtor.address.country", "not an ISO 3166-1 alpha-2"),
        ({"address": {"town": "Phnom Penh", "country": "kh"}}, "debtor.address.country", "not an ISO 3166-1 alpha-2"),
        ({"address": {"town": "Phnom Penh", "country": "EU"}}, "debtor.address.country", "not an ISO 3166-1 alpha-2"),
        ({"address": {"town": "Phnom Penh", "country": "KH", "lines": ["a", "b", "c"]}}, "debtor.address.lines",
         "at most 2 items"),
        ({"address": {"town": "Phnom Penh", "country": "KH", "lines": ["x" * 71]}}, "debtor.address.lines.0",
         "at most 70 characters"),
        ({"address": {"street": "Preah Norodom Boulevard", "country": "KH"}}, "debtor.address.town", "Field required"),
        ({"address": {"town": "Phnom Penh"}}, "debtor.address.country", "Field required"),
        ({"address": {"town": "   ", "country": "KH"}}, "debtor.address.town", "should match pattern"),
        ({"identification": {"birth": {"date": "1985-13-40", "city": "Phnom Penh", "country": "KH"}}},
         "debtor.identification.birth.date", "not an ISO date"),
        ({"identification": {"birth": {"date": "12/04/1985", "city": "Phnom Penh", "country": "KH"}}},
         "debtor.identification.birth.date", "not an ISO date"),
        ({"identification": {"birth": {"date": "1899-12-31", "city": "Phnom Penh", "country": "KH"}}},
         "debtor.identification.birth.date", "before 1900"),
        ({"identification": {"birth": {"date": (date.today() + timedelta(days=1)).isoformat(), "city": "Phnom Penh",
                                       "country": "KH"}}},
         "debtor.identification.birth.date", "in the future"),
        ({"identification": {"lei": "5493001KJTIIGC8Y1R13"}}, "debtor.identification.lei", "not a valid LEI"),
        ({"identification": {}}, "debtor.identification", "at least one of national_id, birth or lei"),
        ({"identification": {"national_id": {"value": "010203040"}}}, "debtor.identification.national_id.issuer",
         "Field required"),
    ],
)
def test_bad_party_data_is_refused_with_a_clear_reason(change: dict[str, Any], where: str, says: str) -> None:
    reason = _refusal(_debtor(**change))
    assert where in reason and says in reason, reason


def test_a_creditor_address_with_a_bad_country_is_refused() -> None:
    doc = sample_partner_instruction("napas")
    doc["creditor"]["address"]["country"] = "VNM"
    reason = _refusal(doc)
    assert "creditor.address.country" in reason and "'VNM' is not an ISO 3166-1 alpha-2" in reason


def test_an_instruction_without_the_new_fields_keeps_its_fingerprint() -> None:
    """Compatibility: the fingerprint computed before issue 12 for this instruction, hard-coded."""
    doc = sample_instruction(debtor=copy.deepcopy(PLAIN_DEBTOR))
    ins = InstructionV1.model_validate_json(json.dumps(doc))
    assert ins.canonical_json() == (
        '{"version":1,"instruction_id":"INS-0001","participant":"ACLBKHPPXXX","corridor":"KH-TH",'
        '"debtor":{"name":"Sok Dara","account":"sok_dara@aclb","currency":"KHR"},'
        '"creditor":{"name":"Somchai Jaidee","account":null,"agent":null,'
        '"proxy":{"type":"MOBILE","value":"0066812345678"}},"qr":null,'
        '"amount":{"value":"200000","currency":"KHR"},"remittance":"Family support"}'
    )
    assert ins.fingerprint() == "9b33e70d96a9f6c442e111c87c8ffa922261ed397161fe58035a085265db2efd"
    with_address = InstructionV1.model_validate_json(json.dumps(sample_instruction()))
    assert with_address.fingerprint() != ins.fingerprint()


# ---------------------------------------------------------------- pacs.008, every shipped profile


def _party_element(partner: str, data: bytes, tag: str) -> etree._Element:
    mapping = mapping_for(partner)
    found = etree.fromstring(data).find(f"p:FIToFICstmrCdtTrf/p:CdtTrfTxInf/p:{tag}", ns(mapping))
    assert found is not None
    return found


def _address(partner: str, party: etree._Element) -> dict[str, Any]:
    p = ns(mapping_for(partner))
    adr = party.find("p:PstlAdr", p)
    assert adr is not None
    return {
        "order": [etree.QName(child).localname for child in adr],
        "town": adr.findtext("p:TwnNm", namespaces=p),
        "country": adr.findtext("p:Ctry", namespaces=p),
        "lines": [e.text for e in adr.findall("p:AdrLine", p)],
    }


_XSD_ORDER = ["StrtNm", "BldgNb", "PstCd", "TwnNm", "CtrySubDvsn", "Ctry", "AdrLine"]


@pytest.mark.parametrize("partner", PARTNERS)
def test_every_profile_emits_town_and_country_for_both_parties(partner: str, schemas: SchemaSet) -> None:
    mapping = mapping_for(partner)
    data = build(mapping, payment(partner), schemas)  # validated against the official XSD
    p = ns(mapping)
    for tag in ("Dbtr", "Cdtr"):
        got = _address(partner, _party_element(partner, data, tag))
        assert got["town"] and got["country"], (tag, got)
        assert len(got["lines"]) <= 2
        assert got["order"] == sorted(got["order"], key=_XSD_ORDER.index)
    debtor = _party_element(partner, data, "Dbtr")
    assert _address(partner, debtor)["country"] == "KH"
    assert debtor.findtext("p:Id/p:PrvtId/p:DtAndPlcOfBirth/p:BirthDt", namespaces=p) == "1985-04-12"
    assert debtor.findtext("p:Id/p:PrvtId/p:Othr/p:SchmeNm/p:Cd", namespaces=p) == "NIDN"
    assert debtor.findtext("p:Id/p:PrvtId/p:Othr/p:Issr", namespaces=p) == "KH"
    creditor = _address(partner, _party_element(partner, data, "Cdtr"))
    if PARTNER_SAMPLES[partner]["creditor"].address is None:  # a proxy or card creditor: the profile's fallback
        assert (creditor["town"], creditor["country"]) == ("NOTPROVIDED", mapping.profile.country)


@pytest.mark.parametrize("partner", PARTNERS)
def test_a_payment_without_party_data_still_carries_town_and_country(partner: str, schemas: SchemaSet) -> None:
    """An old instruction (no address, no id): the profile's fallback, still XSD-valid."""
    old = payment(partner)
    old = replace(old, debtor=Party(name=old.debtor.name, account=old.debtor.account, agent=old.debtor.agent),
                  creditor=replace(old.creditor, address=None))
    data = build(mapping_for(partner), old, schemas)
    for tag, country in (("Dbtr", "KH"), ("Cdtr", mapping_for(partner).profile.country)):
        element = _party_element(partner, data, tag)
        assert _address(partner, element)["town"] == "NOTPROVIDED"
        assert _address(partner, element)["country"] == country
        assert element.find("p:Id", ns(mapping_for(partner))) is None


@pytest.mark.parametrize("partner", PARTNERS)
def test_a_line_too_long_is_refused_at_admission_and_a_long_transliteration_is_cut(partner: str) -> None:
    mapping = mapping_for(partner)
    party = replace(payment(partner).debtor, address=PostalAddress(country="KH", town="Phnom Penh", lines=("x" * 90,)))
    with pytest.raises(InstructionRejected) as exc:
        mapping.check_party_data(party, "debtor")
    assert exc.value.reason_code == "FF01" and "debtor line" in str(exc.value)
    khmer = "ផ្ទះលេខ ៤១ ផ្លូវព្រះនរោត្តម សង្កាត់បឹងកេងកង ខណ្ឌចំការមន រាជធានីភ្នំពេញ"  # Latin form is longer than 70
    party = replace(party, address=PostalAddress(country="KH", town="Phnom Penh", lines=(khmer,)))
    assert mapping.profile.text_overflow == "truncate"
    mapping.check_party_data(party, "debtor")
    (line,) = mapping.wire_address(party.address, "debtor", "KH").lines
    assert 0 < len(line) <= 70 and line.isascii()


@pytest.mark.parametrize("partner", PARTNERS)
def test_more_than_two_lines_are_cut_khmer_is_transliterated_and_an_lei_goes_out_as_orgid(
    partner: str, schemas: SchemaSet
) -> None:
    base = payment(partner)
    address = PostalAddress(country="KH", town="ភ្នំពេញ", lines=("ផ្លូវ ១២៣", "Sangkat Boeung Keng Kang", "third"))
    company = replace(base.debtor, address=address, identification=Identification(
        lei="5493001KJTIIGC8Y1R12", national_id="010203040", national_id_issuer="KH"))
    mapping_for(partner).check_party_data(company, "debtor")
    data = build(mapping_for(partner), replace(base, debtor=company), schemas)
    p = ns(mapping_for(partner))
    debtor = _party_element(partner, data, "Dbtr")
    got = _address(partner, debtor)
    assert len(got["lines"]) == 2 and all(len(line) <= 70 for line in got["lines"])
    assert got["town"] and got["town"].isascii()  # transliterated like names
    assert debtor.findtext("p:Id/p:OrgId/p:LEI", namespaces=p) == "5493001KJTIIGC8Y1R12"
    assert debtor.find("p:Id/p:PrvtId", p) is None


@pytest.mark.parametrize("partner", PARTNERS)
def test_the_emitted_party_data_parses_back(partner: str, schemas: SchemaSet) -> None:
    data = build(mapping_for(partner), payment(partner), schemas)
    (tx,) = pacs008.parse(parse_untrusted(data)).transactions
    assert tx.debtor.address is not None and tx.debtor.address.town is not None
    assert tx.debtor.birth is not None and tx.debtor.birth.birth_date == date(1985, 4, 12)
    assert tx.debtor.identification is not None and tx.debtor.identification.scheme_code == "NIDN"
    assert tx.creditor.address is not None and tx.creditor.address.country == mapping_for(partner).profile.country


# ---------------------------------------------------------------- inbound pacs.008 and the event


@pytest.mark.parametrize("partner", PARTNERS)
def test_an_inbound_pacs008_is_read_with_the_parties_data(partner: str, schemas: SchemaSet) -> None:
    from adapters.base import load_profile
    from adapters.registry import profile_path

    profile = load_profile(profile_path(ROOT / "config", partner))
    originator = InboundOriginator(profile, schemas, switch_url="http://127.0.0.1:1")
    spec = InboundSpec(amount="8000", currency="KHR", creditor_name="Keo Vanna", creditor_account="keo_vanna@wing")
    _, _, body = originator.build(spec, now=datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc))
    (t,) = read_pacs008(parse_untrusted(body)).transfers
    assert t.debtor_address is not None and t.debtor_address.country == profile.country and t.debtor_address.town
    assert t.debtor_address.street and t.debtor_address.post_code
    assert t.debtor_identification == Identification(
        national_id="3100500123457", national_id_issuer=profile.country, birth_date=date(1980, 1, 15),
        birth_city=t.debtor_address.town, birth_country=profile.country,
    )
    assert t.creditor_address == PostalAddress(country="KH", town="Phnom Penh")
    old = originator.build(spec.model_copy(update={"compliance": False}), now=datetime(2026, 11, 28, tzinfo=timezone.utc))[2]
    (t_old,) = read_pacs008(parse_untrusted(old)).transfers
    assert t_old.debtor_identification is None and t_old.debtor_address == PostalAddress(country=profile.country)


def test_the_inbound_event_carries_the_originators_data() -> None:
    from switch.service.inbound import _inbound_event

    p = replace(payment("lapnet"), creditor=replace(payment("lapnet").creditor, address=None))
    event = _inbound_event(p, mobile=None, reply_by=datetime(2026, 11, 28, tzinfo=timezone.utc),
                           now=datetime(2026, 11, 28, tzinfo=timezone.utc))
    back = InboundPaymentV1.model_validate_json(event.model_dump_json())
    assert back.debtor.address is not None and back.debtor.address.town == "Phnom Penh"
    assert back.debtor.identification is not None and back.debtor.identification.birth is not None
    assert back.debtor.identification.birth.date == "1985-04-12"
    assert back.debtor.identification.national_id is not None and back.debtor.identification.national_id.issuer == "KH"
    assert back.creditor.address is None and back.creditor.identification is None


# ---------------------------------------------------------------- pain.001


def test_a_pain001_carries_and_reads_back_the_party_data(schemas: SchemaSet) -> None:
    from iso20022 import pain001

    doc = sample_partner_instruction("napas")
    lei_doc = sample_partner_instruction("napas", instruction_id="INS-0002", debtor={
        "name": "Angkor Trading Co", "account": "angkor@aclb", "currency": "KHR",
        "address": {"town": "Siem Reap", "country": "KH", "lines": ["Sivatha Road 7"]},
        "identification": {"lei": "5493001KJTIIGC8Y1R12"}})
    body = pain001_from_instructions([doc, lei_doc], message_id="MSG-PARTIES-1",
                                     created_at=datetime(2026, 11, 28, tzinfo=timezone.utc), schemas=schemas)
    message = pain001.parse(parse_untrusted(body))
    person, company = message.payment_instructions
    assert person.debtor.address is not None and person.debtor.address.street == "Preah Norodom Boulevard"
    assert person.debtor.birth is not None and person.debtor.identification is not None
    assert company.debtor.lei == "5493001KJTIIGC8Y1R12" and company.debtor.address is not None
    assert company.debtor.address.lines == ("Sivatha Road 7",)
    (tx,) = person.transactions
    assert tx.creditor is not None and tx.creditor.address is not None and tx.creditor.address.town == "Hà Nội"


# ---------------------------------------------------------------- the store's parties column


def test_the_parties_column_round_trips_and_is_null_without_data() -> None:
    p = payment("lapnet")
    text = parties_json(p.debtor, p.creditor)
    assert text is not None and " " not in text.replace("Phnom Penh", "").replace("Preah Norodom Boulevard", "") \
        .replace("Ban Sisaket", "")
    assert parties_from_json(text) == (p.debtor.address, p.debtor.identification, p.creditor.address)
    assert parties_json(Party(name="a"), Party(name="b")) is None
    assert parties_from_json(None) == (None, None, None)


def test_a_pain001_is_read_into_the_domain_instruction_with_the_party_data(schemas: SchemaSet) -> None:
    from switch import config as config_mod
    from switch.entrypoints.kafka_consumer import parse_record
    from switch.entrypoints.pain001_edge import read_pain001
    from tests.unit.edge_kit import consumer_record

    doc = sample_partner_instruction("lapnet")
    body = pain001_from_instructions([doc], message_id="MSG-PARTIES-2",
                                     created_at=datetime(2026, 11, 28, tzinfo=timezone.utc), schemas=schemas)
    (item,) = read_pain001(consumer_record(body), schemas, config_mod.load(env={}), {}).items
    ins = item.instruction
    assert ins.debtor.address == SAMPLE_DEBTOR_ADDRESS and ins.debtor.identification == SAMPLE_DEBTOR_IDENTIFICATION
    assert ins.creditor is not None and ins.creditor.address == PARTNER_SAMPLES["lapnet"]["creditor"].address
    as_json = parse_record(consumer_record(json.dumps(doc).encode()))
    assert getattr(as_json, "fingerprint", None) == item.fingerprint  # the same instruction v1 either way


def test_a_pain001_debtor_address_without_a_town_is_refused_with_the_contracts_reason(schemas: SchemaSet) -> None:
    from switch import config as config_mod
    from switch.entrypoints.pain001_edge import read_pain001
    from tests.unit.edge_kit import consumer_record

    body = pain001_from_instructions([sample_partner_instruction("lapnet")], message_id="MSG-PARTIES-3",
                                     created_at=datetime(2026, 11, 28, tzinfo=timezone.utc), schemas=schemas)
    assert body.count(b"<TwnNm>Phnom Penh</TwnNm>") == 1  # the debtor's (the creditor's town is Vientiane)
    body = body.replace(b"<TwnNm>Phnom Penh</TwnNm>", b"")  # still XSD-valid: TwnNm is optional there
    read = read_pain001(consumer_record(body), schemas, config_mod.load(env={}), {})
    assert read.items == []
    (slot,) = read.slots
    assert slot[5] is not None and slot[5][0] == "FF01" and "debtor.address.town" in slot[5][1], slot


def test_a_refused_birth_date_is_not_repeated_in_the_reason() -> None:
    """Birth dates are personal data: the refusal (dead-letter reason, status text) names the field only."""
    for bad in ("1985-02-30", "1899-01-01", "2999-01-01"):
        reason = _refusal(_debtor(identification={"birth": {"date": bad, "city": "Phnom Penh", "country": "KH"}}))
        assert "debtor.identification.birth.date" in reason and bad not in reason
