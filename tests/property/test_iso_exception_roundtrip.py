"""Random valid models -> XML valid against the official XSD -> parse gives the same model.

For pacs.028.001.03, pacs.004.001.10, camt.056.001.08/.12, camt.029.001.09/.14 and admi.002.001.01.
Text sizes come from the XSD facets (checked in test_text_limits_match_the_xsd).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iso20022 import admi002, camt029, camt056, pacs004, pacs028
from iso20022.model import Agent, Amount, ClearingSystemMember
from iso20022.pacs002 import OriginalGroup
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ &<>\"éèàüöçñÅØß"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ALNUM = UPPER + "0123456789"
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:  # type: ignore[type-arg]
    return st.none() | strategy


def text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=LATIN, min_size=1, max_size=max_size)


ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=35)  # Max35Text
uetrs = st.uuids(version=4).map(str)  # UUIDv4Identifier
reason_codes = st.text(alphabet=UPPER, min_size=4, max_size=4)  # External*Reason1Code: 1..4
additional_info = st.lists(text(105), max_size=3).map(tuple)  # Max105Text
currencies = st.sampled_from(["KHR", "THB", "LAK", "VND", "USD", "MYR"])
countries = st.text(alphabet=UPPER, min_size=2, max_size=2)
timestamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from(
    [timezone.utc, timezone(timedelta(hours=7)), timezone(timedelta(hours=5, minutes=45))]
))
dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1))


def decimal_text(integer_digits: int, fraction_digits: tuple[int, ...]) -> st.SearchStrategy[str]:
    """Decimal text with up to integer_digits before the point and one of fraction_digits after it."""
    return st.tuples(
        st.integers(min_value=0, max_value=10**integer_digits - 1), st.sampled_from(fraction_digits), st.integers(min_value=0)
    ).map(lambda t: str(t[0]) if t[1] == 0 else f"{t[0]}.{t[2] % 10**t[1]:0{t[1]}d}")


# ActiveOrHistoricCurrencyAndAmount: 18 digits, 5 of them fraction digits at most
amounts = st.builds(Amount, decimal_text(13, (0, 2, 5)), currencies)
# BaseOneRate: 11 digits, 10 of them fraction digits at most
exchange_rates = decimal_text(1, (0, 4, 10)) | decimal_text(6, (0, 5))
bics = st.builds(  # BICFIDec2014Identifier
    lambda bank, country, location, branch: bank + country + location + branch,
    st.text(alphabet=ALNUM, min_size=4, max_size=4), countries, st.text(alphabet=ALNUM, min_size=2, max_size=2),
    st.sampled_from(["", "XXX"]),
)
members = st.builds(
    ClearingSystemMember, member_id=ids, system_code=optional(st.text(alphabet=UPPER, min_size=1, max_size=5))
) | st.builds(ClearingSystemMember, member_id=ids, system_proprietary=ids)
agents = st.builds(Agent, bicfi=optional(bics), clearing_member=optional(members), country=optional(countries))
originals = st.builds(
    OriginalGroup,
    message_id=ids,
    message_name_id=st.sampled_from(["pacs.008.001.08", "pacs.008.001.13", "pacs.004.001.10"]),
    created_at=optional(timestamps),
)
# (reason_code, reason_proprietary): a code, a proprietary code, or neither
reasons = st.tuples(reason_codes, st.none()) | st.tuples(st.none(), ids) | st.just((None, None))

status_requests = st.builds(
    pacs028.StatusRequest,
    message_id=ids,
    created_at=timestamps,
    transactions=st.lists(st.builds(
        pacs028.StatusRequestTx,
        status_request_id=ids,
        original_group=originals,
        original_instruction_id=optional(ids),
        original_end_to_end_id=optional(ids),
        original_tx_id=optional(ids),
        original_uetr=optional(uetrs),
    ), max_size=3).map(tuple),
    instructing_agent=optional(agents),
    instructed_agent=optional(agents),
)


@st.composite
def return_transactions(draw: st.DrawFn) -> pacs004.ReturnTx:
    code, proprietary = draw(reasons)
    return pacs004.ReturnTx(
        return_id=draw(ids),
        returned_amount=draw(amounts),
        original_group=draw(optional(originals)),
        original_instruction_id=draw(optional(ids)),
        original_end_to_end_id=draw(optional(ids)),
        original_tx_id=draw(optional(ids)),
        original_uetr=draw(optional(uetrs)),
        original_settlement_amount=draw(optional(amounts)),
        settlement_date=draw(optional(dates)),
        returned_instructed_amount=draw(optional(amounts)),
        exchange_rate=draw(optional(exchange_rates)),
        charge_bearer=draw(optional(st.sampled_from(["DEBT", "CRED", "SHAR", "SLEV"]))),
        reason_code=code,
        reason_proprietary=proprietary,
        additional_info=draw(additional_info),
        instructing_agent=draw(optional(agents)),
        instructed_agent=draw(optional(agents)),
    )


@st.composite
def payment_returns(draw: st.DrawFn) -> pacs004.PaymentReturn:
    clearing = draw(st.sampled_from(["code", "proprietary", "none"]))
    return pacs004.PaymentReturn(
        message_id=draw(ids),
        created_at=draw(timestamps),
        transactions=tuple(draw(st.lists(return_transactions(), max_size=3))),
        settlement_method=draw(st.sampled_from(["CLRG", "INDA", "INGA"])),
        # ExternalCashClearingSystem1Code: 1..3
        clearing_system_code=draw(st.text(alphabet=UPPER, min_size=1, max_size=3)) if clearing == "code" else None,
        clearing_system_proprietary=draw(ids) if clearing == "proprietary" else None,
        instructing_agent=draw(optional(agents)),
        instructed_agent=draw(optional(agents)),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[str | None, Agent | None]:
    return draw(st.just((None, None)) | st.tuples(ids, agents))


@st.composite
def cancellation_transactions(draw: st.DrawFn) -> camt056.CancellationTx:
    code, proprietary = draw(reasons)
    return camt056.CancellationTx(
        cancellation_id=draw(ids),
        original_group=draw(optional(originals)),
        original_instruction_id=draw(optional(ids)),
        original_end_to_end_id=draw(optional(ids)),
        original_tx_id=draw(optional(ids)),
        original_uetr=draw(optional(uetrs)),
        original_settlement_amount=draw(optional(amounts)),
        original_settlement_date=draw(optional(dates)),
        reason_code=code,
        reason_proprietary=proprietary,
        additional_info=draw(additional_info),
    )


@st.composite
def cancellation_requests(draw: st.DrawFn) -> camt056.CancellationRequest:
    case_id, creator = draw(cases())
    return camt056.CancellationRequest(
        assignment_id=draw(ids),
        created_at=draw(timestamps),
        assigner=draw(agents),
        assignee=draw(agents),
        transactions=tuple(draw(st.lists(cancellation_transactions(), max_size=3))),
        case_id=case_id,
        case_creator=creator,
    )


@st.composite
def cancellation_statuses(draw: st.DrawFn) -> camt029.CancellationStatus:
    code, proprietary = draw(reasons)
    return camt029.CancellationStatus(
        cancellation_status_id=draw(optional(ids)),
        original_group=draw(optional(originals)),
        original_instruction_id=draw(optional(ids)),
        original_end_to_end_id=draw(optional(ids)),
        original_tx_id=draw(optional(ids)),
        original_uetr=draw(optional(uetrs)),
        status=draw(optional(st.sampled_from(["ACCR", "RJCR", "PDCR"]))),
        reason_code=code,
        reason_proprietary=proprietary,
        additional_info=draw(additional_info),
    )


@st.composite
def resolutions(draw: st.DrawFn) -> camt029.Resolution:
    case_id, creator = draw(cases())
    return camt029.Resolution(
        assignment_id=draw(ids),
        created_at=draw(timestamps),
        assigner=draw(agents),
        assignee=draw(agents),
        status=draw(st.sampled_from(["CNCL", "RJCR", "PDCR"]) | reason_codes),
        transactions=tuple(draw(st.lists(cancellation_statuses(), max_size=3))),
        case_id=case_id,
        case_creator=creator,
    )


message_rejects = st.builds(
    admi002.MessageReject,
    reference=ids,
    reason_code=ids,
    rejected_at=optional(timestamps),
    description=optional(text(350)),
    additional_data=optional(text(2000)),
)


def test_text_limits_match_the_xsd(schemas: SchemaSet) -> None:
    for version in (pacs028.VERSION, pacs004.VERSION, *camt056.VERSIONS, *camt029.VERSIONS, admi002.VERSION):
        assert schemas.text_max_length(version, "Max35Text") == 35
    for version in (pacs004.VERSION, *camt056.VERSIONS, *camt029.VERSIONS):
        assert schemas.text_max_length(version, "Max105Text") == 105
    assert schemas.text_max_length(pacs004.VERSION, "ExternalCashClearingSystem1Code") == 3
    assert schemas.text_max_length(admi002.VERSION, "Max350Text") == 350
    assert schemas.text_max_length(admi002.VERSION, "Max20000Text") == 20000


@SETTINGS
@given(message=status_requests)
def test_pacs028_round_trips(schemas: SchemaSet, message: pacs028.StatusRequest) -> None:
    assert pacs028.parse(parse_untrusted(pacs028.build_validated(message, schemas))) == message


@SETTINGS
@given(message=payment_returns())
def test_pacs004_round_trips(schemas: SchemaSet, message: pacs004.PaymentReturn) -> None:
    assert pacs004.parse(parse_untrusted(pacs004.build_validated(message, schemas))) == message


@SETTINGS
@given(message=cancellation_requests(), version=st.sampled_from(camt056.VERSIONS))
def test_camt056_round_trips(schemas: SchemaSet, message: camt056.CancellationRequest, version: str) -> None:
    assert camt056.parse(parse_untrusted(camt056.build_validated(message, schemas, version))) == message


@SETTINGS
@given(message=resolutions(), version=st.sampled_from(camt029.VERSIONS))
def test_camt029_round_trips(schemas: SchemaSet, message: camt029.Resolution, version: str) -> None:
    assert camt029.parse(parse_untrusted(camt029.build_validated(message, schemas, version))) == message


@SETTINGS
@given(message=message_rejects)
def test_admi002_round_trips(schemas: SchemaSet, message: admi002.MessageReject) -> None:
    assert admi002.parse(parse_untrusted(admi002.build_validated(message, schemas))) == message
