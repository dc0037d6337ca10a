"""FX quotes: a rate, spread, fee, both amounts and an expiry, fixed together.

The customer rate is the mid less the spread, truncated to a BaseOneRate (`to_base_one_rate`);
that exact rate is the pacs.008 `XchgRate`, and the amounts follow from it by one named rounding:
- source fixed (`quote_for_source`): target = source × rate, ROUND_DOWN;
- target fixed (`quote_for_target`): source = target / rate, ROUND_UP, the smallest source with
  source × rate ≥ target. When the source grid is coarser than the target's (THB → KHR: 0.01 THB
  is about 1.2 KHR), source × rate may exceed target by less than one source step × rate.
By default every rounding lowers what the customer gets for what they pay, so the liquidity
account never loses. A corridor may name the other side (`rounding_favours = "customer"`): then
the amounts round the other way (target ROUND_UP, source ROUND_DOWN, the bps fee ROUND_DOWN); the
customer rate is truncated either way (it is the rate both sides agreed, sent as XchgRate).

The fee is its own leg, in the source currency, on top of the source amount: the corridor's fixed
fee plus `fee_bps` of the source amount (rounded to the source currency's accepted decimals,
toward the side the corridor favours). The effective rate is what the customer really gets:
target ÷ (source + fee), truncated to a BaseOneRate (Nexus requires it shown before the payment).

Pure given a `RateBook`: no I/O, `now` and `quote_id` are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_UP, Context, Decimal, Inexact, Rounded
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache
from typing import Final, Literal

from fx.convert import convert, money_from_ratio, source_for_target, to_base_one_rate
from fx.errors import AmountTooSmall
from fx.rates import Rate, RateBook
from switch.domain.money import Currency, Money

bps_per_unit: Final = 10_000
fee_bps_max: Final = 1_000  # 10 %: a higher percentage fee is a typo
_identity_rate: Final = Decimal(1)
_effective_context: Final = Context(prec=40, rounding=ROUND_DOWN)

RoundingFavours = Literal["switch", "customer"]
# per favoured side: (target from source, source from target, the bps part of the fee)
_ROUNDINGS: Final[dict[str, tuple[str, str, str]]] = {
    "switch": (ROUND_DOWN, ROUND_UP, ROUND_UP),
    "customer": (ROUND_UP, ROUND_DOWN, ROUND_DOWN),
}


def effective_rate(source: Money, fee: Money, target: Money) -> Decimal:
    """What the customer really gets per unit paid: target ÷ (source + fee), in units of each
    currency, truncated to a BaseOneRate (never shown better than it is)."""
    paid = source.amount_minor + fee.amount_minor
    if paid <= 0 or target.amount_minor <= 0:
        raise ValueError(f"no effective rate for {source} + {fee} -> {target}")
    exact = Fraction(target.amount_minor * 10**source.currency.exponent, paid * 10**target.currency.exponent)
    return to_base_one_rate(_effective_context.divide(Decimal(exact.numerator), Decimal(exact.denominator)))


def fee_for(source: Money, fixed: Money | None, fee_bps: int, rounding: str) -> Money:
    """The fee leg: the fixed fee plus `fee_bps` of `source`, the bps part rounded once with
    `rounding` to the decimals the source currency accepts."""
    if type(fee_bps) is not int or not 0 <= fee_bps <= fee_bps_max:
        raise ValueError(f"fee_bps must be an int in [0, {fee_bps_max}], got {fee_bps!r}")
    if fee_bps == 0:  # the usual case: the fixed fee as configured (no new Money on the hot path)
        return Money(0, source.currency) if fixed is None else fixed
    base = 0 if fixed is None else fixed.amount_minor
    share = money_from_ratio(
        source.amount_minor * fee_bps, bps_per_unit * 10**source.currency.exponent, source.currency, rounding=rounding
    )
    return Money(base + share.amount_minor, source.currency)


class FixedSide(StrEnum):
    SOURCE = "SOURCE"
    TARGET = "TARGET"


@dataclass(frozen=True, slots=True)
class FxQuote:
    quote_id: str
    fixed_side: FixedSide
    source: Money
    target: Money
    mid_rate: Decimal
    customer_rate: Decimal  # the pacs.008 XchgRate: target units per source unit
    spread_bps: int
    fee: Money
    rate_source: str
    rate_as_of: datetime
    created_at: datetime
    expires_at: datetime
    fee_bps: int = 0
    rounding_favours: RoundingFavours = "switch"

    @property
    def effective_rate(self) -> Decimal:
        return effective_rate(self.source, self.fee, self.target)

    def __post_init__(self) -> None:
        if self.fee.currency != self.source.currency:
            raise ValueError(f"fee {self.fee} is not in the source currency {self.source.currency}")
        if self.expires_at <= self.created_at:
            raise ValueError("a quote must expire after it is created")

    def is_expired(self, now: datetime) -> bool:
        """Honoured for `validity_s` seconds: expired from `expires_at` on."""
        return now >= self.expires_at


@lru_cache(maxsize=1024)  # pure, and asked for the same (mid, spread) by every payment of a pair
def customer_rate(mid: Decimal, spread_bps: int) -> Decimal:
    """`mid` less `spread_bps`, truncated to a BaseOneRate. Both steps lower the rate."""
    _check_spread(spread_bps)
    exact = Context(prec=len(mid.as_tuple().digits) + 5, traps=[Inexact, Rounded])
    spread_off = exact.divide(exact.multiply(mid, Decimal(bps_per_unit - spread_bps)), Decimal(bps_per_unit))
    return to_base_one_rate(spread_off)


@dataclass(frozen=True, slots=True)
class Quoter:
    book: RateBook

    def quote_for_source(
        self,
        source: Money,
        target_currency: Currency,
        *,
        now: datetime,
        corridor_fee: Money | None,
        spread_bps: int,
        validity_s: int,
        quote_id: str,
        fee_bps: int = 0,
        rounding_favours: RoundingFavours = "switch",
    ) -> FxQuote:
        """The customer pays `source` (plus the fee); the beneficiary gets source × rate, rounded
        toward the favoured side (ROUND_DOWN by default)."""
        _check_terms(source.currency, corridor_fee, spread_bps, validity_s, quote_id, now)
        to_target, _, fee_rounding = _ROUNDINGS[rounding_favours]
        if source.amount_minor == 0:
            raise AmountTooSmall(f"nothing to convert: {source}")
        pricing = self._price(source.currency, target_currency, spread_bps=spread_bps, now=now)
        target = convert(source, pricing.customer_rate, target_currency, rounding=to_target)
        if target.amount_minor == 0:
            raise AmountTooSmall(f"{source} converts to {target}")
        fee = fee_for(source, corridor_fee, fee_bps, fee_rounding)
        return pricing.quote(
            FixedSide.SOURCE, source, target, fee, now=now, validity_s=validity_s, quote_id=quote_id,
            fee_bps=fee_bps, rounding_favours=rounding_favours,
        )

    def quote_for_target(
        self,
        target: Money,
        source_currency: Currency,
        *,
        now: datetime,
        corridor_fee: Money | None,
        spread_bps: int,
        validity_s: int,
        quote_id: str,
        fee_bps: int = 0,
        rounding_favours: RoundingFavours = "switch",
    ) -> FxQuote:
        """The beneficiary gets exactly `target`; the customer pays target / rate, rounded toward
        the favoured side (ROUND_UP by default), plus the fee."""
        _check_terms(source_currency, corridor_fee, spread_bps, validity_s, quote_id, now)
        _, to_source, fee_rounding = _ROUNDINGS[rounding_favours]
        if target.amount_minor == 0:
            raise AmountTooSmall(f"nothing to convert: {target}")
        pricing = self._price(source_currency, target.currency, spread_bps=spread_bps, now=now)
        source = source_for_target(target, pricing.customer_rate, source_currency, rounding=to_source)
        if source.amount_minor == 0:
            raise AmountTooSmall(f"{target} costs {source}")
        fee = fee_for(source, corridor_fee, fee_bps, fee_rounding)
        return pricing.quote(
            FixedSide.TARGET, source, target, fee, now=now, validity_s=validity_s, quote_id=quote_id,
            fee_bps=fee_bps, rounding_favours=rounding_favours,
        )

    def _price(self, source: Currency, target: Currency, *, spread_bps: int, now: datetime) -> _Pricing:
        if source == target:
            return _Pricing(_identity_rate, _identity_rate, 0, "identity", now)
        rate = self.book.rate(source.code, target.code, now=now)
        return _pricing_of(rate, spread_bps)


_pricing_cache: dict[tuple[int, int], tuple[Rate, _Pricing]] = {}
pricing_cache_entries_max: Final = 1024


def _pricing_of(rate: Rate, spread_bps: int) -> _Pricing:
    """The pricing for a rate the book handed out, computed once per rate object and spread (the
    book returns the same object until it is updated); keyed by identity, checked by `is`."""
    key = (id(rate), spread_bps)
    hit = _pricing_cache.get(key)
    if hit is not None and hit[0] is rate:
        return hit[1]
    if len(_pricing_cache) >= pricing_cache_entries_max:
        _pricing_cache.clear()
    pricing = _Pricing(rate.mid, customer_rate(rate.mid, spread_bps), spread_bps, rate.source, rate.as_of)
    _pricing_cache[key] = (rate, pricing)
    return pricing


@dataclass(frozen=True, slots=True)
class _Pricing:
    mid_rate: Decimal
    customer_rate: Decimal
    spread_bps: int
    rate_source: str
    rate_as_of: datetime

    def quote(
        self,
        fixed_side: FixedSide,
        source: Money,
        target: Money,
        corridor_fee: Money | None,
        *,
        now: datetime,
        validity_s: int,
        quote_id: str,
        fee_bps: int = 0,
        rounding_favours: RoundingFavours = "switch",
    ) -> FxQuote:
        return FxQuote(
            quote_id=quote_id,
            fixed_side=fixed_side,
            source=source,
            target=target,
            mid_rate=self.mid_rate,
            customer_rate=self.customer_rate,
            spread_bps=self.spread_bps,
            fee=Money(0, source.currency) if corridor_fee is None else corridor_fee,
            rate_source=self.rate_source,
            rate_as_of=self.rate_as_of,
            created_at=now,
            expires_at=now + timedelta(seconds=validity_s),
            fee_bps=fee_bps,
            rounding_favours=rounding_favours,
        )


def _check_terms(
    source_currency: Currency,
    corridor_fee: Money | None,
    spread_bps: int,
    validity_s: int,
    quote_id: str,
    now: datetime,
) -> None:
    _check_spread(spread_bps)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if corridor_fee is not None and corridor_fee.currency != source_currency:
        raise ValueError(f"fee {corridor_fee} is not in the source currency {source_currency}")
    if type(validity_s) is not int or validity_s <= 0:
        raise ValueError(f"validity_s must be a positive int, got {validity_s!r}")
    if not quote_id:
        raise ValueError("quote_id must not be empty")


def _check_spread(spread_bps: int) -> None:
    if type(spread_bps) is not int or not 0 <= spread_bps < bps_per_unit:
        raise ValueError(f"spread_bps must be an int in [0, {bps_per_unit}), got {spread_bps!r}")
