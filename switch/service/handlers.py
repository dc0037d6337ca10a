"""One async handler per command (STYLE §2, §9). Each takes its command, a unit of work and the
dependencies, does all its work inside that one transaction, and returns the outbox messages the
caller hands to the senders once the transaction has committed.

Handlers settle the expected odd cases first: replays, conflicts, statuses that race the send
acknowledgement, late and duplicate statuses. Anything off the state table is a bug and raises.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from adapters.base import PartnerMapping, PartnerStatus
from adapters.proxy_resolution import Resolution
from fx.quote import FxQuote, Quoter
from iso20022 import pacs008
from iso20022.schemas import SchemaSet, SchemaViolation
from switch.config import SwitchConfig
from switch.contracts import AmountV1, InstructionV1, StatusEventV1
from switch.domain.errors import InstructionRejected, SwitchError
from switch.domain.idempotency import Admission, admit
from switch.domain.money import AmountError, Money, currency
from switch.domain.payment import (
    FINAL_STATES,
    HistoryEntry,
    Party,
    Payment,
    PaymentState,
    StatusDisposition,
    TRANSITIONS,
    classify_partner_status,
    initial_history,
    new_uetr,
    transition,
)
from switch.metrics import Metrics
from switch.qr.templates import CreditorKind, decode_and_route
from switch.service import pain_reports
from switch.service.ports import DeliveryFailure, InstructionRecord, OutboxMessage, UnitOfWork
from switch.store.sql_store import stored_key

S = PaymentState


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class ParsedInstruction:
    instruction: InstructionV1
    fingerprint: str
    source_ref: str  # topic:partition:offset, to tell a redelivery from a participant's resend
    origin: str | None = None  # pain.001 MsgId, PmtInfId, EndToEndId (tab-separated); None for JSON


@dataclass(frozen=True, slots=True)
class AcceptInstructions:
    items: Sequence[ParsedInstruction]
    # proxy look-ups made before the transaction: (partner, type, value) -> the network's answer,
    # None when the look-up failed; a proxy not in here was not looked up
    resolutions: Mapping[tuple[str, str, str], Resolution | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordSendResults:
    """What the outbox relay's deliveries came to."""

    sent_outbox_ids: Sequence[int]
    # payments whose pacs.008 the partner acknowledged: QUOTED -> SUBMITTED (unless a pacs.002
    # overtook the acknowledgement and moved them on already)
    submitted_uetrs: Sequence[str] = ()
    # failed delivery rounds: retry later, or stop (refused, or past the row's deadline)
    failures: Sequence[DeliveryFailure] = ()
    # uetr -> (reason code, detail): payments to reject, because the partner refused their
    # pacs.008 (4xx), or because it never got it (every attempt failed to connect) until the
    # SLA deadline (AB07). A delivery that may have reached the partner never rejects.
    rejects: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApplyPartnerStatuses:
    partner: str
    message_id: str
    message_type: str
    body: bytes
    statuses: Sequence[PartnerStatus]


# ---------------------------------------------------------------- dependencies and results


@dataclass
class Deps:
    config: SwitchConfig
    mappings: Mapping[str, PartnerMapping]
    quoter: Quoter
    schemas: SchemaSet
    metrics: Metrics
    clock: Callable[[], datetime]
    new_uetr: Callable[[], str] = new_uetr


@dataclass
class Outcome:
    partner_outbox: list[OutboxMessage] = field(default_factory=list)
    status_outbox: list[OutboxMessage] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    # admission decisions, (participant, instruction id) -> (uetr or None, reason code or None,
    # detail): what a pain.001 sender's acceptance report says
    admissions: dict[tuple[str, str], tuple[str | None, str | None, str | None]] = field(default_factory=dict)

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


def message_id(uetr: str, attempt: int) -> str:
    """The pacs.008 MsgId for a payment and attempt: fixed before the first send (Max35Text)."""
    return f"M{uetr.replace('-', '')}{attempt:02d}"


def _amount(money: Money) -> AmountV1:
    # model_construct: built from a domain Money, which is valid by construction
    return AmountV1.model_construct(value=money.to_text(money.currency.decimals_accepted_max), currency=money.currency.code)


def new_event_id() -> str:
    """A status event's id: random, fixed when the event is written to the outbox, so every
    republication of the event carries the same one."""
    return new_uetr()


