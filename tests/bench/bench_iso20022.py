"""Per-message cost of the iso20022 hot paths (a script, not a test).

    .venv/bin/python tests/bench/bench_iso20022.py [--json PATH] [--number N] [--repeat R]

Best of R runs of N calls each (time.perf_counter_ns), in microseconds per call, for pacs.008
.08 / .13 (1 and 10 transactions) and pacs.002.001.10: build, build_validated, and the receive
path parse_untrusted + validate + parse. Best-of filters the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from iso20022 import pacs002, pacs008  # noqa: E402
from iso20022.model import Agent, Amount, ClearingSystemMember  # noqa: E402
from iso20022.parsing import parse_untrusted  # noqa: E402
from iso20022.schemas import SchemaSet, default_schema_dir  # noqa: E402

CREATED_AT = datetime(2025, 3, 10, 9, 30, 15, 123000, tzinfo=timezone.utc)


def transaction(n: int) -> pacs008.CreditTransfer:
    return pacs008.CreditTransfer(
        instruction_id=f"INSTR-{n}", end_to_end_id=f"E2E-{n}", tx_id=f"TX-{n}",
        uetr="4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e5a", settlement_amount=Amount("200000", "KHR"),
        charge_bearer="SLEV", accepted_at=CREATED_AT, instructed_amount=Amount("5.00", "USD"), exchange_rate="4100.5",
        instructing_agent=Agent(bicfi="ACLBKHPPXXX"),
        instructed_agent=Agent(clearing_member=ClearingSystemMember("004", system_code="THCBC")),
        debtor=pacs008.Party(
            name="Sok Dara", country="KH",
            identification=pacs008.PartyIdentification("855012345678", scheme_proprietary="MOBILE"),
        ),
        debtor_account=pacs008.Account(other_id="sok_dara@aclb", scheme_proprietary="BAKONG"),
        debtor_agent=Agent(bicfi="ACLBKHPPXXX"),
        creditor_agent=Agent(bicfi="KASITHBKXXX", clearing_member=ClearingSystemMember("004", system_code="THCBC")),
        creditor=pacs008.Party(name="Somchai Jaidee"),
        creditor_account=pacs008.Account(
            other_id="0041234567", proxy=pacs008.Proxy("0066812345678", type_proprietary="MSISDN")
        ),
        purpose_code="CASH", remittance_lines=("Invoice 42",), additional_remittance=("NEXUS-QUOTE-123",),
    )


def credit_transfer(count: int) -> pacs008.CustomerCreditTransfer:
    return pacs008.CustomerCreditTransfer(
        message_id="MSG-1", created_at=CREATED_AT, settlement=pacs008.Settlement(clearing_system_code="THN"),
        transactions=tuple(transaction(n) for n in range(1, count + 1)), settlement_date=date(2025, 3, 10),
    )


def status_report() -> pacs002.PaymentStatusReport:
    return pacs002.PaymentStatusReport(
        message_id="ST-1", created_at=CREATED_AT,
        transactions=(pacs002.TransactionReport(
            status=pacs002.TransactionStatus.RJCT,
            original_group=pacs002.OriginalGroup("MSG-1", "pacs.008.001.13"),
            original_instruction_id="INSTR-1", original_end_to_end_id="E2E-1", original_tx_id="TX-1",
            original_uetr="4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e5a",
            reasons=(pacs002.StatusReason("AC01", ("no such account",)),), accepted_at=CREATED_AT,
        ),),
    )


def best_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    fn()
    best = None
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter_ns() - start
        best = elapsed if best is None or elapsed < best else best
    return best / number / 1000  # type: ignore[operator]


def run(number: int, repeat: int) -> list[dict[str, object]]:
    schemas = SchemaSet(default_schema_dir())
    rows: list[dict[str, object]] = []

    def record(message: str, txs: int, operation: str, fn: Callable[[], object], size: int) -> None:
        per_call = best_us(fn, max(1, number // txs), repeat)
        rows.append({"message": message, "txs": txs, "operation": operation, "us": round(per_call, 1), "bytes": size})

    for version in ("pacs.008.001.08", "pacs.008.001.13"):
        schemas.xml_schema(version)
        for count in (1, 10):
            message = credit_transfer(count)
            body = pacs008.build_validated(message, version, schemas)
            root = parse_untrusted(body)
            record(version, count, "build", lambda: pacs008.build(message, version), len(body))
            record(version, count, "build_validated", lambda: pacs008.build_validated(message, version, schemas), len(body))
            record(version, count, "parse", lambda: pacs008.parse(root), len(body))
            record(version, count, "parse_untrusted+validate+parse",
                   lambda: pacs008.parse(_validated(parse_untrusted(body), schemas, version)), len(body))
    report = status_report()
    body = pacs002.build_validated(report, schemas)
    root = parse_untrusted(body)
    record(pacs002.VERSION, 1, "build", lambda: pacs002.build(report), len(body))
    record(pacs002.VERSION, 1, "build_validated", lambda: pacs002.build_validated(report, schemas), len(body))
    record(pacs002.VERSION, 1, "parse", lambda: pacs002.parse(root), len(body))
    record(pacs002.VERSION, 1, "parse_untrusted+validate+parse",
           lambda: pacs002.parse(_validated(parse_untrusted(body), schemas, pacs002.VERSION)), len(body))
    return rows


def _validated(root, schemas: SchemaSet, version: str):  # type: ignore[no-untyped-def]
    schemas.validate(root, version)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--number", type=int, default=2000, help="calls per run (divided by the tx count)")
    parser.add_argument("--repeat", type=int, default=7, help="runs; the best one is reported")
    args = parser.parse_args(argv)
    rows = run(args.number, args.repeat)
    print(f"{'message':<17} {'txs':>3}  {'operation':<31} {'us/call':>9} {'bytes':>7}")
    for row in rows:
        print(f"{row['message']:<17} {row['txs']:>3}  {row['operation']:<31} {row['us']:>9.1f} {row['bytes']:>7}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "python": platform.python_version(), "machine": platform.machine(),
            "number": args.number, "repeat": args.repeat, "rows": rows,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
