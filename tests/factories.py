"""Sample values shared by the tests: one payment and one instruction v1, changed per test."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from switch.domain.money import CURRENCIES, Money
from switch.domain.payment import Party, Payment, PaymentState

SAMPLE_UETR = "5f0e7a1c-3b2d-4e6f-8a9b-0c1d2e3f4a5b"

_INSTRUCTION: dict[str, Any] = {
    "version": 1,
    "instruction_id": "INS-0001",
    "participant": "ACLBKHPPXXX",
    "corridor": "KH-TH",
    "debtor": {"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "KHR"},
    "creditor": {"name": "Somchai Jaidee", "proxy": {"type": "MOBILE", "value": "0066812345678"}},
    "amount": {"value": "200000", "currency": "KHR"},
    "remittance": "Family support",
}


def sample_instruction(**changes: Any) -> dict[str, Any]:
    """A valid instruction v1 as a participant sends it (a fresh copy, top-level keys replaced)."""
    doc = copy.deepcopy(_INSTRUCTION)
    doc.update(changes)
    return doc


def sample_payment(
    state: PaymentState,
    *,
    created_at: datetime,
    version: int = 1,
    reason_code: str | None = None,
    uetr: str = SAMPLE_UETR,
) -> Payment:
    """200,000 KHR to a PromptPay mobile proxy at 0.0082882132 THB/KHR, with a 2,000 KHR fee."""
    khr, thb = CURRENCIES["KHR"], CURRENCIES["THB"]
    return Payment(
        uetr=uetr,
        instruction_id="INS-0001",
        participant="ACLBKHPPXXX",
        corridor="KH-TH",
        partner="promptpay",
        debtor=Party(name="Sok Dara", account="sok_dara@aclb", agent="ACLBKHPPXXX"),
        creditor=Party(name="Somchai Jaidee", proxy_type="MOBILE", proxy="0066812345678"),
        instructed=Money(20_000_000, khr),
        source=Money(20_000_000, khr),
        target=Money(165_764, thb),
        fee=Money(200_000, khr),
        fx_rate="0.0082882132",
        quote_id="Q0123456789abcdef01234567",
        remittance=None,
        state=state,
        reason_code=reason_code,
        version=version,
        created_at=created_at,
        updated_at=created_at,
    )
