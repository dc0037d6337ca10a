"""Money: exact parsing per currency, never rounded (STYLE §2, PARTNERS.md "Currencies")."""

from __future__ import annotations

import pytest

from switch.domain.money import CURRENCIES, AmountError, Money, amount_minor_max, currency

KHR, THB, LAK, VND, CNY, USD = (CURRENCIES[c] for c in ("KHR", "THB", "LAK", "VND", "CNY", "USD"))


def _reason(text: object, code: str) -> str:
    with pytest.raises(AmountError) as exc:
        Money.parse(text, code)  # type: ignore[arg-type]
    return exc.value.reason_code


@pytest.mark.parametrize(
    ("text", "code", "amount_minor"),
    [
        ("150000", "KHR", 15_000_000),  # integer riel, stored at the ISO exponent (2)
        ("200000", "LAK", 20_000_000),
        ("1650.25", "THB", 165_025),
        ("1650.2", "THB", 165_020),
        ("0.01", "THB", 1),
        ("2500000", "VND", 2_500_000),  # exponent 0: minor unit == dong
        ("88.80", "CNY", 8_880),
        ("12.5", "USD", 1_250),
        ("  42  ", "USD", 4_200),
    ],
)
def test_parse_lands_exactly_on_the_currency_minor_unit(text: str, code: str, amount_minor: int) -> None:
    assert Money.parse(text, code) == Money(amount_minor, CURRENCIES[code])


@pytest.mark.parametrize(("text", "code"), [("1500.5", "KHR"), ("1.005", "THB"), ("10.5", "VND"), ("1.5", "LAK"), ("0.001", "USD")])
def test_more_decimals_than_the_currency_accepts_is_ch20_not_rounded(text: str, code: str) -> None:
    assert _reason(text, code) == "CH20"


@pytest.mark.parametrize(("text", "code", "amount_minor"), [("150000.00", "KHR", 15_000_000), ("10.000", "VND", 10), ("1.50000", "THB", 150)])
def test_trailing_zeros_beyond_the_accepted_decimals_are_accepted(text: str, code: str, amount_minor: int) -> None:
    assert Money.parse(text, code).amount_minor == amount_minor


@pytest.mark.parametrize("text", ["", "abc", "12,50", "1.2.3", "NaN", "Infinity", "-inf", "0x10", None, 1500])
def test_text_that_is_not_a_finite_decimal_is_ff01(text: object) -> None:
    assert _reason(text, "THB") == "FF01"


@pytest.mark.parametrize("text", ["0", "0.00", "-0", "-1", "-150000"])
def test_zero_or_negative_amount_is_am09(text: str) -> None:
    assert _reason(text, "KHR") == "AM09"


def test_amount_above_the_xsd_total_digits_is_am09() -> None:
    assert _reason("10000000000000000", "THB") == "AM09"  # 10**16 baht = 10**18 satang > amount_minor_max


@pytest.mark.parametrize(
    ("text", "code", "amount_minor"),
    [("9999999999999999.99", "THB", amount_minor_max), ("999999999999999999", "VND", amount_minor_max), ("9999999999999999", "KHR", amount_minor_max - 99)],
)
def test_the_largest_amount_inside_the_xsd_total_digits_parses(text: str, code: str, amount_minor: int) -> None:
    assert Money.parse(text, code).amount_minor == amount_minor


def test_amount_too_large_for_the_decimal_context_is_an_amount_error_not_a_crash() -> None:
    # Regression: quantize needed more than Decimal's default 28 digits and raised
    # decimal.InvalidOperation instead of the documented AmountError.
    assert _reason("1E+30", "THB") == "AM09"


@pytest.mark.parametrize("code", ["XXX", "thb", "EUR", ""])
def test_unknown_currency_is_curr(code: str) -> None:
    assert _reason("100", code) == "CURR"
    with pytest.raises(AmountError) as exc:
        currency(code)
    assert exc.value.reason_code == "CURR"


def test_to_text_defaults_to_the_iso_exponent() -> None:
    assert Money(15_000_000, KHR).to_text() == "150000.00"
    assert Money(165_025, THB).to_text() == "1650.25"
    assert Money(2_500_000, VND).to_text() == "2500000"
    assert Money(1, USD).to_text() == "0.01"


def test_to_text_pads_or_drops_zero_decimals_on_request() -> None:
    assert Money(15_000_000, KHR).to_text(0) == "150000"
    assert Money(165_020, THB).to_text(5) == "1650.20000"
    assert Money(7, VND).to_text(2) == "7.00"


def test_to_text_with_fewer_decimals_than_carried_raises() -> None:
    with pytest.raises(ValueError, match="does not fit 0 decimals"):
        Money(15_000_050, KHR).to_text(0)
    with pytest.raises(ValueError):
        Money(165_025, THB).to_text(1)


def test_str_shows_amount_and_currency() -> None:
    assert str(Money(165_025, THB)) == "1650.25 THB"


@pytest.mark.parametrize("amount_minor", [1500.0, 1.5, "1500", True])
def test_amount_minor_must_be_a_real_int(amount_minor: object) -> None:
    with pytest.raises(TypeError):
        Money(amount_minor, THB)  # type: ignore[arg-type]


@pytest.mark.parametrize("amount_minor", [-1, amount_minor_max + 1])
def test_amount_minor_outside_the_xsd_range_is_am09(amount_minor: int) -> None:
    with pytest.raises(AmountError) as exc:
        Money(amount_minor, THB)
    assert exc.value.reason_code == "AM09"


def test_amount_minor_bounds_are_inclusive() -> None:
    assert Money(0, THB).amount_minor == 0
    assert Money(amount_minor_max, THB).to_text() == "9999999999999999.99"


def test_money_is_frozen_and_compares_by_value() -> None:
    m = Money(100, THB)
    assert m == Money(100, CURRENCIES["THB"]) and m != Money(100, CNY)
    with pytest.raises(AttributeError):
        m.amount_minor = 5  # type: ignore[misc]


def test_currency_table_matches_iso_4217_and_corridor_practice() -> None:
    # PARTNERS.md "Currencies": code, numeric, ISO exponent, and what corridors accept.
    assert {c.code: (c.numeric, c.exponent, c.decimals_accepted_max) for c in CURRENCIES.values()} == {
        "KHR": ("116", 2, 0),
        "THB": ("764", 2, 2),
        "LAK": ("418", 2, 0),
        "VND": ("704", 0, 0),
        "CNY": ("156", 2, 2),
        "USD": ("840", 2, 2),
    }
