"""Compliance data rules end to end (issue 12), on the real broker and each database: an
instruction at or above FATF R16's threshold without the debtor's address or identification is
REJECTED RR02 on the status topic while a small one is paid; an inbound pacs.008 above the
threshold without the debtor's address is answered with a pacs.002 RJCT RR02."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from adapters.simulator_inbound import InboundSpec
from switch.broker import TansuBroker
from switch.config import PROJECT_ROOT
from switch.contracts import StatusEventV1
from switch.store.sql_store import Store
from tests.integration.harness import partner_session, running_switch
from tests.integration.test_corridor_controls import _api
from tests.integration.test_inbound import answers_for
from tests.integration.test_pipeline import collect, finals_by_id, instruction, publish

# the sample debtor without the originator data R16 asks for above its threshold (the shared
# samples carry an address and an identification)
BARE_DEBTOR = {"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "KHR"}


async def test_a_large_instruction_without_the_debtors_address_is_rejected_rr02_and_a_small_one_is_paid(
    broker: TansuBroker, store: Store
) -> None:
    tag = uuid.uuid4().hex[:6]
    small, large = f"C{tag}-small", f"C{tag}-large"
    records = [
        (small, json.dumps(instruction(small)).encode()),  # KHR 150,000: below R16's KHR 4,065,000
        (large, json.dumps(instruction(large, amount={"value": "4900000", "currency": "KHR"}, debtor=BARE_DEBTOR)).encode()),
    ]
    async with running_switch(broker, store) as run:
        await publish(run, records)
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: {small, large} <= set(finals_by_id(rs)))
        finals = {k: v[0] for k, v in finals_by_id(statuses).items()}
        refused = StatusEventV1.model_validate(finals[large])
        assert (refused.state, refused.reason_code) == ("REJECTED", "RR02")
        assert refused.reason is not None and "debtor's address" in refused.reason and "profile fatf_r16" in refused.reason
        assert finals[small]["state"] == "COMPLETED"
        async with run.ops_session() as http, http.get(f"{run.url}/metrics") as resp:
            text = await resp.text()
        assert 'switch_rejects_total{reason_code="RR02",stage="admission"} 1.0' in text


async def test_an_inbound_payment_above_the_threshold_without_the_debtors_address_gets_a_pacs002_rjct_rr02(
    broker: TansuBroker, store: Store
) -> None:
    specs = {
        "large": InboundSpec(amount="4500000", currency="KHR", creditor_name="Sok Dara", creditor_account="sok_dara@aclb",
                             compliance=False),  # the payer's PstlAdr with its country only, no identification
        "small": InboundSpec(amount="40000", currency="KHR", creditor_name="Sok Dara", creditor_account="sok_dara@aclb"),
    }
    async with running_switch(broker, store, confirm_timeout_s=2.0) as run, partner_session("promptpay") as http:
        uetrs = dict(zip(specs, await run.sim.inbound.send(http, list(specs.values())), strict=True))
        answers = await answers_for(run, [uetrs["large"]])
        assert (answers[uetrs["large"]]["status"], answers[uetrs["large"]]["reason_code"]) == ("RJCT", "RR02")
        async with http.get(f"{run.url}/v1/payments/{uetrs['large']}", headers=run.auth, ssl=run.ops_ssl()) as resp:
            payment = await resp.json()
        assert (payment["direction"], payment["state"], payment["reason_code"]) == ("inbound", "REJECTED", "RR02")
        # the small one is booked and handed to the beneficiary participant (it waits for its reply)
        records = await collect(run, run.config.kafka.inbound_topic, until=lambda rs: len(rs) >= 1)
        assert [json.loads(r.value)["uetr"] for r in records] == [uetrs["small"]]


async def test_a_reloaded_threshold_applies_to_the_next_instruction(broker: TansuBroker, store: Store, tmp_path: Path) -> None:
    """KHR 1,000,000 passes R16's KHR 4,065,000 threshold; lowered to KHR 500,000 by a reload
    (POST /v1/config/reload, as SIGHUP), the same payment is refused RR02."""
    config_dir = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    tag = uuid.uuid4().hex[:6]
    before, after = f"L{tag}-before", f"L{tag}-after"
    amount = {"value": "1000000", "currency": "KHR"}
    async with running_switch(broker, store, config_dir=config_dir) as run:
        await publish(run, [(before, json.dumps(instruction(before, amount=amount, debtor=BARE_DEBTOR)).encode())])
        await collect(run, run.config.kafka.status_topic, until=lambda rs: before in finals_by_id(rs))
        path = config_dir / "compliance.toml"
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace('KHR = "4065000"', 'KHR = "500000"', 1), encoding="utf-8")
        status, answer = await _api(run, "POST", "/v1/config/reload", template="/v1/config/reload")
        assert (status, answer["applied"], answer["compliance_profiles_changed"], answer["corridors_changed"]) == (
            200, True, ["fatf_r16"], [])
        await publish(run, [(after, json.dumps(instruction(after, amount=amount, debtor=BARE_DEBTOR)).encode())])
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: {before, after} <= set(finals_by_id(rs)))
        finals = {k: v[0] for k, v in finals_by_id(statuses).items()}
        assert (finals[before]["state"], finals[before]["reason_code"]) == ("COMPLETED", None)
        assert (finals[after]["state"], finals[after]["reason_code"]) == ("REJECTED", "RR02")
