"""The token bucket and the per-party limits (issue 8 item 6): pure, the time passed in."""

from __future__ import annotations

import pytest

from switch.domain.errors import InvariantViolation
from switch.domain.rate_limit import Rate, Refused, full_bucket, take
from switch.service.rate_limits import RateLimits


def test_a_full_bucket_lets_the_burst_through_at_once_then_refuses() -> None:
    bucket = full_bucket(Rate(per_s=2, burst=3), now_ms=0)
    outcomes = []
    for _ in range(4):
        bucket, refused = take(bucket, now_ms=0)
        outcomes.append(refused)
    assert outcomes[:3] == [None, None, None]
    assert outcomes[3] == Refused(retry_after_ms=500)  # 2 a second: the next token in half a second


def test_the_bucket_refills_at_its_rate_and_never_above_its_burst() -> None:
    bucket = full_bucket(Rate(per_s=10, burst=2), now_ms=0)
    for _ in range(2):
        bucket, _ = take(bucket, now_ms=0)
    bucket, refused = take(bucket, now_ms=99)
    assert refused == Refused(retry_after_ms=1)
    bucket, refused = take(bucket, now_ms=100)  # one token a tenth of a second
    assert refused is None
    bucket, _ = take(bucket, now_ms=3_600_000)  # an hour idle: full again, no more than the burst
    assert bucket.millitokens == 1_000


def test_waiting_the_announced_time_is_enough() -> None:
    bucket = full_bucket(Rate(per_s=3, burst=1), now_ms=1_000)
    bucket, _ = take(bucket, now_ms=1_000)
    bucket, refused = take(bucket, now_ms=1_010)
    assert refused is not None
    bucket, again = take(bucket, now_ms=1_010 + refused.retry_after_ms)
    assert again is None


def test_an_earlier_time_adds_nothing_and_does_not_move_the_bucket_back() -> None:
    bucket = full_bucket(Rate(per_s=1, burst=1), now_ms=10_000)
    bucket, _ = take(bucket, now_ms=10_000)
    bucket, refused = take(bucket, now_ms=5_000)  # a clock stepped back, a record read late
    assert refused is not None and bucket.at_ms == 10_000
    _, refused = take(bucket, now_ms=10_999)
    assert refused is not None


@pytest.mark.parametrize(("per_s", "burst"), [(0, 1), (1, 0), (-1, 5)])
def test_a_rate_below_one_is_a_programmer_error(per_s: int, burst: int) -> None:
    with pytest.raises(InvariantViolation):
        Rate(per_s=per_s, burst=burst)


def test_each_party_has_its_own_bucket() -> None:
    limits = RateLimits({"lapnet": Rate(1, 1), "promptpay": Rate(1, 1)})
    assert limits.charge("lapnet", now_ms=0) is None
    refused = limits.charge("lapnet", now_ms=0)
    assert refused is not None and refused.party == "lapnet" and refused.retry_after_ms == 1_000
    assert limits.charge("promptpay", now_ms=0) is None  # lapnet's flood took nothing of promptpay's


def test_a_party_without_a_configured_rate_is_not_limited_here() -> None:
    limits = RateLimits({"lapnet": Rate(1, 1)})
    assert "nosuchnetwork" not in limits
    assert all(limits.charge("nosuchnetwork", now_ms=0) is None for _ in range(100))


def test_only_the_first_refusal_of_a_spell_starts_an_episode() -> None:
    limits = RateLimits({"lapnet": Rate(1, 1)}, episode_gap_ms=60_000)

    def charge(at_ms: int) -> str:
        limited = limits.charge("lapnet", now_ms=at_ms)
        return "passed" if limited is None else "started" if limited.episode_started else "refused"

    # one a second: a flood refused throughout, with the tokens that come back still passing
    flood = [charge(t) for t in (0, 0, 500, 1_000, 1_000, 30_000, 30_000)]
    assert flood == ["passed", "started", "refused", "passed", "refused", "passed", "refused"]
    # quiet for longer than the gap since the last refusal: the next refusal starts a new spell
    assert [charge(t) for t in (95_000, 95_000, 95_001)] == ["passed", "started", "refused"]


# ------------------------------------------------------------------ configuration


def test_the_shipped_configuration_gives_every_partner_and_participant_a_rate() -> None:
    from pathlib import Path

    from adapters.base import load_profile
    from switch import config as config_mod, limits as bounds
    from switch.config import DEFAULT_CONFIG_DIR

    cfg = config_mod.load(env={})
    assert set(cfg.participant_rates()) == {p.code for p in cfg.participants}
    for path in sorted((Path(DEFAULT_CONFIG_DIR) / "partners").glob("*.toml")):
        rate = load_profile(path).limits.rate()
        assert 1 <= rate.per_s <= bounds.rate_per_s_max and 1 <= rate.burst <= bounds.rate_burst_max


def test_a_participants_own_limits_replace_the_files() -> None:
    from switch.config import Participant, ParticipantLimits, ParticipantsFile

    data = {
        "limits": {"instructions_per_s": 100, "burst": 200},
        "participants": [
            {"code": "ACLBKHPPXXX", "name": "A", "bakong_suffix": "aclb", "currencies": ["KHR"]},
            {"code": "WINGKHPPXXX", "name": "W", "bakong_suffix": "wing", "currencies": ["KHR"],
             "limits": {"instructions_per_s": 5}},
        ],
    }
    parsed = ParticipantsFile.model_validate(data)
    aclb, wing = parsed.participants
    assert isinstance(aclb, Participant) and aclb.limits is None and parsed.limits.rate() == Rate(100, 200)
    # unset fields of a participant's own take the defaults of switch/limits.py, not the file's
    assert wing.limits == ParticipantLimits(instructions_per_s=5)


@pytest.mark.parametrize("limits", [{"messages_per_s": 0}, {"burst": 0}, {"messages_per_s": 10**9}, {"per_s": 5}])
def test_a_partner_limit_out_of_bounds_or_misspelt_is_refused_at_load(limits: dict[str, int]) -> None:
    from pydantic import ValidationError

    from adapters.base import PartnerLimits

    with pytest.raises(ValidationError):
        PartnerLimits.model_validate(limits)
