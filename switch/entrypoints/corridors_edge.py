"""Corridors and partners at run time on the operations API (issue 11; docs/operations/corridors.md).

- GET  /v1/corridors                          every corridor: state (enabled, disabled by whom
                                              and why, off in the configuration), its partner's
                                              pause, hours and whether open now, limits, fee and
                                              tiers; and every partner's pause. Every /v1 role
                                              reads (a participant without who changed what)
- POST /v1/corridors/{id}/disable|enable      {"reason": "..."} (required to disable); audited
- POST /v1/partners/{partner}/pause|resume    {"reason": "..."} (required to pause); audited
- POST /v1/config/reload                      re-read the config directory and apply corridors,
                                              tiers, hours, fees and the static FX table (as
                                              SIGHUP does); 200 applied, 422 refused with the
                                              problems (the running configuration stays)
POSTs are operators' only (api_auth). Refusals are the JSON of every other one: 400 FF01 a body
that is not {"reason": ...}, 404 RC01 an unknown corridor or partner, 409 AG01 a corridor that
corridors.toml has off.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from switch import limits
from switch.config import Corridor, SwitchConfig
from switch.domain.corridor_rules import Control, ControlKind, Controls
from switch.domain.money import CURRENCIES, Money
from switch.entrypoints import api_auth
from switch.service.bus import MessageBus
from switch.service.corridors import SwitchCorridor, SwitchPartner

# after a change on this replica: read the controls again now (relay, gauges), not within a second
CONTROLS_CHANGED = web.AppKey("controls_changed", Callable[[], Awaitable[None]])
# the composition root's reload: (actor) -> {"applied": bool, ...}
RELOAD = web.AppKey("reload_config", Callable[[str], Awaitable[dict[str, Any]]])


def _bus(request: web.Request) -> MessageBus:
    from switch.entrypoints.http_app import BUS

    return request.app[BUS]


def _refuse(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"reason_code": code, "error": message}, status=status)


def _text(m: Money) -> str:
    return m.to_text(m.currency.decimals_accepted_max)


def _minor(amount_minor: int | None, code: str) -> str | None:
    if amount_minor is None:
        return None
    m = Money(amount_minor, CURRENCIES[code])
    return m.to_text(m.currency.decimals_accepted_max)


def _control_json(c: Control | None, *, who: bool) -> dict[str, Any] | None:
    if c is None:
        return None
    shown: dict[str, Any] = {"off": c.off, "changed_at": c.changed_at.isoformat(), "version": c.version}
    if who:  # operators and auditors: who changed it and why
        shown |= {"changed_by": c.changed_by, "reason": c.reason}
    return shown


def corridor_json(cfg: SwitchConfig, c: Corridor, controls: Controls, *, now: Any, who: bool) -> dict[str, Any]:
    control = controls.items.get((ControlKind.CORRIDOR, c.id))
    partner_control = controls.items.get((ControlKind.PARTNER, c.partner))
    disabled = control is not None and control.off
    state = "disabled_in_config" if not c.enabled else "disabled" if disabled else "enabled"
    hours = cfg.corridor_hours(c.id)
    closed = hours.refusal(now) if hours is not None else None
    tiers: dict[str, Any] = {}
    for name in cfg.tiers:
        per_ccy = {}
        for code in c.source_currencies:
            t = cfg.tier_limits(c, name, code)
            assert t is not None
            per_ccy[code] = {"tx_max": _minor(t.tx_max_minor, code), "day_max": _minor(t.day_max_minor, code)}
        tiers[name] = per_ccy
    return {
        "id": c.id,
        "partner": c.partner,
        "state": state,
        "takes_instructions": state == "enabled" and not (partner_control and partner_control.off) and closed is None,
        "control": _control_json(control, who=who),
        "partner_paused": bool(partner_control and partner_control.off),
        "source_currencies": list(c.source_currencies),
        "target_currency": c.target_currency,
        "timezone": c.timezone,
        "hours": {d: list(w) for d, w in c.hours.items()} if c.hours is not None else "24/7",
        "holidays": c.holidays,
        "open_now": closed is None,
        "closed_because": closed.detail if closed is not None else None,
        "amount_max": {code: _text(c.amount_max_money(code)) for code in c.source_currencies},
        "fee": {code: _text(c.fee_money(code)) for code in c.source_currencies},
        "spread_bps": c.spread_bps,
        "default_tier": c.default_tier,
        "tiers": tiers,
    }


async def list_corridors(request: web.Request) -> web.Response:
    bus = _bus(request)
    principal = request[api_auth.PRINCIPAL]
    who = principal.role in (api_auth.Role.OPERATOR, api_auth.Role.AUDITOR)
    async with bus.reader() as uow:
        controls = Controls.of(await uow.controls_get())
    cfg, now = bus.deps.config, bus.deps.clock()
    partners = sorted(bus.deps.mappings)
    return web.json_response({
        "corridors": [corridor_json(cfg, c, controls, now=now, who=who) for c in cfg.corridors],
        "partners": [
            {"partner": p, "paused": controls.off(ControlKind.PARTNER, p) is not None,
             "control": _control_json(controls.items.get((ControlKind.PARTNER, p)), who=who)}
            for p in partners
        ],
        "usage_timezone": cfg.usage_timezone,
    })


async def _reason(request: web.Request, required: bool) -> str | web.Response:
    try:
        raw = await request.read()
        doc = json.loads(raw) if raw.strip() else {}
        reason = str(doc.get("reason", "")).strip() if isinstance(doc, dict) else None
    except ValueError:
        reason = None
    if reason is None or (required and not reason) or len(reason) > limits.control_reason_chars_max:
        need = "a reason" if required else "an optional reason"
        return _refuse(400, "FF01", f'body must be JSON {{"reason": "..."}} with {need} of at most {limits.control_reason_chars_max} characters')
    return reason


async def _answer(request: web.Request, outcome: Any) -> web.Response | None:
    if outcome.refusals:
        code, detail = outcome.refusals[0]
        return _refuse(404, "RC01", detail) if code == "NOTFOUND" else _refuse(409, "AG01", detail)
    changed = request.app.get(CONTROLS_CHANGED)
    if changed is not None:
        await changed()
    return None


async def switch_corridor(request: web.Request) -> web.Response:
    bus = _bus(request)
    enable = request.match_info["action"] == "enable"
    reason = await _reason(request, required=not enable)
    if isinstance(reason, web.Response):
        return reason
    corridor_id = request.match_info["corridor"][:16]
    outcome = await bus.handle(SwitchCorridor(corridor_id, enable, request[api_auth.PRINCIPAL].name, reason))
    refused = await _answer(request, outcome)
    if refused is not None:
        return refused
    async with bus.reader() as uow:
        controls = Controls.of(await uow.controls_get())
    corridor = bus.deps.config.corridor(corridor_id)
    assert corridor is not None
    return web.json_response(corridor_json(bus.deps.config, corridor, controls, now=bus.deps.clock(), who=True))


async def switch_partner(request: web.Request) -> web.Response:
    bus = _bus(request)
    pause = request.match_info["action"] == "pause"
    reason = await _reason(request, required=pause)
    if isinstance(reason, web.Response):
        return reason
    partner = request.match_info["partner"][:35]
    outcome = await bus.handle(SwitchPartner(partner, pause, request[api_auth.PRINCIPAL].name, reason))
    refused = await _answer(request, outcome)
    if refused is not None:
        return refused
    async with bus.reader() as uow:
        control = Controls.of(await uow.controls_get()).items.get((ControlKind.PARTNER, partner))
    corridors = [c.id for c in bus.deps.config.corridors if c.partner == partner]
    return web.json_response({"partner": partner, "paused": pause, "corridors": corridors, "control": _control_json(control, who=True)})


async def reload_config(request: web.Request) -> web.Response:
    reload = request.app.get(RELOAD)
    if reload is None:
        return _refuse(503, "NARR", "this switch cannot reload its configuration")
    result = await reload(f"operator {request[api_auth.PRINCIPAL].name}")
    return web.json_response(result, status=200 if result["applied"] else 422)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/corridors", list_corridors)
    app.router.add_post(r"/v1/corridors/{corridor}/{action:disable|enable}", switch_corridor)
    app.router.add_post(r"/v1/partners/{partner}/{action:pause|resume}", switch_partner)
    app.router.add_post("/v1/config/reload", reload_config)
