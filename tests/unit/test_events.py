"""switch/service/events.py builds every status event and its outbox row: each event has its id and
its type, validates against the contract, and its row's message id is the event's id."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone

from iso20022.schemas import SchemaSet
from switch import config as config_mod
from switch.contracts import StatusEventV1
from switch.domain.payment import PaymentState
from switch.service import events
from switch.service.pain_reports import origin_of
from tests.factories import sample_payment

NOW = datetime(2025, 6, 2, 3, 0, tzinfo=timezone.utc)
CONFIG = config_mod.load(env={})


def _event_of(row_body: bytes) -> StatusEventV1:
    return StatusEventV1.model_validate_json(row_body)


def test_a_payment_s_status_event_has_an_id_and_type_status_and_validates() -> None:
    p = sample_payment(PaymentState.COMPLETED, created_at=NOW)
    row = events.status_outbox(events.status_event(p, now=NOW, reason="credited"), CONFIG, now=NOW, uetr=p.uetr)
    event = _event_of(row.body)
    assert event.event_id == row.message_id and event.type == "status"
    assert (event.uetr, event.state, event.final, event.reason) == (p.uetr, "COMPLETED", True, "credited")
    assert (row.kind, row.destination, row.key, row.uetrs) == (
        "status", CONFIG.kafka.status_topic, f"{p.participant}/{p.instruction_id}", (p.uetr,))


def test_every_event_gets_a_new_id() -> None:
    p = sample_payment(PaymentState.SUBMITTED, created_at=NOW)
    assert events.status_event(p, now=NOW).event_id != events.status_event(p, now=NOW).event_id


def test_a_reject_event_is_final_without_a_uetr() -> None:
    event = events.reject_event("ACLBKHPPXXX", "INS-1", "KH-TH", "AM09", "amount must be positive", now=NOW, replayed=True)
    assert (event.type, event.state, event.final, event.uetr, event.reason_code, event.replayed) == (
        "status", "REJECTED", True, None, "AM09", True)
    assert event.event_id


def test_a_conflict_event_is_not_a_state_of_the_original() -> None:
    event = events.conflict_event("ACLBKHPPXXX", "INS-1", "KH-TH", "5f0e7a1c-3b2d-4e6f-8a9b-0c1d2e3f4a5b", now=NOW)
    assert (event.type, event.state, event.final, event.reason_code) == ("conflict", "CONFLICT", False, "DUPL")
    assert event.event_id and event.uetr == "5f0e7a1c-3b2d-4e6f-8a9b-0c1d2e3f4a5b"


def test_a_dead_letter_event_s_id_is_fixed_by_the_record_s_coordinates() -> None:
    def row(offset: int):  # type: ignore[no-untyped-def]
        return events.dead_letter_outbox(
            "ACLBKHPPXXX", "INS-1", topic="mekong.instructions", partition=0, offset=offset, reason_code="FF01",
            reason="x" * 1000, config=CONFIG, now=NOW,
        )

    first, again, other = row(7), row(7), row(8)
    assert first.message_id == again.message_id != other.message_id
    assert first.message_id.startswith("D") and len(first.message_id) == 41
    event = _event_of(first.body)
    assert event.event_id == first.message_id and event.type == "status" and event.final
    assert event.reason == "x" * 300 + f" (record in {CONFIG.kafka.dlq_topic})"
    assert json.loads(first.body)["uetr"] is None and first.uetrs == ()


def test_the_participant_hears_a_pain002_too_when_a_pain001_payment_is_final(schemas: SchemaSet) -> None:
    p = replace(sample_payment(PaymentState.REJECTED, created_at=NOW), reason_code="AC04", origin=origin_of("MSG1", "PMT1", "E2E1"))
    rows = events.participant_outbox(p, CONFIG, schemas, now=NOW, reason="closed")
    assert [r.body[:1] for r in rows] == [b"{", b"<"]
    submitted = replace(p, state=PaymentState.SUBMITTED, reason_code=None)
    assert len(events.participant_outbox(submitted, CONFIG, schemas, now=NOW, reason=None)) == 1
    json_only = replace(p, origin=None)
    assert len(events.participant_outbox(json_only, CONFIG, schemas, now=NOW, reason="closed")) == 1
