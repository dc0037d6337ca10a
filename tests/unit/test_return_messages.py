"""The pacs.004 the switch sends a partner (switch/service/return_messages.py): valid against the
official XSD, naming the original payment, the same message for the same return."""

from __future__ import annotations

from dataclasses import replace

from iso20022 import pacs004
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch.domain.money import CURRENCIES, Money
from switch.domain.payment import Direction, PaymentState
from switch.service.return_messages import pacs004_to_partner
from tests.factories import sample_payment
from tests.fakes import T0, FakeClock, deps_from_config


def test_a_return_to_the_partner_is_a_valid_pacs004_naming_the_original(schemas: SchemaSet) -> None:
    deps = deps_from_config(schemas, FakeClock())
    p = replace(
        sample_payment(PaymentState.COMPLETED, created_at=T0), direction=Direction.INBOUND, partner="lapnet",
        source=Money(1_500_000, CURRENCIES["KHR"]), target=Money(1_500_000, CURRENCIES["KHR"]),
    )
    row = pacs004_to_partner(p, Money.parse("5000", "KHR"), deps, return_id="R1", reason_code="AC04", detail="closed", now=T0)
    again = pacs004_to_partner(p, Money.parse("5000", "KHR"), deps, return_id="R1", reason_code="AC04", detail="closed", now=T0)
    assert (row.destination, row.kind, row.message_id) == ("lapnet", "partner", again.message_id)
    message = pacs004.parse(parse_untrusted(row.body))  # build_validated checked it against the XSD
    (tx,) = message.transactions
    assert (tx.original_uetr, tx.original_end_to_end_id, tx.reason_code) == (p.uetr, p.instruction_id, "AC04")
    assert (tx.returned_amount.value, tx.returned_amount.currency) == ("5000", "KHR")
    assert message.clearing_system_proprietary == "LAPNET"
