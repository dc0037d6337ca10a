"""build -> validate -> parse round trips for generated amounts and names."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iso20022 import pacs002, pacs008
from iso20022.model import Agent, Amount, BirthPlace, PartyIdentification, PostalAddress
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet

CREATED_AT = datetime(2025, 3, 10, 2, 30, tzinfo=timezone.utc)
NAME_LENGTH_MAX = 140  # Max140Text; checked against the XSD in test_names_round_trip
LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ &<>\"éèàüöçñÅØß"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

BASE = pacs008.CustomerCreditTransfer(
    message_id="M1",
    created_at=CREATED_AT,
    settlement=pacs008.Settlement(clearing_system_code="THN"),
    transactions=(
        pacs008.CreditTransfer(
            end_to_end_id="E1",
            uetr="4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e5a",
            settlement_amount=Amount("1", "KHR"),
            charge_bearer="SLEV",
            debtor=pacs008.Party(name="Debtor"),
            debtor_agent=Agent(bicfi="ACLBKHPPXXX"),
            creditor_agent=Agent(bicfi="KASITHBKXXX"),
            creditor=pacs008.Party(name="Creditor"),
        ),
    ),
)


def amount_texts() -> st.SearchStrategy[str]:
    """1 .. 10**18-1 minor units shown with 0 or 2 decimals (<= 18 digits, as the XSD allows)."""
    return st.tuples(st.integers(min_value=1, max_value=10**18 - 1), st.sampled_from([0, 2])).map(
        lambda pair: str(pair[0]) if pair[1] == 0 else f"{pair[0] // 100}.{pair[0] % 100:02d}"
    )


names = st.text(alphabet=LATIN, min_size=1, max_size=NAME_LENGTH_MAX)


@SETTINGS
@given(value=amount_texts(), currency=st.sampled_from(["KHR", "THB", "LAK", "VND", "USD"]), version=st.sampled_from(pacs008.VERSIONS))
def test_amounts_round_trip_exactly(schemas: SchemaSet, value: str, currency: str, version: str) -> None:
    tx = replace(BASE.transactions[0], settlement_amount=Amount(value, currency))
    message = replace(BASE, transactions=(tx,), total_settlement_amount=Amount(value, currency))
    parsed = pacs008.parse(parse_untrusted(pacs008.build_validated(message, version, schemas)))
    assert parsed.transactions[0].settlement_amount == Amount(value, currency)
    assert parsed == message


@SETTINGS
@given(debtor=names, creditor=names, version=st.sampled_from(pacs008.VERSIONS))
def test_names_round_trip(schemas: SchemaSet, debtor: str, creditor: str, version: str) -> None:
    assert schemas.text_max_length(version, "Max140Text") == NAME_LENGTH_MAX
    tx = replace(BASE.transactions[0], debtor=pacs008.Party(name=debtor), creditor=pacs008.Party(name=creditor))
    message = replace(BASE, transactions=(tx,))
    assert pacs008.parse(parse_untrusted(pacs008.build_validated(message, version, schemas))) == message


def _text(size_max: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=LATIN, min_size=1, max_size=size_max)


countries = st.sampled_from(["KH", "TH", "LA", "VN", "CN", "XK"])
addresses = st.builds(
    PostalAddress,
    country=countries,
    town=_text(35),
    street=st.none() | _text(70),
    building=st.none() | _text(16),
    post_code=st.none() | _text(16),
    subdivision=st.none() | _text(35),
    lines=st.lists(_text(70), max_size=2).map(tuple),
)
births = st.builds(BirthPlace, birth_date=st.dates(date(1900, 1, 1), date(2025, 12, 31)), city=_text(35), country=countries)
leis = st.from_regex(r"[A-Z0-9]{18}[0-9]{2}", fullmatch=True)


@st.composite
def parties(draw: st.DrawFn) -> pacs008.Party:
    """A party with a full PstlAdr and an Id: a person (birth, NIDN) or an organisation (LEI)."""
    address = draw(addresses)
    organisation = draw(st.booleans())
    national = draw(st.none() | st.builds(
        PartyIdentification, identifier=_text(35), scheme_code=st.just("NIDN"), issuer=st.none() | _text(35),
        organisation=st.just(organisation),
    ))
    return pacs008.Party(
        name=draw(_text(140)), country=address.country, address=address, identification=national,
        birth=None if organisation else draw(st.none() | births), lei=draw(leis) if organisation else None,
    )


@SETTINGS
@given(debtor=parties(), creditor=parties(), version=st.sampled_from(pacs008.VERSIONS))
def test_party_addresses_and_identification_round_trip(
    schemas: SchemaSet, debtor: pacs008.Party, creditor: pacs008.Party, version: str
) -> None:
    """Issue 12: PstlAdr (structured and hybrid), DtAndPlcOfBirth, Othr NIDN and LEI, in every version."""
    tx = replace(BASE.transactions[0], debtor=debtor, creditor=creditor)
    message = replace(BASE, transactions=(tx,))
    assert pacs008.parse(parse_untrusted(pacs008.build_validated(message, version, schemas))) == message


@SETTINGS
@given(
    status=st.sampled_from(list(pacs002.TransactionStatus)),
    info=st.lists(st.text(alphabet=LATIN, min_size=1, max_size=105), max_size=3),
    count=st.integers(min_value=1, max_value=4),
)
def test_pacs002_round_trips(schemas: SchemaSet, status: pacs002.TransactionStatus, info: list[str], count: int) -> None:
    reasons = (pacs002.StatusReason("NARR", tuple(info)),) if status is pacs002.TransactionStatus.RJCT else ()
    report = pacs002.PaymentStatusReport(
        message_id="S1",
        created_at=CREATED_AT,
        transactions=tuple(
            pacs002.TransactionReport(status=status, original_end_to_end_id=f"E{n}", reasons=reasons)
            for n in range(count)
        ),
    )
    assert pacs002.parse(parse_untrusted(pacs002.build_validated(report, schemas))) == report
