"""The abuse limits at the switch's two inbound edges (issue 8 item 6): a token bucket per partner
on the partner port and per participant on Kafka (switch/service/rate_limits.py).

Partner port: charged to the partner the client certificate proved (right after the identity
check, before anything of the body is read; with --insecure-dev, to the partner the path names).
Over its rate: 429 with `Retry-After` (whole seconds) and the JSON refusal
{"reason_code": "SL15", "error": ...}. A 429 is counted in switch_rate_limited_total{edge="partner_port",
party}; it is not audited one by one (audit_edge.py leaves 429s out), only the first of each spell
of refusals, with a WARNING in the log.

Kafka: charged to the participant the instruction names, once per instruction (each transaction
of a pain.001), in the order the records were published (their timestamps, never later than the
switch's clock: a backlog read after an outage is charged at the pace it was published, not at
the pace it is read; a participant cannot gain by back- or forward-dating its records). Over its
rate: the instruction carries a Reject (SL15) that admission answers like any other, so its id is
used up (REJECTED on the status topic, a resend of the id replays that) and the participant sends
the payment again under a new id. A record all of whose instructions were refused also goes to the
dead-letter topic as `rate_limited`. Inbound replies are not limited: each answers an inbound
payment the switch asked that participant about, so their number is bounded by the partners'
(limited) traffic, and refusing one would turn a payment the beneficiary's bank accepted into a
timeout reject.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from aiohttp import web
from aiokafka.structs import ConsumerRecord, TopicPartition

from switch import limits
from switch.domain.instruction import Reject
from switch.domain.audit import NewAuditEntry
from switch.metrics import Metrics
from switch.service.audit import HTTP_RATE_LIMITED, KAFKA_RATE_LIMITED, audit_refusal, rate_limit_entry
from switch.service.bus import MessageBus
from switch.service.handlers import ParsedInstruction
from switch.service.rate_limits import REASON_CODE, RateLimits

log = logging.getLogger(__name__)

EDGE_PARTNER_PORT = "partner_port"
EDGE_KAFKA = "kafka"


def monotonic_ms() -> int:
    """The partner port's clock for its buckets: monotonic, so a wall-clock step changes nothing."""
    return time.monotonic_ns() // 1_000_000


PARTNER_LIMITS = web.AppKey("partner_limits", RateLimits)
CLOCK_MS = web.AppKey("partner_limits_clock_ms", Callable[[], int])


def install_partner_limits(app: web.Application, partner_limits: RateLimits, *, clock_ms: Callable[[], int] = monotonic_ms) -> None:
    app[PARTNER_LIMITS] = partner_limits
    app[CLOCK_MS] = clock_ms


