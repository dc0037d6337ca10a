"""Card numbers at rest (issue 8, personal data): the stored payment keeps a keyed token and the
last four, the pacs.008 sent to the partner the full number; the API and messages show it masked."""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime, timezone

import pytest

from adapters.inbound import InboundTransfer
from iso20022.model import Amount
from iso20022.schemas import SchemaSet
from switch.domain.pan import PanTokens, is_token, mask
from switch.domain.payment import Party
from switch.entrypoints.http_app import payment_json
from switch.service.handlers import AcceptInstructions, Deps, accept_instructions
from switch.service.inbound import AcceptInbound, accept_inbound
from tests.factories import sample_partner_instruction
from tests.fakes import FakeClock, FakeUnitOfWork, deps_from_config, parsed_instruction

NAPAS_CARD = "9704366612345678"
UNIONPAY_CARD = "6212345678901232"  # Luhn-valid sample
NOW = datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def pans() -> PanTokens:
    return PanTokens(os.urandom(32))


def test_a_token_keeps_only_the_first_and_last_four_digits(pans: PanTokens) -> None:
    token = pans.token(NAPAS_CARD)
    assert is_token(token) and len(token) <= 34
    assert token.endswith(":9704:5678") and "366612" not in token


def test_the_same_key_gives_the_same_token_and_another_key_another(pans: PanTokens) -> None:
    assert pans.token(NAPAS_CARD) == pans.token(NAPAS_CARD)
    assert PanTokens(os.urandom(32)).token(NAPAS_CARD) != pans.token(NAPAS_CARD)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        PanTokens(b"short")


def test_the_key_is_not_in_the_repr() -> None:
    key = os.urandom(32)
    assert key.hex() not in repr(PanTokens(key)) and str(key) not in repr(PanTokens(key))


def test_masks_show_first_and_last_four(pans: PanTokens) -> None:
    assert mask(NAPAS_CARD) == "9704 **** **** 5678"
    assert mask(pans.token(NAPAS_CARD)) == "9704 **** **** 5678"
    assert mask("sok_dara@aclb") == "sok_dara@aclb"
    assert mask("0011004123456", lambda a: a.startswith("9704")) == "0011004123456"


def test_a_party_without_a_card_is_the_same_object(pans: PanTokens) -> None:
    party = Party(name="Nguyen Van Duc", account="0011004123456", agent="970436")
    assert pans.protect_party(party, lambda a: a.startswith("9704")) is party


async def _admit_card(deps: Deps, partner: str, card: str) -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    doc = sample_partner_instruction(partner)
    doc["creditor"]["account"] = card
    await accept_instructions(AcceptInstructions([parsed_instruction(doc, source_ref="mekong.instructions:0:1")]), uow, deps)
    return uow


@pytest.mark.parametrize(("partner", "card"), [("napas", NAPAS_CARD), ("unionpay", UNIONPAY_CARD)])
async def test_an_admitted_card_payment_is_stored_as_a_token_while_its_pacs008_carries_the_number(
    deps: Deps, partner: str, card: str
) -> None:
    uow = await _admit_card(deps, partner, card)
    (payment,) = uow.payments.values()
    assert payment.creditor.account == deps.pans.token(card)
    assert card not in repr(payment)
    (row,) = [r for r in uow.outbox.values() if r.kind == "partner"]
    assert card.encode() in row.body  # the message sent to the partner: the only full copy


async def test_the_api_shows_a_stored_card_masked(deps: Deps) -> None:
    uow = await _admit_card(deps, "napas", NAPAS_CARD)
    (payment,) = uow.payments.values()
    shown = payment_json(payment, [])
    assert shown["creditor"]["account"] == "9704 **** **** 5678"
    assert NAPAS_CARD not in repr(shown) and "tok:" not in repr(shown)


async def test_an_ordinary_account_is_stored_as_sent(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    doc = sample_partner_instruction("napas")
    await accept_instructions(AcceptInstructions([parsed_instruction(doc, source_ref="mekong.instructions:0:1")]), uow, deps)
    (payment,) = uow.payments.values()
    assert payment.creditor.account == "0011004123456"


CARD_DEBTOR = InboundTransfer(
    uetr="0b9d6c3e-1f2a-4b5c-8d7e-9f0a1b2c3d4e", end_to_end_id="E0b9d6c3e1f2a4b5c8d7e9f0a1b2c3d4e",
    amount=Amount("40000", "KHR"), instructed_amount=None, exchange_rate=None, debtor_name="LE VAN NAM",
    debtor_account=NAPAS_CARD, debtor_agent="970436", creditor_name="Sok Dara", creditor_account="sok_dara@aclb",
    creditor_proxy_type=None, creditor_proxy=None, remittance=None,
)


async def test_an_inbound_card_debtor_is_stored_and_handed_on_as_a_token_and_its_resend_is_recognised(
    schemas: SchemaSet,
) -> None:
    deps = deps_from_config(schemas, FakeClock(NOW), partners=("napas",))
    uow = FakeUnitOfWork()
    first = AcceptInbound("napas", "N1", "pacs.008.001.08", b"<first>", [CARD_DEBTOR])
    await accept_inbound([first], uow, deps)
    payment = uow.payments[CARD_DEBTOR.uetr]
    assert payment.debtor.account == deps.pans.token(NAPAS_CARD)
    assert all(NAPAS_CARD.encode() not in r.body for r in uow.outbox.values())  # the participant's copy too
    (again,) = await accept_inbound([AcceptInbound("napas", "N2", "pacs.008.001.08", b"<again>", [CARD_DEBTOR])], uow, deps)
    assert again.counts == {"in_progress": 1}  # a resend, not a UETR reused for another payment
    other = dataclasses.replace(CARD_DEBTOR, debtor_account="9704366612340000")
    (changed,) = await accept_inbound([AcceptInbound("napas", "N3", "pacs.008.001.08", b"<other>", [other])], uow, deps)
    assert changed.counts == {"rejected": 1}
