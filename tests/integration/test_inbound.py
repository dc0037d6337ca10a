"""Inbound payments end to end (TH -> KH over the PromptPay simulator, real broker, each
database): the partner posts pacs.008s, the switch books them and publishes them on the inbound
topic, the beneficiary participants confirm, reject or stay silent, and the partner receives
exactly one pacs.002 decision per payment; resends get the same answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaProducer

from adapters.simulator_inbound import InboundSpec
from switch.broker import TansuBroker
from switch.contracts import InboundPaymentV1
from switch.store.sql_store import Store
from tests.integration.harness import Running, partner_session, running_switch, signed
from tests.integration.test_pipeline import collect

settle_s_max = 60.0


async def reply(run: Running, replies: list[dict[str, Any] | bytes]) -> None:
    """Each reply signed by the participant it answers for (harness.signed)."""
    producer = AIOKafkaProducer(bootstrap_servers=run.config.kafka.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for r in replies:
            value = r if isinstance(r, bytes) else json.dumps(r).encode()
            await producer.send_and_wait(run.config.kafka.inbound_replies_topic, value=value, headers=signed(value))
    finally:
        await producer.stop()


async def answers_for(run: Running, uetrs: list[str]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_s_max
    while True:
        answers = run.sim.inbound.summary()["answers"]
        if all(u in answers for u in uetrs) or loop.time() > deadline:
            return answers
        await asyncio.sleep(0.1)


async def test_inbound_payments_are_booked_answered_and_deduplicated(broker: TansuBroker, store: Store) -> None:
    specs = {
        "mobile_ok": InboundSpec(amount="40000", currency="KHR", creditor_name="Sok Dara", creditor_mobile="+855 12 345 678",
                                 instructed_amount="333.20", exchange_rate="120.05"),
        "account_reject": InboundSpec(amount="12.50", currency="USD", creditor_name="Chan Sophea", creditor_account="chan_sophea@abaa"),
        "silent": InboundSpec(amount="8000", currency="KHR", creditor_name="Keo Vanna", creditor_account="keo_vanna@wing"),
        "unknown_mobile": InboundSpec(amount="8000", currency="KHR", creditor_name="Nobody", creditor_mobile="85517000111"),
        "decimals": InboundSpec(amount="1000.50", currency="KHR", creditor_name="Sok Dara", creditor_account="sok_dara@aclb"),
        "currency": InboundSpec(amount="100.00", currency="THB", creditor_name="Sok Dara", creditor_account="sok_dara@aclb"),
        "no_participant": InboundSpec(amount="9000", currency="KHR", creditor_name="X", creditor_account="x@nobank"),
        "too_much": InboundSpec(amount="9000000", currency="KHR", creditor_name="Sok Dara", creditor_account="sok_dara@aclb"),
    }
    async with running_switch(broker, store, confirm_timeout_s=2.0) as run, partner_session("promptpay") as http:
        names = list(specs)
        uetrs = dict(zip(names, await run.sim.inbound.send(http, [specs[n] for n in names]), strict=True))

        # what the beneficiary participants see on the inbound topic: the three payable ones
        records = await collect(run, run.config.kafka.inbound_topic, until=lambda rs: len(rs) >= 3)
        events = {e.uetr: e for e in (InboundPaymentV1.model_validate_json(r.value) for r in records)}
        assert set(events) == {uetrs["mobile_ok"], uetrs["account_reject"], uetrs["silent"]}
        mobile = events[uetrs["mobile_ok"]]
        assert (mobile.participant, mobile.creditor.account, mobile.creditor.mobile) == ("ACLBKHPPXXX", "sok_dara@aclb", "85512345678")
        assert (mobile.amount.value, mobile.amount.currency, mobile.corridor) == ("40000", "KHR", "TH-KH")
        assert mobile.instructed_amount is not None and mobile.instructed_amount.currency == "THB"
        assert events[uetrs["account_reject"]].participant == "ABAAKHPPXXX"
        # issue 12 (FATF R16): the payer's address and identification travel to the beneficiary participant
        payer = mobile.debtor
        assert payer.address is not None and (payer.address.town, payer.address.country) == ("Bangkok", "TH")
        assert payer.identification is not None and payer.identification.national_id is not None
        assert payer.identification.birth is not None and payer.identification.birth.date == "1980-01-15"
        assert mobile.creditor.address is not None and mobile.creditor.address.town == "Phnom Penh"
        async with store.reader() as uow:
            booked = (await uow.payments_get([uetrs["mobile_ok"]]))[uetrs["mobile_ok"]]
        assert booked.debtor.address is not None and booked.debtor.address.street == "Sukhumvit Road"

        await reply(run, [
            {"version": 1, "uetr": uetrs["mobile_ok"], "participant": "ACLBKHPPXXX", "decision": "ACCEPT"},
            {"version": 1, "uetr": uetrs["account_reject"], "participant": "ABAAKHPPXXX", "decision": "REJECT", "reason_code": "AC04"},
            # another participant cannot decide a payment that is not its customer's
            {"version": 1, "uetr": uetrs["silent"], "participant": "ACLBKHPPXXX", "decision": "ACCEPT"},
            b"{not json",
        ])
        answers = await answers_for(run, list(uetrs.values()))
        got = {n: (answers[uetrs[n]]["status"], answers[uetrs[n]]["reason_code"]) for n in names}
        assert got == {
            "mobile_ok": ("ACSC", None),
            "account_reject": ("RJCT", "AC04"),
            "silent": ("RJCT", "AB05"),
            "unknown_mobile": ("RJCT", "BE23"),
            "decimals": ("RJCT", "CH20"),
            "currency": ("RJCT", "CURR"),
            "no_participant": ("RJCT", "AC01"),
            "too_much": ("RJCT", "AM02"),
        }

        # a reply after the timeout changes nothing; a resend (same UETR, new message) gets the same answer
        await reply(run, [{"version": 1, "uetr": uetrs["silent"], "participant": "WINGKHPPXXX", "decision": "ACCEPT"}])
        await run.sim.inbound.send(http, [specs["mobile_ok"].model_copy(update={"uetr": uetrs["mobile_ok"]}),
                                          specs["silent"].model_copy(update={"uetr": uetrs["silent"]})])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle_s_max
        while run.sim.inbound.stats["answers_repeated"] < 2 and loop.time() < deadline:
            await asyncio.sleep(0.1)
        assert run.sim.inbound.stats["answers_repeated"] == 2
        assert run.sim.inbound.stats["answers_changed"] == 0

        async with http.get(f"{run.url}/v1/payments/{uetrs['mobile_ok']}", headers=run.auth, ssl=run.ops_ssl()) as resp:
            payment = await resp.json()
        assert (payment["direction"], payment["state"], payment["participant"]) == ("inbound", "COMPLETED", "ACLBKHPPXXX")
        assert [h["to"] for h in payment["history"]] == ["RECEIVED", "QUOTED", "SUBMITTED", "COMPLETED"]
        async with http.get(f"{run.url}/v1/payments/{uetrs['silent']}", headers=run.auth, ssl=run.ops_ssl()) as resp:
            silent = await resp.json()
        assert (silent["state"], silent["reason_code"]) == ("REJECTED", "AB05")

        # the unreadable reply went to the dead-letter topic with its reason
        dead = await collect(run, run.config.kafka.dlq_topic, until=lambda rs: len(rs) >= 1)
        assert dead[0].value == b"{not json"
        assert dict(dead[0].headers)["mekong.reason_code"] == b"FF02"

        # participants hear the final outcome on the status topic, marked inbound
        statuses = await collect(
            run, run.config.kafka.status_topic,
            until=lambda rs: {json.loads(r.value)["uetr"] for r in rs} >= {uetrs["mobile_ok"], uetrs["silent"], uetrs["account_reject"]},
        )
        finals = {json.loads(r.value)["uetr"]: json.loads(r.value) for r in statuses}
        assert finals[uetrs["silent"]]["direction"] == "inbound"
        assert finals[uetrs["silent"]]["reason_code"] == "AB05"

        # the switch is still up and counts what it did
        async with http.get(f"{run.url}/metrics", ssl=run.ops_ssl()) as resp:
            text = await resp.text()
        assert 'switch_payments_total{corridor="TH-KH",outcome="completed"}' in text



async def test_an_answer_the_partner_could_not_take_goes_out_after_a_restart(broker: TansuBroker, store: Store) -> None:
    from switch.entrypoints.main import Switch

    spec = InboundSpec(amount="40000", currency="KHR", creditor_name="Sok Dara", creditor_account="sok_dara@aclb")
    async with running_switch(broker, store) as run, partner_session("promptpay") as http:
        (uetr,) = await run.sim.inbound.send(http, [spec])
        await collect(run, run.config.kafka.inbound_topic, until=lambda rs: len(rs) >= 1)
        await run.sim.stop()  # the network goes away before the participant answers
        await reply(run, [{"version": 1, "uetr": uetr, "participant": "ACLBKHPPXXX", "decision": "ACCEPT"}])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle_s_max
        unsent: list[Any] = []
        while not unsent and loop.time() < deadline:  # the sender retried, gave up, kept the row
            await asyncio.sleep(0.2)
            async with store.reader() as uow:
                unsent = [m for m in await uow.outbox_pending("partner", 10) if m.message_id.startswith("R")]
        assert len(unsent) == 1 and unsent[0].key == uetr
        await asyncio.sleep(0.5)
        await run.switch.stop(drain_s=0)
        assert uetr not in run.sim.inbound.answers

        await run.sim.start(port=run.sim_port)  # the network is back, and so is the switch
        again = Switch(run.config, store=store)
        await again.start()
        try:
            answers = await answers_for(run, [uetr])
        finally:
            await again.stop()
        assert (answers[uetr]["status"], answers[uetr]["answers"]) == ("ACSC", 1)
        async with store.reader() as uow:
            assert [m for m in await uow.outbox_pending("partner", 10) if m.message_id.startswith("R")] == []
