"""One async handler per command (STYLE §2, §9). Each takes its command, a unit of work and the
dependencies, does all its work inside that one transaction, and returns the outbox messages the
caller hands to the senders once the transaction has committed.

Handlers settle the expected odd cases first: replays, conflicts, statuses that race the send
acknowledgement, late and duplicate statuses. Anything off the state table is a bug and raises.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from adapters.base import PartnerMapping, PartnerStatus
from adapters.proxy_resolution import Resolution
from fx.quote import FxQuote, Quoter
from iso20022 import pacs008
from iso20022.schemas import SchemaSet, SchemaViolation
from switch.config import SwitchConfig
from switch.domain.compliance import missing_data
from switch.domain.corridor_rules import (
    NO_CONTROLS,
    Controls,
    CorridorRefusal,
    RefusalReason,
    day_refusal,
    tx_refusal,
    usage_day,
)
from switch.domain.errors import SwitchError
from switch.domain.idempotency import Admission, admit
from switch.domain.instruction import Instruction, Reject
from switch.domain.money import AmountError, Money, currency
from switch.domain.pan import PanTokens
from switch.domain.screening import Outcome as ScreeningOutcome
from switch.domain.screening import Verdict
from switch.domain.settlement import Calendar
from switch.domain.payment import (
    FINAL_STATES,
    Direction,
    HistoryEntry,
    Party,
    Payment,
    PaymentState,
    StatusDisposition,
    TRANSITIONS,
    classify_partner_status,
    initial_history,
    new_uetr,
    scheduled,
    transition,
)
from switch.log_context import payment_context
from switch.metrics import Metrics
from switch.qr.templates import CreditorKind, QrRoute, expiry_error
from switch.service import events
from switch.service.partner_log import PartnerProblems, Problem
from switch.service.ports import (
    DeliveryFailure,
    InstructionRecord,
    OutboxMessage,
    Screener,
    ScreeningHold,
    StoredQuote,
    UnitOfWork,
    UsageKey,
    stored_key,
)
from switch.service.quote_check import check_quote

S = PaymentState


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class ParsedInstruction:
    """An instruction as the Kafka edge read it (JSON, QR or a pain.001 transaction)."""

    instruction: Instruction
    fingerprint: str  # SHA-256 of the instruction v1 it was read as (idempotency)
    source_ref: str  # topic:partition:offset, to tell a redelivery from a participant's resend
    contract: str | None = None  # that instruction v1, canonical JSON: kept for a config dry-run (replay_record)


@dataclass(frozen=True, slots=True)
class AcceptInstructions:
    items: Sequence[ParsedInstruction]
    # proxy look-ups made before the transaction: (partner, type, value) -> the network's answer,
    # None when the look-up failed; a proxy not in here was not looked up
    resolutions: Mapping[tuple[str, str, str], Resolution | None] = field(default_factory=dict)
    # screening verdicts made before the transaction (issue 12): (participant, instruction id) ->
    # the verdict; an instruction not in here was not screened (screening off)
    screenings: Mapping[tuple[str, str], Verdict] = field(default_factory=dict)


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
    # card numbers are stored as keyed tokens (switch/domain/pan.py); the composition root passes
    # the deployment's key. The default is a random key per process: tokens then differ between
    # processes, but a forgotten key never stores a PAN in full
    pans: PanTokens = field(default_factory=lambda: PanTokens(os.urandom(32)))
    # partner -> its settlement calendar (issue 10), for the profiles with a [settlement] section
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    # where partner trouble (rejects, SLA timeouts) is logged, rate-limited; the composition root
    # shares it with the relay (outages, give-ups)
    partner_problems: PartnerProblems = field(default_factory=PartnerProblems)
    # issue 12: the sanctions screener (switch/screening build_screener; None: screening off). The
    # edges call it before they dispatch (switch/service/screening.py); handlers never do
    screener: Screener | None = None


def payment_log_context(p: Payment):  # type: ignore[no-untyped-def]
    """The log context of a payment in hand (switch/log_context.py): its five fields."""
    return payment_context(uetr=p.uetr, instruction_id=p.instruction_id, participant=p.participant,
                           partner=p.partner, corridor=p.corridor)


@dataclass
class Outcome:
    partner_outbox: list[OutboxMessage] = field(default_factory=list)
    status_outbox: list[OutboxMessage] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    # admission decisions, (participant, instruction id) -> (uetr or None, reason code or None,
    # detail): what a pain.001 sender's acceptance report says
    admissions: dict[tuple[str, str], tuple[str | None, str | None, str | None]] = field(default_factory=dict)
    # a partner message refused after reading it (issue 9: no original, wrong state, unknown
    # reference): (reason code, detail) for the HTTP answer; the admi.002, where the partner's
    # profile asks for one, is among partner_outbox
    refusals: list[tuple[str, str]] = field(default_factory=list)

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


def _key(item: ParsedInstruction) -> tuple[str, str]:
    return (item.instruction.participant, item.instruction.instruction_id)


def message_id(uetr: str, attempt: int) -> str:
    """The pacs.008 MsgId for a payment and attempt: fixed before the first send (Max35Text)."""
    return f"M{uetr.replace('-', '')}{attempt:02d}"


# ---------------------------------------------------------------- accept_instructions


async def accept_instructions(cmd: AcceptInstructions, uow: UnitOfWork, deps: Deps) -> Outcome:
    now = deps.clock()
    out = Outcome()
    keys = [(i.instruction.participant, i.instruction.instruction_id) for i in cmd.items]
    existing = await uow.instructions_get(keys)
    known_payments = await uow.payments_get([r.uetr for r in existing.values() if r.uetr])
    # quotes asked for first (issue 11): read only when the batch references one (the hot path,
    # instructions without a quote, makes no extra query)
    quote_ids = [i.instruction.quote_id for i in cmd.items if i.instruction.quote_id is not None]
    quotes: dict[str, StoredQuote] = await uow.quotes_get(quote_ids) if quote_ids else {}
    quotes_taken: set[str] = set()  # taken by an instruction earlier in this batch

    new_records: list[InstructionRecord] = []
    new_payments: list[Payment] = []
    history: list[HistoryEntry] = []
    partner_msgs: list[OutboxMessage] = []
    status_msgs: list[OutboxMessage] = []
    batch_payments: dict[str, Payment] = {}
    admitted: list[tuple[ParsedInstruction, InstructionRecord, Payment, HistoryEntry]] = []
    held: list[tuple[ParsedInstruction, InstructionRecord, Payment, HistoryEntry, Verdict]] = []  # issue 12
    received: dict[str, Payment] = {}  # uetr -> the payment as admitted (RECEIVED), for its history row
    # issue 11: the operators' corridor and partner switches, and the daily usage of the batch's
    # debtors (locked until commit: replicas decide each debtor's day one after the other)
    gates = Gates(
        Controls.of(await uow.controls_get()),
        await uow.usage_claim(_usage_keys([i.instruction for i in cmd.items if _key(i) not in existing], deps, now)),
        claimed=True,
    )
    usage_keys: dict[str, UsageKey] = {}  # uetr -> the usage row its amount counts in

    def reject(item: ParsedInstruction, reason_code: str, detail: str) -> None:
        ins = item.instruction
        out.count("rejected")
        out.admissions[(ins.participant, ins.instruction_id)] = (None, reason_code, detail)
        deps.metrics.rejects.labels("admission", reason_code).inc()
        rec = InstructionRecord(
            ins.participant, ins.instruction_id, item.fingerprint, None, reason_code, detail, ins.corridor, item.source_ref, now,
            replay_record(item, cmd.resolutions, deps),
        )
        new_records.append(rec)
        existing[(ins.participant, ins.instruction_id)] = rec
        status_msgs.append(
            events.status_outbox(
                events.reject_event(ins.participant, ins.instruction_id, ins.corridor, reason_code, detail, now=now),
                deps.config, now=now, uetr=None,
            )
        )

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
            conflict = events.conflict_event(ins.participant, ins.instruction_id, ins.corridor, record.uetr if record else None, now=now)
            status_msgs.append(events.status_outbox(conflict, deps.config, now=now, uetr=None))
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
                event = events.status_event(payment, now=now, replayed=True)
            else:
                event = events.reject_event(
                    ins.participant, ins.instruction_id, ins.corridor, record.reject_reason_code or "MS03", record.reject_reason,
                    now=now, replayed=True,
                )
            status_msgs.append(events.status_outbox(event, deps.config, now=now, uetr=record.uetr))
            continue

        decided = admit_instruction(
            ins, deps, now=now, resolutions=cmd.resolutions, gates=gates, quotes=quotes, quotes_taken=quotes_taken
        )
        if isinstance(decided, Reject):
            reject(item, decided.reason_code, decided.detail)
            continue
        if ins.quote_id is not None:
            quotes_taken.add(ins.quote_id)
        payment = decided.payment
        if decided.usage_key is not None:  # later instructions of the batch see this one's amount
            gates.usage[decided.usage_key] = gates.usage.get(decided.usage_key, 0) + payment.source.amount_minor
            usage_keys[payment.uetr] = decided.usage_key
        received[payment.uetr] = payment
        verdict = cmd.screenings.get(key) if cmd.screenings else None
        if verdict is not None and verdict.holds:  # issue 12: held for an operator, nothing sent
            payment, entry = transition(payment, S.HELD, now=now, detail=hold_detail(verdict))
        else:
            payment, entry = transition(payment, S.QUOTED, now=now, detail=f"quote {decided.quote.quote_id}")
        rec = InstructionRecord(
            ins.participant, ins.instruction_id, item.fingerprint, payment.uetr, None, None, payment.corridor, item.source_ref, now,
            replay_record(item, cmd.resolutions, deps),
        )
        existing[key] = rec
        batch_payments[payment.uetr] = payment
        if payment.state is S.HELD:
            assert verdict is not None
            held.append((item, rec, payment, entry, verdict))
            continue
        admitted.append((item, rec, payment, entry))

    uses: list[tuple[str, int, str, str, datetime]] = []
    for partner in sorted({p.partner for _, _, p, _ in admitted}):
        group = [a for a in admitted if a[2].partner == partner]
        mapping = deps.mappings[partner]
        messages, invalid = _pacs008_messages(mapping, [p for _, _, p, _ in group], deps, now)
        partner_msgs.extend(messages)
        carried_by = {u: m.message_id for m in messages for u in m.uetrs}
        # the first look: the resend, or the status enquiry when the profile asks earlier (issue 9)
        follow_up_at = now + timedelta(seconds=min(mapping.profile.resend_after_s, mapping.profile.exceptions.enquire_after_s))
        for item, rec, payment, entry in group:
            if payment.uetr in invalid:
                reject(item, "FF01", invalid[payment.uetr])
                continue
            out.count("admitted")
            if item.instruction.quote_id is not None:  # honoured: used up with the payment, in this transaction
                used = quotes[item.instruction.quote_id]
                uses.append((used.quote.quote_id, used.version, payment.uetr, rec.instruction_id, now))
                deps.metrics.fx.quotes.labels(payment.corridor, "honoured").inc()
            out.admissions[(rec.participant, rec.instruction_id)] = (payment.uetr, None, None)
            new_records.append(rec)
            # the message that carries it, and when to look again if no final pacs.002 came; its
            # pacs.008 (built above) carries the card number, the stored payment only its token
            payment = deps.pans.protect(payment, mapping.profile.is_card)
            new_payments.append(scheduled(payment, message_id=carried_by[payment.uetr], follow_up_at=follow_up_at))
            history.append(initial_history(received[payment.uetr]))
            history.append(entry)

    holds: list[ScreeningHold] = []
    if held:  # issue 12: stored, quote used and usage counted as admitted; no partner message until released
        deadline_at = now + timedelta(seconds=deps.config.screening.hold_deadline_s)
        for item, rec, payment, entry, verdict in held:
            out.count("held")
            if item.instruction.quote_id is not None:
                used = quotes[item.instruction.quote_id]
                uses.append((used.quote.quote_id, used.version, payment.uetr, rec.instruction_id, now))
                deps.metrics.fx.quotes.labels(payment.corridor, "honoured").inc()
            out.admissions[(rec.participant, rec.instruction_id)] = (payment.uetr, None, None)
            new_records.append(rec)
            mapping = deps.mappings[payment.partner]
            payment = deps.pans.protect(payment, mapping.profile.is_card)
            # its pacs.008's MsgId is fixed now (payments_update never writes it): the one release builds
            new_payments.append(scheduled(payment, message_id=message_id(payment.uetr, 1), follow_up_at=deadline_at))
            history.append(initial_history(received[payment.uetr]))
            history.append(entry)
            holds.append(screening_hold(payment, verdict, now=now, deadline_at=deadline_at))
            deps.metrics.screening_holds.labels("outbound", verdict.outcome.value).inc()
            # tipping-off: the participant hears that it is held, never what matched
            status_msgs.extend(events.participant_outbox(payment, deps.config, deps.schemas, now=now, reason=HELD_REASON))

    await uow.quotes_use(uses)  # ConcurrentUpdate when another replica used one first: the batch runs again
    await uow.instructions_add(new_records)
    await uow.usage_add([(usage_keys[p.uetr], p.source.amount_minor) for p in new_payments if p.uetr in usage_keys])
    await uow.payments_add(new_payments)
    await uow.history_add(history)
    if holds:
        await uow.holds_add(holds)
    out.partner_outbox = await uow.outbox_add(partner_msgs)
    out.status_outbox = await uow.outbox_add(status_msgs)
    return out


# ---------------------------------------------------------------- screening holds (issue 12)

# what the participant is told of a held payment: never the list entry nor the score (tipping-off)
HELD_REASON: Final = "held for compliance review"


def hold_detail(verdict: Verdict) -> str:
    """The history row of a hold (operators read it; participants never see it)."""
    if verdict.outcome is ScreeningOutcome.UNAVAILABLE or verdict.hit is None:
        return f"screening unavailable: {verdict.detail or 'no answer'}"[:500]
    hit = verdict.hit
    return f"screening hit: score {hit.score:.2f}, {hit.role.value} matched entry {hit.entry_id}"[:500]


def screening_hold(p: Payment, verdict: Verdict, *, now: datetime, deadline_at: datetime) -> ScreeningHold:
    """The hold record of a payment the screening held."""
    hit = verdict.hit
    return ScreeningHold(
        uetr=p.uetr, direction=p.direction.value, held_at=now, deadline_at=deadline_at,
        outcome="unavailable" if verdict.outcome is ScreeningOutcome.UNAVAILABLE or hit is None else "hit",
        score=hit.score if hit else None, entry_id=hit.entry_id if hit else None, entry_name=hit.entry_name if hit else None,
        matched_name=hit.matched_name if hit else None, role=hit.role.value if hit else None,
        datasets=hit.datasets if hit else (), list_version=verdict.list_version,
        detail=verdict.detail or None if hit is None else (hit.explanation or None),
    )


REPLAY_VERSION: Final = 1


def replay_record(
    item: ParsedInstruction, resolutions: Mapping[tuple[str, str, str], Resolution | None], deps: Deps
) -> str | None:
    """What `mekong config dry-run` replays of this instruction (issue 11; switch/service/dry_run.py):
    the instruction v1 as read, its pain.001 origin, and the proxy look-up admission used (so the
    replay makes no network call). Stored with its idempotency key, in the same insert. A card
    number is stored as its token, as everywhere at rest (switch/domain/pan.py); one inside a QR
    payload cannot be, so such an instruction keeps no replay. Built by string assembly around
    the JSON the edge already made: no second serialisation on the hot path."""
    if item.contract is None:
        return None
    ins, contract = item.instruction, item.contract
    creditor = ins.creditor
    if creditor is not None and creditor.account is not None and any(m.profile.is_card(creditor.account) for m in deps.mappings.values()):
        if ins.qr is not None:
            return f'{{"v":{REPLAY_VERSION},"unreplayable":"a card number inside a QR payload"}}'
        contract = contract.replace(json.dumps(creditor.account), json.dumps(deps.pans.token(creditor.account)))
    extra = ""
    if creditor is not None and creditor.proxy is not None:
        found = {
            partner: None if r is None else [r.verified, r.account, r.agent, r.name, r.reason_code]
            for (partner, kind, value), r in resolutions.items()
            if kind == (creditor.proxy_type or "") and value == creditor.proxy
        }
        if found:
            extra = f',"resolutions":{json.dumps(found, separators=(",", ":"))}'
    return f'{{"v":{REPLAY_VERSION},"instruction":{contract},"origin":{json.dumps(ins.origin)}{extra}}}'


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


# ---------------------------------------------------------------- admission: a decision, not an exception


@dataclass(frozen=True, slots=True)
class Admitted:
    payment: Payment  # RECEIVED, with its UETR
    quote: FxQuote
    usage_key: UsageKey | None = None  # the debtor's daily usage row its amount counts in (issue 11)


@dataclass(frozen=True, slots=True)
class Gates:
    """What admission reads from the database once per batch (issue 11): the operators' corridor
    and partner controls, and the daily usage (minor units) of the batch's debtors so far,
    which accept_instructions raises as it admits."""

    controls: Controls = NO_CONTROLS
    usage: dict[UsageKey, int] = field(default_factory=dict)
    # admission proper: every usage row was claimed before (a row missing is a bug: refused, never
    # guessed); a dry run (switch/service/dry_run.py) keeps its own running totals, from 0
    claimed: bool = False


def _usage_key(ins: Instruction, corridor_id: str | None, deps: Deps, now: datetime) -> UsageKey | None:
    """The daily usage row an instruction's amount counts in: only for a tier with a daily maximum
    in the debtor's currency."""
    cfg = deps.config
    corridor = cfg.corridor(corridor_id) if corridor_id else None
    if corridor is None or ins.debtor.account is None:
        return None
    try:
        tier = cfg.tier_limits(corridor, ins.debtor_tier, ins.debtor_currency)
    except KeyError:  # an unknown tier: admission refuses it
        return None
    if tier is None or tier.day_max_minor is None:
        return None
    return UsageKey(corridor.id, ins.debtor.account, usage_day(now, cfg.usage_timezone), ins.debtor_currency)


