"""Returns (issue 9 item 2, pacs.004), both directions, as cases (switch/domain/case.py).

  partner pacs.004   --> apply_partner_returns: a partner returns (part of) an OUTBOUND payment it
                         had completed; the switch converts the amount back to the debtor's
                         currency by the corridor's rule (fx/returns.py), books a RETURN case
                         (DONE), moves the payment to RETURNED or PARTIALLY_RETURNED, closes an
                         accepted recall the return answers, and tells the participant
  ReturnRequestV1    --> return_inbound_payments: a Bakong participant returns (part of) an INBOUND
  (mekong.requests)      payment it had credited; the switch books the case, moves the payment and
                         sends the partner that paid it a pacs.004 (switch/service/return_messages.py)

Idempotent by the case's `ref`: the partner's message id and RtrId, or the participant's request
id; the same return again books nothing and is counted `duplicate`. What cannot be booked is
refused with an ISO reason code (docs/exceptions/returns.md): to the partner by
message_rejects.refuse_message (HTTP 422, and an admi.002 where its profile asks for one), to the
participant by a status event of type "exception" (events.request_refused_outbox).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from fx import returns as fx_returns
from iso20022.pacs004 import ReturnTx
from switch.contracts import ReturnRequestV1
from switch.domain.errors import SwitchError
from switch.domain.case import Case, CaseKind, CaseState, Initiator, moved, new_case_id, open_recall, returned_so_far
from switch.domain.money import AmountError, Money
from switch.domain.payment import Direction, HistoryEntry, Payment, PaymentState, transition
from switch.metrics import returns_metrics
from switch.service import events
from switch.service.handlers import Deps, Outcome
from switch.service.message_rejects import refuse_message
from switch.service.ports import OutboxMessage, UnitOfWork
from switch.service.return_messages import pacs004_to_partner

S = PaymentState

# The reasons a return is refused (ISO codes; docs/exceptions/returns.md says why each)
UNKNOWN_ORIGINAL = "NOOR"  # no such payment of this sender: unknown, another partner's / participant's, other direction
NOT_RETURNABLE = "AG01"  # the payment is not in a state a return applies to (not completed, rejected, recall open)
ALREADY_RETURNED = "ARDT"  # the whole amount is already back
WRONG_CURRENCY = "CURR"  # the amount is not in the payment's settlement currency
WRONG_AMOUNT = "AM09"  # zero, or not an amount of that currency
OVER_RETURN = "AM02"  # more than what remains unreturned
UNKNOWN_REASON = "FF01"  # the return reason is outside the agreed code set (profile return_reasons)

# a partner's return applies to a payment it had credited; a recall the partner accepted leaves
# the payment RECALL_PENDING until the money comes back with this pacs.004
PARTNER_RETURNABLE = frozenset({S.COMPLETED, S.SETTLED, S.PARTIALLY_RETURNED, S.RECALL_PENDING})
# a participant's return: not while a recall is open (the recall flow owns the payment then)
PARTICIPANT_RETURNABLE = frozenset({S.COMPLETED, S.SETTLED, S.PARTIALLY_RETURNED})
_TX_ID = re.compile(r"^T([0-9a-f]{8})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{12})$")


@dataclass(frozen=True, slots=True)
class ApplyPartnerReturns:
    """A partner's pacs.004 as the partner port read it (XSD-validated, signature checked)."""

    partner: str
    message_id: str
    message_type: str
    returns: Sequence[ReturnTx]


@dataclass(frozen=True, slots=True)
class ReturnInboundPayments:
    """Participants' ReturnRequestV1 from one Kafka batch (signed by the participant they name)."""

    requests: Sequence[ReturnRequestV1]


