"""Settlement report pages (iso20022/reports.py): camt.053.001.08 and camt.054.001.08 written with
lxml's incremental writer and read back streamed, validated against the official XSDs."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from iso20022 import apphdr
from iso20022.errors import XmlRejected
from iso20022.model import Amount
from iso20022.parsing import parse_untrusted
from iso20022.reports import (
    REPORT_VERSIONS,
    ReportEntry,
    ReportHeader,
    build_report,
    read_chunk_bytes,
    read_report,
    write_report,
)
from iso20022.schemas import SchemaSet

ICT = timezone(timedelta(hours=7))
CUT_OFF = datetime(2026, 11, 30, 16, 0, tzinfo=ICT)
UETR = "4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e5a"


def full_header(version: str, *, entries_total: int | None = 2) -> ReportHeader:
    return ReportHeader(
        message_type=version,
        message_id="ITMX-STL-20261130-2",
        created_at=CUT_OFF + timedelta(minutes=3, microseconds=250000),
        report_id="promptpay-20261130T090000Z",
        page_no=3,
        last_page=False,
        account_id="MEKONG-HUB-THB-001",
        currency="THB",
        period_from=CUT_OFF - timedelta(hours=5),
        period_to=CUT_OFF,
        sequence_no=42,
        entries_total=entries_total,
        servicer="ITMXTHBKXXX",
    )


def minimal_header(version: str) -> ReportHeader:
    return ReportHeader(
        message_type=version, message_id="M1", created_at=datetime(2026, 11, 30, 9, 5), report_id="R1", page_no=1,
        last_page=True, account_id="A1", currency="LAK", period_from=None, period_to=None,
    )


FULL_ENTRY = ReportEntry(
    amount=Amount("1650.25", "THB"), credit=True, status="BOOK", booking_date=date(2026, 11, 30),
    value_date=date(2026, 12, 1), entry_ref="NTRY-000000001", account_servicer_ref="ITMX-000000000001",
    bank_tx_code="PMNT/RCDT/XBCT", uetr=UETR, end_to_end_id="E2E-0000000001", tx_id="TX-0000000001",
    message_id="MEKONG-20261130-00000001", is_return=False, return_reason=None,
)
FULL_RETURN = replace(
    FULL_ENTRY, amount=Amount("200", "THB"), credit=False, entry_ref="NTRY-000000002", bank_tx_code="PMNT/RRCT/RRTN",
    message_id="ITMX-RTR-1", is_return=True, return_reason="AC04",
)
MINIMAL_ENTRY = ReportEntry(
    amount=Amount("10", "LAK"), credit=False, status="PDNG", booking_date=None, value_date=None, entry_ref=None,
    account_servicer_ref=None, bank_tx_code=None, uetr=None, end_to_end_id=None, tx_id=None, message_id=None,
    is_return=False, return_reason=None,
)


def page_entries(count: int) -> list[ReportEntry]:
    return [
        replace(FULL_ENTRY, entry_ref=f"NTRY-{n:09d}", end_to_end_id=f"E2E-{n:010d}", amount=Amount(f"{100 + n}.00", "THB"))
        for n in range(count)
    ]


def read_all(data: bytes, schemas: SchemaSet, **kwargs: object) -> tuple[ReportHeader, list[ReportEntry]]:
    page = read_report(data, schemas, **kwargs)  # type: ignore[arg-type]
    return page.header, list(page)


def refusal_after(data: bytes, schemas: SchemaSet) -> tuple[XmlRejected, int]:
    """The refusal reading data raises, and how many entries were yielded before it."""
    yielded = 0
    with pytest.raises(XmlRejected) as caught:
        for _entry in read_report(data, schemas):
            yielded += 1
    return caught.value, yielded


def line_of(data: bytes, needle: bytes) -> int:
    return data[: data.index(needle)].count(b"\n") + 1


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("version", REPORT_VERSIONS)
def test_full_page_round_trips(schemas: SchemaSet, version: str) -> None:
    header = full_header(version)
    assert read_all(build_report(header, [FULL_ENTRY, FULL_RETURN]), schemas) == (header, [FULL_ENTRY, FULL_RETURN])


@pytest.mark.parametrize("version", REPORT_VERSIONS)
def test_minimal_page_round_trips(schemas: SchemaSet, version: str) -> None:
    header = minimal_header(version)
    assert read_all(build_report(header, [MINIMAL_ENTRY]), schemas) == (header, [MINIMAL_ENTRY])


@pytest.mark.parametrize("version", REPORT_VERSIONS)
def test_page_without_entries_round_trips(schemas: SchemaSet, version: str) -> None:
    header = full_header(version, entries_total=0)
    assert read_all(build_report(header, []), schemas) == (header, [])


@pytest.mark.parametrize("version", REPORT_VERSIONS)
@pytest.mark.parametrize("header_kind", ["full", "minimal"])
def test_every_built_page_validates_against_the_xsd(schemas: SchemaSet, version: str, header_kind: str) -> None:
    header = full_header(version, entries_total=3) if header_kind == "full" else minimal_header(version)
    data = build_report(header, [FULL_ENTRY, FULL_RETURN, MINIMAL_ENTRY])
    schemas.validate(parse_untrusted(data), version)  # raises SchemaViolation


def test_return_without_a_reason_round_trips(schemas: SchemaSet) -> None:
    entry = replace(FULL_RETURN, return_reason=None)
    assert read_all(build_report(minimal_header("camt.054.001.08"), [entry]), schemas)[1] == [entry]


def test_pagination_fields_are_read_from_the_group_header(schemas: SchemaSet) -> None:
    header = replace(minimal_header("camt.053.001.08"), page_no=7, last_page=False)
    data = build_report(header, [MINIMAL_ENTRY])
    assert b"<MsgPgntn><PgNb>7</PgNb><LastPgInd>false</LastPgInd></MsgPgntn>" in data
    assert (read_all(data, schemas)[0].page_no, read_all(data, schemas)[0].last_page) == (7, False)


def test_a_servicer_that_is_not_a_bic_is_a_clearing_member_id(schemas: SchemaSet) -> None:
    header = replace(full_header("camt.054.001.08"), servicer="LAPNET")
    data = build_report(header, [FULL_ENTRY, FULL_RETURN])
    assert b"<ClrSysMmbId><MmbId>LAPNET</MmbId></ClrSysMmbId>" in data
    assert read_all(data, schemas)[0].servicer == "LAPNET"


def test_a_proprietary_bank_transaction_code_round_trips(schemas: SchemaSet) -> None:
    entry = replace(FULL_ENTRY, bank_tx_code="NAPAS-IBFT-CREDIT")
    data = build_report(minimal_header("camt.054.001.08"), [entry])
    assert b"<BkTxCd><Prtry><Cd>NAPAS-IBFT-CREDIT</Cd></Prtry></BkTxCd>" in data
    assert read_all(data, schemas)[1] == [entry]


def test_camt053_carries_a_zero_opening_balance_dated_the_period_start(schemas: SchemaSet) -> None:
    data = build_report(full_header("camt.053.001.08"), [FULL_ENTRY, FULL_RETURN])
    start = (CUT_OFF - timedelta(hours=5)).date().isoformat()
    assert re.search(
        rb"<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"THB\">0</Amt><CdtDbtInd>CRDT</CdtDbtInd>"
        rb"<Dt><Dt>" + start.encode() + rb"</Dt></Dt></Bal>", data
    )
    assert b"CLBD" not in data


def test_camt054_has_no_balance(schemas: SchemaSet) -> None:
    assert b"<Bal>" not in build_report(full_header("camt.054.001.08"), [FULL_ENTRY, FULL_RETURN])


def test_each_entry_is_on_a_line_of_its_own() -> None:
    data = build_report(minimal_header("camt.054.001.08"), page_entries(3))
    assert [line.startswith(b"<Ntry>") for line in data.splitlines()] == [False, False, True, True, True, False]


# ---------------------------------------------------------------------------- writing


def test_write_report_streams_from_a_generator_and_counts(schemas: SchemaSet) -> None:
    out = io.BytesIO()
    written = write_report(out, minimal_header("camt.054.001.08"), (MINIMAL_ENTRY for _ in range(5)))
    assert written == 5
    assert len(read_all(out.getvalue(), schemas)[1]) == 5


def test_writer_refuses_an_entries_total_that_is_not_what_it_wrote() -> None:
    with pytest.raises(ValueError, match="entries_total is 3 but 2 entries were written"):
        build_report(full_header("camt.054.001.08", entries_total=3), [FULL_ENTRY, FULL_RETURN])


def test_writer_refuses_half_a_period() -> None:
    with pytest.raises(ValueError, match="period_from and period_to go together"):
        build_report(replace(minimal_header("camt.054.001.08"), period_to=CUT_OFF), [])


def test_writer_refuses_an_unknown_version() -> None:
    with pytest.raises(ValueError, match="camt.053.001.02"):
        build_report(replace(minimal_header("camt.054.001.08"), message_type="camt.053.001.02"), [])


def test_writer_refuses_a_return_reason_on_an_entry_that_is_not_a_return() -> None:
    with pytest.raises(ValueError, match="not a return"):
        build_report(minimal_header("camt.054.001.08"), [replace(FULL_ENTRY, return_reason="AC04")])


# ---------------------------------------------------------------------------- reading


def test_header_is_there_before_any_entry_is_read(schemas: SchemaSet) -> None:
    page = read_report(io.BytesIO(build_report(full_header("camt.053.001.08", entries_total=400), page_entries(400))), schemas)
    assert page.header.report_id == "promptpay-20261130T090000Z"
    assert next(iter(page)).entry_ref == "NTRY-000000000"


def test_a_page_is_read_from_a_file(schemas: SchemaSet, tmp_path: Path) -> None:
    path = tmp_path / "page.xml"
    with path.open("wb") as out:
        write_report(out, full_header("camt.054.001.08", entries_total=500), page_entries(500))
    with path.open("rb") as source:
        page = read_report(source, schemas)
        assert [e.entry_ref for e in page] == [f"NTRY-{n:09d}" for n in range(500)]
        page.close()
        assert not source.closed  # the caller's file stays the caller's


def test_entries_are_read_once(schemas: SchemaSet) -> None:
    page = read_report(build_report(minimal_header("camt.054.001.08"), [MINIMAL_ENTRY]), schemas)
    list(page)
    with pytest.raises(RuntimeError, match="read once"):
        list(page)


def test_an_entry_with_several_transactions_yields_one_entry_each(schemas: SchemaSet) -> None:
    data = build_report(minimal_header("camt.054.001.08"), [FULL_ENTRY])
    batch = (
        b"<NtryDtls><TxDtls><Refs><UETR>" + UETR.encode() + b"</UETR></Refs><Amt Ccy=\"THB\">1000.25</Amt></TxDtls>"
        b"<TxDtls><Refs><EndToEndId>E2E-B</EndToEndId></Refs><Amt Ccy=\"THB\">650.00</Amt><CdtDbtInd>DBIT</CdtDbtInd>"
        b"<RtrInf><Rsn><Prtry>LATE</Prtry></Rsn></RtrInf></TxDtls></NtryDtls>"
    )
    data = re.sub(rb"<NtryDtls>.*</NtryDtls>", batch, data)
    entries = read_all(data, schemas)[1]
    assert [(e.amount, e.credit, e.uetr, e.end_to_end_id, e.is_return, e.return_reason) for e in entries] == [
        (Amount("1000.25", "THB"), True, UETR, None, False, None),
        (Amount("650.00", "THB"), False, None, "E2E-B", True, "LATE"),
    ]
    assert {e.entry_ref for e in entries} == {"NTRY-000000001"}


def test_a_batch_transaction_without_its_amount_is_refused(schemas: SchemaSet) -> None:
    data = build_report(minimal_header("camt.054.001.08"), [FULL_ENTRY])
    data = re.sub(rb"<NtryDtls>.*</NtryDtls>", b"<NtryDtls><TxDtls/><TxDtls/></NtryDtls>", data)
    error, _yielded = refusal_after(data, schemas)
    assert (error.reason_code, error.path) == ("FF01", "TxDtls/Amt")


def test_statement_pagination_and_other_partner_forms_are_read(schemas: SchemaSet) -> None:
    """What a partner may send and this writer does not: StmtPgntn instead of MsgPgntn, an IBAN,
    no Acct/Ccy (the balance's currency), BookgDt/DtTm, Sts/Prtry, AcctSvcrRef in Refs."""
    data = build_report(full_header("camt.053.001.08"), [FULL_ENTRY, FULL_RETURN])
    data = data.replace(b"<MsgPgntn><PgNb>3</PgNb><LastPgInd>false</LastPgInd></MsgPgntn>", b"")
    data = data.replace(b"<ElctrncSeqNb>", b"<StmtPgntn><PgNb>9</PgNb><LastPgInd>true</LastPgInd></StmtPgntn><ElctrncSeqNb>")
    data = data.replace(b"<Id><Othr><Id>MEKONG-HUB-THB-001</Id></Othr></Id><Ccy>THB</Ccy>", b"<Id><IBAN>TH12ITMX0000000000001</IBAN></Id>")
    data = data.replace(b"<BookgDt><Dt>2026-11-30</Dt></BookgDt>", b"<BookgDt><DtTm>2026-11-30T23:59:59+07:00</DtTm></BookgDt>", 1)
    data = data.replace(b"<Sts><Cd>BOOK</Cd></Sts>", b"<Sts><Prtry>SETTLED</Prtry></Sts>", 1)
    data = data.replace(b"<AcctSvcrRef>ITMX-000000000001</AcctSvcrRef>", b"", 1)
    data = data.replace(b"<EndToEndId>E2E-0000000001</EndToEndId>", b"<AcctSvcrRef>REFS-SVCR</AcctSvcrRef><EndToEndId>E2E-0000000001</EndToEndId>", 1)
    header, entries = read_all(data, schemas)
    assert (header.page_no, header.last_page, header.account_id, header.currency) == (9, True, "TH12ITMX0000000000001", "THB")
    assert (entries[0].booking_date, entries[0].status, entries[0].account_servicer_ref) == (date(2026, 11, 30), "SETTLED", "REFS-SVCR")


def test_an_indented_page_reads_the_same(schemas: SchemaSet) -> None:
    header = full_header("camt.053.001.08", entries_total=3)
    data = build_report(header, [FULL_ENTRY, FULL_RETURN, MINIMAL_ENTRY])
    indented = etree.tostring(etree.fromstring(data, etree.XMLParser(remove_blank_text=True)), pretty_print=True)
    assert read_all(indented, schemas) == (header, [FULL_ENTRY, FULL_RETURN, MINIMAL_ENTRY])


def test_a_page_with_a_namespace_prefix_reads_the_same(schemas: SchemaSet) -> None:
    header = full_header("camt.054.001.08")
    data = build_report(header, [FULL_ENTRY, FULL_RETURN]).decode()
    prefixed = re.sub(r"<(/?)([A-Za-z]+)", r"<\1c:\2", data).replace('xmlns="', 'xmlns:c="')
    assert "<c:Ntry>" in prefixed
    assert read_all(prefixed.encode(), schemas) == (header, [FULL_ENTRY, FULL_RETURN])


# ---------------------------------------------------------------------------- refusals


def big_page(version: str = "camt.054.001.08", count: int = 600) -> bytes:
    """A page several read chunks long, so that a defect near its end is met after entries were
    yielded."""
    data = build_report(full_header(version, entries_total=count), page_entries(count))
    assert len(data) > 3 * read_chunk_bytes
    return data


def test_a_bad_amount_late_in_the_page_is_refused_as_ff01_with_its_line(schemas: SchemaSet) -> None:
    data = big_page()
    target = b'<Amt Ccy="THB">650.00</Amt>'  # entry 550
    data = data.replace(target, b'<Amt Ccy="THB">6.5.0</Amt>', 1)
    error, yielded = refusal_after(data, schemas)
    assert error.reason_code == "FF01"
    assert 0 < yielded < 600
    assert f"line {line_of(data, b'6.5.0')}:" in error.message
    assert "6.5.0" in error.message and error.path == "Amt"


def test_elements_out_of_order_are_refused_as_ff01(schemas: SchemaSet) -> None:
    data = big_page()
    original = b'<Amt Ccy="THB">640.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
    data = data.replace(original, b'<CdtDbtInd>CRDT</CdtDbtInd><Amt Ccy="THB">640.00</Amt>', 1)
    error, yielded = refusal_after(data, schemas)
    assert error.reason_code == "FF01"
    assert 0 < yielded < 600
    assert "This element is not expected" in error.message
    assert f"line {line_of(data, b'<CdtDbtInd>CRDT</CdtDbtInd><Amt')}:" in error.message


def test_a_page_that_is_not_well_formed_is_refused_as_ff02_with_its_line(schemas: SchemaSet) -> None:
    data = big_page()
    data = data.replace(b"<EndToEndId>E2E-0000000590</EndToEndId>", b"<EndToEndId>E2E-0000000590</EndToEndIdd>", 1)
    error, yielded = refusal_after(data, schemas)
    assert error.reason_code == "FF02"
    assert 0 < yielded < 590
    assert f"line {line_of(data, b'</EndToEndIdd>')}:" in error.message


def test_a_page_truncated_midway_is_refused_as_ff02(schemas: SchemaSet) -> None:
    # lxml lets this through when a schema is set and entity resolution is off: the reader's
    # parser options are what this test holds in place
    data = big_page()
    cut = data.index(b"</Ntry>\n", len(data) * 3 // 4) + len(b"</Ntry>\n")  # a whole number of entries
    error, yielded = refusal_after(data[:cut], schemas)
    assert error.reason_code == "FF02"
    assert 0 < yielded <= data[:cut].count(b"<Ntry>")
    assert "Premature end of data" in error.message


def test_a_doctype_is_refused_as_ff01(schemas: SchemaSet) -> None:
    data = build_report(minimal_header("camt.054.001.08"), [MINIMAL_ENTRY])
    data = data.replace(b"?>\n", b'?>\n<!DOCTYPE Document [<!ENTITY x "boom">]>\n', 1)
    with pytest.raises(XmlRejected) as caught:
        read_report(data, schemas)
    assert caught.value.reason_code == "FF01" and "DOCTYPE" in caught.value.message


def test_an_undeclared_entity_is_refused_as_ff02(schemas: SchemaSet) -> None:
    data = build_report(minimal_header("camt.054.001.08"), [FULL_ENTRY]).replace(b"E2E-0000000001", b"&e2e;")
    error, _yielded = refusal_after(data, schemas)
    assert error.reason_code == "FF02" and "e2e" in error.message


def test_an_entry_count_that_differs_from_the_summary_is_refused(schemas: SchemaSet) -> None:
    data = build_report(full_header("camt.054.001.08", entries_total=2), [FULL_ENTRY, FULL_RETURN])
    data = re.sub(rb"\n<Ntry>.*?</Ntry>", b"", data, count=1)
    error, yielded = refusal_after(data, schemas)
    assert (error.reason_code, error.path, yielded) == ("FF01", "TxsSummry/TtlNtries/NbOfNtries", 1)


def test_a_second_statement_in_a_page_is_refused(schemas: SchemaSet) -> None:
    data = build_report(minimal_header("camt.053.001.08"), [MINIMAL_ENTRY])
    statement = re.search(rb"<Stmt>.*</Stmt>", data, re.S)
    assert statement is not None
    data = data.replace(b"</Stmt>", b"</Stmt>" + statement[0], 1)
    error, _yielded = refusal_after(data, schemas)
    assert error.reason_code == "FF01" and "one Stmt per report page" in error.message


def test_a_page_over_the_size_limit_is_refused(schemas: SchemaSet) -> None:
    data = big_page()
    error_size = len(data) // 2
    with pytest.raises(XmlRejected) as caught:
        for _entry in read_report(data, schemas, size_bytes_max=error_size):
            pass
    assert caught.value.reason_code == "FF01" and f"{error_size}-byte limit" in caught.value.message


def test_another_message_is_refused_as_ff01(schemas: SchemaSet) -> None:
    data = b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"><FIToFIPmtStsRpt/></Document>'
    with pytest.raises(XmlRejected) as caught:
        read_report(data, schemas)
    assert caught.value.reason_code == "FF01" and "pacs.002.001.10" in caught.value.message


def test_a_root_outside_iso_20022_is_refused_as_ff01(schemas: SchemaSet) -> None:
    with pytest.raises(XmlRejected) as caught:
        read_report(b"<statement/>", schemas)
    assert caught.value.reason_code == "FF01"


def test_an_empty_body_is_refused_as_ff02(schemas: SchemaSet) -> None:
    with pytest.raises(XmlRejected) as caught:
        read_report(b"", schemas)
    assert caught.value.reason_code == "FF02"


# ---------------------------------------------------------------------------- envelopes


@pytest.fixture(scope="module")
def signer() -> apphdr.SigningKey:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "itmx-simulator")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256())
    )
    return apphdr.SigningKey(key, certificate)


