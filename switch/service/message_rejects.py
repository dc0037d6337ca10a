"""Message rejects (issue 9 item 4): a partner message the switch read but cannot process (valid
XML, but no original, the wrong state, an unknown reference) is answered with an admi.002 naming
the message and the reason, where the partner's profile asks for one ([exceptions]
message_rejects = "admi.002"); otherwise only with the HTTP refusal, as before. The admi.002 is an
outbox row like any answer to a partner: delivered until it arrives, the same bytes again if the
same message is refused again (its id is fixed by the refused message and the reason)."""

from __future__ import annotations

import hashlib
from datetime import datetime

from iso20022 import admi002
from switch.service.handlers import Deps, Outcome
from switch.service.ports import OutboxMessage


def reject_message_id(partner: str, refused_message_id: str, reason_code: str) -> str:
    """The admi.002's id: fixed by whom, which message and why (Max35Text)."""
    digest = hashlib.sha256(f"{partner}\x00{refused_message_id}\x00{reason_code}".encode()).hexdigest()
    return f"J{digest[:34]}"


def refuse_message(
    out: Outcome, deps: Deps, *, partner: str, refused_message_id: str, reason_code: str, detail: str, now: datetime,
) -> OutboxMessage | None:
    """Record the refusal in `out` (the HTTP answer says it) and return the admi.002 outbox row
    for the partner when its profile asks for one (the caller stores it), else None."""
    out.refusals.append((reason_code, detail))
    out.count("refused")
    deps.metrics.rejects.labels("partner_exception", reason_code).inc()
    mapping = deps.mappings.get(partner)
    if mapping is None or mapping.profile.exceptions.message_rejects != "admi.002":
        return None
    reject = admi002.MessageReject(
        reference=refused_message_id[:35], reason_code=reason_code, rejected_at=now, description=detail[:350],
    )
    body = admi002.build_validated(reject, deps.schemas)
    return OutboxMessage(
        kind="partner", destination=partner, message_id=reject_message_id(partner, refused_message_id, reason_code),
        uetrs=(), key=None, body=body, created_at=now,
    )
