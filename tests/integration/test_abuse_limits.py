"""Abuse limits (issue 8 item 6) on the running switch (real broker, real mutual TLS, each
database): one partner flooding the partner port is answered 429 while another partner's messages
are all taken and its payments complete; one participant flooding Kafka has its instructions over
the rate refused (REJECTED SL15, dead-lettered `rate_limited`) while another's all complete. Each
flood is counted and leaves one audit entry, not one per refused message. No timing is asserted."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from switch.broker import TansuBroker
from switch.domain.payment import PaymentState
from switch.service import audit
from switch.store.sql_store import Store
from tests.integration.harness import Running, partner_session, running_switch
from tests.integration.test_audit_edges import entries
from tests.integration.test_kafka_edge import dead_letters_by_key
from tests.integration.test_pipeline import collect, finals_by_id, instruction, publish

ACLB, ABAA = "ACLBKHPPXXX", "ABAAKHPPXXX"
wait_s_max = 60.0
flood_workers = 8
flood_requests_min = 100  # the flood goes on at least this long, and until the other partner is done


def _config(tmp_path: Path, *, partner: dict[str, tuple[int, int]] = {}, participant: dict[str, tuple[int, int]] = {}) -> Path:
    """The shipped configuration with some parties' limits lowered: (per second, burst)."""
    config_dir = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config_dir)
    for name, (per_s, burst) in partner.items():
        profile = config_dir / "partners" / f"{name}.toml"
        text = profile.read_text()
        assert "messages_per_s = 2000 " in text and "burst = 4000 " in text
        profile.write_text(text.replace("messages_per_s = 2000 ", f"messages_per_s = {per_s} ").replace("burst = 4000 ", f"burst = {burst} "))
    participants = config_dir / "participants.toml"
    text = participants.read_text()
    for code, (per_s, burst) in participant.items():
        entry = f'code = "{code}"\n'
        assert entry in text
        text = text.replace(entry, f"{entry}limits = {{ instructions_per_s = {per_s}, burst = {burst} }}\n")
    participants.write_text(text)
    return config_dir


def _limited(run: Running, edge: str, party: str) -> float:
    return run.switch.metrics.registry.get_sample_value("switch_rate_limited_total", {"edge": edge, "party": party}) or 0.0


async def _states(store: Store, participant: str, ids: list[str]) -> dict[str, PaymentState | None]:
    async with store.reader() as uow:
        found = {iid: await uow.payment_by_instruction(participant, iid) for iid in ids}
    return {iid: p.state if p is not None else None for iid, p in found.items()}


async def test_a_partner_flooding_the_partner_port_gets_429_while_another_partners_payments_complete(
    broker: TansuBroker, store: Store, tmp_path: Path
) -> None:
    """LAPNet (2 messages/s, burst 5) floods; PromptPay (the shipped limit) answers ten payments."""
    async with running_switch(broker, store, config_dir=_config(tmp_path, partner={"lapnet": (2, 5)})) as run:
        ids = [f"F{uuid.uuid4().hex[:10]}" for _ in range(10)]
        answers: list[tuple[int, str | None, str]] = []
        promptpay_done = asyncio.Event()

        async def flood(lapnet: Any) -> None:
            while not (promptpay_done.is_set() and len(answers) >= flood_requests_min):
                async with lapnet.post(f"{run.partner_url}/iso20022/lapnet", data=b"<Document/>") as resp:
                    answers.append((resp.status, resp.headers.get("Retry-After"), (await resp.json())["reason_code"]))

        async def promptpay_payments() -> None:
            await publish(run, [(iid, json.dumps(instruction(iid)).encode()) for iid in ids])
            async with asyncio.timeout(wait_s_max):
                while set((await _states(store, ACLB, ids)).values()) != {PaymentState.COMPLETED}:
                    await asyncio.sleep(0.1)
            promptpay_done.set()

        async with partner_session("lapnet") as lapnet:
            await asyncio.gather(promptpay_payments(), *(flood(lapnet) for _ in range(flood_workers)))

        refused = [a for a in answers if a[0] == 429]
        print(f"lapnet: {len(refused)} of {len(answers)} messages answered 429; promptpay: {len(ids)} payments completed, "
              f"callbacks {dict(run.sim.stats)}")
        assert refused and len(refused) >= len(answers) // 2, f"{len(refused)} of {len(answers)} refused"
        assert {(retry_after, code) for _, retry_after, code in refused} == {("1", "SL15")}
        assert {status for status, _, _ in answers} <= {429, 400}  # the rest was read, and refused as XML
        assert _limited(run, "partner_port", "lapnet") == len(refused)
        # PromptPay's callbacks all went through during the flood: none refused for its rate
        assert _limited(run, "partner_port", "promptpay") == 0
        assert run.sim.stats["callbacks_ok"] >= 1 and "callbacks_http_429" not in run.sim.stats
        # one audit entry for the flood; none per 429
        assert [e.subject for e in await entries(store, audit.HTTP_RATE_LIMITED)] == ["lapnet"]
        assert [e for e in await entries(store, audit.HTTP_REFUSED) if e.detail["status"] == 429] == []


