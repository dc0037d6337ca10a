"""Reconciling one cycle of a million entries (issue 10), end to end, on SQLite and PostgreSQL.

Generated first (not timed): the switch's books (payments completed, a few rejected and timed
out, by bulk inserts: tests/bench/bench_recon_store.py) and the partner's camt.053 report as page
files of `--page-entries` (iso20022/reports.py's streaming writer), with breaks injected (left
out, amount changed, unknown, duplicated). Then timed, through the switch's own handlers on the
real store, with a progress bar: the cycle closes (its books fixed, set-based), every page is
read streaming with XSD validation and stored, and the cycle is reconciled (matching, breaks,
SETTLED, positions, statements). Each database runs in a child process of its own, so the peak
RSS reported is that run's. Target (issue 10): ≤ 60 s and ≤ 1 GB RSS each. Run on request:

    .venv/bin/python tests/bench/bench_recon.py [--entries 1000000] [--page-entries 10000]
        [--db sqlite|postgres|both] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tests` beside `switch`, run as a script
from tqdm import tqdm

from adapters.registry import load_partners
from fx.config import load_fx_config
from fx.quote import Quoter
from iso20022.model import Amount
from iso20022.reports import ReportEntry, ReportHeader, write_report
from iso20022.schemas import SchemaSet, default_schema_dir
from switch import config as config_mod
from switch import limits
from switch.config import PROJECT_ROOT
from switch.domain.settlement import Calendar
from switch.metrics import Metrics
from switch.service.handlers import Deps
from switch.entrypoints.settlement_edge import read_page_file, report_readers
from switch.service.settlement import (
    CloseCycle,
    ReconcileCycle,
    StoreReportPage,
    close_cycle,
    reconcile_cycle,
    store_report_page,
)
from switch.store.sql_store import Store
from tests.bench.bench_recon_store import CUT, CYCLE, PG_URL, load_postgres, load_sqlite

ROOT = Path(__file__).resolve().parents[2]
# one movement in this many gets each break (left out, amount + 1 minor unit, duplicated) and
# one unknown entry is added per this many
break_every = {"missing_at_partner": 1_000, "amount_mismatch": 2_000, "duplicate_entry": 2_000, "unknown_to_switch": 2_000}
STEPS = ("close", "import", "reconcile")


def _deps(now: datetime) -> Deps:
    cfg = config_mod.load(env={})
    mappings = load_partners(PROJECT_ROOT / "config", {"promptpay"}, switch_bic=cfg.switch.agent_bic)
    quoter = Quoter(load_fx_config(PROJECT_ROOT / "config" / "fx.toml").rate_book())
    deps = Deps(config=cfg, mappings=mappings, quoter=quoter, schemas=SchemaSet(Path(default_schema_dir())), metrics=Metrics(),
                clock=lambda: now)
    deps.calendars = {"promptpay": Calendar("promptpay", "Asia/Bangkok", (), every_s=3600)}
    return deps


def _text(minor: int, currency: str) -> str:
    return f"{minor // 100}.{minor % 100:02d}"  # THB, KHR: exponent 2


async def _movements(store: Store) -> list[tuple[str, int, str, bool]]:
    """(uetr, settlement amount minor, currency, outbound) of every completed payment."""
    async with store.reader() as uow:
        rows = await uow.run_sync(lambda conn: conn.exec_driver_sql(
            "SELECT uetr, CASE WHEN direction = 'outbound' THEN target_minor ELSE source_minor END, "
            "CASE WHEN direction = 'outbound' THEN target_ccy ELSE source_ccy END, direction = 'outbound' "
            "FROM payments WHERE state = 'COMPLETED' ORDER BY created_at").fetchall())
    return [(r[0], int(r[1]), r[2], bool(r[3])) for r in rows]


def write_pages(movements: list[tuple[str, int, str, bool]], out_dir: Path, page_entries: int) -> tuple[list[Path], dict[str, int]]:
    """The partner's report of the cycle as page files, with the breaks injected; the counts."""
    injected = dict.fromkeys(break_every, 0)

    def entries() -> Any:
        for i, (uetr, minor, ccy, outbound) in enumerate(movements):
            if i % break_every["missing_at_partner"] == 7:
                injected["missing_at_partner"] += 1
                continue
            if i % break_every["amount_mismatch"] == 11:
                injected["amount_mismatch"] += 1
                minor += 1
            entry = ReportEntry(amount=Amount(_text(minor, ccy), ccy), credit=not outbound, status="BOOK", booking_date=CUT.date(),
                                value_date=CUT.date(), entry_ref=f"N{i:010d}", account_servicer_ref=None,
                                bank_tx_code="PMNT/ICDT/XBCT" if outbound else "PMNT/RCDT/XBCT", uetr=uetr, end_to_end_id=None,
                                tx_id=None, message_id=None, is_return=False, return_reason=None)
            yield entry
            if i % break_every["duplicate_entry"] == 13:
                injected["duplicate_entry"] += 1
                yield entry
            if i % break_every["unknown_to_switch"] == 17:
                injected["unknown_to_switch"] += 1
                yield ReportEntry(**{**{f: getattr(entry, f) for f in entry.__slots__}, "uetr": str(uuid.uuid4()),
                                     "entry_ref": f"U{i:010d}"})

    stream = entries()
    paths: list[Path] = []
    done = False
    while not done:
        page = len(paths) + 1
        chunk = []
        for e in stream:
            chunk.append(e)
            if len(chunk) == page_entries:
                break
        done = len(chunk) < page_entries
        header = ReportHeader(message_type="camt.053.001.08", message_id=f"BENCH{page:06d}", created_at=CUT, report_id="R-BENCH",
                              page_no=page, last_page=done, account_id="MEKONG-HUB-THB-001", currency="THB",
                              period_from=CYCLE.opens_at, period_to=CUT)
        path = out_dir / f"page-{page:05d}.xml"
        with path.open("wb") as f:
            write_report(f, header, chunk)
        paths.append(path)
    return paths, injected


