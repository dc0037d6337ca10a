"""Recalls (issue 9 item 3): camt.056 -> camt.029, then the money back with a pacs.004; both ways.

Outbound (a Bakong participant recalls one of its payments: RecallRequestV1 on mekong.requests)
  not yet sent     the pacs.008 row is withdrawn from the outbox (never delivered, not held by a
                   relay, no attempt that may have reached the partner, one payment) -> payment
                   QUOTED -> CANCELLED, case DONE ("cancelled locally")
  row in flight    payment QUOTED, its row held by a relay: case OPEN, looked at again shortly by
                   the case timer (withdrawn then, or the camt.056 once the payment left QUOTED)
  with the partner a RECALL case SENT and a camt.056 to the partner; a completed payment waits in
                   RECALL_PENDING; one not yet completed stays where it is (its pacs.002 still applies)
  camt.029         accepted: not yet completed -> CANCELLED, case DONE; completed -> case
                   AWAITING_RETURN (the pacs.004 comes through the returns flow, which books
                   RETURNED and closes the case); refused -> case REFUSED, payment back to
                   COMPLETED, the participant told the partner's reason
  case timer       chased (the same camt.056 again) every recall_chase_after_s; at reply_by
                   UNANSWERED (payment back to COMPLETED, participant told); an accepted recall
                   whose pacs.004 never came is UNANSWERED at its reply_by too
Inbound (a partner recalls a payment it sent: camt.056 on the partner port)
  completed        payment -> RECALL_PENDING, case SENT, an InboundRecallV1 on mekong.inbound for
                   the beneficiary participant, which answers with a RecallReplyV1 before reply_by
  ACCEPT           the pacs.004 (whole remaining amount) and a camt.029 CNCL / ACCR, payment
                   RETURNED, case DONE
  REFUSE           a camt.029 RJCR with the participant's reason, payment COMPLETED, case REFUSED
  silence          (case timer) a camt.029 RJCR NOAS, payment COMPLETED, case UNANSWERED
  anything else    answered at once with a camt.029 RJCR (NOOR unknown / not this partner's,
                   ARDT already returned, ARJR rejected, AGNT not credited yet), recorded as a
                   REJECTED case so the same camt.056 again changes nothing

Reason codes and assumptions: docs/exceptions/recalls.md. Handlers as in handlers.py: one
transaction each, no I/O beyond the unit of work; every message validated against its XSD.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from adapters.iso_mapping import tx_id
from iso20022 import camt029, camt056
from iso20022.model import Agent, Amount, ClearingSystemMember
from iso20022.pacs002 import OriginalGroup
from switch.contracts import AmountV1, InboundRecallV1, RecallReplyV1, RecallRequestV1
from switch.domain.case import (
    CASE_OPEN,
    CASE_TERMINAL,
    Case,
    CaseKind,
    CaseState,
    Initiator,
    moved,
    new_case_id,
    open_recall,
    returned_so_far,
    touched,
)
from switch.domain.money import Money
from switch.domain.recon import MATCHED
from switch.domain.payment import Direction, Payment, PaymentState, transition
from switch.service import events
from switch.service.case_timer import CASE_FOLLOW_UPS
from switch.service.handlers import Deps, Outcome, message_id as pacs008_message_id
from switch.service.message_rejects import refuse_message
from switch.service.ports import OutboxMessage, UnitOfWork
from switch.service.return_messages import pacs004_to_partner

S = PaymentState
C = CaseState
RECALL_RETURN_REASON = "FOCR"  # the pacs.004 that answers an accepted recall

# how soon a recall whose pacs.008 a relay holds right now is looked at again
in_flight_recheck_s: Final = 2.0
# a payment the partner has and may still decide (its pacs.002 applies): a recall asks to cancel it
_NOT_COMPLETED: Final = frozenset({S.QUOTED, S.SUBMITTED, S.ACCEPTED, S.TIMED_OUT})
# completed: a recall puts it in RECALL_PENDING until the answer
_COMPLETED: Final = frozenset({S.COMPLETED, S.SETTLED, S.PARTIALLY_RETURNED})
# the payment's own end, told instead of recalling it again (codes: docs/exceptions/recalls.md)
_ALREADY: Final = {S.RETURNED: "ARDT", S.CANCELLED: "CNCL", S.REJECTED: "ARJR"}

# participant request refusals (request_refused_outbox reason codes)
UNKNOWN_PAYMENT: Final = "NOOR"  # no such outbound payment of this participant
ALREADY_RECALLED: Final = "DUPL"  # a recall of this payment is still open
UNKNOWN_CASE: Final = "NOOR"  # a recall reply naming no open partner recall of this participant
ALREADY_DECIDED: Final = "ARPL"  # a recall reply for a recall already answered (or answered NOAS)
# camt.029 refusals the switch answers a partner's camt.056 with by itself
NOT_FOUND: Final = "NOOR"
NOT_CREDITED: Final = "AGNT"
NO_ANSWER: Final = "NOAS"


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class RecallPayments:
    """Participants' recalls of their outbound payments (RecallRequestV1 on mekong.requests)."""

    requests: Sequence[RecallRequestV1]