def _usage_keys(instructions: Sequence[Instruction], deps: Deps, now: datetime) -> list[UsageKey]:
    """The usage rows a batch's new instructions may count in (the corridor they name, or their QR's)."""
    keys = {
        _usage_key(ins, ins.corridor or (ins.qr.corridor if ins.qr is not None else None), deps, now) for ins in instructions
    }
    return sorted(k for k in keys if k is not None)


def _refused(refusal: CorridorRefusal, corridor_id: str, deps: Deps) -> Reject:
    deps.metrics.corridor_refusals.labels(corridor_id, refusal.reason.value).inc()
    return Reject(refusal.reason_code, refusal.detail)


_NOT_LOOKED_UP = Resolution("", "", False)
_NO_RESOLUTIONS: Mapping[tuple[str, str, str], Resolution | None] = {}
_NO_QUOTES: Mapping[str, StoredQuote] = {}


def admit_instruction(
    ins: Instruction,
    deps: Deps,
    *,
    now: datetime,
    resolutions: Mapping[tuple[str, str, str], Resolution | None] = _NO_RESOLUTIONS,
    gates: Gates | None = None,
    quotes: Mapping[str, StoredQuote] = _NO_QUOTES,
    quotes_taken: set[str] | frozenset[str] = frozenset(),
) -> Admitted | Reject:
    """Whether the switch takes the instruction: the payment as received and its quote, or the
    reject (reason code, detail) the participant hears. Client errors are values here; the
    partner mapping and the quoter report theirs by raising an operating error (SwitchError,
    AmountError), turned into a Reject at this one place. No I/O: the proxy look-ups were made
    before (`resolutions`), the controls and daily usage read before (`gates`), and the quotes
    the instructions reference (`quotes`; `quotes_taken`: used by an instruction earlier in the batch)."""
    try:
        return _decide(
            ins, deps, now=now, resolutions=resolutions, gates=gates or Gates(), quotes=quotes, quotes_taken=quotes_taken
        )
    except (SwitchError, AmountError) as exc:
        return Reject(exc.reason_code, str(exc))


