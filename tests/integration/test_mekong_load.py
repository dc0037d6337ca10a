"""`mekong load` (issue 11 item 6): a participant's instruction lines, published by the real
command into a running switch (harness) on the real broker, signed with the participant's key
from the session's development PKI. The switch checks the signatures (they are on in the
harness), so a completed payment proves the records were signed as the switch requires."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from switch.broker import TansuBroker
from switch.store.sql_store import Store
from tests.factories import sample_instruction
from tests.integration.harness import Running, pki_dir, running_switch, topic_partitions
from tests.integration.test_pipeline import collect, finals_by_id

ROOT = Path(__file__).resolve().parents[2]
PARTICIPANT = "ACLBKHPPXXX"
command_s_max = 60.0  # a bound on a hung command, not a performance goal


async def mekong_load(bootstrap: str, topic: str, file: Path, *extra: str, participant: str = PARTICIPANT) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switch.entrypoints.cli", "load", str(file),
        "--bootstrap", bootstrap, "--participant", participant,
        "--key-file", str(pki_dir() / "participants" / f"{participant}.key"), "--topic", topic, *extra,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(command_s_max):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def lines(*docs: dict[str, Any]) -> str:
    return "".join(json.dumps(d) + "\n" for d in docs)


async def records_on(run: Running, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=run.config.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(await topic_partitions(consumer, topic))]
        return sum((await consumer.end_offsets(parts)).values())
    finally:
        await consumer.stop()


async def test_mekong_load_publishes_signed_instructions_that_a_running_switch_completes(
    broker: TansuBroker, store: Store, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = [f"LOAD-{tag}-{n}" for n in range(3)]
    good = [sample_instruction(instruction_id=i, amount={"value": "150000", "currency": "KHR"}) for i in ids[:2]]
    bad_decimals = sample_instruction(instruction_id=ids[2], amount={"value": "150000.5", "currency": "KHR"})
    file = tmp_path / "instructions.jsonl"
    file.write_text("# two payments and one the switch must refuse (CH20)\n" + lines(*good) + "\n" + lines(bad_decimals))
    async with running_switch(broker, store) as run:
        code, out, err = await mekong_load(run.config.kafka.bootstrap_servers, run.config.kafka.instructions_topic, file,
                                           "--wait-s", str(command_s_max - 10), "--status-topic", run.config.kafka.status_topic)
        assert code == 0, err
        assert f"published 3 instructions from {file} to {run.config.kafka.instructions_topic}" in out
        # what the command read back from the status topic ...
        assert f"  {ids[0]}  COMPLETED\n  {ids[1]}  COMPLETED\n  {ids[2]}  REJECTED CH20 (" in out
        assert out.rstrip().endswith("final: 2 COMPLETED, 1 REJECTED")
        # ... is what the switch published there
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: set(ids) <= set(finals_by_id(rs)))
        finals = finals_by_id(statuses)
        assert [finals[i][0]["state"] for i in ids[:2]] == ["COMPLETED", "COMPLETED"]
        assert (finals[ids[2]][0]["state"], finals[ids[2]][0]["reason_code"]) == ("REJECTED", "CH20")
        assert all(len(finals[i]) == 1 for i in ids)


async def test_mekong_load_publishes_nothing_when_a_line_names_another_participant(
    broker: TansuBroker, store: Store, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    file = tmp_path / "mixed.jsonl"
    file.write_text(lines(sample_instruction(instruction_id=f"OK-{tag}"),
                          sample_instruction(instruction_id=f"THEIRS-{tag}", participant="ABAAKHPPXXX")))
    async with running_switch(broker, store) as run:
        code, out, err = await mekong_load(run.config.kafka.bootstrap_servers, run.config.kafka.instructions_topic, file)
        assert code == 1 and out == ""
        assert f"{file}:2: names participant 'ABAAKHPPXXX', but it would be signed with {PARTICIPANT}'s key" in err
        assert "Traceback" not in err
        assert await records_on(run, run.config.kafka.instructions_topic) == 0


async def test_mekong_load_waiting_exits_1_naming_instructions_without_a_final_status(
    broker: TansuBroker, store: Store, tmp_path: Path
) -> None:
    iid = f"LATE-{uuid.uuid4().hex[:8]}"
    file = tmp_path / "late.jsonl"
    file.write_text(lines(sample_instruction(instruction_id=iid, amount={"value": "150000", "currency": "KHR"})))
    async with running_switch(broker, store, partner_up=False) as run:  # the partner never answers
        code, out, err = await mekong_load(run.config.kafka.bootstrap_servers, run.config.kafka.instructions_topic, file,
                                           "--wait-s", "3", "--status-topic", run.config.kafka.status_topic)
        assert code == 1, err
        assert f"  {iid}  no final status within 3 s" in out and "1 without a final status" in out


async def test_mekong_load_says_which_broker_did_not_answer(tmp_path: Path) -> None:
    file = tmp_path / "one.jsonl"
    file.write_text(lines(sample_instruction(instruction_id=f"NB-{uuid.uuid4().hex[:8]}")))
    code, out, err = await mekong_load("127.0.0.1:1", "mekong.instructions", file)
    assert (code, out) == (1, "")
    assert "the broker at 127.0.0.1:1 did not answer" in err and "Traceback" not in err
