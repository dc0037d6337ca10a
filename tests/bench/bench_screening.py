"""CPU cost of the embedded screening per payment (issue 12; target: the clear path adds
<= 100 us CPU per payment with two parties). Not collected by pytest.

    .venv/bin/python tests/bench/bench_screening.py [--payments N] [--json FILE]

Measures time.process_time() over many calls of the matcher (no event loop), for a clear
payment (names sharing nothing with the list), a payment sharing a common token with entries
(scored, not held) and a hit, against the demo list and a synthetic list of 10,000 invented
entities (random syllable names in Latin, Thai and Chinese script, written to a temporary file).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from switch.domain.screening import Role, Subject, SubjectKind  # noqa: E402
from switch.screening.embedded import EmbeddedScreener  # noqa: E402

DEMO_LIST = ROOT / "config" / "screening" / "demo-list.ftm.json"
SYNTHETIC_ENTITIES = 10_000
_LATIN = ["ka", "lo", "mi", "ra", "ten", "vo", "zu", "bel", "dor", "quin", "sar", "thu", "wex", "yal", "fen", "gro", "hap", "jor"]
_THAI = ["กา", "ลอ", "มิ", "รา", "เต", "วอ", "ซู", "เบล", "ดอ", "ควิน", "สา", "ทู"]
_HAN = list("甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥")


def synthetic_list(path: Path, n: int, rng: random.Random) -> None:
    """n invented entities, then the demo list's (so that the hit case hits)."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            syll = _LATIN if i % 3 else (_THAI if i % 2 else _HAN)
            name = " ".join("".join(rng.choice(syll) for _ in range(rng.randint(2, 3))).capitalize() for _ in range(2))
            alias = " ".join("".join(rng.choice(_LATIN) for _ in range(3)).capitalize() for _ in range(2))
            props = {"name": [name], "alias": [alias], "birthDate": [f"19{rng.randint(40, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"],
                     "idNumber": [f"SYN{i:08d}"], "nationality": [rng.choice(["kh", "th", "la", "vn", "cn"])]}
            f.write(json.dumps({"id": f"syn-{i}", "schema": "Person", "properties": props, "datasets": ["synthetic"]},
                               ensure_ascii=False) + "\n")
        f.write(DEMO_LIST.read_text(encoding="utf-8"))


def payment(key: str, debtor: str, creditor: str, *, creditor_latin: str | None = None) -> list[Subject]:
    return [
        Subject(("BENCH", key), Role.DEBTOR, debtor, kind=SubjectKind.PERSON, country="KH", birth_date=date(1980, 1, 2),
                national_id="KH990011223344"),
        Subject(("BENCH", key), Role.CREDITOR, creditor, kind=SubjectKind.PERSON, country="TH", latin=creditor_latin),
    ]


CASES = {
    # names that share no token, phonetic key or id with the list: not scored
    "clear": payment("c", "Marguerite Oakhollow", "สุดารัตน์ พิมพ์ทอง", creditor_latin="Sudarat Phimthong"),
    # a common family name also on the list: candidates scored, not held
    "scored, clear": payment("s", "Nguyen Van Binh", "Ouyang Ming"),
    "hit": payment("h", "Marguerite Oakhollow", "ប៊ុនធី សុខា") + [Subject(("BENCH", "h"), Role.CREDITOR, "Sima Huilin")],
}


def measure(screener: EmbeddedScreener, subjects: list[Subject], payments: int) -> float:
    screener.screen_now(subjects)  # warm: caches of the entries' analysed names, ICU
    started = time.process_time()
    for _ in range(payments):
        screener.screen_now(subjects)
    return (time.process_time() - started) / payments * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = Path(tmp) / "synthetic.ftm.json"
        synthetic_list(synthetic, SYNTHETIC_ENTITIES, random.Random(12))
        for label, path in (("demo", DEMO_LIST), (f"synthetic {SYNTHETIC_ENTITIES}", synthetic)):
            started = time.process_time()
            screener = EmbeddedScreener(path, threshold=0.7)
            load_s = time.process_time() - started
            screener.start_warm_up()
            screener.warm.wait()  # rigour's name data, loaded once per process in the background: not a payment's cost
            for case, subjects in CASES.items():
                n = args.payments if case == "clear" else max(50, args.payments // 10)
                outcome = next(iter(screener.screen_now(subjects).values())).outcome.value
                rows.append({"list": label, "entities": len(screener._index.items), "load_cpu_s": round(load_s, 2),
                             "case": case, "outcome": outcome, "cpu_us_per_payment": round(measure(screener, subjects, n), 1),
                             "payments": n})
    print(f"{'list':18} {'entities':>8} {'load s':>7}  {'case':14} {'outcome':8} {'CPU us/payment':>15}")
    for r in rows:
        print(f"{r['list']:18} {r['entities']:>8} {r['load_cpu_s']:>7}  {r['case']:14} {r['outcome']:8} {r['cpu_us_per_payment']:>15}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
