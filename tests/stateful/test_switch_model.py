"""The switch's core under random interleavings, against a simple model (STYLE §10, A6).

The REAL handlers run through the REAL MessageBus (registry, retries, group commit) on the fake
store; nothing of the glue is re-implemented here. The machine plays the world around them:
participants sending instructions (new, resent, reused ids), partners answering with pacs.002
(applied, duplicated, late, resent under the same message id), the outbox relay delivering rows
(acknowledged, refused, failed with or without ambiguity, past the deadline; its decision is the
relay's own), the relay's poller claiming due rows, the follow-up timer, inbound payments and
their participants' replies, the clock, and crashes: the process losing everything in memory,
and a transaction dying in the middle (which must leave nothing).

The model only remembers what the world did (which instructions were sent, which deliveries may
have reached a partner) and what it has seen final; the invariants compare the store with it.

More examples: MEKONG_STATEFUL_EXAMPLES=1000 (default 25 in the suite, about 2 s); see what the
runs went through with --hypothesis-show-statistics.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable
from dataclasses import replace
from functools import lru_cache
from typing import Any, TypeVar

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from adapters.inbound import InboundTransfer
from adapters.transport import SendOutcome
from iso20022.model import Amount
from iso20022.schemas import SchemaSet, default_cache_dir, default_schema_dir, default_shared_dir, fetch
from switch import limits
from switch.contracts import InboundReplyV1
from switch.domain.payment import FINAL_STATES, TERMINAL_STATES, TRANSITIONS, Direction, PaymentState
from switch.metrics import Metrics
from switch.service.bus import MessageBus
from switch.service.follow_up import FollowUpPayments
from switch.service.handlers import AcceptInstructions, Outcome, RecordSendResults
from switch.service.inbound import AcceptInbound, ApplyInboundReplies
from switch.service.ports import Lease, OutboxMessage
from tests.factories import sample_partner_instruction
from tests.fakes import (
    FakeClock,
    FakeStore,
    SimulatedCrash,
    deps_from_config,
    failed_round,
    parsed_instruction,
    partner_statuses,
    status_events,
)

S = PaymentState
T = TypeVar("T")
PARTNERS = ("promptpay", "lapnet")
LEASE = Lease("replica-a", limits.outbox_lease_s)
STEP_S_MAX = 10.0  # one bus call; far more means a handler or the group loop is stuck

settings.register_profile(
    "switch-model",
    max_examples=int(os.environ.get("MEKONG_STATEFUL_EXAMPLES", "25")),
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@lru_cache(maxsize=1)
def _schemas() -> SchemaSet:
    schema_dir = default_schema_dir()
    fetch(schema_dir, shared_dir=default_shared_dir(), cache_dir=default_cache_dir(), progress=lambda _line: None)
    return SchemaSet(schema_dir)


def _uetr(n: int) -> str:
    """A deterministic UUIDv4 (the machine must replay the same way when Hypothesis shrinks)."""
    return f"{n:08x}-0000-4000-8000-{n:012x}"


def _transfer(uetr: str, n: int) -> InboundTransfer:
    return InboundTransfer(
        uetr=uetr, end_to_end_id=f"E{n:08d}", amount=Amount("40000", "KHR"), instructed_amount=None, exchange_rate=None,
        debtor_name="SOMCHAI JAIDEE", debtor_account="1234567890", debtor_agent="014", creditor_name="Sok Dara",
        creditor_account="sok_dara@aclb", creditor_proxy_type=None, creditor_proxy=None, remittance=None,
    )


class SwitchModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self._n = 0
        deps = deps_from_config(_schemas(), self.clock, partners=PARTNERS)
        self.deps = replace(deps, new_uetr=lambda: _uetr(self._next()))
        self.store = FakeStore(lease=LEASE)
        self.bus = MessageBus(self.store, self.deps, on_commit=self._handoff, metrics=Metrics())  # type: ignore[arg-type]
        self.group_tasks = [self.loop.create_task(run()) for run in self.bus.tasks().values()]
        # the relay's memory: rows handed to it after a commit or claimed, by id (lost in a crash)
        self.held: dict[int, OutboxMessage] = {}
        # the world, as the model remembers it
        self.sent: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}  # key -> (the payload that stands, its source ref)
        self.admitted: dict[tuple[str, str], str] = {}  # key -> uetr
        self.refused: dict[tuple[str, str], str] = {}  # key -> reason code
        self.inbound: list[str] = []  # inbound uetrs booked
        self.status_messages: list[tuple[str, str]] = []  # (partner, message id) of pacs.002 sent
        self.maybe_reached: set[str] = set()  # uetrs a delivery attempt may have brought to the partner
        self.final_seen: dict[str, PaymentState] = {}

    # ------------------------------------------------------------------ plumbing
    def _next(self) -> int:
        self._n += 1
        return self._n

    def _run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coro, STEP_S_MAX))

    def _handoff(self, outcome: Outcome) -> None:
        """The bus's on_commit: rows go to the relay's memory, as OutboxRelay.handoff does."""
        for row in [*outcome.partner_outbox, *outcome.status_outbox]:
            if row.id is not None:
                self.held[row.id] = row

    def _count(self, what: str, out: Outcome) -> None:
        """What happened, for --hypothesis-show-statistics (is every path taken?)."""
        for key in sorted(k for k, n in out.counts.items() if n and k != "claimed"):
            event(f"{what}: {key}")

    def _outbound(self) -> list[str]:
        return sorted(self.admitted.values())

    def teardown(self) -> None:
        for task in self.group_tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*self.group_tasks, return_exceptions=True))
        self.loop.close()

    # ------------------------------------------------------------------ participants: instructions
    def _instruct(self, doc: dict[str, Any], source_ref: str) -> None:
        key = (doc["participant"], doc["instruction_id"])
        stood = self.sent.get(key)
        payments_before = len(self.store.state.payments)
        out = self._run(self.bus.handle(AcceptInstructions([parsed_instruction(doc, source_ref=source_ref)])))
        self._count("admission", out)
        uetr, reason_code, _ = out.admissions[key]
        if stood is None:
            self.sent[key] = (doc, source_ref)
            if uetr is not None:
                self.admitted[key] = uetr
                assert len(self.store.state.payments) == payments_before + 1
            else:
                assert reason_code is not None
                self.refused[key] = reason_code
            return
        assert len(self.store.state.payments) == payments_before, "an instruction id never gets a second payment"
        if stood[0] != doc:
            assert out.counts == {"conflict": 1}
            assert (uetr, reason_code) == (None, "DUPL")
        else:
            assert out.counts == ({"redelivered": 1} if stood[1] == source_ref else {"replayed": 1})
            assert (uetr, reason_code) == (self.admitted.get(key), self.refused.get(key))

    @initialize(partner=st.sampled_from(PARTNERS))
    def first_instruction(self, partner: str) -> None:
        self.new_instruction(partner, refused=False)

    @rule(partner=st.sampled_from(PARTNERS), refused=st.booleans())
    def new_instruction(self, partner: str, refused: bool) -> None:
        n = self._next()
        changes: dict[str, Any] = {"instruction_id": f"INS-{n:05d}"}
        if refused:
            changes["corridor"] = "KH-XX"  # no such corridor: AG01
        self._instruct(sample_partner_instruction(partner, **changes), f"mekong.instructions:0:{n}")

    @precondition(lambda self: bool(self.sent))
    @rule(pick=st.integers(min_value=0), redelivery=st.booleans())
    def resend_instruction(self, pick: int, redelivery: bool) -> None:
        key = sorted(self.sent)[pick % len(self.sent)]
        doc, source_ref = self.sent[key]
        self._instruct(doc, source_ref if redelivery else f"mekong.instructions:1:{self._next()}")

    @precondition(lambda self: bool(self.sent))
    @rule(pick=st.integers(min_value=0))
    def reuse_instruction_id(self, pick: int) -> None:
        key = sorted(self.sent)[pick % len(self.sent)]
        doc, _ = self.sent[key]
        self._instruct({**doc, "remittance": f"other {self._next()}"}, f"mekong.instructions:2:{self._n}")

    # ------------------------------------------------------------------ partners: pacs.002
    @precondition(lambda self: bool(self.admitted))
    @rule(
        pick=st.integers(min_value=0),
        status=st.sampled_from([(S.ACCEPTED, None), (S.COMPLETED, None), (S.REJECTED, "AC04")]),
        resent_message=st.booleans(),
        lost_race=st.booleans(),
    )
    def partner_status(self, pick: int, status: tuple[PaymentState, str | None], resent_message: bool, lost_race: bool) -> None:
        # mostly our pacs.008s; sometimes a status naming an inbound payment (a partner must not
        # decide those: only the participant's reply or the AB05 deadline does)
        inbound = [u for u, p in sorted(self.store.state.payments.items()) if p.direction is Direction.INBOUND]
        uetrs = (inbound if inbound and pick % 5 == 0 else None) or self._outbound()
        uetr = uetrs[pick % len(uetrs)]
        before = self.store.state.payments[uetr]
        partner = before.partner
        earlier = [m for p, m in self.status_messages if p == partner]
        if resent_message and earlier:
            message_id = earlier[pick % len(earlier)]
        else:
            message_id = f"S{self._next():08d}"
            self.status_messages.append((partner, message_id))
        if lost_race:
            self.store.race_on(uetr)  # another writer first: the bus runs the group again
        self._count("pacs.002", self._run(self.bus.handle(partner_statuses(partner, message_id, (uetr, status[0], status[1])))))
        if before.state in FINAL_STATES or before.direction is Direction.INBOUND:
            assert self.store.state.payments[uetr] == before, "a final or inbound payment never moves by a partner status"

    # ------------------------------------------------------------------ the relay
    def _held(self, partner_rows: bool) -> list[OutboxMessage]:
        return [r for _, r in sorted(self.held.items()) if (r.kind == "partner") == partner_rows]

    def _live(self, row: OutboxMessage) -> bool:
        """As the relay checks before delivering: the lease is still this replica's."""
        return row.lease_until is None or row.lease_until >= self.clock()

    @precondition(lambda self: any(r.kind == "partner" for r in self.held.values()))
    @rule(
        pick=st.integers(min_value=0),
        outcome=st.sampled_from(list(SendOutcome)),
        earlier_attempt_ambiguous=st.booleans(),
    )
    def deliver(self, pick: int, outcome: SendOutcome, earlier_attempt_ambiguous: bool) -> None:
        rows = self._held(partner_rows=True)
        row = rows[pick % len(rows)]
        del self.held[row.id or 0]
        if not self._live(row):
            event("delivery: lease ran out in memory")
            return  # the relay drops it; the poller claims it again
        event(f"delivery: {outcome.value}")
        if outcome is SendOutcome.OK:
            self.maybe_reached.update(row.uetrs)
            cmd = RecordSendResults([row.id or 0], submitted_uetrs=row.uetrs)
        else:
            ambiguous = earlier_attempt_ambiguous and outcome is not SendOutcome.REFUSED
            if ambiguous or outcome in (SendOutcome.TIMEOUT, SendOutcome.DISCONNECTED, SendOutcome.SERVER_ERROR):
                self.maybe_reached.update(row.uetrs)
            cmd = failed_round(row, outcome, clock=self.clock, detail='{"reason_code": "AC03"}', ambiguous=ambiguous)
            for reason_code, _ in cmd.rejects.values():
                event(f"delivery: reject {reason_code}")
            if cmd.failures and cmd.failures[0].retry_at is not None:
                event("delivery: retry scheduled")
        self._run(self.bus.handle(cmd))

    @precondition(lambda self: any(r.kind != "partner" for r in self.held.values()))
    @rule()
    def publish_events(self) -> None:
        rows = [r for r in self._held(partner_rows=False) if self._live(r)]
        for row in self._held(partner_rows=False):
            del self.held[row.id or 0]
        if rows:
            self._run(self.bus.handle(RecordSendResults([r.id or 0 for r in rows])))

    @rule()
    def relay_polls(self) -> None:
        async def claim() -> list[OutboxMessage]:
            async with self.store.unit_of_work() as uow:
                return await uow.outbox_claim_due(self.clock(), limits.outbox_batch_max)

        for row in self._run(claim()):
            self.held[row.id or 0] = row

    # ------------------------------------------------------------------ timers and the clock
    @rule(seconds=st.sampled_from([1.0, 5.0, 15.0, 30.0, 46.0, 61.0, 300.0]), poller_runs=st.booleans())
    def time_passes(self, seconds: float, poller_runs: bool) -> None:
        """The clock moves; the relay's poller (every outbox_poll_s, far less than these steps)
        usually claims what came due meanwhile."""
        self.clock.advance(seconds)
        if poller_runs:
            self.relay_polls()

    @rule()
    def follow_up(self) -> None:
        self._count("follow-up", self._run(self.bus.handle(FollowUpPayments())))

    # ------------------------------------------------------------------ inbound
    @rule()
    def inbound_payment(self) -> None:
        n = self._next()
        uetr = _uetr(n)
        cmd = AcceptInbound("promptpay", f"P{n:08d}", "pacs.008.001.13", f"<pacs.008 {n}>".encode(), (_transfer(uetr, n),))
        self._run(self.bus.handle(cmd))
        assert self.store.state.payments[uetr].state is S.SUBMITTED
        self.inbound.append(uetr)

    @precondition(lambda self: bool(self.inbound))
    @rule(pick=st.integers(min_value=0), accept=st.booleans())
    def participant_replies(self, pick: int, accept: bool) -> None:
        uetr = self.inbound[pick % len(self.inbound)]
        before = self.store.state.payments[uetr]
        reply = InboundReplyV1.model_validate(
            {"version": 1, "uetr": uetr, "participant": before.participant, "decision": "ACCEPT" if accept else "REJECT",
             "reason_code": None if accept else "AC04"}
        )
        self._count("reply", self._run(self.bus.handle(ApplyInboundReplies([reply]))))
        if before.state in FINAL_STATES:
            assert self.store.state.payments[uetr] == before

    # ------------------------------------------------------------------ crashes
    @rule()
    def process_crashes(self) -> None:
        """Everything in memory is gone; only what was committed stays."""
        self.held.clear()

    @rule(at_write=st.integers(min_value=1, max_value=4), what=st.sampled_from(["instruction", "follow_up", "delivery"]))
    def transaction_dies_midway(self, at_write: int, what: str) -> None:
        before = self.store.state.copy()
        self.store.crash_next_transaction(at_write=at_write)
        try:
            if what == "instruction":
                self.new_instruction("promptpay", refused=False)
            elif what == "follow_up":
                self.follow_up()
            else:
                self.relay_polls()
        except SimulatedCrash:
            event(f"crash midway: {what}")
            assert self.store.state == before, "a transaction that died left something behind"

    # ------------------------------------------------------------------ invariants
    @invariant()
    def every_admitted_instruction_has_exactly_one_payment(self) -> None:
        state = self.store.state
        outbound = [p for p in state.payments.values() if p.direction is Direction.OUTBOUND]
        assert len(outbound) == len(self.admitted)
        for key, uetr in self.admitted.items():
            assert state.instructions[key].uetr == uetr
            p = state.payments[uetr]
            assert (p.participant, p.instruction_id) == key
        assert {k for k, r in state.instructions.items() if r.uetr is None} == set(self.refused)

    @invariant()
    def terminal_states_stay_terminal(self) -> None:
        for uetr, p in self.store.state.payments.items():
            seen = self.final_seen.get(uetr)
            if seen is not None:
                assert p.state is seen, f"{uetr}: {seen} -> {p.state}"
                assert seen not in TERMINAL_STATES or not TRANSITIONS[p.state]
            elif p.state in FINAL_STATES:
                self.final_seen[uetr] = p.state

    @invariant()
    def history_is_an_unbroken_chain_ending_in_the_current_state(self) -> None:
        last: dict[str, PaymentState | None] = {}
        for h in self.store.state.history:
            assert h.from_state == last.get(h.uetr), f"{h.uetr}: {last.get(h.uetr)} then {h.from_state} -> {h.to_state}"
            last[h.uetr] = h.to_state
        for uetr, p in self.store.state.payments.items():
            assert last.get(uetr) is p.state, uetr

    @invariant()
    def follow_ups_exactly_for_payments_not_final(self) -> None:
        for p in self.store.state.payments.values():
            if p.state in FINAL_STATES:
                assert p.follow_up_at is None, f"{p.uetr} is {p.state} and still followed up"
            else:
                assert p.follow_up_at is not None, f"{p.uetr} is {p.state} and never looked at again"

    @invariant()
    def ab07_only_for_payments_no_delivery_could_have_reached(self) -> None:
        for p in self.store.state.payments.values():
            if p.state is S.REJECTED and p.reason_code == "AB07":
                assert p.uetr not in self.maybe_reached, f"{p.uetr} rejected AB07 after an ambiguous or acknowledged delivery"

    @invariant()
    def status_events_are_consistent(self) -> None:
        events = status_events(self.store.state, self.deps)
        ids = [e["event_id"] for e in events]
        assert all(ids) and len(set(ids)) == len(ids), "every status event has an event id of its own"
        finals: Counter[tuple[str, str, str]] = Counter()
        final_state: dict[tuple[str, str, str], str] = {}
        for e in events:
            if e["type"] == "conflict":
                assert (e["final"], e["state"]) == (False, "CONFLICT")
                continue
            assert e["final"] == (e["state"] in {s.value for s in FINAL_STATES}), e
            key = (e["direction"], e["participant"], e["instruction_id"])
            if e["final"] and not e["replayed"]:
                finals[key] += 1
                final_state[key] = e["state"]
        assert not [k for k, n in finals.items() if n > 1], "at most one final status event per instruction"
        for e in events:
            key = (e["direction"], e["participant"], e["instruction_id"])
            if e["type"] == "status" and e["final"] and e["replayed"] and key in final_state:
                assert e["state"] == final_state[key], "a replay repeats the outcome"


SwitchModel.TestCase.settings = settings(settings.get_profile("switch-model"))
TestSwitchModel = SwitchModel.TestCase
