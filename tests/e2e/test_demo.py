"""The demo path, small: broker, simulator and switch as separate processes, exactly as
`mekong demo` runs them. Every instruction must reach exactly one final status (or the
dead-letter topic), every bad one the expected reason, and every pacs.008 the switch sent and
every pacs.002 it received must validate against the official XSD."""

from __future__ import annotations

import json
from pathlib import Path

from switch.tools.demo import run_demo

demo_count = 300


def test_the_demo_accounts_for_every_instruction_and_every_message_validates(tmp_path: Path) -> None:
    assert run_demo(count=demo_count, workdir=tmp_path) == 0
    report = json.loads((tmp_path / "summary.json").read_text())
    summary, xsd = report["summary"], report["xsd"]
    assert sum(summary["by_outcome"].values()) == demo_count
    assert "MISSING" not in summary["by_outcome"]
    assert summary["duplicates_seen"] == 0  # exactly one final status per instruction
    assert summary["bad_input_expectations_unmet"] == []
    assert summary["by_outcome"]["COMPLETED"] > demo_count * 0.9
    assert xsd["invalid"] == []
    assert xsd["valid"]["pacs.008.001.13"] > 0 and xsd["valid"]["pacs.002.001.10"] > 0
    samples = {p.name for p in (tmp_path / "samples").iterdir()}
    assert {"pacs.008-sent.xml", "pacs.002-accepted.xml", "status-event.json"} <= samples
