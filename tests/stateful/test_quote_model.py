"""FX quotes asked first (issue 11) under random interleavings, against a simple model.

The REAL handlers (issue_quotes, accept_instructions) run through the REAL MessageBus on the fake
store. The machine plays participants asking quotes and sending instructions that name them
(right or wrong amount, own or another's quote, one quote several times, unknown ids) while the
clock moves. The model remembers each quote's terms, its expiry and whether an instruction has
used it; every admission decision is compared with what the model predicts, and the invariants
check the store: a quote pays at most one payment, and that payment carries the quote's terms.

More examples: MEKONG_STATEFUL_EXAMPLES=1000 (default 25 in the suite).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from switch.contracts import QuoteAskV1
from switch.metrics import Metrics
from switch.service.bus import MessageBus
from switch.service.handlers import AcceptInstructions, Outcome
from switch.service.quotes import IssueQuotes, QuoteAsk
from tests.factories import sample_instruction
from tests.fakes import FakeClock, FakeStore, deps_from_config, parsed_instruction
from tests.stateful.test_switch_model import _schemas

PARTICIPANTS = {"ACLBKHPPXXX": "aclb", "ABAAKHPPXXX": "abaa"}

settings.register_profile(
    "quote-model",
    max_examples=int(os.environ.get("MEKONG_STATEFUL_EXAMPLES", "25")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class Quoted:
    quote_id: str
    participant: str
    amount: str  # the fixed source amount, KHR
    target: str
    expires_at: datetime
    used_by: str | None = None  # the instruction id that used it


class QuoteModel(RuleBasedStateMachine):
    quotes = Bundle("quotes")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.deps = deps_from_config(_schemas(), self.clock, partners=("promptpay",))
        self.store = FakeStore()
        self.bus = MessageBus(self.store, self.deps, on_commit=lambda _o: None, metrics=Metrics())  # type: ignore[arg-type]
        self.model: dict[str, Quoted] = {}
        self.sent = 0

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 10.0))

    def teardown(self) -> None:
        self.loop.close()

    @rule(target=quotes, participant=st.sampled_from(sorted(PARTICIPANTS)), amount=st.integers(min_value=1, max_value=4000))
    def ask(self, participant: str, amount: int) -> str:
        ask = QuoteAskV1.model_validate(
            {"participant": participant, "corridor": "KH-TH", "source_amount": {"value": str(amount * 100), "currency": "KHR"}}
        )
        out = self._run(self.bus.handle(IssueQuotes([QuoteAsk(ask)])))
        (answer,) = out.answers
        assert answer.state == "QUOTED"
        assert answer.quote_id not in self.model
        self.model[answer.quote_id] = Quoted(answer.quote_id, participant, answer.source_amount.value,
                                             answer.target_amount.value, answer.expires_at)
        return answer.quote_id

    @rule(seconds=st.sampled_from([1, 60, 300, 599, 600]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule(quote_id=st.one_of(quotes, st.just("Q" + "0" * 24)), own=st.booleans(), exact=st.booleans(), copies=st.integers(1, 2))
    def pay(self, quote_id: str, own: bool, exact: bool, copies: int) -> None:
        q = self.model.get(quote_id)
        owner = q.participant if q is not None else "ACLBKHPPXXX"
        participant = owner if own else next(p for p in PARTICIPANTS if p != owner)
        amount = q.amount if q is not None else "100"
        if not exact:
            amount = str(int(amount) + 1)
        docs = []
        for _ in range(copies):  # several instructions naming it in one batch
            self.sent += 1
            docs.append(sample_instruction(
                instruction_id=f"I{self.sent}", participant=participant, quote_id=quote_id,
                debtor={"name": "Sok Dara", "account": f"sok_dara@{PARTICIPANTS[participant]}", "currency": "KHR"},
                amount={"value": amount, "currency": "KHR"},
            ))
        items = [parsed_instruction(d, source_ref=f"mekong.instructions:0:{d['instruction_id']}") for d in docs]
        out: Outcome = self._run(self.bus.handle(AcceptInstructions(items)))
        now = self.clock()
        for doc in docs:
            uetr, code, _ = out.admissions[(participant, doc["instruction_id"])]
            if q is None or not own:
                expected = "AG01"
            elif q.used_by is not None:
                expected = "DUPL"
            elif now >= q.expires_at:
                expected = "TM01"
            elif not exact:
                expected = "AM09"
            else:
                expected = None
            assert code == expected, (doc["instruction_id"], code, expected)
            event(f"pay: {expected or 'honoured'}")
            if expected is None:
                assert uetr is not None
                q.used_by = doc["instruction_id"]  # type: ignore[union-attr]

    @invariant()
    def a_quote_pays_at_most_one_payment_with_its_own_terms(self) -> None:
        state = self.store.state
        by_quote: dict[str, list[Any]] = {}
        for p in state.payments.values():
            if p.quote_id in self.model:
                by_quote.setdefault(p.quote_id, []).append(p)
        for quote_id, paid in by_quote.items():
            q = self.model[quote_id]
            assert len(paid) == 1
            (p,) = paid
            assert (p.instruction_id, p.participant) == (q.used_by, q.participant)
            assert (p.source.to_text(0), p.target.to_text(2)) == (q.amount, q.target)
            stored = state.quotes[quote_id]
            assert (stored.used_by_uetr, stored.used_by_instruction) == (p.uetr, q.used_by)
        for quote_id, q in self.model.items():  # unused in the model: unused in the store
            if q.used_by is None:
                assert state.quotes[quote_id].used_by_uetr is None


QuoteModel.TestCase.settings = settings(settings.get_profile("quote-model"))
TestQuoteModel = QuoteModel.TestCase
