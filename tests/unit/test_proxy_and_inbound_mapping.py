"""The pure partner-side pieces of proxy resolution and inbound payments: acmt.023 -> acmt.024
against the official XSDs, Cambodian mobile numbers by libphonenumber, an inbound pacs.008 read
back into plain values and the pacs.002 answer."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from adapters import proxy_resolution as pr
from adapters.base import load_profile
from adapters.inbound import answer_message_id, bakong_mobile, read_pacs008, status_report
from adapters.simulator_inbound import InboundOriginator, InboundSpec
from iso20022 import acmt023, acmt024, pacs002
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet, default_schema_dir
from switch.config import DEFAULT_CONFIG_DIR

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
SCHEMAS = SchemaSet(default_schema_dir())


def profile(partner: str = "promptpay"):  # type: ignore[no-untyped-def]
    return load_profile(Path(DEFAULT_CONFIG_DIR) / "partners" / f"{partner}.toml")


def test_a_batch_of_proxies_resolves_through_valid_acmt_messages() -> None:
    p = profile()
    req = pr.request(p, [("MOBILE", "0066812345678"), ("NATID", "1101700203451"), ("EWALLET", "123456789012345")],
                     message_id="V1", created_at=NOW, switch_bic="NBCAKHPPXXX")
    sent = acmt023.parse(parse_untrusted(acmt023.build_validated(req, SCHEMAS)))
    report = pr.answer(p, sent, None, unknown={"123456789012345"}, message_id="A1", created_at=NOW)
    got = pr.read_report(p, acmt024.parse(parse_untrusted(acmt024.build_validated(report, SCHEMAS))))
    assert got["MOBILE:0066812345678"].verified and got["NATID:1101700203451"].verified
    assert got["MOBILE:0066812345678"].agent in pr._SIM_BANKS
    assert (got["EWALLET:123456789012345"].verified, got["EWALLET:123456789012345"].reason_code) == (False, "BE23")


def test_a_registry_answers_only_what_it_holds() -> None:
    p = profile()
    req = pr.request(p, [("MOBILE", "0066812345678"), ("MOBILE", "0066800000000")], message_id="V2", created_at=NOW,
                     switch_bic="NBCAKHPPXXX")
    registry = {("MBNO", "0066812345678"): ("SOMCHAI JAIDEE", "014", "1234567890")}
    got = pr.read_report(p, pr.answer(p, req, registry, unknown=(), message_id="A2", created_at=NOW))
    assert got["MOBILE:0066812345678"] == pr.Resolution("MOBILE", "0066812345678", True, "1234567890", "014", "SOMCHAI JAIDEE")
    assert not got["MOBILE:0066800000000"].verified


def test_a_proxy_type_the_partner_lacks_cannot_be_requested() -> None:
    with pytest.raises(ValueError, match="no IBAN proxies"):
        pr.request(profile(), [("IBAN", "X")], message_id="V3", created_at=NOW, switch_bic="NBCAKHPPXXX")


@pytest.mark.parametrize(
    ("given", "expected"),
    [("85512345678", "85512345678"), ("+855 12 345 678", "85512345678"), ("012345678", "85512345678"),
     ("+855-97-555-1234", "855975551234"), ("85500000", None), ("+66812345678", None), ("not a phone", None)],
)
def test_bakong_mobiles_are_parsed_by_libphonenumber(given: str, expected: str | None) -> None:
    assert bakong_mobile(given) == expected


@pytest.mark.parametrize("partner", ["promptpay", "lapnet", "napas", "unionpay"])
def test_an_inbound_pacs008_in_each_partner_version_reads_back(partner: str) -> None:
    origin = InboundOriginator(profile(partner), SCHEMAS, switch_url="http://127.0.0.1:1/iso20022/" + partner)
    spec = InboundSpec(amount="40000", currency="KHR", creditor_name="សុខ ដារា", creditor_mobile="85512345678",
                       instructed_amount="333.20", exchange_rate="120.05", remittance="rent")
    message_id, uetr, body = origin.build(spec, now=NOW)
    message = read_pacs008(parse_untrusted(body))
    (t,) = message.transfers
    assert (message.message_id, t.uetr, t.amount.value, t.amount.currency) == (message_id, uetr, "40000", "KHR")
    assert (t.creditor_proxy, t.creditor_proxy_type, t.creditor_name, t.remittance) == ("85512345678", "MBNO", "សុខ ដារា", "rent")
    assert t.debtor_agent == pr_agent(partner)


def pr_agent(partner: str) -> str:
    from adapters.simulator_inbound import SAMPLE_DEBTOR_AGENTS

    return SAMPLE_DEBTOR_AGENTS[partner]


def test_the_answer_to_an_inbound_payment_is_a_valid_pacs002_named_after_the_uetr() -> None:
    uetr = "6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
    for accepted, code in ((True, None), (False, "AB05")):
        report = status_report(switch_bic="NBCAKHPPXXX", uetr=uetr, end_to_end_id="E1", accepted=accepted,
                               reason_code=code, detail="no answer" if code else None, at=NOW)
        parsed = pacs002.parse(parse_untrusted(pacs002.build_validated(report, SCHEMAS)))
        (tx,) = parsed.transactions
        assert parsed.message_id == answer_message_id(uetr) == "R6f1c2a7e3b4d4e5f8a9b0c1d2e3f4a5b"
        assert tx.original_uetr == uetr
        assert tx.status.value == ("ACSC" if accepted else "RJCT")
        assert (tx.reasons[0].code if tx.reasons else None) == code
