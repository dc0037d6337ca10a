"""`mekong demo`: the whole switch, end to end, on this machine.

Starts the Tansu broker, the four partner simulators (PromptPay, LAPNet, NAPAS, UnionPay) and the
switch (SQLite in the working directory). Outbound, it publishes instructions over KH-TH, KH-LA,
KH-VN and KH-CN (JSON, scanned QR payloads and pain.001 messages; about 2% bad); inbound, each
network pays Bakong customers while the demo plays the participants (confirm, refuse, or stay
silent). It shows progress, waits until every instruction has a final status (or sits in the
dead-letter topic) and every network has its answer, prints a summary per corridor and
direction, writes sample messages, checks every ISO message sent and received against the
official XSD, and stops everything it started.
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

from iso20022 import apphdr
from iso20022.parsing import message_id_of, parse_untrusted
from iso20022.schemas import SchemaSet, SchemaViolation, default_schema_dir
from switch.tools.inbound_load import InboundPlanned, InboundResult, drive_inbound, plan_inbound
from switch.tools.loadgen import ALL_CORRIDORS, drive, plan_instructions, summarise
from switch.tools.stack import Stack

demo_partner_reject_rate = 0.01  # each simulator's beneficiary-bank rejects (NAPAS answers in its own codes)
demo_partner_duplicate_rate = 0.005  # pacs.002 answered twice: recorded, never applied twice
demo_partner_delay_ms = 20.0
demo_rate_per_s = 400.0  # instructions offered per second: a steady flow, not a burst
demo_qr_share = 0.10
demo_pain_share = 0.05
demo_inbound_per_partner = 100
demo_inbound_rate_per_s = 100.0


def check_messages(database: Path, schemas: SchemaSet) -> dict[str, Any]:
    """Validate every ISO message the switch sent (the outbox: pacs.008, pacs.002 answers,
    pain.002) and every one it received (pacs.002 statuses, inbound pacs.008) against the XSD,
    and the AppHdr of every signed business message a partner sent against head.001.001.02."""
    counts: dict[str, int] = {}
    invalid: list[str] = []
    with sqlite3.connect(database) as db:
        rows = list(db.execute("SELECT message_id, body FROM outbox WHERE kind = 'partner' OR hex(substr(body, 1, 1)) = '3C'"))
        rows += list(db.execute("SELECT message_id, body FROM inbound_messages"))
    for message_id, body in rows:
        root = parse_untrusted(bytes(body))
        message_type = message_id_of(root)
        try:
            schemas.validate(root, message_type)
            counts[message_type] = counts.get(message_type, 0) + 1
        except SchemaViolation as exc:
            invalid.append(f"{message_id}: {exc}")
    with sqlite3.connect(database) as db:
        envelopes = list(db.execute("SELECT biz_msg_id, envelope FROM signed_messages"))
    for message_id, envelope in envelopes:
        header = parse_untrusted(bytes(envelope))[0]  # kept as it came: already checked on arrival
        try:
            schemas.validate(header, apphdr.HEAD_VERSION)
            counts[apphdr.HEAD_VERSION] = counts.get(apphdr.HEAD_VERSION, 0) + 1
        except SchemaViolation as exc:
            invalid.append(f"{message_id} AppHdr: {exc}")
    return {"valid": counts, "invalid": invalid}


def write_samples(database: Path, out_dir: Path, planned: list[Any]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    like = "CAST(body AS TEXT) LIKE"
    queries = {
        **{
            f"pacs.008-sent-{partner}.xml": f"SELECT body FROM outbox WHERE kind = 'partner' AND destination = '{partner}' "
            f"AND {like} '%FIToFICstmrCdtTrf%' ORDER BY id LIMIT 1"
            for partner in ("promptpay", "lapnet", "napas", "unionpay")
        },
        "pacs.002-accepted.xml": f"SELECT body FROM inbound_messages WHERE {like} '%<TxSts>ACSC</TxSts>%' LIMIT 1",
        "pacs.002-rejected.xml": f"SELECT body FROM inbound_messages WHERE {like} '%<TxSts>RJCT</TxSts>%' LIMIT 1",
        "pacs.002-rejected-napas.xml": f"SELECT body FROM inbound_messages WHERE partner = 'napas' AND {like} '%<Prtry>%' LIMIT 1",
        "pacs.008-inbound.xml": f"SELECT body FROM inbound_messages WHERE {like} '%FIToFICstmrCdtTrf%' LIMIT 1",
        "pacs.002-inbound-answer.xml": f"SELECT body FROM outbox WHERE kind = 'partner' AND message_id LIKE 'R%' LIMIT 1",
        # the signed business messages as they arrived (AppHdr, ds:Signature, Document)
        "bizmsg-pacs.002-received-signed.xml": "SELECT envelope FROM signed_messages WHERE message_type LIKE 'pacs.002%' LIMIT 1",
        "bizmsg-pacs.008-inbound-received-signed.xml": "SELECT envelope FROM signed_messages WHERE message_type LIKE 'pacs.008%' LIMIT 1",
        "pain.002-acceptance.xml": f"SELECT body FROM outbox WHERE kind = 'status' AND {like} '%<GrpSts>%' LIMIT 1",
        "pain.002-final.xml": f"SELECT body FROM outbox WHERE kind = 'status' AND {like} '<?xml%' AND {like} '%<TxSts>ACSC%' LIMIT 1",
        "inbound-event.json": "SELECT body FROM outbox WHERE kind = 'status' AND message_id LIKE 'I%' LIMIT 1",
        "status-event.json": f"SELECT body FROM outbox WHERE kind = 'status' AND {like} '{{%' ORDER BY id DESC LIMIT 1",
    }
    with sqlite3.connect(database) as db:
        for name, query in queries.items():
            row = db.execute(query).fetchone()
            if row:
                path = out_dir / name
                path.write_bytes(bytes(row[0]))
                written.append(path)
    pain = next((p for p in planned if p.kind == "pain001"), None)
    if pain is not None and pain.value is not None:
        path = out_dir / "pain.001-sent.xml"
        path.write_bytes(pain.value)
        written.append(path)
    return written


def _reasons(outcomes: dict[str, int]) -> str:
    rejected = {k: v for k, v in outcomes.items() if k not in ("COMPLETED",)}
    return ", ".join(f"{k.replace('REJECTED ', '')} {v}" for k, v in sorted(rejected.items())) or "-"


def _print_summary(count: int, elapsed_s: float, summary: dict[str, Any], inbound: dict[str, Any], checks: dict[str, Any],
                   samples: list[Path], sims: dict[str, Any]) -> None:
    line = "-" * 100
    print(f"\n{line}\nMekong Switch demo: {count:,} outbound instructions over four corridors, "
          f"{sum(sum(c.values()) for c in inbound['by_route'].values()):,} inbound payments from four networks\n{line}")
    print(f"{'corridor / direction':<28}{'total':>7}{'done':>7}  {'p50 ms':>7}{'p99 ms':>8}  rejected / other, by ISO reason")
    rows = [(r, c, summary["latency_ms_by_corridor"].get(r, {})) for r, c in summary["by_corridor"].items()]
    rows += [(r, c, inbound["latency_ms_by_route"].get(r, {})) for r, c in inbound["by_route"].items()]
    for row, outcomes, lat in rows:
        total = sum(outcomes.values())
        print(f"  {row:<26}{total:>7,}{outcomes.get('COMPLETED', 0):>7,}  {lat.get('p50', 0):>7}{lat.get('p99', 0):>8}  "
              f"{_reasons(outcomes)}")
    lat = summary["latency_ms"]
    print(f"\noutbound latency, published -> final status read back (broker hops and the simulators' "
          f"{demo_partner_delay_ms:g} ms included), ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}")
    print(f"outbound throughput: {count / elapsed_s:,.0f} instructions/s over {elapsed_s:.1f} s (offered {demo_rate_per_s:g}/s)")
    print(f"pain.001: {summary['pain001_records']} messages in, {summary['pain002_reports']} pain.002 reports out")
    print(f"inbound: participant replies {inbound['replies_sent']}; partners' repeated answers {inbound['answers_repeated']}, "
          f"changed answers {inbound['answers_changed']}")
    print("\nFX rates used (target per source unit, after spread):")
    for pair, rates in summary["rates"].items():
        shown = rates if len(rates) <= 2 else [*rates[:2], "..."]
        print(f"  {pair}: {', '.join(shown)}")
    print("\nvolume of completed outbound payments:")
    for k, v in summary["volume"].items():
        print(f"  {k:<16}{v:>22}")
    print("\nsimulators (what each network saw):")
    for partner, stats in sims.items():
        keys = ("accepted", "proxy_lookups", "resends", "duplicates_sent")
        shown = ", ".join(f"{k} {stats[k]}" for k in keys if stats.get(k))
        rejects = ", ".join(f"{k.removeprefix('rejected_')} {v}" for k, v in sorted(stats.items()) if k.startswith("rejected_"))
        print(f"  {partner:<10} {shown}; rejected {rejects or '-'}")
    valid = ", ".join(f"{n:,} {t}" for t, n in sorted(checks["valid"].items()))
    print(f"\nmessages checked against the official XSDs: {valid}; invalid: {len(checks['invalid'])}")
    unmet = summary["bad_input_expectations_unmet"] + inbound["expectations_unmet"]
    if unmet:
        print("payments that did NOT end as planned:")
        for item in unmet[:10]:
            print(f"  {item}")
    else:
        print("every bad instruction and every inbound payment ended as planned "
              "(CH20, BE23, FF01, CURR, AC04, AB05 or the dead-letter topic)")
    print("\nsample messages:")
    for path in samples:
        print(f"  {path}")
    print(line)


async def _drive_both(stack: Stack, planned: list[Any], inbound_planned: list[InboundPlanned]) -> tuple[Any, InboundResult]:
    out_bar = tqdm(total=sum(1 for p in planned if p.kind != "pain001"), unit="instr", desc="outbound final statuses",
                   file=sys.stdout, mininterval=0.5, position=0)
    in_bar = tqdm(total=len(inbound_planned), unit="pay", desc="inbound partner answers", file=sys.stdout,
                  mininterval=0.5, position=1)
    signers = stack.signers  # every instruction and reply signed by its participant's key
    try:
        return await asyncio.gather(
            drive(stack.bootstrap_servers, planned, on_progress=lambda d, _t: out_bar.update(d - out_bar.n),
                  rate_per_s=demo_rate_per_s, signers=signers),
            drive_inbound(stack.bootstrap_servers, {p: stack.sim_url(p) for p in stack.partners}, inbound_planned,
                          rate_per_s=demo_inbound_rate_per_s, on_progress=lambda d, _t: in_bar.update(d - in_bar.n),
                          signers=signers),
        )
    finally:
        out_bar.close()
        in_bar.close()


def _read_the_operations_port(stack: Stack, result: Any) -> dict[str, Any]:
    """What an operator sees on the operations port (TLS, its development CA trusted, the
    operator token): one completed payment through /v1, and /metrics."""
    uetr = next((f.event["uetr"] for f in result.finals.values() if f.event.get("state") == "COMPLETED"), None)
    out: dict[str, Any] = {"url": stack.ops_url, "tls": stack.ops_url.startswith("https://"), "payment_read": False,
                           "metrics_read": False}
    try:
        if uetr is not None:
            out["payment_read"] = json.loads(stack.ops_get(f"{stack.ops_url}/v1/payments/{uetr}"))["state"] == "COMPLETED"
        out["metrics_read"] = b"switch_payments_total" in stack.ops_get(f"{stack.ops_url}/metrics")
    except OSError as exc:  # refused, or TLS failed: reported, and the demo fails
        out["error"] = f"{type(exc).__name__}: {exc}"
    print(f"operations port {stack.ops_url}: a payment read through /v1 {'yes' if out['payment_read'] else 'NO'}, "
          f"/metrics {'yes' if out['metrics_read'] else 'NO'} (TLS, CA and client certificates in {stack.pki_path / 'ops'})")
    return out


def run_demo(
    *, count: int, workdir: Path, inbound_per_partner: int = demo_inbound_per_partner, switch_log_level: str = "WARNING",
    secrets_out: dict[str, str] | None = None,
) -> int:
    """The demo; returns its exit code. `secrets_out`, when given, receives the run's secrets
    (name -> value), for the test that checks none of them shows in any output."""
    schemas = SchemaSet(Path(default_schema_dir()))
    planned, unknown = plan_instructions(
        count, run_id=time.strftime("%H%M%S"), corridors=ALL_CORRIDORS, qr_share=demo_qr_share, pain_share=demo_pain_share
    )
    inbound_planned = plan_inbound(inbound_per_partner)
    sim_args = ["--delay-ms", str(demo_partner_delay_ms), "--reject-rate", str(demo_partner_reject_rate),
                "--duplicate-rate", str(demo_partner_duplicate_rate)]
    promptpay_args = [arg for proxy in sorted(unknown) for arg in ("--unknown-proxy", proxy)]
    print(f"starting the stack in {workdir} (Tansu broker, PromptPay, LAPNet, NAPAS and UnionPay simulators, switch) ...",
          flush=True)
    stack = Stack(workdir, sim_args=sim_args, partner_sim_args={"promptpay": promptpay_args}, switch_log_level=switch_log_level)
    with stack:
        if secrets_out is not None:
            secrets_out.update(stack.secrets)
        print(
            f"switch ready at {stack.switch_url} (mutual TLS and signed messages with the simulators, PKI in {stack.pki_path}), broker {stack.bootstrap_servers}; "
            f"publishing {count:,} instructions signed by their participants' keys "
            f"at {demo_rate_per_s:g}/s (JSON, QR and pain.001) while the four networks send {len(inbound_planned):,} inbound payments",
            flush=True,
        )
        result, inbound_result = asyncio.run(_drive_both(stack, planned, inbound_planned))
        sims = {p: stack.get_json(f"{stack.sim_url(p)}/sim/stats") for p in stack.partners}
        ops_port = _read_the_operations_port(stack, result)
        codes = stack.stop()
    summary = summarise(planned, result)
    inbound = inbound_result.summary()
    checks = check_messages(stack.database_path, schemas)
    samples = write_samples(stack.database_path, workdir / "samples", planned)
    (workdir / "summary.json").write_text(
        json.dumps({"summary": summary, "inbound": inbound, "xsd": checks, "simulators": sims,
                    "partner_tls": not stack.insecure_dev, "signatures": not stack.insecure_dev,
                    "kafka_signatures": not stack.insecure_dev, "ops_port": ops_port}, indent=2, default=str)
    )
    _print_summary(count, result.elapsed_s(), summary, inbound, checks, samples, sims)
    tracked = sum(1 for p in planned if p.kind != "pain001")
    pain_payments = sum(1 for p in planned if p.origin == "pain.001" and p.kind != "pain001" and p.key in result.finals
                        and result.finals[p.key].event.get("uetr"))
    problems = []
    if tracked - result.accounted():
        problems.append(f"{tracked - result.accounted()} instructions have no final status")
    if len(inbound_result.answers.keys() & inbound_result.uetrs.keys()) < len(inbound_planned):
        problems.append(f"{len(inbound_planned) - len(inbound_result.answers)} inbound payments got no answer")
    if inbound_result.changed_answers:
        problems.append(f"{inbound_result.changed_answers} inbound answers changed on a resend")
    if summary["pain002_reports"] != summary["pain001_records"] + pain_payments:
        problems.append(f"{summary['pain002_reports']} pain.002 reports, expected {summary['pain001_records'] + pain_payments}")
    if checks["invalid"]:
        problems.append(f"{len(checks['invalid'])} messages failed XSD validation")
    if summary["bad_input_expectations_unmet"] or inbound["expectations_unmet"]:
        problems.append(f"{len(summary['bad_input_expectations_unmet']) + len(inbound['expectations_unmet'])} payments ended unexpectedly")
    if not (ops_port["payment_read"] and ops_port["metrics_read"]):
        problems.append(f"the operations port did not answer as it should: {ops_port}")
    if codes.get("switch") != 0:
        problems.append(f"the switch exited with {codes.get('switch')} on SIGTERM")
    if problems:
        print("DEMO FAILED: " + "; ".join(problems))
        return 1
    print(f"all {tracked:,} instructions and {len(inbound_planned):,} inbound payments accounted for; "
          f"summary in {workdir / 'summary.json'}")
    return 0
