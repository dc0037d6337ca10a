"""Currency conversion and rate rounding: pure, exact, every rounding named (STYLE §2).

A rate is a `Decimal` meaning "target units per source unit" (pacs.008 `XchgRate`). Arithmetic
runs on exact integer ratios (`Decimal.as_integer_ratio`), so the only rounding is the one the caller names, applied once, to the
decimals the target currency accepts (`Currency.decimals_accepted_max`: THB 2, KHR 0, VND 0).

No I/O, no clock, no float: this module imports no asyncio, aiohttp or SQL (a test checks it).
"""

from __future__ import annotations

import decimal
from decimal import ROUND_DOWN, Context, Decimal, InvalidOperation
from typing import Final

from switch.domain.money import Currency, Money

# Every rounding mode the decimal module names (ROUND_05UP ... ROUND_UP): callers pick one by name.
ROUNDINGS: Final = frozenset(getattr(decimal, name) for name in dir(decimal) if name.startswith("ROUND_"))

# ISO 20022 `BaseOneRate` (pacs.008 `XchgRate`): xs:decimal, fractionDigits 10, totalDigits 11.
base_one_rate_fraction_digits_max: Final = 10
base_one_rate_total_digits_max: Final = 11
# Truncating lowers the rate, which favours the switch whichever amount is fixed: less target
# for a given source, more source for a given target.
base_one_rate_rounding: Final = ROUND_DOWN

_quantize_context: Final = Context(prec=base_one_rate_total_digits_max, traps=[InvalidOperation])

# A non-zero remainder below, at or above one half rounds, in every decimal mode, exactly as
# .25, .5 or .75 does: decimal itself then applies the named mode to an exact value.
_fraction_like: Final = {-1: "25", 0: "5", 1: "75"}


def to_base_one_rate(rate: Decimal) -> Decimal:
    """`rate` truncated (`base_one_rate_rounding`) to fit both BaseOneRate limits.

    0.0085123456789 → 0.0085123456 (10 fraction digits); 117.123456789012 → 117.12345678
    (11 digits in all). A rate with more than 11 integer digits, or one that truncates to zero,
    cannot be sent: ValueError.
    """
    check_rate(rate)
    integer_digits = max(rate.adjusted() + 1, 0)
    if integer_digits > base_one_rate_total_digits_max:
        raise ValueError(f"rate {rate} has more than {base_one_rate_total_digits_max} integer digits")
    fraction_digits = min(
        base_one_rate_fraction_digits_max, base_one_rate_total_digits_max - integer_digits
    )
    quantum = Decimal((0, (1,), -fraction_digits))
    result = rate.quantize(quantum, rounding=base_one_rate_rounding, context=_quantize_context)
    if result == 0:
        raise ValueError(f"rate {rate} is below the smallest BaseOneRate")
    return result


def convert(amount: Money, rate: Decimal, target: Currency, *, rounding: str) -> Money:
    """`amount` × `rate` in `target`, rounded once with `rounding` to the decimals `target` accepts."""
    check_rate(rate)
    rate_num, rate_den = rate.as_integer_ratio()
    return _to_money(amount.amount_minor * rate_num, 10**amount.currency.exponent * rate_den, target, rounding)


def source_for_target(target: Money, rate: Decimal, source: Currency, *, rounding: str) -> Money:
    """The `source` amount that buys `target` at `rate`: target / rate, rounded once with `rounding`.

    With ROUND_UP it is the smallest amount with source × rate ≥ target, so the liquidity account
    never pays out more than it took in.
    """
    check_rate(rate)
    rate_num, rate_den = rate.as_integer_ratio()
    return _to_money(target.amount_minor * rate_den, 10**target.currency.exponent * rate_num, source, rounding)


def money_from_ratio(numerator: int, denominator: int, currency: Currency, *, rounding: str) -> Money:
    """Money for the exact value numerator / denominator, in units of `currency`, rounded once
    with `rounding` to the decimals it accepts (a percentage fee: amount × bps / 10 000)."""
    return _to_money(numerator, denominator, currency, rounding)


def check_rate(rate: Decimal) -> None:
    if not isinstance(rate, Decimal):
        raise TypeError(f"rate must be Decimal, got {type(rate).__name__}")
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"rate must be finite and positive, got {rate}")


def _to_money(numerator: int, denominator: int, currency: Currency, rounding: str) -> Money:
    """Money for the exact value numerator / denominator (in currency units), rounded once."""
    shift = currency.exponent - currency.decimals_accepted_max
    if shift < 0:
        raise ValueError(f"{currency} accepts more decimals than its minor unit carries")
    units = _round(numerator * 10**currency.decimals_accepted_max, denominator, rounding)
    return Money(units * 10**shift, currency)


def _round(numerator: int, denominator: int, rounding: str) -> int:
    """numerator / denominator (exact, integers: no Fraction normalisation) rounded by `rounding`."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding mode {rounding!r}")
    if numerator < 0 or denominator <= 0:
        raise ValueError(f"cannot round a negative amount {numerator}/{denominator}")
    whole, rest = divmod(numerator, denominator)
    if rest == 0:
        return whole
    position = (2 * rest > denominator) - (2 * rest < denominator)
    return int(Decimal(f"{whole}.{_fraction_like[position]}").to_integral_value(rounding=rounding))
