"""Per-party rate limits (issue 8 item 6): one token bucket (switch/domain/rate_limit.py) per
configured partner or participant, charged by the edges. No I/O; the time is an argument.

The parties are the configured ones, so the buckets (and the metric series named by them) are a
fixed, bounded set; a name outside it is not limited here (the edges refuse unknown partners and
participants on their own). Buckets live in one replica's memory: each replica limits what it
receives, so a party spread over N replicas may send up to N times its rate in all.

A refusal says whether it starts a spell of refusals for its party (none in the
`episode_gap_ms` before): the edges count every refusal but audit only those, so a flood leaves
one audit entry, not one per message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from switch import limits
from switch.domain.rate_limit import Rate, TokenBucket, full_bucket, take


# The ISO 20022 external status reason of a message refused for its rate, on both edges. [U] No
# code names a message rate; SL15's definition is the nearest: "maximum number of credit
# transactions allowed by the account servicer per service period exceeded" (here the servicer
# is the switch, the period a second). The HTTP status (429) and Kafka's dead-letter category
# (`rate_limited`) carry the exact meaning; the code tells a participant's systems that the
# instruction itself was fine and a new one may follow later.
REASON_CODE: Final = "SL15"


@dataclass(frozen=True, slots=True)
class Limited:
    """A message over its party's rate."""

    party: str
    rate: Rate
    retry_after_ms: int
    episode_started: bool  # the first refusal for this party after a quiet spell


class RateLimits:
    """The buckets of one edge (the partner port, or the Kafka edge)."""

    def __init__(self, rates: Mapping[str, Rate], *, episode_gap_ms: int = int(limits.rate_limit_episode_gap_s * 1000)) -> None:
        self._rates = dict(rates)
        self._buckets: dict[str, TokenBucket] = {}
        self._last_refused_ms: dict[str, int] = {}
        self._episode_gap_ms = episode_gap_ms

    def __contains__(self, party: object) -> bool:
        return party in self._rates

    def __iter__(self) -> Iterator[str]:
        return iter(self._rates)

    def rate(self, party: str) -> Rate | None:
        return self._rates.get(party)

    def charge(self, party: str, *, now_ms: int) -> Limited | None:
        """One message of `party` at `now_ms`: None when it passes (or the party has no limit
        here), else why not."""
        rate = self._rates.get(party)
        if rate is None:
            return None
        bucket = self._buckets.get(party) or full_bucket(rate, now_ms=now_ms)
        bucket, refused = take(bucket, now_ms=now_ms)
        self._buckets[party] = bucket
        if refused is None:
            return None
        last = self._last_refused_ms.get(party)
        self._last_refused_ms[party] = max(now_ms, last or now_ms)
        started = last is None or now_ms - last > self._episode_gap_ms
        return Limited(party, rate, refused.retry_after_ms, started)
