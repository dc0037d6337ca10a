"""The demo path, small: broker, the four simulators and the switch as separate processes,
exactly as `mekong demo` runs them. Every instruction (JSON, QR, pain.001) must reach exactly one
final status (or the dead-letter topic), every bad one the expected reason, every inbound payment
exactly one answer to its network, and every ISO message sent or received must validate against
the official XSD."""

from __future__ import annotations

import json
from pathlib import Path

from switch.tools.demo import run_demo

demo_count = 300


def test_the_demo_accounts_for_every_instruction_and_every_message_validates(tmp_path: Path) -> None:
    assert run_demo(count=demo_count, workdir=tmp_path, inbound_per_partner=50) == 0
    report = json.loads((tmp_path / "summary.json").read_text())
    summary, xsd, inbound = report["summary"], report["xsd"], report["inbound"]
    assert report["partner_tls"] and (tmp_path / "pki" / "manifest.json").exists()  # the demo runs with mutual TLS
    assert sum(summary["by_outcome"].values()) == demo_count
    assert "MISSING" not in summary["by_outcome"]
    assert summary["duplicates_seen"] == 0  # exactly one final status per instruction
    assert summary["bad_input_expectations_unmet"] == []
    assert summary["by_outcome"]["COMPLETED"] > demo_count * 0.9
    rows = set(summary["by_corridor"])
    for corridor in ("KH-TH", "KH-LA", "KH-VN", "KH-CN"):
        assert f"{corridor} out" in rows
    assert any(r.endswith("(qr)") for r in rows) and any(r.endswith("(pain.001)") for r in rows)
    assert summary["pain002_reports"] > summary["pain001_records"] > 0
    assert set(inbound["by_route"]) == {"TH-KH in", "LA-KH in", "VN-KH in", "CN-KH in"}
    assert inbound["expectations_unmet"] == [] and inbound["answers_changed"] == 0
    assert all(route["COMPLETED"] > 40 for route in inbound["by_route"].values())
    assert xsd["invalid"] == []
    for message in ("pacs.008.001.08", "pacs.008.001.10", "pacs.008.001.13", "pacs.002.001.10", "pain.002.001.12"):
        assert xsd["valid"][message] > 0, message
    samples = {p.name for p in (tmp_path / "samples").iterdir()}
    assert {"pacs.008-sent-napas.xml", "pacs.002-accepted.xml", "pacs.008-inbound.xml", "pain.002-final.xml",
            "status-event.json"} <= samples
