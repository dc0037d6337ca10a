"""The UnitOfWork port and its two implementations: the SQL one and the in-memory fake provide
every method of the protocol, with the protocol's signature, so a handler tested on the fake
calls nothing the SQL store lacks; and the same scenarios give the same results on both."""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from switch import limits
from switch.domain.errors import ConcurrentUpdate
from switch.domain.payment import PaymentState, transition
from switch.service import audit, bus, follow_up, group_commit, handlers, inbound, ports, signed
from switch.service.ports import DeliveryFailure, Lease, OutboxMessage
from switch.store import sql_store
from tests.factories import SAMPLE_UETR, sample_payment
from tests.fakes import T0, FakeStore, FakeUnitOfWork

S = PaymentState
LEASE = Lease("replica-a", limits.outbox_lease_s)

PROTOCOL_METHODS = sorted(
    name for name, member in vars(ports.UnitOfWork).items() if inspect.isfunction(member) and not name.startswith("_")
)


def _signature(cls: type, name: str) -> inspect.Signature:
    """The method's signature with annotations resolved to objects (the modules use postponed
    annotations, so the strings would differ in spelling, not in meaning)."""
    fn = getattr(cls, name)
    hints = typing.get_type_hints(fn)
    sig = inspect.signature(fn)
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()]
    return sig.replace(parameters=params, return_annotation=hints.get("return", sig.return_annotation))


def test_the_protocol_lists_what_the_handlers_call() -> None:
    called = set()
    service = Path(handlers.__file__).parent  # every module of the service layer (issue 9 added several)
    # and the edge that reads through a unit of work (issue 10: /v1/recon); the composition root
    # (main.py) also reads the SQL store's gauge queries, which are not on the port
    for path in [*sorted(service.glob("*.py")), service.parent / "entrypoints" / "settlement_edge.py"]:
        if path.name == "relay.py":  # the relay claims rows through the SQL Store itself, not the port
            continue
        source = path.read_text(encoding="utf-8")
        called |= {name for name in dir(sql_store.UnitOfWork) if f"uow.{name}(" in source}
    main = (service.parent / "entrypoints" / "main.py").read_text(encoding="utf-8")
    called |= {name for name in PROTOCOL_METHODS if f"uow.{name}(" in main}  # the settlement timer's cycles_due, break_counts
    assert set(PROTOCOL_METHODS) == called


@pytest.mark.parametrize("implementation", [sql_store.UnitOfWork, FakeUnitOfWork], ids=["sql", "fake"])
@pytest.mark.parametrize("name", PROTOCOL_METHODS)
def test_each_unit_of_work_has_the_protocol_method_with_its_signature(implementation: type, name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(implementation, name, None)), f"{implementation.__name__}.{name}"
    assert _signature(implementation, name) == _signature(ports.UnitOfWork, name)


def test_the_fake_matches_the_sql_signature_of_every_other_method_they_share() -> None:
    shared = {
        name for name in vars(FakeUnitOfWork)
        if not name.startswith("_") and inspect.isfunction(getattr(FakeUnitOfWork, name)) and hasattr(sql_store.UnitOfWork, name)
    } - set(PROTOCOL_METHODS)
    assert shared, "the fake claims due rows as the relay does"
    for name in sorted(shared):
        assert _signature(FakeUnitOfWork, name) == _signature(sql_store.UnitOfWork, name), name


def test_the_stores_give_units_of_work_of_the_port() -> None:
    for implementation in (sql_store.Store, FakeStore):
        for name in ("unit_of_work", "reader"):
            assert callable(getattr(implementation, name))


def test_handlers_bus_and_group_commit_are_typed_against_the_port() -> None:
    for fn in (
        handlers.accept_instructions, handlers.record_send_results, handlers.apply_partner_statuses,
        inbound.accept_inbound, inbound.apply_inbound_replies, follow_up.follow_up_payments,
        bus.MessageBus.dispatch,
    ):
        assert typing.get_type_hints(fn)["uow"] is ports.UnitOfWork, fn.__qualname__
    assert typing.get_type_hints(bus.MessageBus.__init__)["store"] is ports.Store
    assert group_commit.UnitOfWork is ports.UnitOfWork


