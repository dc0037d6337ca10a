"""Who the edges screen, and the screening call they make before the transaction (issue 12).

Like the proxy look-ups, the screening is I/O made by the edge before it dispatches: the Kafka
consumer screens a batch's instructions (`screen_instructions`), the HTTP edge an inbound
pacs.008's transfers (`screen_transfers`), and the commands carry the verdicts
(`AcceptInstructions.screenings`, `AcceptInbound.screenings`). Admission and booking stay free of
I/O and hold a payment whose verdict holds.

Fail closed [U]: a screener that raises, or leaves a key unanswered, makes the payment
UNAVAILABLE (held), never clear.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from adapters.inbound import InboundTransfer
from switch.domain.payment import Identification, Party, PostalAddress
from switch.domain.screening import Outcome, Role, Subject, SubjectKind, Verdict
from switch.service.handlers import ParsedInstruction
from switch.service.ports import Screener

log = logging.getLogger(__name__)


def _kind(identification: Identification | None) -> SubjectKind:
    if identification is None:
        return SubjectKind.UNKNOWN
    if identification.lei is not None:
        return SubjectKind.ORGANIZATION
    if identification.national_id is not None or identification.birth_date is not None:
        return SubjectKind.PERSON
    return SubjectKind.UNKNOWN


def _subject(
    key: tuple[str, str], role: Role, name: str, address: PostalAddress | None, identification: Identification | None
) -> Subject:
    ident = identification
    return Subject(
        key=key, role=role, name=name, kind=_kind(ident), country=address.country if address is not None else None,
        birth_date=ident.birth_date if ident else None, national_id=ident.national_id if ident else None,
        lei=ident.lei if ident else None,
    )


def _party(key: tuple[str, str], role: Role, party: Party | None) -> list[Subject]:
    if party is None or not party.name or not party.name.strip():
        return []
    return [_subject(key, role, party.name, party.address, party.identification)]


def instruction_subjects(items: Iterable[ParsedInstruction]) -> list[Subject]:
    """The debtor and creditor of each instruction that admission will look at: not one over its
    participant's rate (`limited`) nor one the edge could not read (`unreadable`). A QR's
    creditor is the name the QR gives (the edge put it in `creditor`)."""
    subjects: list[Subject] = []
    for item in items:
        ins = item.instruction
        if ins.limited is not None or ins.unreadable is not None:
            continue
        key = (ins.participant, ins.instruction_id)
        subjects += _party(key, Role.DEBTOR, ins.debtor)
        subjects += _party(key, Role.CREDITOR, ins.creditor)
    return subjects


def transfer_subjects(partner: str, transfers: Iterable[InboundTransfer]) -> list[Subject]:
    """The debtor and creditor of each transfer of a partner's pacs.008, keyed (partner, UETR)."""
    subjects: list[Subject] = []
    for t in transfers:
        key = (partner, t.uetr)
        if t.debtor_name and t.debtor_name.strip():
            subjects.append(_subject(key, Role.DEBTOR, t.debtor_name[:140], t.debtor_address, t.debtor_identification))
        if t.creditor_name and t.creditor_name.strip():
            subjects.append(_subject(key, Role.CREDITOR, t.creditor_name[:140], t.creditor_address, None))
    return subjects


async def screen(screener: Screener, subjects: Sequence[Subject]) -> dict[tuple[str, str], Verdict]:
    """One verdict per key of `subjects`: the screener's, or UNAVAILABLE when it raised or left
    a key unanswered (fail closed)."""
    if not subjects:
        return {}
    keys = {s.key for s in subjects}
    try:
        verdicts = dict(await screener.screen(subjects))
    except Exception as exc:  # the port never raises for an outage; a bug must not clear payments
        log.error("screening failed (%s: %s): %d payment(s) held", type(exc).__name__, str(exc)[:200], len(keys))
        unavailable = Verdict(Outcome.UNAVAILABLE, detail=f"screening failed: {type(exc).__name__}")
        return {k: unavailable for k in keys}
    missing = Verdict(Outcome.UNAVAILABLE, detail="no verdict from the screening")
    return {k: verdicts.get(k, missing) for k in keys}


async def screen_instructions(screener: Screener | None, items: Sequence[ParsedInstruction]) -> dict[tuple[str, str], Verdict]:
    """`AcceptInstructions.screenings` for a batch (empty when screening is off)."""
    if screener is None:
        return {}
    return await screen(screener, instruction_subjects(items))


async def screen_transfers(
    screener: Screener | None, partner: str, transfers: Sequence[InboundTransfer]
) -> dict[tuple[str, str], Verdict]:
    """`AcceptInbound.screenings` for a partner's pacs.008 (empty when screening is off)."""
    if screener is None:
        return {}
    return await screen(screener, transfer_subjects(partner, transfers))
