"""The reconciliation report as people and machines read it (issue 10): a terminal table, CSV or
JSON, from the operations API's cycle documents (GET /v1/recon/cycles/{id}). Pure formatting."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from switch.domain.money import CURRENCIES
from switch.domain.recon import BreakKind

KINDS = [k.value for k in BreakKind]


def amount(minor: int, code: str) -> str:
    """Minor units as a decimal amount of the currency (ISO 4217 exponent)."""
    exponent = CURRENCIES[code].exponent if code in CURRENCIES else 0
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor)).rjust(exponent + 1, "0")
    whole, frac = (digits[:-exponent], digits[-exponent:]) if exponent else (digits, "")
    return f"{sign}{int(whole):,}{'.' + frac if frac else ''} {code}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cycles_table(cycles: Sequence[dict[str, Any]]) -> str:
    rows = []
    for c in cycles:
        s = c.get("summary") or {}
        breaks = sum((s.get("breaks") or {}).values())
        rows.append([c["id"], c["state"], c["settlement_date"], c.get("books_count", 0), c.get("entries_count", 0),
                     f"{c.get('report_pages', 0)}/{c.get('report_last_page') or '?'}", s.get("matched", ""), breaks if s else "",
                     s.get("breaks_open", "") if s else ""])
    return _table(["cycle", "state", "date", "books", "entries", "pages", "matched", "breaks", "open"], rows)


def breaks_table(breaks: Sequence[dict[str, Any]]) -> str:
    rows = [[b["id"], b["cycle_id"], b["kind"], b["state"], b["action"], b.get("uetr") or b.get("entry_ref") or "",
             b["detail"][:60]] for b in breaks]
    return _table(["break", "cycle", "kind", "state", "action", "payment", "detail"], rows)


def _rows(c: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's flat rows for one cycle: kind of row, key, count, amount, currency."""
    s = c.get("summary") or {}
    rows: list[dict[str, Any]] = [
        {"cycle": c["id"], "section": "cycle", "item": "entries", "count": s.get("entries", c.get("entries_count", 0))},
        {"cycle": c["id"], "section": "cycle", "item": "books", "count": s.get("books", c.get("books_count", 0))},
        {"cycle": c["id"], "section": "cycle", "item": "matched", "count": s.get("matched", 0)},
        {"cycle": c["id"], "section": "cycle", "item": "resolved_by_switch", "count": s.get("resolved_by_switch", 0)},
        {"cycle": c["id"], "section": "cycle", "item": "breaks_open", "count": s.get("breaks_open", 0)},
    ]
    for kind in KINDS:
        n = (s.get("breaks") or {}).get(kind, 0)
        amounts = (s.get("break_amounts") or {}).get(kind, {})
        if not amounts:
            rows.append({"cycle": c["id"], "section": "breaks", "item": kind, "count": n})
        for code, minor in sorted(amounts.items()):
            rows.append({"cycle": c["id"], "section": "breaks", "item": kind, "count": n, "amount_minor": minor, "currency": code})
    for p in s.get("partner_positions", []):
        rows.append({"cycle": c["id"], "section": "partner_position", "item": p["partner"], "count": p["count"],
                     "amount_minor": p["net_minor"], "currency": p["currency"],
                     "outbound_minor": p["outbound_minor"], "inbound_minor": p["inbound_minor"],
                     "returns_to_partner_minor": p["returns_to_partner_minor"],
                     "returns_from_partner_minor": p["returns_from_partner_minor"], "fees_minor": p["fees_minor"]})
    for p in s.get("participant_positions", []):
        rows.append({"cycle": c["id"], "section": "participant_position", "item": p["participant"], "count": p["count"],
                     "amount_minor": p["net_minor"], "currency": p["currency"], "debits_minor": p["debits_minor"],
                     "credits_minor": p["credits_minor"], "returns_in_minor": p["returns_in_minor"],
                     "returns_out_minor": p["returns_out_minor"], "fees_minor": p["fees_minor"]})
    for b in c.get("breaks_detail", []):
        if b["state"] in ("open", "following_up"):
            rows.append({"cycle": c["id"], "section": "open_break", "item": b["id"], "kind": b["kind"], "state": b["state"],
                         "action": b["action"], "uetr": b.get("uetr")})
    return rows


def render(cycles: Sequence[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"cycles": list(cycles)}, indent=2, ensure_ascii=False)
    rows = [r for c in cycles for r in _rows(c)]
    if fmt == "csv":
        fields = ["cycle", "section", "item", "count", "amount_minor", "currency", "kind", "state", "action", "uetr",
                  "outbound_minor", "inbound_minor", "returns_to_partner_minor", "returns_from_partner_minor",
                  "debits_minor", "credits_minor", "returns_in_minor", "returns_out_minor", "fees_minor"]
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return out.getvalue()
    parts = []
    for c in cycles:
        s = c.get("summary") or {}
        parts.append(f"Cycle {c['id']} ({c['partner']}, settles {c['settlement_date']}, cut-off {c['cut_off']}): {c['state']}"
                     + (", clean" if s.get("clean") else ""))
        parts.append(_table(["entries", "books", "matched", "resolved by the switch", "breaks open"],
                            [[s.get("entries", 0), s.get("books", 0), s.get("matched", 0), s.get("resolved_by_switch", 0), s.get("breaks_open", 0)]]))
        brows = []
        for kind in KINDS:
            n = (s.get("breaks") or {}).get(kind, 0)
            amounts = (s.get("break_amounts") or {}).get(kind, {})
            brows.append([kind, n, ", ".join(amount(m, code) for code, m in sorted(amounts.items())) or "-"])
        parts.append(_table(["break", "count", "amount"], brows))
        prow = [[p["partner"], p["currency"], p["count"], amount(p["outbound_minor"], p["currency"]), amount(p["inbound_minor"], p["currency"]),
                 amount(p["returns_to_partner_minor"] - p["returns_from_partner_minor"], p["currency"]),
                 amount(p["net_minor"], p["currency"]) + (" hub owes" if p["net_minor"] > 0 else " partner owes" if p["net_minor"] < 0 else "")]
                for p in s.get("partner_positions", [])]
        if prow:
            parts.append(_table(["partner", "ccy", "payments", "outbound", "inbound", "returns net", "net"], prow))
        qrow = [[p["participant"], p["currency"], p["count"], amount(p["debits_minor"], p["currency"]), amount(p["credits_minor"], p["currency"]),
                 amount(p["fees_minor"], p["currency"]), amount(p["net_minor"], p["currency"])]
                for p in s.get("participant_positions", [])]
        if qrow:
            parts.append(_table(["participant", "ccy", "movements", "debits", "credits", "fees", "net (owes hub)"], qrow))
        open_rows = [[b["id"], b["kind"], b["state"], b["action"], b.get("uetr") or ""] for b in c.get("breaks_detail", [])
                     if b["state"] in ("open", "following_up")]
        if open_rows:
            parts.append(_table(["open break", "kind", "state", "action", "payment"], open_rows))
        parts.append("")
    return "\n".join(parts)
