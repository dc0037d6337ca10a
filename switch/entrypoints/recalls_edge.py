"""The partner port's recall messages (issue 9 item 3): a camt.056 recalling an inbound payment
the partner sent, and a camt.029 answering a recall the switch sent. Each is checked against the
version the partner's profile names and the official XSD, read, and dispatched as one command
(switch/service/recalls.py); the answer says what it came to (exception_edges.answer)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from iso20022 import camt029, camt056
from switch.entrypoints.exception_edges import answer, check_version
from switch.service.bus import MessageBus
from switch.service.recalls import ApplyPartnerRecalls, ApplyRecallAnswers


async def camt056_edge(bus: MessageBus, partner: str, root: Any, message_type: str, body: bytes) -> web.Response:
    check_version(bus, partner, message_type, bus.deps.mappings[partner].profile.exceptions.camt056_version)
    bus.deps.schemas.validate(root, message_type)
    request = camt056.parse(root)
    outcome = await bus.handle(ApplyPartnerRecalls(partner, request.assignment_id, message_type, body, request))
    return answer(request.assignment_id, outcome)


async def camt029_edge(bus: MessageBus, partner: str, root: Any, message_type: str, body: bytes) -> web.Response:
    check_version(bus, partner, message_type, bus.deps.mappings[partner].profile.exceptions.camt029_version)
    bus.deps.schemas.validate(root, message_type)
    resolution = camt029.parse(root)
    outcome = await bus.handle(ApplyRecallAnswers(partner, resolution.assignment_id, message_type, body, resolution))
    return answer(resolution.assignment_id, outcome)