@dataclass(frozen=True, slots=True)
class ApplyRecallAnswers:
    """A partner's camt.029 answering our camt.056."""

    partner: str
    message_id: str  # Assgnmt/Id
    message_type: str
    body: bytes
    resolution: camt029.Resolution


@dataclass(frozen=True, slots=True)
class ApplyPartnerRecalls:
    """A partner's camt.056 recalling inbound payments it sent."""

    partner: str
    message_id: str  # Assgnmt/Id
    message_type: str
    body: bytes
    request: camt056.CancellationRequest


@dataclass(frozen=True, slots=True)
class AnswerRecalls:
    """Beneficiary participants' answers to partners' recalls (RecallReplyV1 on mekong.requests)."""

    replies: Sequence[RecallReplyV1]


# ---------------------------------------------------------------- messages


def recall_message_id(case_id: str) -> str:
    """The camt.056 Assgnmt/Id of an outbound recall: fixed by its case (a chase is the same message)."""
    return "N" + case_id[1:]


def answer_message_id(ref: str) -> str:
    """The camt.029 Assgnmt/Id answering a partner's camt.056: fixed by the case's ref (Max35Text)."""
    return "W" + hashlib.sha256(ref.encode()).hexdigest()[:34]


def recall_event_id(case_id: str) -> str:
    """The id of the InboundRecallV1 row on mekong.inbound."""
    return "V" + case_id[1:]


def _member(deps: Deps, partner: str, member_id: str | None) -> Agent:
    """The partner side as an agent, named as pacs.008 names the partner's agents (clearing member
    id under the profile's clearing system); the network itself (its proxy member or its name)
    when the payment names no bank."""
    profile = deps.mappings[partner].profile
    member = member_id if member_id and member_id != "-" else profile.proxy_network_member_id
    if member is None:
        return Agent(clearing_member=ClearingSystemMember(
            member_id=profile.partner.upper(), system_proprietary=profile.clearing_system_proprietary or profile.clearing_system_code,
        ))
    return Agent(clearing_member=ClearingSystemMember(
        member_id=member, system_code=profile.member_id_system_code, system_proprietary=profile.member_id_system_proprietary,
    ))


def _partner_agent(p: Payment, deps: Deps) -> Agent:
    """The partner's agent for a payment: the creditor's bank (outbound), the debtor's (inbound)."""
    return _member(deps, p.partner, p.creditor.agent if p.direction is Direction.OUTBOUND else p.debtor.agent)


def camt056_to_partner(case: Case, p: Payment, deps: Deps, *, now: datetime) -> OutboxMessage:
    """The camt.056 recalling outbound payment `p` for `case`, validated against the profile's version."""
    profile = deps.mappings[p.partner].profile
    switch = Agent(bicfi=deps.config.switch.agent_bic)
    tx = camt056.CancellationTx(
        cancellation_id=case.id,
        original_group=OriginalGroup(p.message_id or pacs008_message_id(p.uetr, 1), profile.pacs008_version),
        original_instruction_id=p.instruction_id,
        original_end_to_end_id=p.instruction_id,
        original_tx_id=tx_id(p.uetr),
        original_uetr=p.uetr,
        original_settlement_amount=Amount(p.target.to_text(profile.amount_decimals), p.target.currency.code),
        reason_code=case.reason_code,
        additional_info=(case.detail[:105],) if case.detail else (),
    )
    request = camt056.CancellationRequest(
        assignment_id=recall_message_id(case.id), created_at=now, assigner=switch, assignee=_partner_agent(p, deps),
        transactions=(tx,), case_id=case.id, case_creator=switch,
    )
    body = camt056.build_validated(request, deps.schemas, profile.exceptions.camt056_version)
    return OutboxMessage(
        kind="partner", destination=p.partner, message_id=request.assignment_id, uetrs=(), key=p.uetr, body=body, created_at=now,
    )


