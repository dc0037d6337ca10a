"""Corridor rules decided at admission (issue 11 item 2): whether a corridor is open now (its
operating hours in its own time zone, its holidays), whether its partner or the corridor itself
was switched off by an operator, and whether an amount fits the debtor's tier (per transaction
and per debtor per day).

Each refusal is a `CorridorRefusal`: a label for switch_corridor_refusals_total{reason} and the
ISO 20022 external status reason code the participant hears (ExternalStatusReason1Code):
- disabled    AG01 TransactionForbidden: the operator has closed the corridor; the same code
              the switch already answers for a corridor it does not serve.
- paused      AB08 OfflineCreditorAgent ("Creditor Agent is not online"): the partner network
              (the creditor agent's side) is paused, which is what the code says; a participant
              may retry later, unlike AG01.
- closed      TM01 InvalidCutOffTime ("received after the agreed processing cut-off time"):
              outside the corridor's operating hours; the code ISO has for a cut-off.
- holiday     TM01 as well: a holiday is a day-long cut-off (the label tells them apart).
- tx_limit    AM02 NotAllowedAmount ("transaction amount greater than allowed maximum").
- daily_limit AM14 AmountExceedsAgreedLimit ("exceeds limits agreed between bank and client"):
              a debtor's tier is such an agreed limit, per day; AM02 speaks of one transaction.

Pure: no I/O; `now` is always an argument. Amounts are integer minor units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # ISO weekday 1..7 -> index + 1


class RefusalReason(StrEnum):
    """The label of switch_corridor_refusals_total{reason}: a fixed set."""

    DISABLED = "disabled"
    PAUSED = "paused"
    CLOSED = "closed"
    HOLIDAY = "holiday"
    TX_LIMIT = "tx_limit"
    DAILY_LIMIT = "daily_limit"


REASON_CODES: Final[Mapping[RefusalReason, str]] = {
    RefusalReason.DISABLED: "AG01",
    RefusalReason.PAUSED: "AB08",
    RefusalReason.CLOSED: "TM01",
    RefusalReason.HOLIDAY: "TM01",
    RefusalReason.TX_LIMIT: "AM02",
    RefusalReason.DAILY_LIMIT: "AM14",
}


@dataclass(frozen=True, slots=True)
class CorridorRefusal:
    reason: RefusalReason
    detail: str

    @property
    def reason_code(self) -> str:
        return REASON_CODES[self.reason]


# ----------------------------------------------------------------------------- hours and holidays


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_window(text: str) -> tuple[time, time]:
    """'08:00-17:30' -> (08:00, 17:30): a window of one day, start before end ('00:00-24:00' is
    the whole day; a window over midnight is two, one on each day)."""
    try:
        start_text, end_text = (part.strip() for part in text.split("-"))
        start = time.fromisoformat(start_text)
        end = time.max if end_text == "24:00" else time.fromisoformat(end_text)
    except ValueError:
        raise ValueError(f"operating hours {text!r}: expected HH:MM-HH:MM") from None
    if not start < end:
        raise ValueError(f"operating hours {text!r}: the window must start before it ends (split one over midnight)")
    return start, end


@dataclass(frozen=True, slots=True)
class OperatingHours:
    """When a corridor takes new instructions: windows per ISO weekday in its time zone, and the
    holidays (local dates) when it takes none. A weekday without windows is closed all day."""

    timezone: str
    windows: Mapping[int, tuple[tuple[time, time], ...]]  # ISO weekday -> [start, end) windows
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        zone(self.timezone)
        if not set(self.windows) <= set(range(1, 8)):
            raise ValueError(f"operating hours: weekdays {sorted(self.windows)} are not ISO weekdays 1..7")

    def refusal(self, now: datetime) -> CorridorRefusal | None:
        """None when open at `now` (aware), else why not."""
        local = now.astimezone(zone(self.timezone))
        if local.date() in self.holidays:
            return CorridorRefusal(RefusalReason.HOLIDAY, f"{local.date().isoformat()} is a holiday of this corridor ({self.timezone})")
        clock = local.time().replace(tzinfo=None)
        for start, end in self.windows.get(local.isoweekday(), ()):
            if start <= clock < end or (end == time.max and clock >= start):
                return None
        return CorridorRefusal(
            RefusalReason.CLOSED,
            f"outside operating hours: {WEEKDAYS[local.isoweekday() - 1]} {clock.strftime('%H:%M')} {self.timezone} "
            f"({self.describe(local.isoweekday())})",
        )

    def describe(self, weekday: int) -> str:
        spans = self.windows.get(weekday, ())
        if not spans:
            return "closed all day"
        return "open " + ", ".join(f"{s.strftime('%H:%M')}-{'24:00' if e == time.max else e.strftime('%H:%M')}" for s, e in spans)


def hours_from_table(timezone_name: str, table: Mapping[str, tuple[str, ...]], holidays: frozenset[date]) -> OperatingHours:
    """From corridors.toml: {"mon": ["08:00-17:00"], ...}; a weekday not listed is closed."""
    windows: dict[int, tuple[tuple[time, time], ...]] = {}
    for day, spans in table.items():
        if day not in WEEKDAYS:
            raise ValueError(f"operating hours: {day!r} is not one of {', '.join(WEEKDAYS)}")
        parsed = sorted(parse_window(s) for s in spans)
        for (_, end), (start, _) in zip(parsed, parsed[1:]):
            if start < end:
                raise ValueError(f"operating hours on {day}: windows overlap")
        windows[WEEKDAYS.index(day) + 1] = tuple(parsed)
    return OperatingHours(timezone_name, windows, holidays)


# ----------------------------------------------------------------------------- limits per tier


@dataclass(frozen=True, slots=True)
class TierLimits:
    """A debtor tier's limits in one source currency, minor units; None: no such limit."""

    tier: str
    tx_max_minor: int | None
    day_max_minor: int | None


