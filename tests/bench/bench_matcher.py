"""Time and memory of the reconciliation Matcher alone (switch/domain/recon.py) on one cycle of
synthetic books and report entries, no database and no XML. Run on request:

    .venv/bin/python tests/bench/bench_matcher.py [--books 1000000] [--json PATH]

The books are generated one by one, each with its own strings as rows read from a database would
have them (UETR, end-to-end, transaction and message ids, cycle id, participant, currencies), so
the matcher holds the only copy. The report has one entry per settled movement, in another order
than the books, with a thousandth of each kind of break injected (amount, currency, status,
duplicate, unknown, missing). Peak RSS is the process's high-water mark (VmHWM), reset after the
interpreter and imports have loaded, so it is the matcher's books plus the entries in flight.
Goal (issue 10 design): 1,000,000 books and entries in <= 15 s and <= 600 MB for the matcher.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from switch.domain.recon import MATCHED, BookEntry, BookKind, BreakKind, Matcher, Outcome, StatementEntry

CYCLE = "promptpay-20261202T090000Z"
PARTICIPANTS = [f"BANK{n:02d}KHPPXXX" for n in range(20)]
K = BreakKind


def _uetr(n: int) -> str:
    # a UUIDv4-shaped string of the right length; n scrambled so that neighbours share no prefix
    x = (n * 0x9E3779B97F4A7C15) & (2**128 - 1)
    h = f"{x:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def _kind(n: int) -> BookKind:
    return BookKind.RETURN if n % 20 == 19 else BookKind.PAYMENT


def _outcome(n: int) -> Outcome:
    return Outcome.NOT_SETTLED if n % 10 == 7 else Outcome.SETTLES


def books(count: int) -> Iterator[BookEntry]:
    for n in range(count):
        kind = _kind(n)
        uetr = _uetr(n)
        yield BookEntry(
            ref=uetr if kind is BookKind.PAYMENT else f"R:M{n:020d}RTN",
            cycle_id="".join(CYCLE),  # a fresh string, as each database row has
            kind=kind,
            uetr=uetr,
            outbound=n % 3 != 0,
            amount_minor=100_000 + n,
            currency="".join("THB"),
            outcome=_outcome(n),
            participant="".join(PARTICIPANTS[n % 20]),
            participant_amount_minor=1_000_000 + n,
            participant_currency="".join("KHR"),
            fee_minor=500,
            end_to_end_id=f"E2E-{n:012d}-PARTICIPANT",
            tx_id=f"T{n:020d}MEKONGTX00",
            message_id=f"M{n:020d}{'RTN' if kind is BookKind.RETURN else 'P08'}",
        )


# a thousandth of the settled movements get each break
def _break(n: int) -> str | None:
    return {11: "amount", 31: "currency", 51: "status", 71: "duplicate", 91: "missing"}.get(n % 1000)


def entries(count: int) -> Iterator[StatementEntry]:
    """The report: the settled movements in another order (the books reversed in blocks), then a
    few the books lack."""
    seq = 0
    block = 10_000
    for start in range(0, count, block):
        for n in range(min(start + block, count) - 1, start - 1, -1):
            if _outcome(n) is not Outcome.SETTLES or _break(n) == "missing":
                continue
            kind = _kind(n)
            brk = _break(n)
            entry = StatementEntry(
                seq=seq, entry_ref=f"NTRY{seq:012d}", uetr=_uetr(n), end_to_end_id=f"E2E-{n:012d}-PARTICIPANT",
                tx_id=f"T{n:020d}MEKONGTX00", message_id=f"M{n:020d}{'RTN' if kind is BookKind.RETURN else 'P08'}",
                is_return=kind is BookKind.RETURN, outbound=n % 3 != 0,
                amount_minor=100_000 + n + (1 if brk == "amount" else 0),
                currency="USD" if brk == "currency" else "THB", booked=brk != "status")
            seq += 1
            yield entry
            if brk == "duplicate":
                yield StatementEntry(**{**{f: getattr(entry, f) for f in entry.__slots__}, "seq": seq})  # type: ignore[arg-type]
                seq += 1
    for u in range(count // 1000):
        yield StatementEntry(seq=seq, entry_ref=None, uetr=_uetr(10**9 + u), end_to_end_id=None, tx_id=None, message_id=None,
                             is_return=False, outbound=True, amount_minor=1, currency="THB", booked=True)
        seq += 1


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def expected(count: int) -> Counter[str]:
    out: Counter[str] = Counter()
    for n in range(count):
        brk = _break(n)
        if _outcome(n) is not Outcome.SETTLES:
            continue  # not in the report, not missing
        out[{"amount": K.AMOUNT_MISMATCH, "currency": K.CURRENCY_MISMATCH, "status": K.STATUS_MISMATCH,
             "missing": K.MISSING_AT_PARTNER}.get(brk or "", MATCHED)] += 1
        if brk == "duplicate":
            out[K.DUPLICATE_ENTRY] += 1
    out[K.UNKNOWN_TO_SWITCH] += count // 1000
    return out


def run(count: int) -> dict[str, object]:
    # the cost of making the rows, measured apart, to subtract
    t0 = time.perf_counter()
    for _ in books(count):
        pass
    for _ in entries(count):
        pass
    generate_s = time.perf_counter() - t0

    rss_before_kb = _status_kb("VmRSS")
    peak_reset = _reset_peak()
    t0 = time.perf_counter()
    matcher = Matcher(CYCLE, books(count))
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    found: Counter[str] = Counter()
    for i, e in enumerate(entries(count)):
        found[matcher.feed(e).kind] += 1
        if i % 200_000 == 0:
            print(f"\r  fed {i:>9,} entries", end="", file=sys.stderr, flush=True)
    feed_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    for f in matcher.finish():
        found[f.kind] += 1
    finish_s = time.perf_counter() - t2
    total_s = time.perf_counter() - t0
    rss_after_kb, peak_kb = _status_kb("VmRSS"), _status_kb("VmHWM")
    print(file=sys.stderr)
    want = expected(count)
    if found != want:
        raise SystemExit(f"wrong findings: {dict(found)} != {dict(want)}")
    return {
        "books": count,
        "findings": {str(k): v for k, v in sorted(found.items())},
        "generate_rows_s": round(generate_s, 2),
        "matcher_load_s": round(load_s, 2),
        "matcher_feed_s": round(feed_s, 2),
        "matcher_finish_s": round(finish_s, 2),
        "matcher_total_s": round(total_s, 2),
        "matcher_total_without_row_generation_s": round(total_s - generate_s, 2),
        "rss_before_mb": round(rss_before_kb / 1024),
        "rss_after_mb": round(rss_after_kb / 1024),
        "peak_rss_mb": round(peak_kb / 1024),
        "peak_rss_is_since_load": peak_reset,
        "matcher_mb": round((peak_kb - rss_before_kb) / 1024),
        "bytes_per_book": round((rss_after_kb - rss_before_kb) * 1024 / max(count, 1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--books", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = run(args.books)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
