"""`mekong demo`: the whole switch, end to end, on this machine.

Starts the Tansu broker, the four partner simulators (PromptPay, LAPNet, NAPAS, UnionPay) and the
switch (SQLite in the working directory). Outbound, it publishes instructions over KH-TH, KH-LA,
KH-VN and KH-CN (JSON, scanned QR payloads and pain.001 messages; about 2% bad); inbound, each
network pays Bakong customers while the demo plays the participants (confirm, refuse, or stay
silent). It shows progress, waits until every instruction has a final status (or sits in the
dead-letter topic) and every network has its answer.

Then the exceptions (issue 9, switch/tools/exceptions_load.py): LAPNet has lost 2% of its
callbacks (only the switch's status enquiries resolve those payments), the networks have
returned 1% of what they completed (some in part); the participants recall completed payments
(the networks accept 70%, refuse the rest, UnionPay never answers a quarter) and a few right
behind their instruction, and return inbound payments;
the networks recall inbound payments (the participant accepts, refuses, or stays silent), ask
about some (pacs.028) and return one payment twice (refused ARDT, admi.002). The demo fails
unless each ended as planned. The recall and enquiry timings are shortened for the demo
(`demo_timings`, through MEKONG_PARTNER_* environment variables).

It prints a summary per corridor and direction (payments, then exceptions), writes sample
messages, checks every ISO message sent and received against the official XSD (each exception
message both ways, admi.002 sent), and stops everything it started.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from lxml import etree
from tqdm import tqdm

from iso20022 import apphdr
from iso20022.parsing import message_id_of, parse_untrusted
from iso20022.schemas import SchemaSet, SchemaViolation, default_schema_dir
from switch.tools.exceptions_load import EXPECTED_BAD_RETURN, ExceptionsRun, drive_exceptions, outcomes
from switch.tools.inbound_load import InboundPlanned, InboundResult, drive_inbound, plan_inbound
from switch.tools.loadgen import ALL_CORRIDORS, drive, plan_instructions, summarise
from switch.tools.stack import Stack
from switch.tools import compliance_load, settlement_load

demo_partner_reject_rate = 0.01  # each simulator's beneficiary-bank rejects (NAPAS answers in its own codes)
demo_partner_duplicate_rate = 0.005  # pacs.002 answered twice: recorded, never applied twice
demo_partner_delay_ms = 20.0
demo_rate_per_s = 400.0  # instructions offered per second: a steady flow, not a burst
demo_qr_share = 0.10
demo_pain_share = 0.05
demo_inbound_per_partner = 100
demo_inbound_rate_per_s = 100.0
# exceptions (issue 9): what the networks do wrong or take back, and how fast the switch follows up
demo_lossy_partner, demo_lose_rate = "lapnet", 0.02  # callbacks it never sends: only a status enquiry resolves them
demo_return_rate, demo_partial_return_rate, demo_return_delay_ms = 0.01, 0.3, 1500.0
demo_recall_accept_rate = 0.7  # the networks refuse the other recalls
demo_silent_partner, demo_recall_silent_rate = "unionpay", 0.25  # recalls it never answers
# settlement (issue 10): short cycles; the networks' reports carry injected breaks, one network's
# reports come late, one's are cut in small pages, some come twice
demo_cycle_s = 15.0
demo_break_rate = 0.01
demo_report_args: dict[str, list[str]] = {
    "promptpay": ["--report-twice-rate", "0.5"],
    "lapnet": ["--page-entries", "40"],
    "napas": ["--report-delay-ms", "4000"],
    "unionpay": ["--report-twice-rate", "0.25", "--page-entries", "100"],
}
demo_timings = {  # seconds, instead of the profiles' 20 / 600 / 120 / 300, so that the demo sees every ending
    "ENQUIRE_AFTER_S": 8.0, "RECALL_SLA_S": 14.0, "RECALL_CHASE_AFTER_S": 5.0, "RECALL_REPLY_S": 10.0,
}


EXCEPTION_MESSAGES = ("pacs.028", "pacs.004", "camt.056", "camt.029", "admi.002")  # issue 9; admi.002 goes one way only


def check_messages(database: Path, schemas: SchemaSet) -> dict[str, Any]:
    """Validate every ISO message the switch sent (the outbox: pacs.008, pacs.002 answers,
    pain.002, pacs.028, pacs.004, camt.056, camt.029, admi.002) and every one it received
    (pacs.002 statuses and inbound pacs.008 as stored; pacs.028, pacs.004, camt.056 and camt.029
    from the signed business messages as they arrived) against the XSD, and the AppHdr of every
    signed business message a partner sent against head.001.001.02. `sent` and `received` count
    the valid ones by message family (pacs.004, ...)."""
    counts: dict[str, int] = {}
    ways: dict[str, dict[str, int]] = {"sent": {}, "received": {}}
    invalid: list[str] = []
    with sqlite3.connect(database) as db:
        rows = [("sent", m, b) for m, b in db.execute("SELECT message_id, body FROM outbox WHERE kind = 'partner' OR hex(substr(body, 1, 1)) = '3C'")]
        # a payment a settlement report completed (issue 10) is recorded with the report's reference
        # as JSON, not as an ISO message: not checked here (the report itself is, from its envelope)
        rows += [("received", m, b) for m, b in db.execute("SELECT message_id, body FROM inbound_messages WHERE hex(substr(body, 1, 1)) = '3C'")]
        envelopes = list(db.execute("SELECT biz_msg_id, document_sha256, envelope FROM signed_messages"))
    stored = {hashlib.sha256(bytes(body)).hexdigest() for way, _m, body in rows if way == "received"}
    for message_id, document_sha256, envelope in envelopes:
        if document_sha256 not in stored:  # not kept in inbound_messages (a partner's pacs.004): its Document as it came
            document = next(child for child in parse_untrusted(bytes(envelope)) if etree.QName(child).localname == "Document")
            rows.append(("received", message_id, etree.tostring(document)))
    for way, message_id, body in rows:
        root = parse_untrusted(bytes(body))
        message_type = message_id_of(root)
        try:
            schemas.validate(root, message_type)
            counts[message_type] = counts.get(message_type, 0) + 1
            family = message_type[:8]
            ways[way][family] = ways[way].get(family, 0) + 1
        except SchemaViolation as exc:
            invalid.append(f"{message_id}: {exc}")
    for message_id, _type, envelope in envelopes:
        header = parse_untrusted(bytes(envelope))[0]  # kept as it came: already checked on arrival
        try:
            schemas.validate(header, apphdr.HEAD_VERSION)
            counts[apphdr.HEAD_VERSION] = counts.get(apphdr.HEAD_VERSION, 0) + 1
        except SchemaViolation as exc:
            invalid.append(f"{message_id} AppHdr: {exc}")
    return {"valid": counts, "invalid": invalid, **ways}


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
        # exceptions (issue 9), each kind both ways where it goes both ways
        "pacs.028-sent.xml": f"SELECT body FROM outbox WHERE kind = 'partner' AND {like} '%FIToFIPmtStsReq%' LIMIT 1",
        "pacs.004-sent.xml": f"SELECT body FROM outbox WHERE kind = 'partner' AND {like} '%<PmtRtr>%' LIMIT 1",
        "camt.056-sent.xml": f"SELECT body FROM outbox WHERE kind = 'partner' AND {like} '%FIToFIPmtCxlReq%' LIMIT 1",
        "camt.029-sent.xml": f"SELECT body FROM outbox WHERE kind = 'partner' AND {like} '%RsltnOfInvstgtn%' LIMIT 1",
        "admi.002-sent.xml": f"SELECT body FROM outbox WHERE kind = 'partner' AND {like} '%admi.002%' LIMIT 1",
        "bizmsg-pacs.028-received-signed.xml": "SELECT envelope FROM signed_messages WHERE message_type LIKE 'pacs.028%' LIMIT 1",
        "bizmsg-pacs.004-received-signed.xml": "SELECT envelope FROM signed_messages WHERE message_type LIKE 'pacs.004%' LIMIT 1",
        "bizmsg-camt.056-received-signed.xml": "SELECT envelope FROM signed_messages WHERE message_type LIKE 'camt.056%' LIMIT 1",
        "bizmsg-camt.029-received-signed.xml": "SELECT envelope FROM signed_messages WHERE message_type LIKE 'camt.029%' LIMIT 1",
        "status-event-returned.json": f"SELECT body FROM outbox WHERE kind = 'status' AND {like} '%\"kind\":\"return\"%' LIMIT 1",
        "status-event-recall.json": f"SELECT body FROM outbox WHERE kind = 'status' AND {like} '%\"kind\":\"recall\"%' LIMIT 1",
        "inbound-recall-event.json": f"SELECT body FROM outbox WHERE kind = 'status' AND {like} '%\"type\":\"recall\"%' LIMIT 1",
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
        keys = ("accepted", "proxy_lookups", "resends", "duplicates_sent", "callbacks_lost", "returns_sent", "recalls_received",
                "recalls_accepted", "recalls_refused", "recalls_silenced", "recalls_sent", "enquiries_sent")
        shown = ", ".join(f"{k} {stats[k]}" for k in keys if stats.get(k))
        rejects = ", ".join(f"{k.removeprefix('rejected_')} {v}" for k, v in sorted(stats.items()) if k.startswith("rejected_"))
        print(f"  {partner:<10} {shown}; rejected {rejects or '-'}")
    valid = ", ".join(f"{n:,} {t}" for t, n in sorted(checks["valid"].items()))
    print(f"\nmessages checked against the official XSDs: {valid}; invalid: {len(checks['invalid'])}")
    print("  exception messages, sent / received: " + ", ".join(
        f"{m} {checks['sent'].get(m, 0)}/{checks['received'].get(m, 0)}" for m in EXCEPTION_MESSAGES)
        + "; settlement reports received: " + ", ".join(f"{m} {checks['received'].get(m, 0)}" for m in ("camt.053", "camt.054")))
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


def _print_exceptions(exceptions: dict[str, Any], run: ExceptionsRun) -> None:
    """Per corridor and direction: enquiries, returns and recalls, as the switch's database has them."""
    line = "-" * 100
    print(f"exceptions (issue 9), as the switch's database has them ({exceptions['waited_s']} s for the last ones to end)")
    print(f"{'corridor / direction':<24}{'enquiries':>10}  {'returns (partial)':>17}{'refused':>8}  {'return reasons':<34}"
          "recalls: cancelled locally / accepted, returned / refused / unanswered")
    for row, c in exceptions["by_corridor"].items():
        enq = f"{c.get('enquiries sent', 0)}/{c.get('resolved by enquiry', c.get('answered by enquiry', 0))}"
        reasons = ", ".join(f"{k} {v}" for k, v in exceptions["return_reasons"].get(row, {}).items()) or "-"
        refused = c.get(f"returns refused {EXPECTED_BAD_RETURN}", 0)
        refused_text = f"{refused} {EXPECTED_BAD_RETURN}" if refused else "-"
        ret = f"{c.get('returns booked', 0)} ({c.get('returns partial', 0)})"
        side = "recalls made" if row.endswith("out") else "recalls"
        rec = " / ".join(str(c.get(f"{side}: {k}", 0) + (c.get(f"{side}: cancelled", 0) if k == "accepted, returned" else 0))
                         for k in ("cancelled locally", "accepted, returned", "refused", "unanswered"))
        who = "(by participants)" if row.endswith("out") else "(by the network)"
        print(f"  {row:<22}{enq:>10}  {ret:>17}{refused_text:>8}  {reasons:<34}{rec} {who}")
    print("  enquiries: pacs.028 sent / payments resolved by one (out: the switch asks the network, LAPNet losing "
          "2% of its callbacks; in: the network asks the switch)")
    req = exceptions["demo_requests"]
    print(f"  LAPNet lost the callbacks of {req['lost_callbacks']} more KH-LA payments on purpose; "
          f"the demo's participants sent {req['recalls']} recalls of completed payments, {req['instant_recalls']} recalls "
          f"right behind their instruction (the pacs.008 had left: camt.056; {run.overtaken} read before their instruction: NOOR), {req['returns']} returns; the networks recalled {req['partner_recalls']} inbound "
          f"payments ({exceptions['recall_events_read']} recall events read on mekong.inbound); each network returned "
          f"an already returned payment once more: {', '.join(str(b['reason_code']) for b in run.bad_returns) or '-'}")
    unmet = exceptions["expectations_unmet"]
    if unmet:
        print("exceptions that did NOT end as planned:")
        for item in unmet[:10]:
            print(f"  {item}")
    else:
        print("every exception ended as planned: every recall in a final case state, every return booked or refused "
              f"{EXPECTED_BAD_RETURN} as planned, every payment with one outcome its participant last heard")
    print(line)


