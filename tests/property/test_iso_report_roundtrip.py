"""Random settlement report pages -> XML valid against the official XSD -> read_report gives the
same header and entries, for camt.053.001.08 and camt.054.001.08.

Text sizes follow the XSD facets: Max35Text ids, Max34Text account ids, 1-4 character external
codes, ActiveOrHistoricCurrencyAndAmount (18 digits, 5 of them fraction digits, not negative).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iso20022.model import Amount
from iso20022.parsing import parse_untrusted
from iso20022.reports import REPORT_VERSIONS, ReportEntry, ReportHeader, build_report, read_report
from iso20022.schemas import SchemaSet

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/"
LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ &<>\"éèàüöçñÅØß"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ALNUM = UPPER + "0123456789"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:  # type: ignore[type-arg]
    return st.none() | strategy


def text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=LATIN, min_size=1, max_size=max_size)


ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=35) | text(35)  # Max35Text
uetrs = st.uuids(version=4).map(str)  # UUIDv4Identifier
codes = st.text(alphabet=ALNUM, min_size=1, max_size=4)  # External*1Code: 1..4
currencies = st.sampled_from(["KHR", "THB", "LAK", "VND", "USD", "CNY"])
timestamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)) | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=7)), timezone(timedelta(hours=5, minutes=45))]),
)
dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1))
bics = st.builds(  # BICFIDec2014Identifier
    lambda bank, country, location, branch: bank + country + location + branch,
    st.text(alphabet=ALNUM, min_size=4, max_size=4), st.text(alphabet=UPPER, min_size=2, max_size=2),
    st.text(alphabet=ALNUM, min_size=2, max_size=2), st.sampled_from(["", "XXX"]),
)


def decimal_text(integer_digits: int, fraction_digits: tuple[int, ...]) -> st.SearchStrategy[str]:
    return st.tuples(
        st.integers(min_value=0, max_value=10**integer_digits - 1), st.sampled_from(fraction_digits), st.integers(min_value=0)
    ).map(lambda t: str(t[0]) if t[1] == 0 else f"{t[0]}.{t[2] % 10**t[1]:0{t[1]}d}")


amounts = st.builds(Amount, decimal_text(13, (0, 2, 5)), currencies)
bank_tx_codes = st.builds(lambda d, f, s: f"{d}/{f}/{s}", codes, codes, codes) | ids  # Domn, or Prtry/Cd


@st.composite
def headers(draw: st.DrawFn, version: str, entries_total: int | None) -> ReportHeader:
    period = draw(st.booleans())
    period_from = draw(timestamps) if period else None
    return ReportHeader(
        message_type=version,
        message_id=draw(ids),
        created_at=draw(timestamps),
        report_id=draw(ids),
        page_no=draw(st.integers(min_value=1, max_value=99_999)),  # Max5NumericText
        last_page=draw(st.booleans()),
        account_id=draw(st.text(alphabet=ID_ALPHABET, min_size=1, max_size=34)),  # Max34Text
        currency=draw(currencies),
        period_from=period_from,
        period_to=(period_from + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)))) if period_from else None,
        sequence_no=draw(optional(st.integers(min_value=0, max_value=10**18 - 1))),  # Number: 18 digits
        entries_total=entries_total,
        servicer=draw(optional(bics | ids)),
    )


@st.composite
def report_entries(draw: st.DrawFn) -> ReportEntry:
    is_return = draw(st.booleans())
    return ReportEntry(
        amount=draw(amounts),
        credit=draw(st.booleans()),
        status=draw(st.sampled_from(["BOOK", "PDNG", "INFO", "FUTR"]) | codes),
        booking_date=draw(optional(dates)),
        value_date=draw(optional(dates)),
        entry_ref=draw(optional(ids)),
        account_servicer_ref=draw(optional(ids)),
        bank_tx_code=draw(optional(bank_tx_codes)),
        uetr=draw(optional(uetrs)),
        end_to_end_id=draw(optional(ids)),
        tx_id=draw(optional(ids)),
        message_id=draw(optional(ids)),
        is_return=is_return,
        return_reason=draw(optional(codes)) if is_return else None,
    )


@st.composite
def pages(draw: st.DrawFn) -> tuple[ReportHeader, list[ReportEntry]]:
    entries = draw(st.lists(report_entries(), max_size=6))
    total = draw(st.sampled_from([None, len(entries)]))
    return draw(headers(draw(st.sampled_from(REPORT_VERSIONS)), total)), entries


@SETTINGS
@given(page=pages())
def test_built_pages_validate_and_read_back_the_same(schemas: SchemaSet, page: tuple[ReportHeader, list[ReportEntry]]) -> None:
    header, entries = page
    data = build_report(header, entries)
    schemas.validate(parse_untrusted(data), header.message_type)  # SchemaViolation otherwise
    reader = read_report(data, schemas)
    assert reader.header == header
    assert list(reader) == entries
