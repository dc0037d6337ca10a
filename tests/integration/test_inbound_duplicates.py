"""Duplicate and conflicting inbound payments are answered to the partner that sent them (real
switch, real broker, each database): PromptPay books a payment; LAPNet, which runs its own
simulator here, reuses its UETR; PromptPay resends it, changes it, and reuses a message id. Each
sender hears about its own message, and the booked payment does not change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

from adapters.base import load_profile
from adapters.simulator import SIMULATORS, PartnerSimulator
from adapters.simulator_inbound import InboundSpec, ReceivedAnswer
from iso20022.schemas import SchemaSet, default_schema_dir
from switch.broker import TansuBroker, free_port
from switch.store.sql_store import Store
from switch.tls import load_simulator_tls
from tests.integration.harness import Running, partner_session, partner_signing, pki_dir, running_switch, signed_as
from tests.integration.test_inbound import reply
from tests.integration.test_pipeline import collect

settle_s_max = 60.0
SPEC = InboundSpec(amount="40000", currency="KHR", creditor_name="Sok Dara", creditor_account="sok_dara@aclb")


async def _received(sim: PartnerSimulator, until: Callable[[list[ReceivedAnswer]], bool]) -> list[ReceivedAnswer]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_s_max
    while not until(sim.inbound.received) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return list(sim.inbound.received)


async def _post(http: aiohttp.ClientSession, url: str, body: bytes) -> int:
    async with http.post(url, data=body, headers={"Content-Type": "application/xml; charset=utf-8"}) as resp:
        return resp.status


async def _payment(http: aiohttp.ClientSession, run: Running, uetr: str) -> tuple[int, dict[str, object]]:
    async with http.get(f"{run.url}/v1/payments/{uetr}", headers=run.auth, ssl=run.ops_ssl()) as resp:
        return resp.status, await resp.json()


async def test_duplicates_are_answered_to_the_partner_that_sent_them(broker: TansuBroker, store: Store) -> None:
    lapnet_port = free_port()
    async with running_switch(
        broker, store, partner_urls={"lapnet": f"https://127.0.0.1:{lapnet_port}"}
    ) as run, partner_session("promptpay") as http, partner_session("lapnet") as lapnet_http:
        lapnet = SIMULATORS["lapnet"](
            load_profile(Path(run.config.config_dir) / "partners" / "lapnet.toml"),
            SchemaSet(Path(default_schema_dir())),
            callback_url=f"{run.partner_url}/iso20022/lapnet",
            tls=load_simulator_tls(pki_dir(), "lapnet"),
            signing=partner_signing("lapnet"),
        )
        await lapnet.start(port=lapnet_port)
        promptpay = run.sim
        try:
            (uetr,) = await promptpay.inbound.send(http, [SPEC])
            await collect(run, run.config.kafka.inbound_topic, until=lambda rs: len(rs) >= 1)
            _, booked = await _payment(http, run, uetr)

            # another network reuses the UETR while the payment waits for its participant
            _, _, lapnet_body = lapnet.inbound.build(SPEC.model_copy(update={"uetr": uetr}), now=datetime.now(timezone.utc))
            assert await _post(lapnet_http, f"{run.partner_url}/iso20022/lapnet", signed_as("lapnet", lapnet_body)) == 202
            got = await _received(lapnet, lambda rs: len(rs) >= 1)
            assert [(a.uetr, a.status, a.reason_code) for a in got] == [(uetr, "RJCT", "DUPL")]
            assert got[0].message_id.startswith("D")
            assert promptpay.inbound.received == []

            # the payment's own partner gets the payment's decision, once
            await reply(run, [{"version": 1, "uetr": uetr, "participant": "ACLBKHPPXXX", "decision": "ACCEPT"}])
            got = await _received(promptpay, lambda rs: len(rs) >= 1)
            assert [(a.uetr, a.status, a.reason_code, a.message_id[0]) for a in got] == [(uetr, "ACSC", None, "R")]

            # the same partner resending the same payment gets the stored answer again
            await promptpay.inbound.send(http, [SPEC.model_copy(update={"uetr": uetr})])
            got = await _received(promptpay, lambda rs: len(rs) >= 2)
            assert got[1] == got[0]

            # the same partner reusing the UETR for other content is refused DUPL
            await promptpay.inbound.send(http, [SPEC.model_copy(update={"uetr": uetr, "amount": "50000"})])
            got = await _received(promptpay, lambda rs: len(rs) >= 3)
            assert (got[2].uetr, got[2].status, got[2].reason_code) == (uetr, "RJCT", "DUPL")
            assert got[2].message_id.startswith("D")

            # the same partner reusing a message id (AppHdr BizMsgIdr) for another payment: a signed
            # message replayed with another Document, refused at the door (409 DU01), unbooked
            message_id = "IPRO-reused-message-id-0001"
            (first,) = await promptpay.inbound.send(http, [SPEC.model_copy(update={"message_id": message_id})])
            (second,) = await promptpay.inbound.send(
                http, [SPEC.model_copy(update={"message_id": message_id, "creditor_name": "Keo Vanna"})]
            )
            assert promptpay.inbound.stats["inbound_http_409"] == 1
            assert (await _payment(http, run, second))[0] == 404
            assert (await _payment(http, run, first))[1]["state"] == "SUBMITTED"
            assert not any(a.uetr == second for a in promptpay.inbound.received)

            # LAPNet resending its refused message (signed anew) gets the stored DUPL answer again
            assert await _post(lapnet_http, f"{run.partner_url}/iso20022/lapnet", signed_as("lapnet", lapnet_body)) == 202
            got = await _received(lapnet, lambda rs: len(rs) >= 2)
            assert got[1] == got[0]
            async with store.reader() as uow:
                stored = await uow.outbox_by_message_ids("partner", [got[0].message_id])
            assert [(m.destination, m.key) for m in stored] == [("lapnet", uetr)]
            assert promptpay.inbound.stats["answers_changed"] == 0

            # nothing about the original payment changed
            status, payment = await _payment(http, run, uetr)
            assert (status, payment["partner"], payment["state"]) == (200, "promptpay", "COMPLETED")
            assert payment["history"][: len(booked["history"])] == booked["history"]  # type: ignore[index]
            assert [h["to"] for h in payment["history"]] == ["RECEIVED", "QUOTED", "SUBMITTED", "COMPLETED"]  # type: ignore[union-attr]
            assert (payment["source_amount"], payment["debtor"]) == (booked["source_amount"], booked["debtor"])
        finally:
            await lapnet.stop()
