"""The partner port's pacs.004 (issue 9 item 2): a partner returns (part of) an outbound payment.
The caller (http_app.partner_message) already checked the partner's TLS identity and signature;
here: the version its profile names, the official XSD, the model, one ApplyPartnerReturns, the
answer (200 with the counts, 422 with the first refusal's ISO code; exception_edges.answer)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from iso20022 import pacs004
from switch.entrypoints.exception_edges import answer, check_version
from switch.service.bus import MessageBus
from switch.service.returns import ApplyPartnerReturns


async def pacs004_edge(bus: MessageBus, partner: str, root: Any, message_type: str, body: bytes) -> web.Response:
    """Raises XmlRejected / SchemaViolation (400) like the caller for what cannot be read."""
    check_version(bus, partner, message_type, bus.deps.mappings[partner].profile.exceptions.pacs004_version)
    bus.deps.schemas.validate(root, message_type)
    message = pacs004.parse(root)
    outcome = await bus.handle(ApplyPartnerReturns(partner, message.message_id, message_type, message.transactions))
    return answer(message.message_id, outcome)