async def test_a_participant_over_its_rate_has_its_instructions_refused_while_anothers_complete(
    broker: TansuBroker, store: Store, tmp_path: Path
) -> None:
    """ABA (1 instruction/s, burst 3) publishes twelve at once; ACLEDA (the shipped limit) six."""
    config_dir = _config(tmp_path, participant={ABAA: (1, 3)})
    async with running_switch(broker, store, config_dir=config_dir) as run:
        tag = uuid.uuid4().hex[:6]
        abaa = [f"B{tag}-{n}" for n in range(12)]
        aclb = [f"A{tag}-{n}" for n in range(6)]
        aba_debtor = {"name": "Chan Sophea", "account": "chan_sophea@abaa", "currency": "KHR"}
        records = [(iid, json.dumps(instruction(iid, participant=ABAA, debtor=aba_debtor)).encode()) for iid in abaa]
        records += [(iid, json.dumps(instruction(iid)).encode()) for iid in aclb]
        await publish(run, records)
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: set(abaa + aclb) <= set(finals_by_id(rs)))
        finals = {iid: events[0] for iid, events in finals_by_id(statuses).items()}

        assert {finals[iid]["state"] for iid in aclb} == {"COMPLETED"}
        refused = [iid for iid in abaa if finals[iid]["state"] == "REJECTED"]
        taken = [iid for iid in abaa if finals[iid]["state"] == "COMPLETED"]
        assert refused and len(taken) >= 3 and len(refused) + len(taken) == len(abaa)
        assert {(finals[iid]["reason_code"], finals[iid]["uetr"]) for iid in refused} == {("SL15", None)}
        assert _limited(run, "kafka", ABAA) == len(refused) and _limited(run, "kafka", ACLB) == 0

        dead = await dead_letters_by_key(run, set(refused))
        for iid in refused:
            headers = dict(dead[iid].headers)
            assert headers["mekong.reason"].startswith(b"rate_limited") and headers["mekong.reason_code"] == b"SL15"
        assert run.switch.metrics.dlq.labels("rate_limited")._value.get() == len(refused)
        # one audit entry for the flood; the dead letters themselves are not audited one by one
        assert [e.subject for e in await entries(store, audit.KAFKA_RATE_LIMITED)] == [ABAA]
        assert await entries(store, audit.KAFKA_DEAD_LETTERED) == []

        # the refused id is used up: a resend replays the refusal; the payment goes again under a new id
        await asyncio.sleep(3.0)  # the bucket fills again (one a second)
        again, fresh = refused[0], f"B{tag}-new"
        await publish(run, [(again, dict(records)[again]),
                            (fresh, json.dumps(instruction(fresh, participant=ABAA, debtor=aba_debtor)).encode())])
        later = await collect(run, run.config.kafka.status_topic,
                              until=lambda rs: fresh in finals_by_id(rs) and len(finals_by_id(rs).get(again, [])) >= 2)
        replay = finals_by_id(later)[again][-1]
        assert (replay["state"], replay["reason_code"], replay["replayed"]) == ("REJECTED", "SL15", True)
        assert finals_by_id(later)[fresh][0]["state"] == "COMPLETED"
