"""Admission is a pure decision on the domain instruction: the admitted payment and its quote, or a
Reject value (reason code, detail), never an exception for what the participant sent. The edge
makes the domain instruction once (the QR decoded there, the amount read there); the proxy
look-ups and admission read it and decode nothing again; the QR's expiry is checked at admission."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from adapters.proxy_resolution import Resolution
from adapters.registry import load_partners
from fx.config import load_fx_config
from fx.quote import Quoter
from iso20022.schemas import SchemaSet
from switch import config as config_mod
from switch.config import PROJECT_ROOT
from switch.contracts import InstructionV1
from switch.domain.instruction import Instruction, Reject
from switch.domain.payment import Party
from switch.entrypoints.pain001_edge import parsed_instruction
from switch.metrics import Metrics
from switch.qr.emvco import encode
from switch.service.handlers import Admitted, Deps, admit_instruction
from switch.service.resolver import proxies_to_resolve
from tests.factories import sample_instruction

NOW = datetime(2025, 6, 2, 3, 0, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)
PROXY = ("promptpay", "MOBILE", "0066812345678")


@pytest.fixture(scope="module")
def deps(schemas: SchemaSet) -> Deps:
    cfg = config_mod.load(env={})
    partners = {c.partner for c in cfg.corridors if c.enabled}
    mappings = load_partners(Path(cfg.config_dir), partners, switch_bic=cfg.switch.agent_bic)
    quoter = Quoter(load_fx_config(PROJECT_ROOT / "config" / "fx.toml").rate_book())
    return Deps(config=cfg, mappings=mappings, quoter=quoter, schemas=schemas, metrics=Metrics(), clock=lambda: NOW)


def read(**changes: Any) -> Instruction:
    return parsed_instruction(InstructionV1.model_validate(sample_instruction(**changes)), "t:0:0").instruction


def qr_doc(qr: str, **changes: Any) -> dict[str, Any]:
    doc = sample_instruction(qr=qr, **changes)
    for key in ("creditor", "corridor", "amount"):
        if key not in changes:
            doc.pop(key)
    return doc


def read_qr(qr: str, **changes: Any) -> Instruction:
    return parsed_instruction(InstructionV1.model_validate(qr_doc(qr, **changes)), "t:0:0").instruction


def thai_qr(**over: Any) -> str:
    fields = {"01": "12", "29": {"00": "A000000677010111", "01": "0066812345678"}, "53": "764", "54": "150.00",
              "58": "TH", "59": "SOMCHAI SHOP", "60": "BANGKOK"}
    fields.update(over)
    return encode({k: v for k, v in fields.items() if v is not None})


def khqr(*, expires_at_ms: int) -> str:
    return encode({"01": "12", "29": {"00": "sok_dara@aclb", "01": "85512345678", "02": "ACLEDA"}, "53": "116",
                   "54": "20000", "58": "KH", "59": "Sok Dara", "60": "Phnom Penh",
                   "99": {"00": str(expires_at_ms - 600_000), "01": str(expires_at_ms)}})


def decide(deps: Deps, ins: Instruction, *, now: datetime = NOW, **resolutions: Any) -> Admitted | Reject:
    return admit_instruction(ins, deps, now=now, resolutions={PROXY: resolutions["found"]} if resolutions else {})


def refused(deps: Deps, ins: Instruction, **kw: Any) -> Reject:
    decided = decide(deps, ins, **kw)
    assert isinstance(decided, Reject), decided
    return decided


def test_an_instruction_is_admitted_as_a_received_payment_with_its_quote(deps: Deps) -> None:
    decided = decide(deps, read())
    assert isinstance(decided, Admitted)
    p = decided.payment
    assert (p.state.value, p.corridor, p.partner, p.debtor.agent) == ("RECEIVED", "KH-TH", "promptpay", "ACLBKHPPXXX")
    assert p.quote_id == decided.quote.quote_id and p.source == decided.quote.source


@pytest.mark.parametrize(
    ("changes", "code", "detail"),
    [
        ({"participant": "NOTAPART"}, "RC01", "participant NOTAPART is not a Bakong participant of this switch"),
        ({"debtor": {"name": "Sok Dara", "account": "sok_dara@abaa", "currency": "KHR"}}, "AC01", "does not belong to"),
        ({"corridor": "KH-XX"}, "AG01", "no open corridor KH-XX"),
        ({"amount": {"value": "200000.5", "currency": "KHR"}}, "CH20", "more decimals than KHR allows"),
        ({"amount": {"value": "0", "currency": "KHR"}}, "AM09", "must be positive"),
        ({"amount": {"value": "10", "currency": "USD"}}, "CURR", "neither the debtor's"),
        ({"amount": {"value": "10", "currency": "XYZ"}}, "CURR", "unknown currency 'XYZ'"),
        ({"debtor": {"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "EUR"}}, "CURR", "does not take EUR"),
        ({"amount": {"value": "900000000", "currency": "KHR"}}, "AM02", "above the corridor maximum"),
    ],
)
def test_a_client_error_is_a_reject_value(deps: Deps, changes: dict[str, Any], code: str, detail: str) -> None:
    reject = refused(deps, read(**changes))
    assert reject.reason_code == code and detail in reject.detail


def test_what_the_partner_mapping_raises_becomes_a_reject(deps: Deps) -> None:
    creditor = {"name": "Somchai Jaidee", "account": "12", "agent": "004"}  # not a PromptPay account number
    reject = refused(deps, read(creditor=creditor))
    assert (reject.reason_code, reject.detail) == ("AC01", "account '12' is not a PromptPay / National ITMX account number")


def test_the_participant_is_checked_before_an_unreadable_amount_or_qr(deps: Deps) -> None:
    assert refused(deps, read(participant="NOTAPART", amount={"value": "1.5", "currency": "KHR"})).reason_code == "RC01"
    broken = thai_qr()[:-4] + "0000"
    assert refused(deps, read_qr(broken, participant="NOTAPART")).reason_code == "RC01"


def test_a_broken_qr_is_refused_ff01_with_the_decoder_s_words(deps: Deps) -> None:
    good = thai_qr()
    reject = refused(deps, read_qr(good[:-4] + ("0000" if not good.endswith("0000") else "1111")))
    assert reject.reason_code == "FF01" and "checksum" in reject.detail


@pytest.mark.parametrize(
    ("qr", "changes", "code", "detail"),
    [
        (thai_qr(), {"amount": {"value": "151.00", "currency": "THB"}}, "AM09", "the amount differs from the QR's"),
        (thai_qr(**{"01": "11", "54": None}), {}, "AM09", "a static QR carries no amount"),
        (thai_qr(), {"corridor": "KH-LA"}, "AG01", "the QR pays through KH-TH, not KH-LA"),
        (khqr(expires_at_ms=NOW_MS + 600_000), {}, "AG01", "a domestic KHQR is paid inside Bakong"),
        (thai_qr(), {"amount": {"value": "150.001", "currency": "THB"}}, "CH20", "more decimals than THB allows"),
    ],
)
def test_a_qr_that_cannot_be_paid_is_a_reject_value(deps: Deps, qr: str, changes: dict[str, Any], code: str, detail: str) -> None:
    reject = refused(deps, read_qr(qr, **changes))
    assert reject.reason_code == code and detail in reject.detail


def test_a_dynamic_qr_s_expiry_is_checked_at_admission_against_now(deps: Deps) -> None:
    ins = read_qr(khqr(expires_at_ms=NOW_MS))  # decoded once, whenever it arrived
    assert ins.qr is not None and ins.unreadable is None
    assert refused(deps, ins, now=NOW - timedelta(milliseconds=1)).reason_code == "AG01"  # not yet expired: domestic
    expired = refused(deps, ins, now=NOW)
    assert expired.reason_code == "TM01" and "dynamic KHQR expired at" in expired.detail


def test_a_qr_instruction_is_admitted_with_the_qr_s_creditor_corridor_and_amount(deps: Deps) -> None:
    decided = decide(deps, read_qr(thai_qr()))
    assert isinstance(decided, Admitted)
    p = decided.payment
    assert (p.corridor, p.target.to_text(2), p.creditor.proxy_type, p.creditor.proxy) == ("KH-TH", "150.00", "MOBILE", "0066812345678")


@pytest.mark.parametrize(
    ("found", "code"),
    [
        (Resolution("MOBILE", "0066812345678", False), "BE23"),
        (Resolution("MOBILE", "0066812345678", False, reason_code="AC01"), "AC01"),
    ],
)
def test_a_proxy_that_did_not_resolve_is_a_reject_value(deps: Deps, found: Resolution | None, code: str) -> None:
    assert refused(deps, read(), found=found).reason_code == code


def test_a_proxy_whose_look_up_failed_is_sent_for_the_network_to_resolve(deps: Deps) -> None:
    decided = decide(deps, read(), found=None)
    assert isinstance(decided, Admitted)
    creditor = decided.payment.creditor
    assert (creditor.proxy, creditor.account, creditor.agent) == ("0066812345678", None, None)


def test_the_edge_decodes_the_qr_once_and_nothing_after_it_decodes_again(deps: Deps, monkeypatch: pytest.MonkeyPatch) -> None:
    item = parsed_instruction(InstructionV1.model_validate(qr_doc(thai_qr())), "t:0:0")
    assert item.instruction.creditor == Party(name="SOMCHAI SHOP", proxy_type="MOBILE", proxy="0066812345678")

    def no_decoding(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("decoded again")

    for target in ("switch.qr.emvco.decode", "switch.qr.templates.decode", "switch.domain.instruction.decode",
                   "switch.qr.templates.read_route", "switch.domain.instruction.read_route"):
        monkeypatch.setattr(target, no_decoding)
    assert proxies_to_resolve([item], deps.config, deps.mappings) == {PROXY}
    assert isinstance(admit_instruction(item.instruction, deps, now=NOW), Admitted)


def test_json_and_pain001_shaped_instructions_share_the_fingerprint_of_their_v1() -> None:
    v1 = InstructionV1.model_validate(sample_instruction())
    assert parsed_instruction(v1, "t:0:0").fingerprint == v1.fingerprint()
    assert parsed_instruction(v1, "t:0:1", origin="pain.001\tM\tP\tE").instruction.origin == "pain.001\tM\tP\tE"