class _Refused(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


def original_uetr(tx: ReturnTx) -> str | None:
    """The payment a TxInf returns: OrgnlUETR, or the UETR the switch's own OrgnlTxId carries
    (adapters/iso_mapping.py tx_id: "T" + the UETR's 32 hex digits)."""
    if tx.original_uetr:
        return tx.original_uetr.lower()
    m = _TX_ID.match(tx.original_tx_id or "")
    return "-".join(m.groups()) if m else None


def shown(m: Money) -> str:
    """An amount as the messages write it (KHR in whole riels)."""
    return f"{m.to_text(m.currency.decimals_accepted_max)} {m.currency.code}"


def remaining(p: Payment, cases: list[Case]) -> int:
    """Minor units of the payment's settlement amount not yet returned."""
    return p.target.amount_minor - returned_so_far(cases)


def _returned_amount(value: str, code: str, p: Payment, left: int) -> Money:
    """The returned amount read and checked against the payment (raises _Refused)."""
    if code != p.target.currency.code:
        raise _Refused(WRONG_CURRENCY, f"the payment settled in {p.target.currency.code}, not {code}")
    try:
        amount = Money.parse(value, code)
    except AmountError as exc:
        raise _Refused(WRONG_AMOUNT if exc.reason_code != "CH20" else exc.reason_code, str(exc)) from None
    if amount.amount_minor > left:
        raise _Refused(OVER_RETURN, f"{shown(amount)} is more than the {shown(Money(left, p.target.currency))} not yet returned")
    return amount


def _returnable(p: Payment, allowed: frozenset[PaymentState], cases: list[Case]) -> int:
    """What remains to return of `p` (raises _Refused when nothing can be returned now)."""
    if p.state is S.RETURNED:
        raise _Refused(ALREADY_RETURNED, "the payment was already returned in full")
    if p.state not in allowed:
        why = "a recall of it is open" if p.state is S.RECALL_PENDING else f"it is {p.state.value}, not completed"
        raise _Refused(NOT_RETURNABLE, f"the payment cannot be returned: {why}")
    left = remaining(p, cases)
    if left <= 0:
        raise _Refused(ALREADY_RETURNED, "the payment was already returned in full")
    return left


def _book(
    p: Payment, case: Case, cases: list[Case], *, now: datetime, detail: str,
) -> tuple[Payment, HistoryEntry, Case | None]:
    """The payment after return `case` (RETURNED when all is back, else PARTIALLY_RETURNED), its
    history row, and the open recall the return completes (None if there is none)."""
    back_in_full = returned_so_far(cases) + (case.amount.amount_minor if case.amount else 0) >= p.target.amount_minor
    target = S.RETURNED if back_in_full else S.PARTIALLY_RETURNED
    moved_p, entry = transition(p, target, now=now, reason_code=case.reason_code, detail=detail)
    recall = open_recall(cases)
    # the return answers the recall when all the money is back, or when the partner had accepted it
    # (AWAITING_RETURN: this pacs.004 is its answer); a part returned on its own leaves a recall
    # not yet answered open (the rest is still recalled), and a recall never sent (OPEN: the case
    # timer sends it, or finds the payment returned) is never closed here
    answers = recall is not None and recall.state is not CaseState.OPEN and (back_in_full or recall.state is CaseState.AWAITING_RETURN)
    closed = moved(recall, CaseState.DONE, now=now, detail=f"returned by {case.ref}") if answers and recall is not None else None
    return moved_p, entry, closed


class _Bookings:
    """What one batch of returns books, for both directions: the payments as they move, their
    cases, the recalls the returns close, history rows and status events; written by `store`."""

    def __init__(self, uow: UnitOfWork, deps: Deps, out: Outcome, stored: dict[str, Payment],
                 cases_of: dict[str, list[Case]], known: dict[str, Case]) -> None:
        self.uow, self.deps, self.out = uow, deps, out
        self.metrics = returns_metrics(deps.metrics)
        self.stored = stored
        self.current: dict[str, Payment] = dict(stored)
        self.cases_of = cases_of
        self.done_refs: set[str] = set(known)
        self.new_cases: list[Case] = []
        self.closed: dict[str, tuple[int, Case]] = {}
        self.history: list[HistoryEntry] = []
        self.status_rows: list[OutboxMessage] = []

    def book(self, p: Payment, case: Case, cases: list[Case], *, partner: str, direction: str, detail: str,
             reason: str | None, request_id: str | None = None, closed_reason: str = "") -> None:
        """Return `case` of payment `p` booked: the payment moved, the recall it answers closed,
        counted, and the participant told (of the recall too)."""
        now = case.created_at
        moved_p, entry, recall = _book(p, case, cases, now=now, detail=detail)
        if recall is not None:
            self.closed[recall.id] = (recall.version - 1, recall)  # open until now: moved once, here
            cases = [recall if c.id == recall.id else c for c in cases]
        self.cases_of[p.uetr] = [*cases, case]
        self.current[p.uetr] = moved_p
        self.new_cases.append(case)
        self.history.append(entry)
        self.done_refs.add(case.ref)
        outcome = "booked" if moved_p.state is S.RETURNED else "partial"
        self.out.count(outcome)
        assert case.amount is not None
        self.metrics.returns.labels(partner, direction, outcome).inc()
        self.metrics.amount.labels(partner, direction, case.amount.currency.code).inc(case.amount.amount_minor)
        config = self.deps.config
        self.status_rows.append(events.case_outbox(moved_p, case, config, now=now, reason=reason, request_id=request_id, moved=True))
        if recall is not None:  # the participant hears its recall close too (the return event names the return case)
            self.status_rows.append(events.case_outbox(moved_p, recall, config, now=now, reason=f"recall done: {closed_reason}"))

    async def store(self) -> None:
        uow = self.uow
        await uow.cases_add(self.new_cases)
        await uow.cases_update(list(self.closed.values()))
        await uow.payments_update([(self.stored[u].version, p) for u, p in self.current.items() if p is not self.stored[u]])
        await uow.history_add(self.history)
        self.out.status_outbox = await uow.outbox_add(self.status_rows)


# ---------------------------------------------------------------- a partner returns an outbound payment


def back_conversion(p: Payment, returned: Money, cases: list[Case], deps: Deps, *, now: datetime) -> fx_returns.ReturnBack:
    """`returned` (in the payment's settlement currency) converted back to the debtor's currency
    by the corridor's rule: fx/returns.py."""
    corridor = deps.config.corridor(p.corridor)
    rule = corridor.return_fx if corridor is not None else "original"
    fee_rule = corridor.return_fee if corridor is not None else "keep"
    before = returned_so_far(cases)
    back_before = sum(
        c.back_amount.amount_minor for c in cases
        if c.kind is CaseKind.RETURN and c.state is CaseState.DONE and c.back_amount is not None
    )
    if rule == "current" and p.source.currency != p.target.currency:
        rate = deps.quoter.book.rate(p.source.currency.code, p.target.currency.code, now=now)  # raises FxError
        return fx_returns.back_current(
            returned=returned, target=p.target, returned_before=before, mid_source_to_target=rate.mid,
            source_currency=p.source.currency, fee_refund=p.fee if fee_rule == "refund" else None,
        )
    full = fx_returns.full_back(p.source, p.fee, fee_rule)
    return fx_returns.back_original(
        returned=returned, target=p.target, returned_before=before, back_before=back_before, full=full, rate=p.fx_rate,
    )


async def apply_partner_returns(cmd: ApplyPartnerReturns, uow: UnitOfWork, deps: Deps) -> Outcome:
    now = deps.clock()
    out = Outcome()
    exceptions = deps.mappings[cmd.partner].profile.exceptions
    refs = [f"partner/{cmd.partner}/{cmd.message_id}/{tx.return_id}" for tx in cmd.returns]
    known = await uow.cases_by_ref(refs)
    uetrs = sorted({u for tx in cmd.returns if (u := original_uetr(tx))})
    b = _Bookings(uow, deps, out, await uow.payments_get(uetrs), await uow.cases_of(uetrs), known)
    metrics = b.metrics
    rejects: dict[str, OutboxMessage] = {}

    for tx, ref in zip(cmd.returns, refs, strict=True):
        if ref in b.done_refs:  # the same return again (a resent message): booked once
            out.count("duplicate")
            metrics.returns.labels(cmd.partner, "outbound", "duplicate").inc()
            continue
        uetr = original_uetr(tx)
        p = b.current.get(uetr) if uetr else None
        try:
            if p is None or p.partner != cmd.partner or p.direction is not Direction.OUTBOUND:
                raise _Refused(UNKNOWN_ORIGINAL, f"no payment of {cmd.partner} with UETR {uetr or '(none given)'}")
            cases = b.cases_of.get(p.uetr, [])
            left = _returnable(p, PARTNER_RETURNABLE, cases)
            # the agreed reasons, or the reason of the open recall this return answers (the code the
            # switch itself put in the camt.056: AM09 is a recall reason and no agreed return reason)
            recall = open_recall(cases)
            answers_recall = recall is not None and recall.state is not CaseState.OPEN and tx.reason_code == recall.reason_code
            if tx.reason_code is None or (tx.reason_code not in exceptions.return_reasons and not answers_recall):
                raise _Refused(UNKNOWN_REASON, f"return reason {tx.reason_code or tx.reason_proprietary!r} is not one agreed")
            returned = _returned_amount(tx.returned_amount.value, tx.returned_amount.currency, p, left)
            try:
                back = back_conversion(p, returned, cases, deps, now=now)
            except SwitchError as exc:  # "current" with no fresh rate: refused, the partner sends it again later
                raise _Refused(exc.reason_code, str(exc)) from None
        except _Refused as refused:
            row = refuse_message(
                out, deps, partner=cmd.partner, refused_message_id=cmd.message_id, reason_code=refused.code,
                detail=f"RtrId {tx.return_id}: {refused.detail}", now=now,
            )
            if row is not None:
                rejects.setdefault(row.message_id, row)
            metrics.returns.labels(cmd.partner, "outbound", f"refused_{refused.code}").inc()
            continue
        info = "; ".join(tx.additional_info)
        case = Case(
            id=new_case_id(), uetr=p.uetr, kind=CaseKind.RETURN, initiator=Initiator.PARTNER, counterpart=cmd.partner,
            state=CaseState.DONE, reason_code=tx.reason_code, detail=info[:350] or None, ref=ref, message_id=None,
            amount=returned, back_amount=back.back, rate=back.rate, rate_rule=back.rule, attempts=0, due_at=None,
            reply_by=None, created_at=now, updated_at=now,
        )
        detail = (
            f"pacs.004 {cmd.message_id} RtrId {tx.return_id}: {shown(returned)} returned, {shown(back.back)} back to the debtor"
            f" at {back.rate or 'no FX'} ({back.rule})"
        )
        b.book(p, case, cases, partner=cmd.partner, direction="outbound", detail=detail,
               reason=tx.additional_info[0] if tx.additional_info else None,
               closed_reason=f"the money came back with pacs.004 {cmd.message_id}")

    await b.store()
    if rejects:  # the same message refused again: its admi.002 is already on its way
        sent = await uow.outbox_existing("partner", list(rejects))
        out.partner_outbox = await uow.outbox_add([r for i, r in rejects.items() if i not in sent])
    return out


# ---------------------------------------------------------------- a participant returns an inbound payment


async def return_inbound_payments(cmd: ReturnInboundPayments, uow: UnitOfWork, deps: Deps) -> Outcome:
    now = deps.clock()
    out = Outcome()
    refs = [f"participant/{r.participant}/{r.request_id}" for r in cmd.requests]
    known = await uow.cases_by_ref(refs)
    uetrs = sorted({r.uetr for r in cmd.requests})
    b = _Bookings(uow, deps, out, await uow.payments_get(uetrs), await uow.cases_of(uetrs), known)
    metrics = b.metrics
    partner_rows: list[OutboxMessage] = []
    refused_rows: list[OutboxMessage] = []

    for request, ref in zip(cmd.requests, refs, strict=True):
        if ref in b.done_refs:  # a redelivered request: booked once
            out.count("duplicate")
            partner = known[ref].counterpart if ref in known else "-"
            metrics.returns.labels(partner, "inbound", "duplicate").inc()
            continue
        p = b.current.get(request.uetr)
        try:
            if p is None or p.participant != request.participant or p.direction is not Direction.INBOUND:
                raise _Refused(UNKNOWN_ORIGINAL, f"no inbound payment to {request.participant} with UETR {request.uetr}")
            cases = b.cases_of.get(p.uetr, [])
            left = _returnable(p, PARTICIPANT_RETURNABLE, cases)
            if request.reason_code not in deps.mappings[p.partner].profile.exceptions.return_reasons:
                raise _Refused(UNKNOWN_REASON, f"return reason {request.reason_code} is not one {p.partner} takes")
            if request.amount is None:
                returned = Money(left, p.target.currency)
            else:
                returned = _returned_amount(request.amount.value, request.amount.currency, p, left)
        except _Refused as refused:
            out.count("refused")
            deps.metrics.rejects.labels("return_request", refused.code).inc()
            metrics.returns.labels(p.partner if p is not None and p.participant == request.participant else "-", "inbound",
                                   f"refused_{refused.code}").inc()
            refused_rows.append(
                events.request_refused_outbox(
                    request.participant, request.request_id, "return", request.uetr, refused.code, refused.detail, deps.config,
                    now=now,
                )
            )
            continue
        case_id = new_case_id()
        row = pacs004_to_partner(
            p, returned, deps, return_id=case_id, reason_code=request.reason_code, detail=request.reason, now=now,
        )
        case = Case(
            id=case_id, uetr=p.uetr, kind=CaseKind.RETURN, initiator=Initiator.PARTICIPANT, counterpart=p.partner,
            state=CaseState.DONE, reason_code=request.reason_code, detail=request.reason, ref=ref, message_id=row.message_id,
            amount=returned, back_amount=None, rate=None, rate_rule=None, attempts=1, due_at=None, reply_by=None,
            created_at=now, updated_at=now,
        )
        detail = f"returned {shown(returned)} to {p.partner} (pacs.004 {row.message_id}) at {request.participant}'s request {request.request_id}"
        partner_rows.append(row)
        b.book(p, case, cases, partner=p.partner, direction="inbound", detail=detail, reason=request.reason,
               request_id=request.request_id)

    if refused_rows:  # a redelivered refused request: the same event, already stored
        existing = await uow.outbox_existing("status", [r.message_id for r in refused_rows])
        unique = {r.message_id: r for r in refused_rows if r.message_id not in existing}
        b.status_rows.extend(unique.values())
    await b.store()
    out.partner_outbox = await uow.outbox_add(partner_rows)
    return out
