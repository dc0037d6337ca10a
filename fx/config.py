"""`config/fx.toml`: pivot, staleness, quote validity, default spread and the static rate table.

TOML floats are read as `Decimal` (`parse_float=Decimal`), so `mid = 33.85` is exactly 33.85;
a float reaching the model by any other way is rejected. Each pair is given once, in either
direction; the book derives the inverse. Per-corridor spread and fee belong to the corridor config.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from fx.quote import bps_per_unit
from fx.rates import Rate, RateBook, StaticRateProvider
from switch.domain.money import currency

quote_validity_s_default: Final = 600  # Nexus honours a quote for 600 s


class RateEntry(BaseModel):
    """1 `base` = `mid` `quote`, as of `as_of`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: str
    quote: str
    mid: Decimal = Field(gt=0, allow_inf_nan=False)
    as_of: AwareDatetime

    @field_validator("base", "quote")
    @classmethod
    def _known_currency(cls, code: str) -> str:
        currency(code)
        return code

    @field_validator("mid", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("mid must be an exact decimal, not a float")
        return value

    @model_validator(mode="after")
    def _two_currencies(self) -> RateEntry:
        if self.base == self.quote:
            raise ValueError(f"rate {self.base}/{self.quote} converts a currency to itself")
        return self


class FxConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pivot: str
    # None: static rates never go stale. Set it once a live provider feeds the book.
    stale_after_s: int | None = Field(default=None, gt=0, strict=True)
    quote_validity_s: int = Field(default=quote_validity_s_default, gt=0, strict=True)
    spread_bps_default: int = Field(ge=0, lt=bps_per_unit, strict=True)
    rates: tuple[RateEntry, ...] = Field(min_length=1)

    @field_validator("pivot")
    @classmethod
    def _known_pivot(cls, code: str) -> str:
        currency(code)
        return code

    @model_validator(mode="after")
    def _each_pair_once(self) -> FxConfig:
        seen: set[frozenset[str]] = set()
        for entry in self.rates:
            pair = frozenset((entry.base, entry.quote))
            if pair in seen:
                raise ValueError(f"pair {entry.base}/{entry.quote} is given twice (either direction)")
            seen.add(pair)
        return self

    def static_provider(self) -> StaticRateProvider:
        return StaticRateProvider(
            tuple(Rate(e.base, e.quote, e.mid, e.as_of, source=f"static:{e.base}/{e.quote}") for e in self.rates)
        )

    def rate_book(self) -> RateBook:
        """A book seeded with the static rates (a live provider's `update`s come on top)."""
        return RateBook(pivot=self.pivot, stale_after_s=self.stale_after_s, rates=self.static_provider().table)


def load_fx_config(path: Path) -> FxConfig:
    with path.open("rb") as f:
        return FxConfig.model_validate(tomllib.load(f, parse_float=Decimal))