def tx_refusal(limits: TierLimits, amount_minor: int, shown: str) -> CorridorRefusal | None:
    if limits.tx_max_minor is not None and amount_minor > limits.tx_max_minor:
        return CorridorRefusal(RefusalReason.TX_LIMIT, f"{shown} is above the {limits.tier} tier's maximum per payment")
    return None


def day_refusal(limits: TierLimits, used_minor: int, amount_minor: int, shown: str) -> CorridorRefusal | None:
    """Whether `amount_minor` on top of what the debtor already sent today stays within the day."""
    if limits.day_max_minor is not None and used_minor + amount_minor > limits.day_max_minor:
        return CorridorRefusal(
            RefusalReason.DAILY_LIMIT, f"{shown} would take the debtor over the {limits.tier} tier's daily maximum on this corridor"
        )
    return None


def usage_day(now: datetime, timezone_name: str) -> date:
    """The day a debtor's usage counts in: the local date at `now` in `timezone_name`."""
    return now.astimezone(zone(timezone_name)).date()


# ----------------------------------------------------------------------------- run-time controls


class ControlKind(StrEnum):
    CORRIDOR = "corridor"
    PARTNER = "partner"


@dataclass(frozen=True, slots=True)
class Control:
    """An operator's switch on a corridor (off = disabled) or a partner (off = paused), as stored:
    who set it, when and why, and the row version that decides concurrent changes."""

    kind: ControlKind
    subject: str  # corridor id or partner id
    off: bool
    reason: str
    changed_by: str
    changed_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class Controls:
    """The stored controls, read once per admission batch."""

    items: Mapping[tuple[ControlKind, str], Control]

    @classmethod
    def of(cls, controls: list[Control] | tuple[Control, ...]) -> "Controls":
        return cls({(c.kind, c.subject): c for c in controls})

    def off(self, kind: ControlKind, subject: str) -> Control | None:
        found = self.items.get((kind, subject))
        return found if found is not None and found.off else None

    def refusal(self, corridor: str, partner: str) -> CorridorRefusal | None:
        disabled = self.off(ControlKind.CORRIDOR, corridor)
        if disabled is not None:
            return CorridorRefusal(RefusalReason.DISABLED, f"corridor {corridor} is disabled: {disabled.reason}")
        paused = self.off(ControlKind.PARTNER, partner)
        if paused is not None:
            return CorridorRefusal(RefusalReason.PAUSED, f"partner {partner} is paused: {paused.reason}; try again later")
        return None


NO_CONTROLS: Final = Controls({})
EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
