"""The message bus: one registry maps every command type to its handler (STYLE §1, A2), and
every edge (the Kafka consumer, the HTTP app, the timers, the relay's results) dispatches through
it. A handler takes its command, a unit of work and the dependencies, and returns the outbox rows
it wrote; the bus runs it in a transaction, runs it again when it lost a race (a version check,
a deadlock: nothing was written), and hands the committed rows to the relay.

Commands that arrive one by one in great numbers (a partner's pacs.002 per HTTP request, a send
result per message, an inbound pacs.008) are grouped: many share one transaction (group commit),
and each caller waits until its own is durable.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

from switch import limits
from switch.log_context import payment_context
from switch.metrics import Metrics
from switch.service.case_timer import FollowUpCases, follow_up_cases
from switch.service.follow_up import FollowUpPayments, follow_up_payments
from switch.service.group_commit import GroupCommitter
from switch.service.handlers import (
    AcceptInstructions,
    ApplyPartnerStatuses,
    Deps,
    Outcome,
    RecordSendResults,
    accept_instructions,
    apply_partner_statuses,
    record_send_results,
)
from switch.service.inbound import AcceptInbound, ApplyInboundReplies, accept_inbound, apply_inbound_replies
from switch.service.recalls import (
    AnswerRecalls,
    ApplyPartnerRecalls,
    ApplyRecallAnswers,
    RecallPayments,
    answer_recalls,
    apply_partner_recalls,
    apply_recall_answers,
    recall_payments,
)
from switch.contracts import RecallReplyV1, RecallRequestV1
from switch.service.signed import NoteSignedMessage, note_signed_messages
from switch.service.returns import ApplyPartnerReturns, ReturnInboundPayments, apply_partner_returns, return_inbound_payments
from switch.contracts import QuoteRequestV1, ReturnRequestV1
from switch.service.quotes import IssueQuotes, QuoteAsk, issue_quotes
from switch.service.enquiries import AnswerStatusRequests, EnquirePayment, answer_status_requests, enquire_payment
from switch.service.settlement import (
    CloseCycle,
    OpenCycles,
    ReconcileCycle,
    ResolveBreak,
    StoreReportPage,
    close_cycle,
    open_cycles,
    reconcile_cycle,
    resolve_break,
    store_report_page,
)
from switch.service.corridors import SwitchCorridor, SwitchPartner, switch_corridor, switch_partner
from switch.service.operations import (
    ClaimDlqReplays,
    FinishDlqReplays,
    MarkPayment,
    ResendPayment,
    claim_dlq_replays,
    finish_dlq_replays,
    mark_payment,
    resend_payment,
)
from switch.service.holds import RejectHeld, ReleaseHeld, reject_held_cmd, release_held
from switch.domain.errors import ConcurrentUpdate
from switch.service.ports import Store, UnitOfWork

log = logging.getLogger(__name__)

# command type -> handler: the one place a command finds its handler
HANDLERS: Final[dict[type, Callable[..., Awaitable[Any]]]] = {
    AcceptInstructions: accept_instructions,
    ApplyInboundReplies: apply_inbound_replies,
    FollowUpPayments: follow_up_payments,
    FollowUpCases: follow_up_cases,
    ApplyPartnerReturns: apply_partner_returns,
    ReturnInboundPayments: return_inbound_payments,
    # batch handlers (a list of commands in, one outcome each out), fed by group commit
    ApplyPartnerStatuses: apply_partner_statuses,
    RecordSendResults: record_send_results,
    AcceptInbound: accept_inbound,
    NoteSignedMessage: note_signed_messages,
    RecallPayments: recall_payments,  # recalls (issue 9): a participant recalls an outbound payment
    ApplyRecallAnswers: apply_recall_answers,  # the partner's camt.029
    ApplyPartnerRecalls: apply_partner_recalls,  # a partner's camt.056 about an inbound payment
    AnswerRecalls: answer_recalls,  # the beneficiary participant's answer to it
    # status enquiries (issue 9): a partner's pacs.028, an operator's enquiry
    AnswerStatusRequests: answer_status_requests,
    EnquirePayment: enquire_payment,
    # settlement reconciliation (issue 10): the cycle timer, partners' reports, operators
    OpenCycles: open_cycles,
    CloseCycle: close_cycle,
    StoreReportPage: store_report_page,
    ReconcileCycle: reconcile_cycle,
    ResolveBreak: resolve_break,
    # corridors and partners switched at run time by an operator (issue 11)
    SwitchCorridor: switch_corridor,
    SwitchPartner: switch_partner,
    # FX quotes asked for first (issue 11): POST /v1/quotes, quote requests on mekong.requests
    IssueQuotes: issue_quotes,
    # the operator's toolbox (issue 11): resolve a stuck payment, replay dead letters once
    ResendPayment: resend_payment,
    MarkPayment: mark_payment,
    ClaimDlqReplays: claim_dlq_replays,
    FinishDlqReplays: finish_dlq_replays,
    # screening holds (issue 12): an operator releases or rejects a held payment
    ReleaseHeld: release_held,
    RejectHeld: reject_held_cmd,
}
# participants' requests on mekong.requests (issue 9): request contract -> the command the Kafka
# edge dispatches for the batch's requests of that kind
REQUEST_COMMANDS: Final[dict[type, Callable[[list[Any]], Any]]] = {
    RecallRequestV1: RecallPayments,
    RecallReplyV1: AnswerRecalls,
    ReturnRequestV1: ReturnInboundPayments,
    QuoteRequestV1: lambda requests: IssueQuotes([QuoteAsk(r, r.request_id) for r in requests]),
}
GROUPED: Final = (ApplyPartnerStatuses, RecordSendResults, AcceptInbound, NoteSignedMessage)
group_commit_batch_max: Final = 256


class MessageBus:
    def __init__(self, store: Store, deps: Deps, *, on_commit: Callable[[Outcome], None], metrics: Metrics) -> None:
        self._store = store
        self.deps = deps
        self._on_commit = on_commit
        self._metrics = metrics
        self._groups: dict[type, GroupCommitter[Any]] = {
            t: GroupCommitter(
                t.__name__, self.in_transaction, deps, HANDLERS[t], batch_max=group_commit_batch_max, queue_max=limits.outbox_queue_max
            )
            for t in GROUPED
        }

    async def handle(self, cmd: Any) -> Outcome:
        """Run one command to commit; return its outcome (its rows are on their way)."""
        group = self._groups.get(type(cmd))
        if group is not None:
            return await group.submit(cmd)
        uetr = getattr(cmd, "uetr", None)
        if isinstance(uetr, str):  # a command about one payment (an operator's enquiry): its lines name it
            with payment_context(uetr=uetr):
                return await self.in_transaction(lambda uow: self.dispatch(cmd, uow), name=type(cmd).__name__)
        return await self.in_transaction(lambda uow: self.dispatch(cmd, uow), name=type(cmd).__name__)

    async def dispatch(self, cmd: Any, uow: UnitOfWork) -> Outcome:
        """The command's handler, inside a transaction the caller holds (an edge that commits
        several commands and its own rows together, like the Kafka consumer's batch)."""
        if isinstance(cmd, GROUPED):
            (outcome,) = await HANDLERS[type(cmd)]([cmd], uow, self.deps)
            return outcome  # type: ignore[no-any-return]
        return await HANDLERS[type(cmd)](cmd, uow, self.deps)  # type: ignore[no-any-return]

    async def in_transaction(self, work: Callable[[UnitOfWork], Awaitable[Any]], *, name: str) -> Any:
        """Run `work` in one transaction, again (a bounded number of times) when it lost a race;
        after the commit, the outbox rows in what it returned go to the relay. `work` returns an
        Outcome, or a list of them."""
        for attempt in range(limits.uow_attempts_max):
            try:
                async with self._store.unit_of_work() as uow:
                    result = await work(uow)
            except Exception as exc:
                if not isinstance(exc, ConcurrentUpdate) or attempt + 1 == limits.uow_attempts_max:
                    raise
                self._metrics.uow_retries.labels(name).inc()
                log.info("%s lost a race (%s); running it again", name, exc)
                await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
                continue
            for outcome in result if isinstance(result, list) else [result]:
                self._on_commit(outcome)
            return result
        raise AssertionError("unreachable")

    def reader(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A read-only unit of work (the HTTP API's look-ups)."""
        return self._store.reader()

    def pending(self) -> int:
        return sum(g.pending() for g in self._groups.values())

    def tasks(self) -> dict[str, Callable[[], Awaitable[None]]]:
        return {f"group-{g.name}": g.run for g in self._groups.values()}
