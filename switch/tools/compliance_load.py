"""The compliance part of the demo (issue 12): instructions that lack the party data their corridor
requires (refused RR02 at admission), and payments whose parties are on the demo screening list in
Khmer, Thai, Lao, Vietnamese and Chinese script: the switch holds them, and the demo plays the
operator on the operations port, releasing some (they go on to the network) and rejecting the
others (RR04). Inbound, each network sends one payment above FATF R16's threshold without the
payer's address (pacs.002 RJCT RR02) and one from a listed payer (held, then rejected RR04).

The names come from config/screening/README.md (every list entry is invented).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from switch.tools.inbound_load import InboundPlanned
from switch.tools.loadgen import Planned

# outbound: (corridor, who is on the list, name in its script, the script, the operator's decision)
SCREENED_OUT: tuple[tuple[str, str, str, str, str], ...] = (
    ("KH-TH", "debtor", "ឈួន សុវណ្ណារិទ្ធ", "Khmer", "reject"),
    ("KH-TH", "creditor", "ประพันธ์ศักดิ์ วงศ์ทองหล่อ", "Thai", "reject"),
    ("KH-LA", "creditor", "ບຸນທະວີ ສີຫາລາດ", "Lao", "release"),
    ("KH-VN", "creditor", "Nguyễn Hữu Phước Lân", "Vietnamese", "release"),
    # a card payment cannot be released (its card number lives only in the pacs.008, which a held
    # payment does not have yet): this one is rejected
    ("KH-CN", "creditor", "欧阳振翔", "Chinese", "reject"),
)
# inbound: the payer each network sends who is on the list (rejected by the operator)
SCREENED_IN: dict[str, tuple[str, str]] = {
    "promptpay": ("กิ่งแก้ว ศรีสุวรรณเดช", "Thai"),
    "lapnet": ("ວົງສະຫວັນ ພົມມະຈັນ", "Lao"),
    "napas": ("Lương Thế Khải Nguyên", "Vietnamese"),
    "unionpay": ("司马慧琳", "Chinese"),
}
R16_KHR_ABOVE = "4500000"  # above FATF R16's threshold in riel (config/compliance.toml), below every corridor maximum


def plan_outbound(base: list[Planned], run_id: str) -> list[Planned]:
    """Compliance instructions made from the first good JSON instruction of each corridor: two
    without the debtor's address where the corridor requires it, and one per SCREENED_OUT row."""
    out: list[Planned] = []
    templates: dict[str, dict[str, Any]] = {}
    for p in base:
        if p.kind == "good" and p.origin == "json" and p.value is not None and p.corridor not in templates:
            templates[p.corridor] = json.loads(p.value)

    def made(doc: dict[str, Any], n: int, kind: str, expect: str, corridor: str, participant: str) -> Planned:
        doc["instruction_id"] = f"CMP-{run_id}{n:03d}"
        return Planned(doc["instruction_id"], json.dumps(doc, ensure_ascii=False).encode(), kind, expect, corridor, "json",
                       participant=participant)

    # KH-TH (fatf_r16): above the threshold, neither address nor identification: RR02
    doc = json.loads(json.dumps(templates["KH-TH"]))
    doc["debtor"] = {k: v for k, v in doc["debtor"].items() if k not in ("address", "identification")} | {"currency": "KHR"}
    doc["amount"] = {"value": R16_KHR_ABOVE, "currency": "KHR"}
    out.append(made(doc, 1, "missing_data", "REJECTED RR02", "KH-TH", doc["participant"]))
    # KH-CN (cbpr_plus_full): a small amount, still the debtor's address is required: RR02
    doc = json.loads(json.dumps(templates["KH-CN"]))
    doc["debtor"] = {k: v for k, v in doc["debtor"].items() if k != "address"}
    out.append(made(doc, 2, "missing_data", "REJECTED RR02", "KH-CN", doc["participant"]))
    for i, (corridor, role, name, _script, decision) in enumerate(SCREENED_OUT):
        doc = json.loads(json.dumps(templates[corridor]))
        doc[role]["name"] = name
        expect = "REJECTED RR04" if decision == "reject" else RELEASED
        out.append(made(doc, 10 + i, f"screened_{decision}", expect, corridor, doc["participant"]))
    return out


RELEASED = "RELEASED"  # released by the operator: on to the network, which may still refuse it (loadgen.released_met)


def plan_inbound(partners: tuple[str, ...]) -> list[InboundPlanned]:
    """Per network: a payment above R16's threshold without the payer's address (RR02), and one from
    a listed payer (held; the operator rejects it: RR04)."""
    out: list[InboundPlanned] = []
    for partner in partners:
        base = {"currency": "KHR", "creditor_name": "Sok Dara", "creditor_account": "sok_dara@aclb"}
        out.append(InboundPlanned(partner, {**base, "amount": R16_KHR_ABOVE, "debtor_name": "FOREIGN PAYER", "compliance": False,
                                            "remittance": "demo:accept"}, "RJCT RR02"))
        name, _script = SCREENED_IN[partner]
        out.append(InboundPlanned(partner, {**base, "amount": "250000", "debtor_name": name, "remittance": "demo:accept"},
                                  "RJCT RR04"))
    return out