def status_event(payment: Payment, *, now: datetime, reason: str | None = None, replayed: bool = False) -> StatusEventV1:
    """The status event for a payment. Built without re-validation from domain values, which are
    valid by construction; a test checks that events validate against the contract."""
    return StatusEventV1.model_construct(
        event_id=new_event_id(),
        type="status",
        instruction_id=payment.instruction_id,
        participant=payment.participant,
        uetr=payment.uetr,
        corridor=payment.corridor,
        state=payment.state.value,
        final=payment.state in FINAL_STATES,
        reason_code=payment.reason_code,
        reason=reason,
        source_amount=_amount(payment.source),
        target_amount=_amount(payment.target),
        fee=_amount(payment.fee),
        fx_rate=payment.fx_rate,
        replayed=replayed,
        direction=payment.direction.value,
        occurred_at=now,
    )


def _status_outbox(event: StatusEventV1, deps: Deps, *, now: datetime, uetr: str | None) -> OutboxMessage:
    """A status event as an outbox row for the status topic; the row's message id is the event's
    id (each event is its own message; republishing the row repeats it, id included)."""
    body = event.model_dump_json(exclude_none=False).encode()
    assert event.event_id is not None, "events are built with their id"
    return OutboxMessage(
        kind="status",
        destination=deps.config.kafka.status_topic,
        message_id=event.event_id,
        uetrs=(uetr,) if uetr else (),
        key=f"{event.participant}/{event.instruction_id}",
        body=body,
        created_at=now,
    )


def participant_outbox(p: Payment, deps: Deps, *, now: datetime, reason: str | None) -> list[OutboxMessage]:
    """What the participant hears of a payment's new state: the JSON status event, and for a
    payment that came in a pain.001, a pain.002 for its transaction once the state is final."""
    out = [_status_outbox(status_event(p, now=now, reason=reason), deps, now=now, uetr=p.uetr)]
    if p.origin is not None and p.state in FINAL_STATES:
        out.append(pain_reports.final_report(p, deps.config, deps.schemas, now=now, reason=reason))
    return out


# ---------------------------------------------------------------- accept_instructions


async def accept_instructions(cmd: AcceptInstructions, uow: UnitOfWork, deps: Deps) -> Outcome:
    now = deps.clock()
    out = Outcome()
    keys = [(i.instruction.participant, i.instruction.instruction_id) for i in cmd.items]
    existing = await uow.instructions_get(keys)
    known_payments = await uow.payments_get([r.uetr for r in existing.values() if r.uetr])

    new_records: list[InstructionRecord] = []
    new_payments: list[Payment] = []
    history: list[HistoryEntry] = []
    partner_msgs: list[OutboxMessage] = []
    status_msgs: list[OutboxMessage] = []
    batch_payments: dict[str, Payment] = {}
    admitted: list[tuple[ParsedInstruction, InstructionRecord, Payment, HistoryEntry]] = []
    received: dict[str, Payment] = {}  # uetr -> the payment as admitted (RECEIVED), for its history row

    def reject(item: ParsedInstruction, reason_code: str, detail: str) -> None:
        ins = item.instruction
        out.count("rejected")
        out.admissions[(ins.participant, ins.instruction_id)] = (None, reason_code, detail)
        deps.metrics.rejects.labels("admission", reason_code).inc()
        rec = InstructionRecord(
            ins.participant, ins.instruction_id, item.fingerprint, None, reason_code, detail, ins.corridor, item.source_ref, now
        )
        new_records.append(rec)
        existing[(ins.participant, ins.instruction_id)] = rec
        status_msgs.append(_status_outbox(_reject_event(ins, reason_code, detail, now), deps, now=now, uetr=None))

    for item in cmd.items:
        ins = item.instruction
        key = (ins.participant, ins.instruction_id)
        record = existing.get(key)
        payment = (known_payments.get(record.uetr) or batch_payments.get(record.uetr)) if record and record.uetr else None
        decision = admit(stored_key(record, payment) if record else None, item.fingerprint)

        if decision is Admission.CONFLICT:
            out.count("conflict")
            out.admissions[key] = (None, "DUPL", "instruction id already used with a different payload")
            deps.metrics.rejects.labels("admission", "DUPL").inc()
            status_msgs.append(_status_outbox(_conflict_event(ins, record, now), deps, now=now, uetr=None))
            continue
        if decision in (Admission.REPLAY, Admission.IN_FLIGHT):
            assert record is not None
            out.admissions[key] = (
                (record.uetr, None, None) if record.uetr else (None, record.reject_reason_code or "MS03", record.reject_reason)
            )
            if record.source_ref == item.source_ref:
                out.count("redelivered")  # the same Kafka record again after a crash: already done
                continue
            out.count("replayed")
            if payment is not None:
                event = status_event(payment, now=now, replayed=True)
            else:
                event = _reject_event(ins, record.reject_reason_code or "MS03", record.reject_reason, now, replayed=True)
            status_msgs.append(_status_outbox(event, deps, now=now, uetr=record.uetr))
            continue

        try:
            payment, quote = _admit_new(ins, deps, now=now, origin=item.origin, resolutions=cmd.resolutions)
            received[payment.uetr] = payment
            payment, entry = transition(payment, S.QUOTED, now=now, detail=f"quote {quote.quote_id}")
        except (SwitchError, AmountError) as exc:
            reject(item, exc.reason_code, str(exc))
            continue
        rec = InstructionRecord(
            ins.participant, ins.instruction_id, item.fingerprint, payment.uetr, None, None, payment.corridor, item.source_ref, now
        )
        existing[key] = rec
        batch_payments[payment.uetr] = payment
        admitted.append((item, rec, payment, entry))

    for partner in sorted({p.partner for _, _, p, _ in admitted}):
        group = [a for a in admitted if a[2].partner == partner]
        mapping = deps.mappings[partner]
        messages, invalid = _pacs008_messages(mapping, [p for _, _, p, _ in group], deps, now)
        partner_msgs.extend(messages)
        carried_by = {u: m.message_id for m in messages for u in m.uetrs}
        follow_up_at = now + timedelta(seconds=mapping.profile.resend_after_s)
        for item, rec, payment, entry in group:
            if payment.uetr in invalid:
                reject(item, "FF01", invalid[payment.uetr])
                continue
            out.count("admitted")
            out.admissions[(rec.participant, rec.instruction_id)] = (payment.uetr, None, None)
            new_records.append(rec)
            # the message that carries it, and when to look again if no final pacs.002 came
            new_payments.append(replace(payment, message_id=carried_by[payment.uetr], follow_up_at=follow_up_at))
            history.append(initial_history(received[payment.uetr]))
            history.append(entry)

    await uow.instructions_add(new_records)
    await uow.payments_add(new_payments)
    await uow.history_add(history)
    out.partner_outbox = await uow.outbox_add(partner_msgs)
    out.status_outbox = await uow.outbox_add(status_msgs)
    return out


