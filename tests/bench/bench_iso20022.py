"""Per-message cost of the iso20022 hot paths (a script, not a test).

    .venv/bin/python tests/bench/bench_iso20022.py [--json PATH] [--number N] [--repeat R]

Best of R runs of N calls each (time.perf_counter_ns), in microseconds per call, for pacs.008
.08 / .13 (1 and 10 transactions), pacs.002.001.10, pain.001.001.09 (1 and 10 transactions, the
10 in two PmtInf), pain.002.001.12 (1 and 10), acmt.023.001.04 and acmt.024.001.04 (1 and 10
verifications): build, build_validated, parse, and the receive path parse_untrusted + validate +
parse; and the signed business message (head.001.001.02 AppHdr, iso20022/apphdr.py) around a
pacs.008 (1 and 10) and a pacs.002: seal (build the header, sign: ECDSA P-256, exclusive C14N)
and parse_untrusted+open (validate the header, verify the signature). "txs" counts transactions or
verifications. Best-of filters the noise of a shared machine.
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

from iso20022 import acmt023, acmt024, apphdr, pacs002, pacs008, pain001, pain002  # noqa: E402
from iso20022.model import (  # noqa: E402
    Account,
    Agent,
    Amount,
    Assignment,
    ClearingSystemMember,
    Party,
    PartyAndAccount,
    PartyIdentification,
    Proxy,
)
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


def initiation(count: int) -> pain001.CustomerCreditTransferInitiation:
    """count transactions in PmtInf blocks of at most 5 (1 -> one block, 10 -> two)."""
    txs = [
        pain001.CreditTransferTransaction(
            instruction_id=f"INSTR-{n}", end_to_end_id=f"E2E-{n}", uetr="4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e5a",
            amount=Amount("1650.00", "THB"),
            creditor_agent=Agent(clearing_member=ClearingSystemMember("014", system_code="THCBC"), country="TH"),
            creditor=Party(name="Somchai Jaidee", country="TH"),
            creditor_account=Account(other_id="0066812345678", scheme_proprietary="MSISDN",
                                     proxy=Proxy("0066812345678", type_code="TELE")),
            purpose_code="CASH", remittance_lines=("Invoice 42",),
        )
        for n in range(1, count + 1)
    ]
    return pain001.CustomerCreditTransferInitiation(
        message_id="ACLB-1", created_at=CREATED_AT, initiating_party=Party(name="ACLEDA Bank Plc."),
        payment_instructions=tuple(
            pain001.PaymentInstruction(
                payment_information_id=f"PMT-{start}", requested_execution_date=date(2025, 3, 10),
                debtor=Party(name="Sok Dara", country="KH",
                             identification=PartyIdentification("855012345678", scheme_proprietary="MOBILE")),
                debtor_account=Account(other_id="sok_dara@aclb", scheme_proprietary="BAKONG", currency="KHR"),
                debtor_agent=Agent(bicfi="ACLBKHPPXXX"), transactions=tuple(txs[start:start + 5]),
            )
            for start in range(0, count, 5)
        ),
    )


def customer_status_report(count: int) -> pain002.CustomerPaymentStatusReport:
    return pain002.CustomerPaymentStatusReport(
        message_id="MEKONG-STS-1", created_at=CREATED_AT,
        group_status=pain002.GroupStatus("ACLB-1", original_created_at=CREATED_AT, original_tx_count=count, status="PART"),
        payment_instructions=(pain002.PaymentInstructionStatus("PMT-0", tuple(
            pain002.TransactionReport(
                status=pain002.TransactionStatus.RJCT, original_instruction_id=f"INSTR-{n}",
                original_end_to_end_id=f"E2E-{n}", original_uetr="4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e5a",
                reasons=(pain002.StatusReason("BE23", ("proxy 0066812345678 is not registered",)),),
                original_amount=Amount("1650.00", "THB"),
            )
            for n in range(1, count + 1)
        )),),
    )


SWITCH_AGENT = Agent(bicfi="MEKGKHPPXXX")
PROMPTPAY_AGENT = Agent(clearing_member=ClearingSystemMember("ITMX", system_proprietary="PROMPTPAY"))


def verification_request(count: int) -> acmt023.IdentificationVerificationRequest:
    return acmt023.IdentificationVerificationRequest(
        assignment=Assignment("MEKONG-VRF-1", CREATED_AT, SWITCH_AGENT, PROMPTPAY_AGENT),
        verifications=tuple(
            acmt023.Verification(f"V{n}", PartyAndAccount(account=Account(proxy=Proxy(f"00668123456{n:02d}", type_code="TELE"))))
            for n in range(1, count + 1)
        ),
    )


def verification_report(count: int) -> acmt024.IdentificationVerificationReport:
    return acmt024.IdentificationVerificationReport(
        assignment=Assignment("ITMX-VRF-1", CREATED_AT, PROMPTPAY_AGENT, SWITCH_AGENT),
        original_message_id="MEKONG-VRF-1",
        reports=tuple(
            acmt024.VerificationReport(
                original_id=f"V{n}", verified=True,
                original_party_and_account=PartyAndAccount(account=Account(proxy=Proxy(f"00668123456{n:02d}", type_code="TELE"))),
                updated_party_and_account=PartyAndAccount(
                    party=Party(name="Somchai Jaidee"), account=Account(other_id="0041234567"),
                    agent=Agent(clearing_member=ClearingSystemMember("014", system_code="THCBC")),
                ),
            )
            for n in range(1, count + 1)
        ),
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
    for module, make in ((pain001, initiation), (pain002, customer_status_report),
                         (acmt023, verification_request), (acmt024, verification_report)):
        for count in (1, 10):
            record_message(record, schemas, module, make(count), count)
    record_signed(record, schemas)
    return rows


def record_signed(record, schemas: SchemaSet) -> None:  # type: ignore[no-untyped-def]
    """Seal and open (sign and verify) business messages around a pacs.008 (1, 10) and a pacs.002."""
    from switch.pki import make_ca, make_signing_leaf

    issued = make_signing_leaf(make_ca("bench CA", "bench", now=CREATED_AT), "bench signer", "bench", now=CREATED_AT)
    key = apphdr.SigningKey(issued.key, issued.cert)
    hub, partner = apphdr.Party(bicfi="NBCAKHPPXXX"), apphdr.Party(member_id="ITMX", system_code="THCBC")
    schemas.xml_schema(apphdr.HEAD_VERSION)
    documents = [("BizMsg pacs.008.001.13", n,
                  pacs008.build_validated(credit_transfer(n), "pacs.008.001.13", schemas)) for n in (1, 10)]
    documents.append((f"BizMsg {pacs002.VERSION}", 1, pacs002.build_validated(status_report(), schemas)))
    for name, count, document in documents:
        sealed = apphdr.seal(document, fr=hub, to=partner, signer=key, created_at=CREATED_AT)
        record(name, count, "seal (sign)", lambda: apphdr.seal(document, fr=hub, to=partner, signer=key, created_at=CREATED_AT), len(sealed))
        record(name, count, "parse_untrusted+open (verify)", lambda: apphdr.open_envelope(
            parse_untrusted(sealed), schemas=schemas, sender=hub, receiver=partner, certificates=[key.certificate],
            now=CREATED_AT, credt_window_s=300), len(sealed))


def record_message(record, schemas: SchemaSet, module, message, count: int) -> None:  # type: ignore[no-untyped-def]
    """The four rows of one message whose module has VERSION, build, build_validated and parse."""
    version = module.VERSION
    schemas.xml_schema(version)
    body = module.build_validated(message, schemas)
    root = parse_untrusted(body)
    assert module.parse(root) == message
    record(version, count, "build", lambda: module.build(message), len(body))
    record(version, count, "build_validated", lambda: module.build_validated(message, schemas), len(body))
    record(version, count, "parse", lambda: module.parse(root), len(body))
    record(version, count, "parse_untrusted+validate+parse",
           lambda: module.parse(_validated(parse_untrusted(body), schemas, version)), len(body))


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
    print(f"{'message':<24} {'txs':>3}  {'operation':<31} {'us/call':>9} {'bytes':>7}")
    for row in rows:
        print(f"{row['message']:<24} {row['txs']:>3}  {row['operation']:<31} {row['us']:>9.1f} {row['bytes']:>7}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "python": platform.python_version(), "machine": platform.machine(),
            "number": args.number, "repeat": args.repeat, "rows": rows,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
