"""The operator's toolbox (issue 11 item 3): find payments, read one with its messages, resolve a
stuck one, and the record of dead letters replayed.

Reads (the operations API's look-ups, through a read-only unit of work):
  find_payments     a keyset page of payments, newest first, by state, corridor, participant,
                    partner, reason code and creation time
  payment_dossier   one payment, its history, its cases and the messages sent and received for it

Commands (operators only, audited in the same transaction, one transaction each):
  EnquirePayment    (enquiries.py, issue 9) a pacs.028 now
  ResendPayment     the pacs.008 again, byte for byte, as a possible duplicate: the path an AG09
                    "not received" answer takes (outbox_requeue; the relay seals a requeued row
                    with the AppHdr's PssblDplct)
  MarkPayment       the outcome an operator learnt out of band: only the moves of MARKABLE (from
                    TIMED_OUT), by the state table, with a status event to the participant and
                    the payment's open enquiry closed; a later partner status is then late
  ClaimDlqReplays / FinishDlqReplays
                    a dead letter is replayed once: claimed before it is published (a second
                    replay is refused "already replayed"), confirmed with where it went once the
                    broker took it, released when it did not (it may be tried again)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Final

from switch import limits
from switch.domain.case import Case
from switch.domain.payment import TRANSITIONS, Direction, HistoryEntry, Payment, PaymentState, transition
from switch.service import events
from switch.service.audit import audit
from switch.service.enquiries import after_statuses
from switch.service.handlers import Deps, Outcome
from switch.service.ports import DlqReplay, MessageRecord, PaymentQuery, UnitOfWork

S = PaymentState
RESEND_ACTION: Final = "payment.resend"
MARK_ACTION: Final = "payment.mark"
DLQ_REPLAY_ACTION: Final = "dlq.replay"
# what an operator may mark, from where: a payment the partner never answered (TIMED_OUT) whose
# outcome the operator learnt out of band (the partner's operations desk, a settlement report)
MARKABLE: Final[Mapping[PaymentState, frozenset[PaymentState]]] = {S.TIMED_OUT: frozenset({S.REJECTED, S.COMPLETED})}
# a pacs.008 may be sent again while its payment waits for the partner's status
RESENDABLE: Final = frozenset({S.SUBMITTED, S.ACCEPTED, S.TIMED_OUT})
REASON_CODE: Final = re.compile(r"[A-Z0-9]{4}")  # an ISO 20022 external status reason code (4 characters)
note_chars_max: Final = 500

for _from, _to in MARKABLE.items():
    if not _to <= TRANSITIONS[_from]:
        raise RuntimeError(f"MARKABLE allows a move off the state table from {_from}")


# ---------------------------------------------------------------- reads


async def find_payments(uow: UnitOfWork, query: PaymentQuery) -> list[Payment]:
    """A page of payments, newest first (the caller checks the bounds of `query.limit`)."""
    if not 1 <= query.limit <= limits.payments_page_max:
        raise ValueError(f"limit must be 1..{limits.payments_page_max}")
    return await uow.payments_search(query)


@dataclass(frozen=True, slots=True)
class Dossier:
    payment: Payment
    history: list[HistoryEntry]
    cases: list[Case]
    messages: list[MessageRecord]


async def payment_dossier(uow: UnitOfWork, uetr: str) -> Dossier | None:
    """Everything about one payment: the partner messages are looked for around each move of
    its history (a partner message is stored in the transaction that applies it)."""
    p = (await uow.payments_get([uetr])).get(uetr)
    if p is None:
        return None
    history = await uow.history_of(uetr)
    cases = (await uow.cases_of([uetr])).get(uetr, [])
    moved_at = [h.at for h in history]  # admission included: an inbound payment's pacs.008 is stored then
    messages = await uow.payment_messages(p, moved_at, limits.payment_message_window_s, limits.payment_messages_max)
    return Dossier(p, history, cases, messages)


# ---------------------------------------------------------------- resolving a stuck payment


@dataclass(frozen=True, slots=True)
class ResendPayment:
    """An operator sends an outbound payment's pacs.008 again (a possible duplicate)."""

    uetr: str
    operator: str
    note: str