def retry_after_s(retry_after_ms: int) -> int:
    """Retry-After in whole seconds, rounded up (never 0: "now" would invite the retry storm)."""
    return max(limits.retry_after_s_min, -(-retry_after_ms // 1000))


async def refuse_over_rate(request: web.Request, partner: str, bus: MessageBus) -> web.Response | None:
    """None when `partner` may send this message now, else the 429 to answer. Reads nothing of the
    body; without limits installed (or for a name that is no configured partner) everyone passes."""
    partner_limits = request.app.get(PARTNER_LIMITS)
    if partner_limits is None or partner not in partner_limits:
        return None
    limited = partner_limits.charge(partner, now_ms=request.app[CLOCK_MS]())
    if limited is None:
        return None
    bus.deps.metrics.rate_limited.labels(EDGE_PARTNER_PORT, partner).inc()
    rate = limited.rate
    if limited.episode_started:
        log.warning("partner port: %s is over its limit of %d messages/s (burst %d): answering 429 (counted, not logged, "
                    "until it keeps under it for %g s)", partner, rate.per_s, rate.burst, limits.rate_limit_episode_gap_s)
        await audit_refusal(
            bus.in_transaction,
            rate_limit_entry(at=bus.deps.clock(), action=HTTP_RATE_LIMITED, actor=f"partner {partner}", party=partner,
                             per_s=rate.per_s, burst=rate.burst, detail={"peer": request.remote, "path": request.path}),
        )
    wait_s = retry_after_s(limited.retry_after_ms)
    response = web.json_response(
        {"reason_code": REASON_CODE,
         "error": f"{partner} is over its limit of {rate.per_s} messages/s (burst {rate.burst}): send again in {wait_s} s"},
        status=429,
    )
    response.headers["Retry-After"] = str(wait_s)
    return response


# ----------------------------------------------------------------------------- Kafka


@dataclass(frozen=True, slots=True)
class Charged:
    """A batch's instructions after their participants' buckets were charged."""

    parsed: list[ParsedInstruction]  # in the batch's order; those over the rate carry their Reject in `limited`
    dead: list[tuple[ConsumerRecord[bytes, bytes], str]]  # records whose every instruction was over: (record, reason)
    episodes: list[NewAuditEntry]  # a participant's first refusal of a spell: audited


def _source_record(item: ParsedInstruction) -> str:
    return item.source_ref.partition("#")[0]  # a pain.001 transaction: topic:partition:offset#n


def charge_instructions(
    participant_limits: RateLimits,
    parsed: Sequence[ParsedInstruction],
    batches: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
    *,
    now: datetime,
    metrics: Metrics,
) -> Charged:
    """Charge each instruction to its participant at the time its record was published (never
    later than `now`), in that order. Pure but for the buckets and the counter."""
    records = {f"{r.topic}:{r.partition}:{r.offset}": r for rs in batches.values() for r in rs}
    now_ms = int(now.timestamp() * 1000)

    def published_ms(item: ParsedInstruction) -> int:
        record = records.get(_source_record(item))
        stamp = record.timestamp if record is not None else None
        return now_ms if stamp is None or stamp < 0 else min(stamp, now_ms)

    times = [published_ms(item) for item in parsed]
    out = list(parsed)
    per_record: dict[str, list[int]] = {}  # record -> [instructions, over the rate]
    episodes: list[NewAuditEntry] = []
    for i in sorted(range(len(parsed)), key=times.__getitem__):  # stable: the batch's order within a millisecond
        item = parsed[i]
        ins = item.instruction
        counts = per_record.setdefault(_source_record(item), [0, 0])
        counts[0] += 1
        limited = participant_limits.charge(ins.participant, now_ms=times[i])
        if limited is None:
            continue
        counts[1] += 1
        rate = limited.rate
        metrics.rate_limited.labels(EDGE_KAFKA, ins.participant).inc()
        detail = (f"{ins.participant} is over its limit of {rate.per_s} instructions/s (burst {rate.burst}); this "
                  "instruction id is used up: send the payment again under a new one")
        out[i] = replace(item, instruction=replace(ins, limited=Reject(REASON_CODE, detail)))
        if limited.episode_started:
            log.warning("kafka: %s is over its limit of %d instructions/s (burst %d): refusing SL15 (counted, not logged, "
                        "until it keeps under it for %g s)", ins.participant, rate.per_s, rate.burst, limits.rate_limit_episode_gap_s)
            episodes.append(rate_limit_entry(
                at=now, action=KAFKA_RATE_LIMITED, actor=f"participant {ins.participant}", party=ins.participant,
                per_s=rate.per_s, burst=rate.burst, detail={"first_refused": item.source_ref},
            ))
    dead = []
    for ref, (n, over) in per_record.items():
        if over == n and ref in records:
            what = "the instruction is" if n == 1 else f"all {n} instructions are"
            dead.append((records[ref], f"rate_limited: {what} over its participant's rate (answered REJECTED {REASON_CODE})"))
    return Charged(out, dead, episodes)


async def audit_episodes(bus: MessageBus, episodes: Sequence[NewAuditEntry]) -> None:
    """The first refusal of each spell, each in a short transaction (rare: one per participant
    per flood)."""
    for episode in episodes:
        await audit_refusal(bus.in_transaction, episode)
