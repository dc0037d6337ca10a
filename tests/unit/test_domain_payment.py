"""The payment state table, transition() and classify_partner_status() (STYLE §3, DESIGN "Payment lifecycle")."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from tests.factories import sample_payment

from switch.domain.errors import InvariantViolation
from switch.domain.payment import (
    FINAL_STATES,
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

S = PaymentState
ICT = timezone(timedelta(hours=7))
CREATED_AT = datetime(2025, 3, 10, 9, 30, tzinfo=ICT)
NOW = CREATED_AT + timedelta(seconds=3)


def _payment(state: PaymentState = S.RECEIVED, *, version: int = 1, reason_code: str | None = None) -> Payment:
    return sample_payment(state, created_at=CREATED_AT, version=version, reason_code=reason_code)


ALLOWED = [(a, b) for a, targets in TRANSITIONS.items() for b in sorted(targets)]
FORBIDDEN = [(a, b) for a in S for b in S if b not in TRANSITIONS[a]]


def test_the_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(S)


def test_lifecycle_table_matches_the_design() -> None:
    returns = {S.RETURNED, S.PARTIALLY_RETURNED}
    assert TRANSITIONS == {
        S.RECEIVED: {S.QUOTED, S.REJECTED, S.HELD},  # held: a possible sanctions-list match (issue 12)
        S.HELD: {S.QUOTED, S.REJECTED},  # released by an operator (on its way), or rejected RR04
        S.QUOTED: {S.SUBMITTED, S.REJECTED, S.CANCELLED},  # recalled before it left
        S.SUBMITTED: {S.ACCEPTED, S.COMPLETED, S.REJECTED, S.TIMED_OUT, S.CANCELLED},  # the partner cancelled it
        S.ACCEPTED: {S.COMPLETED, S.REJECTED, S.TIMED_OUT, S.CANCELLED},
        S.TIMED_OUT: {S.ACCEPTED, S.COMPLETED, S.REJECTED, S.CANCELLED},
        S.COMPLETED: {S.SETTLED, S.RECALL_PENDING} | returns,
        S.SETTLED: {S.RECALL_PENDING} | returns,
        S.RECALL_PENDING: {S.COMPLETED, S.SETTLED} | returns,  # refused or unanswered: back to COMPLETED, or SETTLED once settled
        S.PARTIALLY_RETURNED: {S.RECALL_PENDING} | returns,  # another partial return is a move too
        S.REJECTED: set(),
        S.RETURNED: set(),
        S.CANCELLED: set(),
    }


def test_a_partner_status_never_moves_a_payment_past_its_outcome() -> None:
    """RECALL_PENDING -> COMPLETED is the recall's way back, never a late pacs.002's."""
    for state in (S.COMPLETED, S.SETTLED, S.RECALL_PENDING, S.PARTIALLY_RETURNED, S.RETURNED, S.CANCELLED):
        for target in (S.ACCEPTED, S.COMPLETED, S.REJECTED):
            assert classify_partner_status(state, target) in (StatusDisposition.LATE, StatusDisposition.DUPLICATE)
    assert classify_partner_status(S.RECALL_PENDING, S.COMPLETED) is StatusDisposition.LATE


@pytest.mark.parametrize(("source", "target"), ALLOWED, ids=[f"{a}->{b}" for a, b in ALLOWED])
def test_every_allowed_transition_moves_bumps_version_and_returns_history(source: PaymentState, target: PaymentState) -> None:
    reason = "AB06" if target in REASON_REQUIRED else None
    before = _payment(source, version=7)
    after, entry = transition(before, target, now=NOW, reason_code=reason, detail="why")
    assert after.state is target
    assert after.version == 8
    assert after.updated_at == NOW and after.created_at == CREATED_AT
    assert entry == HistoryEntry(before.uetr, source, target, reason, "why", NOW)
    assert before.state is source and before.version == 7  # the input is left untouched
    if target in REASON_REQUIRED:
        assert after.reason_code == reason
    # everything but state, reason, version and updated_at is carried over
    assert replace(after, state=source, reason_code=None, version=7, updated_at=CREATED_AT) == before


@pytest.mark.parametrize(("source", "target"), FORBIDDEN, ids=[f"{a}->{b}" for a, b in FORBIDDEN])
def test_a_move_off_the_table_raises_invariant_violation(source: PaymentState, target: PaymentState) -> None:
    with pytest.raises(InvariantViolation, match="is not allowed"):
        transition(_payment(source), target, now=NOW, reason_code="MS03")


@pytest.mark.parametrize(
    ("source", "target"),
    [(S.RECEIVED, S.SUBMITTED), (S.QUOTED, S.COMPLETED), (S.COMPLETED, S.REJECTED), (S.SETTLED, S.COMPLETED), (S.SUBMITTED, S.SUBMITTED)],
)
def test_notable_forbidden_moves_are_refused(source: PaymentState, target: PaymentState) -> None:
    with pytest.raises(InvariantViolation):
        transition(_payment(source), target, now=NOW, reason_code="MS03")


def test_terminal_states_are_exactly_those_without_exits() -> None:
    assert TERMINAL_STATES == {S.REJECTED, S.RETURNED, S.CANCELLED}
    assert TERMINAL_STATES <= FINAL_STATES


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES))
def test_terminal_states_have_no_exits(terminal: PaymentState) -> None:
    assert TRANSITIONS[terminal] == frozenset()
    for target in S:
        with pytest.raises(InvariantViolation):
            transition(_payment(terminal, reason_code="AC04"), target, now=NOW, reason_code="AC04")


@pytest.mark.parametrize(("source", "target"), [(S.RECEIVED, S.REJECTED), (S.SUBMITTED, S.REJECTED), (S.SUBMITTED, S.TIMED_OUT), (S.COMPLETED, S.RETURNED), (S.QUOTED, S.CANCELLED), (S.COMPLETED, S.RECALL_PENDING), (S.COMPLETED, S.PARTIALLY_RETURNED)])
@pytest.mark.parametrize("reason", [None, ""])
def test_a_state_that_needs_a_reason_code_refuses_a_move_without_one(source: PaymentState, target: PaymentState, reason: str | None) -> None:
    with pytest.raises(InvariantViolation, match="needs a reason code"):
        transition(_payment(source), target, now=NOW, reason_code=reason)


def test_rejected_keeps_the_partner_reason_code() -> None:
    moved, entry = transition(_payment(S.ACCEPTED), S.REJECTED, now=NOW, reason_code="AC04")
    assert moved.reason_code == "AC04" and entry.reason_code == "AC04"


def test_reject_after_timeout_replaces_the_timeout_reason() -> None:
    moved, _ = transition(_payment(S.TIMED_OUT, reason_code="AB06"), S.REJECTED, now=NOW, reason_code="AC04")
    assert moved.reason_code == "AC04"


@pytest.mark.parametrize("target", [S.COMPLETED, S.ACCEPTED])
def test_leaving_timed_out_for_a_success_clears_the_timeout_reason_code(target: PaymentState) -> None:
    # Regression: transition() used to keep payment.reason_code for targets outside
    # REASON_REQUIRED, so a payment that timed out (AB06) and then completed reported COMPLETED
    # with reason AB06 in its status event (handlers.status_event copies payment.reason_code).
    moved, _ = transition(_payment(S.TIMED_OUT, reason_code="AB06"), target, now=NOW)
    assert moved.reason_code is None


def test_initial_history_records_admission_without_a_from_state() -> None:
    p = _payment()
    assert initial_history(p) == HistoryEntry(p.uetr, None, S.RECEIVED, None, None, CREATED_AT)


def test_a_chain_of_transitions_counts_every_move_in_the_version() -> None:
    p = _payment()
    history = [initial_history(p)]
    for target in (S.QUOTED, S.SUBMITTED, S.ACCEPTED, S.COMPLETED, S.SETTLED):
        p, entry = transition(p, target, now=NOW)
        history.append(entry)
    assert p.version == 6 and p.state is S.SETTLED
    assert [h.to_state for h in history] == [S.RECEIVED, S.QUOTED, S.SUBMITTED, S.ACCEPTED, S.COMPLETED, S.SETTLED]
    assert all(h.from_state == prev.to_state for prev, h in zip(history, history[1:]))


D = StatusDisposition


@pytest.mark.parametrize(
    ("current", "status", "expected"),
    [
        (S.QUOTED, S.COMPLETED, D.APPLY),  # the pacs.002 raced the send acknowledgement
        (S.QUOTED, S.ACCEPTED, D.APPLY),
        (S.QUOTED, S.REJECTED, D.APPLY),
        (S.SUBMITTED, S.ACCEPTED, D.APPLY),
        (S.SUBMITTED, S.COMPLETED, D.APPLY),
        (S.ACCEPTED, S.COMPLETED, D.APPLY),
        (S.TIMED_OUT, S.COMPLETED, D.APPLY),  # a late answer resolves the investigation
        (S.TIMED_OUT, S.REJECTED, D.APPLY),
        (S.COMPLETED, S.COMPLETED, D.DUPLICATE),
        (S.ACCEPTED, S.ACCEPTED, D.DUPLICATE),
        (S.REJECTED, S.REJECTED, D.DUPLICATE),
        (S.REJECTED, S.COMPLETED, D.LATE),
        (S.COMPLETED, S.REJECTED, D.LATE),
        (S.COMPLETED, S.ACCEPTED, D.LATE),
        (S.SETTLED, S.COMPLETED, D.LATE),
        (S.RETURNED, S.COMPLETED, D.LATE),
    ],
)
def test_classify_partner_status(current: PaymentState, status: PaymentState, expected: StatusDisposition) -> None:
    assert classify_partner_status(current, status) is expected


@pytest.mark.parametrize("current", sorted(S))
@pytest.mark.parametrize("status", [S.ACCEPTED, S.COMPLETED, S.REJECTED])
def test_an_applied_status_is_always_a_legal_move(current: PaymentState, status: PaymentState) -> None:
    """APPLY must never lead the caller into an InvariantViolation (QUOTED goes through SUBMITTED first)."""
    if classify_partner_status(current, status) is not D.APPLY:
        return
    p = _payment(current, reason_code="AB06" if current in REASON_REQUIRED else None)
    if p.state is S.QUOTED:
        p, _ = transition(p, S.SUBMITTED, now=NOW)
    moved, _ = transition(p, status, now=NOW, reason_code="AC04" if status is S.REJECTED else None)
    assert moved.state is status


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES))
@pytest.mark.parametrize("status", [S.ACCEPTED, S.COMPLETED, S.REJECTED, S.TIMED_OUT])
def test_no_partner_status_is_applied_to_a_terminal_payment(terminal: PaymentState, status: PaymentState) -> None:
    assert classify_partner_status(terminal, status) is not D.APPLY


def test_new_uetr_is_a_canonical_uuid4() -> None:
    import uuid

    from switch.domain.payment import new_uetr

    values = {new_uetr() for _ in range(2000)}
    assert len(values) == 2000
    for value in list(values)[:200]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value  # canonical, lower case
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
