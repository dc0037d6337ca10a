"""Screening holds on the command line (issue 12): `mekong screening holds|show|release|reject|
reload`, each a call of the operations API (screening_edge.py) with the shared options of cli.py
(`--url`, `--token`, `--cert`, ...), so the roles, the audit and the refusals are the API's.
Registered by cli.py (add_commands)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import click

HOLD_COLUMNS = ("held_at", "uetr", "direction", "state", "outcome", "score", "entry", "deadline_at", "decision")


def _flat(h: dict[str, Any]) -> dict[str, str]:
    return {
        "held_at": h["held_at"][:19],
        "uetr": h["uetr"],
        "direction": h["direction"],
        "state": h["state"] or "",
        "outcome": h["outcome"],
        "score": "" if h["score"] is None else f"{h['score']:.2f}",
        "entry": (f"{h['entry_id']} {h['entry_name'] or ''}".strip() if h["entry_id"] else (h["detail"] or ""))[:60],
        "deadline_at": h["deadline_at"][:19],
        "decision": f"{h['decision']} by {h['decided_by']}" if h["decision"] else "open",
    }


def holds_table(rows: list[dict[str, Any]]) -> str:
    """A page of /v1/screening/holds as a terminal table."""
    if not rows:
        return "no holds"
    flat = [_flat(h) for h in rows]
    widths = {c: max(len(c), *(len(r[c]) for r in flat)) for c in HOLD_COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in HOLD_COLUMNS)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in HOLD_COLUMNS).rstrip() for r in flat]
    return "\n".join(lines)


def hold_text(h: dict[str, Any]) -> str:
    """One hold for people."""
    lines = [
        f"hold {h['uetr']}  {h['direction']}  payment {h['state'] or '?'}  ({h['decision'] or 'open'})",
        f"  participant  {h.get('participant') or '-'}  partner {h.get('partner') or '-'}  corridor {h.get('corridor') or '-'}",
        f"  outcome      {h['outcome']}" + ("" if h["score"] is None else f"  score {h['score']:.2f}"),
    ]
    if h["entry_id"]:
        lines.append(f"  entry        {h['entry_id']}  {h['entry_name'] or ''}  ({', '.join(h['datasets']) or '-'})")
        lines.append(f"  matched      {h['role']} name {h['matched_name'] or ''!r}")
    if h["detail"]:
        lines.append(f"  detail       {h['detail']}")
    lines.append(f"  list         {h['list_version'] or '-'}")
    lines.append(f"  held at      {h['held_at'][:19]}  deadline {h['deadline_at'][:19]}")
    if h["decision"]:
        lines.append(f"  decided      {h['decision']} by {h['decided_by']} at {(h['decided_at'] or '')[:19]}: {h['note'] or ''}")
    return "\n".join(lines)


def add_commands(main: click.Group, ops_options: Callable[[Any], Any], ops_call: Callable[..., Any]) -> None:
    """Add a `mekong screening` group."""

    @main.group()
    def screening() -> None:
        """Sanctions-screening holds: list, show, release, reject; reload the list."""

    @screening.command("holds")
    @click.option("--all", "show_all", is_flag=True, help="Decided holds too (default: open ones only).")
    @click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 500))
    @click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
    @ops_options
    def screening_holds(show_all: bool, limit: int, as_json: bool, **ops: Any) -> None:
        """Held payments, oldest first: GET /v1/screening/holds (operators, auditors)."""
        answer = ops_call("GET", f"/v1/screening/holds?open={'false' if show_all else 'true'}&limit={limit}", **ops)
        click.echo(json.dumps(answer, indent=2) if as_json else holds_table(answer["holds"]))

    @screening.command("show")
    @click.argument("uetr")
    @click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
    @ops_options
    def screening_show(uetr: str, as_json: bool, **ops: Any) -> None:
        """One hold: the entry, the score, the deadline, the decision."""
        h = ops_call("GET", f"/v1/screening/holds/{quote(uetr)}", **ops)
        click.echo(json.dumps(h, indent=2) if as_json else hold_text(h))

    def decide(action: str, uetr: str, note: str, ops: dict[str, Any]) -> None:
        h = ops_call("POST", f"/v1/screening/holds/{quote(uetr)}/{action}", data=json.dumps({"note": note}).encode(),
                     content_type="application/json", **ops)
        click.echo(f"{h['decision']}: payment {h['uetr']} is {h['state']}")

    @screening.command("release")
    @click.argument("uetr")
    @click.option("--note", required=True, help="Why (kept in the hold, the history and the audit log).")
    @ops_options
    def screening_release(uetr: str, note: str, **ops: Any) -> None:
        """Release a held payment (operators; audited): it goes on its way."""
        decide("release", uetr, note, ops)

    @screening.command("reject")
    @click.argument("uetr")
    @click.option("--note", required=True, help="Why (kept in the hold, the history and the audit log; never told to the parties).")
    @ops_options
    def screening_reject(uetr: str, note: str, **ops: Any) -> None:
        """Reject a held payment RR04 (operators; audited)."""
        decide("reject", uetr, note, ops)

    @screening.command("reload")
    @ops_options
    def screening_reload(**ops: Any) -> None:
        """Load the screening list again, without a restart (operators; audited)."""
        answer = ops_call("POST", "/v1/screening/reload", **ops)
        click.echo(f"screening list reloaded: {answer['list']}")
