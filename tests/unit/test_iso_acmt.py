"""acmt.023.001.04 / acmt.024.001.04 (PromptPay proxy resolution) against the official XSDs."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from iso20022 import acmt023, acmt024
from iso20022.errors import XmlRejected
from iso20022.model import (
    Account,
    Agent,
    Assignment,
    ClearingSystemMember,
    Party,
    PartyAndAccount,
    PartyIdentification,
    Proxy,
)
from iso20022.parsing import message_id_of, parse_untrusted
from iso20022.schemas import SchemaSet

ICT = timezone(timedelta(hours=7))
CREATED_AT = datetime(2025, 3, 10, 9, 30, 15, 250000, tzinfo=ICT)
SWITCH = Agent(bicfi="MEKGKHPPXXX")
ITMX = Agent(clearing_member=ClearingSystemMember("ITMX", system_proprietary="PROMPTPAY"), country="TH")
SCB = Agent(clearing_member=ClearingSystemMember("014", system_code="THCBC"))

MOBILE = Account(proxy=Proxy("0066812345678", type_code="TELE"))
NATIONAL_ID = Account(proxy=Proxy("1101700203451", type_proprietary="NATID"))
E_WALLET = Account(proxy=Proxy("140000812345678", type_proprietary="EWALLETID"))


def _request() -> acmt023.IdentificationVerificationRequest:
    """A batch: three proxies and one account whose holder name is to be checked."""
    return acmt023.IdentificationVerificationRequest(
        assignment=Assignment("MEKONG-VRF-1", CREATED_AT, assigner=SWITCH, assignee=ITMX),
        verifications=(
            acmt023.Verification("V1", PartyAndAccount(account=MOBILE)),
            acmt023.Verification("V2", PartyAndAccount(account=NATIONAL_ID)),
            acmt023.Verification("V3", PartyAndAccount(account=E_WALLET)),
            acmt023.Verification(
                "V4",
                PartyAndAccount(
                    party=Party(name="Somchai Jaidee"),
                    account=Account(other_id="0041234567", currency="THB"),
                    agent=SCB,
                ),
            ),
        ),
    )


def _report() -> acmt024.IdentificationVerificationReport:
    """V1 resolves to an SCB account, V2 is unknown (BE23), V3 answered with a proprietary reason, V4 confirmed."""
    return acmt024.IdentificationVerificationReport(
        assignment=Assignment("ITMX-VRF-9", CREATED_AT, assigner=ITMX, assignee=SWITCH),
        original_message_id="MEKONG-VRF-1",
        original_created_at=CREATED_AT,
        reports=(
            acmt024.VerificationReport(
                original_id="V1",
                verified=True,
                original_party_and_account=PartyAndAccount(account=MOBILE),
                updated_party_and_account=PartyAndAccount(
                    party=Party(name="Somchai Jaidee", country="TH",
                                identification=PartyIdentification("1101700203451", scheme_code="NIDN")),
                    account=Account(other_id="0041234567", proxy=MOBILE.proxy),
                    agent=SCB,
                ),
            ),
            acmt024.VerificationReport(
                original_id="V2",
                verified=False,
                reason_code="BE23",
                original_party_and_account=PartyAndAccount(account=NATIONAL_ID),
            ),
            acmt024.VerificationReport(original_id="V3", verified=False, reason_proprietary="EWALLET_SUSPENDED"),
            acmt024.VerificationReport(
                original_id="V4",
                verified=True,
                updated_party_and_account=PartyAndAccount(party=Party(name="Somchai Jaidee")),
            ),
        ),
    )


def test_batch_request_validates_and_parses_back(schemas: SchemaSet) -> None:
    request = _request()
    body = acmt023.build_validated(request, schemas)
    root = parse_untrusted(body)
    assert message_id_of(root) == "acmt.023.001.04"
    parsed = acmt023.parse(root)
    assert parsed == request
    assert [v.verification_id for v in parsed.verifications] == ["V1", "V2", "V3", "V4"]
    assert parsed.verifications[1].party_and_account.account == NATIONAL_ID


def test_proxy_request_writes_the_xsd_element_names_in_order(schemas: SchemaSet) -> None:
    body = acmt023.build_validated(_request(), schemas)
    assert (b"<Assgnmt><MsgId>MEKONG-VRF-1</MsgId><CreDtTm>2025-03-10T09:30:15.250000+07:00</CreDtTm>"
            b"<Assgnr><Agt><FinInstnId><BICFI>MEKGKHPPXXX</BICFI></FinInstnId></Agt></Assgnr>") in body
    assert (b"<Vrfctn><Id>V1</Id><PtyAndAcctId><Acct><Prxy><Tp><Cd>TELE</Cd></Tp><Id>0066812345678</Id>"
            b"</Prxy></Acct></PtyAndAcctId></Vrfctn>") in body


def test_report_validates_and_parses_back(schemas: SchemaSet) -> None:
    report = _report()
    body = acmt024.build_validated(report, schemas)
    root = parse_untrusted(body)
    assert message_id_of(root) == "acmt.024.001.04"
    assert acmt024.parse(root) == report


def test_resolved_proxy_gives_creditor_name_account_and_thai_bank_code(schemas: SchemaSet) -> None:
    parsed = acmt024.parse(parse_untrusted(acmt024.build_validated(_report(), schemas)))
    resolved = parsed.reports[0]
    assert resolved.verified is True and resolved.reason_code is None
    updated = resolved.updated_party_and_account
    assert updated is not None and updated.party is not None and updated.account is not None
    assert updated.party.name == "Somchai Jaidee"
    assert updated.account.other_id == "0041234567"
    assert updated.agent == Agent(clearing_member=ClearingSystemMember("014", system_code="THCBC"))


def test_unknown_proxy_is_reported_unverified_with_be23(schemas: SchemaSet) -> None:
    body = acmt024.build_validated(_report(), schemas)
    assert b"<OrgnlId>V2</OrgnlId><Vrfctn>false</Vrfctn><Rsn><Cd>BE23</Cd></Rsn>" in body
    unknown = acmt024.parse(parse_untrusted(body)).reports[1]
    assert (unknown.verified, unknown.reason_code, unknown.updated_party_and_account) == (False, "BE23", None)
    assert unknown.original_party_and_account == PartyAndAccount(account=NATIONAL_ID)


def test_report_answers_every_request_verification(schemas: SchemaSet) -> None:
    request = acmt023.parse(parse_untrusted(acmt023.build_validated(_request(), schemas)))
    report = acmt024.parse(parse_untrusted(acmt024.build_validated(_report(), schemas)))
    assert report.original_message_id == request.assignment.message_id
    assert [r.original_id for r in report.reports] == [v.verification_id for v in request.verifications]
    assert (report.assignment.assigner, report.assignment.assignee) == (
        request.assignment.assignee, request.assignment.assigner
    )


@pytest.mark.parametrize(("text", "verified"), [("1", True), ("0", False), (" true ", True)])
def test_every_xsd_boolean_spelling_is_read(schemas: SchemaSet, text: str, verified: bool) -> None:
    body = acmt024.build(_report()).replace(b"<OrgnlId>V4</OrgnlId><Vrfctn>true<", f"<OrgnlId>V4</OrgnlId><Vrfctn>{text}<".encode())
    root = parse_untrusted(body)
    schemas.validate(root, acmt024.VERSION)
    assert acmt024.parse(root).reports[3].verified is verified


def test_minimal_request_and_report_round_trip(schemas: SchemaSet) -> None:
    assignment = Assignment("M1", CREATED_AT, assigner=Agent(bicfi="MEKGKHPP"), assignee=Agent(bicfi="KASITHBK"))
    request = acmt023.IdentificationVerificationRequest(assignment, (acmt023.Verification("1", PartyAndAccount()),))
    assert acmt023.parse(parse_untrusted(acmt023.build_validated(request, schemas))) == request
    report = acmt024.IdentificationVerificationReport(assignment, (acmt024.VerificationReport("1", verified=True),))
    body = acmt024.build_validated(report, schemas)
    assert b"OrgnlAssgnmt" not in body
    assert acmt024.parse(parse_untrusted(body)) == report


def test_report_with_only_the_original_message_id(schemas: SchemaSet) -> None:
    report = replace(_report(), original_created_at=None)
    body = acmt024.build_validated(report, schemas)
    assert b"<OrgnlAssgnmt><MsgId>MEKONG-VRF-1</MsgId></OrgnlAssgnmt>" in body
    assert acmt024.parse(parse_untrusted(body)) == report


def test_duplicate_verification_id_is_rejected_naming_it(schemas: SchemaSet) -> None:
    body = acmt023.build(_request()).replace(b"<Id>V3</Id>", b"<Id>V1</Id>")
    root = parse_untrusted(body)
    schemas.validate(root, acmt023.VERSION)  # the XSD does not require unique ids
    with pytest.raises(XmlRejected) as rejected:
        acmt023.parse(root)
    assert (rejected.value.reason_code, rejected.value.path) == ("FF01", "Vrfctn[V1]/Id")


def test_report_answering_one_verification_twice_is_rejected(schemas: SchemaSet) -> None:
    body = acmt024.build(_report()).replace(b"<OrgnlId>V3</OrgnlId>", b"<OrgnlId>V2</OrgnlId>")
    root = parse_untrusted(body)
    schemas.validate(root, acmt024.VERSION)
    with pytest.raises(XmlRejected) as rejected:
        acmt024.parse(root)
    assert (rejected.value.reason_code, rejected.value.path) == ("FF01", "Rpt[V2]/OrgnlId")


def test_assigner_that_is_a_party_is_refused(schemas: SchemaSet) -> None:
    body = acmt024.build(_report()).replace(
        b"<Assgnr><Agt><FinInstnId><ClrSysMmbId><ClrSysId><Prtry>PROMPTPAY</Prtry></ClrSysId><MmbId>ITMX</MmbId>"
        b"</ClrSysMmbId><PstlAdr><Ctry>TH</Ctry></PstlAdr></FinInstnId></Agt></Assgnr>",
        b"<Assgnr><Pty><Nm>ITMX</Nm></Pty></Assgnr>",
    )
    root = parse_untrusted(body)
    schemas.validate(root, acmt024.VERSION)  # Party50Choice allows it
    with pytest.raises(XmlRejected) as rejected:
        acmt024.parse(root)
    assert (rejected.value.reason_code, rejected.value.path) == ("FF01", "Assgnmt/Assgnr/Pty")


def test_each_parser_refuses_the_other_message(schemas: SchemaSet) -> None:
    with pytest.raises(XmlRejected, match="acmt.024.001.04"):
        acmt024.parse(parse_untrusted(acmt023.build(_request())))
    with pytest.raises(XmlRejected, match="acmt.023.001.04"):
        acmt023.parse(parse_untrusted(acmt024.build(_report())))
