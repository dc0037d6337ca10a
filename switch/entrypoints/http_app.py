"""The switch's HTTP faces (aiohttp), on two ports.

The partner port (build_partner_app; mutual TLS, switch/tls.py) serves only:
  POST /iso20022/{partner}   a partner's ISO 20022 message: a pacs.002 (status of our pacs.008;
                             200 once durable) or a pacs.008 (an inbound payment; 202 once
                             booked, the answer follows as a pacs.002); 400 with an ISO reason
                             code for anything refused; 413 FF01 for a body over
                             limits.http_body_bytes_max (refused from Content-Length, or while
                             streaming a chunked body, never buffered whole);
                             403 when the client certificate is not {partner}'s (nothing read).
                             From a partner that signs (its profile's [signing]) the body is a
                             signed business message (iso20022/apphdr.py): AppHdr and signature
                             are checked before anything is applied, then its Document goes on
                             as before; a refusal is 400 / 403 / 409 with the reason code of
                             apphdr.REFUSALS (DS0A, DS0B, DS0E, DT02, DU01, ...);
                             429 SL15 with Retry-After when the partner is over its rate
                             limit (abuse_limits.py; nothing read, counted, not audited)

The operations port (build_ops_app; TLS with optional client certificates, loopback by default) serves:
  GET  /v1/payments/{uetr}   state and history of one payment (card numbers masked)
  GET  /v1/instructions/{participant}/{instruction_id}   the same, by the participant's id
  POST /v1/quotes, GET /v1/fx/rates   FX quotes asked for first, the rates in force (issue 11,
                             quotes_edge.py); a participant may POST a quote for itself
  POST /v1/payments/{uetr}/enquiry   an operator's status enquiry (pacs.028) about one outbound
                             payment: 202 with the case, 404, 409 when final or inbound (issue 9)
                             /v1/*: a bearer token or a client certificate, and a role
                             (api_auth.py): 401, 403, and 404 for another participant's payment
  GET  /v1/corridors, POST /v1/corridors/{id}/disable|enable, /v1/partners/{p}/pause|resume,
  POST /v1/config/reload     corridors and partners at run time (issue 11, corridors_edge.py)
  /v1/payments (search), /v1/payments/{uetr}/messages, /v1/payments/{uetr}/resolve, /v1/dlq...,
  /v1/openapi.json           the operator's toolbox (issue 11): ops_edge.py
  GET  /metrics              Prometheus (operator, auditor or monitor: 401 / 403 otherwise)
  GET  /healthz              the process is alive (open: probes)
  GET  /readyz               the database answers and the Kafka edge is running (open: probes)

Every refusal, aiohttp's own 404/405 included, is JSON: {"reason_code": ..., "error": ...}.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters.inbound import read_pacs008
from iso20022 import apphdr
from iso20022.errors import SchemaViolation, XmlRejected
from iso20022.parsing import message_id_of, parse_untrusted
from switch import limits
from switch.log_context import payment_context, uetrs_field
from switch.domain.case import Case
from switch.domain.money import Money
from switch.domain.pan import shown
from switch.domain.payment import FINAL_STATES, HistoryEntry, Payment
from switch.entrypoints.abuse_limits import install_partner_limits, refuse_over_rate
from switch.entrypoints.audit_edge import audited_refusals
from switch.entrypoints import api_auth
from switch.entrypoints.exception_edges import EXCEPTION_EDGES
from switch.entrypoints import corridors_edge, quotes_edge, settlement_edge
from switch.service import events
from switch.service.bus import MessageBus
from switch.service.enquiries import EnquirePayment, enquiry_ref
from switch.service.handlers import ApplyPartnerStatuses
from switch.service.inbound import AcceptInbound
from switch.service.screening import screen_transfers
from switch.service.signed import NoteSignedMessage
from switch.signing import Sealer
from switch.service.rate_limits import RateLimits
from switch.tls import PartnerAuthenticator


log = logging.getLogger(__name__)
BUS = web.AppKey("bus", MessageBus)
# () -> (checks, details): whether this replica is ready, from the composition root
GAUGES = web.AppKey("gauges", Callable[[], Awaitable[None]])  # refresh the gauges read from the database
READINESS = web.AppKey("readiness", Callable[[], Awaitable[tuple[dict[str, bool], dict[str, Any]]]])
# who is calling the partner port, from its client certificate; None: --insecure-dev (no TLS)
PARTNER_AUTH = web.AppKey("partner_auth", PartnerAuthenticator)
# the switch's signing (signed business application headers); None: --insecure-dev (no signatures)
SIGNING = web.AppKey("signing", Sealer)


def _reject(status: int, reason_code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"reason_code": reason_code, "error": message, **extra}, status=status)


def _too_large() -> web.Response:
    return _reject(413, "FF01", f"request body is over the {limits.http_body_bytes_max}-byte limit")


async def read_body_bounded(request: web.Request, size_bytes_max: int) -> bytes | None:
    """The request body, or None when it is over size_bytes_max: refused from Content-Length
    before anything is read, or as soon as the streamed (e.g. chunked) body passes the limit.

    Not request.read() with client_max_size: aiohttp raises HTTPRequestEntityTooLarge from inside
    read(), and its request handler keeps the exception as the response (`resp = exc`), so the
    exception's traceback and that handler frame form a reference cycle which holds read()'s frame
    and its whole bytearray (over 1 MB) until a full garbage collection; with our gc_thresholds
    those are rare, and a burst of over-limit bodies grew the process by hundreds of MB. Here
    nothing is raised while a buffer is held, and the chunks are dropped on return."""
    declared = request.content_length
    if declared is not None and declared > size_bytes_max:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limits.http_body_chunk_bytes_max):
        size += len(chunk)
        if size > size_bytes_max:
            return None  # the rest is drained (and discarded) by aiohttp after the answer
        chunks.append(chunk)
    return b"".join(chunks)


def refuse_unless_partner(request: web.Request, partner: str) -> web.Response | None:
    """The partner identity check (mutual TLS): None when the client certificate is `partner`'s,
    else the 403 to answer. The certificate decides who is calling; the path only says whom the
    caller claims to be. Runs before anything of the body is read. Without an authenticator
    (--insecure-dev, plain HTTP) everyone passes."""
    auth = request.app.get(PARTNER_AUTH)
    if auth is None:
        return None
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if der is None:  # cannot happen with CERT_REQUIRED; refused all the same
        reason, caller = "no_certificate", None
    else:
        caller = auth.partner_of(der)
        if caller == partner:
            return None
        reason = "unknown_identity" if caller is None else "partner_mismatch"
    request.app[BUS].deps.metrics.security_refusals.labels("partner_port", reason).inc()
    log.warning("partner port: refused a message for %r: %s (certificate of %s)", partner[:35], reason, caller or "no partner")
    message = {
        "no_certificate": "a client certificate is required",
        "unknown_identity": "the client certificate is not one any partner profile accepts",
        "partner_mismatch": f"the client certificate is {caller}'s, not {partner[:35]!r}'s",
    }[reason]
    return _reject(403, "AG01", message)


async def partner_message(request: web.Request) -> web.Response:
    bus = request.app[BUS]
    partner = request.match_info["partner"]
    if (refused := refuse_unless_partner(request, partner)) is not None:
        return refused
    if (over_rate := await refuse_over_rate(request, partner, bus)) is not None:  # abuse limits (issue 8 item 6)
        return over_rate
    mapping = bus.deps.mappings.get(partner)
    if mapping is None:  # nothing of the body is read; the name is not a metric label
        return _reject(404, "RC01", f"unknown partner {partner[:35]!r}")
    with payment_context(partner=partner):  # a known partner's message: what is logged meanwhile names it
        return await _partner_document(request, bus, partner, mapping)


async def _partner_document(request: web.Request, bus: MessageBus, partner: str, mapping: Any) -> web.Response:
    """The body of a partner's message (its caller checked who sent it and that it is a partner
    of this switch): read, opened, validated and dispatched by message type."""
    body = await read_body_bounded(request, limits.xml_body_bytes_max)
    if body is None:
        bus.deps.metrics.rejects.labels("partner_message", "FF01").inc()
        return _too_large()
    try:
        root = parse_untrusted(body, size_bytes_max=limits.xml_body_bytes_max)
        signing = request.app.get(SIGNING)
        if signing is not None and signing.signs_with(partner):
            opened = await _open_signed(request, signing, partner, root, body)
            if isinstance(opened, web.Response):
                return opened
            if opened is not None:  # the Document goes on as a bare one did (its own C14N bytes)
                root, body = opened.document, opened.document_bytes
        message_type = message_id_of(root)
        profile = mapping.profile
        if message_type == profile.pacs008_version:
            return await _inbound_payment(bus, partner, root, message_type, body)
        exception_edge = EXCEPTION_EDGES.get(message_type[:8])  # pacs.028, pacs.004, camt.056, camt.029 (issue 9)
        if exception_edge is not None:
            return await exception_edge(bus, partner, root, message_type, body)
        if message_type != profile.pacs002_version:
            return _reject(
                400, "FF01", f"{partner} sends {profile.pacs002_version} or {profile.pacs008_version} here, not {message_type}"
            )
        bus.deps.schemas.validate(root, message_type)
        report = mapping.parse_status(root)
    except XmlRejected as exc:
        bus.deps.metrics.rejects.labels("partner_message", exc.reason_code).inc()
        return _reject(400, exc.reason_code, exc.message)
    except SchemaViolation as exc:
        bus.deps.metrics.rejects.labels("partner_message", "FF01").inc()
        return _reject(400, "FF01", "message does not validate against the official XSD", errors=bus.deps.schemas.explain(body, exc.message_id)[:10])
    # a partner callback: what is logged while it is applied names the partner and its payments
    with payment_context(partner=partner, uetr=uetrs_field([s.uetr for s in report.statuses])):
        outcome = await bus.handle(
            ApplyPartnerStatuses(partner, report.message_id, message_type, body, report.statuses)
        )
    return web.json_response({"message_id": report.message_id, **outcome.counts})


async def _open_signed(
    request: web.Request, signing: Sealer, partner: str, root: Any, body: bytes
) -> apphdr.Opened | web.Response | None:
    """The signed business message's checks (header, Fr/To, signature, CreDt, replay), before
    anything is applied: the opened message, a refusal, or None for a bare Document from a
    partner whose signatures are not required yet."""
    bus = request.app[BUS]
    if not signing.counterparts[partner].required and not apphdr.is_envelope(root):
        return None
    try:
        opened = signing.open(partner, root, schemas=bus.deps.schemas, now=bus.deps.clock())
        header = opened.header
        noted = await bus.handle(NoteSignedMessage(partner, header.biz_msg_id, header.msg_def_id, opened.document_sha256, body))
        if noted.counts.get("replayed"):
            raise apphdr.Refused("replayed", f"BizMsgIdr {header.biz_msg_id!r} was already used with another Document")
    except apphdr.Refused as exc:
        bus.deps.metrics.security_refusals.labels("partner_port", exc.reason).inc()
        log.warning("partner port: refused a message from %s: %s (%s)", partner, exc.reason, exc.message[:200])
        return _reject(exc.http_status, exc.reason_code, exc.message)
    return opened


async def _inbound_payment(bus: MessageBus, partner: str, root: Any, message_type: str, body: bytes) -> web.Response:
    """A partner pays a Bakong customer. Raises XmlRejected / SchemaViolation like the caller."""
    if bus.deps.config.inbound_route(partner) is None:
        bus.deps.metrics.rejects.labels("inbound", "AG01").inc()
        return _reject(403, "AG01", f"no inbound route is open for {partner}")
    bus.deps.schemas.validate(root, message_type)
    message = read_pacs008(root)
    # issue 12: screened before the transaction (nothing changes); a held transfer waits for an operator
    screenings = await screen_transfers(bus.deps.screener, partner, message.transfers)
    outcome = await bus.handle(AcceptInbound(partner, message.message_id, message_type, body, message.transfers, screenings))
    return web.json_response({"message_id": message.message_id, **outcome.counts}, status=202)


def _money(m: Money) -> dict[str, str]:
    return {"value": m.to_text(m.currency.decimals_accepted_max), "currency": m.currency.code}


def case_json(c: Case) -> dict[str, Any]:
    """One exception case (issue 9) as the operations API shows it."""
    return {
        "case_id": c.id,
        "kind": c.kind.value,
        "initiator": c.initiator.value,
        "counterpart": c.counterpart,
        "state": c.state.value,
        "reason_code": c.reason_code,
        "detail": c.detail,
        "message_id": c.message_id,  # the message the switch sent for it (pacs.028, camt.056, pacs.004, camt.029)
        "amount": _money(c.amount) if c.amount else None,
        "back_amount": _money(c.back_amount) if c.back_amount else None,
        "rate": c.rate,
        "rate_rule": c.rate_rule,
        "attempts": c.attempts,
        "reply_by": c.reply_by.isoformat() if c.reply_by else None,
        "created_at": c.created_at.isoformat(),
        "updated_at": c.updated_at.isoformat(),
    }


def payment_json(p: Payment, history: list[HistoryEntry], cases: list[Case] | None = None) -> dict[str, Any]:
    return {
        "uetr": p.uetr,
        "instruction_id": p.instruction_id,
        "participant": p.participant,
        "corridor": p.corridor,
        "direction": p.direction.value,
        "partner": p.partner,
        "state": p.state.value,
        "final": p.state in FINAL_STATES,
        "reason_code": p.reason_code,
        "debtor": {"name": p.debtor.name, "account": shown(p.debtor.account), "agent": p.debtor.agent},
        "creditor": {
            k: v
            for k, v in {
                "name": p.creditor.name,
                "account": shown(p.creditor.account),  # a card (stored as its token) as 9704 **** **** 1234
                "proxy_type": p.creditor.proxy_type,
                "proxy": p.creditor.proxy,
                "agent": p.creditor.agent,
            }.items()
            if v is not None
        },
        "instructed_amount": _money(p.instructed),
        "source_amount": _money(p.source),
        "target_amount": _money(p.target),
        "fee": _money(p.fee),
        "fx_rate": p.fx_rate,
        "effective_rate": events.effective_rate_text(p),  # target ÷ (source + fee): issue 11
        "quote_id": p.quote_id,
        "created_at": p.created_at.isoformat(),
        "updated_at": p.updated_at.isoformat(),
        "history": [
            {
                "from": h.from_state.value if h.from_state else None,
                "to": h.to_state.value,
                "reason_code": h.reason_code,
                "detail": h.detail,
                "at": h.at.isoformat(),
            }
            for h in history
        ],
        "exceptions": [case_json(c) for c in cases or ()],
    }


async def get_payment(request: web.Request) -> web.Response:
    bus = request.app[BUS]
    uetr = request.match_info["uetr"]
    async with bus.reader() as uow:
        found = (await uow.payments_get([uetr])).get(uetr)
        if found is None or not api_auth.may_see(request, found.participant):  # another's: as if none
            return _reject(404, "MS03", f"no payment with UETR {uetr}")
        cases = (await uow.cases_of([uetr])).get(uetr, [])
        return web.json_response(payment_json(found, await uow.history_of(uetr), cases))


async def get_instruction(request: web.Request) -> web.Response:
    bus = request.app[BUS]
    participant, instruction_id = request.match_info["participant"], request.match_info["instruction_id"]
    if not api_auth.may_see(request, participant):  # another's: as if none, nothing read
        return _reject(404, "MS03", f"no instruction {participant}/{instruction_id}")
    async with bus.reader() as uow:
        found = await uow.payment_by_instruction(participant, instruction_id)
        if found is not None:
            cases = (await uow.cases_of([found.uetr])).get(found.uetr, [])
            return web.json_response(payment_json(found, await uow.history_of(found.uetr), cases))
        record = (await uow.instructions_get([(participant, instruction_id)])).get((participant, instruction_id))
    if record is None:
        return _reject(404, "MS03", f"no instruction {participant}/{instruction_id}")
    return web.json_response(
        {
            "instruction_id": instruction_id,
            "participant": participant,
            "state": "REJECTED",
            "final": True,
            "reason_code": record.reject_reason_code,
            "reason": record.reject_reason,
            "created_at": record.created_at.isoformat(),
        }
    )


async def enquire_payment(request: web.Request) -> web.Response:
    """POST /v1/payments/{uetr}/enquiry (operators only: api_auth lets no other role POST): open
    the payment's status enquiry, or ask the partner again now (a pacs.028), audited. 202 with the
    case; 404 MS03 unknown payment; 409 AG01 a payment that is final or inbound (issue 9)."""
    bus = request.app[BUS]
    uetr = request.match_info["uetr"]
    principal = request[api_auth.PRINCIPAL]
    outcome = await bus.handle(EnquirePayment(uetr[:64], principal.name))
    if outcome.refusals:
        code, detail = outcome.refusals[0]
        return _reject(404 if code == "MS03" else 409, code, detail)
    async with bus.reader() as uow:
        case = (await uow.cases_by_ref([enquiry_ref(uetr)]))[enquiry_ref(uetr)]
    return web.json_response(case_json(case), status=202)


async def metrics(request: web.Request) -> web.Response:
    bus = request.app[BUS]
    await request.app[GAUGES]()
    return web.Response(body=generate_latest(bus.deps.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks, details = await request.app[READINESS]()
    return web.json_response(
        {"ready": all(checks.values()), **checks, **details},
        status=200 if all(checks.values()) else 503,
    )


# aiohttp's own refusals (no route, wrong method, ...) as ISO reason codes
_HTTP_REASON_CODES: Final = {404: "MS03", 405: "FF01", 413: "FF01"}


@web.middleware
async def json_refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's plain-text refusals (404 unknown route, 405 wrong method, ...) in the JSON shape
    of every other refusal. Answering here, instead of letting the exception become the response,
    also keeps the exception out of aiohttp's handler frame (see read_body_bounded)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _reject(exc.status, _HTTP_REASON_CODES.get(exc.status, "FF01"), exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


def build_partner_app(
    bus: MessageBus, *, partner_auth: PartnerAuthenticator | None, signing: Sealer | None = None,
    partner_limits: RateLimits | None = None,
) -> web.Application:
    """The partner port: ISO 20022 messages in, translated into commands for the bus.
    `partner_auth` names the caller from its client certificate (None: --insecure-dev);
    `signing` opens the signed business messages of partners that sign (None: --insecure-dev);
    `partner_limits` are the partners' rate limits (None: none)."""
    # client_max_size bounds request.read() should a handler ever use it; partner_message reads
    # with read_body_bounded instead
    app = web.Application(client_max_size=limits.http_body_bytes_max, middlewares=[json_refusals])
    app[BUS] = bus
    if partner_auth is not None:
        app[PARTNER_AUTH] = partner_auth
    if signing is not None:
        app[SIGNING] = signing
    if partner_limits is not None:
        install_partner_limits(app, partner_limits)
    app.router.add_post("/iso20022/{partner}", audited_refusals(partner_message, bus))
    return app