def _from_qr(ins: Instruction, route: QrRoute, *, now: datetime) -> tuple[str, Party, Money] | Reject:
    """Corridor, creditor and amount of an instruction that carries a scanned QR."""
    expired = expiry_error(route, now=now)
    if expired is not None:
        return Reject(expired.reason_code, str(expired))
    if route.corridor is None:
        return Reject("AG01", "a domestic KHQR is paid inside Bakong, not through the switch")
    if ins.corridor is not None and ins.corridor != route.corridor:
        return Reject("AG01", f"the QR pays through {route.corridor}, not {ins.corridor}")
    if route.creditor.kind is CreditorKind.BILLER:
        return Reject("AG01", "PromptPay bill-payment QRs are not supported on this switch yet")
    if ins.unreadable is not None:  # the amount the sender gave
        return ins.unreadable
    assert ins.creditor is not None, "a QR that decodes names its creditor"
    qr_amount = route.money()
    if qr_amount is not None:
        if ins.instructed is not None and ins.instructed != qr_amount:
            return Reject("AM09", f"the amount differs from the QR's {qr_amount}")
        return route.corridor, ins.creditor, qr_amount
    if ins.instructed is None:
        return Reject("AM09", "a static QR carries no amount: the instruction must give one")
    return route.corridor, ins.creditor, ins.instructed


