"""Random valid models -> XML valid against the official XSD -> parse gives the same model.

For pain.001.001.09, pain.002.001.12, acmt.023.001.04 and acmt.024.001.04. Text sizes come from the
XSD facets (checked in test_text_limits_match_the_xsd), so a generated model is always valid.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iso20022 import acmt023, acmt024, pacs002, pain001, pain002
from iso20022.errors import XmlRejected
from iso20022.model import (
    Account,
    Agent,
    Amount,
    Assignment,
    ClearingSystemMember,
    Party,
    PartyAndAccount,
    PartyIdentification,
    Proxy,
)
from iso20022.parsing import parse_untrusted
from iso20022.reason_codes import REASON_CODES
from iso20022.schemas import SchemaSet

LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ &<>\"éèàüöçñÅØß"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ALNUM = UPPER + "0123456789"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TX_COUNT_MAX = 4  # per PmtInf; with PMT_INF_MAX the CtrlSum stays within the XSD's 18 digits
PMT_INF_MAX = 3


def text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=LATIN, min_size=1, max_size=max_size)


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:  # type: ignore[type-arg]
    return st.none() | strategy


countries = st.text(alphabet=UPPER, min_size=2, max_size=2)
currencies = st.sampled_from(["KHR", "THB", "LAK", "VND", "USD", "MYR"])
bics = st.builds(  # BICFIDec2014Identifier: 4 alnum, country, 2 alnum, optional 3-alnum branch
    lambda bank, country, location, branch: bank + country + location + branch,
    st.text(alphabet=ALNUM, min_size=4, max_size=4), countries, st.text(alphabet=ALNUM, min_size=2, max_size=2),
    st.sampled_from(["", "XXX"]) | st.text(alphabet=ALNUM, min_size=3, max_size=3),
)
timestamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from(
    [timezone.utc, timezone(timedelta(hours=7)), timezone(timedelta(hours=5, minutes=45))]
))
dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1))


def amount_texts() -> st.SearchStrategy[str]:
    """0 .. 10**9-1 units with 0, 2 or 5 decimals (ActiveOrHistoricCurrencyAndAmount: 5 fraction digits).

    Small enough that the CtrlSum of every transaction of a message keeps within the XSD's 18
    digits even when scales differ (a sum of 10**13 and 0.00001 would not).
    """
    return st.tuples(st.integers(min_value=0, max_value=10**9 - 1), st.sampled_from([0, 2, 5]), st.integers(min_value=0)).map(
        lambda t: str(t[0]) if t[1] == 0 else f"{t[0]}.{t[2] % 10**t[1]:0{t[1]}d}"
    )


amounts = st.builds(Amount, amount_texts(), currencies)
members = st.builds(
    ClearingSystemMember,
    member_id=text(35),
    system_code=optional(st.text(alphabet=UPPER, min_size=1, max_size=5)),
    system_proprietary=st.none(),
) | st.builds(ClearingSystemMember, member_id=text(35), system_proprietary=text(35))
agents = st.builds(Agent, bicfi=optional(bics), clearing_member=optional(members), country=optional(countries))


def identifications(identifier_max: int) -> st.SearchStrategy[PartyIdentification]:
    return st.builds(
        PartyIdentification,
        identifier=text(identifier_max),
        scheme_code=optional(st.text(alphabet=UPPER, min_size=1, max_size=4)),
        scheme_proprietary=st.none(),
        issuer=optional(text(35)),
        organisation=st.booleans(),
    ) | st.builds(PartyIdentification, identifier=text(identifier_max), scheme_proprietary=text(35))


def parties(identifier_max: int) -> st.SearchStrategy[Party]:
    return st.builds(Party, name=optional(text(140)), country=optional(countries),
                     identification=optional(identifications(identifier_max)))


proxies = st.builds(Proxy, identifier=text(2048), type_code=optional(st.text(alphabet=UPPER, min_size=1, max_size=4))) | st.builds(
    Proxy, identifier=text(2048), type_proprietary=text(35)
)
ibans = st.builds(  # IBAN2007Identifier
    lambda country, check, rest: country + check + rest,
    countries, st.text(alphabet="0123456789", min_size=2, max_size=2), st.text(alphabet=ALNUM, min_size=1, max_size=30),
)


def accounts(*, id_required: bool) -> st.SearchStrategy[Account]:
    """Id/Othr (with or without scheme) or Id/IBAN, Ccy and Prxy; Id optional only for CashAccount40."""
    by_other = st.builds(Account, other_id=text(34), scheme_code=optional(st.text(alphabet=UPPER, min_size=1, max_size=4)),
                         proxy=optional(proxies), currency=optional(currencies))
    by_other_proprietary = st.builds(Account, other_id=text(34), scheme_proprietary=text(35), proxy=optional(proxies),
                                     currency=optional(currencies))
    by_iban = st.builds(Account, iban=ibans, proxy=optional(proxies), currency=optional(currencies))
    found = by_other | by_other_proprietary | by_iban
    if id_required:
        return found
    return found | st.builds(Account, proxy=optional(proxies), currency=optional(currencies))


uetrs = st.uuids(version=4).map(str)

transactions = st.builds(
    pain001.CreditTransferTransaction,
    end_to_end_id=text(35),
    amount=amounts,
    instruction_id=optional(text(35)),
    uetr=optional(uetrs),
    transfer_currency=optional(currencies),
    creditor_agent=optional(agents),
    creditor=optional(parties(35)),
    creditor_account=optional(accounts(id_required=True)),
    purpose_code=optional(st.text(alphabet=UPPER, min_size=1, max_size=4)),
    remittance_lines=st.lists(text(140), max_size=3).map(tuple),
)
instructions = st.builds(
    pain001.PaymentInstruction,
    payment_information_id=text(35),
    requested_execution_date=dates | timestamps,
    debtor=parties(35),
    debtor_account=accounts(id_required=True),
    debtor_agent=agents,
    transactions=st.lists(transactions, min_size=1, max_size=TX_COUNT_MAX).map(tuple),
    payment_method=st.sampled_from(["TRF", "CHK", "TRA"]),
)
initiations = st.builds(
    pain001.CustomerCreditTransferInitiation,
    message_id=text(35),
    created_at=timestamps,
    initiating_party=parties(35),
    payment_instructions=st.lists(instructions, min_size=1, max_size=PMT_INF_MAX).map(tuple),
)


def test_text_limits_match_the_xsd(schemas: SchemaSet) -> None:
    assert schemas.text_max_length(pain001.VERSION, "Max35Text") == 35
    assert schemas.text_max_length(pain001.VERSION, "Max34Text") == 34
    assert schemas.text_max_length(pain001.VERSION, "Max140Text") == 140
    assert schemas.text_max_length(pain001.VERSION, "Max2048Text") == 2048
    assert schemas.text_max_length(pain002.VERSION, "Max105Text") == 105
    assert schemas.text_max_length(acmt023.VERSION, "Max256Text") == 256
    assert schemas.text_max_length(acmt024.VERSION, "Max2048Text") == 2048


@SETTINGS
@given(message=initiations)
def test_pain001_round_trips(schemas: SchemaSet, message: pain001.CustomerCreditTransferInitiation) -> None:
    parsed = pain001.parse(parse_untrusted(pain001.build_validated(message, schemas)))
    assert parsed == message
    assert pain001.control_sum(pain001.all_transactions(parsed)) == sum(
        (Decimal(tx.amount.value) for tx in pain001.all_transactions(message)), Decimal(0)
    )



@SETTINGS
@given(
    value=st.tuples(st.integers(min_value=1, max_value=10**18 - 1), st.sampled_from([0, 2])).map(
        lambda pair: str(pair[0]) if pair[1] == 0 else f"{pair[0] // 100}.{pair[0] % 100:02d}"
    ),
    currency=currencies,
)
def test_pain001_single_amount_of_up_to_18_digits_round_trips_exactly(
    schemas: SchemaSet, value: str, currency: str
) -> None:
    tx = pain001.CreditTransferTransaction(end_to_end_id="E1", amount=Amount(value, currency))
    message = pain001.CustomerCreditTransferInitiation("M1", datetime(2025, 3, 10, tzinfo=timezone.utc), Party(), (
        pain001.PaymentInstruction("P1", date(2025, 3, 10), Party(), Account(other_id="a"), Agent(), (tx,)),
    ))
    body = pain001.build_validated(message, schemas)
    assert f"<CtrlSum>{value}</CtrlSum>".encode() in body
    assert pain001.parse(parse_untrusted(body)).payment_instructions[0].transactions[0].amount == Amount(value, currency)


@SETTINGS
@given(message=initiations, delta=st.sampled_from(["0.00001", "0.01", "1", "-0.01"]))
def test_any_changed_group_control_sum_is_rejected_as_am10(
    schemas: SchemaSet, message: pain001.CustomerCreditTransferInitiation, delta: str
) -> None:
    body = pain001.build(message)
    start = body.index(b"<CtrlSum>") + len(b"<CtrlSum>")
    end = body.index(b"</CtrlSum>", start)
    changed = Decimal(body[start:end].decode()) + Decimal(delta)
    if changed < 0:
        changed = Decimal(body[start:end].decode()) + 1
    root = parse_untrusted(body[:start] + format(changed, "f").encode() + body[end:])
    schemas.validate(root, pain001.VERSION)
    with pytest.raises(XmlRejected) as rejected:
        pain001.parse(root)
    assert (rejected.value.reason_code, rejected.value.path) == ("AM10", "GrpHdr/CtrlSum")

reasons = st.builds(
    pacs002.StatusReason, code=st.sampled_from(sorted(REASON_CODES)), additional_info=st.lists(text(105), max_size=2).map(tuple)
) | st.builds(pacs002.StatusReason, proprietary=text(35), additional_info=st.lists(text(105), max_size=2).map(tuple))
group_codes = optional(st.sampled_from(["ACCP", "ACSC", "ACSP", "ACTC", "PART", "PDNG", "RCVD", "RJCT"]))
tx_reports = st.builds(
    pain002.TransactionReport,
    status=st.sampled_from(list(pain002.TransactionStatus)),
    original_instruction_id=optional(text(35)),
    original_end_to_end_id=optional(text(35)),
    original_uetr=optional(uetrs),
    reasons=st.lists(reasons, max_size=2).map(tuple),
    accepted_at=optional(timestamps),
    original_amount=optional(amounts),
)
status_reports = st.builds(
    pain002.CustomerPaymentStatusReport,
    message_id=text(35),
    created_at=timestamps,
    group_status=st.builds(
        pain002.GroupStatus,
        original_message_id=text(35),
        original_created_at=optional(timestamps),
        original_tx_count=optional(st.integers(min_value=0, max_value=10**15 - 1)),
        original_control_sum=optional(amount_texts()),
        status=group_codes,
        reasons=st.lists(reasons, max_size=2).map(tuple),
    ),
    payment_instructions=st.lists(
        st.builds(
            pain002.PaymentInstructionStatus,
            original_payment_information_id=text(35),
            transactions=st.lists(tx_reports, max_size=3).map(tuple),
            original_tx_count=optional(st.integers(min_value=0, max_value=999)),
            original_control_sum=optional(amount_texts()),
            status=group_codes,
            reasons=st.lists(reasons, max_size=1).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
    initiating_party=optional(parties(35)),
)


@SETTINGS
@given(report=status_reports)
def test_pain002_round_trips(schemas: SchemaSet, report: pain002.CustomerPaymentStatusReport) -> None:
    assert pain002.parse(parse_untrusted(pain002.build_validated(report, schemas))) == report


assignments = st.builds(Assignment, message_id=text(35), created_at=timestamps, assigner=agents, assignee=agents)
parties_and_accounts = st.builds(
    PartyAndAccount, party=optional(parties(256)), account=optional(accounts(id_required=False)), agent=optional(agents)
)
ids = st.lists(text(35), min_size=1, max_size=5, unique=True)


@SETTINGS
@given(assignment=assignments, verification_ids=ids, data=st.data())
def test_acmt023_round_trips(
    schemas: SchemaSet, assignment: Assignment, verification_ids: list[str], data: st.DataObject
) -> None:
    request = acmt023.IdentificationVerificationRequest(
        assignment=assignment,
        verifications=tuple(acmt023.Verification(i, data.draw(parties_and_accounts)) for i in verification_ids),
    )
    assert acmt023.parse(parse_untrusted(acmt023.build_validated(request, schemas))) == request


verification_reports = st.builds(
    acmt024.VerificationReport,
    original_id=st.just(""),
    verified=st.booleans(),
    reason_code=optional(st.text(alphabet=UPPER + "0123456789", min_size=1, max_size=4)),
    reason_proprietary=st.none(),
    original_party_and_account=optional(parties_and_accounts),
    updated_party_and_account=optional(parties_and_accounts),
) | st.builds(acmt024.VerificationReport, original_id=st.just(""), verified=st.booleans(), reason_proprietary=text(35))


@SETTINGS
@given(
    assignment=assignments,
    original_ids=ids,
    original_message_id=optional(text(35)),
    original_created_at=optional(timestamps),
    data=st.data(),
)
def test_acmt024_round_trips(
    schemas: SchemaSet,
    assignment: Assignment,
    original_ids: list[str],
    original_message_id: str | None,
    original_created_at: datetime | None,
    data: st.DataObject,
) -> None:
    report = acmt024.IdentificationVerificationReport(
        assignment=assignment,
        reports=tuple(replace(data.draw(verification_reports), original_id=i) for i in original_ids),
        original_message_id=original_message_id,
        original_created_at=original_created_at,
    )
    assert acmt024.parse(parse_untrusted(acmt024.build_validated(report, schemas))) == report