def _pacs008_messages(
    mapping: PartnerMapping, payments: list[Payment], deps: Deps, now: datetime
) -> tuple[list[OutboxMessage], dict[str, str]]:
    """The pacs.008 messages for a partner's newly admitted payments, at most the profile's
    transactions per message each, every one validated against the official XSD (DESIGN) before
    it is stored. A message that fails is split to find the payments at fault: those are
    returned as invalid (uetr -> detail), the others still go out."""
    per_message = mapping.profile.transactions_per_message_max
    deadline_at = now + timedelta(seconds=mapping.profile.sla_s)  # the relay retries until then
    messages: list[OutboxMessage] = []
    invalid: dict[str, str] = {}
    pending = [payments[i : i + per_message] for i in range(0, len(payments), per_message)]
    while pending:
        chunk = pending.pop()
        msg_id = message_id(chunk[0].uetr, 1)
        try:
            body = pacs008.build_validated(
                mapping.to_pacs008(chunk, message_id=msg_id, created_at=now), mapping.profile.pacs008_version, deps.schemas
            )
        except SchemaViolation as exc:
            if len(chunk) == 1:
                invalid[chunk[0].uetr] = f"pacs.008 would not be valid: {'; '.join(exc.errors)[:300]}"
            else:
                pending.extend([[p] for p in chunk])
            continue
        messages.append(
            OutboxMessage(
                kind="partner",
                destination=mapping.profile.partner,
                message_id=msg_id,
                uetrs=tuple(p.uetr for p in chunk),
                key=chunk[0].uetr,
                body=body,
                created_at=now,
                deadline_at=deadline_at,
            )
        )
    return messages, invalid


def _reject_event(ins: InstructionV1, reason_code: str, reason: str | None, now: datetime, *, replayed: bool = False) -> StatusEventV1:
    return StatusEventV1(
        event_id=new_event_id(),
        instruction_id=ins.instruction_id,
        participant=ins.participant,
        uetr=None,
        corridor=ins.corridor,
        state=S.REJECTED.value,
        final=True,
        reason_code=reason_code,
        reason=reason,
        replayed=replayed,
        occurred_at=now,
    )


