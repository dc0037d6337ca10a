"""Screening holds (issue 12 items 3 and 4): what happens to a payment the screening held.

A payment whose verdict holds (a possible sanctions-list match, or the screening unavailable)
waits in HELD, with its hold record (switch/service/ports.py ScreeningHold), until:

  ReleaseHeld   an operator releases it: outbound HELD -> QUOTED with its pacs.008 built and
                queued now; inbound HELD -> QUOTED -> SUBMITTED, published to its participant
  RejectHeld    an operator rejects it: HELD -> REJECTED RR04 (ISO ExternalStatusReason1Code
                RegulatoryReason [O]); the participant is told, an inbound partner gets its
                pacs.002 RJCT RR04
  expire_held   nobody decided by the hold's deadline (follow_up.py): REJECTED RR04 as well
                (fail closed [U]), decision `expired`, audited as the system

Each decision is audited in its own transaction, like the issue-11 operator actions. What the
participant and the partner hear never names the list entry, the score nor the operator's note
(tipping-off): only that the payment was rejected for a regulatory reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from switch.domain.pan import is_token
from switch.domain.payment import TRANSITIONS, Direction, HistoryEntry, Payment, PaymentState, scheduled, transition
from switch.service import events
from switch.service.audit import audit
from switch.service.handlers import Deps, Outcome, _count_outcome, _pacs008_messages
from switch.service.inbound import inbound_answer, publish_inbound
from switch.service.ports import OutboxMessage, ScreeningHold, UnitOfWork

S = PaymentState
RELEASE_ACTION: Final = "screening.release"
REJECT_ACTION: Final = "screening.reject"
EXPIRE_ACTION: Final = "screening.expire"
REJECT_CODE: Final = "RR04"  # ExternalStatusReason1Code RegulatoryReason [O]
# what the participant and the partner hear of a rejected hold (tipping-off: nothing more)
REJECTED_REASON: Final = "rejected for regulatory reasons"
RELEASED_REASON: Final = "released after compliance review"
note_chars_max: Final = 500
holds_page_max: Final = 500


@dataclass(frozen=True, slots=True)
class ReleaseHeld:
    """An operator releases a held payment: it goes on its way."""

    uetr: str
    operator: str
    note: str


@dataclass(frozen=True, slots=True)
class RejectHeld:
    """An operator rejects a held payment (RR04)."""

    uetr: str
    operator: str
    note: str


# ---------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class HeldPayment:
    hold: ScreeningHold
    payment: Payment | None


async def list_holds(uow: UnitOfWork, *, open_only: bool, limit: int) -> list[HeldPayment]:
    """Holds oldest first, with their payments (the operations API's and CLI's list)."""
    holds = await uow.holds_list(open_only, min(max(limit, 1), holds_page_max))
    payments = await uow.payments_get([h.uetr for h in holds])
    return [HeldPayment(h, payments.get(h.uetr)) for h in holds]


async def show_hold(uow: UnitOfWork, uetr: str) -> HeldPayment | None:
    hold = (await uow.holds_get([uetr])).get(uetr)
    if hold is None:
        return None
    return HeldPayment(hold, (await uow.payments_get([uetr])).get(uetr))


# ---------------------------------------------------------------- decisions


async def _held(uow: UnitOfWork, uetr: str, out: Outcome) -> tuple[Payment, ScreeningHold] | None:
    """The payment and its open hold, or None with the refusal said in `out`."""
    p = (await uow.payments_get([uetr])).get(uetr)
    hold = (await uow.holds_get([uetr])).get(uetr)
    if p is None:
        out.refusals.append(("MS03", f"no payment with UETR {uetr}"))
        return None
    if hold is None:
        out.refusals.append(("AG01", f"payment {uetr} was never held by the screening (it is {p.state.value})"))
        return None
    if p.state is not S.HELD or not hold.open:
        by = f" by {hold.decided_by}" if hold.decided_by else ""
        out.refusals.append(("AG01", f"payment {uetr} is {p.state.value}: its hold was already {hold.decision or 'decided'}{by}"))
        return None
    return p, hold


def _score(hold: ScreeningHold) -> str | None:
    """The score as audit text (the audit trail's JSON is canonical: no floats)."""
    return None if hold.score is None else f"{hold.score:.4f}"


def _decided(hold: ScreeningHold, decision: str, by: str, note: str, now: datetime, deps: Deps) -> ScreeningHold:
    deps.metrics.screening_decisions.labels(decision).inc()
    deps.metrics.screening_decision_seconds.observe(max(0.0, (now - hold.held_at).total_seconds()))
    return replace(hold, decision=decision, decided_by=by, decided_at=now, note=note[:note_chars_max], version=hold.version + 1)


def reject_held(
    p: Payment, deps: Deps, *, now: datetime, detail: str, history: list[HistoryEntry],
    partner_msgs: list[OutboxMessage], status_msgs: list[OutboxMessage],
) -> Payment:
    """HELD -> REJECTED RR04: the participant told, an inbound partner answered RJCT RR04."""
    rejected, entry = transition(p, S.REJECTED, now=now, reason_code=REJECT_CODE, detail=detail[:note_chars_max])
    history.append(entry)
    _count_outcome(rejected, deps, stage="screening")
    if rejected.direction is Direction.INBOUND:
        partner_msgs.append(inbound_answer(rejected, deps, now=now, detail=REJECTED_REASON))
    status_msgs.extend(events.participant_outbox(rejected, deps.config, deps.schemas, now=now, reason=REJECTED_REASON))
    return rejected


async def release_held(cmd: ReleaseHeld, uow: UnitOfWork, deps: Deps) -> Outcome:
    now = deps.clock()
    out = Outcome()
    found = await _held(uow, cmd.uetr, out)
    if found is None:
        return out
    p, hold = found
    history: list[HistoryEntry] = []
    partner_msgs: list[OutboxMessage] = []
    status_msgs: list[OutboxMessage] = []
    detail = f"released by operator {cmd.operator}: {cmd.note}"[:note_chars_max]
    if p.direction is Direction.INBOUND:
        route = deps.config.inbound_route(p.partner)
        if route is None:
            out.refusals.append(("AG01", f"partner {p.partner} has no inbound route any more: the payment can only be rejected"))
            return out
        moved, entry = transition(p, S.QUOTED, now=now, detail=detail)
        history.append(entry)
        moved, published = publish_inbound(moved, route, deps, now=now, history=history)
        status_msgs.append(published)
    else:
        mapping = deps.mappings.get(p.partner)
        if mapping is None:
            out.refusals.append(("AG01", f"partner {p.partner} is not configured any more: the payment can only be rejected"))
            return out
        if is_token(p.creditor.account):
            # the card number is kept only inside a pacs.008, which a held payment never had [U]
            out.refusals.append(("AG01", "a card payment cannot be released: its card number is not kept; reject it and ask for it again"))
            return out
        moved, entry = transition(p, S.QUOTED, now=now, detail=detail)
        history.append(entry)
        messages, invalid = _pacs008_messages(mapping, [moved], deps, now)
        if invalid:
            moved, entry = transition(moved, S.REJECTED, now=now, reason_code="FF01", detail=invalid[moved.uetr])
            history.append(entry)
            _count_outcome(moved, deps, stage="screening")
            status_msgs.extend(events.participant_outbox(moved, deps.config, deps.schemas, now=now, reason=invalid[moved.uetr]))
        else:
            profile = mapping.profile
            follow_up_at = now + timedelta(seconds=min(profile.resend_after_s, profile.exceptions.enquire_after_s))
            # the MsgId was fixed when it was held (accept_instructions): the same one
            assert messages[0].message_id == p.message_id, "a held payment's MsgId is fixed at admission"
            moved = scheduled(moved, follow_up_at=follow_up_at)
            partner_msgs.extend(messages)
            status_msgs.extend(events.participant_outbox(moved, deps.config, deps.schemas, now=now, reason=RELEASED_REASON))
    await _record_decision(uow, out, deps, cmd, p, moved, hold, "released", now=now, history=history,
                           partner_msgs=partner_msgs, status_msgs=status_msgs, action=RELEASE_ACTION,
                           detail={"to": moved.state.value})
    return out


async def reject_held_cmd(cmd: RejectHeld, uow: UnitOfWork, deps: Deps) -> Outcome:
    now = deps.clock()
    out = Outcome()
    found = await _held(uow, cmd.uetr, out)
    if found is None:
        return out
    p, hold = found
    history: list[HistoryEntry] = []
    partner_msgs: list[OutboxMessage] = []
    status_msgs: list[OutboxMessage] = []
    moved = reject_held(p, deps, now=now, detail=f"rejected by operator {cmd.operator}: {cmd.note}", history=history,
                        partner_msgs=partner_msgs, status_msgs=status_msgs)
    await _record_decision(uow, out, deps, cmd, p, moved, hold, "rejected", now=now, history=history,
                           partner_msgs=partner_msgs, status_msgs=status_msgs, action=REJECT_ACTION,
                           detail={"reason_code": REJECT_CODE})
    return out


async def _record_decision(
    uow: UnitOfWork, out: Outcome, deps: Deps, cmd: ReleaseHeld | RejectHeld, p: Payment, moved: Payment, hold: ScreeningHold,
    decision: str, *, now: datetime, history: list[HistoryEntry], partner_msgs: list[OutboxMessage],
    status_msgs: list[OutboxMessage], action: str, detail: dict[str, Any],
) -> None:
    """An operator's decision on a hold, written in one go: the payment (ConcurrentUpdate when
    another operator came first: nothing is written), its history, the hold, the messages, the
    audit entry."""
    await uow.payments_update([(p.version, moved)])
    await uow.history_add(history)
    await uow.holds_update([(hold.version, _decided(hold, decision, cmd.operator, cmd.note, now, deps))])
    out.partner_outbox = await uow.outbox_add(partner_msgs)
    out.status_outbox = await uow.outbox_add(status_msgs)
    await audit(uow, at=now, actor=f"operator {cmd.operator}", action=action, subject=p.uetr,
                detail={"direction": p.direction.value, **detail, "outcome": hold.outcome, "entry_id": hold.entry_id,
                        "score": _score(hold), "note": cmd.note})
    out.count(decision)


async def expire_held(
    uow: UnitOfWork, deps: Deps, held: list[Payment], *, now: datetime, moved: list[tuple[int, Payment]],
    history: list[HistoryEntry], partner_msgs: list[OutboxMessage], status_msgs: list[OutboxMessage],
    follow_ups: list[tuple[str, datetime | None]],
) -> int:
    """The follow-up timer's part (follow_up.py): each claimed HELD payment whose hold's deadline
    passed is rejected RR04 (decision `expired`, audited as the system); one claimed early looks
    again at its deadline. Returns how many expired."""
    holds = await uow.holds_get([p.uetr for p in held])
    updates: list[tuple[int, ScreeningHold]] = []
    expired = 0
    for p in held:
        hold = holds.get(p.uetr)
        if hold is not None and hold.deadline_at > now:
            follow_ups.append((p.uetr, hold.deadline_at))
            continue
        deadline_s = deps.config.screening.hold_deadline_s
        detail = f"no decision within {deadline_s:g} s"
        moved.append((p.version, reject_held(p, deps, now=now, detail=detail, history=history,
                                             partner_msgs=partner_msgs, status_msgs=status_msgs)))
        if hold is not None:
            updates.append((hold.version, _decided(hold, "expired", "system", detail, now, deps)))
        await audit(uow, at=now, actor="system", action=EXPIRE_ACTION, subject=p.uetr,
                    detail={"direction": p.direction.value, "reason_code": REJECT_CODE, "note": detail})
        expired += 1
    await uow.holds_update(updates)
    return expired


if not {S.QUOTED, S.REJECTED} <= TRANSITIONS[S.HELD]:
    raise RuntimeError("a decision moves HELD -> QUOTED or REJECTED; the state table must allow both")