async def timed(store: Store, pages: list[Path], deps: Deps) -> dict[str, float]:
    out: dict[str, float] = {}
    await asyncio.gather(*(asyncio.get_running_loop().run_in_executor(report_readers(), abs, 0) for _ in range(limits.report_reader_processes)))
    bar = tqdm(total=len(pages) + 2, unit="step", desc="close, pages, reconcile", file=sys.stderr, mininterval=0.5)  # the parent reads stdout
    t0 = time.perf_counter()
    async with store.unit_of_work() as uow:
        closed = await close_cycle(CloseCycle(CYCLE.id), uow, deps)
    out["close"] = time.perf_counter() - t0
    out["books"] = closed.counts.get("books", 0)
    bar.update(1)
    t = time.perf_counter()
    # as the operations API's import does (settlement_edge.import_report): each page file read and
    # validated in the report reader processes, stored by the handler as it comes
    loop = asyncio.get_running_loop()
    pool = report_readers()  # started before the clock (a running switch has them from its first import)
    schema_dir = str(deps.schemas.schema_dir)
    window = limits.report_reader_processes + 1
    reading = [loop.run_in_executor(pool, read_page_file, str(p), schema_dir) for p in pages[:window]]
    for n in range(len(pages)):
        header, entries = await reading[n]
        if n + window < len(pages):
            reading.append(loop.run_in_executor(pool, read_page_file, str(pages[n + window]), schema_dir))
        async with store.unit_of_work() as uow:
            stored = await store_report_page(StoreReportPage("promptpay", header, entries, "operator bench"), uow, deps)
        assert not stored.refusals, stored.refusals
        reading[n] = None  # type: ignore[call-overload]
        bar.update(1)
    out["import"] = time.perf_counter() - t
    t = time.perf_counter()
    async with store.unit_of_work() as uow:
        result = await reconcile_cycle(ReconcileCycle(CYCLE.id), uow, deps)
    out["reconcile"] = time.perf_counter() - t
    bar.update(1)
    bar.close()
    out["total"] = time.perf_counter() - t0
    out["matched"] = result.counts.get("matched", 0)
    out["settled"] = result.counts.get("settled", 0)
    async with store.reader() as uow:
        cycle = (await uow.cycles_get([CYCLE.id]))[CYCLE.id]
    out["breaks"] = json.loads(cycle.summary or "{}").get("breaks", {})  # type: ignore[assignment]
    return out


def _dsn() -> str:
    return make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)


def _store(db: str, workdir: Path, schema: str | None) -> Store:
    return Store(f"sqlite+aiosqlite:///{workdir}/bench.db") if db == "sqlite" else Store(PG_URL, pg_schema=schema)