def _conflict_event(ins: InstructionV1, original: InstructionRecord | None, now: datetime) -> StatusEventV1:
    """The answer to an instruction id reused with another payload: not a state of the original
    instruction (type "conflict", state CONFLICT, never final), so a participant reading events
    by instruction id cannot take it for the original's outcome, which stands."""
    return StatusEventV1(
        event_id=new_event_id(),
        type="conflict",
        instruction_id=ins.instruction_id,
        participant=ins.participant,
        uetr=original.uetr if original else None,
        corridor=ins.corridor,
        state="CONFLICT",
        final=False,
        reason_code="DUPL",
        reason="instruction id already used with a different payload; this record was refused, the first one stands",
        occurred_at=now,
    )


# QR creditor kinds that are partner proxies, and their instruction v1 proxy type
QR_PROXY_TYPES: Final = {CreditorKind.MOBILE: "MOBILE", CreditorKind.NATID: "NATID", CreditorKind.EWALLET: "EWALLET"}


def _from_qr(ins: InstructionV1, *, now: datetime) -> tuple[str, Party, Money]:
    """Corridor, creditor and amount from the scanned QR (QrError carries the reason code)."""
    assert ins.qr is not None
    _, route = decode_and_route(ins.qr, now=now)
    if route.corridor is None:
        raise InstructionRejected("a domestic KHQR is paid inside Bakong, not through the switch", reason_code="AG01")
    if ins.corridor is not None and ins.corridor != route.corridor:
        raise InstructionRejected(f"the QR pays through {route.corridor}, not {ins.corridor}", reason_code="AG01")
    c = route.creditor
    name = route.creditor_name or c.value
    if c.kind in QR_PROXY_TYPES:
        creditor = Party(name=name, proxy_type=QR_PROXY_TYPES[c.kind], proxy=c.value)
    elif c.kind is CreditorKind.BILLER:
        raise InstructionRejected("PromptPay bill-payment QRs are not supported on this switch yet", reason_code="AG01")
    else:
        creditor = Party(name=name, account=c.value, agent=c.agent)
    qr_amount = route.money()
    if qr_amount is not None:
        if ins.amount is not None and Money.parse(ins.amount.value, ins.amount.currency) != qr_amount:
            raise InstructionRejected(f"the amount differs from the QR's {qr_amount}", reason_code="AM09")
        return route.corridor, creditor, qr_amount
    if ins.amount is None:
        raise InstructionRejected("a static QR carries no amount: the instruction must give one", reason_code="AM09")
    return route.corridor, creditor, Money.parse(ins.amount.value, ins.amount.currency)


_NOT_LOOKED_UP = Resolution("", "", False)


def _resolved(creditor: Party, partner: str, resolutions: Mapping[tuple[str, str, str], Resolution | None]) -> Party:
    """The creditor with the account and bank its proxy resolved to (acmt.024)."""
    found = resolutions.get((partner, creditor.proxy_type or "", creditor.proxy or ""), _NOT_LOOKED_UP)
    if found is _NOT_LOOKED_UP:
        return creditor  # no look-up was made: the network resolves it (ITMX as creditor agent)
    if found is None:
        raise InstructionRejected(f"the {creditor.proxy_type} proxy could not be looked up at {partner}", reason_code="AB07")
    if not found.verified:
        raise InstructionRejected(
            f"{creditor.proxy_type} proxy {creditor.proxy} is not registered at {partner}", reason_code=found.reason_code or "BE23"
        )
    return Party(name=creditor.name, account=found.account, proxy_type=creditor.proxy_type, proxy=creditor.proxy, agent=found.agent)


