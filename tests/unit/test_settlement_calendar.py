"""Settlement cycles (issue 10, switch/domain/settlement.py): cut-offs on business days in the
network's time zone, cycles chained cut-off to cut-off, every_s cycles for the demo, cycle ids that
name a cut-off; and the profiles' [settlement] sections with their calendars (adapters/base.py)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapters.base import PartnerSettlement, load_calendar_file, load_profile
from adapters.registry import load_partners, profile_path
from iso20022.reports import REPORT_VERSIONS
from switch.config import DEFAULT_CONFIG_DIR, load
from switch.domain.settlement import Calendar, Cycle, cycle_at, cycle_by_id, cycle_id, cycles_between

UTC = timezone.utc
PARTNERS = ("promptpay", "lapnet", "napas", "unionpay")
# Bangkok is UTC+7 all year: 11:00 local = 04:00Z, 16:00 local = 09:00Z
BANGKOK = Calendar("promptpay", "Asia/Bangkok", (time(11), time(16)))


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ----------------------------------------------------------------------------- ids
def test_a_cycle_id_is_the_partner_and_its_cut_off_in_utc() -> None:
    cut_off = datetime(2026, 11, 28, 16, 30, tzinfo=timezone(timedelta(hours=7)))
    assert cycle_id("lapnet", cut_off) == "lapnet-20261128T093000Z"


def test_a_cycle_id_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        cycle_id("lapnet", datetime(2026, 11, 28, 9, 30))


# ----------------------------------------------------------------------------- cut-off mode
def test_the_cycle_open_at_an_instant_closes_at_the_next_cut_off() -> None:
    cycle = cycle_at(BANGKOK, _utc(2026, 12, 2, 5, 0))  # Wednesday 12:00 local
    assert cycle == Cycle("promptpay-20261202T090000Z", "promptpay", _utc(2026, 12, 2, 4), _utc(2026, 12, 2, 9), date(2026, 12, 2))


def test_an_instant_on_a_cut_off_belongs_to_the_next_cycle() -> None:
    # the books take what became final strictly before the cut-off: [opens_at, cut_off)
    assert cycle_at(BANGKOK, _utc(2026, 12, 2, 9)).cut_off == _utc(2026, 12, 3, 4)
    assert cycle_at(BANGKOK, _utc(2026, 12, 2, 9) - timedelta(microseconds=1)).cut_off == _utc(2026, 12, 2, 9)


def test_the_weekend_has_no_cut_off_and_monday_s_first_cycle_opens_on_friday() -> None:
    saturday_noon = _utc(2026, 12, 12, 5)
    cycle = cycle_at(BANGKOK, saturday_noon)
    assert cycle.cut_off == _utc(2026, 12, 14, 4)  # Monday 11:00 local
    assert cycle.opens_at == _utc(2026, 12, 11, 9)  # Friday 16:00 local
    assert cycle.settlement_date == date(2026, 12, 14)


def test_a_holiday_has_no_cut_off() -> None:
    calendar = Calendar("promptpay", "Asia/Bangkok", (time(11), time(16)), holidays=frozenset({date(2026, 12, 10)}))
    cycle = cycle_at(calendar, _utc(2026, 12, 9, 10))  # Wednesday after the last cut-off; Thursday is a holiday
    assert cycle.cut_off == _utc(2026, 12, 11, 4)
    assert cycle.opens_at == _utc(2026, 12, 9, 9)


def test_custom_weekends_are_honoured() -> None:
    # a network closed Fridays and Saturdays
    calendar = Calendar("promptpay", "Asia/Bangkok", (time(16),), weekends=frozenset({5, 6}))
    assert cycle_at(calendar, _utc(2026, 12, 10, 10)).cut_off == _utc(2026, 12, 13, 9)  # Thursday evening -> Sunday


def test_the_settlement_date_is_the_local_date_of_the_cut_off() -> None:
    # 05:00 in Bangkok is 22:00 the day before in UTC
    calendar = Calendar("promptpay", "Asia/Bangkok", (time(5),))
    cycle = cycle_at(calendar, _utc(2026, 12, 1, 12))
    assert cycle.cut_off == _utc(2026, 12, 1, 22)
    assert cycle.settlement_date == date(2026, 12, 2)
    assert cycle.id == "promptpay-20261201T220000Z"


def test_cycles_between_are_contiguous_and_take_cut_offs_in_start_end() -> None:
    start, end = _utc(2026, 12, 10, 9), _utc(2026, 12, 15, 9)  # Thursday 16:00 local .. Tuesday 16:00 local
    cycles = cycles_between(BANGKOK, start, end)
    assert [c.cut_off for c in cycles] == [
        _utc(2026, 12, 11, 4), _utc(2026, 12, 11, 9), _utc(2026, 12, 14, 4), _utc(2026, 12, 14, 9), _utc(2026, 12, 15, 4),
        _utc(2026, 12, 15, 9),
    ]
    assert cycles[0].opens_at == start
    assert all(later.opens_at == earlier.cut_off for earlier, later in zip(cycles, cycles[1:]))


def test_cycles_between_an_empty_or_reversed_interval_is_empty() -> None:
    assert cycles_between(BANGKOK, _utc(2026, 12, 2, 5), _utc(2026, 12, 2, 8)) == []
    assert cycles_between(BANGKOK, _utc(2026, 12, 3), _utc(2026, 12, 2)) == []


# ----------------------------------------------------------------------------- DST
PARIS = Calendar("sepa", "Europe/Paris", (time(10),))


def test_a_cut_off_follows_local_time_across_the_spring_change() -> None:
    # Paris moves from UTC+1 to UTC+2 on Sunday 29 March 2026
    friday, monday = cycles_between(PARIS, _utc(2026, 3, 26, 12), _utc(2026, 3, 30, 12))
    assert friday.cut_off == _utc(2026, 3, 27, 9)
    assert monday.cut_off == _utc(2026, 3, 30, 8)
    assert monday.opens_at == friday.cut_off
    assert monday.settlement_date == date(2026, 3, 30)


def test_a_cut_off_follows_local_time_across_the_autumn_change() -> None:
    # back to UTC+1 on Sunday 25 October 2026
    friday, monday = cycles_between(PARIS, _utc(2026, 10, 22, 12), _utc(2026, 10, 26, 12))
    assert (friday.cut_off, monday.cut_off) == (_utc(2026, 10, 23, 8), _utc(2026, 10, 26, 9))


def test_a_cut_off_in_the_skipped_hour_happens_as_much_later() -> None:
    calendar = Calendar("sepa", "Europe/Paris", (time(2, 30),), weekends=frozenset())
    cycle = cycle_at(calendar, _utc(2026, 3, 29, 0))
    assert cycle.cut_off == _utc(2026, 3, 29, 1, 30)  # 03:30 summer time: 02:30 does not exist that night
    assert cycle.opens_at == _utc(2026, 3, 28, 1, 30)  # 02:30 winter time the night before


def test_a_cut_off_in_the_repeated_hour_happens_the_first_time() -> None:
    calendar = Calendar("sepa", "Europe/Paris", (time(2, 30),), weekends=frozenset())
    cycle = cycle_at(calendar, _utc(2026, 10, 24, 23))
    assert cycle.cut_off == _utc(2026, 10, 25, 0, 30)  # 02:30 summer time, not 02:30 winter time an hour later
    nxt = cycle_at(calendar, cycle.cut_off)
    assert nxt.cut_off == _utc(2026, 10, 26, 1, 30)


def test_the_cycles_of_a_year_with_two_clock_changes_chain_without_gaps() -> None:
    cycles = cycles_between(PARIS, _utc(2026, 1, 1), _utc(2027, 1, 1))
    assert len(cycles) == 261  # the weekdays of 2026
    assert all(later.opens_at == earlier.cut_off for earlier, later in zip(cycles, cycles[1:]))
    assert all(c.cut_off.astimezone(_paris()).time() == time(10) for c in cycles)


def _paris():  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Paris")


# ----------------------------------------------------------------------------- every_s mode
def test_every_s_cut_offs_are_multiples_of_every_s_since_the_epoch() -> None:
    calendar = Calendar("lapnet", "Asia/Vientiane", (), every_s=300)
    cycle = cycle_at(calendar, _utc(2026, 12, 12, 10, 2, 17))  # a Saturday: every_s cycles run every day
    assert cycle.cut_off == _utc(2026, 12, 12, 10, 5)
    assert cycle.opens_at == _utc(2026, 12, 12, 10, 0)
    assert int(cycle.cut_off.timestamp()) % 300 == 0
    assert cycle.id == "lapnet-20261212T100500Z"


def test_every_s_on_a_cut_off_opens_the_next_cycle() -> None:
    calendar = Calendar("lapnet", "Asia/Vientiane", (), every_s=60)
    assert cycle_at(calendar, _utc(2026, 12, 12, 10, 5)).cut_off == _utc(2026, 12, 12, 10, 6)


def test_every_s_settlement_date_is_the_cut_off_s_local_date() -> None:
    calendar = Calendar("lapnet", "Asia/Vientiane", (), every_s=3600)
    cycle = cycle_at(calendar, _utc(2026, 12, 12, 17, 30))  # cut-off 18:00Z = 01:00 in Vientiane the next day
    assert cycle.settlement_date == date(2026, 12, 13)


def test_every_s_cycles_between_chain() -> None:
    calendar = Calendar("lapnet", "Asia/Vientiane", (), every_s=120)
    cycles = cycles_between(calendar, _utc(2026, 12, 12, 10, 1), _utc(2026, 12, 12, 10, 10))
    assert [c.cut_off.minute for c in cycles] == [2, 4, 6, 8, 10]
    assert cycles[0].opens_at == _utc(2026, 12, 12, 10, 0)
    assert all(later.opens_at == earlier.cut_off for earlier, later in zip(cycles, cycles[1:]))


# ----------------------------------------------------------------------------- cycle_by_id
def test_cycle_by_id_gives_back_the_cycle() -> None:
    cycle = cycle_at(BANGKOK, _utc(2026, 12, 12, 5))
    assert cycle_by_id(BANGKOK, cycle.id) == cycle


@pytest.mark.parametrize(
    "text, message",
    [
        ("lapnet-20261214T040000Z", "not one of promptpay's"),
        ("promptpay-20261214T050000Z", "not a cut-off"),  # Monday 12:00 local
        ("promptpay-20261212T040000Z", "not a cut-off"),  # Saturday 11:00 local
        ("promptpay-2026-12-14", "not a UTC time"),
        ("promptpay20261214T040000Z", "not one of promptpay's"),
    ],
)
def test_cycle_by_id_refuses_an_id_that_names_no_cut_off(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cycle_by_id(BANGKOK, text)


# ----------------------------------------------------------------------------- Calendar checks
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"timezone": "Asia/Phnom_Pen"}, "unknown time zone"),
        ({"cut_offs": (time(16), time(11))}, "ascending"),
        ({"cut_offs": ()}, "no cut-off"),
        ({"weekends": frozenset(range(1, 8))}, "every weekday"),
        ({"weekends": frozenset({0})}, "ISO weekdays"),
        ({"every_s": 0.5}, "whole number"),
        ({"every_s": 0}, "whole number"),
        ({"partner": "pay-now"}, "without '-'"),
    ],
)
def test_a_calendar_that_cannot_work_is_refused_when_made(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"partner": "promptpay", "timezone": "Asia/Bangkok", "cut_offs": (time(11),), **kwargs}
    with pytest.raises(ValueError, match=message):
        Calendar(**fields)  # type: ignore[arg-type]


def test_a_calendar_with_no_business_day_for_a_year_is_refused_at_the_search() -> None:
    holidays = frozenset(date(2026, 1, 1) + timedelta(days=n) for n in range(800))
    calendar = Calendar("promptpay", "Asia/Bangkok", (time(11),), weekends=frozenset(), holidays=holidays)
    with pytest.raises(ValueError, match="no business day"):
        cycle_at(calendar, _utc(2026, 6, 1))


# ----------------------------------------------------------------------------- profiles and calendars
@pytest.mark.parametrize("partner", PARTNERS)
def test_every_shipped_profile_has_a_settlement_calendar_with_cycles_in_2026_and_2027(partner: str) -> None:
    profile = load_profile(profile_path(DEFAULT_CONFIG_DIR, partner))
    assert profile.settlement is not None
    assert profile.settlement.report in REPORT_VERSIONS
    calendar = profile.settlement_calendar(DEFAULT_CONFIG_DIR)
    assert calendar.partner == partner and calendar.every_s is None
    cycles = cycles_between(calendar, _utc(2026, 1, 1), _utc(2028, 1, 1))
    business_days = {c.settlement_date for c in cycles}
    assert not business_days & calendar.holidays
    assert all(d.isoweekday() not in calendar.weekends for d in business_days)
    assert 480 <= len(business_days) <= 522  # two years of weekdays, less the holidays


def test_the_shipped_profiles_exercise_both_report_kinds() -> None:
    reports = {load_profile(profile_path(DEFAULT_CONFIG_DIR, p)).settlement.report for p in PARTNERS}  # type: ignore[union-attr]
    assert reports == {"camt.053.001.08", "camt.054.001.08"}


@pytest.mark.parametrize("name", ["th", "la", "vn", "cn"])
def test_every_shipped_holiday_says_how_sure_it_is(name: str) -> None:
    calendar = load_calendar_file(DEFAULT_CONFIG_DIR / "calendars" / f"{name}.toml")
    years = {h.date.year for h in calendar.holidays}
    assert years == {2026, 2027}
    assert all(h.mark in ("V", "O", "U") and h.name for h in calendar.holidays)


def test_promptpay_s_calendar_skips_new_year_s_day() -> None:
    calendar = load_profile(profile_path(DEFAULT_CONFIG_DIR, "promptpay")).settlement_calendar(DEFAULT_CONFIG_DIR)
    cycle = cycle_at(calendar, _utc(2026, 12, 31, 12))  # 19:00 on New Year's Eve, itself a holiday
    assert cycle.settlement_date == date(2027, 1, 4)  # 1 Jan is a holiday, then the weekend


def test_the_environment_sets_every_s_for_a_simulator() -> None:
    profile = load_profile(profile_path(DEFAULT_CONFIG_DIR, "napas"))
    calendar = profile.settlement_calendar(DEFAULT_CONFIG_DIR, env={"MEKONG_PARTNER_SETTLEMENT_EVERY_S_NAPAS": "90",
                                                                   "MEKONG_PARTNER_SETTLEMENT_EVERY_S_LAPNET": "30"})
    assert calendar.every_s == 90
    assert profile.settlement_calendar(DEFAULT_CONFIG_DIR).every_s is None


def test_a_fractional_every_s_from_the_environment_is_refused() -> None:
    profile = load_profile(profile_path(DEFAULT_CONFIG_DIR, "napas"))
    with pytest.raises(ValidationError, match="whole number"):
        profile.settlement_calendar(DEFAULT_CONFIG_DIR, env={"MEKONG_PARTNER_SETTLEMENT_EVERY_S_NAPAS": "2.5"})


def test_the_environment_sets_every_s_in_the_switch_s_profiles() -> None:
    cfg = load(DEFAULT_CONFIG_DIR, env={"MEKONG_PARTNER_SETTLEMENT_EVERY_S_LAPNET": "120"})
    assert cfg.partner_timing == {"lapnet": {"settlement_every_s": 120.0}}
    mappings = load_partners(Path(cfg.config_dir), {"lapnet", "napas"}, switch_bic=cfg.switch.agent_bic, timing=cfg.partner_timing)
    lapnet, napas = mappings["lapnet"].profile, mappings["napas"].profile
    assert lapnet.settlement is not None and lapnet.settlement.every_s == 120
    assert lapnet.settlement.cut_offs  # the rest of [settlement] is kept
    assert napas.settlement is not None and napas.settlement.every_s is None
    assert lapnet.settlement_calendar(Path(cfg.config_dir)).every_s == 120


def test_a_profile_without_settlement_has_no_calendar() -> None:
    profile = load_profile(profile_path(DEFAULT_CONFIG_DIR, "lapnet")).model_copy(update={"settlement": None})
    with pytest.raises(ValueError, match="no \\[settlement\\]"):
        profile.settlement_calendar(DEFAULT_CONFIG_DIR)


SETTLEMENT = {"currency": "THB", "timezone": "Asia/Bangkok", "cut_offs": ["11:00", "16:00"], "report": "camt.053.001.08",
              "report_due_s": 3600, "account_id": "HUB-THB-1"}


def test_an_inline_calendar_is_read_from_the_profile() -> None:
    settlement = PartnerSettlement.model_validate({**SETTLEMENT, "weekends": [7], "holidays": [date(2026, 12, 10)]})
    profile = load_profile(profile_path(DEFAULT_CONFIG_DIR, "promptpay")).model_copy(update={"settlement": settlement})
    calendar = profile.settlement_calendar(Path("/nonexistent"))
    assert calendar.weekends == frozenset({7}) and calendar.holidays == frozenset({date(2026, 12, 10)})
    assert calendar.cut_offs == (time(11), time(16))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"cut_offs": ["11:00", "24:00"]}, "not a local time"),
        ({"cut_offs": ["1100"]}, "not a local time"),
        ({"cut_offs": ["16:00", "11:00"]}, "ascending"),
        ({"cut_offs": []}, "needs cut_offs"),
        ({"report": "camt.052.001.08"}, "camt.053.001.08"),
        ({"timezone": "Asia/Phnom_Pen"}, "not an IANA time zone"),
        ({"calendar": "calendars/th.toml", "holidays": [date(2026, 1, 1)]}, "not both"),
        ({"every_s": 2.5}, "whole number"),
        ({"every_s": 0}, "greater than or equal to 1"),
        ({"report_due_s": 0}, "greater than 0"),
        ({"page_entries_max": 0}, "greater than or equal to 1"),
        ({"currency": "thb"}, "pattern"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_a_wrong_settlement_section_is_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PartnerSettlement.model_validate({**SETTLEMENT, **change})


def test_every_s_alone_makes_a_settlement_section() -> None:
    settlement = PartnerSettlement.model_validate({**SETTLEMENT, "cut_offs": [], "every_s": 60})
    assert settlement.every_s == 60 and settlement.page_entries_max == 1000
