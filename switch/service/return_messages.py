"""The pacs.004 the switch sends a partner (issue 9): returning (part of) an inbound payment the
partner sent, because its Bakong participant returns it or accepted the partner's recall. Shared
by the returns and recall flows; pure apart from the XSD check."""

from __future__ import annotations

from datetime import datetime

from iso20022 import pacs004
from iso20022.model import Agent, Amount
from switch.domain.money import Money
from switch.domain.payment import Payment
from switch.service.handlers import Deps
from switch.domain.case import return_message_id
from switch.service.ports import OutboxMessage


def _amount(m: Money) -> Amount:
    return Amount(m.to_text(m.currency.decimals_accepted_max), m.currency.code)


def pacs004_to_partner(
    p: Payment, amount: Money, deps: Deps, *, return_id: str, reason_code: str, detail: str | None, now: datetime,
) -> OutboxMessage:
    """The pacs.004 returning `amount` of inbound payment `p` to the partner that sent it, as an
    outbox row (validated against the official XSD; delivered until it arrives; uetrs=(): its
    delivery moves no payment: the case and the payment were booked when it was written)."""
    profile = deps.mappings[p.partner].profile
    tx = pacs004.ReturnTx(
        return_id=return_id[:35],
        returned_amount=_amount(amount),
        original_end_to_end_id=p.instruction_id,
        original_uetr=p.uetr,
        original_settlement_amount=_amount(p.source),
        settlement_date=now.date(),
        charge_bearer="SLEV",
        reason_code=reason_code,
        additional_info=((detail or "")[:105],) if detail else (),
    )
    message = pacs004.PaymentReturn(
        message_id=return_message_id(p.uetr, return_id),
        created_at=now,
        transactions=(tx,),
        clearing_system_code=profile.clearing_system_code,
        clearing_system_proprietary=None if profile.clearing_system_code else profile.clearing_system_proprietary,
        instructing_agent=Agent(bicfi=deps.config.switch.agent_bic),
    )
    body = pacs004.build_validated(message, deps.schemas)
    return OutboxMessage(
        kind="partner", destination=p.partner, message_id=message.message_id, uetrs=(), key=p.uetr, body=body, created_at=now,
    )