def camt029_to_partner(
    partner: str, ref: str, deps: Deps, *, now: datetime, accepted: bool, reason_code: str | None, detail: str | None,
    cancellation_id: str | None, uetr: str | None, end_to_end_id: str | None, assignee: Agent, case_id: str | None = None,
    case_creator: Agent | None = None,
) -> OutboxMessage:
    """The camt.029 answering a partner's camt.056 (CNCL / ACCR, or RJCR with a reason)."""
    profile = deps.mappings[partner].profile
    status = camt029.CancellationStatus(
        cancellation_status_id=cancellation_id[:35] if cancellation_id else None,
        original_end_to_end_id=end_to_end_id,
        original_uetr=uetr,
        status="ACCR" if accepted else "RJCR",
        reason_code=None if accepted else reason_code,
        additional_info=(detail[:105],) if detail and not accepted else (),
    )
    resolution = camt029.Resolution(
        assignment_id=answer_message_id(ref), created_at=now, assigner=Agent(bicfi=deps.config.switch.agent_bic),
        assignee=assignee, status="CNCL" if accepted else "RJCR", transactions=(status,),
        case_id=case_id[:35] if case_id and case_creator else None, case_creator=case_creator if case_id else None,
    )
    body = camt029.build_validated(resolution, deps.schemas, profile.exceptions.camt029_version)
    return OutboxMessage(
        kind="partner", destination=partner, message_id=resolution.assignment_id, uetrs=(), key=uetr, body=body, created_at=now,
    )


def _remaining(p: Payment, cases: list[Case]) -> Money:
    """What of the payment has not come back yet."""
    return Money(max(0, p.target.amount_minor - returned_so_far(cases)), p.target.currency)


def _count(deps: Deps, partner: str, direction: str, outcome: str) -> None:
    deps.metrics.recalls.labels(partner, direction, outcome).inc()


def _code(code: str | None) -> str:
    """A reason as the case and payment keep it (four characters); a proprietary one as NARR."""
    return code if code and len(code) == 4 and code.isalnum() else "NARR"


# ---------------------------------------------------------------- one transaction's writes


class _Work:
    """What one handler run writes, in order: payments (versioned), cases, history, outbox rows."""

    def __init__(self, uow: UnitOfWork, deps: Deps, out: Outcome) -> None:
        self.uow, self.deps, self.out = uow, deps, out
        self.now = deps.clock()
        self.partner_rows: list[OutboxMessage] = []
        self.status_rows: list[OutboxMessage] = []

    async def move(self, p: Payment, target: PaymentState, *, reason_code: str | None, detail: str) -> Payment:
        new, entry = transition(p, target, now=self.now, reason_code=reason_code, detail=detail)
        await self.uow.payments_update([(p.version, new)])
        await self.uow.history_add([entry])
        return new

    async def back_from_recall(self, p: Payment, cases: list[Case], *, detail: str, reason_code: str | None) -> Payment:
        """A recall that brought nothing back: RECALL_PENDING -> COMPLETED, or SETTLED when a
        settlement cycle matched it meanwhile or before (issue 10), or PARTIALLY_RETURNED when
        part of it had come back before the recall."""
        if p.state is not S.RECALL_PENDING:
            return p
        if returned_so_far(cases) > 0:
            return await self.move(p, S.PARTIALLY_RETURNED, reason_code=reason_code or "NARR", detail=detail)
        book = (await self.uow.books_find([p.uetr])).get(p.uetr)
        settled = book is not None and book.result == MATCHED
        return await self.move(p, S.SETTLED if settled else S.COMPLETED, reason_code=None, detail=detail)

    async def case(self, old: Case | None, new: Case) -> Case:
        if old is None:
            await self.uow.cases_add([new])
        else:
            await self.uow.cases_update([(old.version, new)])
        return new

    def tell(self, p: Payment, case: Case, *, reason: str | None = None, request_id: str | None = None, moved_payment: bool) -> None:
        self.status_rows.append(
            events.case_outbox(p, case, self.deps.config, now=self.now, reason=reason, request_id=request_id, moved=moved_payment)
        )

    async def refuse_request(self, participant: str, request_id: str, kind: str, uetr: str | None, code: str, reason: str) -> None:
        row = events.request_refused_outbox(participant, request_id, kind, uetr, code, reason, self.deps.config, now=self.now)
        if row.message_id in await self.uow.outbox_existing("status", [row.message_id]) or any(
            r.message_id == row.message_id for r in self.status_rows
        ):
            self.out.count("redelivered")
            return
        self.out.count("refused")
        self.status_rows.append(row)

    async def flush(self) -> Outcome:
        self.out.partner_outbox.extend(await self.uow.outbox_add(self.partner_rows))
        self.out.status_outbox.extend(await self.uow.outbox_add(self.status_rows))
        return self.out