async def generate(db: str, n: int, page_entries: int, workdir: Path) -> dict[str, Any]:
    """The switch's books and the partner's report pages (a process of its own: not timed, and
    its memory is not the reconciliation's)."""
    t = time.perf_counter()
    schema = None
    if db == "postgres":
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(_dsn())
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        await admin.close()
    store = _store(db, workdir, schema)
    await store.start()
    try:
        if db == "sqlite":
            await load_sqlite(str(workdir / "bench.db"), n)
        else:
            conn = await asyncpg.connect(_dsn(), server_settings={"search_path": schema or ""})
            await load_postgres(conn, n)
            await conn.close()
        async with store.unit_of_work() as uow:
            await uow.cycles_add([CYCLE])
        pages, injected = write_pages(await _movements(store), workdir, page_entries)
    finally:
        await store.close()
    size_mb = sum(p.stat().st_size for p in pages) / 1e6
    print(f"{db}: {n:,} payments and {len(pages)} report pages ({size_mb:,.0f} MB) generated in "
          f"{time.perf_counter() - t:.1f} s (not timed)", file=sys.stderr, flush=True)
    return {"schema": schema, "pages": [str(p) for p in pages], "injected": injected, "report_mb": round(size_mb)}


async def run(db: str, workdir: Path, generated: dict[str, Any]) -> dict[str, Any]:
    deps = _deps(CUT + timedelta(minutes=5))
    store = _store(db, workdir, generated["schema"])
    await store.start(migrate=False)
    gc.collect()  # the garbage collector as `mekong run` sets it (switch/entrypoints/cli.py)
    gc.freeze()
    gc.set_threshold(*limits.gc_thresholds)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        result = await timed(store, [Path(p) for p in generated["pages"]], deps)
    finally:
        await store.close()
    report_readers().shutdown()
    result["rss_main_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["rss_reader_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest reader process
    result["rss_mb"] = result["rss_main_mb"] + limits.report_reader_processes * result["rss_reader_mb"]
    result["rss_start_mb"] = rss_before
    result["injected"] = generated["injected"]
    result["pages"] = len(generated["pages"])
    result["report_mb"] = generated["report_mb"]
    return result


def _child(*args: str) -> Any:
    """This script in a fresh process; its result is the JSON on its last line of stdout."""
    proc = subprocess.run([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def one(db: str, n: int, page_entries: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        generated = _child("--phase", "generate", "--db", db, "--entries", str(n), "--page-entries", str(page_entries),
                           "--workdir", tmp)
        try:
            return _child("--phase", "run", "--db", db, "--workdir", tmp, "--generated", json.dumps(generated))  # type: ignore[no-any-return]
        finally:
            if generated["schema"]:
                async def drop() -> None:
                    admin = await asyncpg.connect(_dsn())
                    await admin.execute(f'DROP SCHEMA "{generated["schema"]}" CASCADE')
                    await admin.close()
                asyncio.run(drop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="payments in the cycle")
    parser.add_argument("--page-entries", type=int, default=10_000, help="entries per report page")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--phase", choices=["generate", "run"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generated", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "generate":
        print(json.dumps(asyncio.run(generate(args.db, args.entries, args.page_entries, args.workdir))))
        return
    if args.phase == "run":
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="  %(message)s")
        logging.getLogger("switch.service.settlement").setLevel(logging.INFO)  # the reconciliation's phase timings
        print(json.dumps(asyncio.run(run(args.db, args.workdir, json.loads(args.generated)))))
        return
    results = {db: one(db, args.entries, args.page_entries) for db in (["sqlite", "postgres"] if args.db == "both" else [args.db])}
    print(f"\none cycle of {args.entries:,} payments, report pages of {args.page_entries:,} entries")
    print(f"{'':24}" + "".join(f"{d:>14}" for d in results))
    for step in STEPS:
        print(f"{step:24}" + "".join(f"{r[step]:>13.1f}s" for r in results.values()))
    print(f"{'total (target <= 60 s)':24}" + "".join(f"{r['total']:>13.1f}s" for r in results.values()))
    print(f"{'peak RSS, all processes':24}" + "".join(f"{r['rss_mb']:>11.0f} MB" for r in results.values())
          + "   (<= 1024 MB: the switch's process plus its report readers)")
    print(f"{'  the switch process':24}" + "".join(f"{r['rss_main_mb']:>11.0f} MB" for r in results.values()))
    print(f"{'  each report reader':24}" + "".join(f"{r['rss_reader_mb']:>11.0f} MB" for r in results.values()))
    print(f"{'matched / settled':24}" + "".join(f"{r['matched']:>7,}/{r['settled']:,}".rjust(14) for r in results.values()))
    for db, r in results.items():
        found = r["breaks"]
        ok = all(found.get(k, 0) == n for k, n in r["injected"].items())
        print(f"{db}: breaks found {found}; injected {r['injected']}: {'every one found' if ok else 'MISMATCH'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"entries": args.entries, "page_entries": args.page_entries, "results": results}, indent=2))


if __name__ == "__main__":
    main()
