"""Settlement reports and reconciliation at the edges (issue 10).

Partner port: a camt.053 / camt.054 page (family registered in exception_edges.EXCEPTION_EDGES),
after the caller's TLS identity, signature and size checks: the version the profile's
`[settlement] report` names, then read streaming with the official XSD (iso20022/reports.py),
one StoreReportPage, the answer (200 with the cycle and counts; 422 with a refusal).

Operations API (api_auth: every /v1 role but monitor reads, operators write):
- GET  /v1/recon/cycles[?partner=&limit=]       newest first, with each cycle's summary
- GET  /v1/recon/cycles/{id}                    one cycle, its report pages and its breaks
- GET  /v1/recon/breaks[?partner=&cycle=&open=1] breaks, newest first
- POST /v1/recon/breaks/{id}/resolve            {"note": "...", "write_off": false}; audited
- POST /v1/recon/reports?partner=P              a report page as a file (the body: a camt.053 /
  camt.054 Document or BizMsg envelope, any size up to limits.report_file_bytes_max): streamed to
  a temporary file and read from there, never whole in memory; audited as `recon.import`.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from iso20022.errors import XmlRejected
from iso20022.reports import ReportHeader, read_report
from iso20022.schemas import SchemaSet
from switch import limits
from switch.domain.recon import Break, StatementEntry
from switch.domain.settlement import SettlementCycle
from switch.entrypoints import api_auth
from switch.entrypoints.exception_edges import EXCEPTION_EDGES, answer, check_version
from switch.service.bus import MessageBus
from switch.service.settlement import ResolveBreak, StoreReportPage, statement_entry

report_file_bytes_max: Final = 2 * 1024**3  # an imported report page (a large cycle's single page)
import_chunk_bytes: Final = 1 << 20
cycles_listed_max: Final = 500


def _read_page(source: Any, schemas: SchemaSet) -> tuple[ReportHeader, list[StatementEntry]]:
    reader = read_report(source, schemas)
    try:
        header = reader.header
        base = header.page_no * 10**7
        entries = [statement_entry(e, base + i) for i, e in enumerate(reader)]
    finally:
        reader.close()
    return header, entries


_worker_schemas: dict[str, SchemaSet] = {}


def read_page_file(path: str, schema_dir: str) -> tuple[ReportHeader, list[StatementEntry]]:
    """A report page file read and validated (in a worker process: parsing and validating a large
    page is CPU work that holds the GIL, so imports run beside the event loop, on another core).
    XmlRejected for what cannot be read."""
    schemas = _worker_schemas.get(schema_dir)
    if schemas is None:
        schemas = _worker_schemas[schema_dir] = SchemaSet(Path(schema_dir))
    with open(path, "rb") as f:
        return _read_page(f, schemas)


_pool: ProcessPoolExecutor | None = None


def report_readers() -> ProcessPoolExecutor:
    """The worker processes that read imported report files (started on first use; "spawn":
    nothing of this process's threads or sockets is inherited)."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=limits.report_reader_processes, mp_context=multiprocessing.get_context("spawn"))
    return _pool


def _expected_report(bus: MessageBus, partner: str) -> str | None:
    profile = bus.deps.mappings[partner].profile
    return profile.settlement.report if profile.settlement is not None else None


async def report_edge(bus: MessageBus, partner: str, root: Any, message_type: str, body: bytes) -> web.Response:
    """A partner's report page. Raises XmlRejected (400) for what cannot be read."""
    expected = _expected_report(bus, partner)
    if expected is None:
        raise XmlRejected("FF01", f"{partner} has no settlement profile here: no report is taken")
    check_version(bus, partner, message_type, expected)
    header, entries = _read_page(body, bus.deps.schemas)
    outcome = await bus.handle(StoreReportPage(partner, header, entries, "partner"))
    return answer(header.message_id, outcome)


EXCEPTION_EDGES["camt.053"] = report_edge
EXCEPTION_EDGES["camt.054"] = report_edge


# ----------------------------------------------------------------------------- operations API


def _json_value(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, tuple):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    return v.value if hasattr(v, "value") and not isinstance(v, (int, str)) else v


def cycle_json(c: SettlementCycle) -> dict[str, Any]:
    d = {k: _json_value(getattr(c, k)) for k in c.__dataclass_fields__}
    d["summary"] = json.loads(c.summary) if c.summary else None  # stored as JSON text
    d["report_complete"] = c.report_complete
    return d


def break_json(b: Break) -> dict[str, Any]:
    d = {k: _json_value(getattr(b, k)) for k in b.__dataclass_fields__ if k != "history"}
    d["history"] = [{"at": e.at.isoformat(), "state": e.state.value, "actor": e.actor, "text": e.text} for e in b.history]
    return d


def _bus(request: web.Request) -> MessageBus:
    from switch.entrypoints.http_app import BUS

    return request.app[BUS]


def _int(request: web.Request, name: str, default: int, maximum: int) -> int:
    try:
        return max(1, min(maximum, int(request.query.get(name, default))))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number") from None


async def list_cycles(request: web.Request) -> web.Response:
    bus = _bus(request)
    partner = request.query.get("partner") or None
    async with bus.reader() as uow:
        cycles = await uow.cycles_list(partner, _int(request, "limit", 50, cycles_listed_max))
    return web.json_response({"cycles": [cycle_json(c) for c in cycles]})


async def get_cycle(request: web.Request) -> web.Response:
    bus = _bus(request)
    cycle_id = request.match_info["cycle_id"][:80]
    async with bus.reader() as uow:
        cycle = (await uow.cycles_get([cycle_id])).get(cycle_id)
        if cycle is None:
            return web.json_response({"reason_code": "NARR", "error": f"no cycle {cycle_id}"}, status=404)
        pages = await uow.report_pages(cycle_id)
        breaks = await uow.breaks_list(cycle_id, None, False, limits.recon_breaks_listed_max)
    return web.json_response(
        {**cycle_json(cycle), "report_pages_detail": [_json_value(p) for p in pages], "breaks_detail": [break_json(b) for b in breaks]}
    )


async def list_breaks(request: web.Request) -> web.Response:
    bus = _bus(request)
    async with bus.reader() as uow:
        breaks = await uow.breaks_list(
            request.query.get("cycle") or None, request.query.get("partner") or None,
            request.query.get("open") in ("1", "true", "yes"), _int(request, "limit", 200, limits.recon_breaks_listed_max),
        )
    return web.json_response({"breaks": [break_json(b) for b in breaks]})


async def resolve_break(request: web.Request) -> web.Response:
    """Operators only (api_auth lets no other role POST)."""
    bus = _bus(request)
    principal = request[api_auth.PRINCIPAL]
    try:
        doc = await request.json()
        note = str(doc["note"]).strip()
        write_off = bool(doc.get("write_off", False))
    except (ValueError, KeyError, TypeError):
        return web.json_response({"reason_code": "FF01", "error": 'body must be JSON {"note": "...", "write_off": false}'}, status=400)
    if not note or len(note) > 1000:
        return web.json_response({"reason_code": "FF01", "error": "a note of 1 to 1000 characters is required"}, status=400)
    break_id = request.match_info["break_id"][:40]
    outcome = await bus.handle(ResolveBreak(break_id, principal.name, note, write_off))
    if outcome.refusals:
        code, detail = outcome.refusals[0]
        return web.json_response({"reason_code": code, "error": detail}, status=404 if code == "NOTFOUND" else 409)
    async with bus.reader() as uow:
        b = (await uow.breaks_get([break_id]))[break_id]
    return web.json_response(break_json(b))


async def import_report(request: web.Request) -> web.Response:
    """An operator imports a report page the partner delivered out of band (a file)."""
    bus = _bus(request)
    principal = request[api_auth.PRINCIPAL]
    partner = request.query.get("partner", "")
    if partner not in bus.deps.mappings:
        return web.json_response({"reason_code": "RC01", "error": f"unknown partner {partner[:35]!r}"}, status=404)
    expected = _expected_report(bus, partner)
    if expected is None:
        return web.json_response({"reason_code": "FF01", "error": f"{partner} has no settlement profile"}, status=400)
    with tempfile.NamedTemporaryFile(prefix="mekong-report-") as spool:
        size = 0
        async for chunk in request.content.iter_chunked(import_chunk_bytes):
            size += len(chunk)
            if size > report_file_bytes_max:
                return web.json_response({"reason_code": "FF01", "error": "report file too large"}, status=413)
            spool.write(chunk)
        spool.flush()
        try:
            header, entries = await asyncio.get_running_loop().run_in_executor(
                report_readers(), read_page_file, spool.name, str(bus.deps.schemas.schema_dir)
            )
        except XmlRejected as exc:
            return web.json_response({"reason_code": exc.reason_code, "error": exc.message}, status=400)
    if header.message_type != expected:
        return web.json_response({"reason_code": "FF01", "error": f"{partner} reports in {expected}, not {header.message_type}"}, status=400)
    outcome = await bus.handle(StoreReportPage(partner, header, entries, f"operator {principal.name}"))
    return answer(header.message_id, outcome)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/recon/cycles", list_cycles)
    app.router.add_get("/v1/recon/cycles/{cycle_id}", get_cycle)
    app.router.add_get("/v1/recon/breaks", list_breaks)
    app.router.add_post("/v1/recon/breaks/{break_id}/resolve", resolve_break)
    app.router.add_post("/v1/recon/reports", import_report)
