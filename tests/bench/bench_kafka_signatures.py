"""What checking a Kafka record's signature costs the switch, per record, on one core (a script,
not a test).

    .venv/bin/python tests/bench/bench_kafka_signatures.py [--seconds S] [--runs R] [--json PATH]

How it is measured: one Python process, pinned to one CPU where the OS allows it. The records are
a realistic instruction v1 (about 450 bytes of JSON) and a pain.001 with 5 transactions (about
5 KB), each signed once up front by a participant key. Timed, per record:

* `verify`: `KeyRing.verify` as the Kafka edge calls it (two header look-ups, the key id checked
  and looked up among 30 configured keys, base64 decoded, Ed25519 verified over the value);
* `ed25519_only`: the bare `Ed25519PublicKey.verify` of `cryptography` (OpenSSL), for comparison;
* `sign`: `signature_headers`, what a participant (and the load generator) pays per record.

After a warm-up, R rounds each time whole passes for about S seconds with time.perf_counter; the
result is the median µs per operation, with the range of the rounds (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from switch.kafka_auth import KeyRing, ParticipantKey, key_id_of, signature_headers  # noqa: E402
from switch.tools.pain001_samples import pain001_from_instructions  # noqa: E402
from tests.factories import sample_instruction  # noqa: E402

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
configured_keys = 30  # e.g. 15 participants mid-rotation


def _rounds(fn: Callable[[], None], *, seconds: float, runs: int) -> dict[str, float]:
    for _ in range(2_000):  # warm-up
        fn()
    per_op_us = []
    for _ in range(runs):
        n, started = 0, time.perf_counter()
        deadline = started + seconds
        while True:
            for _ in range(500):
                fn()
            n += 500
            now = time.perf_counter()
            if now >= deadline:
                break
        per_op_us.append((now - started) / n * 1e6)
    return {"median_us": round(statistics.median(per_op_us), 2), "min_us": round(min(per_op_us), 2),
            "max_us": round(max(per_op_us), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    keys = [Ed25519PrivateKey.generate() for _ in range(configured_keys)]
    ring = KeyRing(ParticipantKey(key_id_of(k.public_key()), f"P{i:03d}KHPPXXX", k.public_key()) for i, k in enumerate(keys))
    signer = keys[7]
    instruction = json.dumps(sample_instruction(instruction_id="BENCH-000001")).encode()
    pain001 = pain001_from_instructions([sample_instruction(instruction_id=f"BENCH-{i}") for i in range(5)],
                                        message_id="BENCH-PAIN", created_at=NOW)
    results: dict[str, object] = {}
    for name, value in (("instruction_v1", instruction), ("pain001_5tx", pain001)):
        headers = signature_headers(value, signer)
        assert ring.verify(value, headers, now=NOW).participant == "P007KHPPXXX"  # type: ignore[union-attr]
        signature = __import__("base64").b64decode(dict(headers)["mekong.sig"])
        public = signer.public_key()
        results[name] = {
            "value_bytes": len(value),
            "verify": _rounds(lambda v=value, h=headers: ring.verify(v, h, now=NOW), seconds=args.seconds, runs=args.runs),
            "ed25519_only": _rounds(lambda v=value, s=signature: public.verify(s, v), seconds=args.seconds, runs=args.runs),
            "sign": _rounds(lambda v=value: signature_headers(v, signer), seconds=args.seconds, runs=args.runs),
        }
    out = {
        "results": results,
        "configured_keys": configured_keys,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "cryptography": __import__("cryptography").__version__},
        "method": "one process pinned to one CPU; after a warm-up, --runs rounds of about --seconds each; µs per "
                  "operation, median and range of the rounds",
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
