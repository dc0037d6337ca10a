"""The HTTP edge's audit hook: every refusal the partner endpoint answers (4xx: unknown
partner, body over the limit, XML rejected, schema invalid, a message type or route not open,
and whatever refusal is added there later) leaves an audit entry naming the peer, the path, the
status and reason code. Accepted messages cost one comparison; nothing is written for them.

Except 429 (over the partner's rate limit, abuse_limits.py): a flood is exactly what it answers,
and one audit row per refused message would let the flood write the audit log (each append
takes the log's lock). 429s are counted (switch_rate_limited_total), and the first of each spell
of them is audited by abuse_limits.py."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from switch.service.audit import audit_refusal, http_refusal_entry
from switch.service.bus import MessageBus

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _reason(response: web.StreamResponse) -> tuple[str | None, str | None]:
    """The reason code and error of one of the edge's own JSON refusals."""
    body = getattr(response, "body", None)
    if not isinstance(body, bytes):
        return None, None
    try:
        data = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    code, error = data.get("reason_code"), data.get("error")
    return (code if isinstance(code, str) else None), (error if isinstance(error, str) else None)


def audited_refusals(handler: Handler, bus: MessageBus) -> Handler:
    """`handler` with its refusals audited, each in a short transaction of its own."""

    async def audited(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        if 400 <= response.status < 500 and response.status != 429:  # 429: counted, not audited (above)
            reason_code, error = _reason(response)
            await audit_refusal(
                bus.in_transaction,
                http_refusal_entry(
                    at=bus.deps.clock(),
                    peer=request.remote,
                    path=request.path,
                    status=response.status,
                    reason_code=reason_code,
                    error=error,
                    declared_bytes=request.content_length,
                ),
            )
        return response

    return audited
