"""Throughput of QR decode + route on one core (a script, not a test).

    .venv/bin/python tests/bench/bench_qr.py [--seconds S] [--runs R] [--json PATH]

How it is measured: one Python process, pinned to one CPU where the OS allows it, calls
`decode_and_route` on a fixed mix of realistic payloads round robin (the same function the
CLI and the switch call: decode with CRC check, then scheme, corridor and creditor). After a
warm-up it does R rounds; a round times, with `time.perf_counter`, as many whole passes over the
mix as fit in about S seconds, and gives payloads / elapsed seconds. The result is the median
of the rounds, with the lowest and highest beside it: the machine is shared, so a single round
says little. Target (issue 3, item 8): >= 50,000 payloads/s.

The mix (every payload must decode and route, checked before timing):

* KHQR dynamic individual (29) with timestamps (99) and additional data (62), KHR amount;
* KHQR static merchant (30) in USD with a Khmer language template (64, non-ASCII);
* KHQR static individual carrying UnionPay tag 15 beside the Bakong template, and 99/00;
* Thai QR mobile (the public PromptPay vector, tags out of order);
* Thai QR bill payment (30, dynamic, THB amount);
* Thai QR national id with a Thai name and city counted in UTF-8 bytes (the byte-length fallback);
* VietQR (38, nested 01) with additional data;
* VietQR with a Vietnamese name and city (non-ASCII, counted in characters);
* LAO QR (38);
* UnionPay tag 15 alone (KH-CN).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from switch.qr import encode  # noqa: E402
from switch.qr.templates import decode_and_route  # noqa: E402

NOW = datetime(2025, 3, 10, 9, 30, tzinfo=timezone.utc)
CREATED_MS = "1741598400000"  # 2025-03-10T09:20:00Z
EXPIRES_MS = "1741600200000"  # 2025-03-10T09:50:00Z: still valid at NOW
TARGET_PER_S = 50_000
METHOD = (
    "one process pinned to one CPU; decode_and_route over the mix round robin; after a warm-up, "
    "each round times whole passes with time.perf_counter for about --seconds; payloads/s per round; "
    "median (and range) of --runs rounds"
)


def payloads() -> list[str]:
    return [
        encode({"01": "12", "29": {"00": "sok_dara@aclb", "01": "85512345678", "02": "ACLEDA Bank"}, "52": "5999",
                "53": "116", "54": "200000", "58": "KH", "59": "Sok Dara", "60": "Phnom Penh",
                "62": {"01": "INV-2025-0042", "02": "85512345678"}, "99": {"00": CREATED_MS, "01": EXPIRES_MS}}),
        encode({"01": "11", "30": {"00": "coffee_shop@aclb", "01": "MER-000123", "02": "ACLEDA Bank"}, "52": "5814",
                "53": "840", "58": "KH", "59": "Brown Coffee", "60": "Phnom Penh",
                "64": {"00": "km", "01": "ប្រោនកាហ្វេ", "02": "ភ្នំពេញ"}}),
        encode({"01": "11", "15": "2676076419740116000000000123456", "29": {"00": "chan_vanna@wing",
                "02": "Wing Bank"}, "52": "5999", "53": "116", "58": "KH", "59": "Chan Vanna", "60": "Siem Reap",
                "99": {"00": CREATED_MS}}),
        "00020101021129370016A000000677010111011300668123456785802TH530376463045D82",
        encode({"01": "12", "30": {"00": "A000000677010112", "01": "099400015804189", "02": "INV0042",
                                   "03": "CUST77"}, "53": "764", "54": "1250.50", "58": "TH", "59": "SIAM POWER CO",
                "60": "BANGKOK"}),
        encode({"01": "11", "29": {"00": "A000000677010111", "02": "3101234567891"}, "53": "764", "58": "TH",
                "59": "ร้านกาแฟสด", "60": "เชียงใหม่"}, length_unit="bytes"),
        encode({"01": "12", "38": {"00": "A000000727", "01": {"00": "970436", "01": "0011001234567"},
                                   "02": "QRIBFTTA"}, "53": "704", "54": "150000", "58": "VN",
                "62": {"08": "thanh toan don hang"}}),
        encode({"01": "11", "38": {"00": "A000000727", "01": {"00": "970422", "01": "9704229200112233"},
                                   "02": "QRIBFTTC"}, "53": "704", "58": "VN", "59": "Phở Hà Nội Đức",
                "60": "Đà Nẵng"}),
        encode({"01": "11", "38": {"00": "A005266284662577", "01": "27710418", "02": "001",
                                   "03": "0101234567890"}, "53": "418", "58": "LA", "59": "Vientiane Noodles",
                "60": "Vientiane"}),
        encode({"01": "12", "15": "2676076419740116000000000123456", "52": "5411", "53": "156", "54": "88.00",
                "58": "CN", "59": "Shanghai Mart", "60": "Shanghai"}),
    ]


def run(mix: list[str], seconds: float) -> tuple[int, float]:
    """(payloads, seconds) for whole passes over the mix until `seconds` have gone by."""
    count = 0
    batch = mix * 64
    chunk = len(batch)
    now = NOW
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for p in batch:
            decode_and_route(p, now=now)
        count += chunk
        if time.perf_counter() >= deadline:
            break
    return count, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="duration of one round")
    parser.add_argument("--runs", type=int, default=7, help="rounds; the median is reported")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args()
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    mix = payloads()
    schemes = []
    for p in mix:  # every payload must be valid, or the number means nothing
        schemes.append(str(decode_and_route(p, now=NOW)[1].scheme))
    run(mix, 0.3)  # warm-up
    rates = [n / s for n, s in (run(mix, args.seconds) for _ in range(args.runs))]
    median = statistics.median(rates)
    result = {
        "benchmark": "qr_decode_route",
        "method": METHOD,
        "payloads_per_s": round(median),
        "payloads_per_s_min": round(min(rates)),
        "payloads_per_s_max": round(max(rates)),
        "runs_payloads_per_s": [round(r) for r in rates],
        "us_per_payload": round(1e6 / median, 2),
        "round_seconds": args.seconds,
        "mix": len(mix),
        "mix_schemes": schemes,
        "mix_non_ascii": sum(not p.isascii() for p in mix),
        "target_payloads_per_s": TARGET_PER_S,
        "meets_target": median >= TARGET_PER_S,
        "pinned_cpu": cpu,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"qr decode_and_route, one core: median {median:,.0f} payloads/s ({1e6 / median:.2f} us each), "
          f"range {min(rates):,.0f}..{max(rates):,.0f} over {len(rates)} rounds of {args.seconds:g} s, "
          f"mix of {len(mix)}, target {TARGET_PER_S:,}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
