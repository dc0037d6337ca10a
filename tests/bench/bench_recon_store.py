"""The settlement store at scale (issue 10): one cycle of a million movements on SQLite and on
PostgreSQL. Generates the switch's side directly with bulk inserts (payments completed in the
cycle, four history rows each, a few rejected and a few timed out), then times each store method
the reconciliation runs: the close's set-based booking, reading the books back in keyset pages,
storing the partner's report in pages, reading its entries back, marking the results, and the
set-based settle. Run on request:

    .venv/bin/python tests/bench/bench_recon_store.py [--entries 1000000] [--page-entries 10000]
        [--db sqlite|postgres|both] [--json PATH]

PostgreSQL: MEKONG_TEST_PG_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/test); the
run works in a schema of its own and drops it after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from switch.domain.payment import PaymentState
from switch.domain.recon import BreakKind, StatementEntry
from switch.domain.settlement import SettlementCycle
from switch.store.sql_store import Store, _sqlite_time
from switch.store.tables import payments

PG_URL = os.environ.get("MEKONG_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
CUT = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
OPENS = CUT - timedelta(hours=5)
CYCLE = SettlementCycle(
    id=f"promptpay-{CUT:%Y%m%dT%H%M%SZ}", partner="promptpay", currency="THB", opens_at=OPENS, cut_off=CUT,
    settlement_date=CUT.date(),
)
read_page_max = 50_000  # rows per keyset page when reading books and entries back
rejected_every = 100  # one payment in this many is rejected by the partner (booked not_settled)
timed_out_every = 1_000  # one in this many has no outcome yet (not booked)
inbound_every = 10  # one in this many is inbound
break_every = 1_000  # one book in this many is marked with a break before the rest become matched

STEPS = (
    "cycles_add", "books_close", "books_iter", "report_page_add", "report_entries_iter", "books_mark",
    "books_mark_matched", "payments_settle",
)


def _payment_columns() -> list[str]:
    return [c.name for c in payments.columns]


def generate(n: int) -> Iterator[tuple[dict[str, Any], list[tuple[str, str | None, str, datetime]]]]:
    """n payments of the cycle, each with its history rows (uetr, from, to, at)."""
    step = (CUT - OPENS) / (n + 1)
    for i in range(n):
        uetr = str(uuid.uuid4())
        at = OPENS + step * (i + 1)
        inbound = i % inbound_every == 0
        outcome = (
            None if i % timed_out_every == 1 else PaymentState.REJECTED if i % rejected_every == 3 else PaymentState.COMPLETED
        )
        state = outcome or PaymentState.TIMED_OUT
        row = {
            "uetr": uetr, "participant": "ACLBKHPPXXX", "instruction_id": f"INS-{i:010d}", "corridor": "KH-TH",
            "partner": "promptpay", "debtor_name": "Sok Dara", "debtor_account": "sok_dara@aclb", "debtor_agent": "ACLBKHPPXXX",
            "creditor_name": "Somchai Jaidee", "creditor_account": None, "creditor_proxy_type": "MOBILE",
            "creditor_proxy": "0066812345678", "creditor_agent": "014",
            "instructed_minor": 15_000_000, "instructed_ccy": "KHR",
            "source_minor": 4_000_000 if inbound else 15_000_000, "source_ccy": "KHR",
            "target_minor": 4_000_000 if inbound else 124_323 + i % 97, "target_ccy": "KHR" if inbound else "THB",
            "fee_minor": 0, "fee_ccy": "KHR", "fx_rate": None if inbound else "0.0082882132", "quote_id": None,
            "remittance": None, "state": state.value, "reason_code": "AC04" if state is PaymentState.REJECTED else None,
            "version": 5, "created_at": at, "updated_at": at, "direction": "inbound" if inbound else "outbound", "origin": None,
            "follow_up_at": None, "follow_ups": 0, "message_id": None if inbound else f"M{uetr.replace('-', '')}"[:35],
        }
        history = [
            (uetr, None, "RECEIVED", at - timedelta(milliseconds=3)),
            (uetr, "RECEIVED", "QUOTED", at - timedelta(milliseconds=2)),
            (uetr, "QUOTED", "SUBMITTED", at - timedelta(milliseconds=1)),
            (uetr, "SUBMITTED", state.value, at),
        ]
        yield row, history


def statement_pages(uetrs: list[str], page_entries: int) -> Iterator[list[StatementEntry]]:
    """The partner's report of the cycle: an entry per completed payment, in pages."""
    page: list[StatementEntry] = []
    for i, uetr in enumerate(uetrs):
        inbound = i % inbound_every == 0
        page.append(
            StatementEntry(
                seq=0, entry_ref=f"N{i:010d}", uetr=uetr, end_to_end_id=f"INS-{i:010d}",
                tx_id=None if inbound else f"T{uetr.replace('-', '')}", message_id=None, is_return=False, outbound=not inbound,
                amount_minor=4_000_000 if inbound else 124_323 + i % 97, currency="KHR" if inbound else "THB", booked=True,
                booking_date=date(2026, 11, 28),
            )
        )
        if len(page) == page_entries:
            yield page
            page = []
    if page:
        yield page


