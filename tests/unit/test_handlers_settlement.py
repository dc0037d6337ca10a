"""Settlement cycles and reconciliation on the fakes (switch/service/settlement.py): the timer
opens and closes cycles, a report page is stored once, matching moves matched payments to SETTLED
and opens breaks with their action, a payment settled one cycle off closes its own pair of
breaks, a timed-out payment the report shows settled is completed by it, positions and the
participants' statements come out of each cycle, and operators close breaks with a note."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import pytest

from iso20022.reports import ReportHeader
from iso20022.schemas import SchemaSet
from switch import limits
from switch.contracts import SettlementStatementV1
from switch.domain.payment import PaymentState
from switch.domain.recon import BreakAction, BreakKind, BreakState, StatementEntry
from switch.domain.settlement import Calendar, CycleState, cycle_at
from switch.service.handlers import (
    AcceptInstructions,
    Deps,
    RecordSendResults,
    accept_instructions,
    apply_partner_statuses,
    record_send_results,
)
from switch.service.ports import Lease
from switch.service.settlement import (
    CloseCycle,
    OpenCycles,
    ReconcileCycle,
    ResolveBreak,
    StoreReportPage,
    close_cycle,
    minor_units,
    open_cycles,
    reconcile_cycle,
    resolve_break,
    store_report_page,
)
from tests.factories import sample_instruction
from tests.fakes import FakeClock, FakeUnitOfWork, deps_from_config, parsed_instruction, partner_statuses

S = PaymentState
LEASE = Lease("replica-a", limits.outbox_lease_s)
CYCLE_S = 10


@pytest.fixture
def deps(schemas: SchemaSet, clock: FakeClock) -> Deps:
    d = deps_from_config(schemas, clock)
    d.calendars = {"promptpay": Calendar("promptpay", "Asia/Bangkok", (), every_s=CYCLE_S)}
    return d


async def _payments(uow: FakeUnitOfWork, deps: Deps, n: int) -> list[str]:
    """n outbound payments to PromptPay, sent (SUBMITTED)."""
    before = set(uow.payments)
    records = [parsed_instruction(sample_instruction(instruction_id=f"I{i}-{len(before)}"), source_ref=f"r:0:{len(before) + i}")
               for i in range(n)]
    await accept_instructions(AcceptInstructions(records), uow, deps)
    rows = list(uow.state.outbox_messages("partner"))
    await record_send_results([RecordSendResults([r.id or 0 for r in rows], submitted_uetrs=tuple(u for r in rows for u in r.uetrs))],
                              uow, deps)
    return sorted(set(uow.payments) - before, key=lambda u: uow.payments[u].instruction_id)


def _entry(uow: FakeUnitOfWork, uetr: str, seq: int, **changes: object) -> StatementEntry:
    p = uow.payments[uetr]
    e = StatementEntry(seq=seq, entry_ref=f"N{seq}", uetr=uetr, end_to_end_id=p.instruction_id, tx_id=None, message_id=p.message_id,
                       is_return=False, outbound=True, amount_minor=p.target.amount_minor, currency=p.target.currency.code, booked=True)
    return replace(e, **changes)  # type: ignore[arg-type]


def _header(cycle_id: str, cut_off: datetime, opens_at: datetime, *, page: int = 1, last: bool = True) -> ReportHeader:
    return ReportHeader(message_type="camt.053.001.08", message_id=f"M{cycle_id[-16:]}{page}", created_at=cut_off,
                        report_id=f"R-{cycle_id}", page_no=page, last_page=last, account_id="MEKONG-HUB-THB-001", currency="THB",
                        period_from=opens_at, period_to=cut_off)


async def _through_cut_off(uow: FakeUnitOfWork, deps: Deps, clock: FakeClock):  # type: ignore[no-untyped-def]
    """Open the cycle open now, move past its cut-off, close it; the stored cycle."""
    await open_cycles(OpenCycles(), uow, deps)
    cycle = cycle_at(deps.calendars["promptpay"], clock())
    clock.now = cycle.cut_off
    closed = await close_cycle(CloseCycle(cycle.id), uow, deps)
    stored = (await uow.cycles_get([cycle.id]))[cycle.id]
    assert stored.state is CycleState.CLOSED and stored.books_count == closed.counts.get("books", 0)
    return stored


async def test_a_cycle_is_opened_closed_matched_and_its_breaks_worked(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    settled, missing, rejected, timed_out = await _payments(uow, deps, 4)
    await apply_partner_statuses([partner_statuses("promptpay", "S1", (settled, S.COMPLETED, None), (missing, S.COMPLETED, None),
                                                   (rejected, S.REJECTED, "AC04"))], uow, deps)
    cycle = await _through_cut_off(uow, deps, clock)
    assert cycle.books_count == 3  # the timed-out one has no outcome yet: not booked
    entries = [_entry(uow, settled, 1), _entry(uow, rejected, 2), _entry(uow, timed_out, 3),
               replace(_entry(uow, settled, 4), uetr="00000000-0000-4000-8000-000000000001", end_to_end_id="X", amount_minor=100)]
    stored = await store_report_page(StoreReportPage("promptpay", _header(cycle.id, cycle.cut_off, cycle.opens_at), entries, "partner"),
                                     uow, deps)
    assert stored.counts["entries"] == 4 and not stored.refusals
    again = await store_report_page(StoreReportPage("promptpay", _header(cycle.id, cycle.cut_off, cycle.opens_at), entries, "partner"),
                                    uow, deps)
    assert again.counts == {"duplicate_page": 1}  # the same report twice: stored once

    out = await reconcile_cycle(ReconcileCycle(cycle.id), uow, deps)
    done = (await uow.cycles_get([cycle.id]))[cycle.id]
    summary = json.loads(done.summary or "{}")
    assert done.state is CycleState.RECONCILED
    assert summary["breaks"] == {"status_mismatch": 1, "unknown_to_switch": 1, "missing_at_partner": 1}
    assert summary["resolved_by_report"] == 1 and summary["matched"] == 2  # the timed-out one: completed by the report
    assert uow.payments[settled].state is S.SETTLED and uow.payments[timed_out].state is S.SETTLED
    assert uow.payments[missing].state is S.COMPLETED
    breaks = {b.kind: b for b in uow.state.breaks.values()}
    assert breaks[BreakKind.MISSING_AT_PARTNER].action is BreakAction.ENQUIRY
    assert breaks[BreakKind.MISSING_AT_PARTNER].state is BreakState.FOLLOWING_UP
    assert any(r.message_id.startswith("E") for r in out.partner_outbox)  # the pacs.028 about the missing payment
    assert breaks[BreakKind.UNKNOWN_TO_SWITCH].action is BreakAction.NONE
    # positions: the two payments both sides agree settled, THB the hub owes PromptPay
    (position,) = summary["partner_positions"]
    amounts = uow.payments[settled].target.amount_minor + uow.payments[timed_out].target.amount_minor
    assert (position["currency"], position["outbound_minor"], position["net_minor"]) == ("THB", amounts, amounts)
    statements = [json.loads(r.body) for r in out.status_outbox if r.destination == deps.config.kafka.statements_topic]
    for r in out.status_outbox:  # the contract, as a participant reads it
        if r.destination == deps.config.kafka.statements_topic:
            SettlementStatementV1.model_validate_json(r.body)
    assert {s["participant"] for s in statements} == {uow.payments[settled].participant}
    assert sorted(e["uetr"] for s in statements for e in s["entries"]) == sorted([settled, timed_out])
    assert deps.metrics.recon_breaks.labels("promptpay", "missing_at_partner")._value.get() == 1

    # the next cycle's report has the missing payment: settled one cycle late, both breaks close
    clock.advance(1)
    nxt = await _through_cut_off(uow, deps, clock)
    await store_report_page(StoreReportPage("promptpay", _header(nxt.id, nxt.cut_off, nxt.opens_at), [_entry(uow, missing, 1)], "partner"),
                            uow, deps)
    await reconcile_cycle(ReconcileCycle(nxt.id), uow, deps)
    states = {b.kind: b.state for b in uow.state.breaks.values() if b.uetr == missing}
    assert states == {BreakKind.MISSING_AT_PARTNER: BreakState.RESOLVED, BreakKind.WRONG_CYCLE: BreakState.RESOLVED}
    assert json.loads((await uow.cycles_get([nxt.id]))[nxt.id].summary or "{}")["resolved_by_switch"] == 1

    # an operator closes the unknown entry's break, with a note, audited; a second time is refused
    unknown = breaks[BreakKind.UNKNOWN_TO_SWITCH]
    resolved = await resolve_break(ResolveBreak(unknown.id, "alice", "not ours: the network reverses it"), uow, deps)
    assert not resolved.refusals
    assert uow.state.breaks[unknown.id].state is BreakState.RESOLVED and uow.state.breaks[unknown.id].note
    assert any(e.action == "recon.resolve" and e.subject == unknown.id for e in uow.state.audit)
    refused = await resolve_break(ResolveBreak(unknown.id, "alice", "again"), uow, deps)
    assert refused.refusals and refused.refusals[0][0] == "CLOSED"


async def test_a_report_for_no_cut_off_is_refused(deps: Deps, clock: FakeClock) -> None:
    uow = FakeUnitOfWork(lease=LEASE)
    cycle = cycle_at(deps.calendars["promptpay"], clock())
    header = _header(cycle.id, cycle.cut_off.replace(second=3), cycle.opens_at)
    out = await store_report_page(StoreReportPage("promptpay", header, [], "partner"), uow, deps)
    assert out.refusals and "no cut-off" in out.refusals[0][1]


def test_amounts_are_minor_units_exactly_or_nothing() -> None:
    assert minor_units("1500.25", "THB") == 150025
    assert minor_units("1500", "VND") == 1500
    assert minor_units("1500.5", "VND") is None  # VND has no minor unit: not a whole number of them
    assert minor_units("1.001", "THB") is None
    assert minor_units("10", "XXX") is None
