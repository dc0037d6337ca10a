"""FX quotes asked for first (issue 11) on the fakes: the issuing handler (terms, fee, effective
rate, refusals, a Kafka request answered once), and admission honouring a quote exactly, once,
until it expires, refusing it otherwise with the documented reason code."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from switch.contracts import QuoteAskV1, QuoteRequestV1
from switch.domain.errors import ConcurrentUpdate
from switch.domain.money import Money
from switch.service.handlers import AcceptInstructions, Deps, Outcome, accept_instructions
from switch.service.quotes import IssueQuotes, QuoteAnswers, QuoteAsk, issue_quotes
from fx.quote import FixedSide, FxQuote
from switch.domain.money import CURRENCIES
from switch.service.ports import StoredQuote
from tests.factories import PARTNER_SAMPLES, sample_instruction
from switch.service import events
from tests.fakes import T0, FakeClock, FakeUnitOfWork, parsed_instruction

ACLB, ABAA = "ACLBKHPPXXX", "ABAAKHPPXXX"


def ask(**changes: Any) -> QuoteAskV1:
    doc: dict[str, Any] = {"participant": ACLB, "corridor": "KH-TH", "source_amount": {"value": "400000", "currency": "KHR"}}
    doc.update(changes)
    return QuoteAskV1.model_validate(doc)


async def issue(uow: FakeUnitOfWork, deps: Deps, *asks: QuoteAskV1 | QuoteAsk) -> QuoteAnswers:
    wrapped = [a if isinstance(a, QuoteAsk) else QuoteAsk(a) for a in asks]
    return await issue_quotes(IssueQuotes(wrapped), uow, deps)


async def admit(uow: FakeUnitOfWork, deps: Deps, *docs: dict[str, Any]) -> Outcome:
    items = [parsed_instruction(d, source_ref=f"mekong.instructions:0:{i}") for i, d in enumerate(docs)]
    return await accept_instructions(AcceptInstructions(items), uow, deps)


def with_quote(quote_id: str, **changes: Any) -> dict[str, Any]:
    return sample_instruction(quote_id=quote_id, amount={"value": "400000", "currency": "KHR"}, **changes)


def quotes_counted(deps: Deps, corridor: str, outcome: str) -> float:
    return deps.metrics.fx.quotes.labels(corridor, outcome)._value.get()


def sample_stored_quote(quote_id: str = "Q" + "a" * 24) -> StoredQuote:
    khr, thb = CURRENCIES["KHR"], CURRENCIES["THB"]
    quote = FxQuote(
        quote_id=quote_id, fixed_side=FixedSide.SOURCE, source=Money(400000_00, khr), target=Money(3315_00, thb),
        mid_rate=Decimal("0.0083298625"), customer_rate=Decimal("0.0082882131"), spread_bps=50, fee=Money(0, khr),
        rate_source="static:THB/KHR", rate_as_of=T0, created_at=T0, expires_at=T0 + timedelta(seconds=600),
    )
    return StoredQuote(quote, ACLB, "KH-TH")


# ---------------------------------------------------------------- issuing


async def test_a_quote_is_stored_with_its_terms_and_an_expiry_of_the_corridors_validity(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    (answer,) = (await issue(uow, deps, ask())).answers
    (stored,) = uow.state.quotes.values()
    assert answer.state == "QUOTED" and answer.quote_id == stored.quote.quote_id
    assert (stored.participant, stored.corridor, stored.used_by_uetr) == (ACLB, "KH-TH", None)
    assert answer.expires_at == deps.clock() + timedelta(seconds=600)  # corridors.toml quote_validity_s
    assert (answer.source_amount.value, answer.source_amount.currency) == ("400000", "KHR")
    assert answer.target_amount.currency == "THB" and Decimal(answer.target_amount.value) > 0
    assert answer.rate_source and answer.mid and answer.spread_bps == 50
    assert quotes_counted(deps, "KH-TH", "issued") == 1


async def test_the_effective_rate_is_credited_over_debited_fee_included(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    (answer,) = (await issue(uow, deps, ask(corridor="KH-LA"))).answers  # KH-LA charges KHR 100
    assert (answer.fee.value, answer.debit_amount.value) == ("100", "400100")
    exact = Decimal(answer.target_amount.value) / Decimal("400100")
    assert Decimal(answer.effective_rate) <= exact < Decimal(answer.effective_rate) + Decimal("1e-10")
    assert Decimal(answer.effective_rate) < Decimal(answer.rate)  # the fee makes it worse than the rate


async def test_the_corridors_bps_fee_comes_on_top_of_the_fixed_fee_rounded_for_the_switch(deps: Deps) -> None:
    corridor = deps.config.corridor("KH-LA").model_copy(update={"fee_bps": 25})
    config = deps.config.model_copy(update={"corridors": tuple(corridor if c.id == "KH-LA" else c for c in deps.config.corridors)})
    config.__dict__.pop("_corridors_by_id", None)  # a cached look-up model_copy carried over
    deps.config = config
    uow = FakeUnitOfWork()
    (answer,) = (await issue(uow, deps, ask(corridor="KH-LA", source_amount={"value": "400001", "currency": "KHR"}))).answers
    # 100 fixed + 25 bps of 400001 = 100 + 1000.0025, rounded up to whole riel: 1101
    assert (answer.fee.value, answer.fee_bps) == ("1101", 25)


async def test_a_quote_for_a_fixed_target_amount_credits_exactly_that(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    (answer,) = (await issue(uow, deps, ask(source_amount=None, target_amount={"value": "3000.00", "currency": "THB"},
                                            source_currency="KHR"))).answers
    assert (answer.fixed, answer.target_amount.value) == ("target", "3000.00")
    assert Decimal(answer.source_amount.value) * Decimal(answer.rate) >= Decimal("3000.00")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"corridor": "KH-XX"}, "AG01"),  # no such corridor
        ({"corridor": "KH-VN", "source_amount": {"value": "10.00", "currency": "USD"}}, "CURR"),  # KH-VN takes KHR only
        ({"source_amount": {"value": "9000000", "currency": "KHR"}}, "AM02"),  # over the corridor maximum
        ({"participant": "ZZZZKHPPXXX"}, "RC01"),
    ],
)
async def test_a_quote_the_switch_will_not_give_is_refused_with_a_reason_and_counted(
    deps: Deps, changes: dict[str, Any], code: str
) -> None:
    uow = FakeUnitOfWork()
    (answer,) = (await issue(uow, deps, ask(**changes))).answers
    assert (answer.state, answer.reason_code) == ("REFUSED", code)
    assert not uow.state.quotes
    label = changes.get("corridor", "KH-TH") if changes.get("corridor") != "KH-XX" else "other"
    assert quotes_counted(deps, label, "refused") == 1


async def test_a_stale_rate_stops_quoting_its_pair(deps: Deps, clock: FakeClock) -> None:
    clock.advance(2 * 86400)  # past the static table's max age (fx.toml static_max_age_s) and any stamp
    uow = FakeUnitOfWork()
    fresh_book = deps.quoter.book
    stale = [replace(r, as_of=clock() - timedelta(days=2), max_age_s=86400) for r in fresh_book.in_force()]
    from fx.quote import Quoter
    from fx.rates import RateBook

    deps.quoter = Quoter(RateBook(pivot="USD", stale_after_s=300, rates=stale))
    (answer,) = (await issue(uow, deps, ask())).answers
    assert (answer.state, answer.reason_code) == ("REFUSED", "MS03")
    assert "stale" in (answer.reason or "")


async def test_a_kafka_quote_request_is_answered_on_the_quotes_topic_once_per_request_id(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    request = QuoteRequestV1.model_validate(
        {"version": 1, "type": "quote", "request_id": "QR-1", **ask().model_dump(mode="json", exclude_none=True)}
    )
    first = await issue(uow, deps, QuoteAsk(request, "QR-1"))
    again = await issue(uow, deps, QuoteAsk(request, "QR-1"))  # a redelivery
    assert len(uow.state.quotes) == 1
    assert first.answers[0].quote_id == again.answers[0].quote_id
    rows = [r for r in uow.outbox.values() if r.destination == deps.config.kafka.quotes_topic]
    assert len(rows) == 1 and rows[0].key == f"{ACLB}/QR-1"
    assert again.counts == {"replayed": 1} and not again.status_outbox


async def test_one_request_twice_in_a_batch_is_answered_once(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    request = QuoteRequestV1.model_validate(
        {"version": 1, "type": "quote", "request_id": "QR-2", **ask().model_dump(mode="json", exclude_none=True)}
    )
    out = await issue(uow, deps, QuoteAsk(request, "QR-2"), QuoteAsk(request, "QR-2"))
    assert len(uow.state.quotes) == 1 and len(out.status_outbox) == 1
    assert out.answers[0].quote_id == out.answers[1].quote_id


async def test_an_operators_quote_is_audited(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await issue(uow, deps, QuoteAsk(ask(participant=ABAA), None, "alice"))
    (entry,) = uow.state.audit
    assert (entry.actor, entry.action, entry.subject) == ("operator alice", "fx.quote", f"{ABAA}/KH-TH")


# ---------------------------------------------------------------- admission with a quote


async def test_an_instruction_with_its_quote_is_priced_exactly_as_quoted_and_uses_it_up(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    (answer,) = (await issue(uow, deps, ask())).answers
    deps.clock.advance(599)  # type: ignore[attr-defined]
    out = await admit(uow, deps, with_quote(answer.quote_id))
    (payment,) = uow.payments.values()
    assert out.counts == {"admitted": 1}
    assert (payment.quote_id, payment.fx_rate) == (answer.quote_id, answer.rate)
    assert payment.target.to_text(2) == answer.target_amount.value and payment.fee.to_text(0) == answer.fee.value
    stored = uow.state.quotes[answer.quote_id]
    assert (stored.used_by_uetr, stored.used_by_instruction, stored.version) == (payment.uetr, "INS-0001", 2)
    assert quotes_counted(deps, "KH-TH", "honoured") == 1
    event = events.status_event(payment, now=deps.clock())  # what the participant hears of it
    assert (event.quote_id, event.effective_rate) == (answer.quote_id, answer.effective_rate)


async def test_a_quote_is_honoured_even_after_its_rate_moved(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    (answer,) = (await issue(uow, deps, ask())).answers
    book = deps.quoter.book
    usd_thb = next(r for r in book.in_force() if (r.base, r.quote) == ("THB", "KHR"))
    book.update([replace(usd_thb, mid=usd_thb.mid * 2, as_of=deps.clock() + timedelta(seconds=1))])
    try:
        await admit(uow, deps, with_quote(answer.quote_id))
    finally:
        book.update([replace(usd_thb, as_of=deps.clock() + timedelta(seconds=2))])  # the shipped book is shared
    (payment,) = uow.payments.values()
    assert payment.target.to_text(2) == answer.target_amount.value


@pytest.mark.parametrize(
    ("changes", "code", "outcome"),
    [
        ({"amount": {"value": "400001", "currency": "KHR"}}, "AM09", "mismatched"),
        ({"corridor": "KH-LA", "creditor": PARTNER_SAMPLES["lapnet"]["instruction_creditor"]}, "AG01", "mismatched"),
        ({"participant": ABAA, "debtor": {"name": "Sok Dara", "account": "sok_dara@abaa", "currency": "KHR"}}, "AG01", "mismatched"),
        ({"quote_id": "Q" + "0" * 24}, "AG01", "mismatched"),  # unknown
    ],
)
async def test_an_instruction_that_does_not_match_its_quote_is_refused(
    deps: Deps, changes: dict[str, Any], code: str, outcome: str
) -> None:
    uow = FakeUnitOfWork()
    (answer,) = (await issue(uow, deps, ask())).answers
    doc = with_quote(answer.quote_id)
    doc.update(changes)
    out = await admit(uow, deps, doc)
    (decision,) = out.admissions.values()
    assert decision[1] == code, decision
    assert not uow.payments and uow.state.quotes[answer.quote_id].used_by_uetr is None
    assert quotes_counted(deps, doc["corridor"], outcome) == 1


async def test_an_expired_quote_is_refused_with_tm01(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork()
    (answer,) = (await issue(uow, deps, ask())).answers
    clock.advance(600)  # expired from expires_at on
    out = await admit(uow, deps, with_quote(answer.quote_id))
    assert list(out.admissions.values())[0][1] == "TM01"
    assert quotes_counted(deps, "KH-TH", "expired") == 1


async def test_a_quote_used_once_refuses_a_second_instruction_with_dupl(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    (answer,) = (await issue(uow, deps, ask())).answers
    await admit(uow, deps, with_quote(answer.quote_id))
    out = await admit(uow, deps, with_quote(answer.quote_id, instruction_id="INS-0002"))
    assert out.admissions[(ACLB, "INS-0002")][1] == "DUPL"
    assert len(uow.payments) == 1 and quotes_counted(deps, "KH-TH", "used") == 1


async def test_two_instructions_with_one_quote_in_one_batch_pay_once(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    (answer,) = (await issue(uow, deps, ask())).answers
    out = await admit(uow, deps, with_quote(answer.quote_id), with_quote(answer.quote_id, instruction_id="INS-0002"))
    assert out.admissions[(ACLB, "INS-0001")][0] is not None
    assert out.admissions[(ACLB, "INS-0002")][1] == "DUPL"
    assert len(uow.payments) == 1


async def test_marking_a_quote_used_is_conditional_so_a_second_user_loses_the_race() -> None:
    uow = FakeUnitOfWork()
    sq = sample_stored_quote()
    await uow.quotes_add([sq])
    await uow.quotes_use([(sq.quote.quote_id, 1, "uetr-a", "INS-A", sq.quote.created_at)])
    with pytest.raises(ConcurrentUpdate):  # the other replica read version 1 too
        await uow.quotes_use([(sq.quote.quote_id, 1, "uetr-b", "INS-B", sq.quote.created_at)])
    assert uow.state.quotes[sq.quote.quote_id].used_by_uetr == "uetr-a"


class CountingUnitOfWork(FakeUnitOfWork):
    """The fake, counting quote reads (to show admission without a quote makes none)."""

    quote_reads = 0

    async def quotes_get(self, quote_ids):  # type: ignore[no-untyped-def]
        self.quote_reads += 1
        return await super().quotes_get(quote_ids)


async def test_admission_without_a_quote_reads_no_quote(deps: Deps) -> None:
    uow = CountingUnitOfWork()
    await admit(uow, deps, sample_instruction(), sample_instruction(instruction_id="INS-0002"))
    assert len(uow.payments) == 2 and uow.quote_reads == 0


def test_the_fee_leg_is_in_the_source_currency() -> None:
    from fx.quote import fee_for
    from switch.domain.money import CURRENCIES

    fee = fee_for(Money(400_00, CURRENCIES["USD"]), Money(3, CURRENCIES["USD"]), 25, "ROUND_UP")
    assert fee == Money(3 + 100, CURRENCIES["USD"])  # 0.03 + 25 bps of 400.00 (1.00)


# ---------------------------------------------------------------- pain.001: the quote as the FX contract


def test_a_pain001_names_its_quote_as_the_transactions_fx_contract(schemas: Any) -> None:
    from datetime import datetime, timezone

    from iso20022 import pain001
    from iso20022.parsing import parse_untrusted
    from switch import config as config_mod
    from switch.entrypoints.pain001_edge import read_pain001
    from switch.tools.pain001_samples import pain001_from_instructions
    from tests.unit.edge_kit import consumer_record

    body = pain001_from_instructions(
        [sample_instruction(instruction_id="P1", quote_id="Q" + "b" * 24), sample_instruction(instruction_id="P2")],
        message_id="MSG-Q", created_at=datetime(2026, 11, 28, tzinfo=timezone.utc), schemas=schemas,  # XSD-valid
    )
    assert b"<XchgRateInf><CtrctId>Q" + b"b" * 24 + b"</CtrctId></XchgRateInf>" in body
    (first, second) = pain001.all_transactions(pain001.parse(parse_untrusted(body)))
    assert (first.exchange_contract_id, second.exchange_contract_id) == ("Q" + "b" * 24, None)
    read = read_pain001(consumer_record(body), schemas, config_mod.load(env={}), {})
    assert [i.instruction.quote_id for i in read.items] == ["Q" + "b" * 24, None]


async def test_an_instruction_quoted_on_the_spot_with_a_stale_rate_is_refused_ms03_and_counted(deps: Deps) -> None:
    from fx.quote import Quoter
    from fx.rates import RateBook

    old = [replace(r, as_of=deps.clock() - timedelta(seconds=301), max_age_s=None) for r in deps.quoter.book.in_force()]
    deps.quoter = Quoter(RateBook(pivot="USD", stale_after_s=300, rates=old))
    out = await admit(FakeUnitOfWork(), deps, sample_instruction())
    assert list(out.admissions.values())[0][1] == "MS03"
    assert quotes_counted(deps, "KH-TH", "refused") == 1
