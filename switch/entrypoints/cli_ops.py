"""The operator's toolbox on the command line (issue 11): `mekong payments list|show|resolve` and
`mekong dlq list|show|replay`, each a call of the operations API (ops_edge.py) with the shared
options of cli.py (`--url`, `--token`, `--cert`, `--pki-dir`, `--insecure-dev`), so the roles,
the audit and the refusals are the API's. Registered by cli.py (add_commands)."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import click

LIST_COLUMNS = ("created_at", "uetr", "participant", "corridor", "partner", "state", "reason_code", "source", "target")


def _flat(p: dict[str, Any]) -> dict[str, str]:
    return {
        "created_at": p["created_at"][:19],
        "uetr": p["uetr"],
        "participant": p["participant"],
        "corridor": p["corridor"],
        "partner": p["partner"],
        "state": p["state"],
        "reason_code": p["reason_code"] or "",
        "source": f"{p['source_amount']['value']} {p['source_amount']['currency']}",
        "target": f"{p['target_amount']['value']} {p['target_amount']['currency']}",
    }


def payments_table(rows: list[dict[str, Any]], fmt: str) -> str:
    """A page of /v1/payments as a terminal table, CSV or JSON."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    flat = [_flat(p) for p in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=LIST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return out.getvalue().rstrip("\n")
    if not flat:
        return "no payments"
    widths = {c: max(len(c), *(len(r[c]) for r in flat)) for c in LIST_COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in LIST_COLUMNS)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in LIST_COLUMNS) for r in flat]
    return "\n".join(lines)


def payment_text(p: dict[str, Any], messages: list[dict[str, Any]] | None) -> str:
    """One payment for people: the payment, its history, its cases, its messages."""
    lines = [
        f"payment {p['uetr']}  {p['state']}{' (final)' if p['final'] else ''}{'  ' + p['reason_code'] if p['reason_code'] else ''}",
        f"  instruction  {p['participant']}/{p['instruction_id']}  ({p['direction']}, corridor {p['corridor']}, partner {p['partner']})",
        f"  amounts      {p['source_amount']['value']} {p['source_amount']['currency']} -> "
        f"{p['target_amount']['value']} {p['target_amount']['currency']}  fee {p['fee']['value']} {p['fee']['currency']}"
        f"{'  rate ' + p['fx_rate'] if p.get('fx_rate') else ''}",
        f"  debtor       {p['debtor'].get('name')}  {p['debtor'].get('account') or ''}",
        f"  creditor     {p['creditor'].get('name')}  {p['creditor'].get('account') or p['creditor'].get('proxy') or ''}",
        "history",
    ]
    for h in p["history"]:
        lines.append(f"  {h['at'][:23]}  {(h['from'] or '-'):>18} -> {h['to']:<18} {h['reason_code'] or ''}  {h['detail'] or ''}".rstrip())
    if p["exceptions"]:
        lines.append("cases")
        for c in p["exceptions"]:
            lines.append(f"  {c['kind']:<8} {c['state']:<16} {c['case_id']}  {c['reason_code'] or ''}  {c['detail'] or ''}".rstrip())
    if messages is not None:
        lines.append("messages")
        for m in messages:
            delivered = f"delivered {m['delivered_at'][:23]}" if m.get("delivered_at") else ("" if m["direction"] == "received" else "not delivered")
            lines.append(f"  {m['at'][:23]}  {m['direction']:<8} {m['kind']:<7} {m['counterpart']:<20} {m['message_type'] or '?':<16} "
                         f"{m['message_id']}  {delivered}".rstrip())
            if "body" in m:
                lines += ["    " + line for line in m["body"].splitlines()]
    return "\n".join(lines)


