"""Status enquiries (issue 9 item 1): pacs.028 -> pacs.002, both directions.

Outbound (the switch asks about its own payments):
  payments follow-up (follow_up.py) --> open_enquiries: an outbound payment without a final status
      gets ONE enquiry case (ref switch/{uetr}/enquiry, counterpart its partner), due
      `enquire_after_s` after admission
  case timer (case_timer.py)        --> follow_up_enquiries: a due case sends a pacs.028 (a new
      MsgId each time, attempts + 1) and is due again after a backoff (x1.5 from enquire_after_s,
      up to the SLA, then at most every enquiry_interval_s_max); a case whose payment became final
      goes DONE and stops
  the partner's answer               --> an ordinary pacs.002 through apply_partner_statuses, which
      resolves the payment as any callback does, then after_statuses here: open enquiries of final
      payments go DONE; a RJCT with the profile's `not_found_reason` (AG09, "payment not
      received") never rejects an outbound payment: the original pacs.008 goes again byte for
      byte (the Nexus investigation rule) and the enquiry case notes it
  an operator (POST /v1/payments/{uetr}/enquiry, `mekong payments enquire`) --> enquire_payment:
      opens the case, or asks again now, audited

Inbound (a partner asks about a payment it sent, a pacs.028 on the partner port):
  answer_status_requests: per transaction, a decided payment -> its stored final pacs.002 again,
  byte for byte; booked but undecided -> a pacs.002 PDNG; an unknown UETR or another partner's
  payment -> a pacs.002 RJCT with the partner's not-found reason (AG09).

Handlers as in handlers.py: one transaction each, no I/O beyond the unit of work.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from adapters.inbound import answer_message_id
from iso20022 import pacs002, pacs028
from iso20022.model import Agent
from switch import limits
from switch.domain.case import CASE_OPEN, Case, CaseKind, CaseState, Initiator, moved, new_case_id, touched
from switch.domain.payment import FINAL_STATES, Direction, Payment, PaymentState
from switch.service.audit import audit
from switch.service.handlers import Deps, Outcome
from switch.service.ports import OutboxMessage, UnitOfWork

S = PaymentState
C = CaseState
OUTBOUND: Final = "outbound"
INBOUND: Final = "inbound"
backoff_factor: Final = 1.5
ENQUIRE_ACTION: Final = "payment.enquire"  # the audit action of an operator's enquiry
_ENQUIRABLE: Final = frozenset({S.QUOTED, S.SUBMITTED, S.ACCEPTED, S.TIMED_OUT})  # sent, no final status yet
_RESENT_TIMES: Final = re.compile(r"resent (\d+) time")


def enquiry_ref(uetr: str) -> str:
    """The idempotency key of a payment's enquiry: one enquiry case per payment."""
    return f"switch/{uetr}/enquiry"


def enquiry_message_id() -> str:
    """A pacs.028 MsgId (and StsReqId): "E" and 136 random bits as 34 hex digits (Max35Text);
    every enquiry, first or repeated, is a new message."""
    return "E" + os.urandom(17).hex()


def first_enquiry_at(p: Payment, enquire_after_s: float, *, now: datetime) -> datetime:
    """When a payment's first pacs.028 goes: `enquire_after_s` after admission, never before now."""
    return max(now, p.created_at + timedelta(seconds=enquire_after_s))


def next_enquiry_at(p: Payment, attempts: int, *, enquire_after_s: float, interval_s_max: float, sla_s: float,
                    now: datetime) -> datetime:
    """When to ask again after the `attempts`-th pacs.028: enquire_after_s x 1.5^(attempts-1)
    later, but at the SLA at the latest while it is still ahead (one enquiry as the payment times
    out), and never more than interval_s_max apart."""
    interval_s = min(enquire_after_s * backoff_factor ** max(0, attempts - 1), interval_s_max)
    at = now + timedelta(seconds=interval_s)
    sla_at = p.created_at + timedelta(seconds=sla_s)
    return min(at, sla_at) if now < sla_at else at


