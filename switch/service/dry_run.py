"""A config dry-run (issue 11, `mekong config dry-run NEW --since 7d`): the instructions recorded
in a period, replayed against a new configuration without sending anything, and what would
change compared with what happened.

What is replayed: each instruction's replay record (handlers.replay_record, written with its
idempotency key since migration 0012): the instruction v1 as read (card numbers as tokens), its
pain.001 origin and the proxy look-up admission used. Each one goes through the pure admission
decision `admit_instruction()` with Deps built from the new configuration (its corridors,
participants, partner profiles, and a rate book from its fx.toml), at the time it was received
(a QR's expiry, a rate's staleness are judged then). Nothing is written, nothing is sent: no
Kafka, no partner, no proxy look-up (the recorded answer is used).

What happened is read from the same rows: the instruction's reject (reason code), or the admitted
payment's corridor, partner, fee and customer rate. Compared per instruction:
  now_rejected    admitted then, rejected now (with the reason code)
  now_admitted    rejected then, admitted now
  reason_changed  rejected then and now, with another reason code
  fee_changed     admitted both times, another fee
  rate_changed    admitted both times, another customer rate
  route_changed   admitted both times, another partner (or corridor)
Not replayed: instructions recorded before migration 0012 (no replay record), those refused for
their participant's rate at the time (SL15: the rate depends on the traffic then, not on the
configuration), those whose admitted payment is no longer stored, and a card number inside a QR.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from adapters.proxy_resolution import Resolution
from switch.domain.instruction import Instruction, Reject
from switch.service.handlers import Deps, admit_instruction
from switch.service.ports import InstructionRecord, UnitOfWork

KINDS: Final = ("now_rejected", "now_admitted", "reason_changed", "fee_changed", "rate_changed", "route_changed")
read_batch_max: Final = 1000  # instructions read per query while walking a period
samples_max_default: Final = 3

# (instruction v1 JSON, origin) -> the domain instruction, as the Kafka edge reads it
InstructionReader = Callable[[str, str | None], Instruction]


@dataclass
class DryRunReport:
    since: datetime
    until: datetime
    replayed: int = 0
    not_replayed: Counter[str] = field(default_factory=Counter)  # why -> how many
    per_corridor: dict[str, Counter[str]] = field(default_factory=dict)  # corridor -> kind (and replayed, unchanged) -> n
    samples: dict[str, list[str]] = field(default_factory=dict)  # kind -> a few lines

    def count(self, corridor: str, kind: str) -> None:
        self.per_corridor.setdefault(corridor, Counter())[kind] += 1

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.per_corridor.values():
            total.update(counts)
        return total

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "replayed": self.replayed,
            "not_replayed": dict(sorted(self.not_replayed.items())),
            "per_corridor": {c: {k: n for k, n in sorted(v.items())} for c, v in sorted(self.per_corridor.items())},
            "samples": {k: v for k, v in self.samples.items() if v},
        }

    def lines(self) -> list[str]:
        """The report as a person reads it."""
        out = [f"dry-run: {self.replayed} instructions received {self.since.isoformat()} .. {self.until.isoformat()} replayed"]
        for why, n in sorted(self.not_replayed.items()):
            out.append(f"  not replayed: {n} ({why})")
        columns = ("replayed", "unchanged", *KINDS)
        out.append(f"{'corridor':<9}" + "".join(f"{c:>15}" for c in columns))
        for corridor, counts in sorted(self.per_corridor.items()):
            out.append(f"{corridor:<9}" + "".join(f"{counts.get(c, 0):>15}" for c in columns))
        for kind in KINDS:
            for line in self.samples.get(kind, []):
                out.append(f"  {kind.replace('_', ' ')}: {line}")
        return out


def _resolutions(data: Mapping[str, Any] | None, ins: Instruction) -> dict[tuple[str, str, str], Resolution | None]:
    """The proxy look-ups recorded at the time, as admission takes them."""
    creditor = ins.creditor
    if not data or creditor is None or creditor.proxy is None:
        return {}
    out: dict[tuple[str, str, str], Resolution | None] = {}
    for partner, found in data.items():
        key = (partner, creditor.proxy_type or "", creditor.proxy)
        if found is None:
            out[key] = None
        else:
            verified, account, agent, name, reason_code = found
            out[key] = Resolution(creditor.proxy_type or "", creditor.proxy, verified, account, agent, name, reason_code)
    return out


async def dry_run(
    uow: UnitOfWork,
    deps: Deps,
    read: InstructionReader,
    *,
    since: datetime,
    until: datetime,
    samples_max: int = samples_max_default,
) -> DryRunReport:
    """Replay the instructions received in [since, until) against `deps` (the new configuration)."""
    report = DryRunReport(since, until)
    after: tuple[datetime, str, str] | None = None
    while True:
        batch = await uow.instructions_received(since, until, read_batch_max, after=after)
        if not batch:
            return report
        payments = await uow.payments_get([r.uetr for r in batch if r.uetr])
        for record in batch:
            _replay_one(record, payments, deps, read, report, samples_max)
        last = batch[-1]
        after = (last.created_at, last.participant, last.instruction_id)  # keyset paging: the next page starts after it


def _replay_one(
    record: InstructionRecord,
    payments: Mapping[str, Any],
    deps: Deps,
    read: InstructionReader,
    report: DryRunReport,
    samples_max: int,
) -> None:
    if record.replay is None:
        report.not_replayed["recorded before replay records (migration 0012)"] += 1
        return
    data = json.loads(record.replay)
    if "unreplayable" in data:
        report.not_replayed[data["unreplayable"]] += 1
        return
    if record.reject_reason_code == "SL15":
        report.not_replayed["over its participant's rate at the time (SL15)"] += 1
        return
    then = payments.get(record.uetr) if record.uetr else None
    if record.uetr and then is None:
        report.not_replayed["admitted payment no longer stored"] += 1
        return
    ins = read(json.dumps(data["instruction"]), data.get("origin"))
    now = admit_instruction(ins, deps, now=record.created_at, resolutions=_resolutions(data.get("resolutions"), ins))
    report.replayed += 1
    who = f"{record.participant}/{record.instruction_id}"
    changes: list[tuple[str, str]] = []
    if isinstance(now, Reject):
        corridor = (then.corridor if then is not None else record.corridor) or "-"
        if then is not None:
            changes.append(("now_rejected", f"{who} {corridor}: admitted then, now {now.reason_code} ({now.detail})"))
        elif now.reason_code != record.reject_reason_code:
            changes.append(("reason_changed", f"{who} {corridor}: {record.reject_reason_code} -> {now.reason_code} ({now.detail})"))
    else:
        p = now.payment
        corridor = p.corridor
        if then is None:
            admitted = f"now admitted via {p.partner} ({p.source} -> {p.target}, fee {p.fee})"
            changes.append(("now_admitted", f"{who} {corridor}: {record.reject_reason_code} then, {admitted}"))
        else:
            if then.fee != p.fee:
                changes.append(("fee_changed", f"{who} {corridor}: fee {then.fee} -> {p.fee}"))
            if then.fx_rate != p.fx_rate:
                changes.append(("rate_changed", f"{who} {corridor}: rate {then.fx_rate} -> {p.fx_rate} ({then.target} -> {p.target})"))
            if then.partner != p.partner or then.corridor != p.corridor:
                changes.append(("route_changed", f"{who}: {then.corridor} via {then.partner} -> {p.corridor} via {p.partner}"))
    report.count(corridor, "replayed")
    if not changes:
        report.count(corridor, "unchanged")
    for kind, line in changes:
        report.count(corridor, kind)
        shown = report.samples.setdefault(kind, [])
        if len(shown) < samples_max:
            shown.append(line)
