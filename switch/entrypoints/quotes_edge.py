"""The operations API's FX routes (issue 11; docs/operations/fx-quotes.md has the examples):

  POST /v1/quotes     a quote asked for first (contract QuoteAskV1): 201 with the QuoteV1 when
                      quoted, 422 with the QuoteV1 (state REFUSED, reason code) when the switch
                      will not quote it, 400 FF01 for a body that is not the contract. A
                      participant asks only for itself (403 AG01 otherwise); an operator for any
                      participant (audited); auditors and monitors may not ask.
  GET  /v1/fx/rates   each pair in force: mid, source, as-of, age, max age, stale or not (every
                      /v1 role: rates are no participant's secret).

The edge translates and dispatches (IssueQuotes through the bus); the handler decides.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from switch import limits
from switch.contracts import QuoteAskV1
from switch.entrypoints import api_auth
from switch.entrypoints.kafka_consumer import JsonRefused, read_json
from switch.entrypoints.rate_providers import rate_ages
from switch.service.quotes import IssueQuotes, QuoteAnswers, QuoteAsk


async def post_quote(request: web.Request) -> web.Response:
    from switch.entrypoints.http_app import BUS, _reject, read_body_bounded  # http_app adds these routes

    bus = request.app[BUS]
    principal: api_auth.Principal = request[api_auth.PRINCIPAL]
    body = await read_body_bounded(request, limits.json_bytes_max)
    if body is None:
        return _reject(413, "FF01", f"request body is over the {limits.json_bytes_max}-byte limit")
    data = read_json(body)
    if isinstance(data, JsonRefused):
        return _reject(400, data.reason_code, data.reason)
    try:
        ask = QuoteAskV1.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:5])
        return _reject(400, "FF01", f"invalid quote request: {problems}")
    if principal.role is api_auth.Role.PARTICIPANT and ask.participant != principal.participant:
        return _reject(403, "AG01", f"{principal.participant} may ask quotes only for itself")
    operator = principal.name if principal.role is api_auth.Role.OPERATOR else None
    outcome: QuoteAnswers = await bus.handle(IssueQuotes([QuoteAsk(ask, None, operator)]))
    (answer,) = outcome.answers
    return web.json_response(answer.model_dump(mode="json"), status=201 if answer.state == "QUOTED" else 422)


async def get_rates(request: web.Request) -> web.Response:
    from switch.entrypoints.http_app import BUS

    deps = request.app[BUS].deps
    book = deps.quoter.book
    return web.json_response(
        {"pivot": book.pivot, "stale_after_s": book.stale_after_s, "rates": rate_ages(book, deps.clock())}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/quotes", post_quote)
    app.router.add_get("/v1/fx/rates", get_rates)
