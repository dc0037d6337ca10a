"""`config/fx.toml`: pivot, staleness, quote validity, default spread, the static rate table and
the live rate providers (an HTTP feed, a Kafka rate topic: fx/providers.py).

Staleness (docs/operations/fx-quotes.md): `stale_after_s` is the guard for the live providers' rates;
the static table's rates are stamped with the time they are loaded and quote for
`static_max_age_s` from then (a table nobody reloads stops quoting instead of quoting forever).

TOML floats are read as `Decimal` (`parse_float=Decimal`), so `mid = 33.85` is exactly 33.85;
a float reaching the model by any other way is rejected. Each pair is given once, in either
direction; the book derives the inverse. Per-corridor spread and fee belong to the corridor config.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from datetime import UTC, datetime

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


class HttpFeedConfig(BaseModel):
    """A JSON rate feed polled over HTTP (fx/providers.py HttpRateFeed; format in the doc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    url: str | None = None  # MEKONG_FX_FEED_URL overrides it
    poll_s: float = Field(default=30.0, gt=0, le=3600)
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    backoff_s_min: float = Field(default=1.0, gt=0, le=60)
    backoff_s_max: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _sane(self) -> HttpFeedConfig:
        if self.backoff_s_min > self.backoff_s_max:
            raise ValueError("backoff_s_min is above backoff_s_max")
        return self


class KafkaRatesConfig(BaseModel):
    """JSON rate records on a Kafka topic (fx/providers.py; format in the doc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    topic: str = "mekong.fx.rates"


class ProvidersConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    http: HttpFeedConfig = HttpFeedConfig()
    kafka: KafkaRatesConfig = KafkaRatesConfig()


class FxConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pivot: str
    # the staleness guard for the live providers' rates; None: they never go stale (and neither
    # do the static rates, unless static_max_age_s is set)
    stale_after_s: int | None = Field(default=None, gt=0, strict=True)
    # set: the static rates are stamped with their load time and quote this long from then
    # (their `as_of` in the file only documents when they were typed); unset: their file `as_of`
    # counts, under stale_after_s
    static_max_age_s: int | None = Field(default=None, gt=0, strict=True)
    providers: ProvidersConfig = ProvidersConfig()
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

    def static_provider(self, loaded_at: datetime | None = None) -> StaticRateProvider:
        """The static table; with `static_max_age_s`, stamped `loaded_at` (default: now, the
        moment the caller loads it: the composition root passes its clock)."""
        if self.static_max_age_s is not None:
            loaded_at = loaded_at or datetime.now(UTC)
            return StaticRateProvider(
                tuple(
                    Rate(e.base, e.quote, e.mid, loaded_at, source=f"static:{e.base}/{e.quote}", max_age_s=self.static_max_age_s)
                    for e in self.rates
                )
            )
        return StaticRateProvider(
            tuple(Rate(e.base, e.quote, e.mid, e.as_of, source=f"static:{e.base}/{e.quote}") for e in self.rates)
        )

    def rate_book(self, loaded_at: datetime | None = None) -> RateBook:
        """A book seeded with the static rates (a live provider's `update`s come on top)."""
        return RateBook(pivot=self.pivot, stale_after_s=self.stale_after_s, rates=self.static_provider(loaded_at).table)


def load_fx_config(path: Path, env: Mapping[str, str] | None = None) -> FxConfig:
    """The file, with MEKONG_FX_FEED_URL (the HTTP feed's URL) from `env` when given."""
    with path.open("rb") as f:
        config = FxConfig.model_validate(tomllib.load(f, parse_float=Decimal))
    url = (env or {}).get("MEKONG_FX_FEED_URL")
    if url:
        http = config.providers.http.model_copy(update={"url": url})
        config = config.model_copy(update={"providers": config.providers.model_copy(update={"http": http})})
    if config.providers.http.enabled and not config.providers.http.url:
        raise ValueError(f"{path}: [providers.http] is enabled but has no url (or set MEKONG_FX_FEED_URL)")
    return config
