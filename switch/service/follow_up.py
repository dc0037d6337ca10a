"""Follow-up timers (DESIGN "Reconciliation" level 1): every payment without a final outcome is
looked at again until it has one. The timer edge claims due payments (their `follow_up_at`
moves a lease ahead, so two replicas never act on one payment) and this handler decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from switch import limits
from switch.domain.payment import FINAL_STATES, Direction, HistoryEntry, Payment, PaymentState, scheduled, transition
from switch.service import events
from switch.service.enquiries import open_enquiries
from switch.service.handlers import Deps, Outcome, _count_outcome, payment_log_context
from switch.service.partner_log import Problem
from switch.service.inbound import finish_inbound
from switch.service.ports import OutboxMessage, UnitOfWork

S = PaymentState
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FollowUpPayments:
    """Claim payments whose follow-up time has come and act on each: resend, time out, or (an
    inbound payment) answer AB05 when its participant stayed silent."""

    limit: int = 500


def next_follow_up(p: Payment, resend_after_s: float, *, now: datetime) -> datetime:
    """When to look at an unresolved payment again: `resend_after_s` at first, then at half its
    age (a geometric backoff, x1.5 per round), never slower than limits.follow_up_interval_s_max."""
    age_s = (now - p.created_at).total_seconds()
    return now + timedelta(seconds=min(max(resend_after_s, age_s / 2), limits.follow_up_interval_s_max))


async def follow_up_payments(cmd: FollowUpPayments, uow: UnitOfWork, deps: Deps) -> Outcome:
    """Every payment without a final outcome is followed up until it has one (DESIGN
    "Reconciliation" level 1). Outbound: the pacs.008 is resent byte for byte (same MsgId and
    UETR; the partner answers a resend with its stored status) unless the relay is still
    delivering it; past the partner's SLA the payment is TIMED_OUT (not final) and still followed
    up, more slowly; any later pacs.002 resolves it. Inbound: a payment its participant has not
    answered by the confirm deadline is rejected AB05 towards the partner."""
    now = deps.clock()
    out = Outcome()
    claimed = await uow.payments_claim_follow_ups(now, cmd.limit)
    out.counts["claimed"] = len(claimed)
    moved: list[tuple[int, Payment]] = []
    history: list[HistoryEntry] = []
    statuses: list[OutboxMessage] = []
    partner_msgs: list[OutboxMessage] = []
    follow_ups: list[tuple[str, datetime | None]] = []
    resend: dict[str, list[str]] = {}  # partner -> pacs.008 message ids
    held = [p for p in claimed if p.state is S.HELD]  # issue 12: a screening hold's deadline
    if held:
        from switch.service.holds import expire_held  # builds on inbound.py, imported when needed

        expired = await expire_held(uow, deps, held, now=now, moved=moved, history=history, partner_msgs=partner_msgs,
                                    status_msgs=statuses, follow_ups=follow_ups)
        if expired:
            out.counts["holds_expired"] = expired
    # issue 12: a payment released from a screening hold left when it was released, not when it
    # was admitted: its resend and SLA count from the release (one look-up per batch, by key)
    sent_from: dict[str, datetime] = {}
    waiting = [p.uetr for p in claimed if p.direction is Direction.OUTBOUND and p.state in (S.QUOTED, S.SUBMITTED, S.ACCEPTED)]
    if waiting:
        sent_from = {u: h.decided_at for u, h in (await uow.holds_get(waiting)).items() if h.decision == "released" and h.decided_at}
    for p in claimed:
        if p.state in FINAL_STATES:
            follow_ups.append((p.uetr, None))
            continue
        if p.state is S.HELD:
            continue
        if p.direction is Direction.INBOUND:
            if p.state is S.SUBMITTED:  # the participant stayed silent past reply_by
                route = deps.config.inbound_route(p.partner)
                timeout_s = route.confirm_timeout_s if route else 0.0
                decided = Outcome()
                finish_inbound(p, S.REJECTED, deps, now=now, reason_code="AB05",
                               detail=f"no answer from {p.participant} within {timeout_s:g} s",
                               out=decided, history=history, moved=moved)
                partner_msgs.extend(decided.partner_outbox)
                statuses.extend(decided.status_outbox)
                out.count("inbound_timed_out")
            else:
                follow_ups.append((p.uetr, None))
            continue
        mapping = deps.mappings.get(p.partner)
        if mapping is None:  # the partner is no longer configured: look again later
            follow_ups.append((p.uetr, now + timedelta(seconds=limits.follow_up_interval_s_max)))
            continue
        profile = mapping.profile
        next_at = next_follow_up(p, profile.resend_after_s, now=now)
        # issue 9: a look before resend_after_s (the profile enquires earlier) opens the enquiry
        # below and resends nothing; the first resend stays at resend_after_s
        started_at = sent_from.get(p.uetr, p.created_at)
        first_resend_at = started_at + timedelta(seconds=profile.resend_after_s)
        early = now < first_resend_at
        if early:
            next_at = min(next_at, first_resend_at)
        sla_at = started_at + timedelta(seconds=profile.sla_s)
        if now >= sla_at and p.state in (S.QUOTED, S.SUBMITTED, S.ACCEPTED):
            stored_version, detail = p.version, f"no final status from {p.partner} within {profile.sla_s:g} s; still enquiring"
            if p.state is S.QUOTED:  # sent at least once, maybe received: never a reject from here
                p, entry = transition(p, S.SUBMITTED, now=now, detail="may have reached the partner")
                history.append(entry)
            p, entry = transition(p, S.TIMED_OUT, now=now, reason_code="AB06", detail=detail)
            history.append(entry)
            p = scheduled(p, follow_up_at=next_at)
            moved.append((stored_version, p))
            _count_outcome(p, deps, stage="partner")
            statuses.extend(events.participant_outbox(p, deps.config, deps.schemas, now=now, reason=detail))
            out.count("timed_out")
            with payment_log_context(p):  # rate-limited per partner: a wave of timeouts is a few lines
                deps.partner_problems.problem(p.partner, Problem.SLA_PASSED, f"payment {p.uetr}: {detail} (AB06)")
        else:
            follow_ups.append((p.uetr, next_at))
        if p.message_id and not early:
            resend.setdefault(p.partner, []).append(p.message_id)
            if log.isEnabledFor(logging.DEBUG):  # payment-level detail: DEBUG only, and only built when shown
                with payment_log_context(p):
                    log.debug("follow-up: pacs.008 %s due again (state %s, age %.0f s)", p.message_id, p.state.value,
                              (now - p.created_at).total_seconds())
    await uow.payments_update(moved)
    await uow.payments_set_follow_up(follow_ups)
    await uow.history_add(history)
    for partner, message_ids in sorted(resend.items()):
        # rows the relay is still delivering are left to it; delivered ones go out again once
        again = await uow.outbox_requeue(
            "partner", message_ids, now, deadline_at=now + timedelta(seconds=deps.mappings[partner].profile.resend_after_s)
        )
        out.partner_outbox.extend(again)
        out.counts["resent"] = out.counts.get("resent", 0) + len(again)
        deps.metrics.resends.labels(partner).inc(len(again))
    out.partner_outbox.extend(await uow.outbox_add(partner_msgs))
    out.status_outbox = await uow.outbox_add(statuses)
    # issue 9: an outbound payment still without a final status gets its enquiry case (pacs.028
    # from enquire_after_s on, sent by the case timer); the resend above stays as it is
    opened = await open_enquiries(uow, deps, claimed, now=now)
    if opened:
        out.counts["enquiries_opened"] = opened
    return out
