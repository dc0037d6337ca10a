"""The compliance data rules of issue 12 (switch/domain/compliance.py): each datum a profile
requires, missing, is refused with its ISO reason (RR01-RR03) and a detail naming it; present, the
payment passes; the threshold holds at and not below it, in the amount's currency; a currency the
profile has no threshold for is treated as above it; an address without town or country is none."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from switch.domain.compliance import Need, Requirements, has_address, has_identification, missing_data
from switch.domain.instruction import Reject
from switch.domain.money import Money
from switch.domain.payment import Identification, Party, PostalAddress

ADDRESS = PostalAddress(country="KH", town="Phnom Penh", street="Preah Norodom Blvd", building="12")
DEBTOR = Party(name="Sok Dara", account="sok_dara@aclb", address=ADDRESS)
CREDITOR = Party(name="Somchai Jaidee", account="1234567890", address=PostalAddress(country="TH", town="Bangkok"))

# FATF R16 as shipped, with USD and KHR thresholds only (THB is left without one on purpose)
R16 = Requirements(
    name="fatf_r16",
    debtor=frozenset({Need.NAME, Need.ACCOUNT}),
    creditor=frozenset({Need.NAME, Need.ACCOUNT}),
    debtor_above=frozenset({Need.ADDRESS_OR_IDENTIFICATION}),
    threshold_minor={"USD": 100_000, "KHR": 406_500_000},
)
ALL = Requirements(
    name="everything",
    debtor=frozenset({Need.NAME, Need.ACCOUNT, Need.ADDRESS, Need.IDENTIFICATION}),
    creditor=frozenset({Need.NAME, Need.ACCOUNT, Need.ADDRESS}),
)
USD_1000 = Money.parse("1000.00", "USD")
ID = Identification(national_id="010203040", national_id_issuer="KH")


def code(result: Reject | None) -> str | None:
    return None if result is None else result.reason_code


def test_a_payment_with_every_datum_passes_the_strictest_profile() -> None:
    assert missing_data(ALL, replace(DEBTOR, identification=ID), CREDITOR, USD_1000) is None


def test_no_profile_requires_nothing() -> None:
    assert missing_data(None, Party(name=""), Party(name=""), USD_1000) is None


@pytest.mark.parametrize(
    ("debtor", "creditor", "expected", "names"),
    [
        (replace(DEBTOR, account=None), CREDITOR, "RR01", "debtor's account"),
        (replace(DEBTOR, account="-"), CREDITOR, "RR01", "debtor's account"),  # the inbound placeholder for none
        (DEBTOR, CREDITOR, "RR01", "debtor's identification"),
        (replace(DEBTOR, name=" ", identification=ID), CREDITOR, "RR02", "debtor's name"),
        (replace(DEBTOR, address=None, identification=ID), CREDITOR, "RR02", "debtor's address"),
        (replace(DEBTOR, identification=ID), replace(CREDITOR, name=""), "RR03", "creditor's name"),
        (replace(DEBTOR, identification=ID), replace(CREDITOR, address=None), "RR03", "creditor's address"),
        (replace(DEBTOR, identification=ID), replace(CREDITOR, account=None), "RR03", "creditor's account"),
    ],
    ids=["debtor-account", "debtor-account-dash", "debtor-id", "debtor-name", "debtor-address", "creditor-name",
         "creditor-address", "creditor-account"],
)
def test_each_missing_datum_is_refused_with_its_code_and_named(debtor: Party, creditor: Party, expected: str, names: str) -> None:
    refused = missing_data(ALL, debtor, creditor, USD_1000)
    assert refused is not None and refused.reason_code == expected
    assert names in refused.detail and "profile everything" in refused.detail


def test_a_creditor_proxy_stands_for_its_account() -> None:
    proxied = Party(name="Somchai Jaidee", proxy_type="MOBILE", proxy="0066812345678", address=CREDITOR.address)
    assert missing_data(ALL, replace(DEBTOR, identification=ID), proxied, USD_1000) is None


@pytest.mark.parametrize(
    "address",
    [PostalAddress(country="KH"), PostalAddress(country="KH", town="  "), PostalAddress(country="", town="Phnom Penh"),
     PostalAddress(country="KH", lines=("12 Preah Norodom Blvd", "Phnom Penh"))],
    ids=["country-only", "blank-town", "no-country", "lines-only"],
)
def test_an_address_without_town_or_country_counts_as_none(address: PostalAddress) -> None:
    assert not has_address(address)
    refused = missing_data(ALL, replace(DEBTOR, address=address, identification=ID), CREDITOR, USD_1000)
    assert code(refused) == "RR02"


@pytest.mark.parametrize(
    ("ident", "enough"),
    [
        (Identification(national_id="010203040", national_id_issuer="KH"), True),
        (Identification(national_id="010203040"), False),  # an id without its issuer
        (Identification(birth_date=date(1990, 1, 2), birth_city="Siem Reap", birth_country="KH"), True),
        (Identification(birth_date=date(1990, 1, 2)), False),  # a date without its place
        (Identification(lei="5493001KJTIIGC8Y1R12"), True),
        (Identification(), False),
    ],
    ids=["national-id", "id-without-issuer", "birth", "birth-without-place", "lei", "empty"],
)
def test_identification_is_a_national_id_with_issuer_or_birth_date_and_place_or_an_lei(ident: Identification, enough: bool) -> None:
    assert has_identification(ident) is enough


# ------------------------------------------------------------------ FATF R16 and its threshold


def test_r16_below_the_threshold_asks_name_and_account_only() -> None:
    bare = Party(name="Sok Dara", account="sok_dara@aclb")
    assert missing_data(R16, bare, Party(name="Somchai", account="123"), Money.parse("999.99", "USD")) is None


def test_r16_at_the_threshold_refuses_a_debtor_without_address_or_identification_rr02() -> None:
    bare = Party(name="Sok Dara", account="sok_dara@aclb")
    refused = missing_data(R16, bare, Party(name="Somchai", account="123"), USD_1000)
    assert refused is not None and refused.reason_code == "RR02"
    assert "address" in refused.detail and "identification" in refused.detail and "at or above 1000.00 USD" in refused.detail


@pytest.mark.parametrize("debtor", [replace(DEBTOR, identification=None), replace(DEBTOR, address=None, identification=ID)],
                         ids=["address", "identification"])
def test_r16_above_the_threshold_takes_an_address_or_an_identification(debtor: Party) -> None:
    assert missing_data(R16, debtor, Party(name="Somchai", account="123"), Money.parse("5000.00", "USD")) is None


def test_r16_threshold_is_in_the_amounts_currency() -> None:
    bare = Party(name="Sok Dara", account="sok_dara@aclb")
    creditor = Party(name="Somchai", account="123")
    assert missing_data(R16, bare, creditor, Money.parse("4064999", "KHR")) is None
    assert code(missing_data(R16, bare, creditor, Money.parse("4065000", "KHR"))) == "RR02"


def test_a_currency_without_a_threshold_counts_as_above_it() -> None:
    bare = Party(name="Sok Dara", account="sok_dara@aclb")
    refused = missing_data(R16, bare, Party(name="Somchai", account="123"), Money.parse("1.00", "THB"))
    assert refused is not None and refused.reason_code == "RR02" and "no THB threshold" in refused.detail


def test_r16_below_the_threshold_still_refuses_a_missing_account() -> None:
    refused = missing_data(R16, Party(name="Sok Dara"), Party(name="Somchai", account="123"), Money.parse("1.00", "USD"))
    assert code(refused) == "RR01"


def test_a_creditor_cannot_be_required_an_identification() -> None:
    with pytest.raises(ValueError, match="creditor cannot be required identification"):
        Requirements(name="bad", creditor=frozenset({Need.IDENTIFICATION}))