def sealed(document: bytes, signer: apphdr.SigningKey) -> bytes:
    return apphdr.seal(
        document, fr=apphdr.Party(member_id="ITMX", system_code="THCBC"), to=apphdr.Party(bicfi="NBCAKHPPXXX"),
        signer=signer, created_at=CUT_OFF,
    )


def test_a_page_in_a_business_message_envelope_is_read(schemas: SchemaSet, signer: apphdr.SigningKey) -> None:
    header = full_header("camt.054.001.08")
    body = sealed(build_report(header, [FULL_ENTRY, FULL_RETURN]), signer)
    assert read_all(body, schemas) == (header, [FULL_ENTRY, FULL_RETURN])


def test_an_enveloped_page_that_does_not_validate_is_refused_with_its_line(schemas: SchemaSet, signer: apphdr.SigningKey) -> None:
    document = build_report(full_header("camt.053.001.08"), [FULL_ENTRY, FULL_RETURN]).replace(b"<Cd>BOOK</Cd>", b"<Cd>BOOKED</Cd>", 1)
    with pytest.raises(XmlRejected) as caught:
        read_report(sealed(document, signer), schemas)
    assert caught.value.reason_code == "FF01"
    assert re.search(r"line \d+: Element 'Cd': \[facet 'maxLength'\]", caught.value.message)


