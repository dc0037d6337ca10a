"""`mekong config dry-run` against a recorded period with a known answer (issue 11), on each
database: instructions driven through a real running switch (Kafka, the PromptPay simulator over
HTTP, proxy look-ups), then replayed against a changed configuration without sending anything."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from switch import config as config_mod
from switch.broker import TansuBroker
from switch.config import DEFAULT_CONFIG_DIR
from switch.entrypoints.cli_config import read_replayed, replay_deps
from switch.service.dry_run import dry_run
from switch.store.sql_store import Store
from tests.factories import sample_instruction
from tests.integration.harness import running_switch
from tests.integration.test_pipeline import publish

admitted_s_max = 60.0


def _new_config(tmp_path: Path) -> Path:
    """The shipped configuration with four changes: KH-TH's USD fee 0.00 -> 0.75 and its KHR
    maximum 5,000,000 -> 10,000,000; THB/KHR 120.05 -> 121.0; ABA takes only USD accounts."""
    new = tmp_path / "new-config"
    shutil.copytree(DEFAULT_CONFIG_DIR, new)
    corridors = new / "corridors.toml"
    text = corridors.read_text()
    text = text.replace('amount_max = { KHR = "5000000", USD = "1250.00" }\nfee = { KHR = "0", USD = "0.00" }',
                        'amount_max = { KHR = "10000000", USD = "1250.00" }\nfee = { KHR = "0", USD = "0.75" }', 1)
    corridors.write_text(text)
    (new / "fx.toml").write_text((new / "fx.toml").read_text().replace("mid = 120.05", "mid = 121.0"))
    participants = new / "participants.toml"
    text = participants.read_text()
    at = text.index('code = "ABAAKHPPXXX"')
    participants.write_text(text[:at] + text[at:].replace('currencies = ["KHR", "USD"]', 'currencies = ["USD"]', 1))
    return new


async def _wait_recorded(store: Store, keys: list[tuple[str, str]]) -> None:
    async with asyncio.timeout(admitted_s_max):
        while True:
            async with store.reader() as uow:
                if len(await uow.instructions_get(keys)) == len(keys):
                    return
            await asyncio.sleep(0.1)


async def test_a_dry_run_reports_exactly_what_the_new_config_would_change(broker: TansuBroker, store: Store, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    ids = {name: f"DR{tag}-{name}" for name in ("khr", "usd", "big", "aba", "nowhere")}
    instructions: dict[str, dict[str, Any]] = {
        # admitted, to a PromptPay mobile proxy (looked up at the time): its rate changes
        "khr": sample_instruction(instruction_id=ids["khr"], amount={"value": "150000", "currency": "KHR"}),
        # admitted in USD: its fee changes
        "usd": sample_instruction(instruction_id=ids["usd"], debtor={"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "USD"},
                                  amount={"value": "25.50", "currency": "USD"}),
        # above KH-TH's KHR maximum then (AM02): admitted now
        "big": sample_instruction(instruction_id=ids["big"], amount={"value": "6000000", "currency": "KHR"}),
        # ABA's KHR account: admitted then, refused now (CURR)
        "aba": sample_instruction(instruction_id=ids["aba"], participant="ABAAKHPPXXX",
                                  debtor={"name": "Chan Sophea", "account": "chan_sophea@abaa", "currency": "KHR"},
                                  amount={"value": "100000", "currency": "KHR"}),
        # no such corridor then or now (AG01): unchanged
        "nowhere": sample_instruction(instruction_id=ids["nowhere"], corridor="KH-XX"),
    }
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    async with running_switch(broker, store) as run:
        await publish(run, [(ids[n], json.dumps(doc).encode()) for n, doc in instructions.items()])
        await _wait_recorded(store, [(doc["participant"], doc["instruction_id"]) for doc in instructions.values()])
    until = datetime.now(timezone.utc) + timedelta(minutes=1)

    async with store.reader() as uow:
        then = await uow.instructions_get([(d["participant"], d["instruction_id"]) for d in instructions.values()])
        paid = await uow.payments_get([r.uetr for r in then.values() if r.uetr])
    outcome = {n: then[(d["participant"], d["instruction_id"])] for n, d in instructions.items()}
    assert {n: r.reject_reason_code for n, r in outcome.items()} == {"khr": None, "usd": None, "big": "AM02", "aba": None, "nowhere": "AG01"}
    assert all(r.replay is not None for r in outcome.values())
    assert '"resolutions":{"promptpay":[true,' in (outcome["khr"].replay or "")  # the look-up made at the time, kept
    khr_rate = paid[outcome["khr"].uetr].fx_rate  # type: ignore[index]
    khr_target = paid[outcome["khr"].uetr].target  # type: ignore[index]

    new = config_mod.load(_new_config(tmp_path), env={})
    async with store.reader() as uow:
        report = await dry_run(uow, replay_deps(new), read_replayed, since=since, until=until, samples_max=5)

    assert report.replayed == 5 and not report.not_replayed
    assert report.as_dict()["per_corridor"] == {
        "KH-TH": {"fee_changed": 1, "now_admitted": 1, "now_rejected": 1, "rate_changed": 1, "replayed": 4},
        "KH-XX": {"replayed": 1, "unchanged": 1},
    }
    samples = report.samples
    assert samples["fee_changed"] == [f"ACLBKHPPXXX/{ids['usd']} KH-TH: fee 0.00 USD -> 0.75 USD"]
    assert samples["now_rejected"] == [
        f"ABAAKHPPXXX/{ids['aba']} KH-TH: admitted then, now CURR (corridor KH-TH does not take KHR debtor accounts from ABAAKHPPXXX)"
    ]
    assert samples["now_admitted"] == [
        f"ACLBKHPPXXX/{ids['big']} KH-TH: AM02 then, now admitted via promptpay (6000000.00 KHR -> 49338.84 THB, fee 0.00 KHR)"
    ]
    assert samples["rate_changed"] == [
        f"ACLBKHPPXXX/{ids['khr']} KH-TH: rate {khr_rate} -> 0.0082231404 ({khr_target} -> 1233.47 THB)"
    ]
    assert khr_rate == "0.0082882132"  # 1/120.05 less the 50 bps spread: what the shipped config priced

    if store.is_sqlite:  # the command gives the same report (PostgreSQL: the test's schema is not in a URL)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEKONG_")}
        done = subprocess.run(
            [str(Path(sys.executable).parent / "mekong"), "config", "dry-run", new.config_dir, "--since", since.isoformat(),
             "--until", until.isoformat(), "--url", store.url, "--samples", "5", "--json"],
            check=False, capture_output=True, text=True, env=env, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == report.as_dict()


async def test_instructions_received_pages_a_period_in_order_even_within_one_instant(store: Store) -> None:
    from switch.service.ports import InstructionRecord

    t0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
    at = [t0, t0, t0, t0 + timedelta(seconds=1), t0 - timedelta(seconds=1), t0 + timedelta(days=1)]  # one batch shares a time
    records = [
        InstructionRecord("ACLBKHPPXXX", f"P-{i}", "f" * 64, None, "AG01", "x", "KH-TH", None, when, replay=f'{{"n":{i}}}')
        for i, when in enumerate(at)
    ]
    async with store.unit_of_work() as uow:
        await uow.instructions_add(records)
    pages: list[list[str]] = []
    after = None
    async with store.reader() as uow:
        while page := await uow.instructions_received(t0 - timedelta(seconds=1), t0 + timedelta(days=1), 2, after=after):
            pages.append([r.instruction_id for r in page])
            after = (page[-1].created_at, page[-1].participant, page[-1].instruction_id)
        (kept,) = await uow.instructions_received(t0 + timedelta(seconds=1), t0 + timedelta(seconds=2), 10)
    # [since, until): the one received a day later is outside; the first second's three in id order
    assert pages == [["P-4", "P-0"], ["P-1", "P-2"], ["P-3"]]
    assert kept.replay == '{"n":3}' and kept.created_at == t0 + timedelta(seconds=1)
