"""Properties of conversion and quoting, checked against exact fractions computed here."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from fractions import Fraction
from pathlib import Path

from hypothesis import assume, given
from hypothesis import strategies as st

from fx.config import load_fx_config
from fx.convert import ROUNDINGS, convert, to_base_one_rate
from fx.errors import AmountTooSmall
from fx.quote import FixedSide, Quoter, customer_rate
from switch.domain.money import CURRENCIES, Currency, Money, amount_minor_max

BOOK = load_fx_config(Path(__file__).resolve().parents[2] / "config" / "fx.toml").rate_book()
QUOTER = Quoter(BOOK)
NOW = datetime(2026, 1, 1, tzinfo=UTC)

currencies = st.sampled_from(sorted(CURRENCIES.values(), key=lambda c: c.code))
units = st.integers(min_value=1, max_value=10**12)  # whole steps of the accepted decimals
spreads_bps = st.integers(min_value=0, max_value=500)
# rates from 1e-8 to 1e5 with up to 12 significant digits
rates = st.builds(
    lambda digits, shift: Decimal(digits).scaleb(-shift),
    st.integers(min_value=1, max_value=10**12 - 1),
    st.integers(min_value=0, max_value=20),
).filter(lambda r: Decimal("1e-8") <= r <= Decimal("1e5"))


def step_minor(currency: Currency) -> int:
    return 10 ** (currency.exponent - currency.decimals_accepted_max)


def money(n_units: int, currency: Currency) -> Money:
    return Money(n_units * step_minor(currency), currency)


def value(amount: Money) -> Fraction:
    return Fraction(amount.amount_minor, 10**amount.currency.exponent)


def step(currency: Currency) -> Fraction:
    return Fraction(1, 10**currency.decimals_accepted_max)


def expected_rates(source: Currency, target: Currency, spread_bps: int) -> tuple[Decimal, Decimal]:
    if source == target:
        return Decimal(1), Decimal(1)
    mid = BOOK.rate(source.code, target.code, now=NOW).mid
    return mid, customer_rate(mid, spread_bps)


@given(units, currencies, rates, currencies, st.sampled_from(sorted(ROUNDINGS)))
def test_convert_lands_on_the_target_grid_within_one_step(
    n: int, source: Currency, rate: Decimal, target: Currency, rounding: str
) -> None:
    amount = money(n, source)
    exact = value(amount) * Fraction(rate)
    assume(exact * 10**target.exponent <= amount_minor_max - step_minor(target))  # overflow: a unit test
    result = convert(amount, rate, target, rounding=rounding)
    assert result.currency == target
    assert result.amount_minor % step_minor(target) == 0  # never more decimals than target accepts
    assert abs(value(result) - exact) < step(target)
    if rounding == ROUND_DOWN:
        assert value(result) <= exact < value(result) + step(target)
    if rounding == ROUND_UP:
        assert value(result) - step(target) < exact <= value(result)


@given(rates)
def test_base_one_rate_is_the_largest_fitting_rate_not_above(rate: Decimal) -> None:
    result = to_base_one_rate(rate)
    _, digits, exponent = result.as_tuple()
    assert isinstance(exponent, int)
    fraction_digits = -exponent
    assert fraction_digits <= 10 and len(digits) <= 11
    assert result <= rate < result + Decimal(1).scaleb(exponent)


@given(units, currencies, currencies, spreads_bps)
def test_quote_for_source_never_gives_more_than_mid_and_reproduces_its_target(
    n: int, source_currency: Currency, target_currency: Currency, spread_bps: int
) -> None:
    source = money(n, source_currency)
    mid, rate = expected_rates(source_currency, target_currency, spread_bps)
    expected_units = math.floor(value(source) * Fraction(rate) / step(target_currency))
    try:
        quote = QUOTER.quote_for_source(
            source, target_currency, now=NOW, corridor_fee=None, spread_bps=spread_bps, validity_s=600, quote_id="p"
        )
    except AmountTooSmall:
        assert expected_units == 0
        return
    assert quote.fixed_side is FixedSide.SOURCE and quote.source == source
    assert quote.customer_rate == rate and quote.mid_rate == mid
    assert value(quote.target) <= value(source) * Fraction(quote.mid_rate)
    assert quote.target == money(expected_units, target_currency)  # target = ROUND_DOWN(source × XchgRate)
    assert quote.fee == Money(0, source_currency)


@given(units, currencies, currencies, spreads_bps)
def test_quote_for_target_never_charges_less_than_mid_and_charges_the_least_source(
    n: int, target_currency: Currency, source_currency: Currency, spread_bps: int
) -> None:
    target = money(n, target_currency)
    quote = QUOTER.quote_for_target(
        target, source_currency, now=NOW, corridor_fee=None, spread_bps=spread_bps, validity_s=600, quote_id="p"
    )
    rate = Fraction(quote.customer_rate)
    assert quote.fixed_side is FixedSide.TARGET and quote.target == target
    assert quote.source.amount_minor % step_minor(source_currency) == 0
    assert value(quote.source) >= value(target) / Fraction(quote.mid_rate)
    assert value(quote.source) * rate >= value(target)  # the liquidity account never pays out more
    assert (value(quote.source) - step(source_currency)) * rate < value(target)  # source = ROUND_UP(target / XchgRate)


# ---------------------------------------------------------------- issue 11: round trips and the rounding side

fees_bps = st.integers(min_value=0, max_value=1000)
sides = st.sampled_from(["switch", "customer"])
distinct_pairs = st.tuples(currencies, currencies).filter(lambda p: p[0] != p[1])


def _terms(fee_bps: int, favours: str = "switch") -> dict[str, object]:
    return {"now": NOW, "corridor_fee": None, "spread_bps": 0, "validity_s": 600, "quote_id": "p", "fee_bps": fee_bps,
            "rounding_favours": favours}


@given(units, distinct_pairs, spreads_bps, fees_bps, fees_bps)
def test_a_round_trip_source_to_target_and_back_never_gives_back_more_than_was_paid(
    n: int, pair: tuple[Currency, Currency], spread_bps: int, fee_out_bps: int, fee_back_bps: int
) -> None:
    home, away = pair
    paid = money(n, home)
    try:
        out = QUOTER.quote_for_source(paid, away, **{**_terms(fee_out_bps), "spread_bps": spread_bps})
        back = QUOTER.quote_for_source(out.target, home, **{**_terms(fee_back_bps), "spread_bps": spread_bps})
    except AmountTooSmall:
        return  # nothing (left) to convert: nothing comes back
    debited = value(out.source) + value(out.fee) + value(back.fee)  # fees included: paid on each leg
    assert value(back.target) <= value(paid) <= debited


@given(units, distinct_pairs, spreads_bps)
def test_a_round_trip_on_fixed_targets_never_buys_back_more_than_it_sold(
    n: int, pair: tuple[Currency, Currency], spread_bps: int
) -> None:
    home, away = pair
    wanted = money(n, away)
    try:
        out = QUOTER.quote_for_target(wanted, home, **{**_terms(0), "spread_bps": spread_bps})
        back = QUOTER.quote_for_target(out.source, away, **{**_terms(0), "spread_bps": spread_bps})
    except AmountTooSmall:
        return
    # buying back the `home` amount just paid costs at least the `away` amount it bought
    assert value(back.source) >= value(wanted)


@given(units, distinct_pairs, spreads_bps, fees_bps, sides)
def test_rounding_a_fixed_source_favours_the_side_the_corridor_names(
    n: int, pair: tuple[Currency, Currency], spread_bps: int, fee_bps: int, favours: str
) -> None:
    source_currency, target_currency = pair
    source = money(n, source_currency)
    try:
        quote = QUOTER.quote_for_source(source, target_currency, **{**_terms(fee_bps, favours), "spread_bps": spread_bps})
    except AmountTooSmall:
        return
    exact_target = value(source) * Fraction(quote.customer_rate)
    exact_fee = value(source) * Fraction(fee_bps, 10_000)
    if favours == "switch":  # the customer never gets a fraction more, never pays a fraction less
        assert value(quote.target) <= exact_target and value(quote.fee) >= exact_fee
    else:
        assert value(quote.target) >= exact_target and value(quote.fee) <= exact_fee
    assert abs(value(quote.target) - exact_target) < step(target_currency)
    assert abs(value(quote.fee) - exact_fee) < step(source_currency)


@given(units, distinct_pairs, spreads_bps, sides)
def test_rounding_a_fixed_target_favours_the_side_the_corridor_names(
    n: int, pair: tuple[Currency, Currency], spread_bps: int, favours: str
) -> None:
    target_currency, source_currency = pair
    target = money(n, target_currency)
    try:
        quote = QUOTER.quote_for_target(target, source_currency, **{**_terms(0, favours), "spread_bps": spread_bps})
    except AmountTooSmall:
        return
    bought = value(quote.source) * Fraction(quote.customer_rate)
    if favours == "switch":  # the liquidity provider never pays out more than the source buys
        assert bought >= value(target)
    else:
        assert bought <= value(target)
    assert abs(value(quote.source) - value(target) / Fraction(quote.customer_rate)) < step(source_currency)


@given(units, distinct_pairs, spreads_bps, fees_bps)
def test_the_effective_rate_never_shows_more_than_the_customer_gets(
    n: int, pair: tuple[Currency, Currency], spread_bps: int, fee_bps: int
) -> None:
    source_currency, target_currency = pair
    try:
        quote = QUOTER.quote_for_source(money(n, source_currency), target_currency, **{**_terms(fee_bps), "spread_bps": spread_bps})
    except AmountTooSmall:
        return
    exact = value(quote.target) / (value(quote.source) + value(quote.fee))
    assert Fraction(quote.effective_rate) <= exact
    assert quote.effective_rate <= quote.customer_rate