async def _drive_both(stack: Stack, planned: list[Any], inbound_planned: list[InboundPlanned]
                      ) -> tuple[Any, InboundResult, compliance_load.OperatorRun]:
    out_bar = tqdm(total=sum(1 for p in planned if p.kind != "pain001"), unit="instr", desc="outbound final statuses",
                   file=sys.stdout, mininterval=0.5, position=0)
    in_bar = tqdm(total=len(inbound_planned), unit="pay", desc="inbound partner answers", file=sys.stdout,
                  mininterval=0.5, position=1)
    signers = stack.signers  # every instruction and reply signed by its participant's key
    # issue 12: the demo plays the operator who decides the screening holds, while the traffic runs
    stop = asyncio.Event()
    operator = asyncio.create_task(compliance_load.play_operator(stack.ops_get, stack.ops_post, stack.ops_url, stop))
    try:
        result, inbound_result = await asyncio.gather(
            drive(stack.bootstrap_servers, planned, on_progress=lambda d, _t: out_bar.update(d - out_bar.n),
                  rate_per_s=demo_rate_per_s, signers=signers),
            drive_inbound(stack.bootstrap_servers, {p: stack.sim_url(p) for p in stack.partners}, inbound_planned,
                          rate_per_s=demo_inbound_rate_per_s, on_progress=lambda d, _t: in_bar.update(d - in_bar.n),
                          signers=signers),
        )
    finally:
        stop.set()
        out_bar.close()
        in_bar.close()
    return result, inbound_result, await operator


