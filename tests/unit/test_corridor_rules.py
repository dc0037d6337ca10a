"""The corridor rules of issue 11, pure: operating hours in the corridor's time zone, holidays,
debtor tiers per payment and per day, the operators' switches, and their reading from
corridors.toml."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from pathlib import Path

import pytest

from switch import config as config_mod
from switch.config import PROJECT_ROOT
from switch.domain.corridor_rules import (
    Control,
    ControlKind,
    Controls,
    RefusalReason,
    TierLimits,
    day_refusal,
    hours_from_table,
    parse_window,
    tx_refusal,
    usage_day,
)

UTC = timezone.utc
WEEKDAYS_9_TO_5 = {d: ("09:00-17:00",) for d in ("mon", "tue", "wed", "thu", "fri")}
HANOI = hours_from_table("Asia/Ho_Chi_Minh", WEEKDAYS_9_TO_5, frozenset({date(2026, 9, 2)}))


def test_inside_the_window_in_the_corridors_time_zone_is_open() -> None:
    # Monday 30 Nov 2026 02:00 UTC is 09:00 in Hanoi (UTC+7)
    assert HANOI.refusal(datetime(2026, 11, 30, 2, 0, tzinfo=UTC)) is None


def test_before_the_window_is_closed_with_tm01_and_says_when_it_opens() -> None:
    refusal = HANOI.refusal(datetime(2026, 11, 30, 1, 59, tzinfo=UTC))  # 08:59 in Hanoi
    assert refusal is not None
    assert (refusal.reason, refusal.reason_code) == (RefusalReason.CLOSED, "TM01")
    assert "mon 08:59 Asia/Ho_Chi_Minh (open 09:00-17:00)" in refusal.detail


def test_the_end_of_the_window_is_closed() -> None:
    assert HANOI.refusal(datetime(2026, 11, 30, 10, 0, tzinfo=UTC)) is not None  # 17:00 in Hanoi


def test_a_weekday_without_windows_is_closed_all_day() -> None:
    refusal = HANOI.refusal(datetime(2026, 11, 28, 5, 0, tzinfo=UTC))  # Saturday noon in Hanoi
    assert refusal is not None and "closed all day" in refusal.detail


def test_a_holiday_closes_the_whole_local_day_with_its_own_label() -> None:
    # 2 Sep 2026 is a Wednesday; 03:00 UTC is 10:00 in Hanoi, inside the window
    refusal = HANOI.refusal(datetime(2026, 9, 2, 3, 0, tzinfo=UTC))
    assert refusal is not None
    assert (refusal.reason, refusal.reason_code) == (RefusalReason.HOLIDAY, "TM01")


def test_the_holiday_is_the_local_date_not_the_utc_one() -> None:
    # 1 Sep 2026 18:00 UTC is already 2 Sep 01:00 in Hanoi: the holiday
    assert HANOI.refusal(datetime(2026, 9, 1, 18, 0, tzinfo=UTC)).reason is RefusalReason.HOLIDAY  # type: ignore[union-attr]


def test_a_window_to_midnight_is_written_24_00() -> None:
    hours = hours_from_table("UTC", {"mon": ("20:00-24:00",)}, frozenset())
    assert hours.refusal(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)) is None
    assert parse_window("00:00-24:00") == (time(0, 0), time.max)


@pytest.mark.parametrize("text", ["17:00-09:00", "9-17", "09:00", "25:00-26:00"])
def test_a_malformed_or_backwards_window_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="operating hours"):
        parse_window(text)


def test_overlapping_windows_and_unknown_weekdays_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        hours_from_table("UTC", {"mon": ("09:00-12:00", "11:00-14:00")}, frozenset())
    with pytest.raises(ValueError, match="'monday' is not one of"):
        hours_from_table("UTC", {"monday": ("09:00-12:00",)}, frozenset())


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        hours_from_table("Asia/Nowhere", {}, frozenset())


BASIC = TierLimits("basic", tx_max_minor=200_000_000, day_max_minor=300_000_000)


def test_a_payment_at_the_tier_maximum_passes_and_one_minor_unit_more_is_am02() -> None:
    assert tx_refusal(BASIC, 200_000_000, "KHR 2000000.00") is None
    refusal = tx_refusal(BASIC, 200_000_001, "KHR 2000000.01")
    assert refusal is not None and (refusal.reason, refusal.reason_code) == (RefusalReason.TX_LIMIT, "AM02")


def test_the_day_is_exact_to_the_minor_unit_and_over_it_is_am14() -> None:
    assert day_refusal(BASIC, 100_000_000, 200_000_000, "x") is None  # exactly the day's maximum
    refusal = day_refusal(BASIC, 100_000_001, 200_000_000, "x")
    assert refusal is not None and (refusal.reason, refusal.reason_code) == (RefusalReason.DAILY_LIMIT, "AM14")


def test_a_tier_without_limits_refuses_nothing() -> None:
    none = TierLimits("participant", None, None)
    assert tx_refusal(none, 10**15, "x") is None and day_refusal(none, 10**15, 10**15, "x") is None


def test_the_usage_day_is_the_local_date_in_phnom_penh() -> None:
    assert usage_day(datetime(2026, 11, 28, 16, 59, tzinfo=UTC), "Asia/Phnom_Penh") == date(2026, 11, 28)
    assert usage_day(datetime(2026, 11, 28, 17, 0, tzinfo=UTC), "Asia/Phnom_Penh") == date(2026, 11, 29)


def _control(kind: ControlKind, subject: str, off: bool) -> Control:
    return Control(kind, subject, off, "maintenance", "alice", datetime(2026, 11, 28, tzinfo=UTC), 1)


def test_a_disabled_corridor_is_ag01_and_a_paused_partner_ab08() -> None:
    controls = Controls.of([_control(ControlKind.CORRIDOR, "KH-VN", True), _control(ControlKind.PARTNER, "lapnet", True)])
    disabled, paused = controls.refusal("KH-VN", "napas"), controls.refusal("KH-LA", "lapnet")
    assert disabled is not None and (disabled.reason_code, disabled.detail) == ("AG01", "corridor KH-VN is disabled: maintenance")
    assert paused is not None and paused.reason_code == "AB08"
    assert controls.refusal("KH-TH", "promptpay") is None


def test_a_control_switched_back_on_refuses_nothing() -> None:
    controls = Controls.of([_control(ControlKind.CORRIDOR, "KH-VN", False), _control(ControlKind.PARTNER, "napas", False)])
    assert controls.refusal("KH-VN", "napas") is None


# ---------------------------------------------------------------- corridors.toml


def _config_dir(tmp_path: Path, corridors_toml: str) -> Path:
    import shutil

    target = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", target)
    (target / "corridors.toml").write_text(corridors_toml, encoding="utf-8")
    return target


CORRIDOR = '''
[tiers.basic]
tx_max = {{ KHR = "2000000" }}
day_max = {{ KHR = "3000000" }}

[[corridors]]
id = "KH-VN"
partner = "napas"
source_currencies = ["KHR"]
target_currency = "VND"
amount_max = {{ KHR = "5000000" }}
{extra}
'''


def test_the_shipped_corridors_are_open_every_day_and_name_a_default_tier() -> None:
    cfg = config_mod.load(env={})
    assert all(cfg.corridor_hours(c.id) is None for c in cfg.corridors)
    assert {c.default_tier for c in cfg.corridors} == {"participant"}
    assert cfg.tier_limits(cfg.corridors[0], "basic", "KHR") == TierLimits("basic", 200_000_000, 200_000_000)


def test_hours_and_a_holiday_calendar_are_read_from_corridors_toml(tmp_path: Path) -> None:
    extra = 'timezone = "Asia/Ho_Chi_Minh"\nhours = { mon = ["09:00-17:00"] }\nholidays = "calendars/vn.toml"\ndefault_tier = "basic"'
    cfg = config_mod.load(_config_dir(tmp_path, CORRIDOR.format(extra=extra)), env={})
    hours = cfg.corridor_hours("KH-VN")
    assert hours is not None and hours.timezone == "Asia/Ho_Chi_Minh" and date(2026, 9, 2) in hours.holidays
    assert cfg.tier_limits(cfg.corridors[0], None, "KHR") == TierLimits("basic", 200_000_000, 300_000_000)


def test_a_corridor_with_only_holidays_is_open_all_day_on_other_days(tmp_path: Path) -> None:
    extra = 'timezone = "Asia/Ho_Chi_Minh"\nholidays = "calendars/vn.toml"'
    cfg = config_mod.load(_config_dir(tmp_path, CORRIDOR.format(extra=extra)), env={})
    hours = cfg.corridor_hours("KH-VN")
    assert hours is not None and hours.refusal(datetime(2026, 11, 28, 20, 0, tzinfo=UTC)) is None  # a Sunday 03:00
    assert hours.refusal(datetime(2026, 9, 2, 3, 0, tzinfo=UTC)) is not None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('hours = { mon = ["09:00-17:00"] }', "hours and holidays need a timezone"),
        ('default_tier = "gold"', "default_tier 'gold' is not a tier"),
        ('timezone = "Mars/Olympus"', "unknown time zone"),
        ('timezone = "UTC"\nhours = { mon = ["17:00-09:00"] }', "must start before it ends"),
    ],
)
def test_a_corridor_rule_that_cannot_work_fails_the_load(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_mod.load(_config_dir(tmp_path, CORRIDOR.format(extra=extra)), env={})


def test_a_holidays_file_that_is_not_there_is_a_file_and_line_problem(tmp_path: Path) -> None:
    extra = 'timezone = "Asia/Ho_Chi_Minh"\nholidays = "calendars/xx.toml"'
    directory = _config_dir(tmp_path, CORRIDOR.format(extra=extra))
    with pytest.raises(config_mod.ConfigErrors) as caught:
        config_mod.load(directory, env={})
    (problem,) = caught.value.problems
    assert str(problem) == f"{directory / 'corridors.toml'}:13: corridor KH-VN: holidays 'calendars/xx.toml' is not a calendar file of the config directory"