def _admit_new(
    ins: InstructionV1,
    deps: Deps,
    *,
    now: datetime,
    origin: str | None = None,
    resolutions: Mapping[tuple[str, str, str], Resolution | None] = {},
) -> tuple[Payment, FxQuote]:
    cfg = deps.config
    participant = cfg.participant(ins.participant)
    if participant is None:
        raise InstructionRejected(f"participant {ins.participant} is not a Bakong participant of this switch", reason_code="RC01")
    if ins.debtor.account.rsplit("@", 1)[1] != participant.bakong_suffix:
        raise InstructionRejected(
            f"debtor account {ins.debtor.account} does not belong to {ins.participant} (@{participant.bakong_suffix})",
            reason_code="AC01",
        )
    if ins.qr is not None:
        corridor_id, creditor, instructed = _from_qr(ins, now=now)
    else:
        assert ins.creditor is not None and ins.corridor is not None and ins.amount is not None  # the contract says so
        corridor_id = ins.corridor
        instructed = Money.parse(ins.amount.value, ins.amount.currency)
        creditor = Party(
            name=ins.creditor.name,
            account=ins.creditor.account,
            proxy_type=ins.creditor.proxy.type if ins.creditor.proxy else None,
            proxy=ins.creditor.proxy.value if ins.creditor.proxy else None,
            agent=ins.creditor.agent,
        )
    corridor = cfg.corridor(corridor_id)
    if corridor is None or not corridor.enabled or corridor.partner not in deps.mappings:
        raise InstructionRejected(f"no open corridor {corridor_id}", reason_code="AG01")
    if ins.debtor.currency not in corridor.source_currencies or ins.debtor.currency not in participant.currencies:
        raise InstructionRejected(
            f"corridor {corridor.id} does not take {ins.debtor.currency} debtor accounts from {participant.code}", reason_code="CURR"
        )
    mapping = deps.mappings[corridor.partner]
    mapping.check_creditor(creditor)
    if creditor.proxy is not None and mapping.profile.proxy_resolution:
        creditor = _resolved(creditor, corridor.partner, resolutions)
    mapping.check_text(ins.debtor.name, "debtor name", mapping.profile.name_chars_max)
    if ins.remittance:
        mapping.check_text(ins.remittance, "remittance information", mapping.profile.remittance_chars_max)

    source_ccy = currency(ins.debtor.currency)
    target_ccy = currency(corridor.target_currency)
    quote_args = dict(
        now=now,
        corridor_fee=corridor.fee_money(source_ccy.code),
        spread_bps=corridor.spread_bps,
        validity_s=corridor.quote_validity_s,
        quote_id=f"Q{os.urandom(12).hex()}",
    )
    if instructed.currency == source_ccy:
        quote = deps.quoter.quote_for_source(instructed, target_ccy, **quote_args)
    elif instructed.currency == target_ccy:
        quote = deps.quoter.quote_for_target(instructed, source_ccy, **quote_args)
    else:
        raise InstructionRejected(
            f"amount currency {instructed.currency} is neither the debtor's ({source_ccy}) nor the corridor's ({target_ccy})",
            reason_code="CURR",
        )
    limit = corridor.amount_max_money(source_ccy.code)
    if quote.source.amount_minor > limit.amount_minor:
        raise InstructionRejected(f"{quote.source} is above the corridor maximum {limit}", reason_code="AM02")

    payment = Payment(
        uetr=deps.new_uetr(),
        instruction_id=ins.instruction_id,
        participant=ins.participant,
        corridor=corridor.id,
        partner=corridor.partner,
        debtor=Party(name=ins.debtor.name, account=ins.debtor.account, agent=participant.code),
        creditor=creditor,
        instructed=instructed,
        source=quote.source,
        target=quote.target,
        fee=quote.fee,
        fx_rate=None if quote.source.currency == quote.target.currency else f"{quote.customer_rate:f}",
        quote_id=quote.quote_id,
        remittance=ins.remittance,
        state=S.RECEIVED,
        reason_code=None,
        version=1,
        created_at=now,
        updated_at=now,
        origin=origin,
    )
    return payment, quote


# ---------------------------------------------------------------- partner sender bookkeeping


async def record_send_results(cmds: Sequence[RecordSendResults], uow: UnitOfWork, deps: Deps) -> list[Outcome]:
    now = deps.clock()
    await uow.outbox_mark_sent([i for cmd in cmds for i in cmd.sent_outbox_ids], now)
    await uow.outbox_record_failures([f for cmd in cmds for f in cmd.failures], now)
    rejects = {uetr: reject for cmd in cmds for uetr, reject in cmd.rejects.items()}
    submitted = [u for cmd in cmds for u in cmd.submitted_uetrs]
    outcomes = [Outcome() for _ in cmds]
    if submitted:  # set-based: the table allows QUOTED -> SUBMITTED (checked at import below)
        moved_uetrs = await uow.payments_move_all(submitted, S.QUOTED, S.SUBMITTED, now)
        await uow.history_add([HistoryEntry(u, S.QUOTED, S.SUBMITTED, None, None, now) for u in moved_uetrs])
    if not rejects:
        return outcomes
    payments = await uow.payments_get(list(rejects))
    moved: list[tuple[int, Payment]] = []
    history: list[HistoryEntry] = []
    events: list[OutboxMessage] = []
    for uetr, (reason_code, detail) in sorted(rejects.items()):
        p = payments.get(uetr)
        if p is None or S.REJECTED not in _allowed_from(p.state):
            continue  # decided meanwhile (a pacs.002 overtook the failure)
        stored_version = p.version
        if p.state is S.QUOTED:
            p, entry = transition(p, S.SUBMITTED, now=now)
            history.append(entry)
        p, entry = transition(p, S.REJECTED, now=now, reason_code=reason_code, detail=detail)
        moved.append((stored_version, p))
        history.append(entry)
        _count_outcome(p, deps, stage="transport")
        events.extend(participant_outbox(p, deps, now=now, reason=detail))
    await uow.payments_update(moved)
    await uow.history_add(history)
    outcomes[0].status_outbox = await uow.outbox_add(events)
    return outcomes