def build_ops_app(
    bus: MessageBus,
    *,
    readiness: Callable[[], Awaitable[tuple[dict[str, bool], dict[str, Any]]]],
    refresh_gauges: Callable[[], Awaitable[None]],
    api_tokens: api_auth.ApiTokens | None = None,
    api_certificates: api_auth.ApiCertificates | None = None,
    reload_config: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
    controls_changed: Callable[[], Awaitable[None]] | None = None,
    dead_letters: Any = None,
) -> web.Application:
    """The operations port: payment look-ups (read through the bus), metrics and health;
    `readiness` says whether this replica is ready (the composition root knows its parts);
    `dead_letters` reads and replays the dead-letter topic (ops_edge.py; None: not here)."""
    from switch.entrypoints import ops_edge  # it builds on this module's helpers

    app = web.Application(client_max_size=limits.http_body_bytes_max, middlewares=[json_refusals])
    app[BUS] = bus
    app[READINESS] = readiness
    app[GAUGES] = refresh_gauges
    # /v1 and /metrics need a bearer token or a client certificate (api_auth); with neither
    # configured, every such call answers 401
    api_auth.install(app, api_tokens or api_auth.ApiTokens(()), bus.deps.metrics.api_refusals, api_certificates)
    app.router.add_get("/v1/payments/{uetr}", get_payment)
    app.router.add_get("/v1/instructions/{participant}/{instruction_id}", get_instruction)
    app.router.add_post("/v1/payments/{uetr}/enquiry", enquire_payment)  # issue 9: status enquiries
    settlement_edge.add_routes(app)  # issue 10: /v1/recon/*
    corridors_edge.add_routes(app)  # issue 11: /v1/corridors, /v1/partners/*/pause|resume, /v1/config/reload
    if reload_config is not None:
        app[corridors_edge.RELOAD] = reload_config
    if controls_changed is not None:
        app[corridors_edge.CONTROLS_CHANGED] = controls_changed
    quotes_edge.add_routes(app)  # issue 11: POST /v1/quotes, GET /v1/fx/rates
    ops_edge.add_routes(app, dead_letters)  # issue 11: search, messages, resolve, dead letters, OpenAPI
    from switch.entrypoints import screening_edge  # it builds on ops_edge's helpers

    screening_edge.add_routes(app)  # issue 12: /v1/screening/holds*, /v1/screening/reload
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
