"""The partner simulator's side of recalls (issue 9 item 3), kept with the simulators.

- A camt.056 from the switch about a payment the network received: after `recall_delay_ms` the
  network accepts (`recall_accept_rate`: a camt.029 CNCL / ACCR, then a pacs.004 returning the
  whole amount, reason FOCR), refuses (a camt.029 RJCR with `recall_refuse_reason`, default CUST) or, at
  `recall_silent_rate`, never answers. The same camt.056 again (a chase) gets the same answer
  again; a silenced one stays silent.
- `POST /sim/recall` {"uetrs": [...], "reason": "FRAD"}: the network recalls inbound payments it
  sent (one camt.056 per payment, signed like everything it sends); the switch's answers (camt.029,
  and the pacs.004 of an accepted recall) are recorded.
- `GET /sim/recalls`: everything recorded, as JSON.

Everything is validated against the official XSD both ways. The pacs.004 builder here is the
simulator's own (a partner returning money), separate from the switch's.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp import web

from iso20022 import camt029, camt056, pacs004, pacs008
from iso20022.model import Agent, Amount, ClearingSystemMember
from iso20022.parsing import parse_untrusted
from iso20022.pacs002 import OriginalGroup

from adapters.simulator_inbound import SAMPLE_DEBTOR_AGENTS

if TYPE_CHECKING:
    from adapters.simulator import PartnerSimulator

RECALL_MESSAGES: Final = ("camt.056", "camt.029", "pacs.004")
return_after_answer_s: Final = 0.3  # the pacs.004 follows the camt.029 accepting a recall
# its return reason: ExternalReturnReason1Code FOCR "following cancellation request" [V: ISO code set]
# (the recall's own reason, e.g. AM09, is a cancellation reason, not necessarily a return reason
# the switch takes: the profile's return_reasons list FOCR, not AM09)
recall_return_reason: Final = "FOCR"
payments_kept_max: Final = 200_000
post_attempts_max: Final = 5


@dataclass
class _Paid:
    """What the network needs to answer a recall of a payment it received."""

    message_id: str
    message_type: str
    end_to_end_id: str
    tx_id: str | None
    amount: Amount


@dataclass
class RecallLog:
    received: list[dict[str, Any]] = field(default_factory=list)  # camt.056 from the switch
    decided: dict[str, str] = field(default_factory=dict)  # uetr -> accepted / refused / silent
    answers_sent: dict[str, bytes | None] = field(default_factory=dict)  # camt.056 Assgnmt/Id -> our camt.029 (None: silent)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # uetr -> the camt.056 we sent and what came of it
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # uetr -> the switch's camt.029
    returns: dict[str, dict[str, Any]] = field(default_factory=dict)  # uetr -> the switch's pacs.004

    def as_json(self) -> dict[str, Any]:
        return {
            "received": self.received, "decided": self.decided, "sent": self.sent, "answers": self.answers,
            "returns": self.returns,
        }


class RecallDesk:
    def __init__(self, sim: PartnerSimulator) -> None:
        self.sim = sim
        self.log = RecallLog()
        self.paid: dict[str, _Paid] = {}
        self._random = random.Random(sim.behaviour.seed + 1)

    # -- what the network received
    def note_payment(self, message: pacs008.CustomerCreditTransfer, message_type: str) -> None:
        for tx in message.transactions:
            if tx.uetr and tx.uetr not in self.paid and len(self.paid) < payments_kept_max:
                self.paid[tx.uetr] = _Paid(message.message_id, message_type, tx.end_to_end_id, tx.tx_id, tx.settlement_amount)

    def _network(self) -> Agent:
        p = self.sim.profile
        return Agent(clearing_member=ClearingSystemMember(
            member_id=SAMPLE_DEBTOR_AGENTS.get(p.partner, "00000000"), system_code=p.member_id_system_code,
            system_proprietary=p.member_id_system_proprietary,
        ))

    def _switch(self) -> Agent:
        return Agent(bicfi=self.sim.inbound.switch_bic)

    # -- from the switch
    async def receive(self, root: Any, message_type: str) -> web.Response:
        self.sim.schemas.validate(root, message_type)
        family = message_type[:8]
        if family == "camt.056":
            return self._recalled(camt056.parse(root))
        if family == "camt.029":
            res = camt029.parse(root)
            for tx in res.transactions:
                if tx.original_uetr:
                    self.log.answers[tx.original_uetr] = {
                        "message_id": res.assignment_id, "status": res.status, "tx_status": tx.status, "reason_code": tx.reason_code,
                    }
            self.sim.stats["recall_answers_received"] += 1
            return web.json_response({"answered": True})
        ret = pacs004.parse(root)
        for rtx in ret.transactions:
            if rtx.original_uetr:
                self.log.returns[rtx.original_uetr] = {
                    "message_id": ret.message_id, "amount": rtx.returned_amount.value, "currency": rtx.returned_amount.currency,
                    "reason_code": rtx.reason_code,
                }
        self.sim.stats["returns_received"] += 1
        return web.json_response({"returned": True})

    def _recalled(self, req: camt056.CancellationRequest) -> web.Response:
        b = self.sim.behaviour
        self.sim.stats["recalls_received"] += 1
        for tx in req.transactions:
            self.log.received.append({"assignment_id": req.assignment_id, "case_id": req.case_id, "cancellation_id": tx.cancellation_id,
                                      "uetr": tx.original_uetr, "reason_code": tx.reason_code,
                                      "original_message_id": tx.original_group.message_id if tx.original_group else None})
        if req.assignment_id in self.log.answers_sent:  # a chase: the same answer again (or silence again)
            self.sim.stats["recall_chases"] += 1
            stored = self.log.answers_sent[req.assignment_id]
            if stored is not None:
                self.sim._schedule(stored, delay_s=0)
            return web.json_response({"assignment_id": req.assignment_id, "duplicate": True}, status=202)
        roll = self._random.random()
        if roll < b.recall_silent_rate:
            self.log.answers_sent[req.assignment_id] = None
            for tx in req.transactions:
                self.log.decided[tx.original_uetr or "-"] = "silent"
            self.sim.stats["recalls_silenced"] += 1
            return web.json_response({"assignment_id": req.assignment_id}, status=202)
        accept = self._random.random() < b.recall_accept_rate
        known = [tx for tx in req.transactions if tx.original_uetr in self.paid]
        # a payment the network rejected was never credited: nothing to cancel or return (ARJR)
        rejected = {tx.original_uetr for tx in known if self._status(tx.original_uetr) == "RJCT"}
        accept = accept and len(known) == len(req.transactions) and not rejected
        statuses = tuple(
            camt029.CancellationStatus(
                cancellation_status_id=tx.cancellation_id, original_end_to_end_id=tx.original_end_to_end_id, original_uetr=tx.original_uetr,
                status="ACCR" if accept else "RJCR",
                reason_code=None if accept else ("ARJR" if tx.original_uetr in rejected else b.recall_refuse_reason if tx.original_uetr in self.paid else "NOOR"),
            )
            for tx in req.transactions
        )
        answer = camt029.Resolution(
            assignment_id=f"K{uuid.uuid4().hex}"[:35], created_at=datetime.now(timezone.utc), assigner=self._network(), assignee=self._switch(),
            status="CNCL" if accept else "RJCR", transactions=statuses, case_id=req.case_id, case_creator=req.case_creator,
        )
        body = camt029.build_validated(answer, self.sim.schemas, self.sim.profile.exceptions.camt029_version)
        self.log.answers_sent[req.assignment_id] = body
        delay_s = b.recall_delay_ms / 1000
        self.sim._schedule(body, delay_s=delay_s)
        for tx in req.transactions:
            self.log.decided[tx.original_uetr or "-"] = "accepted" if accept else "refused"
        self.sim.stats["recalls_accepted" if accept else "recalls_refused"] += 1
        if accept:
            task = asyncio.create_task(self._return_later(known, req, delay_s + return_after_answer_s))
            self.sim._tasks.add(task)
            task.add_done_callback(self.sim._tasks.discard)
        return web.json_response({"assignment_id": req.assignment_id}, status=202)

    async def _return_later(self, txs: list[camt056.CancellationTx], req: camt056.CancellationRequest, delay_s: float) -> None:
        """The pacs.004 of an accepted recall, sent and recorded by the return desk (GET /sim/returns,
        `via` "recall"; kept in the state file like the network's own returns)."""
        from adapters.simulator_returns import SentReturn

        await asyncio.sleep(delay_s)
        body = self._return(txs, req)
        message = pacs004.parse(parse_untrusted(body))
        entries = [
            SentReturn(tx.original_uetr or "", message.message_id, tx.return_id, tx.returned_amount.value, tx.returned_amount.currency,
                       tx.reason_code or "", partial=False, via="recall",
                       end_to_end_id=tx.original_end_to_end_id, tx_id=tx.original_tx_id)  # for the settlement ledger
            for tx in message.transactions
        ]
        assert self.sim._session is not None
        await self.sim.returns.post(self.sim._session, body, entries)
        self.sim.stats["recall_returns_sent"] += 1

    def _status(self, uetr: str | None) -> str | None:
        """The status the network answered for a payment it received (ACSC, RJCT), if any."""
        entry = self.sim.received_log.uetrs.get(uetr or "")
        return entry.status if entry is not None else None

    def _return(self, txs: list[camt056.CancellationTx], req: camt056.CancellationRequest) -> bytes:
        """The network's pacs.004 returning the whole amount of each recalled payment."""
        p, now = self.sim.profile, datetime.now(timezone.utc)
        returns = []
        for tx in txs:
            paid = self.paid[tx.original_uetr or ""]
            left = self.sim.returns.left(tx.original_uetr or "")  # what the network has not returned already
            returns.append(pacs004.ReturnTx(
                return_id=f"B{uuid.uuid4().hex}"[:35], returned_amount=left if left is not None and Decimal(left.value) > 0 else paid.amount,
                original_group=OriginalGroup(paid.message_id, paid.message_type), original_end_to_end_id=paid.end_to_end_id,
                original_tx_id=paid.tx_id, original_uetr=tx.original_uetr, original_settlement_amount=paid.amount,
                settlement_date=now.date(), charge_bearer="SLEV", reason_code=recall_return_reason,
                additional_info=(f"recall {req.case_id or req.assignment_id} accepted"[:105],),
            ))
        message = pacs004.PaymentReturn(
            message_id=f"B{uuid.uuid4().hex}"[:35], created_at=now, transactions=tuple(returns),
            clearing_system_code=p.clearing_system_code,
            clearing_system_proprietary=None if p.clearing_system_code else p.clearing_system_proprietary,
            instructing_agent=self._network(), instructed_agent=self._switch(),
        )
        return pacs004.build_validated(message, self.sim.schemas)

    # -- the network recalls what it sent (control routes)
    async def send_recalls(self, request: web.Request) -> web.Response:
        data = await request.json()
        reason = data.get("reason", "FRAD")
        out = []
        for uetr in data.get("uetrs", []):
            assignment_id = f"P{uuid.uuid4().hex}"[:35]
            end_to_end = f"E{uetr.replace('-', '')}"[:35]  # as simulator_inbound names its payments
            req = camt056.CancellationRequest(
                assignment_id=assignment_id, created_at=datetime.now(timezone.utc), assigner=self._network(), assignee=self._switch(),
                transactions=(camt056.CancellationTx(cancellation_id=f"X{uuid.uuid4().hex}"[:35], original_end_to_end_id=end_to_end,
                                                     original_uetr=uetr, reason_code=reason),),
                case_id=f"S{uuid.uuid4().hex}"[:35], case_creator=self._network(),
            )
            body = camt056.build_validated(req, self.sim.schemas, self.sim.profile.exceptions.camt056_version)
            status, answer = await self._post(body)
            self.log.sent[uetr] = {"assignment_id": assignment_id, "reason_code": reason, "http_status": status, "response": answer}
            self.sim.stats["recalls_sent"] += 1
            out.append({"uetr": uetr, "assignment_id": assignment_id, "http_status": status, "response": answer})
        return web.json_response({"recalls": out})

    async def _post(self, body: bytes) -> tuple[int, Any]:
        assert self.sim._session is not None
        for attempt in range(post_attempts_max):
            try:
                async with self.sim._session.post(
                    self.sim.callback_url, data=self.sim.sealed(body), headers={"Content-Type": "application/xml; charset=utf-8"},
                    timeout=aiohttp.ClientTimeout(total=5.0),
                ) as resp:
                    text = await resp.text()
                    if resp.status < 500:
                        try:
                            return resp.status, await resp.json(content_type=None)
                        except ValueError:
                            return resp.status, text[:500]
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        return 0, None

    async def summary(self, _request: web.Request) -> web.Response:
        return web.json_response(self.log.as_json())
