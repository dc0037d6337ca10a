"""Rates, where they come from (providers), and the book that answers "what is base→quote now".

A `Rate(base, quote, mid)` means 1 `base` = `mid` `quote`. `RateBook.rate(base, quote, now=...)`
takes the first fresh route, in this order:
1. the direct pair base/quote;
2. the inverse of the reverse pair (1/mid);
3. a cross through the pivot (base→pivot × pivot→quote, each leg direct first, then inverse).
So a fresh inverse or cross is used when the direct rate is stale. If every existing route has a
stale leg, `RateStale`; if no route exists, `RateUnavailable`.

A rate is stale when `now - as_of > max age`: the rate's own `max_age_s` when its provider gives
one (the static table, stamped when it is loaded: fx/config.py `static_max_age_s`), else the
book's `stale_after_s` (the live providers: HTTP feed, Kafka rate topic); `None` for both means
never stale. A route through several rates is as fresh as its stalest leg. `now` is always passed in.

A derived mid (inverse, cross) is computed exactly from the given mids and rounded down once to
`derived_mid_digits` significant digits: it never exceeds its exact value, and the error stays far
below the 11 digits of a BaseOneRate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Context, Decimal
from fractions import Fraction
from math import prod
from typing import Final, Protocol

from fx.convert import check_rate
from fx.errors import RateStale, RateUnavailable
from switch.domain.money import currency

derived_mid_digits: Final = 34
_derived_context: Final = Context(prec=derived_mid_digits, rounding=ROUND_DOWN)


@dataclass(frozen=True, slots=True)
class Rate:
    base: str
    quote: str
    mid: Decimal
    as_of: datetime
    source: str
    # how long this rate may quote (its provider's rule); None: the book's stale_after_s
    max_age_s: int | None = None

    def __post_init__(self) -> None:
        check_rate(self.mid)
        if self.max_age_s is not None and self.max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, got {self.max_age_s}")
        if self.base == self.quote:
            raise ValueError(f"rate {self.base}/{self.quote} converts a currency to itself")
        if self.as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")


STATIC_SOURCE_PREFIX: Final = "static:"  # the static table's rates (fx/config.py static_provider)


def is_static(rate: Rate) -> bool:
    return rate.source.startswith(STATIC_SOURCE_PREFIX)


class RateProvider(Protocol):
    async def rates(self) -> Sequence[Rate]: ...


@dataclass(frozen=True, slots=True)
class StaticRateProvider:
    """Serves a fixed table of rates (from `config/fx.toml`, see `FxConfig.static_provider`)."""

    table: tuple[Rate, ...]

    async def rates(self) -> Sequence[Rate]:
        return self.table


class RateBook:
    """The latest rate per pair, and the route to any pair (see the module docstring)."""

    __slots__ = ("pivot", "stale_after_s", "_rates", "_composed")

    def __init__(self, *, pivot: str, stale_after_s: int | None, rates: Iterable[Rate] = ()) -> None:
        currency(pivot)
        if stale_after_s is not None and stale_after_s <= 0:
            raise ValueError(f"stale_after_s must be positive, got {stale_after_s}")
        self.pivot = pivot
        self.stale_after_s = stale_after_s
        self._rates: dict[tuple[str, str], Rate] = {}
        # (base, quote) -> every route's composed rate and when it goes stale, in preference order;
        # cleared on every change of the book
        self._composed: dict[tuple[str, str], list[tuple[Rate, datetime | None]]] = {}
        self.update(rates)

    def update(self, rates: Iterable[Rate]) -> None:
        """Keep the newest rate per pair; an older rate arriving late is ignored."""
        self._composed.clear()
        for new in rates:
            key = (new.base, new.quote)
            old = self._rates.get(key)
            if old is None or new.as_of >= old.as_of:
                self._rates[key] = new

    def load_static(self, rates: Iterable[Rate]) -> int:
        """A reloaded static table (fx/config.py, stamped at reload): it replaces the static rates
        (a pair no longer in the table stops quoting from it) and adds new pairs, but never
        replaces a live provider's rate of a pair. Returns how many it set."""
        rates = list(rates)
        kept = {(r.base, r.quote) for r in rates}
        for key in [k for k, old in self._rates.items() if is_static(old) and k not in kept]:
            del self._rates[key]
        taken = 0
        for new in rates:
            key = (new.base, new.quote)
            old = self._rates.get(key)
            if old is None or is_static(old):
                self._rates[key] = new
                taken += 1
        self._composed.clear()
        return taken

    def offer(self, new: Rate) -> bool:
        """Take `new` if it is the pair's newest (a live provider's update); False when the book
        has a newer one already (a late or replayed record). A live rate always replaces a
        static one: the static table is stamped at load, so its as_of says nothing about the market."""
        key = (new.base, new.quote)
        old = self._rates.get(key)
        replaces_static = old is not None and is_static(old) and not is_static(new)
        if old is not None and new.as_of < old.as_of and not replaces_static:
            return False
        self._rates[key] = new
        self._composed.clear()
        return True

    def rate(self, base: str, quote: str, *, now: datetime) -> Rate:
        if base == quote:
            raise ValueError(f"no rate needed from {base} to itself")
        routes = self._composed.get((base, quote))
        if routes is None:  # each route's rate and the instant it goes stale (None: never), once per update
            routes = self._composed[(base, quote)] = [
                (composed, _fresh_until(composed))
                for composed in (
                    _compose(base, quote, hops, min(hop.rate.as_of for hop in hops), self._max_age_s(hops))
                    for hops in self._routes(base, quote)
                )
            ]
        stale: Rate | None = None
        for composed, fresh_until in routes:
            if fresh_until is None or now <= fresh_until:
                return composed
            if stale is None:
                stale = composed
        if stale is not None:
            raise RateStale(
                f"rate {base}/{quote} is stale: as of {stale.as_of.isoformat()}, "
                f"older than {stale.max_age_s} s at {now.isoformat()}"
            )
        raise RateUnavailable(f"no rate for {base}/{quote}, directly or via {self.pivot}")

    def _routes(self, base: str, quote: str) -> Iterator[tuple[_Hop, ...]]:
        for hop in self._hops(base, quote):
            yield (hop,)
        if self.pivot not in (base, quote):
            for first in self._hops(base, self.pivot):
                for second in self._hops(self.pivot, quote):
                    yield (first, second)

    def _hops(self, base: str, quote: str) -> Iterator[_Hop]:
        if (direct := self._rates.get((base, quote))) is not None:
            yield _Hop(direct, inverted=False)
        if (reverse := self._rates.get((quote, base))) is not None:
            yield _Hop(reverse, inverted=True)

    def max_age_s_of(self, rate: Rate) -> int | None:
        """How long `rate` may quote: its own max age, else the book's stale_after_s."""
        return rate.max_age_s if rate.max_age_s is not None else self.stale_after_s

    def _max_age_s(self, hops: tuple[_Hop, ...]) -> int | None:
        """A route's max age, counted from its oldest leg: fresh while every leg is."""
        oldest = min(hop.rate.as_of for hop in hops)
        ends = [hop.rate.as_of + timedelta(seconds=age) for hop in hops if (age := self.max_age_s_of(hop.rate)) is not None]
        if not ends:
            return None
        return max(1, int((min(ends) - oldest).total_seconds()))


    def in_force(self) -> list[Rate]:
        """The newest rate of every pair the providers gave, as they gave it (for `mekong fx
        rates` and the age gauges), sorted by pair."""
        return [self._rates[k] for k in sorted(self._rates)]

    def is_stale(self, rate: Rate, now: datetime) -> bool:
        age = self.max_age_s_of(rate)
        return age is not None and now - rate.as_of > timedelta(seconds=age)


