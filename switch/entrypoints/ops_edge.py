"""The operator's toolbox on the operations port (issue 11 item 3): translate, dispatch, answer.

  GET  /v1/payments                  search: state, corridor, participant, partner, reason, since,
                                     until (ISO 8601 or 15m / 1h / 7d back from now), limit, cursor;
                                     newest first, keyset pages ({"payments", "next_cursor"})
  GET  /v1/payments/{uetr}/messages  the messages sent and received for one payment (bodies with
                                     ?bodies=1, card numbers masked)
  POST /v1/payments/{uetr}/resolve   {"action": "enquire" | "resend" | "mark", "state", "reason_code",
                                     "note"}: operators only, a note required, audited
  GET  /v1/dlq                       the newest dead letters (?reason=, ?limit=)
  GET  /v1/dlq/{partition}/{offset}  one dead letter, its record (card numbers masked)
  POST /v1/dlq/replay                {"refs": ["0:12", ...]} or {"all": true, "reason": "FF02"}:
                                     each original again to its topic, once; operators only, audited
  GET  /v1/openapi.json              the OpenAPI document of the whole HTTP API (openapi.json)

Roles as api_auth.py: operators act; auditors read; a participant reads only its own payments (a
search is narrowed to them; another's payment is a 404) and no dead letters (they hold other
participants' records); monitors nothing here. Refusals are {"reason_code", "error"}.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any, Final

from aiohttp import web

from switch import limits
from switch.domain.payment import PaymentState
from switch.entrypoints import api_auth
from switch.entrypoints.dead_letters import DeadLetters, DeadLetterView, masked_text, parse_ref
from switch.entrypoints.http_app import BUS, _reject, payment_json, read_body_bounded
from switch.service.enquiries import EnquirePayment
from switch.service.operations import (
    ClaimDlqReplays,
    FinishDlqReplays,
    MarkPayment,
    ReplayResult,
    ReplayTarget,
    ResendPayment,
    find_payments,
    note_chars_max,
    payment_dossier,
)
from switch.service.ports import PaymentQuery

log = logging.getLogger(__name__)
DEAD_LETTERS = web.AppKey("dead_letters", DeadLetters)
_AGO: Final = re.compile(r"(\d{1,6})([smhd])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_MESSAGE_TYPE: Final = re.compile(rb"urn:iso:std:iso:20022:tech:xsd:([a-z]{4}\.[0-9]{3}\.[0-9]{3}\.[0-9]{2})")
body_bytes_max: Final = 256 * 1024  # of a resolve or replay request


class BadRequest(ValueError):
    """A query or body the API cannot take: answered 400 FF01 with the message."""


def parse_time(text: str, now: datetime) -> datetime:
    """An ISO 8601 time (with its offset), or a span back from now: 90s, 15m, 1h, 7d."""
    if (m := _AGO.fullmatch(text.strip())) is not None:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(f"not a time: {text[:40]!r} (ISO 8601 with its offset, or 15m, 1h, 7d back)") from None
    if at.tzinfo is None:
        raise BadRequest(f"a time needs its offset (e.g. {text[:25]}+00:00 or Z)")
    return at


def encode_cursor(at: datetime, uetr: str) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{uetr}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, _, uetr = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
        return datetime.fromisoformat(at), uetr[:36]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("not a cursor this API gave") from None


def _int(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be a whole number {low}..{high}")
    return int(text)


def payment_query(request: web.Request, now: datetime) -> PaymentQuery | None:
    """The search the query string asks for, narrowed to the caller's own payments for a
    participant; None for a participant asking for another's (an empty page, as if none)."""
    q = request.query
    known = {"state", "corridor", "participant", "partner", "reason", "since", "until", "limit", "cursor"}
    if unknown := sorted(set(q) - known):
        raise BadRequest(f"unknown parameter {unknown[0][:30]!r}; known: {', '.join(sorted(known))}")
    state = None
    if q.get("state"):
        try:
            state = PaymentState(q["state"].upper())
        except ValueError:
            raise BadRequest(f"state must be one of {', '.join(s.value for s in PaymentState)}") from None
    principal = request[api_auth.PRINCIPAL]
    participant = q.get("participant") or None
    if principal.role is api_auth.Role.PARTICIPANT:
        participant = principal.participant  # its own, whatever it asked for (another's: as if none)
        if q.get("participant") and q["participant"] != principal.participant:
            api_auth.may_see(request, q["participant"])  # counted and logged as a refusal
            return None
    return PaymentQuery(
        limit=_int(q.get("limit"), "limit", limits.payments_page_default, 1, limits.payments_page_max),
        state=state,
        corridor=(q.get("corridor") or None),
        participant=participant,
        partner=(q.get("partner") or None),
        reason_code=(q.get("reason") or "").upper() or None,
        since=parse_time(q["since"], now) if q.get("since") else None,
        until=parse_time(q["until"], now) if q.get("until") else None,
        before=decode_cursor(q["cursor"]) if q.get("cursor") else None,
    )


