"""pacs.008 and pacs.002 builders/parsers against the official XSDs."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest

from iso20022 import pacs002, pacs008
from iso20022.errors import SchemaViolation, XmlRejected
from iso20022.model import Agent, Amount, ClearingSystemMember
from iso20022.parsing import message_id_of, parse_untrusted
from iso20022.schemas import SchemaSet

ICT = timezone(timedelta(hours=7))
CREATED_AT = datetime(2025, 3, 10, 9, 30, 15, 250000, tzinfo=ICT)


def _transaction(n: int) -> pacs008.CreditTransfer:
    return pacs008.CreditTransfer(
        instruction_id=f"INSTR-{n}",
        end_to_end_id=f"E2E-{n}",
        tx_id=f"TX-{n}",
        uetr=f"4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e{n:02d}",
        settlement_amount=Amount("200000", "KHR"),
        instructed_amount=Amount("1650.00", "THB"),
        exchange_rate="121.21212121",
        charge_bearer="SLEV",
        accepted_at=CREATED_AT,
        instructing_agent=Agent(bicfi="ACLBKHPPXXX"),
        instructed_agent=Agent(clearing_member=ClearingSystemMember("004", system_code="THCBC")),
        debtor=pacs008.Party(
            name="Sok Dara",
            country="KH",
            identification=pacs008.PartyIdentification("85512345678", scheme_proprietary="MOBILE"),
        ),
        debtor_account=pacs008.Account(other_id="sok_dara@aclb", scheme_proprietary="BAKONG"),
        debtor_agent=Agent(bicfi="ACLBKHPPXXX"),
        creditor_agent=Agent(clearing_member=ClearingSystemMember("27710418", system_proprietary="LAPNET")),
        creditor=pacs008.Party(name="Somchai Jaidee"),
        creditor_account=pacs008.Account(
            other_id="0041234567", proxy=pacs008.Proxy("0066812345678", type_code="TELE")
        ),
        purpose_code="CASH",
        remittance_lines=("Rent March",),
        additional_remittance=("QUOTE:7d0c1f0e-8c1b-4b7e-9c7e-0f6c2b3a4d5e",),
    )


def _message(count: int) -> pacs008.CustomerCreditTransfer:
    return pacs008.CustomerCreditTransfer(
        message_id="MEKONG-20250310-000001",
        created_at=CREATED_AT,
        settlement=pacs008.Settlement(clearing_system_proprietary="NAPAS"),
        transactions=tuple(_transaction(n) for n in range(1, count + 1)),
        total_settlement_amount=Amount(str(200000 * count), "KHR"),
        settlement_date=date(2025, 3, 10),
    )


@pytest.mark.parametrize("version", pacs008.VERSIONS)
@pytest.mark.parametrize("count", [1, 3])
def test_built_pacs008_validates_and_parses_back(schemas: SchemaSet, version: str, count: int) -> None:
    message = _message(count)
    body = pacs008.build_validated(message, version, schemas)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = parse_untrusted(body)
    assert message_id_of(root) == version
    assert pacs008.parse(root) == message


def test_acceptance_time_moves_into_addtldttm_from_pacs008_13(schemas: SchemaSet) -> None:
    assert b"<AddtlDtTm><AccptncDtTm>" in pacs008.build(_message(1), "pacs.008.001.13")
    assert b"<AddtlDtTm>" not in pacs008.build(_message(1), "pacs.008.001.08")


def test_minimal_pacs008_with_clearing_code_and_iban_validates(schemas: SchemaSet) -> None:
    minimal = pacs008.CustomerCreditTransfer(
        message_id="M1",
        created_at=CREATED_AT,
        settlement=pacs008.Settlement(clearing_system_code="THN"),
        transactions=(
            pacs008.CreditTransfer(
                end_to_end_id="E1",
                uetr="4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e5a",
                settlement_amount=Amount("10.5", "THB"),
                charge_bearer="SHAR",
                debtor=pacs008.Party(name="A"),
                debtor_agent=Agent(bicfi="ACLBKHPPXXX"),
                creditor_agent=Agent(bicfi="KASITHBKXXX"),
                creditor=pacs008.Party(
                    name="B", identification=pacs008.PartyIdentification("0105536000001", organisation=True)
                ),
                creditor_account=pacs008.Account(iban="TH0000000000000000000"),
            ),
        ),
    )
    for version in pacs008.VERSIONS:
        assert pacs008.parse(parse_untrusted(pacs008.build_validated(minimal, version, schemas))) == minimal


def test_proxy_only_account_is_valid_in_13_but_not_in_08(schemas: SchemaSet) -> None:
    proxy_only = _message(1)
    tx = replace(proxy_only.transactions[0], creditor_account=pacs008.Account(proxy=pacs008.Proxy("0812345678")))
    proxy_only = replace(proxy_only, transactions=(tx,))
    pacs008.build_validated(proxy_only, "pacs.008.001.13", schemas)
    with pytest.raises(SchemaViolation) as violation:
        pacs008.build_validated(proxy_only, "pacs.008.001.08", schemas)
    assert violation.value.message_id == "pacs.008.001.08"


def test_text_longer_than_the_xsd_limit_is_a_schema_violation(schemas: SchemaSet) -> None:
    limit = schemas.text_max_length("pacs.008.001.13", "Max140Text")
    message = _message(1)
    long_name = replace(message.transactions[0], creditor=pacs008.Party(name="N" * (limit + 1)))
    with pytest.raises(SchemaViolation, match="Nm"):
        pacs008.build_validated(replace(message, transactions=(long_name,)), "pacs.008.001.13", schemas)


def test_markup_characters_in_text_are_escaped(schemas: SchemaSet) -> None:
    message = _message(1)
    tricky = replace(message.transactions[0], creditor=pacs008.Party(name='A & B <Co> "x"\r'))
    message = replace(message, transactions=(tricky,))
    root = parse_untrusted(pacs008.build_validated(message, "pacs.008.001.13", schemas))
    assert pacs008.parse(root).transactions[0].creditor.name == 'A & B <Co> "x"\r'


def test_control_characters_are_refused_at_build() -> None:
    message = _message(1)
    bad = replace(message.transactions[0], creditor=pacs008.Party(name="bell\x07"))
    with pytest.raises(ValueError, match="XML 1.0"):
        pacs008.build(replace(message, transactions=(bad,)), "pacs.008.001.13")


def test_parse_rejects_a_wrong_number_of_transactions(schemas: SchemaSet) -> None:
    body = pacs008.build(_message(2), "pacs.008.001.13").replace(b"<NbOfTxs>2<", b"<NbOfTxs>3<")
    with pytest.raises(XmlRejected, match="NbOfTxs") as rejected:
        pacs008.parse(parse_untrusted(body))
    assert rejected.value.reason_code == "FF01"


def _report(status: pacs002.TransactionStatus, *reasons: pacs002.StatusReason) -> pacs002.PaymentStatusReport:
    original = pacs002.OriginalGroup("MEKONG-20250310-000001", "pacs.008.001.13", CREATED_AT)
    return pacs002.PaymentStatusReport(
        message_id="ITMX-STS-1",
        created_at=CREATED_AT,
        instructing_agent=Agent(clearing_member=ClearingSystemMember("THN01", system_code="THCBC")),
        instructed_agent=Agent(bicfi="ACLBKHPPXXX"),
        group_status=pacs002.GroupStatus(original, status="PART"),
        transactions=tuple(
            pacs002.TransactionReport(
                status=status,
                original_group=original,
                original_instruction_id=f"INSTR-{n}",
                original_end_to_end_id=f"E2E-{n}",
                original_tx_id=f"TX-{n}",
                original_uetr=f"4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e{n:02d}",
                reasons=reasons,
                accepted_at=CREATED_AT,
            )
            for n in (1, 2)
        ),
    )


@pytest.mark.parametrize(
    "report",
    [
        _report(pacs002.TransactionStatus.ACCC),
        _report(pacs002.TransactionStatus.RJCT, pacs002.StatusReason("AC01", ("account 0041234567 unknown",))),
        _report(pacs002.TransactionStatus.RJCT, pacs002.StatusReason("NARR", ("line one", "line two"))),
    ],
)
def test_pacs002_round_trips_through_the_xsd(schemas: SchemaSet, report: pacs002.PaymentStatusReport) -> None:
    body = pacs002.build_validated(report, schemas)
    root = parse_untrusted(body)
    schemas.validate(root, pacs002.VERSION)
    assert pacs002.parse(root) == report


def test_pacs002_minimal_report_round_trips(schemas: SchemaSet) -> None:
    report = pacs002.PaymentStatusReport(
        message_id="S1",
        created_at=CREATED_AT,
        transactions=(pacs002.TransactionReport(status=pacs002.TransactionStatus.PDNG, original_uetr="4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e5a"),),
    )
    assert pacs002.parse(parse_untrusted(pacs002.build_validated(report, schemas))) == report


def test_pacs002_with_an_unhandled_status_is_rejected(schemas: SchemaSet) -> None:
    body = pacs002.build(_report(pacs002.TransactionStatus.ACSC)).replace(b">ACSC<", b">ACWC<")
    root = parse_untrusted(body)
    schemas.validate(root, pacs002.VERSION)  # valid ISO, but not a status the switch handles
    with pytest.raises(XmlRejected, match="ACWC"):
        pacs002.parse(root)


def test_pacs002_parser_refuses_another_message(schemas: SchemaSet) -> None:
    root = parse_untrusted(pacs008.build(_message(1), "pacs.008.001.08"))
    with pytest.raises(XmlRejected, match="pacs.002.001.10"):
        pacs002.parse(root)


def _bare_transaction(n: int) -> pacs008.CreditTransfer:
    """Only the mandatory fields."""
    return pacs008.CreditTransfer(
        end_to_end_id=f"E2E-{n}",
        uetr=f"4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e{n:02d}",
        settlement_amount=Amount("10.50", "THB"),
        charge_bearer="SHAR",
        debtor=pacs008.Party(),
        debtor_agent=Agent(bicfi="ACLBKHPPXXX"),
        creditor_agent=Agent(clearing_member=ClearingSystemMember("004", system_code="THCBC")),
        creditor=pacs008.Party(name="B"),
    )


def _variants(tx: pacs008.CreditTransfer) -> list[pacs008.CreditTransfer]:
    return [
        tx,
        replace(tx, debtor=pacs008.Party(name="Org", identification=pacs008.PartyIdentification(
            "0105536000001", scheme_code="TXID", issuer="RD", organisation=True))),
        replace(tx, creditor_account=pacs008.Account(iban="TH0000000000000000000"),
                debtor_account=pacs008.Account(other_id="x@aclb", scheme_code="BBAN")),
        replace(tx, remittance_lines=("one", "two"), additional_remittance=()),
        replace(tx, remittance_lines=(), additional_remittance=("QUOTE:1", "QUOTE:2")),
        replace(tx, accepted_at=None, instructed_amount=None, exchange_rate=None, purpose_code=None),
    ]


@pytest.mark.parametrize("version", pacs008.VERSIONS)
@pytest.mark.parametrize("full", [True, False])
@pytest.mark.parametrize("count", [1, 3])
def test_pacs008_round_trip_with_and_without_optional_fields(
    schemas: SchemaSet, version: str, full: bool, count: int
) -> None:
    base = _transaction if full else _bare_transaction
    for variant in range(len(_variants(base(1)))):
        message = pacs008.CustomerCreditTransfer(
            message_id="M1",
            created_at=CREATED_AT,
            settlement=pacs008.Settlement(clearing_system_code="THN") if full else pacs008.Settlement(),
            transactions=tuple(_variants(base(n))[variant] for n in range(1, count + 1)),
            total_settlement_amount=Amount("1", "THB") if full else None,
            settlement_date=date(2025, 3, 10) if full else None,
        )
        body = pacs008.build_validated(message, version, schemas)
        root = parse_untrusted(body)
        schemas.validate(root, version)
        assert pacs008.parse(root) == message


def test_pacs008_parse_takes_the_first_of_repeated_other_identifications(schemas: SchemaSet) -> None:
    body = pacs008.build(_message(1), "pacs.008.001.13").replace(
        b"<PrvtId><Othr>", b"<PrvtId><Othr><Id>FIRST</Id></Othr><Othr>"
    )
    root = parse_untrusted(body)
    schemas.validate(root, "pacs.008.001.13")
    identification = pacs008.parse(root).transactions[0].debtor.identification
    assert identification == pacs008.PartyIdentification("FIRST")


def test_pacs008_parse_ignores_comments_and_reads_empty_text_as_empty(schemas: SchemaSet) -> None:
    body = pacs008.build(_message(1), "pacs.008.001.08").replace(b"<PmtId>", b"<PmtId><!-- c -->")
    assert pacs008.parse(_lxml_fromstring(body)) == _message(1)


def _lxml_fromstring(body: bytes):  # type: ignore[no-untyped-def]
    from lxml import etree

    return etree.fromstring(body)  # keeps comments, unlike parse_untrusted


def test_pacs008_parse_reports_a_missing_mandatory_field() -> None:
    body = pacs008.build(_message(1), "pacs.008.001.13").replace(b"<ChrgBr>SLEV</ChrgBr>", b"")
    with pytest.raises(XmlRejected, match="ChrgBr") as rejected:
        pacs008.parse(parse_untrusted(body))
    assert rejected.value.reason_code == "FF01"


@pytest.mark.parametrize("count", [1, 3])
def test_pacs002_round_trip_with_and_without_optional_fields(schemas: SchemaSet, count: int) -> None:
    full = _report(pacs002.TransactionStatus.RJCT, pacs002.StatusReason("AC01", ("a",)), pacs002.StatusReason("NARR"))
    bare = pacs002.PaymentStatusReport(
        message_id="S1",
        created_at=CREATED_AT,
        transactions=tuple(
            pacs002.TransactionReport(status=pacs002.TransactionStatus.ACCC, original_end_to_end_id=f"E{n}")
            for n in range(count)
        ),
        group_status=pacs002.GroupStatus(
            pacs002.OriginalGroup("M1", "pacs.008.001.08"), reasons=(pacs002.StatusReason("NARR", ("x", "y")),)
        ),
    )
    for report in (full, bare, replace(bare, group_status=None)):
        root = parse_untrusted(pacs002.build_validated(report, schemas))
        schemas.validate(root, pacs002.VERSION)
        assert pacs002.parse(root) == report
