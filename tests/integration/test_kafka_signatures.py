"""Participants are authenticated on Kafka (issue 8 item 3), against the real broker, a running
switch and each database: an instruction, a pain.001 or an inbound reply that is unsigned,
tampered with, signed by an unknown key or by another participant than the one it names goes to
the dead-letter topic with its reason, is counted and audited, and changes nothing: no payment,
no idempotency key, no status or pain.002 to the participant it names, and the instruction id
stays usable by its owner. Keys rotate by key id: while both keys are configured both verify,
and a removed key no longer does."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.simulator_inbound import InboundSpec
from iso20022.schemas import SchemaSet, default_schema_dir
from switch.broker import TansuBroker
from switch.domain.payment import PaymentState
from switch.kafka_auth import key_id_of, signature_headers
from switch.service import audit
from switch.service.pain_reports import admission_message_id
from switch.store.sql_store import Store
from switch.tools.pain001_samples import pain001_from_instructions
from tests.integration.harness import Running, partner_session, running_switch, signed
from tests.integration.test_audit_edges import entries
from tests.integration.test_inbound import answers_for
from tests.integration.test_kafka_edge import dead_letters_by_key, json_only
from tests.integration.test_pain001 import reports
from tests.integration.test_pipeline import collect, finals_by_id, instruction

ACLB, ABAA = "ACLBKHPPXXX", "ABAAKHPPXXX"
wait_s_max = 30.0
Headers = list[tuple[str, bytes]]


async def send(run: Running, topic: str, records: list[tuple[str, bytes, Headers]]) -> None:
    """Publish exactly these records with exactly these headers (no signing added)."""
    producer = AIOKafkaProducer(bootstrap_servers=run.config.kafka.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key.encode(), headers=headers)
    finally:
        await producer.stop()


async def refusals(run: Running) -> dict[str, float]:
    async with run.ops_session() as http, http.get(f"{run.url}/metrics") as resp:
        text = await resp.text()
    found = re.finditer(r'^switch_security_refusals_total\{edge="kafka",reason="([^"]*)"\} (\S+)$', text, re.M)
    return {m[1]: float(m[2]) for m in found if float(m[2])}


async def audited_dead_letters(store: Store, n: int) -> list[dict[str, Any]]:
    """The first `n` dead-letter audit entries, once they are committed (with the batch's answers)."""
    async with asyncio.timeout(wait_s_max):
        while len(found := await entries(store, audit.KAFKA_DEAD_LETTERED)) < n:
            await asyncio.sleep(0.1)
    return [e.detail for e in found]


def dead_letter_answer_id(record: Any) -> str:
    """The message id of the REJECTED status the switch answers a dead-lettered instruction with
    (switch/service/events.py dead_letter_outbox): fixed by the record's coordinates."""
    h = dict(record.headers)
    coordinates = f"{h['mekong.source.topic'].decode()}/{int(h['mekong.source.partition'])}/{int(h['mekong.source.offset'])}"
    return f"D{hashlib.sha256(coordinates.encode()).hexdigest()[:40]}"


async def nothing_for(store: Store, participant: str, iid: str, dead: Any) -> None:
    """No payment, no idempotency key, no answer in the outbox for `iid` of `participant`."""
    async with store.reader() as uow:
        assert await uow.payment_by_instruction(participant, iid) is None
        assert await uow.instructions_get([(participant, iid)]) == {}
        assert await uow.outbox_by_message_ids("status", [dead_letter_answer_id(dead)]) == []


async def completed(run: Running, iid: str) -> dict[str, Any]:
    """The one final status of `iid` (asserting there is exactly one)."""
    records = await collect(run, run.config.kafka.status_topic, until=lambda rs: iid in finals_by_id(json_only(rs)))
    events = [json.loads(r.value) for r in json_only(records) if json.loads(r.value)["instruction_id"] == iid]
    assert len(events) == 1, events
    return events[0]


async def test_an_instruction_signed_by_another_participant_is_refused_and_its_owner_can_still_use_the_id(
    broker: TansuBroker, store: Store
) -> None:
    iid = f"V{uuid.uuid4().hex[:10]}"
    value = json.dumps(instruction(iid)).encode()  # ACLEDA's instruction...
    async with running_switch(broker, store) as run:
        k = run.config.kafka
        await send(run, k.instructions_topic, [(iid, value, signed(value, ABAA))])  # ...published with ABA's key
        dead = (await dead_letters_by_key(run, {iid}))[iid]
        h = dict(dead.headers)
        assert (h["mekong.reason_code"], dead.value) == (b"DS0H", value)
        assert h["mekong.reason"].startswith(b"participant mismatch") and ABAA.encode() in h["mekong.reason"]
        (detail,) = await audited_dead_letters(store, 1)
        assert (detail["category"], detail["signer"], detail["reason_code"]) == ("participant_mismatch", ABAA, "DS0H")
        await nothing_for(store, ACLB, iid, dead)
        assert await refusals(run) == {"participant_mismatch": 1.0}

        await send(run, k.instructions_topic, [(iid, value, signed(value, ACLB))])  # ACLEDA itself, same id
        event = await completed(run, iid)  # its only status: no reject, conflict or replay from the forgery
        assert (event["state"], event["replayed"], event["participant"]) == ("COMPLETED", False, ACLB)


async def test_unsigned_tampered_and_unknown_key_instructions_are_refused_each_with_its_reason(
    broker: TansuBroker, store: Store
) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = {"unsigned": f"US{tag}", "bad_signature": f"BS{tag}", "unknown_key": f"UK{tag}"}
    values = {reason: json.dumps(instruction(iid)).encode() for reason, iid in ids.items()}
    stranger = Ed25519PrivateKey.generate()
    original = values["bad_signature"]
    values["bad_signature"] = original.replace(b'"150000"', b'"990000"')  # the amount changed after signing
    assert values["bad_signature"] != original
    headers = {
        "unsigned": [],
        "bad_signature": signed(original, ACLB),
        "unknown_key": signature_headers(values["unknown_key"], stranger),
    }
    async with running_switch(broker, store) as run:
        await send(run, run.config.kafka.instructions_topic, [(ids[r], values[r], headers[r]) for r in ids])
        dead = await dead_letters_by_key(run, set(ids.values()))
        codes = {reason: dict(dead[iid].headers)["mekong.reason_code"] for reason, iid in ids.items()}
        assert codes == {"unsigned": b"DS0A", "bad_signature": b"DS0B", "unknown_key": b"DS0E"}
        details = await audited_dead_letters(store, 3)
        assert sorted(d["category"] for d in details) == ["bad_signature", "unknown_key", "unsigned"]
        assert {d.get("key_id") for d in details if d["category"] == "unknown_key"} == {key_id_of(stranger.public_key())}
        for reason, iid in ids.items():
            await nothing_for(store, ACLB, iid, dead[iid])
        assert await refusals(run) == {"unsigned": 1.0, "bad_signature": 1.0, "unknown_key": 1.0}

        # the same ids, signed properly, go through: none of them was taken by the refusals
        await send(run, run.config.kafka.instructions_topic,
                    [(ids[r], original if r == "bad_signature" else values[r],
                      signed(original if r == "bad_signature" else values[r], ACLB)) for r in ids])
        for iid in ids.values():
            assert (await completed(run, iid))["state"] == "COMPLETED"


async def test_a_pain001_signed_by_another_participant_is_refused_without_a_pain002_and_then_taken_from_its_owner(
    broker: TansuBroker, store: Store
) -> None:
    tag = uuid.uuid4().hex[:6]
    message_id = f"PS{tag}"
    body = pain001_from_instructions([instruction(f"{message_id}-1")], message_id=message_id,
                                     created_at=datetime.now(timezone.utc), schemas=SchemaSet(default_schema_dir()))
    async with running_switch(broker, store) as run:
        k = run.config.kafka
        await send(run, k.instructions_topic, [(message_id, body, signed(body, ABAA))])
        dead = (await dead_letters_by_key(run, {message_id}))[message_id]
        assert dict(dead.headers)["mekong.reason_code"] == b"DS0H"
        await audited_dead_letters(store, 1)
        async with store.reader() as uow:
            assert await uow.instructions_get([(ACLB, f"{message_id}-1")]) == {}

        h = dict(dead.headers)
        forged_report = admission_message_id(
            f"{h['mekong.source.topic'].decode()}:{int(h['mekong.source.partition'])}:{int(h['mekong.source.offset'])}")
        async with store.reader() as uow:  # neither an acceptance report nor a group reject
            assert await uow.outbox_by_message_ids("status", [forged_report]) == []

        await send(run, k.instructions_topic, [(message_id, body, signed(body, ACLB))])
        got = await collect(run, k.status_topic, until=lambda rs: any(
            r.group_status.original_message_id == message_id and r.message_id.startswith("A") for r in reports(rs)))
        # the acceptance report answers the signed copy; none was made for the refused one
        answered = [r.message_id for r in reports(got) if r.group_status.original_message_id == message_id]
        assert forged_report not in answered and any(m.startswith("A") for m in answered)
        assert await refusals(run) == {"participant_mismatch": 1.0}


async def test_a_reply_signed_by_another_participant_decides_nothing(broker: TansuBroker, store: Store) -> None:
    spec = InboundSpec(amount="40000", currency="KHR", creditor_name="Sok Dara", creditor_account="sok_dara@aclb")
    async with running_switch(broker, store) as run, partner_session("promptpay") as http:
        (uetr,) = await run.sim.inbound.send(http, [spec])
        await collect(run, run.config.kafka.inbound_topic, until=lambda rs: len(rs) >= 1)
        forged = json.dumps({"version": 1, "uetr": uetr, "participant": ACLB, "decision": "REJECT", "reason_code": "AC04"}).encode()
        unsigned = json.dumps({"version": 1, "uetr": uetr, "participant": ACLB, "decision": "REJECT", "reason_code": "AC06"}).encode()
        await send(run, run.config.kafka.inbound_replies_topic,
                   [("forged", forged, signed(forged, ABAA)), ("unsigned", unsigned, [])])
        dead = await dead_letters_by_key(run, {"forged", "unsigned"})
        assert dict(dead["forged"].headers)["mekong.reason_code"] == b"DS0H"
        assert dict(dead["unsigned"].headers)["mekong.reason_code"] == b"DS0A"
        await audited_dead_letters(store, 2)
        assert uetr not in run.sim.inbound.answers  # the partner heard nothing
        async with store.reader() as uow:
            payment = await uow.payments_get([uetr])
        assert payment[uetr].state is not PaymentState.REJECTED

        accept = json.dumps({"version": 1, "uetr": uetr, "participant": ACLB, "decision": "ACCEPT"}).encode()
        await send(run, run.config.kafka.inbound_replies_topic, [("owner", accept, signed(accept, ACLB))])
        answers = await answers_for(run, [uetr])
        assert (answers[uetr]["status"], answers[uetr]["reason_code"]) == ("ACSC", None)


def _config_with_keys(tmp_path: Path, participant: str, keys_toml: str) -> Path:
    """The shipped configuration with `participant`'s keys replaced by `keys_toml`."""
    config_dir = tmp_path / f"config-{uuid.uuid4().hex[:6]}"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config_dir)
    path = config_dir / "participants.toml"
    text = path.read_text()
    old = f'keys = [{{ public_key_file = "participants/{participant}.pub" }}]'
    assert old in text
    path.write_text(text.replace(old, keys_toml))
    return config_dir