# ---------------------------------------------------------------- outbound: the participant recalls


async def recall_payments(cmd: RecallPayments, uow: UnitOfWork, deps: Deps) -> Outcome:
    w = _Work(uow, deps, Outcome())
    for r in cmd.requests:
        await _recall_one(w, r)
    return await w.flush()


async def _recall_one(w: _Work, r: RecallRequestV1) -> None:
    uow, now = w.uow, w.now
    ref = f"participant/{r.participant}/{r.request_id}"
    if ref in await uow.cases_by_ref([ref]):
        w.out.count("duplicate")  # the same request again: its case stands
        return
    if r.uetr is not None:
        p = (await uow.payments_get([r.uetr])).get(r.uetr)
    else:
        assert r.instruction_id is not None  # the contract names exactly one
        p = await uow.payment_by_instruction(r.participant, r.instruction_id)
    if p is None or p.participant != r.participant or p.direction is not Direction.OUTBOUND:
        named = r.uetr or f"instruction {r.instruction_id}"
        await w.refuse_request(r.participant, r.request_id, "recall", r.uetr, UNKNOWN_PAYMENT,
                               f"no outbound payment {named} of {r.participant}")
        _count(w.deps, "-", "outbound", "rejected")
        return
    cases = (await uow.cases_of([p.uetr])).get(p.uetr, [])
    already = open_recall(cases)
    if already is not None or p.state is S.RECALL_PENDING:
        await w.refuse_request(r.participant, r.request_id, "recall", p.uetr, ALREADY_RECALLED,
                               f"payment already recalled (case {already.id if already else '?'} is open)")
        _count(w.deps, p.partner, "outbound", "rejected")
        return
    if p.state in _ALREADY:
        await w.refuse_request(r.participant, r.request_id, "recall", p.uetr, _ALREADY[p.state],
                               f"payment already {p.state.value} ({p.reason_code or '-'}): nothing to recall")
        _count(w.deps, p.partner, "outbound", "rejected")
        return
    profile = w.deps.mappings[p.partner].profile
    case = Case(
        id=new_case_id(), uetr=p.uetr, kind=CaseKind.RECALL, initiator=Initiator.PARTICIPANT, counterpart=p.partner,
        state=C.OPEN, reason_code=r.reason_code, detail=r.reason, ref=ref, message_id=None, amount=p.target,
        back_amount=p.source, rate=None, rate_rule=None, attempts=0, due_at=None,
        reply_by=now + timedelta(seconds=profile.exceptions.recall_sla_s), created_at=now, updated_at=now,
    )
    await w.case(None, case)
    w.out.count("recalled")
    await _advance_outbound(w, case, p, cases, request_id=r.request_id)


async def _advance_outbound(w: _Work, case: Case, p: Payment, cases: list[Case], *, request_id: str | None) -> None:
    """An OPEN outbound recall: cancel locally if never sent, else ask the partner (camt.056),
    else (row held by a relay right now) look again shortly."""
    now, deps = w.now, w.deps
    if p.state is S.QUOTED and p.message_id is not None and await w.uow.outbox_withdraw("partner", p.message_id, now):
        p = await w.move(p, S.CANCELLED, reason_code=case.reason_code, detail="recalled before it was sent: the pacs.008 never left")
        case = await w.case(case, moved(case, C.DONE, now=now, detail=case.detail))
        w.tell(p, case, reason="cancelled: the payment was never sent", request_id=request_id, moved_payment=True)
        _count(deps, p.partner, "outbound", "cancelled_locally")
        w.out.count("cancelled_locally")
        return
    if p.state is S.QUOTED:  # the pacs.008 is with a relay right now (or already on its way)
        await w.case(case, touched(case, now=now, due_at=now + timedelta(seconds=in_flight_recheck_s)))
        w.out.count("in_flight")
        return
    if p.state in _ALREADY:  # it ended meanwhile (rejected, ...): nothing to recall
        code = _ALREADY[p.state]
        case = await w.case(case, moved(case, C.REJECTED, now=now, reason_code=code,
                                        detail=f"payment {p.state.value} before the recall could be sent"))
        w.tell(p, case, reason=f"payment already {p.state.value}: nothing to recall", request_id=request_id, moved_payment=False)
        _count(deps, p.partner, "outbound", "rejected")
        return
    profile = deps.mappings[p.partner].profile
    row = camt056_to_partner(case, p, deps, now=now)
    w.partner_rows.append(row)
    moved_payment = False
    if p.state in _COMPLETED:
        p = await w.move(p, S.RECALL_PENDING, reason_code=case.reason_code, detail=f"recall {case.id} sent to {p.partner}")
        moved_payment = True
    due = min(now + timedelta(seconds=profile.exceptions.recall_chase_after_s), case.reply_by or now)
    case = await w.case(case, moved(case, C.SENT, now=now, message_id=row.message_id, attempts=case.attempts + 1, due_at=due,
                                    reply_by=case.reply_by or now + timedelta(seconds=profile.exceptions.recall_sla_s)))
    w.tell(p, case, reason=f"recall sent to {p.partner}", request_id=request_id, moved_payment=moved_payment)
    _count(deps, p.partner, "outbound", "sent")
    w.out.count("sent")


