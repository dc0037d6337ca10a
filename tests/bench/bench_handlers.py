"""CPU cost of the switch's handlers per payment, without network: parse the Kafka records, admit
them (FX, pacs.008 built and validated, SQLite rows), record the partner's acknowledgement,
parse and apply a pacs.002 per message, mark the status events sent. Run on request:

    .venv/bin/python tests/bench/bench_handlers.py [--batch 500] [--rounds 8] [--json PATH]

`--batch` is the number of instructions per admission batch: compare a big one (load) with a
small one (a few payments per cycle, as at moderate rates) to see the per-batch overhead.
`--daily-limit` gives every corridor a default tier with a per-debtor daily maximum (issue 11),
too high to refuse anything, so that every admission also locks and raises its debtor's daily
usage row: the cost of the exact daily limit on the hot path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from aiokafka.structs import ConsumerRecord

from adapters.registry import load_partners
from fx.config import load_fx_config
from fx.quote import Quoter
from iso20022 import pacs002
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet, default_schema_dir
from switch import config as config_mod
from switch.config import PROJECT_ROOT
from switch.entrypoints.kafka_consumer import parse_record
from switch.metrics import Metrics
from switch.service.handlers import (
    AcceptInstructions,
    ApplyPartnerStatuses,
    Deps,
    ParsedInstruction,
    RecordSendResults,
    accept_instructions,
    apply_partner_statuses,
    record_send_results,
)
from switch.store.sql_store import Store
from switch.tools.loadgen import plan_instructions

STAGES = ("parse records", "admit", "acknowledgement", "pacs.002 parse+validate", "apply statuses", "mark sent")


def _clock() -> datetime:
    return datetime.now(timezone.utc)


async def run(batch: int, rounds: int, warmup: int = 2, daily_limit: bool = False) -> dict[str, float]:
    cfg = config_mod.load()
    if daily_limit:
        fields = {name: getattr(cfg, name) for name in type(cfg).model_fields}
        huge = {code: "100000000000" for code in ("KHR", "USD")}
        fields["tiers"] = {**cfg.tiers, "bench": {"tx_max": {}, "day_max": huge}}
        fields["corridors"] = tuple(c.model_copy(update={"default_tier": "bench"}) for c in cfg.corridors)
        cfg = type(cfg).model_validate(fields)
    schemas = SchemaSet(Path(default_schema_dir()))
    mappings = load_partners(PROJECT_ROOT / "config", {"promptpay"}, switch_bic=cfg.switch.agent_bic)
    quoter = Quoter(load_fx_config(PROJECT_ROOT / "config" / "fx.toml").rate_book())
    deps = Deps(config=cfg, mappings=mappings, quoter=quoter, schemas=schemas, metrics=Metrics(), clock=_clock)
    profile = mappings["promptpay"].profile
    schemas.xml_schema(profile.pacs008_version)
    schemas.xml_schema(profile.pacs002_version)
    totals = dict.fromkeys(STAGES, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await store.start()
        for n in range(warmup + rounds):
            planned, _ = plan_instructions(batch, bad_share=0.0, run_id=f"H{n}")
            records = [
                ConsumerRecord("mekong.instructions", 0, i, 0, 0, p.key.encode(), p.value, None, 0, len(p.value), [])
                for i, p in enumerate(planned)
            ]
            spent: dict[str, float] = {}
            clock = time.process_time()
            parsed = [r for r in map(parse_record, records) if isinstance(r, ParsedInstruction)]
            spent["parse records"], clock = time.process_time() - clock, time.process_time()
            async with store.unit_of_work() as uow:
                admitted = await accept_instructions(AcceptInstructions(parsed), uow, deps)
            spent["admit"], clock = time.process_time() - clock, time.process_time()
            sent = RecordSendResults(
                [m.id for m in admitted.partner_outbox if m.id], [u for m in admitted.partner_outbox for u in m.uetrs]
            )
            async with store.unit_of_work() as uow:
                await record_send_results([sent], uow, deps)
            spent["acknowledgement"] = time.process_time() - clock
            # the partner's side (not timed): one pacs.002 per pacs.008, every transaction accepted
            bodies = [_accepted_report(m.message_id, m.uetrs, profile.pacs008_version) for m in admitted.partner_outbox]
            clock = time.process_time()
            commands = []
            for body in bodies:
                root = parse_untrusted(body)
                schemas.validate(root, profile.pacs002_version)
                report = mappings["promptpay"].parse_status(root)
                commands.append(ApplyPartnerStatuses("promptpay", report.message_id, profile.pacs002_version, body, report.statuses))
            spent["pacs.002 parse+validate"], clock = time.process_time() - clock, time.process_time()
            async with store.unit_of_work() as uow:
                outcomes = await apply_partner_statuses(commands, uow, deps)
            spent["apply statuses"], clock = time.process_time() - clock, time.process_time()
            async with store.unit_of_work() as uow:
                await record_send_results([RecordSendResults([m.id for o in outcomes for m in o.status_outbox if m.id])], uow, deps)
            spent["mark sent"] = time.process_time() - clock
            if n >= warmup:
                for stage, seconds in spent.items():
                    totals[stage] += seconds
        await store.close()
    per_payment = {stage: round(total / rounds / batch * 1e6, 1) for stage, total in totals.items()}
    per_payment["total"] = round(sum(per_payment.values()), 1)
    return per_payment


def _accepted_report(message_id: str, uetrs: tuple[str, ...], message_type: str) -> bytes:
    return pacs002.build(
        pacs002.PaymentStatusReport(
            message_id=f"S{uuid.uuid4().hex}"[:35],
            created_at=_clock(),
            transactions=tuple(
                pacs002.TransactionReport(
                    status=pacs002.TransactionStatus.ACSC,
                    original_group=pacs002.OriginalGroup(message_id, message_type),
                    original_uetr=uetr,
                )
                for uetr in uetrs
            ),
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--daily-limit", action="store_true", help="count every debtor's daily usage (issue 11)")
    args = parser.parse_args()
    result = asyncio.run(run(args.batch, args.rounds, daily_limit=args.daily_limit))
    limit = ", daily limit counted" if args.daily_limit else ""
    print(f"switch handlers, CPU per payment, batches of {args.batch} ({args.rounds} rounds{limit}):")
    for stage, value in result.items():
        print(f"  {stage:<26}{value:>9.1f} us")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"batch": args.batch, "us_per_payment": result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
