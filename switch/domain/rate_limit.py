"""Token buckets for the abuse limits (issue 8 item 6). Pure: no I/O, the time is an argument.

A bucket holds at most `burst` tokens and gains `per_s` tokens a second; each message takes one.
A message that finds no whole token is refused, and the bucket says how long until one is there.
Over any run of messages, however they arrive, a bucket lets through at most
`burst + per_s * (last time - first time)`: the bound the property tests check.

Integers throughout, so that bound holds exactly (no float drift over a long run): time in
milliseconds, tokens in thousandths. A bucket gains `per_s` thousandths of a token per
millisecond, one token being 1,000 thousandths.

A time earlier than the bucket's own (a clock that stepped back, records read out of order) adds
nothing and moves the bucket's time nowhere: a caller can never gain tokens by going back in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from switch.domain.errors import InvariantViolation

token_millis: Final = 1_000  # one token, in thousandths


@dataclass(frozen=True, slots=True)
class Rate:
    """What a party may send: `per_s` messages a second on average, `burst` at once."""

    per_s: int
    burst: int

    def __post_init__(self) -> None:
        if self.per_s < 1 or self.burst < 1:  # the config refuses these first (switch/config.py)
            raise InvariantViolation(f"a rate needs per_s >= 1 and burst >= 1, not {self.per_s}/{self.burst}")


@dataclass(frozen=True, slots=True)
class TokenBucket:
    rate: Rate
    millitokens: int  # what is in the bucket, in thousandths of a token
    at_ms: int  # the time of the last refill


@dataclass(frozen=True, slots=True)
class Refused:
    """A message over the rate: refused, and when the next one would pass (at least 1 ms)."""

    retry_after_ms: int


def full_bucket(rate: Rate, *, now_ms: int) -> TokenBucket:
    """A party's bucket as it starts: full, so its first `burst` messages pass at once."""
    return TokenBucket(rate, rate.burst * token_millis, now_ms)


def take(bucket: TokenBucket, *, now_ms: int) -> tuple[TokenBucket, Refused | None]:
    """One message at `now_ms`: the bucket after it, and None when it passes or Refused when it
    does not (a refused message takes nothing)."""
    rate = bucket.rate
    elapsed_ms = max(0, now_ms - bucket.at_ms)
    millitokens = min(rate.burst * token_millis, bucket.millitokens + elapsed_ms * rate.per_s)
    at_ms = max(bucket.at_ms, now_ms)
    if millitokens >= token_millis:
        return TokenBucket(rate, millitokens - token_millis, at_ms), None
    missing = token_millis - millitokens
    retry_after_ms = -(-missing // rate.per_s)  # ceiling: the first whole millisecond with a token
    return TokenBucket(rate, millitokens, at_ms), Refused(retry_after_ms)