# ---------------------------------------------------------------- outbound: the partner's camt.029


def _decision(resolution: camt029.Resolution) -> str:
    """"accept", "refuse", "pending" or "unknown" from Sts/Conf and the TxCxlSts."""
    statuses = {t.status for t in resolution.transactions if t.status}
    if resolution.status == "CNCL" or "ACCR" in statuses:
        return "accept"
    if resolution.status == "RJCR" or "RJCR" in statuses:
        return "refuse"
    if resolution.status == "PDCR" or "PDCR" in statuses:
        return "pending"
    return "unknown"


async def apply_recall_answers(cmd: ApplyRecallAnswers, uow: UnitOfWork, deps: Deps) -> Outcome:
    w = _Work(uow, deps, Outcome())
    now, res = w.now, cmd.resolution
    if await uow.inbound_seen(cmd.partner, [cmd.message_id]):
        w.out.count("duplicate_message")
        return w.out
    await uow.inbound_add([{"partner": cmd.partner, "message_id": cmd.message_id, "message_type": cmd.message_type,
                            "received_at": now, "body": cmd.body}])
    case: Case | None = None
    if res.case_id is not None:
        case = (await uow.cases_get([res.case_id])).get(res.case_id)
    if case is None:  # matched by the original UETR: the latest recall of that payment we sent
        uetrs = [t.original_uetr for t in res.transactions if t.original_uetr]
        found = await uow.cases_of(uetrs[:1])
        ours = [c for c in found.get(uetrs[0], []) if c.kind is CaseKind.RECALL and c.initiator is Initiator.PARTICIPANT] if uetrs else []
        case = open_recall(ours) or next((c for c in reversed(ours) if c.state is C.UNANSWERED), None) or (ours[-1] if ours else None)
    if case is None or case.kind is not CaseKind.RECALL or case.initiator is not Initiator.PARTICIPANT or case.counterpart != cmd.partner:
        row = refuse_message(w.out, deps, partner=cmd.partner, refused_message_id=cmd.message_id, reason_code=NOT_FOUND,
                             detail="camt.029 names no recall the switch sent to this partner", now=now)
        if row is not None:
            w.partner_rows.append(row)
        _count(deps, cmd.partner, "outbound", "rejected")
        return await w.flush()
    decision = _decision(res)
    if case.state in CASE_TERMINAL or case.state is C.OPEN or (case.state is C.AWAITING_RETURN and decision == "accept"):
        w.out.count("already_decided")  # decided before (or not asked yet): counted, ignored
        deps.metrics.late_status.labels(cmd.partner).inc()
        return w.out
    p = (await uow.payments_get([case.uetr]))[case.uetr]
    cases = (await uow.cases_of([p.uetr])).get(p.uetr, [])
    tx = next((t for t in res.transactions if t.original_uetr in (None, p.uetr)), None)
    if decision == "pending":
        w.out.count("pending")  # the partner works on it: the chase and the SLA go on
        return w.out
    if decision == "unknown":
        row = refuse_message(w.out, deps, partner=cmd.partner, refused_message_id=cmd.message_id, reason_code="FF01",
                             detail=f"camt.029 Sts/Conf {res.status!r} is neither CNCL nor RJCR", now=now)
        if row is not None:
            w.partner_rows.append(row)
        return await w.flush()
    profile = deps.mappings[p.partner].profile
    if decision == "accept":
        _count(deps, p.partner, "outbound", "accepted")
        w.out.count("accepted")
        if p.state in _NOT_COMPLETED:
            p = await w.move(p, S.CANCELLED, reason_code=case.reason_code, detail=f"recall {case.id} accepted by {p.partner}")
            case = await w.case(case, moved(case, C.DONE, now=now))
            w.tell(p, case, reason=f"recall accepted by {p.partner}: the payment is cancelled", moved_payment=True)
        elif p.state in (S.RETURNED,):  # the pacs.004 came first
            case = await w.case(case, moved(case, C.DONE, now=now))
            w.tell(p, case, reason=f"recall accepted by {p.partner}: the payment was already returned", moved_payment=False)
        else:
            if p.state in _COMPLETED:  # a late answer to a recall reported unanswered
                p = await w.move(p, S.RECALL_PENDING, reason_code=case.reason_code, detail=f"recall {case.id} accepted late")
            reply_by = now + timedelta(seconds=profile.exceptions.recall_sla_s)
            case = await w.case(case, moved(case, C.AWAITING_RETURN, now=now, due_at=reply_by, reply_by=reply_by))
            w.tell(p, case, reason=f"recall accepted by {p.partner}: the money comes back with its pacs.004", moved_payment=False)
        return await w.flush()
    code = _code(tx.reason_code if tx else None)
    info = "; ".join(tx.additional_info) if tx and tx.additional_info else None
    detail = f"{p.partner} refused the recall ({tx.reason_proprietary if tx and tx.reason_proprietary else code})" + (f": {info}" if info else "")
    p = await w.back_from_recall(p, cases, detail=detail, reason_code=case.reason_code)
    case = await w.case(case, moved(case, C.REFUSED, now=now, reason_code=code, detail=detail[:500]))
    w.tell(p, case, reason=detail, moved_payment=False)
    _count(deps, p.partner, "outbound", "refused")
    w.out.count("refused")
    return await w.flush()