# ---------------------------------------------------------------- one contract, both stores
# The same scenarios on the SQL store (SQLite in a temporary file) and on the fake: what a
# handler can observe must not depend on which one it runs on.


@pytest.fixture(params=["sql", "fake"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ports.Store]:
    if request.param == "fake":
        yield FakeStore(lease=LEASE)
        return
    sql = sql_store.Store(f"sqlite+aiosqlite:///{tmp_path}/contract.db")
    await sql.start()
    sql.lease = LEASE
    try:
        yield sql
    finally:
        await sql.close()


def _row(message_id: str, *, deadline_at: datetime | None = None) -> OutboxMessage:
    return OutboxMessage("partner", "promptpay", message_id, (SAMPLE_UETR,), SAMPLE_UETR, b"<pacs.008/>", T0, deadline_at=deadline_at)


async def test_contract_a_stale_version_raises_concurrent_update_and_writes_nothing(store: ports.Store) -> None:
    async with store.unit_of_work() as uow:
        await uow.payments_add([sample_payment(S.QUOTED, created_at=T0)])
    with pytest.raises(ConcurrentUpdate):
        async with store.unit_of_work() as uow:
            (p,) = (await uow.payments_get([SAMPLE_UETR])).values()
            moved, _ = transition(p, S.SUBMITTED, now=T0)
            await uow.payments_update([(p.version + 1, moved)])
    async with store.reader() as uow:
        assert (await uow.payments_get([SAMPLE_UETR]))[SAMPLE_UETR].state is S.QUOTED


async def test_contract_an_update_writes_state_reason_version_time_and_follow_up_only(store: ports.Store) -> None:
    async with store.unit_of_work() as uow:
        await uow.payments_add([sample_payment(S.SUBMITTED, created_at=T0)])
    later = T0 + timedelta(seconds=5)
    async with store.unit_of_work() as uow:
        (p,) = (await uow.payments_get([SAMPLE_UETR])).values()
        moved, _ = transition(p, S.REJECTED, now=later, reason_code="AC04")
        await uow.payments_update([(p.version, replace(moved, remittance="not a column the update sets"))])
    async with store.reader() as uow:
        stored = (await uow.payments_get([SAMPLE_UETR]))[SAMPLE_UETR]
    assert (stored.state, stored.reason_code, stored.version, stored.updated_at) == (S.REJECTED, "AC04", 2, later)
    assert stored.remittance == sample_payment(S.SUBMITTED, created_at=T0).remittance


async def test_contract_a_block_that_raises_leaves_nothing(store: ports.Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.unit_of_work() as uow:
            await uow.payments_add([sample_payment(S.QUOTED, created_at=T0)])
            await uow.outbox_add([_row("M1")])
            raise RuntimeError("midway")
    async with store.reader() as uow:
        assert await uow.payments_get([SAMPLE_UETR]) == {}
        assert await uow.outbox_by_message_ids("partner", ["M1"]) == []


async def test_contract_outbox_rows_get_ids_and_the_writers_lease(store: ports.Store) -> None:
    async with store.unit_of_work() as uow:
        (a, b) = await uow.outbox_add([_row("M1"), _row("M2")])
    assert a.id is not None and b.id is not None and a.id < b.id
    assert a.lease_until == T0 + timedelta(seconds=LEASE.duration_s)


async def test_contract_a_claim_takes_due_rows_whose_lease_ran_out(store: ports.Store) -> None:
    async with store.unit_of_work() as uow:
        (row,) = await uow.outbox_add([_row("M1")])
    async with store.unit_of_work() as uow:
        assert await uow.outbox_claim_due(T0 + timedelta(seconds=1), 10) == []  # ours, still leased
        (claimed,) = await uow.outbox_claim_due(T0 + timedelta(seconds=LEASE.duration_s + 1), 10)
    assert claimed.id == row.id
    assert claimed.lease_until == T0 + timedelta(seconds=2 * LEASE.duration_s + 1)


async def test_contract_a_failed_round_schedules_a_retry_and_counts_the_attempt(store: ports.Store) -> None:
    async with store.unit_of_work() as uow:
        (row,) = await uow.outbox_add([_row("M1")])
        retry_at = T0 + timedelta(seconds=3)
        await uow.outbox_record_failures([DeliveryFailure(row.id or 0, "timeout", True, retry_at)], T0)
    async with store.unit_of_work() as uow:
        assert await uow.outbox_claim_due(retry_at - timedelta(seconds=1), 10) == []
        (claimed,) = await uow.outbox_claim_due(retry_at, 10)
    assert (claimed.attempts, claimed.ambiguous) == (1, True)


async def test_contract_a_requeue_takes_delivered_rows_only_and_marks_them_ambiguous(store: ports.Store) -> None:
    async with store.unit_of_work() as uow:
        sent, pending = await uow.outbox_add([_row("M1"), _row("M2")])
        await uow.outbox_mark_sent([sent.id or 0], T0)
    deadline_at = T0 + timedelta(seconds=15)
    async with store.unit_of_work() as uow:
        again = await uow.outbox_requeue("partner", ["M1", "M2"], T0, deadline_at)
    assert [(m.message_id, m.body, m.ambiguous, m.deadline_at) for m in again] == [("M1", b"<pacs.008/>", True, deadline_at)]
    async with store.reader() as uow:
        stored = {m.message_id: m for m in await uow.outbox_by_message_ids("partner", ["M1", "M2"])}
    assert stored["M1"].ambiguous and not stored["M2"].ambiguous


async def test_contract_a_follow_up_claim_leases_due_payments(store: ports.Store) -> None:
    async with store.unit_of_work() as uow:
        await uow.payments_add([replace(sample_payment(S.SUBMITTED, created_at=T0), follow_up_at=T0 + timedelta(seconds=15))])
    now = T0 + timedelta(seconds=15)
    async with store.unit_of_work() as uow:
        assert await uow.payments_claim_follow_ups(now - timedelta(seconds=1), 10) == []
        (claimed,) = await uow.payments_claim_follow_ups(now, 10)
        assert await uow.payments_claim_follow_ups(now, 10) == []
    assert (claimed.follow_up_at, claimed.version) == (now + timedelta(seconds=LEASE.duration_s), 1)


async def test_contract_a_set_based_move_takes_only_rows_in_the_from_state(store: ports.Store) -> None:
    other = "6a1f7b2d-4c3e-4f70-9a8b-1d2e3f4a5b6c"
    async with store.unit_of_work() as uow:
        await uow.payments_add([sample_payment(S.QUOTED, created_at=T0), sample_payment(S.COMPLETED, created_at=T0, uetr=other)])
        moved = await uow.payments_move_all([SAMPLE_UETR, other], S.QUOTED, S.SUBMITTED, T0)
    async with store.reader() as uow:
        stored = await uow.payments_get([SAMPLE_UETR, other])
    assert moved == [SAMPLE_UETR]
    assert (stored[SAMPLE_UETR].state, stored[SAMPLE_UETR].version, stored[other].state) == (S.SUBMITTED, 2, S.COMPLETED)


async def test_contract_inbound_messages_keep_the_first_body(store: ports.Store) -> None:
    async with store.unit_of_work() as uow:
        await uow.inbound_add([{"partner": "promptpay", "message_id": "S1", "message_type": "pacs.002.001.10", "received_at": T0, "body": b"a"}])
    async with store.reader() as uow:
        assert await uow.inbound_seen("promptpay", ["S1", "S2"]) == {"S1"}
        assert await uow.inbound_bodies("promptpay", ["S1", "S2"]) == {"S1": b"a"}
        assert await uow.inbound_seen("lapnet", ["S1"]) == set()


async def test_contract_signed_messages_keep_the_first_digest(store: ports.Store) -> None:
    row = {"partner": "promptpay", "biz_msg_id": "S1", "message_type": "pacs.002.001.10", "document_sha256": "a" * 64,
           "received_at": T0, "envelope": b"<BizMsg/>"}
    async with store.unit_of_work() as uow:
        await uow.signed_add([row])
    async with store.reader() as uow:
        assert await uow.signed_digests("promptpay", ["S1", "S2"]) == {"S1": "a" * 64}
        assert await uow.signed_digests("lapnet", ["S1"]) == {}