def _read_the_operations_port(stack: Stack, result: Any) -> dict[str, Any]:
    """What an operator sees on the operations port (TLS, its development CA trusted, the
    operator token): one payment through /v1 (in the state the database has), and /metrics."""
    uetr = next((f.event["uetr"] for f in result.finals.values() if f.event.get("state") == "COMPLETED"), None)
    out: dict[str, Any] = {"url": stack.ops_url, "tls": stack.ops_url.startswith("https://"), "payment_read": False,
                           "metrics_read": False}
    try:
        if uetr is not None:  # as the switch has it now (the demo's exceptions may have returned or recalled it since)
            with sqlite3.connect(f"file:{stack.database_path}?mode=ro", uri=True, timeout=10) as db:
                (state,) = db.execute("SELECT state FROM payments WHERE uetr = ?", (uetr,)).fetchone()
            out["payment_read"] = json.loads(stack.ops_get(f"{stack.ops_url}/v1/payments/{uetr}"))["state"] == state
        out["metrics_read"] = b"switch_payments_total" in stack.ops_get(f"{stack.ops_url}/metrics")
    except OSError as exc:  # refused, or TLS failed: reported, and the demo fails
        out["error"] = f"{type(exc).__name__}: {exc}"
    print(f"operations port {stack.ops_url}: a payment read through /v1 {'yes' if out['payment_read'] else 'NO'}, "
          f"/metrics {'yes' if out['metrics_read'] else 'NO'} (TLS, CA and client certificates in {stack.pki_path / 'ops'})")
    return out