# ---------------------------------------------------------------- inbound: the partner recalls


async def apply_partner_recalls(cmd: ApplyPartnerRecalls, uow: UnitOfWork, deps: Deps) -> Outcome:
    w = _Work(uow, deps, Outcome())
    now, req = w.now, cmd.request
    if not await uow.inbound_seen(cmd.partner, [cmd.message_id]):
        await uow.inbound_add([{"partner": cmd.partner, "message_id": cmd.message_id, "message_type": cmd.message_type,
                                "received_at": now, "body": cmd.body}])
    profile = deps.mappings[cmd.partner].profile
    for tx in req.transactions:
        ref = f"partner/{cmd.partner}/{req.assignment_id}/{tx.cancellation_id}"
        if ref in await uow.cases_by_ref([ref]):
            w.out.count("duplicate")  # the same camt.056 again: its case (and answer) stand
            continue
        uetr = tx.original_uetr
        p = (await uow.payments_get([uetr])).get(uetr) if uetr else None
        reason = _code(tx.reason_code)
        detail = "; ".join(tx.additional_info) or (tx.reason_proprietary or None)
        if p is None or p.partner != cmd.partner or p.direction is not Direction.INBOUND:
            await _refuse_partner_recall(w, cmd, ref, tx, p=None, code=NOT_FOUND, why="no inbound payment of this partner with this UETR")
            continue
        cases = (await uow.cases_of([p.uetr])).get(p.uetr, [])
        if open_recall(cases) is not None:
            w.out.count("already_open")  # one recall at a time: the answer to the open one will come
            continue
        if p.state in _ALREADY or p.state in _NOT_COMPLETED or p.state not in _COMPLETED:
            code = _ALREADY.get(p.state, NOT_CREDITED)
            why = f"payment {p.state.value}" + (": not credited yet, its pacs.002 decides it" if code == NOT_CREDITED else "")
            await _refuse_partner_recall(w, cmd, ref, tx, p=p, code=code, why=why)
            continue
        reply_by = now + timedelta(seconds=profile.exceptions.recall_reply_s)
        case_id = new_case_id()
        case = Case(
            id=case_id, uetr=p.uetr, kind=CaseKind.RECALL, initiator=Initiator.PARTNER, counterpart=p.participant,
            state=C.SENT, reason_code=reason, detail=(detail or "")[:500] or None, ref=ref, message_id=recall_event_id(case_id),
            amount=_remaining(p, cases), back_amount=None, rate=None, rate_rule=None, attempts=1, due_at=reply_by,
            reply_by=reply_by, created_at=now, updated_at=now,
        )
        await w.case(None, case)
        p = await w.move(p, S.RECALL_PENDING, reason_code=reason, detail=f"recalled by {cmd.partner} (case {case.id})")
        amount = case.amount or p.target
        event = InboundRecallV1(
            case_id=case.id, uetr=p.uetr, participant=p.participant, corridor=p.corridor, partner=p.partner,
            end_to_end_id=p.instruction_id,
            amount=AmountV1.model_construct(value=amount.to_text(amount.currency.decimals_accepted_max), currency=amount.currency.code),
            reason_code=reason, reason=(detail or None) and detail[:105], reply_by=reply_by, occurred_at=now,
        )
        w.status_rows.append(OutboxMessage(
            kind="status", destination=deps.config.kafka.inbound_topic, message_id=recall_event_id(case.id),
            uetrs=(p.uetr,), key=f"{p.participant}/{p.uetr}", body=event.model_dump_json().encode(), created_at=now,
        ))
        _count(deps, p.partner, "inbound", "sent")
        w.out.count("asked")
    return await w.flush()