def _resolved(creditor: Party, partner: str, resolutions: Mapping[tuple[str, str, str], Resolution | None]) -> Party | Reject:
    """The creditor with the account and bank its proxy resolved to (acmt.024)."""
    found = resolutions.get((partner, creditor.proxy_type or "", creditor.proxy or ""), _NOT_LOOKED_UP)
    if found is _NOT_LOOKED_UP or found is None:
        # no look-up was made, or it failed (the partner is down or hung): the network resolves
        # the proxy itself (ITMX as creditor agent). An outage of the look-up never rejects a
        # payment; the pacs.008 then waits in the relay like any other until the partner is back
        return creditor
    if not found.verified:
        return Reject(found.reason_code or "BE23", f"{creditor.proxy_type} proxy {creditor.proxy} is not registered at {partner}")
    return Party(name=creditor.name, account=found.account, proxy_type=creditor.proxy_type, proxy=creditor.proxy, agent=found.agent)


def _decide(
    ins: Instruction, deps: Deps, *, now: datetime, resolutions: Mapping[tuple[str, str, str], Resolution | None],
    gates: Gates,
    quotes: Mapping[str, StoredQuote] = _NO_QUOTES, quotes_taken: set[str] | frozenset[str] = frozenset(),
) -> Admitted | Reject:
    cfg = deps.config
    if ins.limited is not None:  # over its participant's rate: nothing else is looked at
        return ins.limited
    participant = cfg.participant(ins.participant)
    if participant is None:
        return Reject("RC01", f"participant {ins.participant} is not a Bakong participant of this switch")
    if ins.debtor.account is None or ins.debtor.account.rsplit("@", 1)[1] != participant.bakong_suffix:
        return Reject(
            "AC01", f"debtor account {ins.debtor.account} does not belong to {ins.participant} (@{participant.bakong_suffix})"
        )
    if ins.qr is None:
        if ins.unreadable is not None:  # the QR, or the amount
            return ins.unreadable
        assert ins.creditor is not None and ins.corridor is not None and ins.instructed is not None  # the contract says so
        corridor_id, creditor, instructed = ins.corridor, ins.creditor, ins.instructed
    else:
        from_qr = _from_qr(ins, ins.qr, now=now)
        if isinstance(from_qr, Reject):
            return from_qr
        corridor_id, creditor, instructed = from_qr
    corridor = cfg.corridor(corridor_id)
    if corridor is None or not corridor.enabled or corridor.partner not in deps.mappings:
        return Reject("AG01", f"no open corridor {corridor_id}")
    # issue 11: an operator's switch, then the corridor's hours (docs/operations/corridors.md)
    switched_off = gates.controls.refusal(corridor.id, corridor.partner)
    if switched_off is not None:
        return _refused(switched_off, corridor.id, deps)
    hours = cfg.corridor_hours(corridor.id)
    closed = hours.refusal(now) if hours is not None else None
    if closed is not None:
        return _refused(closed, corridor.id, deps)
    if ins.debtor_currency not in corridor.source_currencies or ins.debtor_currency not in participant.currencies:
        return Reject("CURR", f"corridor {corridor.id} does not take {ins.debtor_currency} debtor accounts from {participant.code}")
    try:
        tier = cfg.tier_limits(corridor, ins.debtor_tier, ins.debtor_currency)
    except KeyError:
        return Reject("FF01", f"debtor_tier {ins.debtor_tier!r} is not a tier of this switch ({', '.join(sorted(cfg.tiers))})")
    mapping = deps.mappings[corridor.partner]
    mapping.check_creditor(creditor)  # raises InstructionRejected
    if creditor.proxy is not None and mapping.profile.proxy_resolution:
        resolved = _resolved(creditor, corridor.partner, resolutions)
        if isinstance(resolved, Reject):
            return resolved
        creditor = resolved
    mapping.check_text(ins.debtor.name, "debtor name", mapping.profile.name_chars_max)  # raises InstructionRejected
    mapping.check_party_data(ins.debtor, "debtor")  # issue 12: address and id render for the partner, or InstructionRejected
    mapping.check_party_data(creditor, "creditor")
    if ins.remittance:
        mapping.check_text(ins.remittance, "remittance information", mapping.profile.remittance_chars_max)

    source_ccy = currency(ins.debtor_currency)  # raises AmountError
    target_ccy = currency(corridor.target_currency)
    if ins.quote_id is not None:  # asked for first: honoured exactly, or refused (quote_check.py)
        stored = quotes.get(ins.quote_id)
        refused = check_quote(
            stored, quote_id=ins.quote_id, participant=ins.participant, corridor=corridor.id, instructed=instructed,
            debtor_currency=ins.debtor_currency, now=now, used_in_batch=ins.quote_id in quotes_taken,
        )
        if refused is not None:
            deps.metrics.fx.quotes.labels(corridor.id, refused.outcome).inc()
            return refused.reject
        assert stored is not None
        quote = stored.quote
    elif instructed.currency in (source_ccy, target_ccy):  # quoted on the spot
        try:  # the quoter raises SwitchError (no rate, a stale one, too small): a quote refused, counted
            if instructed.currency == source_ccy:
                quote = deps.quoter.quote_for_source(instructed, target_ccy, **_quote_terms(corridor, source_ccy.code, now))
            else:
                quote = deps.quoter.quote_for_target(instructed, source_ccy, **_quote_terms(corridor, source_ccy.code, now))
        except SwitchError:
            deps.metrics.fx.quotes.labels(corridor.id, "refused").inc()
            raise
    else:
        return Reject(
            "CURR", f"amount currency {instructed.currency} is neither the debtor's ({source_ccy}) nor the corridor's ({target_ccy})"
        )
    limit = corridor.amount_max_money(source_ccy.code)
    if quote.source.amount_minor > limit.amount_minor:
        return _refused(CorridorRefusal(RefusalReason.TX_LIMIT, f"{quote.source} is above the corridor maximum {limit}"), corridor.id, deps)
    usage_key: UsageKey | None = None
    if tier is not None:
        over = tx_refusal(tier, quote.source.amount_minor, str(quote.source))
        if over is None and tier.day_max_minor is not None:
            usage_key = UsageKey(corridor.id, ins.debtor.account, usage_day(now, cfg.usage_timezone), source_ccy.code)
            if gates.claimed and usage_key not in gates.usage:  # not claimed before the batch (cannot happen): never guess
                return Reject("NARR", "the debtor's daily usage was not read; send the instruction again")
            over = day_refusal(tier, gates.usage.get(usage_key, 0), quote.source.amount_minor, str(quote.source))
        if over is not None:
            return _refused(over, corridor.id, deps)
    # issue 12: the party data the corridor's compliance profile requires (RR01-RR03), on the debited amount
    missing = missing_data(cfg.compliance(corridor.compliance), ins.debtor, creditor, quote.source)
    if missing is not None:
        return missing

    payment = Payment(
        uetr=deps.new_uetr(),
        instruction_id=ins.instruction_id,
        participant=ins.participant,
        corridor=corridor.id,
        partner=corridor.partner,
        debtor=Party(name=ins.debtor.name, account=ins.debtor.account, agent=participant.code,
                     address=ins.debtor.address, identification=ins.debtor.identification),
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
        origin=ins.origin,
    )
    return Admitted(payment, quote, usage_key)


