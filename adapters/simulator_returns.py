"""The partner network's side of returns (pacs.004, issue 9 item 2), for the simulators.

Outbound (the network returns a payment the switch sent it): a share (`return_rate`) of the
payments it completed is returned after `return_delay_ms`, half of it for a share of those
(`partial_return_rate`), with a reason drawn from `return_reasons`; each pacs.004 (the profile's
version, validated against the official XSD) is signed when sent and POSTed to the switch's partner
endpoint (the pacs.002 callback URL). `POST /sim/return` returns one payment the network completed
on demand (`{"uetr", "amount"?, "reason"?, "message_id"?, "return_id"?}`; no amount: what it has
not returned yet); the switch's answer comes back in the response.

Inbound (the switch returns a payment the network sent, at its participant's request): the
network takes the pacs.004 on its endpoint, validates it and records it. The admi.002 the switch
sends when it refuses one of the network's messages is recorded too.

  GET /sim/returns   {"sent": [...], "received": [...], "rejects": [...]}

A pacs.004 the network sends (its own returns and those answering an accepted recall, `via`
"return" / "recall") is POSTed until the switch answers (a 4xx or 2xx; connection errors, timeouts
and 5xx are tried again with the same message id, up to `post_attempts_max`): the switch books a
message id once, so a retry after an answer that got lost is answered 200 `duplicate`. With a state
file, each return is written to it before it leaves (`return_sending`) and again with the switch's
answer (`return_answered`), and both are reloaded at start: `sent` survives a kill of the
simulator, and a return whose answer never came because the simulator was killed in between is
listed with `in_flight_at_crash` (the network does not know whether the switch booked it).

Settlement (issue 10): with a ledger (adapters/simulator_settlement.py), a pacs.004 the network
sent is recorded as settled once the switch took it (2xx: CRDT to the hub), and each pacs.004
received from the switch once per message id (DBIT).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from adapters.base import PartnerProfile
from adapters.simulator_inbound import post_timeout_s
from iso20022 import admi002, pacs004
from iso20022.model import Amount
from iso20022.schemas import SchemaSet

if TYPE_CHECKING:
    from adapters.simulator_settlement import SettlementLedger

completed_kept_max: Final = 100_000  # payments the network remembers it could return
log_entries_max: Final = 10_000
post_attempts_max: Final = 8  # about 7 s of backoff: a switch restarting after a crash is back by then


@dataclass(frozen=True, slots=True)
class Completed:
    """A payment the network credited: what a later return names."""

    uetr: str
    end_to_end_id: str
    tx_id: str | None
    amount: Amount
    original_message_id: str


@dataclass
class SentReturn:
    uetr: str
    message_id: str
    return_id: str
    amount: str
    currency: str
    reason_code: str
    partial: bool
    http_status: int | None = None
    answer: Any = None
    via: str = "return"  # "recall": the pacs.004 answering a recall the network accepted
    attempts: int = 0
    in_flight_at_crash: bool = False  # reloaded from the state file: sent, no answer recorded before the kill
    end_to_end_id: str | None = None  # the returned payment's (for the settlement ledger)
    tx_id: str | None = None


class ReturnDesk:
    def __init__(
        self, profile: PartnerProfile, schemas: SchemaSet, *, switch_url: str, sealed: Callable[[bytes], bytes],
        record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.record = record  # appends a fact to the state file (None: nothing kept)
        self.profile = profile
        self.schemas = schemas
        self.switch_url = switch_url
        self.sealed = sealed
        self.completed: OrderedDict[str, Completed] = OrderedDict()
        self.returned_minor: dict[str, Decimal] = {}  # uetr -> what the network returned so far
        self.sent: list[SentReturn] = []
        self.received: list[dict[str, Any]] = []  # pacs.004 from the switch
        self.rejects: list[dict[str, Any]] = []  # admi.002 from the switch
        self.bodies: OrderedDict[str, bytes] = OrderedDict()  # MsgId -> the pacs.004 sent: a resend is the same bytes
        self.ledger: SettlementLedger | None = None  # what the network settled (issue 10); None: nothing kept
        self._received_ids: OrderedDict[str, None] = OrderedDict()  # pacs.004 MsgIds from the switch already settled

    # ---------------------------------------------------------------- the network returns
    def note_completed(self, c: Completed) -> None:
        self.completed[c.uetr] = c
        while len(self.completed) > completed_kept_max:
            self.completed.popitem(last=False)

    def half(self, amount: Amount) -> Amount:
        """Half of `amount`, rounded down to the network's decimals (the whole when that is zero)."""
        quantum = Decimal(1).scaleb(-self.profile.amount_decimals)
        half = (Decimal(amount.value) / 2).quantize(quantum, rounding=ROUND_DOWN)
        return Amount(f"{half:f}", amount.currency) if half > 0 else amount

    def left(self, uetr: str) -> Amount | None:
        c = self.completed.get(uetr)
        if c is None:
            return None
        rest = Decimal(c.amount.value) - self.returned_minor.get(uetr, Decimal(0))
        return Amount(f"{rest:f}", c.amount.currency)

    def build(
        self, c: Completed, amount: Amount, reason_code: str, *, message_id: str | None = None, return_id: str | None = None,
    ) -> tuple[bytes, str, str]:
        """A pacs.004 returning `amount` of payment `c` (validated): (bytes, MsgId, RtrId)."""
        message_id = message_id or f"RT{uuid.uuid4().hex}"[:35]
        return_id = return_id or f"R{uuid.uuid4().hex}"[:35]
        tx = pacs004.ReturnTx(
            return_id=return_id, returned_amount=amount, original_end_to_end_id=c.end_to_end_id, original_tx_id=c.tx_id,
            original_uetr=c.uetr, original_settlement_amount=c.amount, settlement_date=datetime.now(timezone.utc).date(),
            charge_bearer="SLEV", reason_code=reason_code, additional_info=(f"returned by the {self.profile.network} simulator",),
        )
        message = pacs004.PaymentReturn(
            message_id=message_id, created_at=datetime.now(timezone.utc), transactions=(tx,),
            clearing_system_code=self.profile.clearing_system_code,
            clearing_system_proprietary=None if self.profile.clearing_system_code else self.profile.clearing_system_proprietary,
        )
        return pacs004.build_validated(message, self.schemas), message_id, return_id

    async def send(
        self, session: aiohttp.ClientSession, uetr: str, amount: Amount | None, reason_code: str, *, partial: bool = False,
        message_id: str | None = None, return_id: str | None = None,
    ) -> SentReturn | None:
        """Return `amount` (None: what is left) of a payment the network completed; None when it
        completed no such payment. A `message_id` it sent before: that pacs.004 again, byte for byte."""
        c = self.completed.get(uetr)
        if c is None:
            return None
        amount = amount or self.left(uetr)
        assert amount is not None
        if message_id in self.bodies:
            body, resent = self.bodies[message_id], True
        else:
            body, message_id, return_id = self.build(c, amount, reason_code, message_id=message_id, return_id=return_id)
            self.bodies[message_id], resent = body, False
            while len(self.bodies) > log_entries_max:
                self.bodies.popitem(last=False)
        sent = SentReturn(uetr, message_id, return_id, amount.value, amount.currency, reason_code, partial,
                          end_to_end_id=c.end_to_end_id, tx_id=c.tx_id)
        await self.post(session, body, [sent], resent=resent)
        if sent.http_status == 200 and not resent:
            self.returned_minor[uetr] = self.returned_minor.get(uetr, Decimal(0)) + Decimal(amount.value)
        return sent

    async def post(self, session: aiohttp.ClientSession, body: bytes, entries: list[SentReturn], *, resent: bool = False) -> None:
        """POST a built pacs.004 (`entries`: one per transaction, all of one message) until the switch
        answers, recording it (and, with a state file, writing it before it leaves and with the answer)."""
        for sent in entries:
            if len(self.sent) < log_entries_max:
                self.sent.append(sent)
            if self.record is not None and not resent:
                self.record({"kind": "return_sending", **asdict(sent)})
        status: int | None = None
        answer: Any = None
        for attempt in range(post_attempts_max):
            for sent in entries:
                sent.attempts = attempt + 1
            try:
                async with session.post(
                    self.switch_url, data=self.sealed(body), headers={"Content-Type": "application/xml; charset=utf-8"},
                    timeout=aiohttp.ClientTimeout(total=post_timeout_s),
                ) as resp:
                    status = resp.status
                    try:
                        answer = await resp.json(content_type=None)
                    except ValueError:
                        answer = (await resp.text())[:500]
                if status < 500:
                    break
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, answer = None, f"{type(exc).__name__}: {exc}"[:500]
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        for sent in entries:
            sent.http_status, sent.answer = status, answer
            if self.ledger is not None and not resent and status is not None and 200 <= status < 300:  # the return moved the money
                self.ledger.returned(sent.message_id, sent.uetr, sent.end_to_end_id, sent.tx_id, Amount(sent.amount, sent.currency),
                                     sent.reason_code or None, by_network=True)
        if self.record is not None:
            self.record({"kind": "return_answered", "message_id": entries[0].message_id, "http_status": status,
                         "answer": answer if isinstance(answer, (dict, str)) else None})

    def restore(self, facts: list[dict[str, Any]]) -> None:
        """The returns sent in earlier lives, from the state file (`ReceivedLog.return_facts`)."""
        answers = {f["message_id"]: f for f in facts if f["kind"] == "return_answered"}
        fields = set(SentReturn.__dataclass_fields__)
        for fact in facts:
            if fact["kind"] != "return_sending":
                continue
            sent = SentReturn(**{k: v for k, v in fact.items() if k in fields})
            answered = answers.get(sent.message_id)
            if answered is None:
                sent.in_flight_at_crash = True
                sent.answer = "unknown: the simulator was killed before the switch answered"
            else:
                sent.http_status, sent.answer = answered["http_status"], answered["answer"]
                if sent.http_status == 200:
                    self.returned_minor[sent.uetr] = self.returned_minor.get(sent.uetr, Decimal(0)) + Decimal(sent.amount)
            if len(self.sent) < log_entries_max:
                self.sent.append(sent)

    # ---------------------------------------------------------------- the switch returns, or refuses
    def receive_return(self, root: Any, message_type: str) -> dict[str, Any]:
        self.schemas.validate(root, message_type)
        message = pacs004.parse(root)
        entry = {
            "message_id": message.message_id,
            "returns": [
                {"uetr": tx.original_uetr, "end_to_end_id": tx.original_end_to_end_id, "return_id": tx.return_id,
                 "amount": tx.returned_amount.value, "currency": tx.returned_amount.currency, "reason_code": tx.reason_code}
                for tx in message.transactions
            ],
        }
        if len(self.received) < log_entries_max:
            self.received.append(entry)
        if self.ledger is not None and message.message_id not in self._received_ids:  # a resend moves nothing again
            self._received_ids[message.message_id] = None
            while len(self._received_ids) > log_entries_max:
                self._received_ids.popitem(last=False)
            for tx in message.transactions:
                if tx.original_uetr:
                    self.ledger.returned(message.message_id, tx.original_uetr, tx.original_end_to_end_id, tx.original_tx_id,
                                         tx.returned_amount, tx.reason_code, by_network=False)
        return entry

    def receive_reject(self, root: Any) -> dict[str, Any]:
        self.schemas.validate(root, admi002.VERSION)
        reject = admi002.parse(root)
        entry = {"reference": reject.reference, "reason_code": reject.reason_code, "description": reject.description}
        if len(self.rejects) < log_entries_max:
            self.rejects.append(entry)
        return entry

    def summary(self) -> dict[str, Any]:
        return {"sent": [asdict(s) for s in self.sent], "received": self.received, "rejects": self.rejects}