def _new_case(p: Payment, *, initiator: Initiator, due_at: datetime, now: datetime) -> Case:
    return Case(
        id=new_case_id(), uetr=p.uetr, kind=CaseKind.ENQUIRY, initiator=initiator, counterpart=p.partner,
        state=C.OPEN, reason_code=None, detail=None, ref=enquiry_ref(p.uetr), message_id=None, amount=None,
        back_amount=None, rate=None, rate_rule=None, attempts=0, due_at=due_at, reply_by=None, created_at=now, updated_at=now,
    )


# ---------------------------------------------------------------- outbound: opening, asking, closing


async def open_enquiries(uow: UnitOfWork, deps: Deps, payments: Sequence[Payment], *, now: datetime) -> int:
    """The payments follow-up's hook: an enquiry case for each outbound payment still without a
    final status that has none yet, due `enquire_after_s` after admission (the case timer sends
    the pacs.028 then). Returns how many it opened."""
    candidates = [
        p for p in payments
        if p.direction is Direction.OUTBOUND and p.state in _ENQUIRABLE and p.message_id and p.partner in deps.mappings
    ]
    if not candidates:
        return 0
    existing = await uow.cases_by_ref([enquiry_ref(p.uetr) for p in candidates])
    new = [
        _new_case(p, initiator=Initiator.SWITCH, now=now,
                  due_at=first_enquiry_at(p, deps.mappings[p.partner].profile.exceptions.enquire_after_s, now=now))
        for p in candidates
        if enquiry_ref(p.uetr) not in existing
    ]
    await uow.cases_add(new)
    return len(new)


def _enquiry(case: Case, p: Payment, deps: Deps, *, now: datetime) -> tuple[Case, OutboxMessage]:
    """The case asking (again) now: a new pacs.028 to the payment's partner, validated against
    the official XSD, and the case SENT with one more attempt and its next time."""
    mapping = deps.mappings[p.partner]
    profile = mapping.profile
    msg_id = enquiry_message_id()
    request = mapping.status_request(p, message_id=msg_id, created_at=now)
    body = pacs028.build_validated(request, deps.schemas)  # the profiles' version: pacs.028.001.03
    attempts = case.attempts + 1
    exc = profile.exceptions
    due_at = next_enquiry_at(p, attempts, enquire_after_s=exc.enquire_after_s, interval_s_max=exc.enquiry_interval_s_max,
                             sla_s=profile.sla_s, now=now)
    row = OutboxMessage(
        kind="partner", destination=p.partner, message_id=msg_id, uetrs=(), key=p.uetr, body=body, created_at=now,
        deadline_at=due_at,  # a pacs.028 not delivered by the next one is not worth sending any more
    )
    sent = moved(case, C.SENT, now=now, message_id=msg_id, attempts=attempts, due_at=due_at,
                 reply_by=p.created_at + timedelta(seconds=profile.sla_s))
    deps.metrics.enquiries.labels(p.partner, OUTBOUND, "sent").inc()
    return sent, row


async def ask_partner(p: Payment, uow: UnitOfWork, deps: Deps, *, ref: str, now: datetime) -> OutboxMessage:
    """One pacs.028 now about an outbound payment whatever its state, in its own enquiry case
    (`ref`: the same ref again asks in the same case). The reconciliation's follow-up of a break
    (issue 10): the partner's answer (its stored status, or AG09 "not received") is handled like
    any pacs.002. Returns the pacs.028's outbox row (for the relay, after the commit)."""
    existing = (await uow.cases_by_ref([ref])).get(ref)
    case = existing or replace(_new_case(p, initiator=Initiator.SWITCH, due_at=now, now=now), ref=ref)
    sent, row = _enquiry(case, p, deps, now=now)
    if existing is None:
        await uow.cases_add([sent])
    else:
        await uow.cases_update([(existing.version, sent)])
    (added,) = await uow.outbox_add([row])
    return added


