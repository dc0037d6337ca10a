"""Personal data end to end (issue 8), each database: a payment to a NAPAS card completes; the
partner received the card number; the payments table (read directly) and every message to the
participant hold only its token; the API shows it masked, and only to those allowed to see it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from switch.broker import TansuBroker
from switch.store import tables
from switch.store.sql_store import Store
from tests.factories import sample_partner_instruction
from tests.integration.harness import running_switch
from tests.integration.test_partner_corridors import _final

CARD = "9704366612345678"


async def _rows(store: Store, uetr: str) -> list[dict[str, Any]]:
    async with store.reader() as uow:
        def read(conn: Any) -> list[dict[str, Any]]:
            return [dict(r._mapping) for r in conn.execute(select(tables.payments).where(tables.payments.c.uetr == uetr))]

        return await uow.run_sync(read)


async def test_a_card_payment_is_sent_in_full_stored_as_a_token_and_shown_masked(broker: TansuBroker, store: Store) -> None:
    doc = sample_partner_instruction("napas", instruction_id=f"C{uuid.uuid4().hex[:8]}")
    doc["creditor"]["account"] = CARD
    async with running_switch(broker, store, partner="napas") as run:
        final = await _final(run, doc)
        assert final["state"] == "COMPLETED"
        assert CARD.encode() in run.sim.samples["pacs008"]  # the partner got the number
        assert CARD not in repr(final)  # the participant's status event does not carry it
        (row,) = await _rows(store, final["uetr"])
        assert row["creditor_account"].startswith("tok:") and row["creditor_account"].endswith(":9704:5678")
        assert CARD not in repr(row)
        async with run.ops_session(None) as http:
            async with http.get(f"{run.url}/v1/payments/{final['uetr']}", headers=run.auth) as resp:
                assert resp.status == 200
                assert (await resp.json())["creditor"]["account"] == "9704 **** **** 5678"
            async with http.get(f"{run.url}/v1/payments/{final['uetr']}", headers=run.auth_as("participant:ACLBKHPPXXX")) as resp:
                assert resp.status == 200  # its own
            async with http.get(f"{run.url}/v1/payments/{final['uetr']}", headers=run.auth_as("participant:ABAAKHPPXXX")) as resp:
                assert resp.status == 404  # another's: as if it did not exist
            async with http.get(f"{run.url}/v1/payments/{final['uetr']}") as resp:
                assert resp.status == 401 and "Bearer" in resp.headers["WWW-Authenticate"]
        assert (await _rows(store, final["uetr"])) == [row]  # nothing changed by the refusals


async def test_cards_stored_before_tokenisation_are_replaced_by_their_tokens_once(store: Store) -> None:
    from datetime import datetime, timezone

    from adapters.base import load_profile
    from switch.config import DEFAULT_CONFIG_DIR
    from switch.domain.pan import PanTokens
    from switch.domain.payment import Party, PaymentState
    from switch.store.sql_store import protect_stored_cards
    from tests.factories import sample_partner_payment

    now = datetime(2026, 11, 28, tzinfo=timezone.utc)
    old_card = sample_partner_payment("napas", PaymentState.COMPLETED, created_at=now, uetr=str(uuid.uuid4()),
                                      creditor=Party(name="LE VAN NAM", account=CARD, agent="970436"))
    account = sample_partner_payment("napas", PaymentState.COMPLETED, created_at=now, uetr=str(uuid.uuid4()))
    async with store.unit_of_work() as uow:
        await uow.payments_add([old_card, account])
    pans = PanTokens(bytes(range(32)))
    is_card = {"napas": load_profile(DEFAULT_CONFIG_DIR / "partners" / "napas.toml").is_card}
    for expected in (1, 0):  # the second run finds nothing left to do
        async with store.unit_of_work() as uow:
            assert await uow.run_sync(lambda conn: protect_stored_cards(conn, pans, is_card)) == expected
    (card_row,) = await _rows(store, old_card.uetr)
    (account_row,) = await _rows(store, account.uetr)
    assert card_row["creditor_account"] == pans.token(CARD)
    assert account_row["creditor_account"] == account.creditor.account