def _fresh_until(rate: Rate) -> datetime | None:
    """The last instant `rate` quotes (its route's max age after its as-of); None: never stale."""
    return None if rate.max_age_s is None else rate.as_of + timedelta(seconds=rate.max_age_s)


@dataclass(frozen=True, slots=True)
class _Hop:
    rate: Rate
    inverted: bool

    def ratio(self) -> Fraction:
        mid = Fraction(self.rate.mid)
        return 1 / mid if self.inverted else mid

    def label(self) -> str:
        return f"1/({self.rate.source})" if self.inverted else self.rate.source


def _compose(base: str, quote: str, hops: tuple[_Hop, ...], as_of: datetime, max_age_s: int | None) -> Rate:
    """The route's rate, with the route's max age; a derived mid is its exact value rounded down once."""
    if len(hops) == 1 and not hops[0].inverted:
        direct = hops[0].rate
        return direct if direct.max_age_s == max_age_s else replace(direct, max_age_s=max_age_s)
    ratio = prod((hop.ratio() for hop in hops), start=Fraction(1))
    mid = _derived_context.divide(Decimal(ratio.numerator), Decimal(ratio.denominator))
    return Rate(base, quote, mid, as_of, source=" * ".join(hop.label() for hop in hops), max_age_s=max_age_s)