def _open_breaks(database: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT partner, kind, uetr FROM recon_breaks WHERE state IN ('open', 'following_up')").fetchall()
    return [{"partner": p, "kind": k, "uetr": u} for p, k, u in rows]


def _recon_report(stack: Stack) -> str:
    """The reconciliation report of each network's newest reconciled cycle, as `mekong recon report` prints it."""
    from switch.entrypoints.recon_report import render

    listed = json.loads(stack.ops_get(f"{stack.ops_url}/v1/recon/cycles?limit=200"))["cycles"]
    newest: dict[str, str] = {}
    for c in listed:
        if c["state"] == "reconciled":
            newest.setdefault(c["partner"], c["id"])
    cycles = [json.loads(stack.ops_get(f"{stack.ops_url}/v1/recon/cycles/{cid}")) for cid in newest.values()]
    return render(cycles[:1], "table")


def run_demo(
    *, count: int, workdir: Path, inbound_per_partner: int = demo_inbound_per_partner, switch_log_level: str = "WARNING",
    secrets_out: dict[str, str] | None = None,
) -> int:
    """The demo; returns its exit code. `secrets_out`, when given, receives the run's secrets
    (name -> value), for the test that checks none of them shows in any output."""
    schemas = SchemaSet(Path(default_schema_dir()))
    run_id = time.strftime("%H%M%S")
    planned, unknown = plan_instructions(
        count, run_id=run_id, corridors=ALL_CORRIDORS, qr_share=demo_qr_share, pain_share=demo_pain_share
    )
    inbound_planned = plan_inbound(inbound_per_partner)
    # issue 12: instructions the corridors' data rules refuse, and parties on the screening list
    compliance_out = compliance_load.plan_outbound(planned, run_id)
    compliance_in = compliance_load.plan_inbound(("promptpay", "lapnet", "napas", "unionpay"))
    planned += compliance_out
    inbound_planned += compliance_in
    sim_args = ["--delay-ms", str(demo_partner_delay_ms), "--reject-rate", str(demo_partner_reject_rate),
                "--duplicate-rate", str(demo_partner_duplicate_rate), "--return-rate", str(demo_return_rate),
                "--partial-return-rate", str(demo_partial_return_rate), "--return-delay-ms", str(demo_return_delay_ms),
                "--recall-accept-rate", str(demo_recall_accept_rate), "--break-rate", str(demo_break_rate),
                "--report-delay-ms", "500"]
    partner_args: dict[str, list[str]] = {
        "promptpay": [arg for proxy in sorted(unknown) for arg in ("--unknown-proxy", proxy)],
        demo_lossy_partner: ["--lose-rate", str(demo_lose_rate)],
        demo_silent_partner: ["--recall-silent-rate", str(demo_recall_silent_rate)],
    }
    for partner, args in demo_report_args.items():
        partner_args[partner] = partner_args.get(partner, []) + args
    for partner in ("promptpay", "lapnet", "napas", "unionpay"):  # the switch and the simulators share the cycles
        os.environ[f"MEKONG_PARTNER_SETTLEMENT_EVERY_S_{partner.upper()}"] = f"{demo_cycle_s:g}"
    switch_env = {f"MEKONG_PARTNER_{name}_{partner.upper()}": f"{value:g}" for name, value in demo_timings.items()
                  for partner in ("promptpay", "lapnet", "napas", "unionpay")}
    print(f"starting the stack in {workdir} (Tansu broker, PromptPay, LAPNet, NAPAS and UnionPay simulators, switch) ...",
          flush=True)
    stack = Stack(workdir, sim_args=sim_args, partner_sim_args=partner_args, switch_env=switch_env, switch_log_level=switch_log_level)
    with stack:
        if secrets_out is not None:
            secrets_out.update(stack.secrets)
        print(
            f"switch ready at {stack.switch_url} (mutual TLS and signed messages with the simulators, PKI in {stack.pki_path}), broker {stack.bootstrap_servers}; "
            f"publishing {count:,} instructions signed by their participants' keys "
            f"at {demo_rate_per_s:g}/s (JSON, QR and pain.001) while the four networks send {len(inbound_planned):,} inbound payments",
            flush=True,
        )
        result, inbound_result, operator_run = asyncio.run(_drive_both(stack, planned, inbound_planned))
        print("exceptions: the participants recall and return payments, the networks recall, return and ask ...", flush=True)
        exceptions_run = asyncio.run(drive_exceptions(
            stack.bootstrap_servers, {p: stack.sim_url(p) for p in stack.partners}, stack.database_path, result, inbound_result,
            run_id=run_id, signers=stack.signers))
        print("settlement: waiting for the networks' reports of the cycles past the traffic ...", flush=True)
        settlement_run = settlement_load.settle(stack.get_json, {p: stack.sim_url(p) for p in stack.partners}, stack.database_path,
                                                cycle_s=demo_cycle_s)
        open_before = _open_breaks(stack.database_path)
        settlement_load.work_breaks(settlement_run, stack.ops_get, stack.ops_post, stack.ops_url)
        print(f"operator: mekong recon report --cycle <id> shows any cycle; the newest of each network:\n"
              f"{_recon_report(stack)}", flush=True)
        sims = {p: stack.get_json(f"{stack.sim_url(p)}/sim/stats") for p in stack.partners}
        ops_port = _read_the_operations_port(stack, result)
        codes = stack.stop()
    summary = summarise(planned, result)
    inbound = inbound_result.summary()
    exceptions = outcomes(stack.database_path, exceptions_run, inbound_result)
    settlement = settlement_load.outcomes(stack.database_path, settlement_run, open_before)
    checks = check_messages(stack.database_path, schemas)
    compliance = compliance_load.summary(compliance_out, result.finals, compliance_in, inbound_result, operator_run)
    samples = write_samples(stack.database_path, workdir / "samples", planned)
    (workdir / "summary.json").write_text(
        json.dumps({"summary": summary, "inbound": inbound, "exceptions": exceptions, "settlement": settlement, "compliance": compliance,
                    "xsd": checks, "simulators": sims,
                    "partner_tls": not stack.insecure_dev, "signatures": not stack.insecure_dev,
                    "kafka_signatures": not stack.insecure_dev, "ops_port": ops_port}, indent=2, default=str)
    )
    _print_summary(count, result.elapsed_s(), summary, inbound, checks, samples, sims)
    _print_exceptions(exceptions, exceptions_run)
    settlement_load.print_settlement(settlement)
    compliance_load.print_summary(compliance)
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
    if exceptions["expectations_unmet"]:
        problems.append(f"{len(exceptions['expectations_unmet'])} exceptions did not end as planned")
    if compliance["unmet"]:
        problems.append(f"the screening holds did not end as planned: {'; '.join(compliance['unmet'][:3])}")
    if settlement["expectations_unmet"]:
        problems.append(f"settlement did not end as planned ({len(settlement['expectations_unmet'])} findings)")
    missing = [f"{m} {way}" for m in EXCEPTION_MESSAGES for way in ("sent", "received")
               if not checks[way].get(m) and (m, way) != ("admi.002", "received")]
    if missing:
        problems.append(f"no exception message checked against its XSD: {', '.join(missing)}")
    reports = [m for m in ("camt.053", "camt.054") if not checks["received"].get(m)]
    if reports:  # issue 10: the networks' settlement reports, as they came (signed envelopes)
        problems.append(f"no settlement report checked against its XSD: {', '.join(reports)}")
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
