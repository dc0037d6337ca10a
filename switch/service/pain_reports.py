"""pain.002 reports for participants that send pain.001 (DESIGN: "switch -> participant: JSON
status event, and pain.002 for pain.001 senders"). Two moments:

  admission   one pain.002 per pain.001 record: every transaction ACCP (admitted, with its UETR)
              or RJCT with the ISO reason, grouped by the original PmtInf
  final       one pain.002 per payment when it reaches a final state: ACSC or RJCT + reason

Both go to the status topic as XML (the first byte is `<`; JSON events start with `{`), keyed
`participant/MsgId`. Every report is validated against the official XSD before it is stored.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from iso20022 import pain001, pain002
from iso20022.model import Amount, Party, PartyIdentification
from iso20022.pacs002 import StatusReason
from iso20022.schemas import SchemaSet
from switch.config import SwitchConfig
from switch.domain.payment import Payment, PaymentState
from switch.service.ports import OutboxMessage

ORIGIN_PREFIX: Final = "pain.001"
additional_info_chars_max: Final = 105


def origin_of(message_id: str, payment_information_id: str, end_to_end_id: str) -> str:
    return "\t".join((ORIGIN_PREFIX, message_id, payment_information_id, end_to_end_id))


def parse_origin(origin: str) -> tuple[str, str, str] | None:
    parts = origin.split("\t")
    if len(parts) != 4 or parts[0] != ORIGIN_PREFIX:
        return None
    return parts[1], parts[2], parts[3]


def _reasons(code: str | None, detail: str | None) -> tuple[StatusReason, ...]:
    if code is None:
        return ()
    return (StatusReason(code, ((detail or "")[:additional_info_chars_max],) if detail else ()),)


def _outbox(report: pain002.CustomerPaymentStatusReport, participant: str, config: SwitchConfig, schemas: SchemaSet,
            *, now: datetime, uetrs: tuple[str, ...]) -> OutboxMessage:
    body = pain002.build_validated(report, schemas)
    return OutboxMessage(
        kind="status",
        destination=config.kafka.status_topic,
        message_id=report.message_id,
        uetrs=uetrs,
        key=f"{participant}/{report.group_status.original_message_id}",
        body=body,
        created_at=now,
    )


def _initiating_party(config: SwitchConfig) -> Party:
    return Party(name=config.switch.name[:140], identification=PartyIdentification(config.switch.agent_bic, organisation=True))


def final_report(p: Payment, config: SwitchConfig, schemas: SchemaSet, *, now: datetime, reason: str | None) -> OutboxMessage:
    """The pain.002 for one payment that came in a pain.001 and reached a final state."""
    origin = parse_origin(p.origin or "")
    if origin is None:
        raise ValueError(f"payment {p.uetr} has no pain.001 origin")
    message_id, pmt_inf_id, end_to_end_id = origin
    completed = p.state in (PaymentState.COMPLETED, PaymentState.SETTLED)
    report = pain002.CustomerPaymentStatusReport(
        message_id=f"P{os.urandom(16).hex()}",
        created_at=now,
        initiating_party=_initiating_party(config),
        group_status=pain002.GroupStatus(original_message_id=message_id),
        payment_instructions=(
            pain002.PaymentInstructionStatus(
                original_payment_information_id=pmt_inf_id,
                transactions=(
                    pain002.TransactionReport(
                        status=pain002.TransactionStatus.ACSC if completed else pain002.TransactionStatus.RJCT,
                        original_instruction_id=p.instruction_id,
                        original_end_to_end_id=end_to_end_id,
                        original_uetr=p.uetr,
                        reasons=() if completed else _reasons(p.reason_code or "MS03", reason),
                    ),
                ),
            ),
        ),
    )
    return _outbox(report, p.participant, config, schemas, now=now, uetrs=(p.uetr,))


@dataclass(frozen=True, slots=True)
class TransactionDecision:
    """How admission ended for one pain.001 transaction."""

    payment_information_id: str
    instruction_id: str | None
    end_to_end_id: str
    amount: Amount
    uetr: str | None  # admitted: the payment's UETR
    reason_code: str | None  # refused
    detail: str | None


def group_reject(message_id: str, participant: str, reason_code: str, detail: str, config: SwitchConfig, schemas: SchemaSet,
                 *, now: datetime, source_ref: str) -> OutboxMessage:
    """A pain.002 refusing a whole pain.001 (GrpSts RJCT with the reason), e.g. a control sum
    that does not add up. The record itself goes to the dead-letter topic."""
    report = pain002.CustomerPaymentStatusReport(
        message_id=admission_message_id(source_ref),
        created_at=now,
        initiating_party=_initiating_party(config),
        group_status=pain002.GroupStatus(original_message_id=message_id, status="RJCT", reasons=_reasons(reason_code, detail)),
    )
    return _outbox(report, participant, config, schemas, now=now, uetrs=())


def admission_message_id(source_ref: str) -> str:
    """The acceptance report's MsgId, fixed by the Kafka record it answers (topic:partition:offset)."""
    return "A" + hashlib.sha256(source_ref.encode()).hexdigest()[:32]


def admission_report(
    message: pain001.CustomerCreditTransferInitiation,
    participant: str,
    decisions: Sequence[TransactionDecision],
    config: SwitchConfig,
    schemas: SchemaSet,
    *,
    now: datetime,
    source_ref: str,
) -> OutboxMessage:
    """The acceptance report for a whole pain.001: ACCP or RJCT per transaction. Its message id
    is derived from the Kafka record, so a redelivered record cannot announce it twice."""
    by_pmt_inf: dict[str, list[pain002.TransactionReport]] = {}
    for d in decisions:
        by_pmt_inf.setdefault(d.payment_information_id, []).append(
            pain002.TransactionReport(
                status=pain002.TransactionStatus.ACCP if d.uetr else pain002.TransactionStatus.RJCT,
                original_instruction_id=d.instruction_id,
                original_end_to_end_id=d.end_to_end_id,
                original_uetr=d.uetr,
                reasons=_reasons(d.reason_code, d.detail),
                original_amount=d.amount,
            )
        )
    accepted = sum(1 for d in decisions if d.uetr)
    group = "ACCP" if accepted == len(decisions) else "RJCT" if accepted == 0 else "PART"
    report = pain002.CustomerPaymentStatusReport(
        message_id=admission_message_id(source_ref),
        created_at=now,
        initiating_party=_initiating_party(config),
        group_status=pain002.GroupStatus(
            original_message_id=message.message_id,
            original_created_at=message.created_at,
            original_tx_count=len(decisions),
            status=group,
        ),
        payment_instructions=tuple(
            pain002.PaymentInstructionStatus(original_payment_information_id=pmt_inf, transactions=tuple(txs))
            for pmt_inf, txs in by_pmt_inf.items()
        ),
    )
    return _outbox(report, participant, config, schemas, now=now, uetrs=tuple(d.uetr for d in decisions if d.uetr))