def _closed(case: Case, p: Payment | None, deps: Deps, *, now: datetime) -> Case:
    """An enquiry whose payment has its final status (or is gone): DONE, nothing more to ask."""
    if p is None:
        return moved(case, C.DONE, now=now, detail="no such payment")
    answered = case.attempts > 0
    deps.metrics.enquiries.labels(case.counterpart, OUTBOUND, "answered" if answered else "closed").inc()
    detail = f"payment {p.state.value}" + (f" after {case.attempts} pacs.028" if answered else "")
    return moved(case, C.DONE, now=now, reason_code=p.reason_code or case.reason_code,
                 detail=f"{detail}; {case.detail}" if case.detail else detail)  # an AG09 resend stays on record


async def follow_up_enquiries(cases: list[Case], uow: UnitOfWork, deps: Deps, out: Outcome) -> None:
    """CASE_FOLLOW_UPS[ENQUIRY]: each due enquiry asks again, or closes when its payment is final."""
    now = deps.clock()
    payments = await uow.payments_get(sorted({c.uetr for c in cases}))
    updates: list[tuple[int, Case]] = []
    rows: list[OutboxMessage] = []
    for case in cases:
        p = payments.get(case.uetr)
        if p is None or p.state not in _ENQUIRABLE:
            updates.append((case.version, _closed(case, p, deps, now=now)))
            out.count("enquiries_closed")
            continue
        if p.partner not in deps.mappings:  # the partner is no longer configured: look again later
            updates.append((case.version, touched(case, now=now, due_at=now + timedelta(seconds=limits.follow_up_interval_s_max))))
            continue
        sent, row = _enquiry(case, p, deps, now=now)
        updates.append((case.version, sent))
        rows.append(row)
        out.count("enquiries_sent")
    await uow.cases_update(updates)
    out.partner_outbox.extend(await uow.outbox_add(rows))


async def after_statuses(
    uow: UnitOfWork, deps: Deps, *, now: datetime, final: Sequence[Payment], not_found: Sequence[tuple[Payment, str]],
) -> list[OutboxMessage]:
    """apply_partner_statuses' hook, in its transaction. `final`: payments a pacs.002 just made
    final: their open enquiries go DONE. `not_found`: (payment, reason) for each RJCT with the
    partner's not-found reason (AG09) about a payment not yet final: its pacs.008 is resent byte
    for byte instead (the rows returned, for the relay) and its enquiry case notes it."""
    uetrs = sorted({p.uetr for p in final} | {p.uetr for p, _ in not_found})
    if not uetrs:
        return []
    cases = await uow.cases_by_ref([enquiry_ref(u) for u in uetrs])
    read = {c.id: c.version for c in cases.values()}
    changed: dict[str, Case] = {}  # case id -> the case now (a payment may appear twice in a batch)
    resend: dict[str, list[str]] = {}
    for p, reason in not_found:
        if p.message_id:
            resend.setdefault(p.partner, []).append(p.message_id)
        deps.metrics.enquiries.labels(p.partner, OUTBOUND, "not_found_resent").inc()
        case = cases.get(enquiry_ref(p.uetr))
        if case is not None and case.state in CASE_OPEN:
            case = changed.get(case.id, case)
            before = _RESENT_TIMES.search(case.detail or "")
            times = (int(before.group(1)) if before else 0) + 1
            detail = f"{p.partner} answered {reason} (payment not received): pacs.008 {p.message_id} resent {times} time(s)"
            changed[case.id] = touched(case, now=now, reason_code=reason, detail=detail)
    for p in final:
        case = cases.get(enquiry_ref(p.uetr))
        if case is not None:
            case = changed.get(case.id, case)
            if case.state in CASE_OPEN:
                changed[case.id] = _closed(case, p, deps, now=now)
    await uow.cases_update([(read[i], c) for i, c in changed.items()])
    rows: list[OutboxMessage] = []
    for partner, message_ids in sorted(resend.items()):
        deadline_at = now + timedelta(seconds=deps.mappings[partner].profile.resend_after_s)
        again = await uow.outbox_requeue("partner", sorted(set(message_ids)), now, deadline_at=deadline_at)
        deps.metrics.resends.labels(partner).inc(len(again))
        rows.extend(again)
    return rows


