"""The demo's participant (switch/tools/inbound_load.py) reads `mekong.inbound`, where partners'
recalls (InboundRecallV1, type "recall") arrive next to inbound payments: it must answer payments
as planned and never take a recall event for a payment to credit."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from switch.contracts import AmountV1, InboundPartyV1, InboundPaymentV1, InboundRecallV1
from switch.tools.inbound_load import InboundResult, participant_reply

UETR = "0b9d6c3e-1f2a-4b5c-8d7e-9f0a1b2c3d4e"
NOW = datetime(2026, 11, 28, tzinfo=timezone.utc)


def _payment(remittance: str) -> dict:
    event = InboundPaymentV1(
        uetr=UETR, participant="ACLBKHPPXXX", corridor="TH-KH", partner="promptpay", end_to_end_id="E1",
        debtor=InboundPartyV1(name="FOREIGN PAYER"), creditor=InboundPartyV1(name="Sok Dara", account="sok_dara@aclb"),
        amount=AmountV1(value="40000", currency="KHR"), remittance=remittance, reply_by=NOW, occurred_at=NOW,
    )
    return json.loads(event.model_dump_json())


def _recall() -> dict:
    event = InboundRecallV1(
        case_id="C" + "0" * 32, uetr=UETR, participant="ACLBKHPPXXX", corridor="TH-KH", partner="promptpay",
        end_to_end_id="E1", amount=AmountV1(value="40000", currency="KHR"), reason_code="FRAD", reply_by=NOW, occurred_at=NOW,
    )
    return json.loads(event.model_dump_json())


def test_a_recall_event_is_counted_and_never_answered_as_a_payment() -> None:
    result = InboundResult()
    assert participant_reply(_recall(), result) is None
    assert result.recall_events_seen == 1
    assert result.events_seen == 0 and not result.replies_sent and not result.participants


def test_payments_are_answered_as_their_remittance_plans() -> None:
    result = InboundResult()
    accept = participant_reply(_payment("demo:accept"), result)
    assert accept == {"version": 1, "uetr": UETR, "participant": "ACLBKHPPXXX", "decision": "ACCEPT"}
    reject = participant_reply(_payment("demo:reject"), result)
    assert reject is not None and reject["decision"] == "REJECT" and reject["reason_code"] == "AC04"
    assert participant_reply(_payment("demo:silent"), result) is None
    assert result.events_seen == 3 and result.recall_events_seen == 0 and result.replies_sent["silent"] == 1
    assert result.participants[UETR] == "ACLBKHPPXXX" and result.amounts[UETR] == {"value": "40000", "currency": "KHR"}
