"""The FX quotes table (issue 11, migration 0009) on both databases: a quote stored and read
back exactly, found by the Kafka request that made it, and used once: the conditional update
refuses a second user (another replica that read the same version) and writes nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from switch.domain.errors import ConcurrentUpdate
from switch.store.sql_store import Store
from tests.unit.test_quotes import sample_stored_quote


async def test_a_quote_is_stored_and_read_back_exactly(store: Store) -> None:
    sq = replace(sample_stored_quote("Q" + "1" * 24), request_id="REQ-1")
    async with store.unit_of_work() as uow:
        await uow.quotes_add([sq])
    async with store.reader() as uow:
        assert await uow.quotes_get([sq.quote.quote_id]) == {sq.quote.quote_id: sq}
        assert await uow.quotes_by_request(sq.participant, ["REQ-1", "REQ-2"]) == {"REQ-1": sq}
        assert await uow.quotes_by_request("ABAAKHPPXXX", ["REQ-1"]) == {}


async def test_a_quote_is_used_once_and_a_second_user_loses_the_race(store: Store) -> None:
    sq = sample_stored_quote("Q" + "2" * 24)
    quote_id, at = sq.quote.quote_id, sq.quote.created_at
    async with store.unit_of_work() as uow:
        await uow.quotes_add([sq])
    async with store.unit_of_work() as uow:  # replica A: read version 1, used it
        await uow.quotes_use([(quote_id, 1, "uetr-a", "INS-A", at)])
    with pytest.raises(ConcurrentUpdate):
        async with store.unit_of_work() as uow:  # replica B had read version 1 too
            await uow.instructions_add([])
            await uow.quotes_use([(quote_id, 1, "uetr-b", "INS-B", at)])
    async with store.reader() as uow:
        used = (await uow.quotes_get([quote_id]))[quote_id]
    assert (used.used_by_uetr, used.used_by_instruction, used.used_at, used.version) == ("uetr-a", "INS-A", at, 2)


async def test_a_used_quote_cannot_be_used_again_even_at_its_current_version(store: Store) -> None:
    sq = sample_stored_quote("Q" + "3" * 24)
    quote_id, at = sq.quote.quote_id, sq.quote.created_at
    async with store.unit_of_work() as uow:
        await uow.quotes_add([sq])
        await uow.quotes_use([(quote_id, 1, "uetr-a", "INS-A", at)])
    with pytest.raises(ConcurrentUpdate):
        async with store.unit_of_work() as uow:
            await uow.quotes_use([(quote_id, 2, "uetr-b", "INS-B", at)])