DECISIONS: dict[str, str] = {name: decision for _c, _r, name, _s, decision in SCREENED_OUT}
DECISIONS.update({name: "reject" for name, _s in SCREENED_IN.values()})
SCRIPTS: dict[str, str] = {name: script for _c, _r, name, script, _d in SCREENED_OUT}
SCRIPTS.update({name: script for name, script in SCREENED_IN.values()})


@dataclass
class OperatorRun:
    """What the demo's operator did on the operations port."""

    decided: dict[str, dict[str, Any]] = field(default_factory=dict)  # uetr -> the hold as answered after the decision
    decision_s: list[float] = field(default_factory=list)  # held -> decided, as the switch recorded it
    errors: list[str] = field(default_factory=list)


async def play_operator(ops_get: Callable[[str], bytes], ops_post: Callable[[str, dict[str, Any]], bytes], ops_url: str,
                        stop: asyncio.Event, *, poll_s: float = 0.5) -> OperatorRun:
    """Until `stop`: read the open holds, and release or reject each by the name that matched (a
    name the demo did not plan is released with a note: a false positive)."""
    run = OperatorRun()
    while not stop.is_set():
        try:
            listed = json.loads(await asyncio.to_thread(ops_get, f"{ops_url}/v1/screening/holds?open=true"))["holds"]
        except OSError as exc:
            run.errors.append(f"listing holds: {exc}")
            listed = []
        for hold in listed:
            uetr = hold["uetr"]
            if uetr in run.decided:
                continue
            decision = DECISIONS.get(hold.get("matched_name") or "", "release")
            note = (f"demo operator: {'confirmed' if decision == 'reject' else 'cleared'} against entry {hold.get('entry_id')} "
                    f"(score {hold.get('score')})")
            try:
                answer = json.loads(await asyncio.to_thread(ops_post, f"{ops_url}/v1/screening/holds/{uetr}/{decision}", {"note": note}))
            except OSError as exc:
                run.errors.append(f"{decision} {uetr}: {exc}")
                continue
            run.decided[uetr] = answer
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll_s)
        except asyncio.TimeoutError:
            pass
    return run


def summary(planned: list[Planned], finals: dict[str, Any], inbound: list[InboundPlanned], inbound_result: Any,
            operator: OperatorRun) -> dict[str, Any]:
    """What the compliance part came to, row by row, and what did not end as planned (the outbound
    and inbound expectations are checked with the rest of the demo's; this adds the operator's)."""
    rows: list[dict[str, Any]] = []
    for p in planned:
        f = finals.get(p.key)
        got = "MISSING" if f is None else (f.state if f.state == "COMPLETED" else f"{f.state} {f.reason_code}")
        doc = json.loads(p.value or b"{}")
        name = next((doc[role]["name"] for role in ("debtor", "creditor") if doc.get(role, {}).get("name") in SCRIPTS), None)
        rows.append({"direction": "out", "route": p.corridor, "kind": p.kind, "name": name, "script": SCRIPTS.get(name or ""),
                     "expected": "released" if p.expect == RELEASED else p.expect, "got": got})
    mine = {id(p) for p in inbound}
    for uetr, planned_in in inbound_result.uetrs.items():
        if id(planned_in) not in mine:
            continue
        answer = inbound_result.answers.get(uetr)
        got = "MISSING" if answer is None else answer["status"] + (f" {answer['reason_code']}" if answer["reason_code"] else "")
        name = planned_in.spec["debtor_name"]
        rows.append({"direction": "in", "route": planned_in.partner, "kind": "screened_reject" if name in SCRIPTS else "missing_data",
                     "name": name if name in SCRIPTS else None, "script": SCRIPTS.get(name), "expected": planned_in.expect,
                     "got": got})
    decisions = Counter(str(h.get("decision")) for h in operator.decided.values())
    expected_holds = sum(1 for r in rows if r["kind"].startswith("screened"))
    unmet = list(operator.errors)
    if len(operator.decided) != expected_holds:
        unmet.append(f"the operator decided {len(operator.decided)} holds, {expected_holds} were planned")
    return {"rows": rows, "unmet": unmet, "decisions": dict(decisions), "held": len(operator.decided)}


def print_summary(s: dict[str, Any]) -> None:
    line = "-" * 100
    print(f"compliance (issue 12): party data refused by the corridor's rules, and the screening list in five scripts")
    print(f"  {'dir':<4}{'route':<11}{'what':<18}{'name (script)':<44}{'expected':<24}got")
    for r in s["rows"]:
        who = f"{r['name']} ({r['script']})" if r["name"] else "-"
        print(f"  {r['direction']:<4}{r['route']:<11}{r['kind']:<18}{who:<44}{r['expected']:<24}{r['got']}")
    print(f"  held for an operator: {s['held']}; the demo's operator decided: "
          + (", ".join(f"{k} {v}" for k, v in sorted(s["decisions"].items())) or "-"))
    if s["unmet"]:
        print("  compliance findings: " + "; ".join(s["unmet"][:5]))
    print(line)
