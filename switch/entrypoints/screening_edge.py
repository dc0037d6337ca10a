"""Screening holds on the operations port (issue 12 item 5): translate, dispatch, answer.

  GET  /v1/screening/holds?open=true|false  held payments (open ones by default, oldest first):
                                            score, entry, held_at, deadline, decision
  GET  /v1/screening/holds/{uetr}           one hold, with its payment's state
  POST /v1/screening/holds/{uetr}/release   {"note": "..."}: the payment goes on its way
  POST /v1/screening/holds/{uetr}/reject    {"note": "..."}: REJECTED RR04
  POST /v1/screening/reload                 the screening list again, without a restart

Roles as api_auth.py: operators decide (every POST); auditors read. A hold names a list entry and
a score, which a participant must never learn (tipping-off): participants and monitors are
refused. Refusals are {"reason_code", "error"}: 400 FF01 (no note), 404 MS03 (unknown), 409 AG01
(not held any more: another operator decided first, or the deadline passed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from switch.entrypoints import api_auth
from switch.entrypoints.http_app import BUS, _reject
from switch.entrypoints.ops_edge import BadRequest, _int, _json_body
from switch.service.audit import audit
from switch.service.handlers import Outcome
from switch.service.holds import HeldPayment, RejectHeld, ReleaseHeld, holds_page_max, list_holds, note_chars_max, show_hold

log = logging.getLogger(__name__)
RELOAD_ACTION = "screening.reload"


def _staff_only(request: web.Request) -> web.Response | None:
    principal = request[api_auth.PRINCIPAL]
    if principal.role in (api_auth.Role.OPERATOR, api_auth.Role.AUDITOR):
        return None
    return _reject(403, "AG01", f"role {principal.role} may not read screening holds")


def hold_json(held: HeldPayment) -> dict[str, Any]:
    h, p = held.hold, held.payment
    return {
        "uetr": h.uetr,
        "direction": h.direction,
        "state": p.state.value if p else None,
        "participant": p.participant if p else None,
        "partner": p.partner if p else None,
        "corridor": p.corridor if p else None,
        "outcome": h.outcome,
        "score": h.score,
        "entry_id": h.entry_id,
        "entry_name": h.entry_name,
        "matched_name": h.matched_name,
        "role": h.role,
        "datasets": list(h.datasets),
        "list_version": h.list_version,
        "detail": h.detail,
        "held_at": h.held_at.isoformat(),
        "deadline_at": h.deadline_at.isoformat(),
        "decision": h.decision,
        "decided_by": h.decided_by,
        "decided_at": h.decided_at.isoformat() if h.decided_at else None,
        "note": h.note,
    }


async def get_holds(request: web.Request) -> web.Response:
    if (refused := _staff_only(request)) is not None:
        return refused
    flag = request.query.get("open", "true").lower()
    if flag not in ("true", "false", "1", "0"):
        return _reject(400, "FF01", "open must be true or false")
    try:
        limit = _int(request.query.get("limit"), "limit", 100, 1, holds_page_max)
    except BadRequest as exc:
        return _reject(400, "FF01", str(exc))
    async with request.app[BUS].reader() as uow:
        found = await list_holds(uow, open_only=flag in ("true", "1"), limit=limit)
    return web.json_response({"holds": [hold_json(h) for h in found]})


async def get_hold(request: web.Request) -> web.Response:
    if (refused := _staff_only(request)) is not None:
        return refused
    uetr = request.match_info["uetr"][:64]
    async with request.app[BUS].reader() as uow:
        found = await show_hold(uow, uetr)
    if found is None:
        return _reject(404, "MS03", f"no screening hold for UETR {uetr}")
    return web.json_response(hold_json(found))


async def _decide(request: web.Request, decision: str) -> web.Response:
    bus = request.app[BUS]
    uetr = request.match_info["uetr"][:64]
    operator = request[api_auth.PRINCIPAL].name
    try:
        body = await _json_body(request)
        note = body.get("note")
        if not isinstance(note, str) or not note.strip() or len(note) > note_chars_max:
            raise BadRequest(f"a note (why, 1..{note_chars_max} characters) is required")
    except BadRequest as exc:
        return _reject(400, "FF01", str(exc))
    cmd: Any = ReleaseHeld(uetr, operator, note.strip()) if decision == "release" else RejectHeld(uetr, operator, note.strip())
    outcome = await bus.handle(cmd)
    if outcome.refusals:
        code, detail = outcome.refusals[0]
        return _reject({"MS03": 404, "FF01": 400}.get(code, 409), code, detail)
    log.info("operator %s: screening hold %s on payment %s", operator, decision, uetr)
    async with bus.reader() as uow:
        found = await show_hold(uow, uetr)
    assert found is not None
    return web.json_response(hold_json(found))


async def release(request: web.Request) -> web.Response:
    return await _decide(request, "release")


async def reject(request: web.Request) -> web.Response:
    return await _decide(request, "reject")


async def reload_list(request: web.Request) -> web.Response:
    """The screener's list again (its reload()); 503 when screening is off, 422 when the new list
    does not load (the list in force stays)."""
    bus = request.app[BUS]
    screener = bus.deps.screener
    if screener is None:
        return _reject(503, "FF01", "screening is off on this switch ([screening] enabled = false)")
    operator = request[api_auth.PRINCIPAL].name
    try:
        in_force = await asyncio.to_thread(screener.reload)  # the embedded list loads off the event loop
        applied = True
    except ValueError as exc:
        in_force, applied = f"refused, the list in force stays: {str(exc)[:500]}", False

    async def audited(uow: Any) -> Outcome:
        await audit(uow, at=bus.deps.clock(), actor=f"operator {operator}", action=RELOAD_ACTION, subject="screening list",
                    detail={"applied": applied, "list": in_force})
        return Outcome()

    await bus.in_transaction(audited, name="ScreeningReload")
    if not applied:
        return _reject(422, "FF01", in_force)
    log.info("operator %s: screening list reloaded: %s", operator, in_force)
    return web.json_response({"applied": True, "list": in_force})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/screening/holds", get_holds)
    app.router.add_get("/v1/screening/holds/{uetr}", get_hold)
    app.router.add_post("/v1/screening/holds/{uetr}/release", release)
    app.router.add_post("/v1/screening/holds/{uetr}/reject", reject)
    app.router.add_post("/v1/screening/reload", reload_list)