def payment_row(p: Any) -> dict[str, Any]:
    """A payment as one line of a list: payment_json without party details and history."""
    full = payment_json(p, [], [])
    return {k: full[k] for k in ("uetr", "instruction_id", "participant", "corridor", "partner", "direction", "state", "final",
                                 "reason_code", "source_amount", "target_amount", "created_at", "updated_at")}


async def list_payments(request: web.Request) -> web.Response:
    bus = request.app[BUS]
    try:
        query = payment_query(request, bus.deps.clock())
    except BadRequest as exc:
        return _reject(400, "FF01", str(exc))
    if query is None:
        return web.json_response({"payments": [], "next_cursor": None})
    async with bus.reader() as uow:
        found = await find_payments(uow, query)
    next_cursor = encode_cursor(found[-1].created_at, found[-1].uetr) if len(found) == query.limit else None
    return web.json_response({"payments": [payment_row(p) for p in found], "next_cursor": next_cursor})


def message_type_of(body: bytes) -> str | None:
    """The ISO 20022 message a body is (its Document's namespace; an envelope's header skipped),
    "status event" for the JSON of the status topic."""
    for m in _MESSAGE_TYPE.finditer(body[:4096]):
        name = m.group(1).decode()
        if not name.startswith("head."):
            return name
    return "status event" if body[:1] == b"{" else None


