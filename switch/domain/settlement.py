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


# ---------------------------------------------------------------- the stored cycle (table settlement_cycles)
# Kept apart from the calendar above: what the switch records about each cycle as it closes it,
# receives the partner's report and reconciles it.

from datetime import timedelta  # noqa: E402 - with the class it serves
from enum import StrEnum  # noqa: E402

# How far before a cycle opens the close still looks for movements not booked yet (a commit that
# raced the previous close, cycles missed while the switch was down). Bounds the close's scan of
# the payment history to recent rows however long the switch has run; a movement whose outcome
# is older than this and never booked (the payments of before issue 10) is left out.
books_lookback_s_max: int = 7 * 86_400


class CycleState(StrEnum):
    OPEN = "open"  # before its cut-off, or past it and not closed yet
    CLOSED = "closed"  # books fixed at the cut-off; waiting for the partner's report (or matching it)
    RECONCILED = "reconciled"  # the report matched against the books; findings and positions in `summary`


@dataclass(frozen=True, slots=True)
class SettlementCycle:
    """One partner's settlement cycle as the switch keeps it. Moves open -> closed ->
    reconciled; every write checks `version` (replicas race to close and to reconcile it)."""

    id: str  # Cycle.id
    partner: str
    currency: str  # the network's settlement currency (a cycle may also book movements in others)
    opens_at: datetime  # UTC, exclusive: the previous cut-off
    cut_off: datetime  # UTC
    settlement_date: date
    state: CycleState = CycleState.OPEN
    closed_at: datetime | None = None
    reconciled_at: datetime | None = None
    books_count: int = 0  # movements booked into it at close (and later by resolutions)
    report_id: str | None = None  # Stmt/Id | Ntfctn/Id of the partner's report
    report_pages: int = 0  # pages received
    report_last_page: int | None = None  # the page number of the last page, once it arrived
    entries_count: int = 0  # report entries received over all pages
    summary: str | None = None  # JSON text: counts and amounts per finding kind, positions, resolved by the switch
    version: int = 1

    @property
    def report_complete(self) -> bool:
        """The last page arrived and so did every page before it. Pages are counted as they
        arrive, each (report, page) once, so more than the last page number means a second
        report for the cycle, which is complete too (its duplicates become findings)."""
        return self.report_last_page is not None and self.report_pages >= self.report_last_page

    @property
    def books_from(self) -> datetime:
        """The earliest outcome time the close books (see books_lookback_s_max)."""
        return self.opens_at - timedelta(seconds=books_lookback_s_max)

    @classmethod
    def opened(cls, cycle: Cycle, currency: str) -> SettlementCycle:
        """The stored record of a calendar cycle, open."""
        return cls(
            id=cycle.id, partner=cycle.partner, currency=currency, opens_at=cycle.opens_at, cut_off=cycle.cut_off,
            settlement_date=cycle.settlement_date,
        )
