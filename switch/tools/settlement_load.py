"""The demo's settlement part (issue 10): short cycles, reports with breaks, an operator's work.

The demo runs every network's settlement cycle every `cycle_s` seconds (the same
MEKONG_PARTNER_SETTLEMENT_EVERY_S_<PARTNER> for the switch and the simulators). Each simulator
keeps its own ledger and posts its report after each cut-off, with breaks injected on request
(some late, some paginated, some twice). Once the traffic has ended, `settle` waits until every
network's cycles up to and past the end of the traffic are reconciled, plays the operator on
the breaks the switch could not resolve itself (a note each, through the operations API), and
checks:

- every injected break was found, as the kind the simulator meant;
- no break the simulator did not inject is left open (a payment the network and the switch put
  on either side of a cut-off is resolved by the switch itself);
- every payment that completed before the last reconciled cut-off of its network is booked in a
  reconciled cycle, matched or explained by a break: settlement accounts for every payment.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

settle_wait_s_max = 180.0
OPEN_STATES = ("open", "following_up")
# what the demo, playing the operator, says when it closes a break the switch could not
OPERATOR_NOTES = {
    "missing_at_partner": ("the network confirmed it settled the payment in its next report", False),
    "unknown_to_switch": ("not a payment of ours: the network reverses the entry", False),
    "amount_mismatch": ("one minor unit of difference, accepted", True),
    "currency_mismatch": ("the network booked the wrong currency and corrects it", False),
    "status_mismatch": ("the network confirmed the final status by phone", False),
    "duplicate_entry": ("the network reverses the second entry", False),
    "wrong_cycle": ("settled one cycle late, confirmed", False),
}


@dataclass
class SettlementRun:
    cycle_s: float
    waited_s: float = 0.0
    t_end: datetime | None = None
    injected: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    resolved_by_operator: dict[str, int] = field(default_factory=dict)
    sims: dict[str, Any] = field(default_factory=dict)


def _db(database: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    return db


def _when(text: str) -> datetime:
    t = datetime.fromisoformat(str(text).replace(" ", "T"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _reconciled_past(database: Path, partners: list[str], t_end: datetime) -> dict[str, int]:
    """partner -> how many of its reconciled cycles cut off after t_end (two needed: the one
    that holds the end of the traffic, and the next, which settles what straddled its cut-off)."""
    out = {p: 0 for p in partners}
    with _db(database) as db:
        for row in db.execute("SELECT partner, cut_off FROM settlement_cycles WHERE state = 'reconciled'"):
            if row["partner"] in out and _when(row["cut_off"]) > t_end:
                out[row["partner"]] += 1
    return out


def settle(get_json: Callable[[str], Any], sim_urls: dict[str, str], database: Path, *, cycle_s: float) -> SettlementRun:
    run = SettlementRun(cycle_s=cycle_s)
    run.t_end = datetime.now(timezone.utc)
    partners = sorted(sim_urls)
    started = time.perf_counter()
    bar = tqdm(total=2 * len(partners), unit="cycle", desc="settlement cycles reconciled after the traffic", file=sys.stdout,
               mininterval=0.5)
    try:
        while time.perf_counter() - started < settle_wait_s_max:
            done = _reconciled_past(database, partners, run.t_end)
            bar.update(sum(min(2, n) for n in done.values()) - bar.n)
            if all(n >= 2 for n in done.values()):
                break
            time.sleep(0.5)
    finally:
        bar.close()
    run.waited_s = round(time.perf_counter() - started, 1)
    for p, url in sim_urls.items():
        run.sims[p] = get_json(f"{url}/sim/settlement")
        run.injected[p] = [i for c in run.sims[p]["cycles"] for i in c.get("injected", [])]
    return run


def work_breaks(run: SettlementRun, ops_get: Callable[[str], bytes], ops_post: Callable[[str, dict], bytes], ops_url: str) -> None:
    """Play the operator: every break still open gets a note (resolved or written off)."""
    listed = json.loads(ops_get(f"{ops_url}/v1/recon/breaks?open=1&limit=1000"))["breaks"]
    for b in listed:
        note, write_off = OPERATOR_NOTES.get(b["kind"], ("explained", False))
        ops_post(f"{ops_url}/v1/recon/breaks/{b['id']}/resolve", {"note": f"demo operator: {note}", "write_off": write_off})
        run.resolved_by_operator[b["partner"]] = run.resolved_by_operator.get(b["partner"], 0) + 1


def outcomes(database: Path, run: SettlementRun, open_before_operator: list[dict[str, Any]]) -> dict[str, Any]:
    """Per partner: cycles, entries, matched, breaks by kind, resolved by the switch / by the
    operator, net positions summed over the reconciled cycles; and what did not end as planned."""
    assert run.t_end is not None
    per: dict[str, dict[str, Any]] = {}
    unmet: list[str] = []
    last_cut: dict[str, datetime] = {}
    with _db(database) as db:
        for row in db.execute("SELECT * FROM settlement_cycles WHERE state = 'reconciled' ORDER BY cut_off"):
            p = per.setdefault(row["partner"], {"cycles": 0, "entries": 0, "books": 0, "matched": 0, "breaks": defaultdict(int),
                                                "resolved_by_switch": 0, "pages": 0, "net": defaultdict(int),
                                                "participants": defaultdict(int)})
            s = json.loads(row["summary"] or "{}")
            p["cycles"] += 1
            p["entries"] += row["entries_count"]
            p["pages"] += row["report_pages"]
            p["books"] += s.get("books", 0)
            p["matched"] += s.get("matched", 0)
            p["resolved_by_switch"] += s.get("resolved_by_switch", 0)
            for k, n in s.get("breaks", {}).items():
                p["breaks"][k] += n
            for pos in s.get("partner_positions", []):
                p["net"][pos["currency"]] += pos["net_minor"]
            for pos in s.get("participant_positions", []):
                p["participants"][f"{pos['participant']} {pos['currency']}"] += pos["net_minor"]
            last_cut[row["partner"]] = max(last_cut.get(row["partner"], _when(row["cut_off"])), _when(row["cut_off"]))
        breaks = [dict(r) for r in db.execute("SELECT id, cycle_id, partner, kind, state, uetr, book_ref FROM recon_breaks")]
        booked = {r["ref"]: (r["cycle_id"], r["result"]) for r in db.execute("SELECT ref, cycle_id, result FROM settlement_books")}
        # every payment completed before its network's last reconciled cut-off: booked in a
        # reconciled cycle, its result known (matched, or the break that explains it)
        unaccounted = []
        for partner, cut in last_cut.items():
            rows = db.execute(
                "SELECT p.uetr FROM payments p WHERE p.partner = ? AND EXISTS (SELECT 1 FROM payment_history h WHERE h.uetr = p.uetr "
                "AND h.to_state = 'COMPLETED' AND h.at < ?) AND NOT EXISTS (SELECT 1 FROM settlement_books b JOIN settlement_cycles c "
                "ON c.id = b.cycle_id WHERE b.ref = p.uetr AND b.result IS NOT NULL AND c.state = 'reconciled')",
                (partner, cut.strftime("%Y-%m-%d %H:%M:%S.%f")),
            ).fetchall()
            unaccounted += [f"{partner} {r['uetr']}" for r in rows]
        settled = dict(db.execute("SELECT partner, count(*) FROM payments WHERE state = 'SETTLED' GROUP BY partner").fetchall())
    if unaccounted:
        unmet.append(f"{len(unaccounted)} completed payments not accounted for by a reconciled cycle, e.g. {unaccounted[:3]}")
    # every injected break found as the kind meant (a wrong_cycle entry reported nowhere is lost: skipped)
    found = {(b["partner"], b["kind"], b["uetr"]) for b in breaks}
    injected_n = 0
    for partner, items in run.injected.items():
        for i in items:
            if i["kind"] == "wrong_cycle" and not i.get("reported_in"):
                continue
            reported = i.get("reported_in") or i.get("cycle")
            if partner in last_cut and reported and _cycle_cut(reported) > last_cut[partner]:
                continue  # its report is after the last reconciled cycle
            if i["kind"] == "wrong_cycle" and booked.get(i["uetr"]) == (reported, "matched"):
                continue  # the switch had booked it in the later cycle itself (its outcome came after the cut-off): no break
            injected_n += 1
            if (partner, i["finding"], i["uetr"]) not in found:
                unmet.append(f"{partner}: injected {i['kind']} for {i['uetr']} not found as {i['finding']}")
    planned = {(p, i["finding"], i["uetr"]) for p, items in run.injected.items() for i in items}
    planned |= {(p, "missing_at_partner", i["uetr"]) for p, items in run.injected.items() for i in items if i["kind"] == "wrong_cycle"}
    unplanned_open = [b for b in open_before_operator if (b["partner"], b["kind"], b["uetr"]) not in planned]
    if unplanned_open:
        unmet.append(f"{len(unplanned_open)} breaks nobody injected were left open, e.g. "
                     f"{[(b['partner'], b['kind'], b['uetr']) for b in unplanned_open[:3]]}")
    still_open = [b for b in breaks if b["state"] in OPEN_STATES]
    if still_open:
        unmet.append(f"{len(still_open)} breaks still open after the operator's pass")
    for p in per.values():
        p["breaks"] = dict(p["breaks"])
        p["net"] = dict(p["net"])
        p["participants"] = dict(p["participants"])
    for partner, p in per.items():
        p["settled_payments"] = settled.get(partner, 0)
        p["resolved_by_operator"] = run.resolved_by_operator.get(partner, 0)
        p["injected"] = len(run.injected.get(partner, []))
    if len(per) < len(run.injected) or any(p["cycles"] < 2 for p in per.values()):
        unmet.append(f"fewer than two reconciled cycles for some network: {({k: v['cycles'] for k, v in per.items()})}")
    return {"by_partner": per, "expectations_unmet": unmet, "waited_s": run.waited_s, "injected_checked": injected_n,
            "cycle_s": run.cycle_s}


def _cycle_cut(cycle_id: str) -> datetime:
    return datetime.strptime(cycle_id.rsplit("-", 1)[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def print_settlement(result: dict[str, Any]) -> None:
    from switch.entrypoints.recon_report import amount

    line = "-" * 100
    print(f"settlement (issue 10): a cycle every {result['cycle_s']:g} s per network, reports with injected breaks "
          f"({result['waited_s']} s for the last cycles after the traffic)")
    print(f"{'network':<11}{'cycles':>7}{'pages':>6}{'entries':>8}{'matched':>8}{'settled':>8}  {'breaks by kind':<52}"
          f"{'by switch':>9}{'by operator':>12}")
    for partner, p in sorted(result["by_partner"].items()):
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(p["breaks"].items())) or "-"
        print(f"  {partner:<9}{p['cycles']:>7}{p['pages']:>6}{p['entries']:>8,}{p['matched']:>8,}{p['settled_payments']:>8,}  "
              f"{kinds:<52}{p['resolved_by_switch']:>9}{p['resolved_by_operator']:>12}")
    print("net positions over the reconciled cycles (> 0: the hub owes the network):")
    for partner, p in sorted(result["by_partner"].items()):
        nets = ", ".join(amount(m, c) for c, m in sorted(p["net"].items())) or "-"
        parts = ", ".join(f"{k.split()[0]} {amount(m, k.split()[1])}" for k, m in sorted(p["participants"].items())[:4])
        print(f"  {partner:<9} {nets}; participants (> 0: owes the hub): {parts or '-'}")
    unmet = result["expectations_unmet"]
    if unmet:
        print("settlement did NOT end as planned:")
        for item in unmet[:10]:
            print(f"  {item}")
    else:
        print(f"every injected break found ({result['injected_checked']} checked), every break the switch could not resolve "
              "worked by the operator with a note, every completed payment accounted for by a reconciled cycle")
    print(line)