async def payment_messages(request: web.Request) -> web.Response:
    bus = request.app[BUS]
    uetr = request.match_info["uetr"][:64]
    bodies = request.query.get("bodies", "") in ("1", "true", "yes")
    async with bus.reader() as uow:
        dossier = await payment_dossier(uow, uetr)
    if dossier is None or not api_auth.may_see(request, dossier.payment.participant):
        return _reject(404, "MS03", f"no payment with UETR {uetr}")
    return web.json_response({
        "uetr": uetr,
        "messages": [
            {
                "direction": m.direction,
                "kind": m.kind,
                "counterpart": m.counterpart,
                "message_id": m.message_id,
                "message_type": message_type_of(m.body),
                "at": m.at.isoformat(),
                "delivered_at": m.delivered_at.isoformat() if m.delivered_at else None,
                "attempts": m.attempts,
                "bytes": len(m.body),
                **({"body": masked_text(m.body)} if bodies else {}),
            }
            for m in dossier.messages
        ],
    })


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await read_body_bounded(request, body_bytes_max)
    if raw is None:
        raise BadRequest(f"request body is over {body_bytes_max} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise BadRequest("the body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


async def resolve_payment(request: web.Request) -> web.Response:
    """POST /v1/payments/{uetr}/resolve: enquire, resend or mark, with a note; 200 with the
    payment as it is now (202 for an enquiry: the answer comes later), 400 FF01, 404 MS03,
    409 AG01 (not from this state)."""
    bus = request.app[BUS]
    uetr = request.match_info["uetr"][:64]
    operator = request[api_auth.PRINCIPAL].name
    try:
        body = await _json_body(request)
        action, note = body.get("action"), body.get("note")
        if not isinstance(note, str) or not note.strip() or len(note) > note_chars_max:
            raise BadRequest(f"a note (why, 1..{note_chars_max} characters) is required")
        if action == "enquire":
            cmd: Any = EnquirePayment(uetr, operator, note.strip())
        elif action == "resend":
            cmd = ResendPayment(uetr, operator, note.strip())
        elif action == "mark":
            try:
                target = PaymentState(str(body.get("state", "")).upper())
            except ValueError:
                raise BadRequest("mark needs a state (REJECTED or COMPLETED)") from None
            reason_code = body.get("reason_code")
            if reason_code is not None and not isinstance(reason_code, str):
                raise BadRequest("reason_code must be a string")
            cmd = MarkPayment(uetr, target, reason_code.upper() if reason_code else None, note.strip(), operator)
        else:
            raise BadRequest("action must be enquire, resend or mark")
    except BadRequest as exc:
        return _reject(400, "FF01", str(exc))
    outcome = await bus.handle(cmd)
    if outcome.refusals:
        code, detail = outcome.refusals[0]
        return _reject({"MS03": 404, "FF01": 400}.get(code, 409), code, detail)
    log.info("operator %s: %s on payment %s", operator, action, uetr)
    async with bus.reader() as uow:
        p = (await uow.payments_get([uetr]))[uetr]
        cases = (await uow.cases_of([uetr])).get(uetr, [])
        answer = {"action": action, "payment": payment_json(p, await uow.history_of(uetr), cases)}
    return web.json_response(answer, status=202 if action == "enquire" else 200)


# ---------------------------------------------------------------- dead letters


def _dead_letters(request: web.Request) -> DeadLetters | web.Response:
    """The dead-letter reader, or the refusal: operators and auditors only (`_no_participants`),
    and a process without one (503)."""
    if (refused := _no_participants(request)) is not None:
        return refused
    dead_letters = request.app.get(DEAD_LETTERS)
    if dead_letters is None:
        return _reject(503, "FF01", "the dead-letter topic is not reachable from this process")
    return dead_letters


def _no_participants(request: web.Request) -> web.Response | None:
    """Dead letters hold every participant's records: operators and auditors only."""
    principal = request[api_auth.PRINCIPAL]
    if principal.role in (api_auth.Role.OPERATOR, api_auth.Role.AUDITOR):
        return None
    return _reject(403, "AG01", f"role {principal.role} may not read dead letters")


async def list_dead_letters(request: web.Request) -> web.Response:
    dead_letters = _dead_letters(request)
    if isinstance(dead_letters, web.Response):
        return dead_letters
    try:
        limit = _int(request.query.get("limit"), "limit", 50, 1, limits.dlq_listed_max)
    except BadRequest as exc:
        return _reject(400, "FF01", str(exc))
    found = await dead_letters.newest(limit, (request.query.get("reason") or "")[:100] or None)
    return web.json_response({"topic": dead_letters.topic, "dead_letters": [d.summary() for d in found]})


async def show_dead_letter(request: web.Request) -> web.Response:
    dead_letters = _dead_letters(request)
    if isinstance(dead_letters, web.Response):
        return dead_letters
    try:
        partition, offset = parse_ref(f"{request.match_info['partition']}:{request.match_info['offset']}")
    except ValueError:
        return _reject(400, "FF01", "partition and offset are whole numbers")
    found = await dead_letters.get(partition, offset)
    if found is None:
        return _reject(404, "MS03", f"no dead letter at {partition}:{offset} of {dead_letters.topic}")
    async with request.app[BUS].reader() as uow:
        replay = (await uow.dlq_replays_get([(dead_letters.topic, partition, offset)])).get((dead_letters.topic, partition, offset))
    return web.json_response({**found.detail(), "replay": _replay_json(replay)})


def _replay_json(r: Any) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"state": r.state, "operator": r.operator, "topic": r.target_topic, "partition": r.target_partition,
            "offset": r.target_offset, "claimed_at": r.claimed_at.isoformat(),
            "replayed_at": r.replayed_at.isoformat() if r.replayed_at else None}


