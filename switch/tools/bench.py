"""`mekong bench`: the full path (Kafka in -> pacs.008 -> partner -> pacs.002 callback -> status
out) with the broker, the simulator (no delay, no rejects) and the switch with SQLite, each in
its own process on this machine. Reports throughput, end-to-end latency and the switch's CPU
time per payment. With --rate the load is offered at a fixed rate instead of flat out.

The latency is measured by the load generator from publish to the final status event, so it
includes the broker and the simulator: an upper bound of what the switch itself adds.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from switch.tools.loadgen import drive, percentiles, plan_instructions
from switch.tools.stack import Stack

warmup_count = 500


def run_bench(*, count: int, rate: float, workdir: Path) -> dict[str, Any]:
    planned, _ = plan_instructions(count, bad_share=0.0, run_id="B")
    warmup, _ = plan_instructions(warmup_count, bad_share=0.0, run_id="W", seed=1)
    with Stack(workdir) as stack:
        print(f"stack up ({stack.switch_url}); warming up with {warmup_count} payments", file=sys.stderr, flush=True)
        asyncio.run(drive(stack.bootstrap_servers, warmup, rate_per_s=0))
        cpu_before = {name: stack.cpu_seconds(name) for name in ("switch", "sim")}
        bar = tqdm(total=count, unit="pay", desc="bench", file=sys.stderr, mininterval=0.5)
        started = time.perf_counter()
        result = asyncio.run(
            drive(stack.bootstrap_servers, planned, rate_per_s=rate, on_progress=lambda d, _t: bar.update(d - bar.n))
        )
        bar.close()
        cpu = {name: stack.cpu_seconds(name) - cpu_before[name] for name in ("switch", "sim")}
        wall = time.perf_counter() - started
    completed = sum(1 for f in result.finals.values() if f.state == "COMPLETED")
    seconds = result.elapsed_s()
    return {
        "payments": len(result.finals),
        "completed": completed,
        "missing": count - result.accounted(),
        "offered_rate_per_s": rate or None,
        "seconds": round(seconds, 3),
        "throughput_per_s": round(len(result.finals) / seconds, 1),
        "latency_ms": percentiles(result.latencies_ms()),
        "cpu_us_per_payment": round(cpu["switch"] / max(1, len(result.finals)) * 1e6, 1),
        "simulator_cpu_us_per_payment": round(cpu["sim"] / max(1, len(result.finals)) * 1e6, 1),
        "wall_seconds": round(wall, 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "database": "sqlite",
    }