# ---------------------------------------------------------------- operators


@dataclass(frozen=True, slots=True)
class EnquirePayment:
    """An operator asks the partner about one outbound payment now (the operations API)."""

    uetr: str
    operator: str  # who (the token's or certificate's name), for the audit log
    note: str | None = None  # why, when the operator gave a reason (`mekong payments resolve --enquire`)


@dataclass(frozen=True, slots=True)
class EnquiryRefused:
    status: int  # 404 unknown payment, 409 not enquirable
    reason_code: str
    detail: str


async def enquire_payment(cmd: EnquirePayment, uow: UnitOfWork, deps: Deps) -> Outcome:
    """Open the payment's enquiry (initiator operator) or ask again now; audited in the same
    transaction. A refusal is in `out.refusals` (MS03: no such payment; AG01: not an outbound
    payment waiting for its status) and changes nothing. `out.counts["case_version"]` lets the
    edge find the case: it is the payment's enquiry (enquiry_ref)."""
    now = deps.clock()
    out = Outcome()
    p = (await uow.payments_get([cmd.uetr])).get(cmd.uetr)
    if p is None:
        out.refusals.append(("MS03", f"no payment with UETR {cmd.uetr}"))
        return out
    if p.direction is not Direction.OUTBOUND:
        out.refusals.append(("AG01", "an inbound payment is decided here, not enquired about: its partner asks the switch"))
        return out
    if p.state not in _ENQUIRABLE or not p.message_id or p.partner not in deps.mappings:
        out.refusals.append(("AG01", f"payment is {p.state.value}: there is no status to enquire about"))
        return out
    existing = (await uow.cases_by_ref([enquiry_ref(p.uetr)])).get(enquiry_ref(p.uetr))
    if existing is not None and existing.state not in (C.OPEN, C.SENT):
        out.refusals.append(("AG01", f"the payment's enquiry is {existing.state.value}"))
        return out
    case = existing or _new_case(p, initiator=Initiator.OPERATOR, due_at=now, now=now)
    sent, row = _enquiry(case, p, deps, now=now)
    if existing is None:
        await uow.cases_add([sent])
    else:
        await uow.cases_update([(existing.version, sent)])
    out.partner_outbox = await uow.outbox_add([row])
    await audit(uow, at=now, actor=f"operator {cmd.operator}", action=ENQUIRE_ACTION, subject=p.uetr,
                detail={"case_id": sent.id, "message_id": row.message_id, "attempts": sent.attempts, "partner": p.partner,
                        **({"note": cmd.note} if cmd.note else {})})
    deps.metrics.operator_actions.labels("enquire").inc()
    out.count("enquiries_sent")
    return out


# ---------------------------------------------------------------- inbound: a partner asks


@dataclass(frozen=True, slots=True)
class AnswerStatusRequests:
    """A partner's pacs.028 about payments it sent to the switch."""

    partner: str
    message_id: str
    message_type: str
    body: bytes
    requests: Sequence[pacs028.StatusRequestTx]


def _answer_id(partner: str, message_id: str, status_request_id: str, uetr: str | None) -> str:
    """The MsgId of the switch's pacs.002 answering one transaction of a pacs.028 with PDNG or
    AG09: "Q" and 34 hex digits of a hash of (sender, its MsgId, StsReqId, UETR), so the same
    pacs.028 again is answered with the same message."""
    digest = hashlib.sha256(f"{partner}\n{message_id}\n{status_request_id}\n{uetr or ''}".encode()).hexdigest()
    return "Q" + digest[:34]


