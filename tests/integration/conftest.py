"""Real parts for integration tests: the Tansu broker (started here, on a free port) and both
databases. PostgreSQL on 127.0.0.1:5432 (database `test`) is used when it answers; when it does
not, its tests fail loudly under CI=true and are reported as skipped with the reason otherwise."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from switch.broker import TansuBroker
from switch.config import DEFAULT_CONFIG_DIR
from switch.pki import init_pki
from switch.store.sql_store import Store

PG_URL = os.environ.get("MEKONG_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def _pg_answers() -> bool:
    engine = create_async_engine(PG_URL)
    try:
        async with asyncio.timeout(3):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False
    finally:
        await engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One development PKI for the session, made as `mekong pki init` makes it; the switch, the
    simulators and the `mekong sim` subprocesses find it through MEKONG_PKI_DIR."""
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, config_dir=DEFAULT_CONFIG_DIR, now=datetime.now(timezone.utc), force=True)
    previous = os.environ.get("MEKONG_PKI_DIR")
    os.environ["MEKONG_PKI_DIR"] = str(directory)
    yield directory
    if previous is None:
        os.environ.pop("MEKONG_PKI_DIR", None)
    else:
        os.environ["MEKONG_PKI_DIR"] = previous


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as b:
        yield b


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Store]:  # type: ignore[no-untyped-def]
    """A migrated, empty store on each database."""
    if request.param == "sqlite":
        s = Store(f"sqlite+aiosqlite:///{tmp_path / 'mekong.db'}")
        await s.start()
        yield s
        await s.close()
        return
    async with _postgres_store() as s:
        yield s


@pytest.fixture
async def pg_store() -> AsyncIterator[Store]:
    """A migrated, empty store on PostgreSQL only (several replicas share it)."""
    async with _postgres_store() as s:
        yield s


@asynccontextmanager
async def _postgres_store() -> AsyncIterator[Store]:
    if not await _pg_answers():
        message = f"PostgreSQL does not answer at {PG_URL}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI requires it")
        pytest.skip(message)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    s = Store(PG_URL, pg_schema=schema)
    await s.start()
    try:
        yield s
    finally:
        await s.close()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
