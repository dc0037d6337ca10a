"""The case timer (issue 9): every open exception case (switch/domain/case.py) is looked at again
when its `due_at` comes: an enquiry asked again or given up, a recall chased or reported
unanswered, a participant's silence on a partner's recall answered. The timer edge (main.py)
claims due cases (a lease, like payments' follow-ups: two replicas never act on one case) and
this handler hands each to the follow-up of its kind (CASE_FOLLOW_UPS, filled by the flows)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from switch import limits
from switch.domain.case import CASE_TERMINAL, Case, CaseKind, touched
from switch.service.handlers import Deps, Outcome
from switch.service.ports import UnitOfWork


@dataclass(frozen=True, slots=True)
class FollowUpCases:
    limit: int = 200


# case kind -> what to do with its due cases: (cases, uow, deps, outcome) -> None; the function
# writes what it changed (cases, payments, history, outbox rows into the outcome)
CaseFollowUp = Callable[[list[Case], UnitOfWork, Deps, Outcome], Awaitable[None]]
CASE_FOLLOW_UPS: Final[dict[CaseKind, CaseFollowUp]] = {}


async def follow_up_cases(cmd: FollowUpCases, uow: UnitOfWork, deps: Deps) -> Outcome:
    now = deps.clock()
    out = Outcome()
    claimed = await uow.cases_claim_due(now, cmd.limit)
    out.counts["claimed"] = len(claimed)
    idle: list[tuple[int, Case]] = []
    for kind in CaseKind:
        due = [c for c in claimed if c.kind is kind and c.state not in CASE_TERMINAL]
        act = CASE_FOLLOW_UPS.get(kind)
        if act is None:  # no follow-up for this kind: look again much later rather than spin
            idle.extend((c.version, touched(c, now=now, due_at=now + timedelta(seconds=limits.follow_up_interval_s_max))) for c in due)
            continue
        if due:
            await act(due, uow, deps, out)
    idle.extend((c.version, touched(c, now=now, due_at=None)) for c in claimed if c.state in CASE_TERMINAL)
    await uow.cases_update(idle)
    return out


# status enquiries (issue 9): a due enquiry asks again (pacs.028) or closes once its payment is final
from switch.service.enquiries import follow_up_enquiries  # noqa: E402

CASE_FOLLOW_UPS[CaseKind.ENQUIRY] = follow_up_enquiries
