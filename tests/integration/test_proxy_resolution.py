"""Proxy resolution toward PromptPay (acmt.023 -> acmt.024) before the pacs.008, end to end: the
resolved bank becomes the creditor agent, the resolved account travels beside the proxy, an
unknown proxy is rejected BE23 at admission (nothing is sent), and answers are cached."""

from __future__ import annotations

import json
import uuid

from adapters.simulator import SimBehaviour
from switch.broker import TansuBroker
from switch.store.sql_store import Store
from tests.integration.harness import running_switch
from tests.integration.test_pipeline import collect, finals_by_id, instruction, publish

KNOWN = "0066812345678"
UNKNOWN = "0066899999999"


async def test_proxies_are_resolved_before_the_payment_goes_out(broker: TansuBroker, store: Store) -> None:
    tag = uuid.uuid4().hex[:6]
    mobile = lambda value: {"name": "Somchai Jaidee", "proxy": {"type": "MOBILE", "value": value}}  # noqa: E731
    docs = [instruction(f"X{tag}-1", creditor=mobile(KNOWN)), instruction(f"X{tag}-2", creditor=mobile(UNKNOWN))]
    async with running_switch(broker, store, SimBehaviour(unknown_proxies=frozenset({UNKNOWN}))) as run:
        await publish(run, [(d["instruction_id"], json.dumps(d).encode()) for d in docs])
        ids = {d["instruction_id"] for d in docs}
        records = await collect(run, run.config.kafka.status_topic, until=lambda rs: ids <= set(finals_by_id(rs)))
        finals = finals_by_id(records)
        assert finals[f"X{tag}-1"][0]["state"] == "COMPLETED"
        assert (finals[f"X{tag}-2"][0]["state"], finals[f"X{tag}-2"][0]["reason_code"]) == ("REJECTED", "BE23")
        assert finals[f"X{tag}-2"][0]["uetr"] is None  # refused at admission: no payment, nothing sent
        assert run.sim.stats["accepted"] == 1 and not any(k.startswith("rejected") for k in run.sim.stats)
        lookups = run.sim.stats["proxy_lookups"]
        assert lookups == 2

        async with run.ops_session() as http, http.get(f"{run.url}/v1/instructions/ACLBKHPPXXX/X{tag}-1", headers=run.auth) as resp:
            payment = await resp.json()
        creditor = payment["creditor"]
        assert creditor["proxy"] == KNOWN and len(creditor["agent"]) == 3 and creditor["agent"].isdigit()
        assert creditor["account"].isdigit()
        sent = run.sim.samples["pacs008"].decode()
        assert f"<MmbId>{creditor['agent']}</MmbId>" in sent and f"<Id>{creditor['account']}</Id>" in sent

        # the same proxy again within the cache's lifetime: no second look-up
        again = instruction(f"X{tag}-3", creditor=mobile(KNOWN))
        await publish(run, [(again["instruction_id"], json.dumps(again).encode())])
        records = await collect(run, run.config.kafka.status_topic, until=lambda rs: f"X{tag}-3" in finals_by_id(rs))
        assert finals_by_id(records)[f"X{tag}-3"][0]["state"] == "COMPLETED"
        assert run.sim.stats["proxy_lookups"] == lookups
