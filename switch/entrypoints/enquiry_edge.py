"""The partner port's pacs.028 (issue 9): a partner asks what became of payments it sent to the
switch. The partner port (http_app.partner_message) has already checked the caller's certificate
and opened the signed business message; here: the version the partner's profile names
([exceptions] pacs028_version), the official XSD, the message read, one command
(enquiries.AnswerStatusRequests) and the answer: 200 with counts per outcome
(answered_final, answered_pending, answered_not_found). The answers themselves are pacs.002
messages the relay delivers to the partner afterwards."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from iso20022 import pacs028
from switch.entrypoints.exception_edges import answer, check_version
from switch.service.bus import MessageBus
from switch.service.enquiries import AnswerStatusRequests


async def status_request(bus: MessageBus, partner: str, root: Any, message_type: str, body: bytes) -> web.Response:
    """Raises XmlRejected / SchemaViolation (answered 400 by the caller)."""
    check_version(bus, partner, message_type, bus.deps.mappings[partner].profile.exceptions.pacs028_version)
    bus.deps.schemas.validate(root, message_type)
    request = pacs028.parse(root)
    outcome = await bus.handle(AnswerStatusRequests(partner, request.message_id, message_type, body, request.transactions))
    return answer(request.message_id, outcome)
