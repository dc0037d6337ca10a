"""`mekong bench`: the full path (Kafka in -> pacs.008 -> partner -> pacs.002 callback -> status
out) with the broker, the simulator (no delay, no rejects) and the switch with SQLite, each in
its own process on this machine. Reports throughput, end-to-end latency and the switch's CPU
time per payment. With --rate the load is offered at a fixed rate instead of flat out.

Three latencies per payment, each p50/p95/p99:
- `latency_ms`: instruction published -> final status event read back by the load generator,
  what a participant sees: both broker hops, the switch and the simulator;
- `switch_latency_ms`: instruction published -> the switch hands the status record to Kafka (the
  record's timestamp): the inbound broker hop and the switch's fetch wait, the switch, and the
  simulator's round trip (no configured delay); only the outbound hop is left out;
- `switch_internal_latency_ms`: the switch's admission (its RECEIVED history row) -> the status
  record: what the switch adds once it holds the instruction, the simulator included.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timezone
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from switch.tools.loadgen import ALL_CORRIDORS, drive, percentiles, plan_instructions
from switch.tools.stack import Stack

warmup_count = 500


def _admission_times(database: Path) -> dict[str, float]:
    """instruction id -> admission time (epoch seconds) from the switch's history."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT p.instruction_id, h.at FROM payment_history h JOIN payments p ON p.uetr = h.uetr "
            "WHERE h.to_state = 'RECEIVED'"
        ).fetchall()
    return {iid: datetime.fromisoformat(at).replace(tzinfo=timezone.utc).timestamp() for iid, at in rows}


_PARTNERS = {"KH-TH": "promptpay", "KH-LA": "lapnet", "KH-VN": "napas", "KH-CN": "unionpay"}


def _rate_limited(stack: Stack) -> dict[str, float]:
    """The switch's switch_rate_limited_total series above 0, read from its operations port."""
    out = {}
    for line in stack.ops_get(f"{stack.ops_url}/metrics").decode().splitlines():
        if line.startswith("switch_rate_limited_total{") and float(line.rsplit(" ", 1)[1]) > 0:
            labels, value = line.rsplit(" ", 1)
            out[labels.removeprefix("switch_rate_limited_total")] = float(value)
    return out


def _wait_for_screening_name_data(stack: Stack, timeout_s: float = 60.0) -> None:
    """Measure after the embedded screening has loaded its name data (issue 12: seconds of CPU in
    the background after a start), not while it does: a start's cost is not a payment's."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in stack.ops_get(f"{stack.ops_url}/metrics").decode().splitlines():
            if line.startswith("switch_screening_name_data_loaded ") and float(line.rsplit(" ", 1)[1]) == 1:
                return
        time.sleep(0.25)
    print(f"the screening's name data was not loaded after {timeout_s:g} s: measuring anyway", file=sys.stderr, flush=True)


def run_bench(
    *, count: int, rate: float, workdir: Path, corridors: tuple[str, ...] = ALL_CORRIDORS, insecure_dev: bool = False
) -> dict[str, Any]:
    planned, _ = plan_instructions(count, bad_share=0.0, run_id="B", corridors=corridors)
    warmup, _ = plan_instructions(warmup_count, bad_share=0.0, run_id="W", seed=1, corridors=corridors)
    partners = tuple(sorted({_PARTNERS[c] for c in corridors}))
    with Stack(workdir, partners=partners, insecure_dev=insecure_dev) as stack:
        sims = tuple(f"sim-{p}" for p in partners)
        print(f"stack up ({stack.switch_url}); warming up with {warmup_count} payments", file=sys.stderr, flush=True)
        signers = stack.signers  # None with --insecure-dev: unsigned records, unchecked
        asyncio.run(drive(stack.bootstrap_servers, warmup, rate_per_s=0, signers=signers))
        _wait_for_screening_name_data(stack)
        cpu_before = {name: stack.cpu_seconds(name) for name in ("switch", *sims)}
        bar = tqdm(total=count, unit="pay", desc="bench", file=sys.stderr, mininterval=0.5)
        started = time.perf_counter()
        result = asyncio.run(
            drive(stack.bootstrap_servers, planned, rate_per_s=rate, on_progress=lambda d, _t: bar.update(d - bar.n),
                  signers=signers)
        )
        bar.close()
        cpu = {name: stack.cpu_seconds(name) - cpu_before[name] for name in ("switch", *sims)}
        rate_limited = _rate_limited(stack)
        cpu["sim"] = sum(cpu[name] for name in sims)
        wall = time.perf_counter() - started
    completed = sum(1 for f in result.finals.values() if f.state == "COMPLETED")
    admitted = _admission_times(stack.database_path)
    internal_ms = [f.record_ts_ms - admitted[key] * 1000 for key, f in result.finals.items() if key in admitted]
    switch_ms = [f.record_ts_ms - result.sent_wall_ms[key] for key, f in result.finals.items()]
    to_admission_ms = [admitted[key] * 1000 - result.sent_wall_ms[key] for key in result.finals if key in admitted]
    seconds = result.elapsed_s()
    return {
        "payments": len(result.finals),
        "completed": completed,
        "missing": count - result.accounted(),
        "offered_rate_per_s": rate or None,
        "corridors": list(corridors),
        "seconds": round(seconds, 3),
        "throughput_per_s": round(len(result.finals) / seconds, 1),
        "latency_ms": percentiles(result.latencies_ms()),
        "switch_latency_ms": percentiles(switch_ms),
        "switch_internal_latency_ms": percentiles(internal_ms),
        # published -> the switch's admission: the broker hop plus the wait in the switch's consumer
        "publish_to_admission_ms": percentiles(to_admission_ms),
        "cpu_us_per_payment": round(cpu["switch"] / max(1, len(result.finals)) * 1e6, 1),
        "simulator_cpu_us_per_payment": round(cpu["sim"] / max(1, len(result.finals)) * 1e6, 1),
        "wall_seconds": round(wall, 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "database": "sqlite",
        "partner_tls": not insecure_dev,  # mutual TLS between the switch and the simulators
        "signatures": not insecure_dev,  # signed business application headers both ways
        "kafka_signatures": not insecure_dev,  # records signed by the load generator, verified by the switch
        # messages refused for their party's rate limit (switch_rate_limited_total above 0): the
        # shipped limits sit above what the benchmark sends, so this stays empty
        "rate_limited": rate_limited,
    }
