"""The audit log in the database (both SQLite and PostgreSQL): appends build one valid chain,
tampering is found and the first broken entry named (by `mekong audit verify` too), and appends
from several connections on PostgreSQL keep a single chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import delete, text, update

from switch.domain.audit import GENESIS_HASH, ChainReport, ChainWalk
from switch.entrypoints.cli import main as cli
from switch.service import audit
from switch.store.sql_store import MIGRATIONS_DIR, Store
from switch.store.tables import audit_log
from tests.fakes import T0

async def _append(store: Store, n: int, *, actor: str = "operator ops@host") -> None:
    for i in range(n):
        async with store.unit_of_work() as uow:
            await audit.audit(uow, at=T0 + timedelta(seconds=i), actor=actor, action="test.action", subject=f"s{i}", detail={"i": i})


async def _verify(store: Store) -> ChainReport:
    walk = ChainWalk()
    async with store.reader() as uow:
        after = 0
        while page := await uow.audit_entries(after_id=after, limit=3):  # small pages: the walk crosses them
            walk.feed(page)
            after = page[-1].id
    return walk.report()


async def _tamper(store: Store, statement) -> None:  # type: ignore[no-untyped-def]
    async with store.unit_of_work() as uow:
        await uow.run_sync(lambda conn: conn.execute(statement))


async def test_appends_build_one_valid_chain(store: Store) -> None:
    await _append(store, 5)
    async with store.reader() as uow:
        entries = await uow.audit_entries(limit=10)
    assert [e.id for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    assert entries[2].detail == {"i": 2} and entries[2].at == T0 + timedelta(seconds=2)
    report = await _verify(store)
    assert report.broken is None and report.entries == 5 and report.head_hash == entries[-1].hash


async def test_several_entries_in_one_transaction_chain_in_order(store: Store) -> None:
    async with store.unit_of_work() as uow:
        await audit.audit_many(uow, [audit.entry(at=T0, actor="a", action="b", subject=str(i)) for i in range(4)])
    await _append(store, 1)
    report = await _verify(store)
    assert (report.broken, report.entries) == (None, 5)


async def test_an_append_rolled_back_leaves_no_gap(store: Store) -> None:
    await _append(store, 1)
    with pytest.raises(RuntimeError):
        async with store.unit_of_work() as uow:
            await audit.audit(uow, at=T0, actor="a", action="b", subject="rolled back")
            raise RuntimeError("the effect failed: the entry goes with it")
    await _append(store, 1)
    report = await _verify(store)
    assert (report.broken, report.entries) == (None, 2)


async def test_a_tampered_detail_is_named_as_a_hash_mismatch(store: Store) -> None:
    await _append(store, 5)
    await _tamper(store, update(audit_log).where(audit_log.c.id == 3).values(detail='{"i":30}'))
    broken = (await _verify(store)).broken
    assert broken is not None and (broken.id, broken.problem) == (3, "hash")


async def test_a_deleted_entry_is_named_as_a_gap(store: Store) -> None:
    await _append(store, 5)
    await _tamper(store, delete(audit_log).where(audit_log.c.id == 2))
    broken = (await _verify(store)).broken
    assert broken is not None and (broken.id, broken.problem) == (3, "gap")


async def test_reordered_entries_are_named_as_a_broken_link(store: Store) -> None:
    await _append(store, 5)
    await _tamper(store, update(audit_log).where(audit_log.c.id == 2).values(id=-2))
    await _tamper(store, update(audit_log).where(audit_log.c.id == 3).values(id=2))
    await _tamper(store, update(audit_log).where(audit_log.c.id == -2).values(id=3))
    broken = (await _verify(store)).broken
    assert broken is not None and (broken.id, broken.problem) == (2, "link")


@pytest.fixture
async def sqlite_store(tmp_path) -> AsyncIterator[Store]:  # type: ignore[no-untyped-def]
    """The CLI opens a store of its own from a URL, and a URL cannot name the test's PostgreSQL
    schema: the commands are run on SQLite (the walk they run is tested on both above)."""
    s = Store(f"sqlite+aiosqlite:///{tmp_path / 'mekong.db'}")
    await s.start()
    yield s
    await s.close()


async def test_audit_verify_exits_0_with_a_summary_then_1_naming_the_tampered_entry(sqlite_store: Store) -> None:
    store = sqlite_store
    await _append(store, 4)
    runner = CliRunner()
    ok = await asyncio.to_thread(runner.invoke, cli, ["audit", "verify", "--url", store.url])
    assert ok.exit_code == 0, ok.output
    assert "audit log intact: 4 entries" in ok.output and T0.isoformat() in ok.output
    await _tamper(store, update(audit_log).where(audit_log.c.id == 2).values(subject="rewritten"))
    bad = await asyncio.to_thread(runner.invoke, cli, ["audit", "verify", "--url", store.url])
    assert bad.exit_code == 1, bad.output
    assert "BROKEN at entry 2: hash mismatch" in bad.output


async def test_audit_show_prints_the_newest_entries_oldest_first(sqlite_store: Store) -> None:
    store = sqlite_store
    await _append(store, 4)
    shown = await asyncio.to_thread(CliRunner().invoke, cli, ["audit", "show", "--last", "2", "--url", store.url])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert [line.split()[0] for line in lines] == ["3", "4"]
    assert "test.action" in lines[0] and '{"i": 2}' in lines[0]


async def test_concurrent_appends_from_two_stores_keep_one_chain(pg_store: Store) -> None:
    other = Store(pg_store.url, pg_schema=pg_store.pg_schema)
    await other.start(migrate=False)
    try:
        await asyncio.gather(*(_append(s, 15, actor=f"replica {n}") for n, s in enumerate([pg_store, other, pg_store, other])))
    finally:
        await other.close()
    report = await _verify(pg_store)
    assert (report.broken, report.entries) == (None, 60)


async def test_the_first_appends_of_an_empty_log_from_two_stores_do_not_fork(pg_store: Store) -> None:
    other = Store(pg_store.url, pg_schema=pg_store.pg_schema)
    await other.start(migrate=False)
    try:
        await asyncio.gather(_append(pg_store, 1), _append(other, 1))
    finally:
        await other.close()
    async with pg_store.reader() as uow:
        count = (await uow.run_sync(lambda conn: conn.execute(text("SELECT count(*) FROM audit_log")))).scalar_one()
    report = await _verify(pg_store)
    assert (report.broken, report.entries, count) == (None, 2, 2)


async def test_db_upgrade_is_audited_with_the_operator_and_the_revisions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    for _ in range(2):
        done = await asyncio.to_thread(CliRunner().invoke, cli, ["db", "upgrade", "--url", url])
        assert done.exit_code == 0, done.output
    store = Store(url)
    await store.start(migrate=False)
    try:
        first, second = await _entries(store)
    finally:
        await store.close()
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()  # the newest migration, whichever it is
    assert (first.action, first.detail["from_revision"], first.detail["to_revision"]) == ("db.upgraded", None, head)
    assert (second.detail["from_revision"], second.detail["to_revision"]) == (head, head)
    assert first.actor.startswith("operator ") and "@" in first.actor and first.subject == url


async def _entries(store: Store):  # type: ignore[no-untyped-def]
    async with store.reader() as uow:
        return await uow.audit_entries(limit=10)


def test_the_database_url_in_an_audit_entry_has_its_password_masked() -> None:
    from switch.store.sql_store import shown_url  # what db upgrade puts in the entry

    masked = shown_url("postgresql+asyncpg://switch:s3cret@db.example:5432/mekong")
    assert "s3cret" not in masked and masked == "postgresql+asyncpg://switch:***@db.example:5432/mekong"