if S.SUBMITTED not in TRANSITIONS[S.QUOTED]:
    raise RuntimeError("record_send_results moves QUOTED -> SUBMITTED in SQL; the state table must allow it")


def _allowed_from(state: PaymentState) -> frozenset[PaymentState]:
    return TRANSITIONS[S.SUBMITTED] if state is S.QUOTED else TRANSITIONS[state]


def _count_outcome(p: Payment, deps: Deps, *, stage: str) -> None:
    outcome = {S.COMPLETED: "completed", S.REJECTED: "rejected", S.TIMED_OUT: "timed_out"}.get(p.state)
    if outcome:
        deps.metrics.payments.labels(p.corridor, outcome).inc()
    if p.state is S.REJECTED and p.reason_code:
        deps.metrics.rejects.labels(stage, p.reason_code).inc()


# ---------------------------------------------------------------- apply_partner_statuses


async def apply_partner_statuses(cmds: Sequence[ApplyPartnerStatuses], uow: UnitOfWork, deps: Deps) -> list[Outcome]:
    """Apply a group of pacs.002 messages in one transaction. A resent message (same partner and
    message id) is answered and recorded as late, never applied again."""
    now = deps.clock()
    outcomes = [Outcome() for _ in cmds]
    seen: set[tuple[str, str]] = set()
    for partner in {c.partner for c in cmds}:
        ids = [c.message_id for c in cmds if c.partner == partner]
        seen.update((partner, m) for m in await uow.inbound_seen(partner, ids))
    fresh: list[int] = []
    for i, cmd in enumerate(cmds):
        if (cmd.partner, cmd.message_id) in seen:
            outcomes[i].count("duplicate_message")
            deps.metrics.late_status.labels(cmd.partner).inc(len(cmd.statuses))
            continue
        seen.add((cmd.partner, cmd.message_id))
        fresh.append(i)
    await uow.inbound_add(
        [
            {"partner": c.partner, "message_id": c.message_id, "message_type": c.message_type, "received_at": now, "body": c.body}
            for c in (cmds[i] for i in fresh)
        ]
    )
    stored = await uow.payments_get([s.uetr for i in fresh for s in cmds[i].statuses])
    current: dict[str, Payment] = dict(stored)
    changed: dict[str, Payment] = {}
    history: list[HistoryEntry] = []
    events: list[tuple[int, OutboxMessage]] = []
    for i in fresh:
        cmd, out = cmds[i], outcomes[i]
        for status in cmd.statuses:
            p = current.get(status.uetr)
            if p is None or p.partner != cmd.partner:
                out.count("unknown")
                continue
            disposition = classify_partner_status(p.state, status.target)
            if disposition is not StatusDisposition.APPLY:
                out.count(disposition.value)
                deps.metrics.late_status.labels(cmd.partner).inc()
                continue
            if p.state is S.QUOTED:  # the pacs.002 overtook the send acknowledgement
                p, entry = transition(p, S.SUBMITTED, now=now, detail="implied by the partner's status")
                history.append(entry)
            p, entry = transition(p, status.target, now=now, reason_code=status.reason_code, detail=status.detail)
            history.append(entry)
            current[p.uetr] = changed[p.uetr] = p
            out.count("applied")
            if p.state in FINAL_STATES:
                _count_outcome(p, deps, stage="partner")
                deps.metrics.stage_duration.labels("end_to_end").observe((now - p.created_at).total_seconds())
                events.extend((i, m) for m in participant_outbox(p, deps, now=now, reason=status.detail))
    await uow.payments_update([(stored[u].version, p) for u, p in changed.items()])
    await uow.history_add(history)
    rows = await uow.outbox_add([m for _, m in events])
    for (i, _), row in zip(events, rows, strict=True):
        outcomes[i].status_outbox.append(row)
    return outcomes