async def replay_dead_letters(request: web.Request) -> web.Response:
    """POST /v1/dlq/replay: each dead letter asked for, once. 200 with one result per dead letter
    (outcome replayed, already_replayed, truncated, not_found, failed)."""
    bus = request.app[BUS]
    dead_letters = _dead_letters(request)
    if isinstance(dead_letters, web.Response):
        return dead_letters
    operator = request[api_auth.PRINCIPAL].name
    try:
        body = await _json_body(request)
        if body.get("all"):
            reason = body.get("reason")
            if not isinstance(reason, str) or not reason:
                raise BadRequest("replaying all needs a reason (a reason code or words of the reason)")
            views: list[DeadLetterView | tuple[int, int]] = list(await dead_letters.newest(limits.dlq_listed_max, reason))
        else:
            refs = body.get("refs")
            if not isinstance(refs, list) or not refs or len(refs) > limits.dlq_replay_batch_max:
                raise BadRequest(f"refs: 1..{limits.dlq_replay_batch_max} dead letters as \"PARTITION:OFFSET\"")
            try:
                wanted = [parse_ref(str(r)) for r in refs]
            except ValueError:
                raise BadRequest("refs are \"PARTITION:OFFSET\" (or OFFSET for partition 0)") from None
            views = []
            for partition, offset in dict.fromkeys(wanted):
                views.append(await dead_letters.get(partition, offset) or (partition, offset))
    except BadRequest as exc:
        return _reject(400, "FF01", str(exc))
    results: list[dict[str, Any]] = []
    targets: dict[tuple[str, int, int], DeadLetterView] = {}
    metrics = bus.deps.metrics
    for v in views:
        if isinstance(v, tuple):
            metrics.dlq_replayed.labels("not_found").inc()
            results.append({"ref": f"{v[0]}:{v[1]}", "outcome": "not_found", "detail": f"no dead letter there in {dead_letters.topic}"})
        elif v.truncated or not v.source_topic:
            metrics.dlq_replayed.labels("truncated").inc()
            results.append({"ref": v.ref, "outcome": "truncated",
                            "detail": f"only part of the original was kept ({', '.join(v.truncated) or 'no source'}): "
                                      "it cannot be replayed; ask its sender to send it again"})
        else:
            targets[(dead_letters.topic, v.partition, v.offset)] = v
    if targets:
        claims = await bus.handle(ClaimDlqReplays(
            [ReplayTarget(t, p, o, v.source_topic or "") for (t, p, o), v in targets.items()], operator))
        for r in claims.refused:  # type: ignore[attr-defined]
            results.append({"ref": f"{r.partition}:{r.offset}", "outcome": "already_replayed",
                            "detail": f"already replayed by {r.operator} at {(r.replayed_at or r.claimed_at).isoformat()}",
                            "replay": _replay_json(r)})
        finished: list[ReplayResult] = []
        for claim in claims.claimed:  # type: ignore[attr-defined]
            try:
                partition, offset = await dead_letters.republish(targets[claim.key])
                finished.append(ReplayResult(claim, partition, offset))
            except Exception as exc:  # noqa: BLE001 - the broker did not take it: the claim is released
                log.warning("replay of dead letter %s:%s failed: %s", claim.partition, claim.offset, type(exc).__name__)
                finished.append(ReplayResult(claim, None, None, type(exc).__name__))
        await bus.handle(FinishDlqReplays(finished, operator))
        for f in finished:
            ref = f"{f.claim.partition}:{f.claim.offset}"
            if f.error is None:
                results.append({"ref": ref, "outcome": "replayed", "topic": f.claim.target_topic,
                                "partition": f.target_partition, "offset": f.target_offset})
            else:
                results.append({"ref": ref, "outcome": "failed", "detail": f"the broker did not take it ({f.error}); try again"})
    return web.json_response({"topic": dead_letters.topic, "results": results})


# ---------------------------------------------------------------- OpenAPI


@cache
def openapi_document() -> bytes:
    """The OpenAPI 3.1 document kept in the package (switch/entrypoints/openapi.json)."""
    return resources.files("switch.entrypoints").joinpath("openapi.json").read_bytes()


async def openapi(_request: web.Request) -> web.Response:
    return web.Response(body=openapi_document(), content_type="application/json")


def add_routes(app: web.Application, dead_letters: DeadLetters | None) -> None:
    """The toolbox's routes on the operations app (build_ops_app), before it is frozen."""
    if dead_letters is not None:
        app[DEAD_LETTERS] = dead_letters
    app.router.add_get("/v1/payments", list_payments)
    app.router.add_get("/v1/payments/{uetr}/messages", payment_messages)
    app.router.add_post("/v1/payments/{uetr}/resolve", resolve_payment)
    app.router.add_get("/v1/dlq", list_dead_letters)
    app.router.add_get("/v1/dlq/{partition}/{offset}", show_dead_letter)
    app.router.add_post("/v1/dlq/replay", replay_dead_letters)
    app.router.add_get("/v1/openapi.json", openapi)

