"""What the running switch records in its audit log (real switch, real broker, each database):
the configuration it loaded at start, each refusal at the partner endpoint, each dead letter;
and nothing for a payment that goes through."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from pathlib import Path

import pytest

from switch import limits
from switch.broker import TansuBroker
from switch.domain.audit import AuditEntry, ChainWalk
from switch.service import audit
from switch.store.sql_store import Store
from tests.integration.harness import Running, partner_session, running_switch, signed_as
from tests.integration.test_kafka_edge import publish, still_answers

wait_s_max = 20.0


async def entries(store: Store, action: str | None = None) -> list[AuditEntry]:
    async with store.reader() as uow:
        found = await uow.audit_entries(limit=limits.audit_read_batch_max)
    return [e for e in found if action is None or e.action == action]


async def chain_holds(store: Store) -> bool:
    walk = ChainWalk()
    walk.feed(await entries(store))
    return walk.broken is None


async def test_each_configuration_file_loaded_at_start_is_an_audit_entry(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run:
        loaded = await entries(store, audit.CONFIG_LOADED)
        config_dir = Path(run.config.config_dir)
        expected = sorted(config_dir.rglob("*.toml"))
        assert [e.subject for e in loaded] == [str(p) for p in expected]
        for e, path in zip(loaded, expected, strict=True):
            assert e.detail["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
            assert e.detail["replica"] == run.switch.replica_id and e.actor == f"replica {run.switch.replica_id}"
        assert await chain_holds(store)


async def _post(run: Running, partner: str, body: bytes) -> tuple[int, dict[str, str]]:
    async with partner_session("promptpay") as http, http.post(  # as PromptPay, with its certificate
        f"{run.partner_url}/iso20022/{partner}", data=body, headers={"Content-Type": "application/xml"}
    ) as resp:
        return resp.status, await resp.json()


PACS002 = (
    b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"><FIToFIPmtStsRpt><GrpHdr><MsgId>S-AUDIT-1</MsgId>'
    b"</GrpHdr></FIToFIPmtStsRpt></Document>"
)
REFUSALS = {  # what is posted, to which partner: the status and reason code it is refused with
    "not the certificate's partner": ("nosuchnetwork", lambda: PACS002, 403, "AG01"),
    "over-limit body": ("promptpay", lambda: b"<" * (limits.xml_body_bytes_max + 1), 413, "FF01"),
    "XML rejected": ("promptpay", lambda: b'<!DOCTYPE d [<!ENTITY e "x">]><d>&e;</d>', 400, "FF01"),
    "unsigned": ("promptpay", lambda: PACS002, 400, "DS0A"),
    "signed by another partner": ("promptpay", lambda: signed_as("lapnet", PACS002), 403, "AG01"),  # Fr is LAPNet
    "altered after signing": ("promptpay", lambda: signed_as("promptpay", PACS002).replace(b"S-AUDIT-1<", b"S-AUDIT-2<"), 403, "DS0B"),
    "schema invalid": ("promptpay", lambda: signed_as("promptpay", PACS002), 400, "FF01"),
}


@pytest.mark.parametrize("kind", list(REFUSALS))
async def test_a_refusal_at_the_partner_endpoint_is_audited(broker: TansuBroker, store: Store, kind: str) -> None:
    partner, make_body, status, reason_code = REFUSALS[kind]
    body = make_body()
    async with running_switch(broker, store) as run:
        answer = await _post(run, partner, body)
        assert (answer[0], answer[1]["reason_code"]) == (status, reason_code)
        (refused,) = await entries(store, audit.HTTP_REFUSED)  # written before the answer
        assert refused.subject == f"/iso20022/{partner}" and refused.actor == "peer 127.0.0.1"
        assert (refused.detail["status"], refused.detail["reason_code"]) == (status, reason_code)
        assert refused.detail["error"] == answer[1]["error"][: limits.audit_text_chars_max]
        assert await chain_holds(store)


async def test_a_dead_letter_is_audited_by_its_coordinates_and_a_payment_that_goes_through_is_not(
    broker: TansuBroker, store: Store
) -> None:
    value = b'{"participant": "ACLBKHPPXXX", "debtor": {"name": "Sok Dara"'  # cut short: malformed JSON
    async with running_switch(broker, store) as run:
        topic = run.config.kafka.instructions_topic
        await publish(run, topic, [(f"bad-{uuid.uuid4().hex[:8]}", value)])
        async with asyncio.timeout(wait_s_max):
            while not (dead := await entries(store, audit.KAFKA_DEAD_LETTERED)):
                await asyncio.sleep(0.1)
        (entry,) = dead
        assert entry.subject.startswith(f"{topic}:") and entry.actor == f"kafka {topic}"
        assert entry.detail["category"] == "malformed_json" and entry.detail["reason_code"] == "FF02"
        assert entry.detail["sha256"] == hashlib.sha256(value).hexdigest() and entry.detail["value_bytes"] == len(value)
        assert "Sok Dara" not in json.dumps(entry.detail)
        before = len(await entries(store))
        await still_answers(run)  # an instruction admitted, sent, confirmed by the partner
        assert len(await entries(store)) == before
        assert await chain_holds(store)
