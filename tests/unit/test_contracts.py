"""The Kafka contracts: InstructionV1 (strict, extra fields forbidden) and StatusEventV1."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from switch.contracts import InstructionV1, StatusEventV1
from tests.factories import sample_instruction

VALID: dict[str, Any] = sample_instruction(instruction_id="INS-2025-03-10/0001")


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload)


def _with(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(VALID)
    out.update(changes)
    return out


def _rejected(payload: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as exc:
        InstructionV1.model_validate_json(_json(payload))
    return exc.value


def test_a_valid_instruction_parses_into_typed_fields() -> None:
    ins = InstructionV1.model_validate_json(_json(VALID))
    assert ins.instruction_id == "INS-2025-03-10/0001"
    assert ins.amount.value == "200000" and ins.amount.currency == "KHR"
    assert ins.creditor.proxy is not None and ins.creditor.proxy.value == "0066812345678"
    assert ins.creditor.account is None


def test_a_creditor_reached_by_account_and_agent_parses() -> None:
    ins = InstructionV1.model_validate_json(_json(_with(creditor={"name": "Somchai", "account": "0041234567", "agent": "004"})))
    assert (ins.creditor.account, ins.creditor.agent, ins.creditor.proxy) == ("0041234567", "004", None)


def test_the_instruction_is_frozen() -> None:
    ins = InstructionV1.model_validate_json(_json(VALID))
    with pytest.raises(ValidationError):
        ins.instruction_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize("where", ["top", "debtor", "creditor", "amount", "proxy"])
def test_an_extra_field_anywhere_is_rejected(where: str) -> None:
    payload = copy.deepcopy(VALID)
    target = {
        "top": payload,
        "debtor": payload["debtor"],
        "creditor": payload["creditor"],
        "amount": payload["amount"],
        "proxy": payload["creditor"]["proxy"],
    }[where]
    target["priority"] = "HIGH"
    errors = _rejected(payload).errors()
    assert [e["type"] for e in errors] == ["extra_forbidden"]


def test_an_amount_sent_as_a_json_number_is_rejected() -> None:
    errors = _rejected(_with(amount={"value": 200000, "currency": "KHR"})).errors()
    assert errors[0]["loc"] == ("amount", "value")


def test_an_amount_sent_as_a_json_float_is_rejected() -> None:
    assert _rejected(_with(amount={"value": 1650.25, "currency": "THB"})).errors()[0]["loc"] == ("amount", "value")


@pytest.mark.parametrize("value", ["1,500", "-100", "1e5", "1.123456", "1234567890123456789", ".5", " 100"])
def test_an_amount_outside_the_xsd_decimal_shape_is_rejected(value: str) -> None:
    _rejected(_with(amount={"value": value, "currency": "KHR"}))


def test_version_must_be_one() -> None:
    _rejected(_with(version=2))
    _rejected(_with(version="1"))  # strict: no coercion from text


def test_creditor_with_both_account_and_proxy_is_rejected() -> None:
    creditor = {"name": "Somchai", "account": "0041234567", "agent": "004", "proxy": {"type": "MOBILE", "value": "0066812345678"}}
    assert "exactly one of account or proxy" in str(_rejected(_with(creditor=creditor)))


def test_creditor_with_neither_account_nor_proxy_is_rejected() -> None:
    assert "exactly one of account or proxy" in str(_rejected(_with(creditor={"name": "Somchai"})))


def test_creditor_account_without_agent_is_rejected() -> None:
    assert "needs its agent" in str(_rejected(_with(creditor={"name": "Somchai", "account": "0041234567"})))


def test_unknown_proxy_type_is_rejected() -> None:
    _rejected(_with(creditor={"name": "Somchai", "proxy": {"type": "EMAIL", "value": "a@b.th"}}))


def test_instruction_id_of_35_characters_is_accepted_and_36_rejected() -> None:
    assert InstructionV1.model_validate_json(_json(_with(instruction_id="I" * 35))).instruction_id == "I" * 35
    errors = _rejected(_with(instruction_id="I" * 36)).errors()
    assert errors[0]["loc"] == ("instruction_id",) and errors[0]["type"] == "string_too_long"


@pytest.mark.parametrize("instruction_id", ["", "-starts-with-dash", "has space", "ümlaut"])
def test_instruction_id_outside_the_id_alphabet_is_rejected(instruction_id: str) -> None:
    _rejected(_with(instruction_id=instruction_id))


@pytest.mark.parametrize(
    ("field", "value"),
    [("participant", "aclbkhpp"), ("participant", "ACLBKHPPXX"), ("corridor", "KHTH"), ("corridor", "kh-th")],
)
def test_participant_and_corridor_follow_their_patterns(field: str, value: str) -> None:
    _rejected(_with(**{field: value}))


def test_debtor_account_must_be_a_bakong_id() -> None:
    _rejected(_with(debtor={"name": "Sok Dara", "account": "0123456789", "currency": "KHR"}))


def test_remittance_longer_than_140_characters_is_rejected() -> None:
    _rejected(_with(remittance="x" * 141))


def test_status_event_round_trips_through_json_and_forbids_extra_fields() -> None:
    event = StatusEventV1(
        instruction_id="INS-1",
        participant="ACLBKHPPXXX",
        uetr="5f0e7a1c-3b2d-4e6f-8a9b-0c1d2e3f4a5b",
        corridor="KH-TH",
        state="REJECTED",
        final=True,
        reason_code="AC04",
        occurred_at=datetime(2025, 3, 10, 9, 30, tzinfo=timezone(timedelta(hours=7))),
    )
    assert StatusEventV1.model_validate_json(event.model_dump_json()) == event
    with pytest.raises(ValidationError):
        StatusEventV1.model_validate({**event.model_dump(), "extra": 1})


# ----------------------------------------------------------------------------- QR-initiated
_QR = "00020101021229370016A000000677010111011300668123456785303764540515000" "5802TH6304ABCD"


def _qr_doc(qr: str = _QR, **changes: object) -> dict:
    doc = sample_instruction(qr=qr, **changes)
    for key in ("creditor", "corridor", "amount"):
        if key not in changes:
            doc.pop(key)
    return doc


def test_a_qr_replaces_creditor_corridor_and_amount() -> None:
    ins = InstructionV1.model_validate(_qr_doc())
    assert (ins.qr, ins.creditor, ins.corridor, ins.amount) == (_QR, None, None, None)


def test_a_qr_and_a_creditor_together_are_refused() -> None:
    doc = sample_instruction(qr=_QR)
    with pytest.raises(ValidationError, match="exactly one of creditor or qr"):
        InstructionV1.model_validate(doc)


def test_without_a_qr_corridor_and_amount_are_required() -> None:
    doc = sample_instruction()
    doc.pop("amount")
    with pytest.raises(ValidationError, match="corridor and amount are required"):
        InstructionV1.model_validate(doc)


def test_the_qr_is_part_of_the_fingerprint() -> None:
    a = InstructionV1.model_validate(_qr_doc())
    b = InstructionV1.model_validate(_qr_doc(qr=_QR.replace("ABCD", "ABCE")))
    assert a.fingerprint() != b.fingerprint()
