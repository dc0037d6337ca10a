"""fx/config.py and the shipped config/fx.toml."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from fx.config import FxConfig, load_fx_config
from fx.convert import to_base_one_rate
from fx.errors import RateStale
from fx.quote import customer_rate
from fx.rates import Rate
from switch.domain.money import CURRENCIES

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "fx.toml"
NOW = datetime(2026, 1, 1, tzinfo=UTC)

HEAD = """
pivot = "USD"
spread_bps_default = 50
"""
USD_KHR = """
[[rates]]
base = "USD"
quote = "KHR"
mid = 4065.5
as_of = 2025-06-02T02:00:00Z
"""


def load(tmp_path: Path, text: str) -> FxConfig:
    path = tmp_path / "fx.toml"
    path.write_text(text)
    return load_fx_config(path)


def test_shipped_config_loads_with_documented_defaults() -> None:
    config = load_fx_config(SHIPPED)
    assert (config.pivot, config.stale_after_s, config.quote_validity_s) == ("USD", 300, 600)
    assert config.static_max_age_s == 86400  # the staleness guard is on; the static table lasts a day


def test_static_rates_are_stamped_at_load_and_stop_quoting_after_their_max_age(tmp_path: Path) -> None:
    book = load(tmp_path, "stale_after_s = 60\nstatic_max_age_s = 3600\n" + HEAD + USD_KHR).rate_book(NOW)
    assert book.rate("USD", "KHR", now=NOW + timedelta(seconds=3600)).as_of == NOW  # not the file's as_of
    with pytest.raises(RateStale):
        book.rate("USD", "KHR", now=NOW + timedelta(seconds=3601))


def test_a_live_rate_replaces_the_static_one_and_goes_stale_under_stale_after_s(tmp_path: Path) -> None:
    book = load(tmp_path, "stale_after_s = 60\nstatic_max_age_s = 3600\n" + HEAD + USD_KHR).rate_book(NOW)
    book.update([Rate("USD", "KHR", Decimal("4070"), NOW + timedelta(seconds=10), "http:feed")])
    assert book.rate("USD", "KHR", now=NOW + timedelta(seconds=70)).mid == Decimal("4070")
    with pytest.raises(RateStale):
        book.rate("USD", "KHR", now=NOW + timedelta(seconds=71))


@pytest.mark.parametrize(
    ("code", "low", "high"),
    [("KHR", 4010, 4100), ("THB", 32, 36), ("LAK", 21_000, 22_000), ("VND", 25_000, 26_500), ("CNY", "7.1", "7.3")],
)
def test_shipped_demo_rates_are_plausible(code: str, low: object, high: object) -> None:
    mid = load_fx_config(SHIPPED).rate_book().rate("USD", code, now=NOW).mid
    assert Decimal(low) <= mid <= Decimal(high)  # type: ignore[arg-type]


def test_shipped_book_quotes_every_pair_as_a_base_one_rate() -> None:
    config = load_fx_config(SHIPPED)
    book = config.rate_book()
    for base in CURRENCIES:
        for quote in CURRENCIES:
            if base != quote:
                rate = customer_rate(book.rate(base, quote, now=NOW).mid, config.spread_bps_default)
                assert to_base_one_rate(rate) == rate


def test_toml_numbers_are_exact_decimals(tmp_path: Path) -> None:
    entry = load(tmp_path, HEAD + USD_KHR.replace("4065.5", "33.85")).rates[0]
    assert entry.mid == Decimal("33.85")
    assert type(entry.mid) is Decimal


async def test_static_provider_serves_the_config_rates(tmp_path: Path) -> None:
    (rate,) = await load(tmp_path, HEAD + USD_KHR).static_provider().rates()
    assert (rate.base, rate.quote, rate.mid, rate.source) == ("USD", "KHR", Decimal("4065.5"), "static:USD/KHR")
    assert rate.as_of == datetime(2025, 6, 2, 2, 0, tzinfo=UTC)


def test_stale_after_s_in_config_makes_static_rates_go_stale(tmp_path: Path) -> None:
    book = load(tmp_path, "stale_after_s = 300\n" + HEAD + USD_KHR).rate_book()
    as_of = datetime(2025, 6, 2, 2, 0, tzinfo=UTC)
    assert book.rate("USD", "KHR", now=as_of + timedelta(seconds=300)).mid == Decimal("4065.5")
    with pytest.raises(RateStale):
        book.rate("USD", "KHR", now=as_of + timedelta(seconds=301))


@pytest.mark.parametrize(
    "broken",
    [
        HEAD + USD_KHR + "colour = 'blue'\n",  # unknown key (lands in the rate entry)
        "surprise = 1\n" + HEAD + USD_KHR,  # unknown top-level key
        HEAD + USD_KHR.replace("2025-06-02T02:00:00Z", "2025-06-02T02:00:00"),  # no offset
        HEAD + USD_KHR.replace('"KHR"', '"XYZ"'),  # unknown currency
        HEAD + USD_KHR.replace('"KHR"', '"USD"'),  # a currency to itself
        HEAD + USD_KHR.replace("4065.5", "0"),
        HEAD + USD_KHR.replace("4065.5", "nan"),
        HEAD + USD_KHR.replace("4065.5", "inf"),
        HEAD + USD_KHR + USD_KHR.replace('"USD"', '"X"').replace('"KHR"', '"USD"').replace('"X"', '"KHR"'),  # pair twice
        HEAD.replace("50", "10000") + USD_KHR,
        HEAD.replace("50", "50.0") + USD_KHR,
        'quote_validity_s = "600"\n' + HEAD + USD_KHR,
        HEAD.replace('"USD"', '"XYZ"') + USD_KHR,
        HEAD,  # no rates
    ],
)
def test_invalid_config_is_rejected(tmp_path: Path, broken: str) -> None:
    with pytest.raises(ValidationError):
        load(tmp_path, broken)


def test_float_mid_is_rejected_even_outside_toml() -> None:
    with pytest.raises(ValidationError, match="float"):
        FxConfig.model_validate(
            {
                "pivot": "USD",
                "spread_bps_default": 50,
                "rates": [{"base": "USD", "quote": "KHR", "mid": 4065.5, "as_of": NOW}],
            }
        )
