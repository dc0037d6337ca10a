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
from datetime import date, datetime, time, timedelta, timezone
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# A calendar must have a business day at least this often: the search for the next (or previous)
# cut-off gives up after this many calendar days, so a calendar whose weekends and holidays cover
# everything is a configuration error, never an endless loop. Chinese New Year, Songkran and Tet
# close a network for at most about nine days in a row.
calendar_days_scan_max: Final = 400
# cycles_between returns at most this many cycles (a year of cut-offs every 5 minutes fits)
cycles_between_max: Final = 200_000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US: Final = timedelta(microseconds=1)
_ID_FORMAT: Final = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class Calendar:
    """A network's settlement calendar (from the profile and config/calendars/<country>.toml)."""

    partner: str
    timezone: str  # IANA name, e.g. "Asia/Bangkok"
    cut_offs: tuple[time, ...]  # local cut-off times, ascending; ignored when every_s is set
    weekends: frozenset[int] = frozenset({6, 7})  # ISO weekdays without a cut-off
    holidays: frozenset[date] = frozenset()
    every_s: float | None = None  # demo/tests: a cut-off every N seconds, every day

    def __post_init__(self) -> None:
        # eager checks (a bad calendar fails where it is made, not at the first cut-off)
        if not self.partner or "-" in self.partner:
            raise ValueError(f"calendar partner {self.partner!r}: a non-empty id without '-' (it starts cycle ids)")
        _zone(self.timezone)
        if not self.weekends <= frozenset(range(1, 8)):
            raise ValueError(f"calendar {self.partner}: weekends {sorted(self.weekends)} are not ISO weekdays 1..7")
        if self.every_s is not None:
            if not (self.every_s >= 1 and float(self.every_s).is_integer()):
                # cycle ids name the cut-off to the second: a fraction would give two cycles one id
                raise ValueError(f"calendar {self.partner}: every_s {self.every_s!r} must be a whole number of seconds >= 1")
            return
        if not self.cut_offs:
            raise ValueError(f"calendar {self.partner}: no cut-off times (and no every_s)")
        if list(self.cut_offs) != sorted(set(self.cut_offs)):
            raise ValueError(f"calendar {self.partner}: cut-off times must be ascending and distinct")
        if any(t.tzinfo is not None for t in self.cut_offs):
            raise ValueError(f"calendar {self.partner}: cut-off times are local wall-clock times, without a zone")
        if len(self.weekends) == 7:
            raise ValueError(f"calendar {self.partner}: every weekday is a weekend")

    def is_business_day(self, day: date) -> bool:
        """A day with cut-offs (in cut-off mode): not a weekend, not a holiday."""
        return day.isoweekday() not in self.weekends and day not in self.holidays


@dataclass(frozen=True, slots=True)
class Cycle:
    id: str  # f"{partner}-{cut_off:%Y%m%dT%H%M%SZ}" (cut_off in UTC)
    partner: str
    opens_at: datetime  # UTC: the previous cut-off; the cycle holds the instants in [opens_at, cut_off)
    cut_off: datetime  # UTC: the cycle closes here
    settlement_date: date  # the business date of the cut-off in the network's time zone


def _cycle(calendar: Calendar, cut_off: datetime) -> Cycle:
    return Cycle(
        id=cycle_id(calendar.partner, cut_off),
        partner=calendar.partner,
        opens_at=_previous_cut_off(calendar, cut_off),
        cut_off=cut_off,
        settlement_date=_local_date(calendar, cut_off),
    )


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} has no time zone: settlement times are aware (UTC)")
    return instant.astimezone(timezone.utc)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Asia/Bangkok)") from None


def _local_date(calendar: Calendar, cut_off: datetime) -> date:
    return cut_off.astimezone(_zone(calendar.timezone)).date()


def _cut_offs_on(calendar: Calendar, zone: ZoneInfo, day: date) -> list[datetime]:
    """The cut-offs of one local day, in UTC, ascending (none on a weekend or holiday). A local
    time a DST change skips happens as many minutes later (zoneinfo's fold=0 reading: 02:30 on
    the spring-forward night is 03:30 summer time); one it repeats happens the first time."""
    if not calendar.is_business_day(day):
        return []
    return sorted({datetime.combine(day, t, tzinfo=zone).astimezone(timezone.utc) for t in calendar.cut_offs})