async def test_a_rotated_key_verifies_alongside_the_old_one_and_the_removed_one_no_longer_does(
    broker: TansuBroker, store: Store, tmp_path: Path
) -> None:
    """ACLEDA rotates: the new key (given inline) is added next to the old one (its file); both sign
    instructions that go through. Then the old key is removed: its records are refused as an
    unknown key, the new key's still go through."""
    new = Ed25519PrivateKey.generate()
    raw = base64.b64encode(new.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    both = _config_with_keys(tmp_path, ACLB, f'keys = [{{ public_key_file = "participants/{ACLB}.pub" }}, '
                                              f'{{ id = "{key_id_of(new.public_key())}", public_key = "{raw}" }}]')
    only_new = _config_with_keys(tmp_path, ACLB, f'keys = [{{ public_key = "{raw}" }}]')
    tag = uuid.uuid4().hex[:6]

    def record(iid: str, key: Ed25519PrivateKey | None) -> tuple[str, bytes, Headers]:
        value = json.dumps(instruction(iid)).encode()
        return iid, value, signed(value, ACLB) if key is None else signature_headers(value, key)

    async with running_switch(broker, store, config_dir=both) as run:
        await send(run, run.config.kafka.instructions_topic, [record(f"O{tag}", None), record(f"N{tag}", new)])
        for iid in (f"O{tag}", f"N{tag}"):
            assert (await completed(run, iid))["state"] == "COMPLETED"

    async with running_switch(broker, store, config_dir=only_new) as run:
        await send(run, run.config.kafka.instructions_topic, [record(f"O2{tag}", None), record(f"N2{tag}", new)])
        dead = (await dead_letters_by_key(run, {f"O2{tag}"}))[f"O2{tag}"]
        assert dict(dead.headers)["mekong.reason_code"] == b"DS0E"
        assert (await completed(run, f"N2{tag}"))["state"] == "COMPLETED"
        async with store.reader() as uow:
            assert await uow.payment_by_instruction(ACLB, f"O2{tag}") is None


async def test_each_participant_key_the_switch_runs_with_is_audited_at_start(broker: TansuBroker, store: Store) -> None:
    from tests.integration.harness import pki_dir

    manifest = json.loads((pki_dir() / "manifest.json").read_text())
    async with running_switch(broker, store) as run:
        loaded = await entries(store, audit.PARTICIPANT_KEY_LOADED)
        assert {(e.detail["participant"], e.detail["key_id"]) for e in loaded} == {
            (p["participant"], p["key_id"]) for p in manifest["participants"]}
        assert {e.subject for e in loaded} == {str(pki_dir() / p["public_key"]) for p in manifest["participants"]}
        async with run.ops_session() as http, http.get(f"{run.url}/readyz") as resp:
            assert (await resp.json())["kafka_signatures"] is True


async def test_insecure_dev_takes_unsigned_records_and_says_so_loudly(
    broker: TansuBroker, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    iid = f"D{uuid.uuid4().hex[:10]}"
    value = json.dumps(instruction(iid)).encode()
    with caplog.at_level(logging.WARNING, logger="switch.entrypoints.main"):
        async with running_switch(broker, store, insecure_dev=True) as run:
            await send(run, run.config.kafka.instructions_topic, [(iid, value, [])])
            assert (await completed(run, iid))["state"] == "COMPLETED"
            async with run.ops_session() as http, http.get(f"{run.url}/readyz") as resp:
                assert (await resp.json())["kafka_signatures"] is False
    assert any("Kafka record signatures are not checked" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
