"""Inbound payments: a partner network pays a Bakong customer (TH->KH, LA->KH, VN->KH, CN->KH).

  partner pacs.008 --> accept_inbound: validate, deduplicate (message id, UETR), resolve the
                       beneficiary, book RECEIVED -> QUOTED -> SUBMITTED, publish on mekong.inbound
  participant reply --> apply_inbound_replies: SUBMITTED -> COMPLETED (ACSC) or REJECTED (reason)
  silence          --> follow_up_payments (follow_up.py): SUBMITTED -> REJECTED AB05 after the
                       route's confirm timeout
Every final state answers the partner with one pacs.002 (outbox, message id R+UETR) and tells the
participant on mekong.status. A resent pacs.008 (same message id, or a known UETR) gets the
stored answer again, byte for byte, and books nothing. A duplicate that is not a resend is
answered to the partner that sent it, never to the payment's own partner: a UETR another partner
(or an outbound payment) already used, a known UETR with other content, or a message id reused
for another body gets a pacs.002 RJCT DUPL (message id D + a hash of sender, message id and UETR,
so resending that message gets the same DUPL answer). The original payment is left as it is.

Handlers as in handlers.py: one transaction each, no I/O beyond the unit of work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from adapters.inbound import (
    MOBILE_PROXY_TYPES,
    InboundTransfer,
    answer_message_id,
    bakong_mobile,
    duplicate_answer_message_id,
    status_report,
)
from iso20022 import pacs002
from switch.config import InboundRoute
from switch.contracts import (
    AmountV1,
    InboundAddressV1,
    InboundBirthV1,
    InboundIdentificationV1,
    InboundNationalIdV1,
    InboundPartyV1,
    InboundPaymentV1,
    InboundReplyV1,
)
from switch.domain.compliance import missing_data
from switch.domain.errors import InstructionRejected
from switch.domain.money import AmountError, Money
from switch.domain.screening import Verdict
from switch.domain.payment import (
    Direction,
    HistoryEntry,
    Identification,
    Party,
    Payment,
    PaymentState,
    PostalAddress,
    initial_history,
    scheduled,
    transition,
)
from switch.service import events
from switch.service.handlers import Deps, Outcome, _count_outcome, hold_detail, screening_hold
from switch.service.ports import OutboxMessage, ScreeningHold, UnitOfWork

S = PaymentState


@dataclass(frozen=True, slots=True)
class AcceptInbound:
    partner: str
    message_id: str
    message_type: str
    body: bytes
    transfers: Sequence[InboundTransfer]
    # screening verdicts made before the transaction (issue 12): (partner, UETR) -> the verdict;
    # a transfer not in here was not screened (screening off)
    screenings: Mapping[tuple[str, str], Verdict] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApplyInboundReplies:
    replies: Sequence[InboundReplyV1]


def _answer(
    partner: str, uetr: str, end_to_end_id: str, deps: Deps, *, now: datetime,
    accepted: bool, reason_code: str | None, detail: str | None, message_id: str | None = None,
) -> OutboxMessage:
    """The final pacs.002 to the partner for one inbound transfer, as an outbox row. uetrs=():
    delivering an answer moves no payment (the relay records nothing for it)."""
    report = status_report(
        switch_bic=deps.config.switch.agent_bic, uetr=uetr, end_to_end_id=end_to_end_id,
        accepted=accepted, reason_code=reason_code, detail=detail, at=now, message_id=message_id,
    )
    body = pacs002.build_validated(report, deps.schemas)  # the profiles' version: pacs.002.001.10
    return OutboxMessage(
        kind="partner", destination=partner, message_id=report.message_id, uetrs=(), key=uetr, body=body, created_at=now
    )


def inbound_answer(p: Payment, deps: Deps, *, now: datetime, detail: str | None) -> OutboxMessage:
    """The final pacs.002 to the partner for a decided inbound payment."""
    return _answer(p.partner, p.uetr, p.instruction_id, deps, now=now,
                   accepted=p.state is S.COMPLETED, reason_code=p.reason_code, detail=detail)


def _proxy_key(proxy: str | None) -> str | None:
    return (bakong_mobile(proxy) or proxy) if proxy else None


def resends(p: Payment, t: InboundTransfer, *, stored_account: Callable[[str], str] = str) -> bool:
    """Whether transfer t is payment p again as its partner sent it (a resend under a new message
    id), not other content under a known UETR. Compares what the partner sent that the payment
    keeps, not what the switch derived from it (the account a mobile resolved to).
    `stored_account`: the debtor account as the payment keeps it (a card number as its token)."""
    try:
        amount = Money.parse(t.amount.value, t.amount.currency)
    except AmountError:
        return False
    if t.creditor_proxy is not None:
        creditor_same = _proxy_key(t.creditor_proxy[:64]) == _proxy_key(p.creditor.proxy)
    else:
        account = t.creditor_account if t.creditor_account and len(t.creditor_account) <= 34 else None
        creditor_same = account == p.creditor.account
    sent = (
        t.end_to_end_id[:35], t.debtor_name[:140], stored_account(t.debtor_account or "-"), (t.debtor_agent or "-")[:11],
        t.creditor_name[:140], amount, t.exchange_rate, t.remittance[:140] if t.remittance else None,
    )
    kept = (
        p.instruction_id, p.debtor.name, p.debtor.account, p.debtor.agent,
        p.creditor.name, p.source, p.fx_rate, p.remittance,
    )
    return creditor_same and sent == kept


def _duplicate(
    partner: str, t: InboundTransfer, *, message_id_reused: bool, known: Payment | None,
    answer: OutboxMessage | None, booked: tuple[str, InboundTransfer] | None, stored_account: Callable[[str], str],
) -> str | None:
    """Why transfer t from partner is a duplicate that must be refused DUPL, or None when it is
    new or a resend of what partner sent before. The other partner is never named."""
    if message_id_reused:
        return "message id already used for another message"
    if known is not None:
        if known.direction is not Direction.INBOUND or known.partner != partner:
            return "UETR already used"
        return None if resends(known, t, stored_account=stored_account) else "UETR already used for another payment"
    if answer is not None:  # refused before booking (amount unreadable): only the sender is known
        return None if answer.destination == partner else "UETR already used"
    if booked is not None:  # booked earlier in this batch
        return None if booked == (partner, t) else "UETR already used"
    return None


def _beneficiary(t: InboundTransfer, deps: Deps) -> tuple[str, str | None, str]:
    """(Bakong account, mobile or None, participant code) of the creditor, or a reject."""
    cfg = deps.config
    mobile: str | None = None
    if t.creditor_proxy is not None:
        if (t.creditor_proxy_type or "").upper() not in MOBILE_PROXY_TYPES:
            raise InstructionRejected(f"proxy type {t.creditor_proxy_type!r} cannot reach a Bakong account", reason_code="BE23")
        mobile = bakong_mobile(t.creditor_proxy)
        if mobile is None:
            raise InstructionRejected(f"{t.creditor_proxy!r} is not a valid Cambodian mobile number", reason_code="BE23")
        account = cfg.account_of_mobile(mobile)
        if account is None:
            raise InstructionRejected(f"mobile {mobile} is not registered with Bakong", reason_code="BE23")
    elif t.creditor_account and "@" in t.creditor_account:
        account = t.creditor_account
    else:
        raise InstructionRejected(
            f"creditor account {t.creditor_account!r} is not a Bakong account id (name@bank)", reason_code="AC01"
        )
    participant = cfg.participant_by_suffix(account.rsplit("@", 1)[1])
    if participant is None:
        raise InstructionRejected(f"no Bakong participant holds {account}", reason_code="AC01")
    return account, mobile, participant.code


def _stored_account(deps: Deps, partner: str) -> Callable[[str], str]:
    """How the payments of partner keep a debtor account: a card number as its token."""
    is_card = deps.mappings[partner].profile.is_card
    return lambda account: deps.pans.token(account) if is_card(account) else account


def _book(partner: str, route: InboundRoute, t: InboundTransfer, deps: Deps, now: datetime) -> tuple[Payment, str | None, str | None]:
    """The inbound payment as received, plus (reason code, detail) when the switch refuses it."""
    amount = Money.parse(t.amount.value, t.amount.currency)  # AmountError -> unbooked reject
    instructed = amount
    if t.instructed_amount is not None:
        try:
            instructed = Money.parse(t.instructed_amount.value, t.instructed_amount.currency)
        except AmountError:
            instructed = amount  # informative only: the credit is the settlement amount
    problem: tuple[str, str] | None = None
    account, mobile, participant_code = t.creditor_account or "", None, ""
    try:
        if amount.currency.code not in route.currencies:
            raise InstructionRejected(
                f"{route.id} credits {', '.join(route.currencies)} accounts, not {amount.currency.code}", reason_code="CURR"
            )
        if amount.amount_minor <= 0:
            raise InstructionRejected("amount must be positive", reason_code="AM09")
        if amount.amount_minor > route.amount_max_money[amount.currency.code].amount_minor:
            raise InstructionRejected(f"{amount} is above the {route.id} maximum", reason_code="AM02")
        account, mobile, participant_code = _beneficiary(t, deps)
        participant = deps.config.participant(participant_code)
        assert participant is not None
        if amount.currency.code not in participant.currencies:
            raise InstructionRejected(f"{participant.code} holds no {amount.currency.code} accounts", reason_code="CURR")
    except InstructionRejected as exc:
        problem = (exc.reason_code, str(exc))
    proxy = mobile or t.creditor_proxy  # the normalised Bakong mobile, else what the partner sent
    payment = Payment(
        uetr=t.uetr,
        instruction_id=t.end_to_end_id[:35],
        participant=participant_code or "-",
        corridor=route.id,
        partner=partner,
        debtor=Party(name=t.debtor_name[:140], account=t.debtor_account or "-", agent=(t.debtor_agent or "-")[:11],
                     address=t.debtor_address, identification=t.debtor_identification),
        creditor=Party(
            name=t.creditor_name[:140],
            account=account if account and len(account) <= 34 else None,
            proxy_type="MOBILE" if proxy else None,
            proxy=proxy[:64] if proxy else None,
            agent=participant_code or None,
            address=t.creditor_address,
        ),
        instructed=instructed,
        source=amount,
        target=amount,
        fee=Money(0, amount.currency),
        fx_rate=t.exchange_rate,
        quote_id=None,
        remittance=t.remittance[:140] if t.remittance else None,
        state=S.RECEIVED,
        reason_code=None,
        version=1,
        created_at=now,
        updated_at=now,
        direction=Direction.INBOUND,
    )
    if problem is None:  # issue 12: the party data the route's compliance profile requires (RR01-RR03)
        missing = missing_data(deps.config.compliance(route.compliance), payment.debtor, payment.creditor, amount)
        problem = None if missing is None else (missing.reason_code, missing.detail)
    # a card debtor is kept (and handed to the participant) as its token; only the partner's own
    # message holds the number
    payment = deps.pans.protect(payment, deps.mappings[partner].profile.is_card)
    return payment, problem[0] if problem else None, problem[1] if problem else None


def _address_event(a: PostalAddress | None) -> InboundAddressV1 | None:
    if a is None:
        return None
    return InboundAddressV1(street=a.street, building=a.building, post_code=a.post_code, town=a.town,
                            subdivision=a.subdivision, country=a.country, lines=list(a.lines) or None)


def _identification_event(i: Identification | None) -> InboundIdentificationV1 | None:
    if i is None:
        return None
    return InboundIdentificationV1(
        national_id=InboundNationalIdV1(value=i.national_id, issuer=i.national_id_issuer) if i.national_id else None,
        birth=InboundBirthV1(date=i.birth_date.isoformat(), city=i.birth_city, country=i.birth_country)
        if i.birth_date else None,
        lei=i.lei,
    )


def _inbound_event(p: Payment, *, mobile: str | None, reply_by: datetime, now: datetime) -> InboundPaymentV1:
    money = p.target
    instructed = None
    if p.instructed.currency != p.target.currency:
        instructed = AmountV1.model_construct(
            value=p.instructed.to_text(p.instructed.currency.decimals_accepted_max), currency=p.instructed.currency.code
        )
    return InboundPaymentV1(
        uetr=p.uetr,
        participant=p.participant,
        corridor=p.corridor,
        partner=p.partner,
        end_to_end_id=p.instruction_id,
        debtor=InboundPartyV1(name=p.debtor.name, account=p.debtor.account, agent=p.debtor.agent,
                              address=_address_event(p.debtor.address),
                              identification=_identification_event(p.debtor.identification)),
        creditor=InboundPartyV1(name=p.creditor.name, account=p.creditor.account, mobile=mobile, agent=p.participant,
                                address=_address_event(p.creditor.address)),
        amount=AmountV1.model_construct(value=money.to_text(money.currency.decimals_accepted_max), currency=money.currency.code),
        instructed_amount=instructed,
        remittance=p.remittance,
        reply_by=reply_by,
        occurred_at=now,
    )


def publish_inbound(
    p: Payment, route: InboundRoute, deps: Deps, *, now: datetime, history: list[HistoryEntry]
) -> tuple[Payment, OutboxMessage]:
    """A booked (QUOTED) inbound payment published to its participant: SUBMITTED, to be answered
    by reply_by (silence then: AB05, follow_up.py); the payment and the event's outbox row."""
    p, entry = transition(p, S.SUBMITTED, now=now, detail=f"published on {deps.config.kafka.inbound_topic}")
    history.append(entry)
    reply_by = now + timedelta(seconds=route.confirm_timeout_s)
    p = scheduled(p, follow_up_at=reply_by)
    event = _inbound_event(p, mobile=p.creditor.proxy, reply_by=reply_by, now=now)
    return p, OutboxMessage(
        kind="status", destination=deps.config.kafka.inbound_topic, message_id=f"I{p.uetr.replace('-', '')}",
        uetrs=(p.uetr,), key=f"{p.participant}/{p.uetr}", body=event.model_dump_json().encode(), created_at=now,
    )


