"""`mekong demo`: the whole switch, end to end, on this machine.

Starts the Tansu broker, the PromptPay simulator and the switch (SQLite in the working
directory), publishes instructions (about 2% bad), shows progress, waits until every one has a
final status or sits in the dead-letter topic, prints a summary, writes sample messages, checks
every emitted pacs.008 against the official XSD, and stops everything it started.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from iso20022.parsing import message_id_of, parse_untrusted
from iso20022.schemas import SchemaSet, SchemaViolation, default_schema_dir
from switch.tools.loadgen import drive, plan_instructions, summarise
from switch.tools.stack import Stack

demo_partner_reject_rate = 0.01  # the simulator's beneficiary-bank rejects (AC01, AC04, AM04)
demo_partner_delay_ms = 20.0
demo_rate_per_s = 400.0  # instructions offered per second: a steady flow, not a burst


def check_outbound_messages(database: Path, schemas: SchemaSet) -> dict[str, Any]:
    """Validate every pacs.008 the switch sent (the outbox) and every pacs.002 it received."""
    counts: dict[str, int] = {}
    invalid: list[str] = []
    with sqlite3.connect(database) as db:
        rows = list(db.execute("SELECT message_id, body FROM outbox WHERE kind = 'partner'"))
        rows += list(db.execute("SELECT message_id, body FROM inbound_messages"))
    for message_id, body in rows:
        root = parse_untrusted(bytes(body))
        message_type = message_id_of(root)
        try:
            schemas.validate(root, message_type)
            counts[message_type] = counts.get(message_type, 0) + 1
        except SchemaViolation as exc:
            invalid.append(f"{message_id}: {exc}")
    return {"valid": counts, "invalid": invalid}


def write_samples(database: Path, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with sqlite3.connect(database) as db:
        queries = {
            "pacs.008-sent.xml": "SELECT body FROM outbox WHERE kind = 'partner' ORDER BY id LIMIT 1",
            "pacs.002-accepted.xml": "SELECT body FROM inbound_messages WHERE CAST(body AS TEXT) LIKE '%<TxSts>ACSC</TxSts>%' LIMIT 1",
            "pacs.002-rejected.xml": "SELECT body FROM inbound_messages WHERE CAST(body AS TEXT) LIKE '%<TxSts>RJCT</TxSts>%' LIMIT 1",
            "status-event.json": "SELECT body FROM outbox WHERE kind = 'status' ORDER BY id DESC LIMIT 1",
        }
        for name, query in queries.items():
            row = db.execute(query).fetchone()
            if row:
                path = out_dir / name
                path.write_bytes(bytes(row[0]))
                written.append(path)
    return written


def _print_summary(count: int, elapsed_s: float, summary: dict[str, Any], checks: dict[str, Any], samples: list[Path]) -> None:
    line = "-" * 72
    print(f"\n{line}\nMekong Switch demo: {count:,} instructions, corridor KH -> TH (PromptPay / ITMX)\n{line}")
    print(f"{'outcome':<32}{'count':>10}")
    for outcome, n in summary["by_outcome"].items():
        print(f"  {outcome:<30}{n:>10,}")
    lat = summary["latency_ms"]
    print(
        f"\nlatency, instruction published -> final status read back (two broker hops and the "
        f"simulator's {demo_partner_delay_ms:g} ms included), ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}"
    )
    print(f"throughput: {count / elapsed_s:,.0f} instructions/s over {elapsed_s:.1f} s (offered {demo_rate_per_s:g}/s)")
    print("\nFX rates used (target per source unit, after spread):")
    for pair, rates in summary["rates"].items():
        shown = rates if len(rates) <= 3 else [*rates[:3], "..."]
        print(f"  {pair}: {', '.join(shown)}")
    print("\nvolume of completed payments:")
    for k, v in summary["volume"].items():
        print(f"  {k:<16}{v:>22}")
    valid = ", ".join(f"{n:,} {t}" for t, n in sorted(checks["valid"].items()))
    print(f"\nmessages checked against the official XSDs: {valid}; invalid: {len(checks['invalid'])}")
    if summary["bad_input_expectations_unmet"]:
        print("bad instructions that did NOT end as expected:")
        for item in summary["bad_input_expectations_unmet"][:10]:
            print(f"  {item}")
    else:
        print("every bad instruction ended as expected (CH20, BE23, FF01 status or dead-letter topic)")
    print("\nsample messages:")
    for path in samples:
        print(f"  {path}")
    print(line)


def run_demo(*, count: int, workdir: Path) -> int:
    schemas = SchemaSet(Path(default_schema_dir()))
    planned, unknown = plan_instructions(count, run_id=time.strftime("%H%M%S"))
    sim_args = ["--delay-ms", str(demo_partner_delay_ms), "--reject-rate", str(demo_partner_reject_rate)]
    for proxy in sorted(unknown):
        sim_args += ["--unknown-proxy", proxy]
    print(f"starting the stack in {workdir} (Tansu broker, PromptPay simulator, switch) ...", flush=True)
    stack = Stack(workdir, sim_args=sim_args)
    with stack:
        print(
            f"switch ready at {stack.switch_url}, broker {stack.bootstrap_servers}; "
            f"publishing {count:,} instructions at {demo_rate_per_s:g}/s",
            flush=True,
        )
        bar = tqdm(total=count, unit="instr", desc="final statuses", file=sys.stdout, mininterval=0.5)

        def progress(done: int, _total: int) -> None:
            bar.update(done - bar.n)

        result = asyncio.run(drive(stack.bootstrap_servers, planned, on_progress=progress, rate_per_s=demo_rate_per_s))
        bar.close()
        sim_stats = stack.get_json(f"http://127.0.0.1:{stack.sim_port}/sim/stats")
        codes = stack.stop()
    summary = summarise(planned, result)
    checks = check_outbound_messages(stack.database_path, schemas)
    samples = write_samples(stack.database_path, workdir / "samples")
    (workdir / "summary.json").write_text(json.dumps({"summary": summary, "xsd": checks, "simulator": sim_stats}, indent=2))
    _print_summary(count, result.elapsed_s(), summary, checks, samples)
    missing = count - result.accounted()
    problems = []
    if missing:
        problems.append(f"{missing} instructions have no final status")
    if checks["invalid"]:
        problems.append(f"{len(checks['invalid'])} messages failed XSD validation")
    if summary["bad_input_expectations_unmet"]:
        problems.append(f"{len(summary['bad_input_expectations_unmet'])} bad instructions ended unexpectedly")
    if codes.get("switch") != 0:
        problems.append(f"the switch exited with {codes.get('switch')} on SIGTERM")
    if problems:
        print("DEMO FAILED: " + "; ".join(problems))
        return 1
    print(f"all {count:,} instructions accounted for; summary in {workdir / 'summary.json'}")
    return 0
