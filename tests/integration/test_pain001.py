"""pain.001 in, pain.002 out, end to end (real broker, PromptPay simulator, each database): each
transaction of a multi-PmtInf pain.001 becomes its own payment, the sender gets an acceptance
pain.002 (ACCP / RJCT per transaction) and one pain.002 per payment when it is final; a pain.001
whose control sum does not add up goes to the dead-letter topic with AM10."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from aiokafka import AIOKafkaProducer

from iso20022 import pain002
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet, default_schema_dir
from switch.broker import TansuBroker
from switch.store.sql_store import Store
from switch.tools.pain001_samples import pain001_from_instructions
from tests.factories import sample_instruction
from tests.integration.harness import Running, running_switch, signed
from tests.integration.test_pipeline import collect


async def publish(run: Running, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
    """A pain.001 of ACLEDA's (its debtor agent), signed with ACLEDA's key."""
    producer = AIOKafkaProducer(bootstrap_servers=run.config.kafka.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(run.config.kafka.instructions_topic, value=value, key=b"ACLBKHPPXXX",
                                     headers=[*(headers or []), *signed(value, "ACLBKHPPXXX")])
    finally:
        await producer.stop()


def reports(records: list[Any]) -> list[pain002.CustomerPaymentStatusReport]:
    return [pain002.parse(parse_untrusted(r.value)) for r in records if r.value.startswith(b"<")]


def tx_statuses(rs: list[pain002.CustomerPaymentStatusReport]) -> list[tuple[str | None, str, str | None]]:
    return [
        (tx.original_instruction_id, tx.status.value, tx.reasons[0].code if tx.reasons else None)
        for r in rs for pi in r.payment_instructions for tx in pi.transactions
    ]


async def test_pain001_transactions_become_payments_and_are_reported_in_pain002(broker: TansuBroker, store: Store) -> None:
    tag = uuid.uuid4().hex[:6]
    schemas = SchemaSet(default_schema_dir())
    usd_debtor = {"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "USD"}
    instructions = [
        sample_instruction(instruction_id=f"P{tag}-1", amount={"value": "150000", "currency": "KHR"}),
        sample_instruction(instruction_id=f"P{tag}-2", debtor=usd_debtor, amount={"value": "25.50", "currency": "USD"},
                           creditor={"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}),
        sample_instruction(instruction_id=f"P{tag}-3", amount={"value": "1000.5", "currency": "KHR"}),  # CH20
        sample_instruction(instruction_id=f"P{tag}-4", corridor="KH-XX", amount={"value": "1000", "currency": "KHR"}),  # AG01
    ]
    body = pain001_from_instructions(instructions, message_id=f"MSG{tag}", created_at=datetime.now(timezone.utc), schemas=schemas)
    bad_sum = pain001_from_instructions(instructions[:1], message_id=f"BAD{tag}", created_at=datetime.now(timezone.utc))
    bad_sum = bad_sum.replace(b"<CtrlSum>150000</CtrlSum>", b"<CtrlSum>150001</CtrlSum>", 1)

    async with running_switch(broker, store) as run:
        await publish(run, body)  # recognised by content
        await publish(run, bad_sum, headers=[("content-type", b"application/xml")])  # and by header

        def done(rs: list[Any]) -> bool:
            return sum(1 for s in tx_statuses(reports(rs)) if s[1] in ("ACSC", "RJCT")) >= 2 + 2 + 0 and len(reports(rs)) >= 3

        records = await collect(run, run.config.kafka.status_topic, until=done)
        got = reports(records)
        acceptance = [r for r in got if r.group_status.status is not None and r.group_status.original_message_id == f"MSG{tag}"]
        assert len(acceptance) == 1
        assert acceptance[0].group_status.original_message_id == f"MSG{tag}"
        assert acceptance[0].group_status.status == "PART"
        assert acceptance[0].group_status.original_tx_count == 4
        assert sorted(tx_statuses(acceptance)) == [
            (f"P{tag}-1", "ACCP", None), (f"P{tag}-2", "ACCP", None), (f"P{tag}-3", "RJCT", "CH20"), (f"P{tag}-4", "RJCT", "AG01"),
        ]
        finals = [r for r in got if r.group_status.status is None and r.group_status.original_message_id == f"MSG{tag}"]
        assert sorted(tx_statuses(finals)) == [(f"P{tag}-1", "ACSC", None), (f"P{tag}-2", "ACSC", None)]
        assert {r.group_status.original_message_id for r in finals} == {f"MSG{tag}"}
        assert all(tx.original_uetr for r in finals for pi in r.payment_instructions for tx in pi.transactions)
        # the two payments also have JSON status events, like any instruction
        events = [json.loads(r.value) for r in records if r.value.startswith(b"{")]
        assert {e["instruction_id"] for e in events if e["final"] and e["state"] == "COMPLETED"} >= {f"P{tag}-1", f"P{tag}-2"}

        # the refused pain.001 is also answered: a pain.002 rejecting its group with AM10
        group = await collect(
            run, run.config.kafka.status_topic,
            until=lambda rs: any(r.group_status.original_message_id == f"BAD{tag}" for r in reports(rs)),
        )
        (refusal,) = [r for r in reports(group) if r.group_status.original_message_id == f"BAD{tag}"]
        assert refusal.group_status.status == "RJCT"
        assert refusal.group_status.reasons[0].code == "AM10"
        assert refusal.payment_instructions == ()

        dead = await collect(run, run.config.kafka.dlq_topic, until=lambda rs: len(rs) >= 1)
        headers = dict(dead[0].headers)
        assert headers["mekong.reason_code"] == b"AM10"
        assert b"CtrlSum" in headers["mekong.reason"]
        assert dead[0].value == bad_sum