def _next_cut_off(calendar: Calendar, instant: datetime) -> datetime:
    """The first cut-off strictly after `instant` (UTC)."""
    if calendar.every_s is not None:
        step_us = int(calendar.every_s) * 1_000_000
        since_us = (instant - _EPOCH) // _ONE_US
        return _EPOCH + timedelta(microseconds=(since_us // step_us + 1) * step_us)
    zone = _zone(calendar.timezone)
    # start a day early: a UTC instant's local date may already hold a cut-off before it
    day = instant.astimezone(zone).date() - timedelta(days=1)
    for _ in range(calendar_days_scan_max):
        for cut_off in _cut_offs_on(calendar, zone, day):
            if cut_off > instant:
                return cut_off
        day += timedelta(days=1)
    raise ValueError(f"calendar {calendar.partner}: no business day within {calendar_days_scan_max} days after {instant.isoformat()}")


def _previous_cut_off(calendar: Calendar, instant: datetime) -> datetime:
    """The last cut-off strictly before `instant` (UTC)."""
    if calendar.every_s is not None:
        step_us = int(calendar.every_s) * 1_000_000
        since_us = (instant - _EPOCH) // _ONE_US
        return _EPOCH + timedelta(microseconds=((since_us - 1) // step_us) * step_us)
    zone = _zone(calendar.timezone)
    day = instant.astimezone(zone).date() + timedelta(days=1)
    for _ in range(calendar_days_scan_max):
        for cut_off in reversed(_cut_offs_on(calendar, zone, day)):
            if cut_off < instant:
                return cut_off
        day -= timedelta(days=1)
    raise ValueError(f"calendar {calendar.partner}: no business day within {calendar_days_scan_max} days before {instant.isoformat()}")


def cycle_id(partner: str, cut_off: datetime) -> str:
    return f"{partner}-{_utc(cut_off):{_ID_FORMAT}}"


def cycle_at(calendar: Calendar, instant: datetime) -> Cycle:
    """The cycle open at `instant` (UTC-aware): the first cut-off strictly after it."""
    cut_off = _next_cut_off(calendar, _utc(instant))
    return _cycle(calendar, cut_off)


def cycles_between(calendar: Calendar, start: datetime, end: datetime) -> list[Cycle]:
    """Every cycle whose cut-off lies in (start, end], in order."""
    start, end = _utc(start), _utc(end)
    out: list[Cycle] = []
    if end <= start:
        return out
    opens_at = _previous_cut_off(calendar, _next_cut_off(calendar, start))
    cut_off = _next_cut_off(calendar, start)
    while cut_off <= end:
        if len(out) == cycles_between_max:
            raise ValueError(f"calendar {calendar.partner}: more than {cycles_between_max} cycles between {start} and {end}")
        out.append(Cycle(cycle_id(calendar.partner, cut_off), calendar.partner, opens_at, cut_off, _local_date(calendar, cut_off)))
        opens_at, cut_off = cut_off, _next_cut_off(calendar, cut_off)
    return out


def cycle_by_id(calendar: Calendar, cycle_id_text: str) -> Cycle:
    """The cycle an id names (ValueError when the id is not one of this calendar's cut-offs)."""
    partner, _, stamp = cycle_id_text.partition("-")
    if partner != calendar.partner:
        raise ValueError(f"cycle id {cycle_id_text!r} is not one of {calendar.partner}'s")
    try:
        cut_off = datetime.strptime(stamp, _ID_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"cycle id {cycle_id_text!r}: {stamp!r} is not a UTC time like 20261128T093000Z") from None
    cycle = cycle_at(calendar, cut_off - _ONE_US)
    if cycle.cut_off != cut_off:
        raise ValueError(f"cycle id {cycle_id_text!r}: {cut_off.isoformat()} is not a cut-off of {calendar.partner}'s calendar")
    return cycle


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
    opens_at: datetime  # UTC: the previous cut-off (the cycle holds [opens_at, cut_off))
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
