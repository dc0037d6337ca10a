"""pain.001.001.09 and pain.002.001.12 builders/parsers against the official XSDs."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest

from iso20022 import pacs002, pacs008, pain001, pain002
from iso20022.errors import SchemaViolation, XmlRejected
from iso20022.model import Account, Agent, Amount, ClearingSystemMember, Party, PartyIdentification, Proxy
from iso20022.parsing import message_id_of, parse_untrusted
from iso20022.schemas import SchemaSet

ICT = timezone(timedelta(hours=7))
CREATED_AT = datetime(2025, 3, 10, 9, 30, 15, 250000, tzinfo=ICT)
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}

THAI_BANK = Agent(clearing_member=ClearingSystemMember("014", system_code="THCBC"), country="TH")
LAO_BANK = Agent(bicfi="BCELLALAXXX", clearing_member=ClearingSystemMember("27710418", system_proprietary="LAPNET"))


def _transaction(n: int, value: str = "1650.00", currency: str = "THB") -> pain001.CreditTransferTransaction:
    """A creditor addressed by account number."""
    return pain001.CreditTransferTransaction(
        instruction_id=f"INSTR-{n}",
        end_to_end_id=f"E2E-{n}",
        uetr=f"4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e{n:02d}",
        amount=Amount(value, currency),
        creditor_agent=THAI_BANK,
        creditor=Party(name=f"Somchai Jaidee {n}", country="TH"),
        creditor_account=Account(other_id=f"00412345{n:02d}"),
        purpose_code="CASH",
        remittance_lines=(f"Rent March {n}",),
    )


def _proxy_transaction(n: int) -> pain001.CreditTransferTransaction:
    """A creditor addressed by PromptPay proxy; .09 still needs CdtrAcct/Id, here the proxy again."""
    return pain001.CreditTransferTransaction(
        end_to_end_id=f"E2E-P{n}",
        amount=Amount("500.25", "THB"),
        creditor=Party(name="Malee Sukjai"),
        creditor_account=Account(
            other_id="0066812345678", scheme_proprietary="MSISDN", proxy=Proxy("0066812345678", type_code="TELE")
        ),
    )


def _instruction(pmt_id: str, *transactions: pain001.CreditTransferTransaction) -> pain001.PaymentInstruction:
    return pain001.PaymentInstruction(
        payment_information_id=pmt_id,
        requested_execution_date=date(2025, 3, 10),
        debtor=Party(name="Sok Dara", country="KH",
                     identification=PartyIdentification("85512345678", scheme_proprietary="MOBILE")),
        debtor_account=Account(other_id="sok_dara@aclb", scheme_proprietary="BAKONG", currency="KHR"),
        debtor_agent=Agent(bicfi="ACLBKHPPXXX"),
        transactions=transactions,
    )


def _message() -> pain001.CustomerCreditTransferInitiation:
    """Two PmtInf: three account-addressed THB transfers; a proxy transfer, a LAK one and an equivalent amount."""
    second = _instruction(
        "PMT-2",
        _proxy_transaction(1),
        replace(_transaction(4, "2500000", "LAK"), creditor_agent=LAO_BANK,
                creditor_account=Account(iban="LA00000000000000000000")),
        replace(_transaction(5, "200000", "KHR"), transfer_currency="THB"),
    )
    return pain001.CustomerCreditTransferInitiation(
        message_id="ACLB-20250310-0001",
        created_at=CREATED_AT,
        initiating_party=Party(name="ACLEDA Bank Plc.",
                               identification=PartyIdentification("ACLBKHPP", scheme_code="BANK", organisation=True)),
        payment_instructions=(
            _instruction("PMT-1", _transaction(1), _transaction(2, "0.10"), _transaction(3, "12.5")),
            replace(second, requested_execution_date=datetime(2025, 3, 10, 14, 0, tzinfo=ICT)),
        ),
    )


def _rejected(body: bytes, schemas: SchemaSet) -> XmlRejected:
    """parse() of body, which must still be XSD-valid: only the control-total check catches it."""
    root = parse_untrusted(body)
    schemas.validate(root, pain001.VERSION)
    with pytest.raises(XmlRejected) as rejected:
        pain001.parse(root)
    return rejected.value


def test_multi_instruction_pain001_validates_and_parses_back(schemas: SchemaSet) -> None:
    message = _message()
    body = pain001.build_validated(message, schemas)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = parse_untrusted(body)
    assert message_id_of(root) == "pain.001.001.09"
    parsed = pain001.parse(root)
    assert parsed == message
    assert [len(p.transactions) for p in parsed.payment_instructions] == [3, 3]
    assert parsed.payment_instructions[0].debtor_account.currency == "KHR"


def test_builder_declares_exact_control_totals(schemas: SchemaSet) -> None:
    root = parse_untrusted(pain001.build(_message()))
    # 1650.00 + 0.10 + 12.5 + 500.25 + 2500000 + 200000: summed as decimals, never as floats
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", namespaces=NS) == "6"
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=NS) == "2702162.85"
    instructions = root.findall("p:CstmrCdtTrfInitn/p:PmtInf", namespaces=NS)
    assert [i.findtext("p:NbOfTxs", namespaces=NS) for i in instructions] == ["3", "3"]
    assert [i.findtext("p:CtrlSum", namespaces=NS) for i in instructions] == ["1662.60", "2700500.25"]
    assert pain001.control_sum(pain001.all_transactions(_message())) == pain001.control_sum(
        [_transaction(0, "2702162.85")]
    )


def test_control_sum_is_exact_where_floats_are_not() -> None:
    tenths = [_transaction(n, "0.1") for n in range(3)]
    assert 0.1 + 0.1 + 0.1 != 0.3
    assert str(pain001.control_sum(tenths)) == "0.3"
    big = [_transaction(n, "9999999999999.99999") for n in range(3)]
    assert str(pain001.control_sum(big)) == "29999999999999.99997"


def test_group_control_sum_mismatch_is_rejected_as_am10_naming_the_field(schemas: SchemaSet) -> None:
    body = pain001.build(_message()).replace(b"<CtrlSum>2702162.85<", b"<CtrlSum>2702162.86<")
    rejected = _rejected(body, schemas)
    assert rejected.reason_code == "AM10"
    assert rejected.path == "GrpHdr/CtrlSum"
    assert "GrpHdr/CtrlSum is 2702162.86" in rejected.message and "2702162.85" in rejected.message


def test_instruction_control_sum_mismatch_names_the_payment_information(schemas: SchemaSet) -> None:
    body = pain001.build(_message()).replace(b"<CtrlSum>2700500.25<", b"<CtrlSum>2700500<")
    rejected = _rejected(body, schemas)
    assert (rejected.reason_code, rejected.path) == ("AM10", "PmtInf[PMT-2]/CtrlSum")


def test_changed_amount_breaks_the_declared_sums(schemas: SchemaSet) -> None:
    body = pain001.build(_message()).replace(b">12.5</InstdAmt>", b">12.6</InstdAmt>")
    rejected = _rejected(body, schemas)
    assert (rejected.reason_code, rejected.path) == ("AM10", "PmtInf[PMT-1]/CtrlSum")


def test_control_sum_compares_numerically_not_as_text(schemas: SchemaSet) -> None:
    body = pain001.build(_message()).replace(b"<CtrlSum>2702162.85<", b"<CtrlSum>2702162.850000<")
    root = parse_untrusted(body)
    schemas.validate(root, pain001.VERSION)
    assert pain001.parse(root) == _message()


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        (b"<NbOfTxs>6<", b"<NbOfTxs>7<", "GrpHdr/NbOfTxs"),
        (b"PMT-1</PmtInfId><PmtMtd>TRF</PmtMtd><NbOfTxs>3<", b"PMT-1</PmtInfId><PmtMtd>TRF</PmtMtd><NbOfTxs>2<",
         "PmtInf[PMT-1]/NbOfTxs"),
    ],
)
def test_wrong_number_of_transactions_is_rejected_as_ff01(schemas: SchemaSet, old: bytes, new: bytes, path: str) -> None:
    body = pain001.build(_message())
    assert body.count(old) == 1
    rejected = _rejected(body.replace(old, new), schemas)
    assert (rejected.reason_code, rejected.path) == ("FF01", path)


def test_optional_instruction_totals_may_be_absent(schemas: SchemaSet) -> None:
    body = pain001.build(_message())
    for pmt_id, count, total in ((b"PMT-1", b"3", b"1662.60"), (b"PMT-2", b"3", b"2700500.25")):
        declared = b"<NbOfTxs>" + count + b"</NbOfTxs><CtrlSum>" + total + b"</CtrlSum>"
        assert body.count(b"<PmtInfId>" + pmt_id + b"</PmtInfId><PmtMtd>TRF</PmtMtd>" + declared) == 1
        body = body.replace(declared, b"", 1)
    body = body.replace(b"<CtrlSum>2702162.85</CtrlSum>", b"")
    assert b"CtrlSum" not in body
    root = parse_untrusted(body)
    schemas.validate(root, pain001.VERSION)
    assert pain001.parse(root) == _message()


def test_proxy_only_creditor_account_is_refused_by_the_09_xsd(schemas: SchemaSet) -> None:
    proxy_only = replace(_proxy_transaction(1), creditor_account=Account(proxy=Proxy("0066812345678", type_code="TELE")))
    message = replace(_message(), payment_instructions=(_instruction("PMT-1", proxy_only),))
    with pytest.raises(SchemaViolation) as violation:
        pain001.build_validated(message, schemas)
    assert violation.value.message_id == "pain.001.001.09"


def test_proxy_creditor_keeps_its_proxy_and_account_creditor_has_none(schemas: SchemaSet) -> None:
    parsed = pain001.parse(parse_untrusted(pain001.build_validated(_message(), schemas)))
    by_account, by_proxy = parsed.payment_instructions[0].transactions[0], parsed.payment_instructions[1].transactions[0]
    assert by_account.creditor_account == Account(other_id="0041234501")
    assert by_proxy.creditor_account is not None and by_proxy.creditor_account.proxy == Proxy("0066812345678", type_code="TELE")
    assert by_proxy.creditor_agent is None  # to be resolved (acmt.023) before the pacs.008


def test_minimal_transaction_round_trips(schemas: SchemaSet) -> None:
    bare = pain001.CreditTransferTransaction(end_to_end_id="E1", amount=Amount("1", "THB"))
    message = pain001.CustomerCreditTransferInitiation(
        message_id="M1",
        created_at=CREATED_AT,
        initiating_party=Party(),
        payment_instructions=(
            pain001.PaymentInstruction(
                payment_information_id="P1",
                requested_execution_date=date(2025, 3, 10),
                debtor=Party(),
                debtor_account=Account(iban="KH00000000000000"),
                debtor_agent=Agent(clearing_member=ClearingSystemMember("ACLB", system_proprietary="BAKONG")),
                transactions=(bare,),
            ),
        ),
    )
    assert pain001.parse(parse_untrusted(pain001.build_validated(message, schemas))) == message


def test_amount_text_is_kept_exactly(schemas: SchemaSet) -> None:
    parsed = pain001.parse(parse_untrusted(pain001.build_validated(_message(), schemas)))
    amounts = [tx.amount for tx in pain001.all_transactions(parsed)]
    assert amounts[:3] == [Amount("1650.00", "THB"), Amount("0.10", "THB"), Amount("12.5", "THB")]
    equivalent = parsed.payment_instructions[1].transactions[2]
    assert (equivalent.amount, equivalent.transfer_currency) == (Amount("200000", "KHR"), "THB")


def test_pain001_parser_refuses_another_message() -> None:
    root = parse_untrusted(pacs008.build(
        pacs008.CustomerCreditTransfer("M1", CREATED_AT, pacs008.Settlement(clearing_system_code="THN"), ()),
        "pacs.008.001.08",
    ))
    with pytest.raises(XmlRejected, match="pain.001.001.09") as rejected:
        pain001.parse(root)
    assert rejected.value.reason_code == "FF01"


def test_missing_end_to_end_id_is_named(schemas: SchemaSet) -> None:
    body = pain001.build(_message()).replace(b"<EndToEndId>E2E-2</EndToEndId>", b"")
    with pytest.raises(XmlRejected) as rejected:
        pain001.parse(parse_untrusted(body))
    assert (rejected.value.reason_code, rejected.value.path) == ("FF01", "PmtInf[PMT-1]/CdtTrfTxInf/PmtId/EndToEndId")


def test_account_currency_and_agent_country_also_round_trip_in_pacs008(schemas: SchemaSet) -> None:
    """The shared Account and Agent carry Ccy and PstlAdr/Ctry through the pacs.008 the switch sends."""
    tx = pacs008.CreditTransfer(
        end_to_end_id="E1",
        uetr="4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e5a",
        settlement_amount=Amount("1650.00", "THB"),
        charge_bearer="SLEV",
        debtor=Party(name="Sok Dara"),
        debtor_account=Account(other_id="sok_dara@aclb", scheme_proprietary="BAKONG", currency="KHR"),
        debtor_agent=Agent(bicfi="ACLBKHPPXXX", country="KH"),
        creditor_agent=THAI_BANK,
        creditor=Party(name="Somchai"),
        creditor_account=Account(other_id="0041234567", currency="THB"),
    )
    message = pacs008.CustomerCreditTransfer("M1", CREATED_AT, pacs008.Settlement(clearing_system_code="THN"), (tx,))
    for version in pacs008.VERSIONS:
        body = pacs008.build_validated(message, version, schemas)
        assert b"<Ccy>KHR</Ccy>" in body and b"<PstlAdr><Ctry>TH</Ctry></PstlAdr>" in body
        assert pacs008.parse(parse_untrusted(body)) == message



# --- pain.002.001.12 ------------------------------------------------------------------------------

Status = pain002.TransactionStatus


def _status_report() -> pain002.CustomerPaymentStatusReport:
    """A partial acceptance of _message(): one transaction rejected for an unknown proxy."""
    return pain002.CustomerPaymentStatusReport(
        message_id="MEKONG-STS-1",
        created_at=CREATED_AT,
        initiating_party=Party(name="Mekong Switch", identification=PartyIdentification("MEKONG", organisation=True)),
        group_status=pain002.GroupStatus(
            original_message_id="ACLB-20250310-0001",
            original_created_at=CREATED_AT,
            original_tx_count=6,
            original_control_sum="2702162.85",
            status="PART",
        ),
        payment_instructions=(
            pain002.PaymentInstructionStatus(
                original_payment_information_id="PMT-1",
                original_tx_count=3,
                original_control_sum="1662.60",
                status="ACCP",
                transactions=tuple(
                    pain002.TransactionReport(
                        status=Status.ACSC,
                        original_instruction_id=f"INSTR-{n}",
                        original_end_to_end_id=f"E2E-{n}",
                        original_uetr=f"4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e{n:02d}",
                        accepted_at=CREATED_AT,
                        original_amount=Amount("1650.00", "THB"),
                    )
                    for n in (1, 2, 3)
                ),
            ),
            pain002.PaymentInstructionStatus(
                original_payment_information_id="PMT-2",
                status="PART",
                reasons=(pain002.StatusReason("NARR", ("one of three transactions was rejected",)),),
                transactions=(
                    pain002.TransactionReport(
                        status=Status.RJCT,
                        original_end_to_end_id="E2E-P1",
                        reasons=(pain002.StatusReason("BE23", ("proxy 0066812345678 is not registered",)),),
                        original_amount=Amount("500.25", "THB"),
                    ),
                    pain002.TransactionReport(
                        status=Status.RJCT,
                        original_end_to_end_id="E2E-4",
                        reasons=(pain002.StatusReason(proprietary="51", additional_info=("LAPNET 51", "retry later")),),
                    ),
                    pain002.TransactionReport(status=Status.PDNG, original_end_to_end_id="E2E-5"),
                ),
            ),
        ),
    )


def test_pain002_validates_and_parses_back(schemas: SchemaSet) -> None:
    report = _status_report()
    body = pain002.build_validated(report, schemas)
    root = parse_untrusted(body)
    assert message_id_of(root) == "pain.002.001.12"
    schemas.validate(root, pain002.VERSION)
    assert pain002.parse(root) == report
    assert b"<OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>" in body


@pytest.mark.parametrize("status", list(pain002.TransactionStatus))
def test_every_transaction_status_round_trips(schemas: SchemaSet, status: pain002.TransactionStatus) -> None:
    report = pain002.CustomerPaymentStatusReport(
        message_id="S1",
        created_at=CREATED_AT,
        group_status=pain002.GroupStatus("M1", status=status.value),
        payment_instructions=(
            pain002.PaymentInstructionStatus("P1", (pain002.TransactionReport(status, original_end_to_end_id="E1"),)),
        ),
    )
    parsed = pain002.parse(parse_untrusted(pain002.build_validated(report, schemas)))
    assert parsed.payment_instructions[0].transactions[0].status is status
    assert parsed == report


def test_pain002_statuses_cover_the_brief() -> None:
    assert {s.value for s in pain002.TransactionStatus} == {"ACCP", "ACSC", "ACSP", "ACTC", "PDNG", "RJCT", "ACCC"}


def test_pain002_group_only_report_round_trips(schemas: SchemaSet) -> None:
    report = pain002.CustomerPaymentStatusReport(
        message_id="S1",
        created_at=CREATED_AT,
        group_status=pain002.GroupStatus(
            "ACLB-20250310-0001", status="RJCT", reasons=(pain002.StatusReason("AM10", ("GrpHdr/CtrlSum is 1",)),)
        ),
    )
    body = pain002.build_validated(report, schemas)
    assert b"OrgnlPmtInfAndSts" not in body
    assert pain002.parse(parse_untrusted(body)) == report


def test_pain002_answers_a_parsed_pain001_with_its_own_references(schemas: SchemaSet) -> None:
    original = pain001.parse(parse_untrusted(pain001.build_validated(_message(), schemas)))
    report = pain002.CustomerPaymentStatusReport(
        message_id="MEKONG-STS-2",
        created_at=CREATED_AT,
        group_status=pain002.GroupStatus(
            original.message_id, original_created_at=original.created_at,
            original_tx_count=len(pain001.all_transactions(original)),
            original_control_sum=str(pain001.control_sum(pain001.all_transactions(original))), status="ACTC",
        ),
        payment_instructions=tuple(
            pain002.PaymentInstructionStatus(
                instruction.payment_information_id,
                tuple(
                    pain002.TransactionReport(Status.ACTC, tx.instruction_id, tx.end_to_end_id, tx.uetr,
                                              original_amount=tx.amount)
                    for tx in instruction.transactions
                ),
            )
            for instruction in original.payment_instructions
        ),
    )
    parsed = pain002.parse(parse_untrusted(pain002.build_validated(report, schemas)))
    assert parsed.group_status.original_control_sum == "2702162.85"
    assert [tx.original_end_to_end_id for p in parsed.payment_instructions for tx in p.transactions] == [
        "E2E-1", "E2E-2", "E2E-3", "E2E-P1", "E2E-4", "E2E-5"
    ]
    assert parsed == report


def test_pain002_with_an_unhandled_status_is_rejected_naming_the_transaction(schemas: SchemaSet) -> None:
    body = pain002.build(_status_report()).replace(b"<TxSts>PDNG</TxSts>", b"<TxSts>ACWC</TxSts>")
    root = parse_untrusted(body)
    schemas.validate(root, pain002.VERSION)  # valid ISO, but not a status the switch reports
    with pytest.raises(XmlRejected, match="ACWC") as rejected:
        pain002.parse(root)
    assert rejected.value.path == "OrgnlPmtInfAndSts[PMT-2]/TxInfAndSts[E2E-5]/TxSts"


def test_pain002_without_a_transaction_status_is_rejected(schemas: SchemaSet) -> None:
    body = pain002.build(_status_report()).replace(b"<TxSts>PDNG</TxSts>", b"")
    root = parse_untrusted(body)
    schemas.validate(root, pain002.VERSION)  # TxSts is optional in the XSD
    with pytest.raises(XmlRejected) as rejected:
        pain002.parse(root)
    assert (rejected.value.reason_code, rejected.value.path) == ("FF01", "OrgnlPmtInfAndSts[PMT-2]/TxInfAndSts[E2E-5]/TxSts")


def test_pain002_reuses_the_pacs002_status_reason() -> None:
    """A partner's pacs.002 reason can be passed to the participant unchanged."""
    assert pain002.StatusReason is pacs002.StatusReason


def test_pain002_parser_refuses_a_pain001() -> None:
    with pytest.raises(XmlRejected, match="pain.002.001.12"):
        pain002.parse(parse_untrusted(pain001.build(_message())))
