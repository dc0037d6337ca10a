"""Corridors and partners changed at run time (issue 11) on a running switch, real broker, real
partner simulator over mutual TLS, both databases: an operator disables a corridor (new
instructions refused AG01, the payment in flight completes) and enables it again; pauses a
partner (its queued pacs.008 held, not failed) and resumes it (sent); a SIGHUP reload changes a
fee without losing a payment; two replicas keep a debtor's daily maximum exactly. The answers of
the corridor routes are checked against the OpenAPI document (tests/openapi_contract.py)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import uuid
from pathlib import Path
from typing import Any

from adapters.simulator import SimBehaviour
from switch.broker import TansuBroker
from switch.config import PROJECT_ROOT
from switch.store.sql_store import Store
from tests.integration.harness import Running, running_switch
from tests.integration.test_pipeline import collect, finals_by_id, instruction, publish
from tests.openapi_contract import check

PARTICIPANT = "ACLBKHPPXXX"
wait_s_max = 30.0


async def _api(run: Running, method: str, path: str, body: dict[str, Any] | None = None, *, role: str = "operator",
               template: str | None = None) -> tuple[int, Any]:
    """One call of the operations API as `role`; with `template` (the route's path in the OpenAPI
    document), the answer is checked against what the document says that status answers."""
    async with run.ops_session(client="operator") as http:
        async with http.request(method, f"{run.url}{path}", json=body, headers=run.auth_as(role)) as resp:
            answer = await resp.json()
            if template is not None:
                check(method, template, resp.status, answer)
            return resp.status, answer


async def _admitted(run: Running, instruction_id: str) -> dict[str, Any]:
    """The payment an instruction made, once the switch admitted it."""
    async with asyncio.timeout(wait_s_max):
        while True:
            status, doc = await _api(run, "GET", f"/v1/instructions/{PARTICIPANT}/{instruction_id}")
            if status == 200 and doc.get("uetr"):
                return doc  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)


async def _finals(run: Running, ids: set[str]) -> dict[str, dict[str, Any]]:
    records = await collect(run, run.config.kafka.status_topic, until=lambda rs: ids <= set(finals_by_id(rs)))
    return {i: events[0] for i, events in finals_by_id(records).items() if i in ids}


def _record(instruction_id: str, **changes: Any) -> tuple[str, bytes]:
    return instruction_id, json.dumps(instruction(instruction_id, **changes)).encode()


async def test_a_disabled_corridor_refuses_new_instructions_lets_the_one_in_flight_complete_and_admits_once_enabled(
    broker: TansuBroker, store: Store,
) -> None:
    tag = uuid.uuid4().hex[:6]
    in_flight, while_off, after = f"C{tag}-inflight", f"C{tag}-off", f"C{tag}-after"
    async with running_switch(broker, store, SimBehaviour(delay_ms=3000)) as run:
        await publish(run, [_record(in_flight)])
        await _admitted(run, in_flight)
        status, refused = await _api(run, "POST", "/v1/corridors/KH-TH/disable", {"reason": "  "}, template="/v1/corridors/{corridor}/{action}")
        assert (status, refused["reason_code"]) == (400, "FF01")  # no reason to disable
        status, refused = await _api(run, "POST", "/v1/corridors/KH-XX/disable", {"reason": "x"}, template="/v1/corridors/{corridor}/{action}")
        assert (status, refused["reason_code"]) == (404, "RC01")
        status, corridor = await _api(run, "POST", "/v1/corridors/KH-TH/disable", {"reason": "ITMX maintenance window"}, template="/v1/corridors/{corridor}/{action}")
        assert status == 200 and corridor["state"] == "disabled" and corridor["control"]["changed_by"].startswith("test-")
        _, payment = await _api(run, "GET", f"/v1/instructions/{PARTICIPANT}/{in_flight}")
        assert payment["final"] is False  # disabled while the payment was in flight
        await publish(run, [_record(while_off)])
        finals = await _finals(run, {in_flight, while_off})
        assert (finals[in_flight]["state"], finals[while_off]["state"], finals[while_off]["reason_code"]) == ("COMPLETED", "REJECTED", "AG01")
        assert "ITMX maintenance window" in finals[while_off]["reason"]

        status, _ = await _api(run, "POST", "/v1/corridors/KH-TH/enable", {"reason": "window over"}, role="auditor", template="/v1/corridors/{corridor}/{action}")
        assert status == 403  # auditors read, operators act
        status, corridor = await _api(run, "POST", "/v1/corridors/KH-TH/enable", {"reason": "window over"}, template="/v1/corridors/{corridor}/{action}")
        assert status == 200 and corridor["state"] == "enabled"
        await publish(run, [_record(after)])
        assert (await _finals(run, {after}))[after]["state"] == "COMPLETED"

        status, listing = await _api(run, "GET", "/v1/corridors", role="auditor", template="/v1/corridors")
        (th,) = [c for c in listing["corridors"] if c["id"] == "KH-TH"]
        assert status == 200 and (th["state"], th["control"]["reason"], th["control"]["version"]) == ("enabled", "window over", 2)
        status, listing = await _api(run, "GET", "/v1/corridors", role=f"participant:{PARTICIPANT}", template="/v1/corridors")
        (th,) = [c for c in listing["corridors"] if c["id"] == "KH-TH"]
        assert status == 200 and th["control"]["version"] == 2 and "changed_by" not in th["control"]  # not who, nor why
        metrics = run.switch.metrics.registry
        assert metrics.get_sample_value("switch_corridor_refusals_total", {"corridor": "KH-TH", "reason": "disabled"}) == 1
        assert metrics.get_sample_value("switch_corridor_enabled", {"corridor": "KH-TH"}) == 1
    async with store.reader() as uow:
        audited = [(e.action, e.subject) for e in await uow.audit_entries(limit=200, newest=True)]
    assert ("corridor.disabled", "KH-TH") in audited and ("corridor.enabled", "KH-TH") in audited


async def test_a_paused_partner_holds_its_queued_messages_and_sends_them_on_resume(broker: TansuBroker, store: Store) -> None:
    tag = uuid.uuid4().hex[:6]
    queued, refused = f"P{tag}-queued", f"P{tag}-refused"
    # the partner is down at first: the pacs.008 waits in the outbox for a retry
    async with running_switch(broker, store, partner_up=False, timing={"sla_s": 90.0, "resend_after_s": 60.0}) as run:
        await publish(run, [_record(queued)])
        await _admitted(run, queued)
        status, unknown = await _api(run, "POST", "/v1/partners/nosuch/pause", {"reason": "ITMX outage"}, template="/v1/partners/{partner}/{action}")
        assert (status, unknown["reason_code"]) == (404, "RC01")
        status, answer = await _api(run, "POST", "/v1/partners/promptpay/pause", {"reason": "ITMX outage"}, template="/v1/partners/{partner}/{action}")
        assert status == 200 and answer["corridors"] == ["KH-TH"]
        await run.sim.start(port=run.sim_port)  # the partner is back, but paused: nothing may reach it
        async with asyncio.timeout(wait_s_max):
            while run.switch.relay.held("promptpay") == 0:  # the relay's next retry of the row holds it
                await asyncio.sleep(0.05)
        await publish(run, [_record(refused)])
        finals = await _finals(run, {refused})
        assert (finals[refused]["state"], finals[refused]["reason_code"]) == ("REJECTED", "AB08")
        assert run.sim.stats["received"] == 0
        _, payment = await _api(run, "GET", f"/v1/instructions/{PARTICIPANT}/{queued}")
        assert (payment["state"], payment["final"]) == ("QUOTED", False)  # held, not failed
        assert run.switch.metrics.registry.get_sample_value("switch_partner_paused", {"partner": "promptpay"}) == 1

        status, answer = await _api(run, "POST", "/v1/partners/promptpay/resume", {}, template="/v1/partners/{partner}/{action}")
        assert (status, answer["paused"], answer["control"]["off"], answer["control"]["version"]) == (200, False, False, 2)
        assert (await _finals(run, {queued}))[queued]["state"] == "COMPLETED"
        assert run.sim.stats["received"] >= 1
        assert run.switch.metrics.registry.get_sample_value("switch_partner_paused", {"partner": "promptpay"}) == 0


async def test_sighup_reloads_a_fee_without_losing_the_payment_in_flight(broker: TansuBroker, store: Store, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    tag = uuid.uuid4().hex[:6]
    before, after = f"R{tag}-before", f"R{tag}-after"
    async with running_switch(broker, store, SimBehaviour(delay_ms=2000), config_dir=config_dir) as run:
        run.switch.install_reload_signal()
        await publish(run, [_record(before)])
        await _admitted(run, before)
        corridors = config_dir / "corridors.toml"
        text = corridors.read_text(encoding="utf-8")
        corridors.write_text(text.replace('fee = { KHR = "0", USD = "0.00" }', 'fee = { KHR = "500", USD = "0.00" }', 1), encoding="utf-8")
        os.kill(os.getpid(), signal.SIGHUP)
        registry = run.switch.metrics.registry
        async with asyncio.timeout(wait_s_max):
            while registry.get_sample_value("switch_config_reloads_total", {"outcome": "applied"}) != 1:
                await asyncio.sleep(0.05)
        await publish(run, [_record(after)])
        finals = await _finals(run, {before, after})
        # the first keeps the fee it was admitted with, and completes; the next pays the new one
        assert (finals[before]["state"], finals[before]["fee"]["value"]) == ("COMPLETED", "0")
        assert (finals[after]["state"], finals[after]["fee"]["value"]) == ("COMPLETED", "500")

        # a file that does not validate changes nothing: refused, counted, the fee stays
        corridors.write_text(text.replace('spread_bps = 50', 'spread_bps = -5', 1), encoding="utf-8")
        status, answer = await _api(run, "POST", "/v1/config/reload", template="/v1/config/reload")
        assert status == 422 and answer["applied"] is False and any("spread_bps" in p for p in answer["problems"])
        assert registry.get_sample_value("switch_config_reloads_total", {"outcome": "failed"}) == 1
        assert run.switch.config.corridor("KH-TH").fee["KHR"] == "500"  # type: ignore[union-attr]

        # the fee back to 0 through the API this time
        corridors.write_text(text, encoding="utf-8")
        status, answer = await _api(run, "POST", "/v1/config/reload", template="/v1/config/reload")
        assert (status, answer["applied"], answer["corridors_changed"], answer["corridors_removed"]) == (200, True, ["KH-TH"], [])
        assert run.switch.config.corridor("KH-TH").fee["KHR"] == "0"  # type: ignore[union-attr]


async def test_two_replicas_keep_a_debtors_daily_maximum_exactly(broker: TansuBroker, pg_store: Store) -> None:
    """The basic tier allows KHR 2,000,000 a day; 30 payments of KHR 100,000 by one debtor, spread
    over two replicas that admit at the same time: exactly 20 get through."""
    tag = uuid.uuid4().hex[:6]
    ids = [f"D{tag}-{n:02d}" for n in range(30)]
    async with running_switch(broker, pg_store, replicas=2) as run:
        await publish(run, [_record(i, debtor_tier="basic", amount={"value": "100000", "currency": "KHR"}) for i in ids])
        finals = await _finals(run, set(ids))
        assert all(sw.partitions_assigned() for sw in [run.switch, *run.others])
    outcomes = [(e["state"], e["reason_code"]) for e in finals.values()]
    assert outcomes.count(("COMPLETED", None)) == 20
    assert outcomes.count(("REJECTED", "AM14")) == 10


async def test_the_cli_switches_corridors_and_partners_through_the_operations_api(broker: TansuBroker, store: Store) -> None:
    from click.testing import CliRunner

    from switch.entrypoints.cli import main as cli
    from tests.integration.harness import pki_dir

    async with running_switch(broker, store) as run:
        ops = ["--url", run.url, "--token", run.tokens["operator"], "--pki-dir", str(pki_dir())]

        async def mekong(*args: str) -> str:
            result = await asyncio.to_thread(CliRunner().invoke, cli, [*args, *ops])
            assert result.exit_code == 0, result.output
            return result.output

        disabled = await mekong("corridors", "disable", "KH-VN", "--reason", "NAPAS cut-over, ticket OPS-112")
        assert disabled.startswith("KH-VN   napas     disabled") and "NAPAS cut-over, ticket OPS-112" in disabled
        listing = await mekong("corridors", "list")
        assert [line.split()[:3] for line in listing.splitlines()] == [
            ["KH-TH", "promptpay", "enabled"], ["KH-LA", "lapnet", "enabled"], ["KH-VN", "napas", "disabled"],
            ["KH-CN", "unionpay", "enabled"],
        ]
        assert "enabled" in (await mekong("corridors", "enable", "KH-VN", "--reason", "done")).split()[2]
        assert "paused (corridors KH-TH)" in await mekong("partners", "pause", "promptpay", "--reason", "ITMX outage")
        assert "PAUSED" in (await mekong("corridors", "list")).splitlines()[0]
        assert "resumed" in await mekong("partners", "resume", "promptpay")
        refused = await asyncio.to_thread(CliRunner().invoke, cli, ["corridors", "disable", "KH-XX", "--reason", "x", *ops])
        assert refused.exit_code != 0 and "404" in refused.output and "no corridor KH-XX" in refused.output
