"""Issue 11's store methods on both databases: the operators' controls (insert once, then
version-checked updates) and the debtors' daily usage (claimed, added, exact when two
transactions of one debtor race on PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date, datetime, timezone

import pytest

from switch.domain.corridor_rules import Control, ControlKind
from switch.domain.errors import ConcurrentUpdate
from switch.service.ports import UsageKey
from switch.store.sql_store import Store

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
KEY = UsageKey("KH-TH", "sok_dara@aclb", date(2026, 11, 28), "KHR")


def a_control(**changes: object) -> Control:
    return replace(Control(ControlKind.CORRIDOR, "KH-VN", True, "NAPAS cut-over", "alice", NOW, 1), **changes)  # type: ignore[arg-type]


async def test_a_control_is_stored_and_read_back(store: Store) -> None:
    async with store.unit_of_work() as uow:
        await uow.controls_put(a_control(), None)
        await uow.controls_put(a_control(kind=ControlKind.PARTNER, subject="napas"), None)
    async with store.reader() as uow:
        assert await uow.controls_get() == [a_control(), a_control(kind=ControlKind.PARTNER, subject="napas")]


async def test_a_second_first_insert_of_one_control_is_a_concurrent_update(store: Store) -> None:
    async with store.unit_of_work() as uow:
        await uow.controls_put(a_control(), None)
    with pytest.raises(ConcurrentUpdate):
        async with store.unit_of_work() as uow:
            await uow.controls_put(a_control(changed_by="bob"), None)
    async with store.reader() as uow:
        assert [c.changed_by for c in await uow.controls_get()] == ["alice"]


async def test_an_update_checks_the_version_it_read(store: Store) -> None:
    async with store.unit_of_work() as uow:
        await uow.controls_put(a_control(), None)
    async with store.unit_of_work() as uow:
        await uow.controls_put(a_control(off=False, changed_by="bob", version=2), 1)
    with pytest.raises(ConcurrentUpdate):
        async with store.unit_of_work() as uow:
            await uow.controls_put(a_control(changed_by="carol", version=2), 1)  # read version 1: stale
    async with store.reader() as uow:
        (stored,) = await uow.controls_get()
    assert (stored.off, stored.changed_by, stored.version) == (False, "bob", 2)


async def test_usage_is_zero_until_added_and_then_adds_up(store: Store) -> None:
    other = KEY._replace(day=date(2026, 11, 29))
    async with store.unit_of_work() as uow:
        assert await uow.usage_claim([KEY, other]) == {KEY: 0, other: 0}
        await uow.usage_add([(KEY, 150_000_000), (KEY, 50_000_000)])
    async with store.unit_of_work() as uow:
        assert await uow.usage_claim([KEY, other]) == {KEY: 200_000_000, other: 0}
        await uow.usage_add([(KEY, 1)])
    async with store.reader() as uow:
        assert (await uow.usage_claim([KEY]))[KEY] == 200_000_001


async def test_usage_rolled_back_is_not_counted(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.unit_of_work() as uow:
            await uow.usage_claim([KEY])
            await uow.usage_add([(KEY, 5)])
            raise RuntimeError("the admission failed after counting")
    async with store.reader() as uow:
        assert (await uow.usage_claim([KEY]))[KEY] == 0


async def test_two_admissions_of_one_debtor_on_postgresql_decide_one_after_the_other(pg_store: Store) -> None:
    """The second claim waits for the first transaction and reads what it left: no lost update,
    whether or not the usage row existed before."""
    other = Store(pg_store.url, pg_schema=pg_store.pg_schema)
    await other.start(migrate=False)
    first_claimed = asyncio.Event()
    release = asyncio.Event()
    seen: list[int] = []

    async def first() -> None:
        async with pg_store.unit_of_work() as uow:
            seen.append((await uow.usage_claim([KEY]))[KEY])
            first_claimed.set()
            await release.wait()
            await uow.usage_add([(KEY, 100)])

    async def second() -> None:
        await first_claimed.wait()
        async with other.unit_of_work() as uow:
            seen.append((await uow.usage_claim([KEY]))[KEY])
            await uow.usage_add([(KEY, 100)])

    try:
        one = asyncio.create_task(first())
        two = asyncio.create_task(second())
        await first_claimed.wait()
        await asyncio.sleep(0.3)
        assert len(seen) == 1  # the second is still waiting for the first's lock
        release.set()
        await asyncio.gather(one, two)
    finally:
        await other.close()
    assert seen == [0, 100]
    async with pg_store.reader() as uow:
        assert (await uow.usage_claim([KEY]))[KEY] == 200
