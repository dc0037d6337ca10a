"""The toolbox's store methods on each database (issue 11): the search's keyset pages and
filters, the indexes its query plans use (so it stays fast on a million rows: no full scan, no
sort of the whole table), a payment's messages, and dead-letter replays recorded once."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

from switch.domain.errors import ConcurrentUpdate
from switch.domain.payment import HistoryEntry, PaymentState
from switch.service.ports import DlqReplay, OutboxMessage, PaymentQuery
from switch.store.sql_store import Store, payment_search_statement
from tests.factories import sample_payment
from tests.fakes import T0

S = PaymentState
PARTICIPANTS = ("ACLBKHPPXXX", "ABAAKHPPXXX", "CADIKHPPXXX")


async def _fill(store: Store, n: int) -> list[Any]:
    payments = []
    for i in range(n):
        rejected = i % 10 == 0
        p = sample_payment(S.REJECTED if rejected else S.COMPLETED, created_at=T0 + timedelta(seconds=i // 3),
                           reason_code="AC01" if rejected else None, uetr=str(uuid.UUID(int=i + 1, version=4)))
        payments.append(replace(p, participant=PARTICIPANTS[i % 3], instruction_id=f"I{i}", corridor=("KH-TH", "KH-LA")[i % 2]))
    async with store.unit_of_work() as uow:
        await uow.payments_add(payments)
    return payments


async def test_search_pages_and_filters_agree_with_a_plain_filter(store: Store) -> None:
    payments = await _fill(store, 60)
    newest_first = sorted(payments, key=lambda p: (p.created_at, p.uetr), reverse=True)
    cases: list[tuple[dict[str, Any], Any]] = [
        ({}, lambda p: True),
        ({"participant": "ABAAKHPPXXX"}, lambda p: p.participant == "ABAAKHPPXXX"),
        ({"reason_code": "AC01"}, lambda p: p.reason_code == "AC01"),
        ({"state": S.COMPLETED, "corridor": "KH-LA"}, lambda p: p.state is S.COMPLETED and p.corridor == "KH-LA"),
        ({"since": T0 + timedelta(seconds=5), "until": T0 + timedelta(seconds=12)},
         lambda p: T0 + timedelta(seconds=5) <= p.created_at < T0 + timedelta(seconds=12)),
        ({"partner": "lapnet"}, lambda p: False),
    ]
    for filters, keep in cases:
        seen: list[str] = []
        before = None
        async with store.reader() as uow:
            while True:
                page = await uow.payments_search(PaymentQuery(limit=7, before=before, **filters))
                seen += [p.uetr for p in page]
                if len(page) < 7:
                    break
                before = (page[-1].created_at, page[-1].uetr)
        assert seen == [p.uetr for p in newest_first if keep(p)], filters


async def _plan(store: Store, query: PaymentQuery) -> str:
    dialect = sqlite.dialect() if store.is_sqlite else postgresql.dialect()
    sql = str(payment_search_statement(query).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    async with store.reader() as uow:
        if store.is_sqlite:
            rows = await uow.run_sync(lambda c: c.execute(text(f"EXPLAIN QUERY PLAN {sql}")).all())
            return "\n".join(str(r[-1]) for r in rows)
        # a small table is cheaper to read whole: forbid that, to see which index the query can use
        def explain(c: Any) -> str:
            c.execute(text("SET LOCAL enable_seqscan = off"))
            c.execute(text("SET LOCAL enable_sort = off"))
            return "\n".join(r[0] for r in c.execute(text(f"EXPLAIN {sql}")))

        return await uow.run_sync(explain)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "ix_payments_created"),
        ({"corridor": "KH-TH", "partner": "promptpay"}, "ix_payments_created"),
        ({"state": S.TIMED_OUT, "corridor": "KH-TH"}, "ix_payments_state_created"),
        ({"participant": "ACLBKHPPXXX"}, "ix_payments_participant_created"),
        # two filters with an index each: either walk serves (the planner picks by its statistics)
        ({"participant": "ACLBKHPPXXX", "state": S.REJECTED}, "ix_payments_participant_created|ix_payments_state_created"),
        ({"reason_code": "AC01"}, "ix_payments_reason_created"),
    ],
)
async def test_the_search_walks_an_index_in_its_order_instead_of_sorting_the_table(
    store: Store, filters: dict[str, Any], index: str
) -> None:
    await _fill(store, 30)
    plan = await _plan(store, PaymentQuery(limit=50, **filters))
    assert any(name in plan for name in index.split("|")), plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan  # rows come in order from the index


async def test_a_payments_messages_are_its_outbox_rows_and_the_partner_messages_naming_it(store: Store) -> None:
    (p,) = await _fill(store, 1)
    p = replace(p, message_id="M1")
    other = str(uuid.uuid4())
    moved_at = T0 + timedelta(seconds=3)
    async with store.unit_of_work() as uow:
        await uow.outbox_add([
            OutboxMessage("partner", "promptpay", "M1", (p.uetr,), p.uetr, b"<pacs.008/>", T0),
            OutboxMessage("status", "status", "ev1", (p.uetr,), f"{p.participant}/{p.instruction_id}", b"{}", T0),
            OutboxMessage("partner", "promptpay", "M2", (other,), other, b"<pacs.008 other/>", T0),
        ])
        await uow.inbound_add([
            {"partner": "promptpay", "message_id": "S1", "message_type": "pacs.002.001.10", "received_at": moved_at,
             "body": f"<OrgnlUETR>{p.uetr}</OrgnlUETR>".encode()},
            {"partner": "promptpay", "message_id": "S2", "message_type": "pacs.002.001.10", "received_at": moved_at,
             "body": f"<OrgnlUETR>{other}</OrgnlUETR>".encode()},
            {"partner": "promptpay", "message_id": "S3", "message_type": "pacs.002.001.10", "received_at": moved_at + timedelta(hours=1),
             "body": f"<OrgnlUETR>{p.uetr}</OrgnlUETR>".encode()},  # not near any of its moves: not looked at
        ])
        await uow.history_add([HistoryEntry(p.uetr, S.SUBMITTED, S.COMPLETED, None, None, moved_at)])
    async with store.reader() as uow:
        found = await uow.payment_messages(p, [moved_at], 5.0, 50)
    assert [(m.direction, m.kind, m.message_id) for m in found] == [
        ("sent", "partner", "M1"), ("sent", "status", "ev1"), ("received", "partner", "S1")
    ]


async def test_a_dead_letter_replay_is_recorded_once(store: Store) -> None:
    claim = DlqReplay(topic="dlq", partition=0, offset=5, state="claimed", operator="alice", target_topic="instructions", claimed_at=T0)
    async with store.unit_of_work() as uow:
        await uow.dlq_replays_put([(None, claim)])
    with pytest.raises(ConcurrentUpdate):
        async with store.unit_of_work() as uow:
            await uow.dlq_replays_put([(None, replace(claim, operator="bob"))])  # another claim of the same dead letter
    done = replace(claim, state="replayed", target_partition=1, target_offset=9, replayed_at=T0, version=2)
    async with store.unit_of_work() as uow:
        await uow.dlq_replays_put([(1, done)])
    with pytest.raises(ConcurrentUpdate):
        async with store.unit_of_work() as uow:
            await uow.dlq_replays_put([(1, replace(done, operator="bob"))])  # read before the confirmation
    async with store.reader() as uow:
        assert await uow.dlq_replays_get([claim.key, ("dlq", 0, 6)]) == {claim.key: done}
    async with store.unit_of_work() as uow:
        await uow.dlq_replays_remove([claim.key])
    async with store.reader() as uow:
        assert await uow.dlq_replays_get([claim.key]) == {}