async def _refuse_partner_recall(
    w: _Work, cmd: ApplyPartnerRecalls, ref: str, tx: camt056.CancellationTx, *, p: Payment | None, code: str, why: str,
) -> None:
    """Answer a camt.056 the switch refuses itself with a camt.029 RJCR, and keep a REJECTED case
    under its ref so the same camt.056 again answers nothing new."""
    now = w.now
    row = camt029_to_partner(
        cmd.partner, ref, w.deps, now=now, accepted=False, reason_code=code, detail=why, cancellation_id=tx.cancellation_id,
        uetr=tx.original_uetr, end_to_end_id=tx.original_end_to_end_id,
        assignee=cmd.request.assigner, case_id=cmd.request.case_id, case_creator=cmd.request.case_creator,
    )
    w.partner_rows.append(row)
    case = Case(
        id=new_case_id(), uetr=(tx.original_uetr or "-")[:36], kind=CaseKind.RECALL, initiator=Initiator.PARTNER,
        counterpart=p.participant if p is not None else cmd.partner, state=C.REJECTED, reason_code=code, detail=why[:500], ref=ref,
        message_id=row.message_id, amount=None, back_amount=None, rate=None, rate_rule=None, attempts=1, due_at=None,
        reply_by=None, created_at=now, updated_at=now,
    )
    await w.case(None, case)
    _count(w.deps, cmd.partner, "inbound", "rejected")
    w.out.count("refused")


def _answer_for(case: Case, p: Payment, deps: Deps, *, now: datetime, accepted: bool, code: str | None, detail: str | None) -> OutboxMessage:
    """The camt.029 answering the partner's camt.056 behind `case` (ids from its ref)."""
    _, partner, _assignment, cancellation_id = case.ref.split("/", 3)
    return camt029_to_partner(
        partner, case.ref, deps, now=now, accepted=accepted, reason_code=code, detail=detail, cancellation_id=cancellation_id,
        uetr=p.uetr, end_to_end_id=p.instruction_id, assignee=_partner_agent(p, deps),
    )


async def answer_recalls(cmd: AnswerRecalls, uow: UnitOfWork, deps: Deps) -> Outcome:
    w = _Work(uow, deps, Outcome())
    now = w.now
    for r in cmd.replies:
        case = (await uow.cases_get([r.case_id])).get(r.case_id)
        if case is None or case.kind is not CaseKind.RECALL or case.initiator is not Initiator.PARTNER or case.counterpart != r.participant:
            await w.refuse_request(r.participant, r.request_id, "recall", None, UNKNOWN_CASE,
                                   f"no partner recall {r.case_id} for {r.participant}")
            continue
        if case.state not in CASE_OPEN:
            if case.detail and case.detail.startswith(f"request {r.request_id}:"):
                w.out.count("redelivered")  # this very reply decided it
                continue
            await w.refuse_request(r.participant, r.request_id, "recall", case.uetr, ALREADY_DECIDED,
                                   f"recall {case.id} already answered ({case.state.value})")
            continue
        p = (await uow.payments_get([case.uetr]))[case.uetr]
        cases = (await uow.cases_of([p.uetr])).get(p.uetr, [])
        said = f"request {r.request_id}: {r.reason or r.decision.lower()}"[:500]
        if r.decision == "ACCEPT":
            amount = _remaining(p, cases)
            # FOCR (ExternalReturnReason1Code "following cancellation request"): the return answers
            # the partner's own camt.056, whatever its reason (which need not be a return reason)
            w.partner_rows.append(pacs004_to_partner(p, amount, deps, return_id=case.id, reason_code=RECALL_RETURN_REASON,
                                                     detail=f"recall {case.id} accepted ({case.reason_code or 'no reason'})", now=now))
            answer = _answer_for(case, p, deps, now=now, accepted=True, code=None, detail=None)
            w.partner_rows.append(answer)
            p = await w.move(p, S.RETURNED, reason_code=case.reason_code or "NARR", detail=f"recall {case.id} accepted: returned to {p.partner}")
            case = await w.case(case, moved(case, C.DONE, now=now, detail=said, message_id=answer.message_id, amount=amount))
            w.tell(p, case, reason="recall accepted: the money is returned to the partner", request_id=r.request_id, moved_payment=True)
            _count(deps, p.partner, "inbound", "accepted")
            w.out.count("accepted")
        else:
            code = _code(r.reason_code)
            answer = _answer_for(case, p, deps, now=now, accepted=False, code=code, detail=r.reason)
            w.partner_rows.append(answer)
            p = await w.back_from_recall(p, cases, detail=f"recall {case.id} refused by {r.participant} ({code})", reason_code=case.reason_code)
            case = await w.case(case, moved(case, C.REFUSED, now=now, reason_code=code, detail=said, message_id=answer.message_id))
            w.tell(p, case, reason=f"recall refused ({code})", request_id=r.request_id, moved_payment=False)
            _count(deps, p.partner, "inbound", "refused")
            w.out.count("refused")
    return await w.flush()


