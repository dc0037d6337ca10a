"""Inbound deduplication, driven through the real accept_inbound on the in-memory unit of work
(tests/fakes.py): who hears what when a UETR or a message id comes back."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from adapters.inbound import InboundTransfer
from iso20022 import pacs002
from iso20022.model import Amount
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch.service.handlers import Deps
from switch.service.inbound import AcceptInbound, accept_inbound, resends
from tests.fakes import FakeClock, FakeUnitOfWork, deps_from_config

NOW = datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)
UETR = "0b9d6c3e-1f2a-4b5c-8d7e-9f0a1b2c3d4e"
TRANSFER = InboundTransfer(
    uetr=UETR, end_to_end_id="E0b9d6c3e1f2a4b5c8d7e9f0a1b2c3d4e", amount=Amount("40000", "KHR"),
    instructed_amount=None, exchange_rate=None, debtor_name="SOMCHAI JAIDEE", debtor_account="1234567890",
    debtor_agent="014", creditor_name="Sok Dara", creditor_account="sok_dara@aclb", creditor_proxy_type=None,
    creditor_proxy=None, remittance=None,
)


@pytest.fixture(scope="module")
def deps(schemas: SchemaSet) -> Deps:
    return deps_from_config(schemas, FakeClock(NOW), partners=("promptpay", "lapnet"))


async def _send(uow: FakeUnitOfWork, deps: Deps, partner: str, message_id: str, *transfers: InboundTransfer,
                body: bytes | None = None) -> list[tuple[str, str, str | None, str]]:
    """(destination, status, reason code, message id) of each partner answer the message got."""
    body = body if body is not None else repr((message_id, transfers)).encode()
    (outcome,) = await accept_inbound([AcceptInbound(partner, message_id, "pacs.008.001.13", body, transfers)], uow, deps)
    answers = []
    for m in outcome.partner_outbox:
        tx = pacs002.parse(parse_untrusted(m.body)).transactions[0]
        answers.append((m.destination, tx.status.value, tx.reasons[0].code if tx.reasons else None, m.message_id))
    return answers


async def test_another_partner_reusing_a_booked_uetr_is_answered_dupl_itself(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    assert await _send(uow, deps, "promptpay", "M1", TRANSFER) == []  # booked, waits for the participant
    booked = uow.payments[UETR]
    answers = await _send(uow, deps, "lapnet", "L1", TRANSFER)
    assert [(d, s, r) for d, s, r, _ in answers] == [("lapnet", "RJCT", "DUPL")]
    assert uow.payments[UETR] == booked


async def test_the_same_partner_resending_the_same_payment_is_not_refused(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _send(uow, deps, "promptpay", "M1", TRANSFER)
    assert await _send(uow, deps, "promptpay", "M2", TRANSFER) == []  # still waiting: in progress
    assert await _send(uow, deps, "promptpay", "M1", TRANSFER) == []  # the same message again


async def test_the_same_partner_reusing_a_uetr_for_another_amount_is_answered_dupl(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _send(uow, deps, "promptpay", "M1", TRANSFER)
    changed = dataclasses.replace(TRANSFER, amount=Amount("50000", "KHR"))
    answers = await _send(uow, deps, "promptpay", "M2", changed)
    assert [(d, s, r) for d, s, r, _ in answers] == [("promptpay", "RJCT", "DUPL")]
    assert uow.payments[UETR].source.to_text(0) == "40000"


async def test_a_message_id_reused_for_another_payment_is_answered_dupl_and_books_nothing(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _send(uow, deps, "promptpay", "M1", TRANSFER)
    other = dataclasses.replace(TRANSFER, uetr="7c1e2d3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f")
    answers = await _send(uow, deps, "promptpay", "M1", other)
    assert [(d, s, r) for d, s, r, _ in answers] == [("promptpay", "RJCT", "DUPL")]
    assert other.uetr not in uow.payments


async def test_a_refused_duplicate_resent_gets_the_same_stored_answer(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await _send(uow, deps, "promptpay", "M1", TRANSFER)
    first = await _send(uow, deps, "lapnet", "L1", TRANSFER)
    again = await _send(uow, deps, "lapnet", "L1", TRANSFER)
    assert again == first
    assert len([m for m in uow.outbox.values() if m.message_id == first[0][3]]) == 1


async def test_two_partners_with_one_uetr_in_one_batch_book_once_and_answer_the_second(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    outcomes = await accept_inbound(
        [AcceptInbound("promptpay", "M1", "pacs.008.001.13", b"a", (TRANSFER,)),
         AcceptInbound("lapnet", "L1", "pacs.008.001.08", b"b", (TRANSFER,))],
        uow, deps,
    )
    assert [m.destination for o in outcomes for m in o.partner_outbox] == ["lapnet"]
    assert uow.payments[UETR].partner == "promptpay"


async def test_a_resend_is_recognised_by_what_the_partner_sent_not_what_the_switch_resolved(deps: Deps) -> None:
    mobile = dataclasses.replace(TRANSFER, creditor_account=None, creditor_proxy_type="MBNO", creditor_proxy="+855 12 345 678")
    uow = FakeUnitOfWork()
    await _send(uow, deps, "promptpay", "M1", mobile)
    booked = uow.payments[UETR]
    assert booked.creditor.account == "sok_dara@aclb"  # resolved from the mobile
    assert resends(booked, mobile)
    assert resends(booked, dataclasses.replace(mobile, creditor_proxy="85512345678"))
    assert not resends(booked, dataclasses.replace(mobile, creditor_proxy="85512345679"))
    assert not resends(booked, dataclasses.replace(mobile, debtor_account="999"))
