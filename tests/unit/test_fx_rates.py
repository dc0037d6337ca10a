"""fx/rates.py: direct, inverse and cross rates, staleness, missing pairs. Values checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from fx.errors import RateStale, RateUnavailable
from fx.rates import Rate, RateBook, StaticRateProvider
from switch.domain.errors import SwitchError

T0 = datetime(2025, 6, 2, 2, 0, tzinfo=UTC)


def rate(base: str, quote: str, mid: str, *, as_of: datetime = T0) -> Rate:
    return Rate(base, quote, Decimal(mid), as_of, source=f"test:{base}/{quote}")


def book(*rates: Rate, stale_after_s: int | None = None) -> RateBook:
    return RateBook(pivot="USD", stale_after_s=stale_after_s, rates=rates)


def test_direct_pair_is_returned_as_given() -> None:
    found = book(rate("USD", "KHR", "4000")).rate("USD", "KHR", now=T0)
    assert found == rate("USD", "KHR", "4000")


def test_inverse_of_the_reverse_pair() -> None:
    found = book(rate("USD", "KHR", "4000")).rate("KHR", "USD", now=T0)
    assert (found.base, found.quote, found.mid) == ("KHR", "USD", Decimal("0.00025"))
    assert found.source == "1/(test:USD/KHR)"
    assert found.as_of == T0


def test_non_terminating_inverse_is_rounded_down_at_34_digits() -> None:
    assert book(rate("USD", "CNY", "3")).rate("CNY", "USD", now=T0).mid == Decimal("0." + "3" * 34)
    # 1/6 = 0.1666…: rounded down, so the last digit stays 6, never 7
    assert book(rate("USD", "CNY", "6")).rate("CNY", "USD", now=T0).mid == Decimal("0.1" + "6" * 33)


def test_cross_rate_through_the_pivot() -> None:
    # THB→USD = 1/32, USD→KHR = 4000: THB→KHR = 125
    found = book(rate("USD", "THB", "32"), rate("USD", "KHR", "4000")).rate("THB", "KHR", now=T0)
    assert found.mid == Decimal(125)
    assert found.source == "1/(test:USD/THB) * test:USD/KHR"


def test_cross_rate_is_computed_exactly_then_rounded_once() -> None:
    # 25980 / 21650 = 1.2 exactly: rounding 1/21650 first would give 1.1999…
    found = book(rate("USD", "LAK", "21650"), rate("USD", "VND", "25980")).rate("LAK", "VND", now=T0)
    assert found.mid == Decimal("1.2")


def test_direct_pair_wins_over_the_cross() -> None:
    rates = book(rate("USD", "THB", "32"), rate("USD", "KHR", "4000"), rate("THB", "KHR", "125.5"))
    assert rates.rate("THB", "KHR", now=T0).mid == Decimal("125.5")


def test_rate_at_exactly_stale_after_s_is_still_fresh() -> None:
    rates = book(rate("USD", "KHR", "4000"), stale_after_s=60)
    assert rates.rate("USD", "KHR", now=T0 + timedelta(seconds=60)).mid == Decimal(4000)


def test_rate_older_than_stale_after_s_is_stale_and_retriable() -> None:
    rates = book(rate("USD", "KHR", "4000"), stale_after_s=60)
    with pytest.raises(RateStale) as caught:
        rates.rate("KHR", "USD", now=T0 + timedelta(seconds=61))
    assert (caught.value.reason_code, caught.value.retriable) == ("MS03", True)


def test_cross_rate_with_one_stale_leg_is_stale() -> None:
    rates = book(
        rate("USD", "THB", "32"), rate("USD", "KHR", "4000", as_of=T0 - timedelta(seconds=120)), stale_after_s=60
    )
    with pytest.raises(RateStale):
        rates.rate("THB", "KHR", now=T0)


def test_fresh_cross_is_used_when_the_direct_pair_is_stale() -> None:
    rates = book(
        rate("THB", "KHR", "125.5", as_of=T0 - timedelta(seconds=120)),
        rate("USD", "THB", "32"),
        rate("USD", "KHR", "4000"),
        stale_after_s=60,
    )
    assert rates.rate("THB", "KHR", now=T0).mid == Decimal(125)


def test_static_rates_never_go_stale_without_stale_after_s() -> None:
    rates = book(rate("USD", "KHR", "4000"))
    assert rates.rate("USD", "KHR", now=T0 + timedelta(days=3650)).mid == Decimal(4000)


@pytest.mark.parametrize(("base", "quote"), [("LAK", "CNY"), ("USD", "LAK"), ("XYZ", "USD"), ("THB", "LAK")])
def test_missing_pair_is_unavailable_and_not_retriable(base: str, quote: str) -> None:
    rates = book(rate("USD", "THB", "32"), rate("USD", "KHR", "4000"))
    with pytest.raises(RateUnavailable) as caught:
        rates.rate(base, quote, now=T0)
    assert (caught.value.reason_code, caught.value.retriable) == ("CURR", False)
    assert isinstance(caught.value, SwitchError)  # the handlers turn it into a reject


def test_missing_leg_is_unavailable_even_when_the_other_leg_is_stale() -> None:
    rates = book(rate("USD", "THB", "32", as_of=T0 - timedelta(seconds=120)), stale_after_s=60)
    with pytest.raises(RateUnavailable):
        rates.rate("THB", "KHR", now=T0)


def test_update_keeps_the_newest_rate_per_pair() -> None:
    rates = book(rate("USD", "KHR", "4000"))
    rates.update([rate("USD", "KHR", "4010", as_of=T0 + timedelta(seconds=5))])
    rates.update([rate("USD", "KHR", "3990", as_of=T0 - timedelta(seconds=5))])  # late and older: ignored
    assert rates.rate("USD", "KHR", now=T0 + timedelta(seconds=10)).mid == Decimal(4010)


def test_same_currency_needs_no_rate() -> None:
    with pytest.raises(ValueError):
        book(rate("USD", "KHR", "4000")).rate("KHR", "KHR", now=T0)


def test_rate_rejects_float_mid_and_naive_time() -> None:
    with pytest.raises(TypeError):
        Rate("USD", "KHR", 4000.0, T0, "test")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Rate("USD", "KHR", Decimal(4000), T0.replace(tzinfo=None), "test")
    with pytest.raises(ValueError):
        Rate("USD", "USD", Decimal(1), T0, "test")


async def test_static_provider_serves_its_table() -> None:
    table = (rate("USD", "KHR", "4000"), rate("USD", "THB", "32"))
    assert tuple(await StaticRateProvider(table).rates()) == table


def test_a_reloaded_static_table_restamps_static_rates_but_never_replaces_a_live_one() -> None:
    from fx.rates import Rate as R

    rates = book(
        R("USD", "KHR", Decimal("4000"), T0, "static:USD/KHR", max_age_s=60),
        R("USD", "THB", Decimal("32"), T0, "static:USD/THB", max_age_s=60),
    )
    assert rates.offer(R("USD", "THB", Decimal("33"), T0 - timedelta(seconds=5), "http:USD/THB"))  # live beats static
    later = T0 + timedelta(seconds=3600)
    taken = rates.load_static([
        R("USD", "KHR", Decimal("4010"), later, "static:USD/KHR", max_age_s=60),
        R("USD", "THB", Decimal("31"), later, "static:USD/THB", max_age_s=60),
    ])
    assert taken == 1
    assert rates.rate("USD", "KHR", now=later).mid == Decimal("4010")  # re-stamped: fresh again
    assert rates.in_force()[1].source == "http:USD/THB"
    rates.load_static([R("USD", "THB", Decimal("31"), later, "static:USD/THB", max_age_s=60)])  # USD/KHR dropped
    with pytest.raises(RateUnavailable):
        rates.rate("USD", "KHR", now=later)