async def load_sqlite(path: str, n: int) -> list[str]:
    columns = _payment_columns()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    completed: list[str] = []
    pay_sql = f"INSERT INTO payments ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    hist_sql = "INSERT INTO payment_history (uetr, from_state, to_state, at) VALUES (?, ?, ?, ?)"
    rows: list[tuple[Any, ...]] = []
    history: list[tuple[Any, ...]] = []
    for i, (row, hist) in enumerate(generate(n)):
        if row["state"] == "COMPLETED":
            completed.append(row["uetr"])
        rows.append(tuple(_sqlite_time(v) if isinstance(v, datetime) else v for v in (row[c] for c in columns)))
        history.extend((u, f, t, _sqlite_time(at)) for u, f, t, at in hist)
        if len(rows) == 50_000 or i == n - 1:
            conn.executemany(pay_sql, rows)
            conn.executemany(hist_sql, history)
            rows, history = [], []
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return completed


async def load_postgres(conn: asyncpg.Connection, n: int) -> list[str]:
    columns = _payment_columns()
    completed: list[str] = []
    rows: list[tuple[Any, ...]] = []
    history: list[tuple[Any, ...]] = []
    for i, (row, hist) in enumerate(generate(n)):
        if row["state"] == "COMPLETED":
            completed.append(row["uetr"])
        rows.append(tuple(row[c] for c in columns))
        history.extend(hist)
        if len(rows) == 50_000 or i == n - 1:
            await conn.copy_records_to_table("payments", records=rows, columns=columns)
            await conn.copy_records_to_table(
                "payment_history", records=history, columns=["uetr", "from_state", "to_state", "at"]
            )
            rows, history = [], []
    await conn.execute("ANALYZE payments; ANALYZE payment_history")
    return completed