def test_a_validation_message_keeps_the_pattern_it_quotes(schemas: SchemaSet) -> None:
    # regression: taking the namespaces out of libxml2's message also took "{3,3}" out of "[A-Z]{3,3}"
    data = big_page().replace(b'<Amt Ccy="THB">640.00</Amt>', b'<Amt Ccy="thb">640.00</Amt>', 1)
    error, _yielded = refusal_after(data, schemas)
    assert "The value 'thb' is not accepted by the pattern '[A-Z]{3,3}'" in error.message
    assert "urn:iso" not in error.message


def test_a_doctype_in_utf16_is_refused_as_ff01(schemas: SchemaSet) -> None:
    text = build_report(minimal_header("camt.054.001.08"), [MINIMAL_ENTRY]).decode()
    text = text.replace("encoding='UTF-8'?>", "encoding='UTF-16'?><!DOCTYPE Document>", 1)
    with pytest.raises(XmlRejected) as caught:
        read_report(text.encode("utf-16"), schemas)
    assert caught.value.reason_code == "FF01" and "DOCTYPE" in caught.value.message


def test_a_long_prolog_is_refused_as_ff01(schemas: SchemaSet) -> None:
    data = build_report(minimal_header("camt.054.001.08"), [MINIMAL_ENTRY])
    data = data.replace(b"?>\n", b"?>\n<!--" + b"x" * 1_200_000 + b"-->\n", 1)
    with pytest.raises(XmlRejected) as caught:
        read_report(data, schemas)
    assert caught.value.reason_code == "FF01" and "no root element" in caught.value.message
