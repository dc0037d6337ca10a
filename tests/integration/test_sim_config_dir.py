"""`mekong sim` plays the partner profile of the configuration MEKONG_CONFIG_DIR names (issue 11
item 6: compose and Kubernetes hand the simulators the switch's configuration through the
environment, as they do the switch's): here a copy whose PromptPay profile listens elsewhere."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

from switch.broker import free_port
from switch.config import DEFAULT_CONFIG_DIR

ROOT = Path(__file__).resolve().parents[2]
start_s_max = 30.0  # a bound on a hung start, not a performance goal


async def test_mekong_sim_reads_the_profile_of_mekong_config_dir(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    port = free_port()
    profile = config / "partners" / "promptpay.toml"
    text = profile.read_text(encoding="utf-8")
    assert 'base_url = "https://127.0.0.1:8081"' in text
    profile.write_text(text.replace('base_url = "https://127.0.0.1:8081"', f'base_url = "https://127.0.0.1:{port}"'), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switch.entrypoints.cli", "sim", "promptpay", "--no-reports",  # no --port, no --config-dir
        "--callback-url", "https://127.0.0.1:9/iso20022/promptpay",
        cwd=ROOT, env={**os.environ, "MEKONG_CONFIG_DIR": str(config)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(start_s_max):
            line = (await proc.stdout.readline()).decode()
        assert re.match(rf"promptpay simulator ready: https://127\.0\.0\.1:{port}/iso20022 ", line), line
    finally:
        proc.terminate()
        await proc.wait()
