"""Settlement cycles (issue 10): when each partner network's cycle closes, and which business
date it settles on.

A partner profile's `[settlement]` section (adapters/base.py PartnerSettlement) names its cut-off
times in the network's own time zone, the weekends and holidays of its calendar (config/calendars),
the settlement currency and the report the network sends. A cycle runs from one cut-off to the
next; a cut-off falls only on a business day; the cycle's settlement date is the business date of
its cut-off. For the demo and tests a profile may instead close a cycle every `every_s` seconds
(aligned on multiples of it since the epoch, so that every replica and simulator agrees).

A cycle's id is the partner and its cut-off in UTC: `lapnet-20261128T093000Z`; anyone who knows
the calendar computes the same id.

Pure: no I/O; `now` is always an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time


@dataclass(frozen=True, slots=True)
class Calendar:
    """A network's settlement calendar (from the profile and config/calendars/<country>.toml)."""

    partner: str
    timezone: str  # IANA name, e.g. "Asia/Bangkok"
    cut_offs: tuple[time, ...]  # local cut-off times, ascending; ignored when every_s is set
    weekends: frozenset[int] = frozenset({6, 7})  # ISO weekdays without a cut-off
    holidays: frozenset[date] = frozenset()
    every_s: float | None = None  # demo/tests: a cut-off every N seconds, every day


@dataclass(frozen=True, slots=True)
class Cycle:
    id: str  # f"{partner}-{cut_off:%Y%m%dT%H%M%SZ}" (cut_off in UTC)
    partner: str
    opens_at: datetime  # UTC: the previous cut-off (exclusive start)
    cut_off: datetime  # UTC: the cycle closes here
    settlement_date: date  # the business date of the cut-off in the network's time zone


def cycle_id(partner: str, cut_off: datetime) -> str:
    raise NotImplementedError


def cycle_at(calendar: Calendar, instant: datetime) -> Cycle:
    """The cycle open at `instant` (UTC-aware): the first cut-off strictly after it."""
    raise NotImplementedError


def cycles_between(calendar: Calendar, start: datetime, end: datetime) -> list[Cycle]:
    """Every cycle whose cut-off lies in (start, end], in order."""
    raise NotImplementedError


def cycle_by_id(calendar: Calendar, cycle_id_text: str) -> Cycle:
    """The cycle an id names (ValueError when the id is not one of this calendar's cut-offs)."""
    raise NotImplementedError