async def timed_steps(store: Store, completed: list[str], page_entries: int, after_load: Any = None) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}

    checkpoints = 0.0

    async def note(step: str, started: float, rows: int) -> None:
        nonlocal checkpoints
        out[step] = {"s": round(time.perf_counter() - started, 2), "rows": rows}
        print(f"  {step:22} {out[step]['s']:7.2f} s  {rows:>9,} rows", flush=True)
        # the running switch moves SQLite's WAL into the database every second, in a thread
        # (Store.checkpoint); done here between steps, timed apart (a no-op on PostgreSQL)
        t = time.perf_counter()
        await store.checkpoint()
        checkpoints += time.perf_counter() - t

    t = time.perf_counter()
    async with store.unit_of_work() as uow:
        await uow.cycles_add([CYCLE])
    await note("cycles_add", t, 1)

    t = time.perf_counter()
    async with store.unit_of_work() as uow:
        booked = await uow.books_close(CYCLE)
    await note("books_close", t, booked)

    t = time.perf_counter()
    refs: list[str] = []
    after: str | None = None
    async with store.reader() as uow:
        while page := await uow.books_iter(CYCLE.id, after, read_page_max):
            after = page[-1].ref
            refs.extend(b.ref for b in page[::break_every])
    await note("books_iter", t, booked)

    stored, spent = 0, 0.0
    pages = list(range(1, (len(completed) + page_entries - 1) // page_entries + 1))
    for page_no, entries in zip(pages, statement_pages(completed, page_entries), strict=True):
        t = time.perf_counter()  # each page's own transaction; making its entries (the parser's work) is not timed
        async with store.unit_of_work() as uow:
            await uow.report_page_add(
                "promptpay", "STMT-1", page_no, f"MSG-P{page_no}", CYCLE.id, page_no == pages[-1], entries,
                CUT + timedelta(minutes=1),
            )
        spent += time.perf_counter() - t
        stored += len(entries)
    await note("report_page_add", time.perf_counter() - spent, stored)

    t = time.perf_counter()
    read = 0
    after_seq: int | None = None
    async with store.reader() as uow:
        while entries := await uow.report_entries_iter(CYCLE.id, after_seq, read_page_max):
            after_seq = entries[-1].seq
            read += len(entries)
    await note("report_entries_iter", t, read)

    t = time.perf_counter()
    async with store.unit_of_work() as uow:
        await uow.books_mark([(ref, BreakKind.AMOUNT_MISMATCH.value) for ref in refs])
    await note("books_mark", t, len(refs))

    t = time.perf_counter()
    async with store.unit_of_work() as uow:
        matched = await uow.books_mark_matched(CYCLE.id)
    await note("books_mark_matched", t, matched)

    t = time.perf_counter()
    async with store.unit_of_work() as uow:
        settled = await uow.payments_settle(CYCLE.id, CUT + timedelta(minutes=5))
    await note("payments_settle", t, settled)
    assert settled > 0 and matched == booked - len(refs), (settled, matched, booked)
    if store.is_sqlite:
        print(f"  (WAL checkpoints between the steps, in the switch a background thread: {checkpoints:.1f} s)")
    return out


async def run_sqlite(n: int, page_entries: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/bench.db"
        store = Store(f"sqlite+aiosqlite:///{path}")
        await store.start()
        t = time.perf_counter()
        completed = await load_sqlite(path, n)
        print(f"SQLite: {n:,} payments generated in {time.perf_counter() - t:.1f} s (not timed below)", flush=True)
        try:
            return await timed_steps(store, completed, page_entries)
        finally:
            await store.close()


async def run_postgres(n: int, page_entries: int) -> dict[str, dict[str, float]]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    url = make_url(PG_URL)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    store = Store(PG_URL, pg_schema=schema)
    try:
        await store.start()
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        t = time.perf_counter()
        completed = await load_postgres(conn, n)
        await conn.close()
        print(f"PostgreSQL: {n:,} payments generated in {time.perf_counter() - t:.1f} s (not timed below)", flush=True)
        return await timed_steps(store, completed, page_entries)
    finally:
        await store.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="payments in the cycle")
    parser.add_argument("--page-entries", type=int, default=10_000, help="entries per report page")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    if args.db in ("sqlite", "both"):
        results["sqlite"] = await run_sqlite(args.entries, args.page_entries)
    if args.db in ("postgres", "both"):
        results["postgres"] = await run_postgres(args.entries, args.page_entries)
    dbs = list(results)
    print(f"\n{args.entries:,} payments, report pages of {args.page_entries:,} entries")
    print(f"{'step':22}" + "".join(f"{d:>12}" for d in dbs) + f"{'rows':>12}")
    for step in STEPS:
        rows = next(iter(results.values()))[step]["rows"]
        print(f"{step:22}" + "".join(f"{results[d][step]['s']:>11.2f}s" for d in dbs) + f"{int(rows):>12,}")
    totals = {d: round(sum(v["s"] for v in results[d].values()), 2) for d in dbs}
    print(f"{'total':22}" + "".join(f"{totals[d]:>11.2f}s" for d in dbs))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {rss_mb:.0f} MB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"entries": args.entries, "results": results, "totals": totals, "rss_mb": rss_mb}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
