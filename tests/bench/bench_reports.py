"""Settlement report pages: write one of N entries to a temporary file, read it back validating
against the official XSD (a script, not a test).

    .venv/bin/python tests/bench/bench_reports.py [--entries N] [--version camt.054.001.08] [--json PATH]

Prints entries/s for write_report and for read_report (header, then every entry, validated while
parsed), the page's size, and the process's peak RSS (resource.getrusage) after each phase. The
entries look like a simulator's: every reference present, a return every 50th entry. Goal (issue
10): a million-entry cycle reconciled in 60 s, so reading should reach 100k entries/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from iso20022.model import Amount  # noqa: E402
from iso20022.reports import REPORT_VERSIONS, ReportEntry, ReportHeader, read_report, write_report  # noqa: E402
from iso20022.schemas import SchemaSet, default_schema_dir  # noqa: E402

CUT_OFF = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)


def header(version: str, entries: int) -> ReportHeader:
    return ReportHeader(
        message_type=version, message_id="ITMX-STL-20261130-1", created_at=CUT_OFF + timedelta(minutes=5),
        report_id="ITMX-20261130T090000Z", page_no=1, last_page=True, account_id="MEKONG-HUB-THB", currency="THB",
        period_from=CUT_OFF - timedelta(hours=5), period_to=CUT_OFF, sequence_no=1, entries_total=entries,
        servicer="ITMXTHBK",
    )


def entries(count: int) -> Iterator[ReportEntry]:
    """count entries, generated one at a time (the writer must not need them all in memory)."""
    booked = date(2026, 11, 30)
    seed = uuid.UUID("4b9c8e2a-1f3d-4c5b-9a7e-2d6f8b1c3e5a").int
    for n in range(count):
        uetr = str(uuid.UUID(int=(seed + n * 0x9E3779B97F4A7C15) % (1 << 128), version=4))
        is_return = n % 50 == 49
        yield ReportEntry(
            amount=Amount(f"{1000 + n % 997}.{n % 100:02d}", "THB"), credit=n % 3 != 0, status="BOOK",
            booking_date=booked, value_date=booked, entry_ref=f"NTRY-{n:09d}", account_servicer_ref=f"ITMX-{n:012d}",
            bank_tx_code="PMNT/RRCT/RRTN" if is_return else "PMNT/ICDT/XBCT", uetr=uetr,
            end_to_end_id=f"E2E-{n:010d}", tx_id=f"TX-{n:010d}", message_id=f"MEKONG-20261130-{n:08d}",
            is_return=is_return, return_reason="AC04" if is_return else None,
        )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--version", choices=REPORT_VERSIONS, default="camt.054.001.08")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    schemas = SchemaSet(default_schema_dir())
    schemas.xml_schema(args.version)  # compiled outside the timings
    rss_start = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.xml"
        started = time.perf_counter()
        with path.open("wb") as out:
            written = write_report(out, header(args.version, args.entries), entries(args.entries))
        write_s = time.perf_counter() - started
        rss_write = peak_rss_mb()
        size = path.stat().st_size

        started = time.perf_counter()
        count = 0
        credits = 0
        with path.open("rb") as source:
            page = read_report(source, schemas)
            for entry in page:
                count += 1
                credits += entry.credit
            page.close()
        read_s = time.perf_counter() - started
        rss_read = peak_rss_mb()
    if count != written:
        raise SystemExit(f"read {count} entries, wrote {written}")
    results = {
        "version": args.version,
        "entries": written,
        "page_bytes": size,
        "write_s": round(write_s, 3),
        "write_entries_per_s": round(written / write_s),
        "read_validate_s": round(read_s, 3),
        "read_validate_entries_per_s": round(count / read_s),
        "peak_rss_mb_start": round(rss_start, 1),
        "peak_rss_mb_after_write": round(rss_write, 1),
        "peak_rss_mb_after_read": round(rss_read, 1),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(f"{args.version}: {written:,} entries, page {size / 1e6:.1f} MB")
    print(f"  write          {write_s:7.2f} s  {written / write_s:10,.0f} entries/s")
    print(f"  read+validate  {read_s:7.2f} s  {count / read_s:10,.0f} entries/s")
    print(f"  peak RSS       {rss_start:.0f} MB at start, {rss_write:.0f} MB after write, {rss_read:.0f} MB after read")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