# ---------------------------------------------------------------- the case timer


def _request_of(case: Case) -> str | None:
    """The participant's request id of an outbound recall (ref `participant/<code>/<request_id>`)."""
    parts = case.ref.split("/", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "participant" else None


async def follow_up_recalls(cases: list[Case], uow: UnitOfWork, deps: Deps, out: Outcome) -> None:
    """Due recall cases (CASE_FOLLOW_UPS[CaseKind.RECALL]): an outbound recall waiting for its
    payment to leave QUOTED, chased or given up; a partner's recall the participant left
    unanswered."""
    w = _Work(uow, deps, out)
    now = w.now
    payments = await uow.payments_get(sorted({c.uetr for c in cases}))
    all_cases = await uow.cases_of(sorted({c.uetr for c in cases}))
    for case in cases:
        p = payments.get(case.uetr)
        if p is None:  # a case about no payment is never left due; close the look
            await w.case(case, touched(case, now=now, due_at=None))
            continue
        of_payment = all_cases.get(p.uetr, [])
        if case.initiator is Initiator.PARTNER:
            if case.reply_by is not None and now < case.reply_by:
                await w.case(case, touched(case, now=now, due_at=case.reply_by))
                continue
            answer = _answer_for(case, p, deps, now=now, accepted=False, code=NO_ANSWER,
                                 detail="the beneficiary's bank did not answer in time")
            w.partner_rows.append(answer)
            p = await w.back_from_recall(p, of_payment, detail=f"recall {case.id} unanswered by {p.participant}", reason_code=case.reason_code)
            case = await w.case(case, moved(case, C.UNANSWERED, now=now, message_id=answer.message_id, due_at=None))
            w.tell(p, case, reason=f"no answer by {case.reply_by:%Y-%m-%dT%H:%M:%SZ}: the partner was told NOAS", moved_payment=False)
            _count(deps, p.partner, "inbound", "unanswered")
            out.count("unanswered")
            continue
        if case.state is C.OPEN:  # its first event: it names the participant's request (kept in the ref)
            await _advance_outbound(w, case, p, of_payment, request_id=_request_of(case))
            continue
        profile = deps.mappings[p.partner].profile
        if case.reply_by is not None and now >= case.reply_by:
            what = "the partner never answered the recall" if case.state is C.SENT else "the partner accepted the recall but the money never came back"
            p = await w.back_from_recall(p, of_payment, detail=f"recall {case.id}: {what}", reason_code=case.reason_code)
            case = await w.case(case, moved(case, C.UNANSWERED, now=now, detail=what, due_at=None))
            w.tell(p, case, reason=f"unanswered: {what}", moved_payment=False)
            _count(deps, p.partner, "outbound", "unanswered")
            out.count("unanswered")
            continue
        if case.state is C.AWAITING_RETURN:
            await w.case(case, touched(case, now=now, due_at=case.reply_by))
            continue
        # SENT, not answered yet: the same camt.056 again (only if its last delivery is done)
        assert case.message_id is not None and case.reply_by is not None
        again = await uow.outbox_requeue("partner", [case.message_id], now, case.reply_by)
        out.partner_outbox.extend(again)
        due = min(now + timedelta(seconds=profile.exceptions.recall_chase_after_s), case.reply_by)
        await w.case(case, moved(case, C.SENT, now=now, attempts=case.attempts + (1 if again else 0), due_at=due))
        _count(deps, p.partner, "outbound", "chased")
        out.count("chased")
    await w.flush()


CASE_FOLLOW_UPS[CaseKind.RECALL] = follow_up_recalls
