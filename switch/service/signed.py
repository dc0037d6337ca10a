"""The replay rule of signed business messages (issue 8 item 2): a partner's BizMsgIdr is a key,
the SHA-256 of the Document it carries the fingerprint (switch/domain/idempotency.py). The same
BizMsgIdr with the same Document again is a resend: it goes on to the usual duplicate handling
(a pacs.002 is not applied twice, an inbound pacs.008 gets its stored answer). The same BizMsgIdr
with another Document is a replay: the edge refuses it (DU01) and nothing is applied.

Run by the partner edge after the signature checked out and before the message is handed on, in
a short transaction of its own (group-committed with the other messages arriving at that moment).
Recording a message that is then not applied (the next transaction fails) is harmless: the
partner's resend carries the same Document and passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from switch.domain.idempotency import Admission, StoredKey, admit
from switch.service.handlers import Deps, Outcome
from switch.service.ports import UnitOfWork


@dataclass(frozen=True, slots=True)
class NoteSignedMessage:
    partner: str
    biz_msg_id: str
    message_type: str
    document_sha256: str  # hex, of the Document's exclusive C14N
    envelope: bytes  # the signed business message as it arrived (kept the first time)


# outcome count per admission: "new", "resend" (same Document) or "replayed" (another Document)
COUNTS = {Admission.NEW: "new", Admission.REPLAY: "resend", Admission.CONFLICT: "replayed"}


async def note_signed_messages(cmds: Sequence[NoteSignedMessage], uow: UnitOfWork, deps: Deps) -> list[Outcome]:
    now = deps.clock()
    outcomes = [Outcome() for _ in cmds]
    known: dict[tuple[str, str], str] = {}
    for partner in {c.partner for c in cmds}:
        stored = await uow.signed_digests(partner, [c.biz_msg_id for c in cmds if c.partner == partner])
        known.update(((partner, m), digest) for m, digest in stored.items())
    rows = []
    for cmd, out in zip(cmds, outcomes, strict=True):
        key = (cmd.partner, cmd.biz_msg_id)
        first = known.get(key)
        admission = admit(None if first is None else StoredKey(first, final=True), cmd.document_sha256)
        out.count(COUNTS[admission])
        if admission is Admission.NEW:
            known[key] = cmd.document_sha256  # a second copy in this batch is a resend of this one
            rows.append({
                "partner": cmd.partner, "biz_msg_id": cmd.biz_msg_id, "message_type": cmd.message_type,
                "document_sha256": cmd.document_sha256, "received_at": now, "envelope": cmd.envelope,
            })
    await uow.signed_add(rows)
    return outcomes