@dataclass(frozen=True, slots=True)
class MarkPayment:
    """An operator records the outcome of a stuck payment learnt out of band."""

    uetr: str
    target: PaymentState
    reason_code: str | None
    note: str
    operator: str


async def _outbound(uow: UnitOfWork, uetr: str, out: Outcome) -> Payment | None:
    p = (await uow.payments_get([uetr])).get(uetr)
    if p is None:
        out.refusals.append(("MS03", f"no payment with UETR {uetr}"))
        return None
    if p.direction is not Direction.OUTBOUND:
        out.refusals.append(("AG01", "an inbound payment is decided by its beneficiary's participant, not resolved here"))
        return None
    return p


async def resend_payment(cmd: ResendPayment, uow: UnitOfWork, deps: Deps) -> Outcome:
    """The payment's pacs.008 again, byte for byte (a requeued row is ambiguous: the relay seals
    it as a possible duplicate), audited. Refused (AG01) when the payment is not waiting for a
    status, or its pacs.008 is still waiting for its first delivery (nothing to resend)."""
    now = deps.clock()
    out = Outcome()
    p = await _outbound(uow, cmd.uetr, out)
    if p is None:
        return out
    if p.state not in RESENDABLE or not p.message_id or p.partner not in deps.mappings:
        out.refusals.append(("AG01", f"payment is {p.state.value}: there is no pacs.008 waiting for a status to resend"))
        return out
    deadline_at = now + timedelta(seconds=deps.mappings[p.partner].profile.resend_after_s)
    rows = await uow.outbox_requeue("partner", [p.message_id], now, deadline_at=deadline_at)
    if not rows:
        out.refusals.append(("AG01", f"pacs.008 {p.message_id} is still waiting for delivery: it goes as soon as the partner answers"))
        return out
    out.partner_outbox = rows
    deps.metrics.resends.labels(p.partner).inc()
    deps.metrics.operator_actions.labels("resend").inc()
    await audit(uow, at=now, actor=f"operator {cmd.operator}", action=RESEND_ACTION, subject=p.uetr,
                detail={"message_id": p.message_id, "partner": p.partner, "state": p.state.value, "note": cmd.note})
    out.count("resent")
    return out


async def mark_payment(cmd: MarkPayment, uow: UnitOfWork, deps: Deps) -> Outcome:
    """Move a stuck payment to the outcome the operator names (MARKABLE), in one transaction:
    the move and its history row, the participant's status event (and pain.002), its enquiry
    closed, a pacs.008 never delivered withdrawn, the audit entry."""
    now = deps.clock()
    out = Outcome()
    if cmd.target is S.REJECTED and not (cmd.reason_code and REASON_CODE.fullmatch(cmd.reason_code)):
        out.refusals.append(("FF01", "marking a payment REJECTED needs an ISO reason code (4 letters or digits, e.g. AB05)"))
        return out
    p = await _outbound(uow, cmd.uetr, out)
    if p is None:
        return out
    allowed = MARKABLE.get(p.state, frozenset())
    if cmd.target not in allowed:
        markable = ", ".join(f"{s.value} -> {'/'.join(sorted(t.value for t in to))}" for s, to in MARKABLE.items())
        out.refusals.append(("AG01", f"payment is {p.state.value}: an operator marks only {markable}"))
        return out
    reason_code = cmd.reason_code if cmd.target is S.REJECTED else None
    detail = f"marked by operator {cmd.operator}: {cmd.note}"[:note_chars_max]
    moved, entry = transition(p, cmd.target, now=now, reason_code=reason_code, detail=detail)
    await uow.payments_update([(p.version, moved)])
    await uow.history_add([entry])
    if p.message_id:  # a pacs.008 the partner never got must not go after the outcome is decided
        await uow.outbox_withdraw("partner", p.message_id, now)
    out.status_outbox = await uow.outbox_add(events.participant_outbox(moved, deps.config, deps.schemas, now=now, reason=cmd.note))
    out.partner_outbox = await after_statuses(uow, deps, now=now, final=[moved], not_found=[])
    deps.metrics.payments.labels(moved.corridor, moved.state.value.lower()).inc()
    if reason_code:
        deps.metrics.rejects.labels("operator", reason_code).inc()
    deps.metrics.operator_actions.labels("mark").inc()
    await audit(uow, at=now, actor=f"operator {cmd.operator}", action=MARK_ACTION, subject=p.uetr,
                detail={"from": p.state.value, "to": moved.state.value, "reason_code": reason_code, "note": cmd.note})
    out.count("marked")
    return out