def _quote_terms(corridor: Any, source_code: str, now: datetime) -> dict[str, Any]:
    """The corridor's pricing terms for a quote made at admission."""
    return dict(
        now=now,
        corridor_fee=corridor.fee_money(source_code),
        spread_bps=corridor.spread_bps,
        validity_s=corridor.quote_validity_s,
        quote_id=f"Q{os.urandom(12).hex()}",
        fee_bps=corridor.fee_bps,
        rounding_favours=corridor.rounding_favours,
    )


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
    outbox: list[OutboxMessage] = []
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
        outbox.extend(events.participant_outbox(p, deps.config, deps.schemas, now=now, reason=detail))
    await uow.payments_update(moved)
    await uow.history_add(history)
    outcomes[0].status_outbox = await uow.outbox_add(outbox)
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
    statuses: list[tuple[int, OutboxMessage]] = []
    not_found: list[tuple[int, Payment, str]] = []  # issue 9: RJCT "payment not received" (AG09)
    for i in fresh:
        cmd, out = cmds[i], outcomes[i]
        for status in cmd.statuses:
            p = current.get(status.uetr)
            # a partner's pacs.002 decides only our pacs.008 to it: an inbound payment is decided
            # by its participant's reply or the confirm deadline, never by the partner
            if p is None or p.partner != cmd.partner or p.direction is not Direction.OUTBOUND:
                out.count("unknown")
                continue
            if _not_received(status, p, deps):  # the Nexus investigation rule: resend, never reject
                not_found.append((i, p, status.reason_code or ""))
                out.count("not_found")
                continue
            disposition = classify_partner_status(p.state, status.target)
            if disposition is not StatusDisposition.APPLY:
                out.count(disposition.value)
                deps.metrics.late_status.labels(cmd.partner).inc()
                continue
            # the partner's part of the time: from its acknowledgement of our pacs.008 (the send
            # recorded, the payment's last move) to its final status; not measurable when the
            # status overtook the acknowledgement, nor after an ACSP or a time-out moved it since
            submitted_at = p.updated_at if p.state is S.SUBMITTED else None
            if p.state is S.QUOTED:  # the pacs.002 overtook the send acknowledgement
                p, entry = transition(p, S.SUBMITTED, now=now, detail="implied by the partner's status")
                history.append(entry)
            p, entry = transition(p, status.target, now=now, reason_code=status.reason_code, detail=status.detail)
            history.append(entry)
            current[p.uetr] = changed[p.uetr] = p
            out.count("applied")
            if p.state is S.REJECTED:  # a problem, so logged (rate-limited per partner): not the hot path
                with payment_log_context(p):
                    deps.partner_problems.problem(
                        p.partner, Problem.REJECTED, f"payment {p.uetr}: {p.reason_code} {(status.detail or '')[:200]}".rstrip()
                    )
            if p.state in FINAL_STATES:
                _count_outcome(p, deps, stage="partner")
                deps.metrics.stage_duration.labels("end_to_end").observe((now - p.created_at).total_seconds())
                if submitted_at is not None:
                    deps.metrics.stage_duration.labels("partner_roundtrip").observe(max(0.0, (now - submitted_at).total_seconds()))
                statuses.extend((i, m) for m in events.participant_outbox(p, deps.config, deps.schemas, now=now, reason=status.detail))
    await uow.payments_update([(stored[u].version, p) for u, p in changed.items()])
    await uow.history_add(history)
    rows = await uow.outbox_add([m for _, m in statuses])
    for (i, _), row in zip(statuses, rows, strict=True):
        outcomes[i].status_outbox.append(row)
    await _after_statuses(uow, deps, now, outcomes, [p for p in changed.values() if p.state in FINAL_STATES], not_found)
    return outcomes


