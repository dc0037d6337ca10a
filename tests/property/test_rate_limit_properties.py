"""The token bucket against its promise (issue 8 item 6): over any arrival sequence, at most
`burst + per_s * elapsed` messages pass; a party that keeps to its rate is never refused; and the
announced wait is always enough."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from switch.domain.rate_limit import Rate, full_bucket, take

SETTINGS = settings(max_examples=300, deadline=None)
rates = st.builds(Rate, per_s=st.integers(min_value=1, max_value=5_000), burst=st.integers(min_value=1, max_value=500))
# arrival times in ms, in any order (a clock stepping back, records read out of order)
arrivals = st.lists(st.integers(min_value=0, max_value=120_000), min_size=1, max_size=400)


@SETTINGS
@given(rates, arrivals)
def test_no_more_than_the_burst_plus_the_rate_times_the_time_passed_is_admitted(rate: Rate, times: list[int]) -> None:
    start = times[0]
    bucket = full_bucket(rate, now_ms=start)
    admitted = 0
    latest = start
    for t in times:
        bucket, refused = take(bucket, now_ms=t)
        admitted += refused is None
        latest = max(latest, t)
        # exact, in integers: admitted * 1000 <= burst * 1000 + per_s * elapsed_ms
        assert admitted * 1_000 <= rate.burst * 1_000 + rate.per_s * max(0, latest - start)


@SETTINGS
@given(rates, st.lists(st.integers(min_value=0, max_value=5_000), min_size=1, max_size=300), st.integers(0, 10**12))
def test_a_party_that_keeps_to_its_rate_is_never_refused(rate: Rate, extra_gaps_ms: list[int], start: int) -> None:
    spacing_ms = -(-1_000 // rate.per_s)  # at least 1/per_s apart
    bucket = full_bucket(rate, now_ms=start)
    t = start
    for extra in extra_gaps_ms:
        bucket, refused = take(bucket, now_ms=t)
        assert refused is None
        t += spacing_ms + extra


@SETTINGS
@given(rates, arrivals)
def test_after_the_announced_wait_the_next_message_passes(rate: Rate, times: list[int]) -> None:
    ordered = sorted(times)
    bucket = full_bucket(rate, now_ms=ordered[0])
    for t in ordered:
        bucket, refused = take(bucket, now_ms=t)
        if refused is not None:
            assert refused.retry_after_ms >= 1
            _, again = take(bucket, now_ms=t + refused.retry_after_ms)
            assert again is None
            _, early = take(bucket, now_ms=t + refused.retry_after_ms - 1)
            assert early is not None  # and not a millisecond sooner


@SETTINGS
@given(rates, arrivals)
def test_the_bucket_never_holds_more_than_its_burst_nor_less_than_nothing(rate: Rate, times: list[int]) -> None:
    bucket = full_bucket(rate, now_ms=times[0])
    for t in times:
        bucket, _ = take(bucket, now_ms=t)
        assert 0 <= bucket.millitokens <= rate.burst * 1_000