async def accept_inbound(cmds: Sequence[AcceptInbound], uow: UnitOfWork, deps: Deps) -> list[Outcome]:
    now = deps.clock()
    outcomes = [Outcome() for _ in cmds]
    bodies: dict[tuple[str, str], bytes] = {}  # (partner, message id) -> the body first sent under it
    for partner in {c.partner for c in cmds}:
        stored = await uow.inbound_bodies(partner, [c.message_id for c in cmds if c.partner == partner])
        bodies.update(((partner, m), body) for m, body in stored.items())
    uetrs = [t.uetr for c in cmds for t in c.transfers]
    known = await uow.payments_get(uetrs)
    answer_ids = [answer_message_id(u) for u in uetrs]
    answer_ids += [duplicate_answer_message_id(c.partner, c.message_id, t.uetr) for c in cmds for t in c.transfers]
    answers = {m.message_id: m for m in await uow.outbox_by_message_ids("partner", answer_ids)}

    new_payments: list[Payment] = []
    history: list[HistoryEntry] = []
    partner_msgs: list[tuple[int, OutboxMessage]] = []
    status_msgs: list[tuple[int, OutboxMessage]] = []
    resend: list[tuple[int, OutboxMessage]] = []
    fresh_messages = []
    booked: dict[str, tuple[str, InboundTransfer]] = {}  # UETR -> (partner, transfer), this batch
    duplicates_answered: set[str] = set()  # DUPL answer ids planned in this batch
    holds: list[ScreeningHold] = []  # issue 12
    for i, cmd in enumerate(cmds):
        out = outcomes[i]
        first_body = bodies.get((cmd.partner, cmd.message_id))
        if first_body is None:
            bodies[(cmd.partner, cmd.message_id)] = cmd.body
            fresh_messages.append(
                {"partner": cmd.partner, "message_id": cmd.message_id, "message_type": cmd.message_type,
                 "received_at": now, "body": cmd.body}
            )
        else:
            out.count("duplicate_message")
        route = deps.config.inbound_route(cmd.partner)
        assert route is not None, "the HTTP edge checks the route"
        for t in cmd.transfers:
            duplicate_id = duplicate_answer_message_id(cmd.partner, cmd.message_id, t.uetr)
            stored_duplicate = answers.get(duplicate_id)
            if stored_duplicate is not None:  # this message was refused DUPL before: the same answer again
                out.count("answered_again")
                resend.append((i, stored_duplicate))
                continue
            if duplicate_id in duplicates_answered:  # the same message twice in this batch: answered once
                out.count("answered_again")
                continue
            answer = answers.get(answer_message_id(t.uetr))
            why = _duplicate(
                cmd.partner, t, message_id_reused=first_body is not None and first_body != cmd.body,
                known=known.get(t.uetr), answer=answer, booked=booked.get(t.uetr),
                stored_account=_stored_account(deps, cmd.partner),
            )
            if why is not None:  # answered to the sender; the payment under this UETR is untouched
                out.count("rejected")
                deps.metrics.rejects.labels("inbound", "DUPL").inc()
                duplicates_answered.add(duplicate_id)
                partner_msgs.append((i, _answer(cmd.partner, t.uetr, t.end_to_end_id, deps, now=now, accepted=False,
                                                reason_code="DUPL", detail=why, message_id=duplicate_id)))
                continue
            if answer is not None:  # decided before: the same answer again
                out.count("answered_again")
                resend.append((i, answer))
                continue
            if t.uetr in known or t.uetr in booked:
                out.count("in_progress")  # booked, the participant has not answered yet
                continue
            booked[t.uetr] = (cmd.partner, t)
            try:
                payment, reason_code, detail = _book(cmd.partner, route, t, deps, now)
            except AmountError as exc:
                out.count("rejected")
                deps.metrics.rejects.labels("inbound", exc.reason_code).inc()
                partner_msgs.append((i, _answer(cmd.partner, t.uetr, t.end_to_end_id, deps, now=now, accepted=False,
                                                                reason_code=exc.reason_code, detail=str(exc))))
                continue
            history.append(initial_history(payment))
            if reason_code is not None:
                payment, entry = transition(payment, S.REJECTED, now=now, reason_code=reason_code, detail=detail)
                history.append(entry)
                new_payments.append(payment)
                _count_outcome(payment, deps, stage="inbound")
                out.count("rejected")
                partner_msgs.append((i, inbound_answer(payment, deps, now=now, detail=detail)))
                if payment.participant != "-":
                    status_msgs.extend(
                        (i, m) for m in events.participant_outbox(payment, deps.config, deps.schemas, now=now, reason=detail)
                    )
                continue
            verdict = cmd.screenings.get((cmd.partner, t.uetr)) if cmd.screenings else None
            if verdict is not None and verdict.holds:  # issue 12: not published, no answer yet
                deadline_at = now + timedelta(seconds=deps.config.screening.hold_deadline_s)
                payment, entry = transition(payment, S.HELD, now=now, detail=hold_detail(verdict))
                history.append(entry)
                new_payments.append(scheduled(payment, follow_up_at=deadline_at))
                holds.append(screening_hold(payment, verdict, now=now, deadline_at=deadline_at))
                deps.metrics.screening_holds.labels("inbound", verdict.outcome.value).inc()
                out.count("held")
                continue
            payment, entry = transition(payment, S.QUOTED, now=now, detail=f"booked for {payment.participant}")
            history.append(entry)
            payment, published = publish_inbound(payment, route, deps, now=now, history=history)
            new_payments.append(payment)
            status_msgs.append((i, published))
            out.count("booked")
    await uow.inbound_add(fresh_messages)
    await uow.payments_add(new_payments)
    await uow.history_add(history)
    if holds:
        await uow.holds_add(holds)
    rows = await uow.outbox_add([m for _, m in partner_msgs])
    for (i, _), row in zip(partner_msgs, rows, strict=True):
        outcomes[i].partner_outbox.append(row)
    for i, row in resend:
        outcomes[i].partner_outbox.append(row)
    rows = await uow.outbox_add([m for _, m in status_msgs])
    for (i, _), row in zip(status_msgs, rows, strict=True):
        outcomes[i].status_outbox.append(row)
    return outcomes


