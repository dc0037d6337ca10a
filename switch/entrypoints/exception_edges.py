"""The partner port's exception messages (issue 9): pacs.028 status requests, pacs.004 returns,
camt.056 recalls and camt.029 answers. http_app.partner_message opens the message (TLS identity,
signature, size) as for any other, then hands it here by family ("pacs.028", ...): the edge
function checks the version the partner's profile names, validates against the official XSD,
reads it, dispatches one command and answers.

Answers: 200 with the command's counts once durable; 422 with the ISO reason code of the first
refusal when the message could be read but not processed (no original, wrong state, unknown
reference: the admi.002, where the profile asks for one, is already in the outbox); 400 for a
message the switch cannot read (raised as XmlRejected / SchemaViolation to the caller)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from iso20022.errors import XmlRejected
from switch.service.bus import MessageBus
from switch.service.handlers import Outcome

# (bus, partner, root of the Document, its message type, the Document's bytes) -> the answer
PartnerEdge = Callable[[MessageBus, str, Any, str, bytes], Awaitable[web.Response]]
# message family -> edge function; filled by the flows' edge modules (imported at the end)
EXCEPTION_EDGES: Final[dict[str, PartnerEdge]] = {}


def check_version(bus: MessageBus, partner: str, message_type: str, expected: str) -> None:
    """The version the partner's profile names for this message, or XmlRejected FF01."""
    if message_type != expected:
        raise XmlRejected("FF01", f"{partner} sends {expected} here, not {message_type}")


def answer(message_id: str, outcome: Outcome) -> web.Response:
    """The HTTP answer to a processed exception message."""
    if outcome.refusals:
        code, detail = outcome.refusals[0]
        return web.json_response(
            {"message_id": message_id, "reason_code": code, "error": detail, "refusals": len(outcome.refusals), **outcome.counts},
            status=422,
        )
    return web.json_response({"message_id": message_id, **outcome.counts})


# recalls (issue 9 item 3): camt.056 from a partner, camt.029 answering ours
from switch.entrypoints import recalls_edge  # noqa: E402

EXCEPTION_EDGES.update({"camt.056": recalls_edge.camt056_edge, "camt.029": recalls_edge.camt029_edge})
from switch.entrypoints.returns_edge import pacs004_edge  # noqa: E402 - the flows register last

EXCEPTION_EDGES["pacs.004"] = pacs004_edge
# the flows' edges (each module registers its message family)
from switch.entrypoints.enquiry_edge import status_request  # noqa: E402

EXCEPTION_EDGES["pacs.028"] = status_request
# settlement reports (issue 10): camt.053 / camt.054 pages
from switch.entrypoints import settlement_edge  # noqa: E402,F401 - registers camt.053 and camt.054