# ---------------------------------------------------------------- dead-letter replays


@dataclass(frozen=True, slots=True)
class ReplayTarget:
    """A dead letter to replay: where it is, and the topic its original record came from."""

    topic: str
    partition: int
    offset: int
    target_topic: str

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class ClaimDlqReplays:
    targets: Sequence[ReplayTarget]
    operator: str


@dataclass
class ReplayClaims(Outcome):
    """claim_dlq_replays' answer: the dead letters this replay holds now, and those already
    replayed (or being replayed by another call), with their record."""

    claimed: list[DlqReplay] = field(default_factory=list)
    refused: list[DlqReplay] = field(default_factory=list)


async def claim_dlq_replays(cmd: ClaimDlqReplays, uow: UnitOfWork, deps: Deps) -> ReplayClaims:
    now = deps.clock()
    out = ReplayClaims()
    stored = await uow.dlq_replays_get([t.key for t in cmd.targets])
    stale_before = now - timedelta(seconds=limits.dlq_replay_claim_s_max)
    puts: list[tuple[int | None, DlqReplay]] = []
    for t in {t.key: t for t in cmd.targets}.values():
        before = stored.get(t.key)
        if before is not None and (before.state == "replayed" or before.claimed_at > stale_before):
            out.refused.append(before)
            deps.metrics.dlq_replayed.labels("already_replayed").inc()
            continue
        claim = DlqReplay(topic=t.topic, partition=t.partition, offset=t.offset, state="claimed", operator=cmd.operator,
                          target_topic=t.target_topic, claimed_at=now, version=before.version + 1 if before else 1)
        puts.append((before.version if before else None, claim))
        out.claimed.append(claim)
    await uow.dlq_replays_put(puts)
    return out


@dataclass(frozen=True, slots=True)
class ReplayResult:
    claim: DlqReplay
    target_partition: int | None  # where the broker put it; None: it did not take it
    target_offset: int | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FinishDlqReplays:
    results: Sequence[ReplayResult]
    operator: str


async def finish_dlq_replays(cmd: FinishDlqReplays, uow: UnitOfWork, deps: Deps) -> Outcome:
    """Confirm each replay the broker took (audited), release each claim it did not take."""
    now = deps.clock()
    out = Outcome()
    done = [r for r in cmd.results if r.error is None]
    failed = [r for r in cmd.results if r.error is not None]
    await uow.dlq_replays_put([
        (r.claim.version, replace(r.claim, state="replayed", target_partition=r.target_partition, target_offset=r.target_offset,
                                  replayed_at=now, version=r.claim.version + 1))
        for r in done
    ])
    await uow.dlq_replays_remove([r.claim.key for r in failed])
    for r in done:
        deps.metrics.dlq_replayed.labels("replayed").inc()
        deps.metrics.operator_actions.labels("dlq_replay").inc()
        await audit(uow, at=now, actor=f"operator {cmd.operator}", action=DLQ_REPLAY_ACTION,
                    subject=f"{r.claim.topic}/{r.claim.partition}/{r.claim.offset}",
                    detail={"to_topic": r.claim.target_topic, "to_partition": r.target_partition, "to_offset": r.target_offset})
        out.count("replayed")
    deps.metrics.dlq_replayed.labels("failed").inc(len(failed))
    return out