# ---------------------------------------------------------------- status enquiries (issue 9)


def _not_received(status: PartnerStatus, p: Payment, deps: Deps) -> bool:
    """A RJCT with the partner's not-found reason (AG09, "payment not received") about an
    outbound payment not yet final: it never rejects the payment (switch/service/enquiries.py)."""
    mapping = deps.mappings.get(p.partner)
    return (
        mapping is not None and status.target is S.REJECTED and p.state not in FINAL_STATES
        and status.reason_code == mapping.profile.exceptions.not_found_reason
    )


async def _after_statuses(
    uow: UnitOfWork, deps: Deps, now: datetime, outcomes: list[Outcome], final: list[Payment],
    not_found: list[tuple[int, Payment, str]],
) -> None:
    """Enquiries closed by final statuses, pacs.008 resent for "not received" answers."""
    if not final and not not_found:
        return
    from switch.service import enquiries  # builds on this module (Deps, Outcome): imported when needed

    resent = await enquiries.after_statuses(uow, deps, now=now, final=final, not_found=[(p, r) for _, p, r in not_found])
    by_message = {p.message_id: i for i, p, _ in not_found}
    for row in resent:
        outcomes[by_message.get(row.message_id, 0)].partner_outbox.append(row)
        outcomes[by_message.get(row.message_id, 0)].count("resent")