def finish_inbound(p: Payment, target: PaymentState, deps: Deps, *, now: datetime, reason_code: str | None, detail: str | None,
            out: Outcome, history: list[HistoryEntry], moved: list[tuple[int, Payment]]) -> None:
    stored_version = p.version
    p2, entry = transition(p, target, now=now, reason_code=reason_code, detail=detail)
    history.append(entry)
    moved.append((stored_version, p2))
    _count_outcome(p2, deps, stage="inbound")
    deps.metrics.stage_duration.labels("inbound_end_to_end").observe((now - p.created_at).total_seconds())
    out.partner_outbox.append(inbound_answer(p2, deps, now=now, detail=detail))
    out.status_outbox.extend(events.participant_outbox(p2, deps.config, deps.schemas, now=now, reason=detail))


async def _store_decisions(uow: UnitOfWork, out: Outcome, moved: list[tuple[int, Payment]], history: list[HistoryEntry]) -> None:
    await uow.payments_update(moved)
    await uow.history_add(history)
    out.partner_outbox = await uow.outbox_add(out.partner_outbox)
    out.status_outbox = await uow.outbox_add(out.status_outbox)


async def apply_inbound_replies(cmd: ApplyInboundReplies, uow: UnitOfWork, deps: Deps) -> Outcome:
    """The participants' answers. A reply for an unknown payment, from another participant, or
    after the payment was decided (timeout, an earlier reply) is counted and ignored."""
    now = deps.clock()
    out = Outcome()
    current = await uow.payments_get([r.uetr for r in cmd.replies])
    history: list[HistoryEntry] = []
    moved: list[tuple[int, Payment]] = []
    for reply in cmd.replies:
        p = current.get(reply.uetr)
        if p is None or p.direction is not Direction.INBOUND or p.participant != reply.participant:
            out.count("reply_unknown")
            continue
        if p.state is not S.SUBMITTED:
            out.count("reply_late")
            deps.metrics.late_status.labels(p.partner).inc()
            continue
        if reply.decision == "ACCEPT":
            finish_inbound(p, S.COMPLETED, deps, now=now, reason_code=None, detail=f"credited by {p.participant}", out=out, history=history, moved=moved)
        else:
            finish_inbound(p, S.REJECTED, deps, now=now, reason_code=reply.reason_code, detail=reply.reason or f"rejected by {p.participant}",
                    out=out, history=history, moved=moved)
        current[p.uetr] = moved[-1][1]
        out.count("reply_applied")
    await _store_decisions(uow, out, moved, history)
    return out
