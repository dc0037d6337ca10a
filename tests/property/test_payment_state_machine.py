"""A payment under random partner statuses, timeouts, duplicates, send acks and post-completion
events, driven through the domain functions the way the handlers use them, against a model
written out by hand from DESIGN's lifecycle (STYLE §3, §10)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from switch.domain.errors import InvariantViolation
from switch.domain.payment import (
    REASON_REQUIRED,
    TERMINAL_STATES,
    TRANSITIONS,
    HistoryEntry,
    Payment,
    PaymentState,
    StatusDisposition,
    classify_partner_status,
    initial_history,
    transition,
)
from switch.service.operations import MARKABLE
from tests.factories import sample_payment

S = PaymentState
D = StatusDisposition
START = datetime(2025, 3, 10, 9, 30, tzinfo=timezone(timedelta(hours=7)))
TIMEOUT_REASON = "AB06"

partner_statuses = st.sampled_from([S.ACCEPTED, S.COMPLETED, S.REJECTED])
reject_reasons = st.sampled_from(["AC01", "AC04", "AM04", "BE23", "RR10", "AB05"])

# ---- the model: what each event should do, by hand, without TRANSITIONS or classify -------------
# A partner status moves the payment along this path (empty: record it and ignore it).
PARTNER_STATUS_PATH: dict[tuple[S, S], tuple[S, ...]] = {
    (S.QUOTED, S.ACCEPTED): (S.SUBMITTED, S.ACCEPTED),  # the pacs.002 overtook the send ack
    (S.QUOTED, S.COMPLETED): (S.SUBMITTED, S.COMPLETED),
    (S.QUOTED, S.REJECTED): (S.SUBMITTED, S.REJECTED),
    (S.SUBMITTED, S.ACCEPTED): (S.ACCEPTED,),
    (S.SUBMITTED, S.COMPLETED): (S.COMPLETED,),
    (S.SUBMITTED, S.REJECTED): (S.REJECTED,),
    (S.ACCEPTED, S.COMPLETED): (S.COMPLETED,),
    (S.ACCEPTED, S.REJECTED): (S.REJECTED,),
    (S.TIMED_OUT, S.ACCEPTED): (S.ACCEPTED,),  # a late answer resolves the investigation
    (S.TIMED_OUT, S.COMPLETED): (S.COMPLETED,),
    (S.TIMED_OUT, S.REJECTED): (S.REJECTED,),
}
SEND_ACK_FROM = {S.QUOTED}
TIMEOUT_FROM = {S.SUBMITTED, S.ACCEPTED}  # what the follow-up timer times out (QUOTED by way of SUBMITTED)
SETTLE_FROM = {S.COMPLETED}
# after completion (issue 9): returns in whole or in part, recalls, cancellations before the credit
RETURN_FROM = {S.COMPLETED, S.SETTLED, S.RECALL_PENDING, S.PARTIALLY_RETURNED}
RECALL_FROM = {S.COMPLETED, S.SETTLED, S.PARTIALLY_RETURNED}  # a recall opens (camt.056 sent)
RECALL_REFUSED_FROM = {S.RECALL_PENDING}  # refused or unanswered: back to COMPLETED
CANCEL_FROM = {S.QUOTED, S.SUBMITTED, S.ACCEPTED, S.TIMED_OUT}  # recalled before it left, or cancelled by the partner
MODEL_TERMINAL = {S.REJECTED, S.RETURNED, S.CANCELLED}
MARK_FROM = {S.TIMED_OUT}  # an operator records the outcome of a stuck payment (issue 11), nothing else


def _new_payment() -> Payment:
    return sample_payment(S.RECEIVED, created_at=START)


class PaymentLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = START
        self.payment = _new_payment()
        self.history: list[HistoryEntry] = [initial_history(self.payment)]
        self.last_status: tuple[S, str | None] | None = None
        self.ignored: dict[D, int] = {D.LATE: 0, D.DUPLICATE: 0}
        # the model
        self.model_state = S.RECEIVED
        self.model_reason: str | None = None
        self.model_moves = 0
        self.model_ignored: dict[D, int] = {D.LATE: 0, D.DUPLICATE: 0}
        self.first_terminal: S | None = None
        self.model_settled = False  # the model: SETTLED reached once (a refused recall goes back there)

    # ---- system under test: the domain functions, used as the handlers use them --------------
    def _now(self) -> datetime:
        self.clock += timedelta(milliseconds=250)
        return self.clock

    def _move(self, target: S, reason_code: str | None = None, detail: str | None = None) -> None:
        before = self.payment
        self.payment, entry = transition(before, target, now=self._now(), reason_code=reason_code, detail=detail)
        assert entry.from_state is before.state and entry.to_state is target
        assert entry.reason_code == reason_code and entry.uetr == before.uetr
        self.history.append(entry)

    def _model_move(self, path: tuple[S, ...], reason: str | None = None) -> None:
        for state in path:
            self.model_state = state
            self.model_settled = self.model_settled or state is S.SETTLED
            self.model_moves += 1
        if self.model_state in {S.REJECTED, S.TIMED_OUT, S.RETURNED, S.CANCELLED, S.RECALL_PENDING, S.PARTIALLY_RETURNED}:
            self.model_reason = reason
        if self.first_terminal is None and self.model_state in MODEL_TERMINAL:
            self.first_terminal = self.model_state

    def _partner_status(self, target: S, reason: str | None) -> None:
        expected_path = PARTNER_STATUS_PATH.get((self.model_state, target), ())
        expected = D.APPLY if expected_path else (D.DUPLICATE if self.model_state is target else D.LATE)
        disposition = classify_partner_status(self.payment.state, target)
        assert disposition is expected, (self.payment.state, target)
        if disposition is D.APPLY:
            if self.payment.state is S.QUOTED:
                self._move(S.SUBMITTED, detail="implied by the partner's status")
            self._move(target, reason_code=reason)
        else:
            self.ignored[disposition] += 1
        # the model
        if expected_path:
            self._model_move(expected_path, reason)
        else:
            self.model_ignored[expected] += 1

    @initialize()
    def quote(self) -> None:
        self._move(S.QUOTED, detail="quote Q0123456789abcdef01234567")
        self._model_move((S.QUOTED,))

    @rule()
    def send_acknowledged(self) -> None:
        if self.payment.state is S.QUOTED:  # the send acknowledgement (or a status that overtook it)
            self._move(S.SUBMITTED)
        if self.model_state in SEND_ACK_FROM:
            self._model_move((S.SUBMITTED,))

    @rule(status=partner_statuses, reason=reject_reasons)
    def partner_status(self, status: S, reason: str) -> None:
        code = reason if status is S.REJECTED else None
        self.last_status = (status, code)
        self._partner_status(status, code)

    @precondition(lambda self: self.last_status is not None)
    @rule()
    def partner_status_again(self) -> None:
        assert self.last_status is not None
        self._partner_status(*self.last_status)

    @rule()
    def sla_expired(self) -> None:
        if self.payment.state in (S.SUBMITTED, S.ACCEPTED):  # the follow-up timer's selection
            self._move(S.TIMED_OUT, reason_code=TIMEOUT_REASON)
        if self.model_state in TIMEOUT_FROM:
            self._model_move((S.TIMED_OUT,), TIMEOUT_REASON)

    def _after_completion(self, target: S, allowed_in_model: set[S], reason: str | None) -> None:
        if target in TRANSITIONS[self.payment.state]:
            self._move(target, reason_code=reason)
        else:
            try:
                transition(self.payment, target, now=self.clock, reason_code=reason)
            except InvariantViolation:
                pass
            else:
                raise AssertionError(f"{self.payment.state} -> {target} was accepted off the table")
        if self.model_state in allowed_in_model:
            self._model_move((target,), reason)

    @rule()
    def settlement_matched(self) -> None:
        # the reconciliation settles a COMPLETED payment only (store payments_settle); RECALL_PENDING ->
        # SETTLED is the recall's way back, not a settlement's
        if self.payment.state is S.COMPLETED:
            self._move(S.SETTLED)
        if self.model_state in SETTLE_FROM:
            self._model_move((S.SETTLED,))

    @rule(reason=st.sampled_from(["AC04", "MD06"]))
    def returned(self, reason: str) -> None:
        self._after_completion(S.RETURNED, RETURN_FROM, reason)

    @rule(reason=st.sampled_from(["AC04", "CUST"]))
    def partly_returned(self, reason: str) -> None:
        self._after_completion(S.PARTIALLY_RETURNED, RETURN_FROM, reason)

    @rule(reason=st.sampled_from(["DUPL", "FRAD", "TECH", "CUST", "AM09"]))
    def recalled(self, reason: str) -> None:
        self._after_completion(S.RECALL_PENDING, RECALL_FROM, reason)

    @rule()
    def recall_refused_or_unanswered(self) -> None:
        # the recall's answer (or its deadline) finds it open: back to COMPLETED, or to SETTLED when
        # it had been settled (issue 10: its cycle matched it)
        settled = S.SETTLED in {h.to_state for h in self.history}
        if self.payment.state is S.RECALL_PENDING:
            self._move(S.SETTLED if settled else S.COMPLETED)
        if self.model_state in RECALL_REFUSED_FROM:
            self._model_move((S.SETTLED if self.model_settled else S.COMPLETED,))

    @rule(reason=st.sampled_from(["DUPL", "CUST"]))
    def cancelled(self, reason: str) -> None:
        self._after_completion(S.CANCELLED, CANCEL_FROM, reason)

    @rule(outcome=st.sampled_from([S.REJECTED, S.COMPLETED, S.CANCELLED, S.SETTLED]), reason=st.sampled_from(["AB05", "AC04"]))
    def operator_marked(self, outcome: S, reason: str) -> None:
        # what mark_payment allows (operations.MARKABLE); the model says TIMED_OUT -> REJECTED or COMPLETED
        reason_code = reason if outcome is S.REJECTED else None
        if outcome in MARKABLE.get(self.payment.state, frozenset()):
            self._move(outcome, reason_code=reason_code, detail="marked by operator alice: desk says so")
        if self.model_state in MARK_FROM and outcome in {S.REJECTED, S.COMPLETED}:
            self._model_move((outcome,), reason_code)

    # ---- invariants ------------------------------------------------------------------------
    @invariant()
    def state_follows_the_model(self) -> None:
        assert self.payment.state is self.model_state
        assert self.ignored == self.model_ignored

    @invariant()
    def terminal_stays_terminal(self) -> None:
        if self.first_terminal is not None:
            assert self.payment.state is self.first_terminal
            assert self.payment.state in TERMINAL_STATES

    @invariant()
    def version_counts_every_applied_transition(self) -> None:
        applied = len(self.history) - 1  # the first row is the admission
        assert applied == self.model_moves
        assert self.payment.version == 1 + applied

    @invariant()
    def every_state_reached_is_allowed_from_the_previous_one(self) -> None:
        assert self.history[0].from_state is None and self.history[0].to_state is S.RECEIVED
        for previous, entry in zip(self.history, self.history[1:]):
            assert entry.from_state is previous.to_state
            assert entry.from_state is not None and entry.to_state in TRANSITIONS[entry.from_state]
            assert entry.at > previous.at
        assert self.history[-1].to_state is self.payment.state

    @invariant()
    def rejected_always_has_a_reason_code(self) -> None:
        if self.payment.state is S.REJECTED:
            assert self.payment.reason_code
        if self.payment.state in REASON_REQUIRED:
            assert self.payment.reason_code == self.model_reason


PaymentLifecycle.TestCase.settings = settings(
    max_examples=150, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestPaymentLifecycle = PaymentLifecycle.TestCase
