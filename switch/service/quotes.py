"""FX quotes asked for first (issue 11): a participant asks, the switch prices the corridor's
terms and stores the quote in one transaction; an instruction that references it later is
honoured exactly, once, until it expires (`check_quote`, called by admission in handlers.py).

Where the asks come from: POST /v1/quotes on the operations API (switch/entrypoints/quotes_edge.py)
and quote requests on `mekong.requests` (the Kafka edge), whose answers go out on the quotes topic
(`mekong.quotes`) through the outbox. A Kafka request is answered once per request id: a
redelivery finds the quote it made and answers it again under the same event id.

Refusals of an instruction's quote, with the ISO external status reason code each gets (the doc
says why):
- unknown, or another participant's (told apart from neither: nobody learns another's quote
  ids): AG01 TransactionForbidden;
- another corridor: AG01; another debtor currency or another amount: AM09 WrongAmount (not the
  amount agreed);
- expired: TM01 InvalidCutOffTime (received after the quote's agreed cut-off);
- already used: DUPL DuplicatePayment.
(quote_check.py: the check admission makes.)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from fx.quote import FixedSide, FxQuote
from switch.config import Corridor
from switch.contracts import AmountV1, QuoteAskV1, QuoteV1
from switch.domain.errors import SwitchError
from switch.domain.instruction import Reject
from switch.domain.money import AmountError, Money, currency
from switch.service import audit
from switch.service.handlers import Deps, Outcome
from switch.service.ports import OutboxMessage, StoredQuote, UnitOfWork

OTHER_CORRIDOR = "other"  # the metric label of a request naming no configured corridor


@dataclass(frozen=True, slots=True)
class QuoteAsk:
    """One ask: the contract as the edge read it, the Kafka request id (None over HTTP), and
    the operator who asked (None: the participant itself; an operator's ask is audited)."""

    ask: QuoteAskV1
    request_id: str | None = None
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class IssueQuotes:
    asks: Sequence[QuoteAsk]


@dataclass
class QuoteAnswers(Outcome):
    """The Outcome of IssueQuotes: the answer to each ask, in order."""

    answers: list[QuoteV1] = field(default_factory=list)


def _amount(m: Money) -> AmountV1:
    return AmountV1.model_construct(value=m.to_text(m.currency.decimals_accepted_max), currency=m.currency.code)


def quote_answer(sq: StoredQuote, *, now: datetime, request_id: str | None, event_id: str | None = None) -> QuoteV1:
    q = sq.quote
    return QuoteV1(
        event_id=event_id,
        request_id=request_id,
        participant=sq.participant,
        corridor=sq.corridor,
        state="QUOTED",
        quote_id=q.quote_id,
        fixed="source" if q.fixed_side is FixedSide.SOURCE else "target",
        source_amount=_amount(q.source),
        target_amount=_amount(q.target),
        fee=_amount(q.fee),
        fee_bps=q.fee_bps,
        debit_amount=_amount(Money(q.source.amount_minor + q.fee.amount_minor, q.source.currency)),
        rate=f"{q.customer_rate:f}",
        mid=f"{q.mid_rate:f}",
        spread_bps=q.spread_bps,
        effective_rate=f"{q.effective_rate:f}",
        rate_source=q.rate_source,
        rate_as_of=q.rate_as_of,
        rounding_favours=q.rounding_favours,
        expires_at=q.expires_at,
        occurred_at=now,
    )


def refusal_answer(ask: QuoteAskV1, reject: Reject, *, now: datetime, request_id: str | None, event_id: str | None = None) -> QuoteV1:
    return QuoteV1(
        event_id=event_id, request_id=request_id, participant=ask.participant, corridor=ask.corridor, state="REFUSED",
        reason_code=reject.reason_code, reason=reject.detail, occurred_at=now,
    )


def answer_event_id(participant: str, request_id: str, outcome: str) -> str:
    """The answer's event id, fixed by the request and what it came to: a redelivered request
    is the same event (the caller skips ids already in the outbox)."""
    return "F" + hashlib.sha256(f"{participant}\x00{request_id}\x00{outcome}".encode()).hexdigest()[:40]


def _corridor_label(deps: Deps, corridor_id: str) -> str:
    return corridor_id if deps.config.corridor(corridor_id) is not None else OTHER_CORRIDOR


def price(ask: QuoteAskV1, deps: Deps, *, now: datetime) -> FxQuote | Reject:
    """The corridor's terms for the ask, or why not (the same checks admission makes of the
    participant, corridor and currencies, then the quoter's and the corridor maximum's)."""
    cfg = deps.config
    participant = cfg.participant(ask.participant)
    if participant is None:
        return Reject("RC01", f"participant {ask.participant} is not a Bakong participant of this switch")
    corridor = cfg.corridor(ask.corridor)
    if corridor is None or not corridor.enabled or corridor.partner not in deps.mappings:
        return Reject("AG01", f"no open corridor {ask.corridor}")
    source_code = ask.source_amount.currency if ask.source_amount is not None else ask.source_currency
    assert source_code is not None  # the contract says so
    if source_code not in corridor.source_currencies or source_code not in participant.currencies:
        return Reject("CURR", f"corridor {corridor.id} does not take {source_code} debtor accounts from {participant.code}")
    try:
        return _quote(ask, corridor, source_code, deps, now=now)
    except (SwitchError, AmountError) as exc:
        return Reject(exc.reason_code, str(exc))


def _quote(ask: QuoteAskV1, corridor: Corridor, source_code: str, deps: Deps, *, now: datetime) -> FxQuote | Reject:
    source_ccy, target_ccy = currency(source_code), currency(corridor.target_currency)
    terms = dict(
        now=now, corridor_fee=corridor.fee_money(source_code), spread_bps=corridor.spread_bps,
        validity_s=corridor.quote_validity_s, quote_id=f"Q{os.urandom(12).hex()}", fee_bps=corridor.fee_bps,
        rounding_favours=corridor.rounding_favours,
    )
    if ask.source_amount is not None:
        quote = deps.quoter.quote_for_source(Money.parse(ask.source_amount.value, source_code), target_ccy, **terms)
    else:
        assert ask.target_amount is not None
        if ask.target_amount.currency != corridor.target_currency:
            return Reject("CURR", f"corridor {corridor.id} credits {corridor.target_currency}, not {ask.target_amount.currency}")
        quote = deps.quoter.quote_for_target(Money.parse(ask.target_amount.value, target_ccy.code), source_ccy, **terms)
    limit = corridor.amount_max_money(source_code)
    if quote.source.amount_minor > limit.amount_minor:
        return Reject("AM02", f"{quote.source} is above the corridor maximum {limit}")
    return quote


async def issue_quotes(cmd: IssueQuotes, uow: UnitOfWork, deps: Deps) -> QuoteAnswers:
    """Price and store each ask (one transaction); a Kafka request's answer goes to the outbox
    for the quotes topic, an HTTP ask's is returned (QuoteAnswers.answers)."""
    now = deps.clock()
    out = QuoteAnswers()
    metrics = deps.metrics.fx.quotes
    known: dict[tuple[str, str], StoredQuote] = {}
    by_participant: dict[str, list[str]] = {}
    for a in cmd.asks:
        if a.request_id is not None:
            by_participant.setdefault(a.ask.participant, []).append(a.request_id)
    for participant, request_ids in by_participant.items():  # only Kafka requests: none over HTTP
        for request_id, sq in (await uow.quotes_by_request(participant, request_ids)).items():
            known[(participant, request_id)] = sq
    stored: list[StoredQuote] = []
    outbox: list[OutboxMessage] = []
    audited = []
    for a in cmd.asks:
        ask = a.ask
        again = known.get((ask.participant, a.request_id)) if a.request_id is not None else None
        if again is not None:  # the same request again: the same quote, the same event
            out.count("replayed")
            answer = quote_answer(again, now=now, request_id=a.request_id,
                                  event_id=answer_event_id(ask.participant, a.request_id or "", again.quote.quote_id))
        else:
            priced = price(ask, deps, now=now)
            label = _corridor_label(deps, ask.corridor)
            if isinstance(priced, Reject):
                out.count("refused")
                metrics.labels(label, "refused").inc()
                deps.metrics.rejects.labels("quote", priced.reason_code).inc()
                answer = refusal_answer(ask, priced, now=now, request_id=a.request_id)
                outcome_key = priced.reason_code
            else:
                sq = StoredQuote(priced, ask.participant, ask.corridor, a.request_id)
                stored.append(sq)
                if a.request_id is not None:
                    known[(ask.participant, a.request_id)] = sq
                out.count("issued")
                metrics.labels(label, "issued").inc()
                answer = quote_answer(sq, now=now, request_id=a.request_id)
                outcome_key = priced.quote_id
            if a.request_id is not None:
                answer = answer.model_copy(update={"event_id": answer_event_id(ask.participant, a.request_id, outcome_key)})
            if a.operator is not None:
                audited.append(audit.entry(
                    at=now, actor=f"operator {a.operator}", action="fx.quote", subject=f"{ask.participant}/{ask.corridor}",
                    detail={"state": answer.state, "quote_id": answer.quote_id, "reason_code": answer.reason_code},
                ))
        out.answers.append(answer)
        if a.request_id is not None:
            outbox.append(quote_outbox(answer, deps, now=now))
    await uow.quotes_add(stored)
    if outbox:  # a redelivered batch, or one request twice in a batch, must not publish the same answer twice
        unique = list({m.message_id: m for m in outbox}.values())
        done = await uow.outbox_existing("status", [m.message_id for m in unique])
        out.status_outbox = await uow.outbox_add([m for m in unique if m.message_id not in done])
    if audited:
        await audit.audit_many(uow, audited)
    return out


def quote_outbox(answer: QuoteV1, deps: Deps, *, now: datetime) -> OutboxMessage:
    """A quote answer as an outbox row for the quotes topic (the relay's Kafka lane)."""
    assert answer.event_id is not None
    return OutboxMessage(
        kind="status",
        destination=deps.config.kafka.quotes_topic,
        message_id=answer.event_id,
        uetrs=(),
        key=f"{answer.participant}/{answer.request_id}",
        body=answer.model_dump_json().encode(),
        created_at=now,
    )