def add_commands(main: click.Group, payments: click.Group, ops_options: Callable[[Any], Any], ops_call: Callable[..., Any]) -> None:
    """Add the toolbox's commands to `mekong payments` and a `mekong dlq` group."""

    @payments.command("list")
    @click.option("--state", help="A payment state (TIMED_OUT, REJECTED, ...).")
    @click.option("--corridor", help="e.g. KH-TH")
    @click.option("--participant", help="A participant's BIC.")
    @click.option("--partner", help="promptpay, lapnet, napas, unionpay")
    @click.option("--since", help="Created at or after: ISO 8601 with offset, or 15m / 1h / 7d back.")
    @click.option("--until", help="Created before: as --since.")
    @click.option("--reason", help="An ISO reason code (AB05, AC01, ...).")
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500), help="Payments per page.")
    @click.option("--cursor", help="The next_cursor printed after a full page: the older ones.")
    @click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
    @ops_options
    def payments_list(state: str | None, corridor: str | None, participant: str | None, partner: str | None, since: str | None,
                      until: str | None, reason: str | None, limit: int, cursor: str | None, fmt: str, **ops: Any) -> None:
        """Search payments, newest first: GET /v1/payments (a participant sees only its own)."""
        params = {k: v for k, v in {"state": state, "corridor": corridor, "participant": participant, "partner": partner,
                                    "since": since, "until": until, "reason": reason, "limit": limit, "cursor": cursor}.items() if v}
        page = ops_call("GET", f"/v1/payments?{urlencode(params)}", **ops)
        click.echo(payments_table(page["payments"], fmt))
        if page["next_cursor"] and fmt == "table":
            click.echo(f"more: --cursor {page['next_cursor']}", err=True)

    @payments.command("show")
    @click.argument("uetr")
    @click.option("--messages", "bodies", is_flag=True, help="Also each message's body (card numbers masked).")
    @click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
    @ops_options
    def payments_show(uetr: str, bodies: bool, as_json: bool, **ops: Any) -> None:
        """One payment: state, history, cases, and the messages sent and received for it."""
        p = ops_call("GET", f"/v1/payments/{quote(uetr)}", **ops)
        messages = ops_call("GET", f"/v1/payments/{quote(uetr)}/messages{'?bodies=1' if bodies else ''}", **ops)["messages"]
        click.echo(json.dumps({**p, "messages": messages}, indent=2) if as_json else payment_text(p, messages))

    @payments.command("resolve")
    @click.argument("uetr")
    @click.option("--enquire", "action", flag_value="enquire", help="Ask the partner now (a pacs.028).")
    @click.option("--resend", "action", flag_value="resend", help="Send the pacs.008 again, as a possible duplicate.")
    @click.option("--mark", type=click.Choice(["REJECTED", "COMPLETED"]), help="Record the outcome learnt out of band (from TIMED_OUT).")
    @click.option("--reason-code", help="With --mark REJECTED: the ISO reason code (e.g. AB05).")
    @click.option("--note", required=True, help="Why (kept in the history and the audit log).")
    @ops_options
    def payments_resolve(uetr: str, action: str | None, mark: str | None, reason_code: str | None, note: str, **ops: Any) -> None:
        """Resolve a stuck payment (operators; audited): POST /v1/payments/UETR/resolve."""
        if (action is None) == (mark is None):
            raise click.UsageError("give one of --enquire, --resend, --mark STATE")
        body: dict[str, Any] = {"action": action or "mark", "note": note}
        if mark:
            body.update(state=mark, reason_code=reason_code)
        answer = ops_call("POST", f"/v1/payments/{quote(uetr)}/resolve", data=json.dumps(body).encode(),
                          content_type="application/json", **ops)
        p = answer["payment"]
        click.echo(f"{answer['action']}: payment {p['uetr']} is {p['state']}{' ' + p['reason_code'] if p['reason_code'] else ''}")

    @main.group()
    def dlq() -> None:
        """The dead-letter topic (kafka.dlq_topic), read without touching the switch's consumer group."""

    @dlq.command("list")
    @click.option("--reason", help="A reason code, or words of the reason.")
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
    @click.option("--json", "as_json", is_flag=True)
    @ops_options
    def dlq_list(reason: str | None, limit: int, as_json: bool, **ops: Any) -> None:
        """The newest dead letters: reference (PARTITION:OFFSET), when, reason, where from."""
        params = {"limit": limit, **({"reason": reason} if reason else {})}
        answer = ops_call("GET", f"/v1/dlq?{urlencode(params)}", **ops)
        if as_json:
            click.echo(json.dumps(answer, indent=2))
            return
        if not answer["dead_letters"]:
            click.echo(f"no dead letters in {answer['topic']}")
        for d in answer["dead_letters"]:
            s = d["source"]
            cut = f"  truncated: {','.join(d['truncated'])}" if d["truncated"] else ""
            click.echo(f"{d['ref']:<8} {d['at'][:19]}  {d['reason_code'] or '':<5} from {s['topic']}:{s['partition']}:{s['offset']}  "
                       f"{(d['reason'] or '')[:100]}{cut}")

    @dlq.command("show")
    @click.argument("ref")
    @ops_options
    def dlq_show(ref: str, **ops: Any) -> None:
        """One dead letter (REF: PARTITION:OFFSET, or OFFSET of partition 0) and its replay, as JSON."""
        partition, _, offset = ref.rpartition(":")
        click.echo(json.dumps(ops_call("GET", f"/v1/dlq/{quote(partition or '0')}/{quote(offset)}", **ops), indent=2))

    @dlq.command("replay")
    @click.argument("refs", nargs=-1)
    @click.option("--all", "replay_all", is_flag=True, help="Every listed dead letter with --reason.")
    @click.option("--reason", help="With --all: a reason code, or words of the reason.")
    @ops_options
    def dlq_replay(refs: tuple[str, ...], replay_all: bool, reason: str | None, **ops: Any) -> None:
        """Publish each original record again to its topic (value, key, headers: its signature still
        verifies), once per dead letter (operators; audited). Exit 1 when any was not replayed."""
        if replay_all == bool(refs) or (replay_all and not reason):
            raise click.UsageError("give REF... or --all --reason R")
        body = {"all": True, "reason": reason} if replay_all else {"refs": list(refs)}
        answer = ops_call("POST", "/v1/dlq/replay", data=json.dumps(body).encode(), content_type="application/json", **ops)
        for r in answer["results"]:
            where = f" -> {r['topic']}:{r['partition']}:{r['offset']}" if r["outcome"] == "replayed" else f": {r.get('detail', '')}"
            click.echo(f"{r['ref']:<8} {r['outcome']}{where}")
        if not answer["results"]:
            click.echo("nothing to replay")
        if any(r["outcome"] != "replayed" for r in answer["results"]):
            sys.exit(1)
