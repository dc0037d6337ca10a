"""KH-LA (LAPNet), KH-VN (NAPAS) and KH-CN (UnionPay) end to end in one process: the real Tansu
broker, the partner's simulator over real HTTP, each database. A payment to a creditor with a
Lao, Vietnamese or Chinese name completes, the partner received it transliterated and the switch
kept the original; then the simulator rejects, in its own words (NAPAS: numeric codes in
Rsn/Prtry), and the participant sees the ISO reason, MS03 for a code the profile does not know."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from adapters.simulator import SimBehaviour
from iso20022 import pacs002, pacs008
from iso20022.parsing import parse_untrusted
from switch.broker import TansuBroker
from switch.contracts import StatusEventV1
from switch.store.sql_store import Store
from tests.factories import PARTNER_SAMPLES, sample_partner_instruction
from tests.integration.harness import Running, running_switch
from tests.integration.test_pipeline import collect, finals_by_id, publish

# partner -> (Latin creditor name on the wire, ISO reject code asked of the simulator, what
# travels in the pacs.002, the detail the participant sees)
CASES: dict[str, tuple[str, str, tuple[str | None, str | None], str]] = {
    "lapnet": ("somphn ekvmani", "AC04", ("AC04", None), "rejected by the beneficiary bank"),
    "napas": ("NGUYEN VAN DUC", "AM04", (None, "51"), "NAPAS code 51: rejected by the beneficiary bank"),
    "unionpay": ("WangXiaoMing", "AC01", ("AC01", None), "rejected by the beneficiary bank"),
}


async def _final(run: Running, instruction: dict[str, Any]) -> dict[str, Any]:
    iid = instruction["instruction_id"]
    await publish(run, [(iid, json.dumps(instruction).encode())])
    records = await collect(run, run.config.kafka.status_topic, until=lambda rs: iid in finals_by_id(rs))
    for record in records:
        StatusEventV1.model_validate_json(record.value)
    return finals_by_id(records)[iid][0]


@pytest.mark.parametrize("partner", sorted(CASES))
async def test_a_payment_completes_and_partner_rejects_arrive_as_iso_reasons(broker: TansuBroker, store: Store, partner: str) -> None:
    latin_name, reject_iso, (wire_code, wire_proprietary), detail = CASES[partner]
    sample = PARTNER_SAMPLES[partner]
    tag = uuid.uuid4().hex[:8]
    async with running_switch(broker, store, partner=partner) as run:
        good = await _final(run, sample_partner_instruction(partner, instruction_id=f"G{tag}", amount={"value": "150000", "currency": "KHR"}))
        assert (good["state"], good["corridor"], good["target_amount"]["currency"]) == ("COMPLETED", sample["corridor"], sample["currency"])
        assert run.sim.stats["accepted"] == 1

        sent = pacs008.parse(parse_untrusted(run.sim.samples["pacs008"]))
        assert sent.settlement.clearing_system_proprietary == run.sim.profile.clearing_system_proprietary
        (tx,) = sent.transactions
        assert tx.creditor.name == latin_name and tx.uetr == good["uetr"]
        # issue 12: the instruction's party data reached the partner, TwnNm and Ctry for both parties
        assert tx.debtor.address is not None and (tx.debtor.address.town, tx.debtor.address.country) in {
            ("Phnom Penh", "KH"), ("PHNOM PENH", "KH")}
        assert tx.debtor.birth is not None and tx.debtor.identification is not None
        assert tx.creditor.address is not None and tx.creditor.address.town and tx.creditor.address.country
        async with run.ops_session() as http, http.get(f"{run.url}/v1/payments/{good['uetr']}", headers=run.auth) as resp:
            body = await resp.json()
        assert body["creditor"]["name"] == sample["creditor"].name  # the original script, kept

        run.sim.behaviour = SimBehaviour(reject_rate=1.0, reject_codes=(reject_iso,))
        rejected = await _final(run, sample_partner_instruction(partner, instruction_id=f"R{tag}", amount={"value": "160000", "currency": "KHR"}))
        assert (rejected["state"], rejected["reason_code"], rejected["reason"]) == ("REJECTED", reject_iso, detail)
        reports = [r for r in run.sim._seen.values() if r is not None]
        reasons = [pacs002.parse(parse_untrusted(r.report)).transactions[0].reasons for r in reports]
        assert [(x.code, x.proprietary) for x in reasons[-1]] == [(wire_code, wire_proprietary)]

        run.sim.behaviour = SimBehaviour(reject_rate=1.0, reject_codes=("99",))  # a code no profile knows
        unknown = await _final(run, sample_partner_instruction(partner, instruction_id=f"U{tag}", amount={"value": "170000", "currency": "KHR"}))
        assert (unknown["state"], unknown["reason_code"]) == ("REJECTED", "MS03")
        assert unknown["reason"].startswith(f"{run.sim.profile.network} code 99")
