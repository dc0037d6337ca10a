"""Money round trips and exact-or-reject parsing, for every currency (STYLE §2, §10)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.domain.money import CURRENCIES, AmountError, Currency, Money, amount_minor_max

currencies = st.sampled_from(sorted(CURRENCIES.values(), key=lambda c: c.code))
amounts_minor = st.integers(min_value=0, max_value=amount_minor_max)
SETTINGS = settings(max_examples=300, deadline=None)


def step_minor(currency: Currency) -> int:
    """Minor units in one step of the decimals the corridors accept (KHR: 100, THB: 1, VND: 1)."""
    return 10 ** (currency.exponent - currency.decimals_accepted_max)


@SETTINGS
@given(amounts_minor, currencies)
def test_to_text_parses_back_when_the_currency_accepts_those_decimals(n: int, currency: Currency) -> None:
    money = Money(n, currency)
    text = money.to_text()
    if n == 0:
        with pytest.raises(AmountError) as exc:
            Money.parse(text, currency.code)
        assert exc.value.reason_code == "AM09"
    elif n % step_minor(currency) == 0:
        assert Money.parse(text, currency.code) == money
        assert Money.parse(money.to_text(currency.decimals_accepted_max), currency.code) == money
    else:
        with pytest.raises(AmountError) as exc:
            Money.parse(text, currency.code)
        assert exc.value.reason_code == "CH20"


@SETTINGS
@given(amounts_minor, currencies)
def test_to_text_has_exactly_exponent_decimals(n: int, currency: Currency) -> None:
    text = Money(n, currency).to_text()
    whole, _, fraction = text.partition(".")
    assert len(fraction) == currency.exponent
    assert int(whole + fraction) == n  # no digit is lost or invented


@SETTINGS
@given(
    currencies,
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=1, max_value=5),  # extra places beyond what the currency accepts
    st.data(),
)
def test_more_places_than_accepted_is_ch20(currency: Currency, whole: int, extra: int, data: st.DataObject) -> None:
    places = currency.decimals_accepted_max + extra
    fraction = data.draw(st.integers(min_value=0, max_value=10**places - 1).filter(lambda f: f % 10**extra != 0))
    text = f"{whole}.{fraction:0{places}d}"
    with pytest.raises(AmountError) as exc:
        Money.parse(text, currency.code)
    assert exc.value.reason_code == "CH20", text


@SETTINGS
@given(currencies, st.integers(min_value=1, max_value=10**12), st.integers(min_value=1, max_value=5))
def test_trailing_zeros_never_change_the_amount(currency: Currency, units: int, zeros: int) -> None:
    money = Money(units * step_minor(currency), currency)
    padded = money.to_text(currency.decimals_accepted_max + zeros)
    assert padded.endswith("0" * zeros)
    assert Money.parse(padded, currency.code) == money


@SETTINGS
@given(currencies, st.integers(min_value=1, max_value=amount_minor_max), st.integers(min_value=1, max_value=amount_minor_max))
def test_order_follows_the_amount_within_a_currency(currency: Currency, a: int, b: int) -> None:
    assert (Money(a, currency) < Money(b, currency)) == (a < b)
    assert (Money(a, currency).to_decimal() < Money(b, currency).to_decimal()) == (a < b)