def _interim(partner: str, msg_id: str, tx: pacs028.StatusRequestTx, deps: Deps, *, now: datetime,
             status: pacs002.TransactionStatus, reason_code: str | None, detail: str) -> OutboxMessage:
    reasons = (pacs002.StatusReason(reason_code, (detail[:105],)),) if reason_code else ()
    report = pacs002.PaymentStatusReport(
        message_id=msg_id,
        created_at=now,
        instructing_agent=Agent(bicfi=deps.config.switch.agent_bic),
        transactions=(
            pacs002.TransactionReport(
                status=status,
                original_group=tx.original_group,
                original_instruction_id=tx.original_instruction_id,
                original_end_to_end_id=tx.original_end_to_end_id,
                original_tx_id=tx.original_tx_id,
                original_uetr=tx.original_uetr,
                reasons=reasons,
            ),
        ),
    )
    body = pacs002.build_validated(report, deps.schemas)
    return OutboxMessage(kind="partner", destination=partner, message_id=msg_id, uetrs=(), key=tx.original_uetr or msg_id,
                         body=body, created_at=now)


async def answer_status_requests(cmd: AnswerStatusRequests, uow: UnitOfWork, deps: Deps) -> Outcome:
    now = deps.clock()
    out = Outcome()
    profile = deps.mappings[cmd.partner].profile
    if not await uow.inbound_seen(cmd.partner, [cmd.message_id]):
        await uow.inbound_add([{"partner": cmd.partner, "message_id": cmd.message_id, "message_type": cmd.message_type,
                                "received_at": now, "body": cmd.body}])
    else:
        out.count("duplicate_message")
    uetrs = [tx.original_uetr for tx in cmd.requests if tx.original_uetr]
    payments = await uow.payments_get(sorted(set(uetrs)))
    interim_ids = [_answer_id(cmd.partner, cmd.message_id, tx.status_request_id, tx.original_uetr) for tx in cmd.requests]
    wanted = interim_ids + [answer_message_id(u) for u in uetrs]
    stored = {m.message_id: m for m in await uow.outbox_by_message_ids("partner", wanted)}
    again: list[str] = []  # stored answers to deliver once more
    new: list[OutboxMessage] = []
    planned: set[str] = set()
    for tx, interim_id in zip(cmd.requests, interim_ids, strict=True):
        uetr = tx.original_uetr
        p = payments.get(uetr) if uetr else None
        if p is None or p.partner != cmd.partner or p.direction is not Direction.INBOUND:
            outcome, status, reason, detail = "answered_not_found", pacs002.TransactionStatus.RJCT, profile.exceptions.not_found_reason, "payment not received"
        elif p.state in FINAL_STATES:
            final_id = answer_message_id(p.uetr)
            out.count("answered_final")
            deps.metrics.enquiries.labels(cmd.partner, INBOUND, "answered_final").inc()
            if final_id in stored:
                again.append(final_id)
            continue
        else:
            outcome, status, reason, detail = "answered_pending", pacs002.TransactionStatus.PDNG, None, "booked, awaiting the beneficiary bank"
        out.count(outcome)
        deps.metrics.enquiries.labels(cmd.partner, INBOUND, outcome).inc()
        if interim_id in stored:
            again.append(interim_id)
        elif interim_id not in planned:
            planned.add(interim_id)
            new.append(_interim(cmd.partner, interim_id, tx, deps, now=now, status=status, reason_code=reason, detail=detail))
    if again:
        # the stored answers, byte for byte; one still waiting for delivery is on its way already
        out.partner_outbox.extend(await uow.outbox_requeue("partner", sorted(set(again)), now,
                                                           deadline_at=now + timedelta(seconds=profile.sla_s)))
    out.partner_outbox.extend(await uow.outbox_add(new))
    return out

