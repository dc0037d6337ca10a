"""The SQL store on both databases: migrations, atomic units of work, optimistic versions."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from switch.domain.errors import ConcurrentUpdate
from switch.domain.money import CURRENCIES, Money
from switch.domain.payment import HistoryEntry, Party, Payment, PaymentState, transition
from switch.store.sql_store import DeliveryFailure, InstructionRecord, Lease, OutboxMessage, Store, is_retriable
from switch.store.tables import metadata

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


def a_payment(**changes: object) -> Payment:
    base = Payment(
        uetr=str(uuid.uuid4()),
        instruction_id=f"ACLB-{uuid.uuid4().hex[:8]}",
        participant="ACLBKHPPXXX",
        corridor="KH-TH",
        partner="promptpay",
        debtor=Party("Sok Dara", account="sok_dara@aclb", agent="ACLBKHPPXXX"),
        creditor=Party("Somchai Jaidee", proxy_type="MOBILE", proxy="0066812345678"),
        instructed=Money(15_000_000, CURRENCIES["KHR"]),
        source=Money(15_000_000, CURRENCIES["KHR"]),
        target=Money(124_323, CURRENCIES["THB"]),
        fee=Money(0, CURRENCIES["KHR"]),
        fx_rate="0.0082882132",
        quote_id="Q1",
        remittance="Invoice 1",
        state=PaymentState.QUOTED,
        reason_code=None,
        version=2,
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_migrations_create_exactly_the_tables_the_code_queries(store: Store) -> None:
    async with store.reader() as uow:
        diff = await uow.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
        dialect = await uow.run_sync(lambda sync: sync.dialect.name)
    if dialect == "sqlite":
        # SQLite neither enforces nor alters VARCHAR lengths (migration 0007 widens the state
        # columns on PostgreSQL only): a length is the one difference it may show, nothing else
        diff = [d for d in diff if not (isinstance(d, list) and all(x[0] == "modify_type" and "VARCHAR" in str(x[5]) for x in d))]
    assert diff == []


async def test_payment_round_trips_with_aware_utc_times(store: Store) -> None:
    p = a_payment()
    async with store.unit_of_work() as uow:
        await uow.payments_add([p])
    async with store.reader() as uow:
        got = (await uow.payments_get([p.uetr]))[p.uetr]
    assert got == p
    assert got.created_at.tzinfo is not None


async def test_a_failed_unit_of_work_leaves_nothing_behind(store: Store) -> None:
    p = a_payment()
    with pytest.raises(RuntimeError):
        async with store.unit_of_work() as uow:
            await uow.payments_add([p])
            await uow.outbox_add([OutboxMessage("partner", "promptpay", "M1", (p.uetr,), p.uetr, b"<x/>", NOW)])
            raise RuntimeError("crash between the state change and the commit")
    async with store.reader() as uow:
        assert await uow.payments_get([p.uetr]) == {}
        assert await uow.outbox_pending("partner", 10) == []


async def test_update_with_a_stale_version_is_a_conflict_to_run_again(store: Store) -> None:
    p = a_payment()
    async with store.unit_of_work() as uow:
        await uow.payments_add([p])
    moved, _ = transition(p, PaymentState.SUBMITTED, now=NOW)
    async with store.unit_of_work() as uow:
        await uow.payments_update([(p.version, moved)])
    again, _ = transition(p, PaymentState.SUBMITTED, now=NOW)  # a second writer that read version 2
    with pytest.raises(ConcurrentUpdate) as caught:
        async with store.unit_of_work() as uow:
            await uow.payments_update([(p.version, again)])
    assert is_retriable(caught.value)  # the bus runs the transaction again; never a process exit
    async with store.reader() as uow:
        assert (await uow.payments_get([p.uetr]))[p.uetr].version == 3


async def test_outbox_rows_get_ids_and_leave_the_pending_list_once_sent(store: Store) -> None:
    rows = [OutboxMessage("status", "mekong.status", f"S{i}", (), f"k{i}", b"{}", NOW) for i in range(3)]
    async with store.unit_of_work() as uow:
        stored = await uow.outbox_add(rows)
    assert [r.message_id for r in stored] == ["S0", "S1", "S2"]
    assert len({r.id for r in stored}) == 3
    async with store.unit_of_work() as uow:
        await uow.outbox_mark_sent([stored[0].id, stored[2].id], NOW)  # type: ignore[list-item]
    async with store.reader() as uow:
        pending = await uow.outbox_pending("status", 10)
        assert [r.message_id for r in pending] == ["S1"]
        assert await uow.outbox_existing("status", ["S0", "S9"]) == {"S0"}


async def test_instruction_keys_and_history_are_kept(store: Store) -> None:
    p = a_payment()
    record = InstructionRecord(p.participant, p.instruction_id, "f" * 64, p.uetr, None, None, "KH-TH", "t:0:1", NOW)
    async with store.unit_of_work() as uow:
        await uow.instructions_add([record])
        await uow.payments_add([p])
        await uow.history_add(
            [
                HistoryEntry(p.uetr, None, PaymentState.RECEIVED, None, None, NOW),
                HistoryEntry(p.uetr, PaymentState.RECEIVED, PaymentState.QUOTED, None, "quote Q1", NOW + timedelta(seconds=1)),
            ]
        )
    async with store.reader() as uow:
        found = await uow.instructions_get([(p.participant, p.instruction_id), ("NOPE", "x")])
        history = await uow.history_of(p.uetr)
    assert found == {(p.participant, p.instruction_id): record}
    assert [(h.from_state, h.to_state) for h in history] == [(None, PaymentState.RECEIVED), (PaymentState.RECEIVED, PaymentState.QUOTED)]


async def test_stale_submitted_payments_are_found_per_partner(store: Store) -> None:
    old = a_payment(state=PaymentState.SUBMITTED, updated_at=NOW - timedelta(minutes=5))
    fresh = a_payment(state=PaymentState.SUBMITTED)
    other = a_payment(state=PaymentState.SUBMITTED, partner="napas", updated_at=NOW - timedelta(minutes=5))
    async with store.unit_of_work() as uow:
        await uow.payments_add([old, fresh, other])
    async with store.reader() as uow:
        stale = await uow.payments_stale("promptpay", [PaymentState.SUBMITTED], NOW - timedelta(minutes=1), 10)
    assert [p.uetr for p in stale] == [old.uetr]


async def test_set_based_move_touches_only_payments_still_in_the_from_state(store: Store) -> None:
    quoted, completed = a_payment(), a_payment(state=PaymentState.COMPLETED)
    async with store.unit_of_work() as uow:
        await uow.payments_add([quoted, completed])
    later = NOW + timedelta(seconds=2)
    async with store.unit_of_work() as uow:
        moved = await uow.payments_move_all([quoted.uetr, completed.uetr], PaymentState.QUOTED, PaymentState.SUBMITTED, later)
    assert moved == [quoted.uetr]
    async with store.reader() as uow:
        got = await uow.payments_get([quoted.uetr, completed.uetr])
    assert (got[quoted.uetr].state, got[quoted.uetr].version, got[quoted.uetr].updated_at) == (PaymentState.SUBMITTED, 3, later)
    assert got[completed.uetr] == completed


async def test_a_leased_outbox_row_is_claimed_by_another_replica_only_once_its_lease_ran_out(store: Store) -> None:
    store.lease = Lease("replica-a", 30.0)
    async with store.unit_of_work() as uow:
        (row,) = await uow.outbox_add([OutboxMessage("partner", "promptpay", "M-lease", ("u1",), "u1", b"<x/>", NOW)])
    assert row.lease_until == NOW + timedelta(seconds=30)
    store.lease = Lease("replica-b", 30.0)
    async with store.unit_of_work() as uow:
        assert await uow.outbox_claim_due(NOW + timedelta(seconds=29), 10) == []  # replica a still holds it
    async with store.unit_of_work() as uow:
        taken = await uow.outbox_claim_due(NOW + timedelta(seconds=31), 10)  # a died: b takes over
    assert [m.message_id for m in taken] == ["M-lease"]
    assert taken[0].lease_until == NOW + timedelta(seconds=61)
    store.lease = Lease("replica-c", 30.0)
    async with store.unit_of_work() as uow:
        assert await uow.outbox_claim_due(NOW + timedelta(seconds=40), 10) == []  # now b holds it


async def test_a_failed_delivery_is_due_again_only_at_its_retry_time_and_a_given_up_row_never(store: Store) -> None:
    store.lease = Lease("replica-a", 30.0)
    async with store.unit_of_work() as uow:
        retry, stop = await uow.outbox_add(
            [OutboxMessage("partner", "promptpay", f"M-{i}", (f"u{i}",), None, b"<x/>", NOW) for i in range(2)]
        )
        await uow.outbox_record_failures(
            [
                DeliveryFailure(retry.id or 0, "timeout", True, NOW + timedelta(seconds=5)),
                DeliveryFailure(stop.id or 0, "refused", False, None),
            ],
            NOW,
        )
    async with store.unit_of_work() as uow:
        assert await uow.outbox_claim_due(NOW + timedelta(seconds=4), 10) == []
    async with store.unit_of_work() as uow:
        (again,) = await uow.outbox_claim_due(NOW + timedelta(seconds=6), 10)
    assert (again.message_id, again.attempts, again.ambiguous) == ("M-0", 1, True)


async def test_a_follow_up_is_claimed_once_until_its_lease_runs_out(store: Store) -> None:
    store.lease = Lease("replica-a", 30.0)
    p = a_payment(follow_up_at=NOW, message_id="M1")
    async with store.unit_of_work() as uow:
        await uow.payments_add([p])
    async with store.unit_of_work() as uow:
        assert [c.uetr for c in await uow.payments_claim_follow_ups(NOW, 10)] == [p.uetr]
    async with store.unit_of_work() as uow:
        assert await uow.payments_claim_follow_ups(NOW + timedelta(seconds=29), 10) == []  # claimed: leased
    async with store.unit_of_work() as uow:
        (again,) = await uow.payments_claim_follow_ups(NOW + timedelta(seconds=31), 10)  # the claimer died
    assert again.message_id == "M1"


async def test_a_resend_requeues_a_delivered_message_but_not_one_still_being_delivered(store: Store) -> None:
    store.lease = Lease("replica-a", 30.0)
    async with store.unit_of_work() as uow:
        done, busy = await uow.outbox_add(
            [OutboxMessage("partner", "promptpay", f"M-r{i}", (f"u{i}",), None, b"<x/>", NOW) for i in range(2)]
        )
        await uow.outbox_mark_sent([done.id or 0], NOW)
    async with store.unit_of_work() as uow:
        again = await uow.outbox_requeue("partner", ["M-r0", "M-r1"], NOW, deadline_at=NOW + timedelta(seconds=15))
    assert [(m.message_id, m.body, m.ambiguous) for m in again] == [("M-r0", b"<x/>", True)]
    async with store.reader() as uow:
        assert sorted(m.message_id for m in await uow.outbox_pending("partner", 10)) == ["M-r0", "M-r1"]


async def test_the_parties_data_round_trips_and_a_payment_without_it_reads_as_before(store: Store) -> None:
    """Issue 12 (migration 0013): the parties' addresses and the debtor's identification in one
    JSON column; NULL for a payment without them."""
    from datetime import date

    from switch.domain.payment import Identification, PostalAddress

    rich = a_payment(
        debtor=Party("សុខ ដារា", account="sok_dara@aclb", agent="ACLBKHPPXXX",
                     address=PostalAddress(country="KH", town="ភ្នំពេញ", street="Preah Norodom Boulevard", building="41",
                                           post_code="120207", subdivision="Phnom Penh", lines=("Sangkat Chey Chumneah",)),
                     identification=Identification(national_id="010203040", national_id_issuer="KH",
                                                   birth_date=date(1985, 4, 12), birth_city="Phnom Penh",
                                                   birth_country="KH")),
        creditor=Party("Somchai Jaidee", proxy_type="MOBILE", proxy="0066812345678",
                       address=PostalAddress(country="TH", town="Bangkok", lines=("99 Sukhumvit Road", "Khlong Toei"))),
    )
    company = a_payment(debtor=Party("Angkor Trading", account="angkor@aclb", agent="ACLBKHPPXXX",
                                     identification=Identification(lei="5493001KJTIIGC8Y1R12")))
    plain = a_payment()
    async with store.unit_of_work() as uow:
        await uow.payments_add([rich, company, plain])
    async with store.reader() as uow:
        got = await uow.payments_get([rich.uetr, company.uetr, plain.uetr])
        raw = await uow.run_sync(lambda sync: {
            row[0]: row[1] for row in sync.exec_driver_sql("SELECT uetr, parties FROM payments").fetchall()
        })
    assert got[rich.uetr] == rich and got[company.uetr] == company and got[plain.uetr] == plain
    assert raw[plain.uetr] is None
    assert raw[company.uetr] == '{"debtor":{"identification":{"lei":"5493001KJTIIGC8Y1R12"}}}'
