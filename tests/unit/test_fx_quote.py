"""fx/quote.py: customer rate, both quote directions, fee leg, expiry, AM09. Values checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from fx.errors import AmountTooSmall, RateStale
from fx.quote import FixedSide, FxQuote, Quoter, customer_rate
from fx.rates import Rate, RateBook
from switch.domain.money import CURRENCIES, Money

KHR, THB, USD = (CURRENCIES[c] for c in ("KHR", "THB", "USD"))
T0 = datetime(2025, 6, 2, 2, 0, tzinfo=UTC)


def quoter(*, stale_after_s: int | None = None) -> Quoter:
    rates = [Rate("USD", "KHR", Decimal(4000), T0, "test"), Rate("USD", "THB", Decimal(32), T0, "test")]
    return Quoter(RateBook(pivot="USD", stale_after_s=stale_after_s, rates=rates))


def money(text: str, code: str) -> Money:
    return Money.parse(text, code)


def for_source(source: Money, target: str, *, spread_bps: int = 50, fee: Money | None = None, **kw) -> FxQuote:  # type: ignore[no-untyped-def]
    terms = {"now": T0, "corridor_fee": fee, "spread_bps": spread_bps, "validity_s": 600, "quote_id": "q-1"} | kw
    return quoter().quote_for_source(source, CURRENCIES[target], **terms)


def for_target(target: Money, source: str, *, spread_bps: int = 50, fee: Money | None = None) -> FxQuote:
    return quoter().quote_for_target(
        target, CURRENCIES[source], now=T0, corridor_fee=fee, spread_bps=spread_bps, validity_s=600, quote_id="q-1"
    )


def test_customer_rate_takes_the_spread_off_the_mid() -> None:
    assert customer_rate(Decimal(4000), 50) == Decimal(3980)
    # 0.0083298625 × 0.995 = 0.0082882131875 → truncated to 10 fraction digits
    assert customer_rate(Decimal("0.0083298625"), 50) == Decimal("0.0082882131")
    assert customer_rate(Decimal(4000), 0) == Decimal(4000)


@pytest.mark.parametrize("spread_bps", [-1, 10_000, 1.5, True])
def test_spread_must_be_an_int_below_one_unit(spread_bps: object) -> None:
    with pytest.raises(ValueError):
        customer_rate(Decimal(4000), spread_bps)  # type: ignore[arg-type]


def test_quote_for_source_fixes_everything() -> None:
    quote = for_source(money("10.00", "USD"), "KHR")
    assert quote == FxQuote(
        quote_id="q-1",
        fixed_side=FixedSide.SOURCE,
        source=money("10.00", "USD"),
        target=money("39800", "KHR"),
        mid_rate=Decimal(4000),
        customer_rate=Decimal(3980),
        spread_bps=50,
        fee=Money(0, USD),
        rate_source="test",
        rate_as_of=T0,
        created_at=T0,
        expires_at=T0 + timedelta(seconds=600),
    )


def test_quote_for_source_rounds_the_target_down() -> None:
    # 10.01 × 3980 = 39839.8 KHR → 39839
    assert for_source(money("10.01", "USD"), "KHR").target == money("39839", "KHR")


def test_quote_for_target_rounds_the_source_up() -> None:
    # 39,800 / 3980 = 10 exactly; 39,801 / 3980 = 10.000251… → 10.01
    assert for_target(money("39800", "KHR"), "USD").source == money("10.00", "USD")
    quote = for_target(money("39801", "KHR"), "USD")
    assert (quote.fixed_side, quote.source, quote.target) == (
        FixedSide.TARGET,
        money("10.01", "USD"),
        money("39801", "KHR"),
    )


def test_quote_for_target_keeps_the_target_exact_when_the_source_grid_is_coarser() -> None:
    # THB→KHR cross mid 125, customer 124.375; 1000 / 124.375 = 8.0402… → 8.05 THB.
    # 8.05 × 124.375 = 1001.22 KHR ≥ 1000, and 8.04 × 124.375 = 999.975 < 1000: 8.05 is the least.
    quote = for_target(money("1000", "KHR"), "THB")
    assert (quote.customer_rate, quote.source, quote.target) == (
        Decimal("124.375"),
        money("8.05", "THB"),
        money("1000", "KHR"),
    )


def test_cross_quote_names_its_legs() -> None:
    quote = for_source(money("100", "THB"), "KHR", spread_bps=0)
    assert (quote.mid_rate, quote.target) == (Decimal(125), money("12500", "KHR"))
    assert quote.rate_source == "1/(test) * test"


def test_fee_is_its_own_leg_in_the_source_currency() -> None:
    quote = for_source(money("10.00", "USD"), "KHR", fee=money("0.25", "USD"))
    assert (quote.fee, quote.source, quote.target) == (money("0.25", "USD"), money("10.00", "USD"), money("39800", "KHR"))


def test_fee_in_another_currency_is_rejected() -> None:
    with pytest.raises(ValueError, match="fee"):
        for_source(money("10.00", "USD"), "KHR", fee=money("1000", "KHR"))


def test_same_currency_has_rate_one_and_no_spread() -> None:
    quote = for_source(money("12.34", "THB"), "THB", spread_bps=75)
    assert (quote.target, quote.mid_rate, quote.customer_rate, quote.spread_bps, quote.rate_source) == (
        money("12.34", "THB"),
        Decimal(1),
        Decimal(1),
        0,
        "identity",
    )


def test_amount_converting_to_zero_is_am09() -> None:
    # 1 KHR at 1/125 = 0.008 THB → 0.00 THB
    with pytest.raises(AmountTooSmall) as caught:
        for_source(money("1", "KHR"), "THB", spread_bps=0)
    assert (caught.value.reason_code, caught.value.retriable) == ("AM09", False)
    assert for_source(money("2", "KHR"), "THB", spread_bps=0).target == money("0.01", "THB")  # 0.016


def test_zero_amounts_are_am09() -> None:
    with pytest.raises(AmountTooSmall):
        for_source(Money(0, USD), "KHR")
    with pytest.raises(AmountTooSmall):
        for_target(Money(0, KHR), "USD")


def test_quote_expires_after_validity_s() -> None:
    quote = for_source(money("10.00", "USD"), "KHR", validity_s=30)
    assert quote.expires_at == T0 + timedelta(seconds=30)
    assert not quote.is_expired(T0 + timedelta(seconds=29, microseconds=999_999))
    assert quote.is_expired(T0 + timedelta(seconds=30))


@pytest.mark.parametrize("validity_s", [0, -600])
def test_validity_must_be_positive(validity_s: int) -> None:
    with pytest.raises(ValueError):
        for_source(money("10.00", "USD"), "KHR", validity_s=validity_s)


def test_stale_rate_stops_quoting() -> None:
    with pytest.raises(RateStale):
        quoter(stale_after_s=60).quote_for_source(
            money("10.00", "USD"),
            KHR,
            now=T0 + timedelta(seconds=61),
            corridor_fee=None,
            spread_bps=50,
            validity_s=600,
            quote_id="q-1",
        )
