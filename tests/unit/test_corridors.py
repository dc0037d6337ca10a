"""The shipped corridors: each one loads, names a partner with an adapter, and an instruction on it
is admitted (FX quote, limits, the partner's checks) into a pacs.008 that validates against the
official XSD and that the partner's simulator accepts."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from adapters.registry import load_partners
from adapters.simulator import SIMULATORS
from fx.config import load_fx_config
from fx.quote import Quoter
from iso20022 import pacs008
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch import config as config_mod
from switch.config import PROJECT_ROOT
from switch.contracts import InstructionV1
from switch.domain.instruction import Reject
from switch.entrypoints.pain001_edge import parsed_instruction
from switch.metrics import Metrics
from switch.service.handlers import Admitted, Deps, _pacs008_messages, admit_instruction
from tests.factories import DEBTOR_ADDRESS, PARTNER_SAMPLES, sample_partner_instruction

NOW = datetime(2025, 6, 2, 3, 0, tzinfo=timezone.utc)


def _admit(ins: InstructionV1, deps: Deps) -> Admitted | Reject:
    return admit_instruction(parsed_instruction(ins, "t:0:0").instruction, deps, now=NOW)


def _admitted(ins: InstructionV1, deps: Deps) -> Admitted:
    decided = _admit(ins, deps)
    assert isinstance(decided, Admitted), decided
    return decided


def _refused(ins: InstructionV1, deps: Deps) -> Reject:
    decided = _admit(ins, deps)
    assert isinstance(decided, Reject), decided
    return decided


EXPECTED = {"KH-TH": ("promptpay", "THB"), "KH-LA": ("lapnet", "LAK"), "KH-VN": ("napas", "VND"), "KH-CN": ("unionpay", "CNY")}


@pytest.fixture(scope="module")
def deps(schemas: SchemaSet) -> Deps:
    cfg = config_mod.load(env={})
    partners = {c.partner for c in cfg.corridors if c.enabled}
    mappings = load_partners(Path(cfg.config_dir), partners, switch_bic=cfg.switch.agent_bic)
    quoter = Quoter(load_fx_config(PROJECT_ROOT / "config" / "fx.toml").rate_book())
    return Deps(config=cfg, mappings=mappings, quoter=quoter, schemas=schemas, metrics=Metrics(), clock=lambda: NOW)


def test_the_four_corridors_are_configured_with_their_partners(deps: Deps) -> None:
    got = {c.id: (c.partner, c.target_currency) for c in deps.config.corridors if c.enabled}
    assert got == EXPECTED
    assert set(deps.mappings) == {"promptpay", "lapnet", "napas", "unionpay"}
    assert deps.config.corridor("KH-VN").source_currencies == ("KHR",)  # type: ignore[union-attr]


@pytest.mark.parametrize("partner", sorted(PARTNER_SAMPLES))
@pytest.mark.parametrize("amount", [{"value": "150000", "currency": "KHR"}, {"value": "4999900", "currency": "KHR"}])
def test_an_instruction_on_each_corridor_is_admitted_and_its_pacs008_is_accepted_by_the_simulator(
    deps: Deps, schemas: SchemaSet, partner: str, amount: dict[str, str]
) -> None:
    ins = InstructionV1.model_validate(sample_partner_instruction(partner, amount=amount))
    admitted = _admitted(ins, deps)
    payment, quote = admitted.payment, admitted.quote
    corridor = PARTNER_SAMPLES[partner]["corridor"]
    assert (payment.corridor, payment.partner, payment.target.currency.code) == (corridor, partner, EXPECTED[corridor][1])
    assert payment.creditor.name == ins.creditor.name and payment.debtor.name == "សុខ ដារា"  # originals kept
    assert payment.target.amount_minor > 0 and quote.target == payment.target
    mapping = deps.mappings[partner]
    messages, invalid = _pacs008_messages(mapping, [payment], deps, NOW)
    assert invalid == {} and len(messages) == 1
    root = parse_untrusted(messages[0].body)
    schemas.validate(root, mapping.profile.pacs008_version)
    message = pacs008.parse(root)
    simulator = SIMULATORS[partner](mapping.profile, schemas, callback_url="http://127.0.0.1:9/none")
    assert simulator.check(message, message.transactions[0]) is None


def test_a_target_amount_in_dong_with_decimals_is_refused_with_ch20(deps: Deps) -> None:
    ins = InstructionV1.model_validate(sample_partner_instruction("napas", amount={"value": "1000000.5", "currency": "VND"}))
    assert _refused(ins, deps).reason_code == "CH20"


def test_a_usd_debtor_on_kh_vn_is_refused_with_curr(deps: Deps) -> None:
    ins = InstructionV1.model_validate(
        sample_partner_instruction("napas", debtor={"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "USD"},
                                   amount={"value": "10.00", "currency": "USD"})
    )
    assert _refused(ins, deps).reason_code == "CURR"


@pytest.mark.parametrize("partner", ["lapnet", "unionpay"])
def test_usd_debtors_are_admitted_where_the_corridor_takes_usd(deps: Deps, partner: str) -> None:
    ins = InstructionV1.model_validate(
        sample_partner_instruction(partner, debtor={"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "USD",
                                                    "address": DEBTOR_ADDRESS},
                                   amount={"value": "25.50", "currency": "USD"})
    )
    payment = _admitted(ins, deps).payment
    assert payment.source.currency.code == "USD" and payment.target.amount_minor > 0


@pytest.mark.parametrize("partner", sorted(PARTNER_SAMPLES))
def test_above_the_corridor_maximum_is_am02(deps: Deps, partner: str) -> None:
    ins = InstructionV1.model_validate(sample_partner_instruction(partner, amount={"value": "5000100", "currency": "KHR"}))
    assert _refused(ins, deps).reason_code == "AM02"


QRS = {
    "KH-VN": {"38": {"00": "A000000727", "01": {"00": "970436", "01": "0011001234567"}, "02": "QRIBFTTA"},
              "53": "704", "54": "250000", "58": "VN", "59": "Pho Hoa Dakao", "60": "Ho Chi Minh"},
    "KH-LA": {"38": {"00": "A005266284662577", "01": "27710418", "02": "001", "03": "0101234567890"},
              "53": "418", "54": "120000", "58": "LA", "59": "Vientiane Noodles", "60": "Vientiane"},
    "KH-CN": {"15": "2676076419740116000000000123456", "53": "156", "54": "88.00", "58": "CN",
              "59": "Shanghai Mart", "60": "Shanghai"},
}


@pytest.mark.parametrize("corridor", sorted(QRS))
def test_a_scanned_partner_qr_is_admitted_on_its_corridor(deps: Deps, schemas: SchemaSet, corridor: str) -> None:
    from switch.qr.emvco import encode

    partner = EXPECTED[corridor][0]
    doc = sample_partner_instruction(partner, qr=encode(QRS[corridor]))
    del doc["creditor"], doc["amount"], doc["corridor"]
    payment = _admitted(InstructionV1.model_validate(doc), deps).payment
    assert (payment.corridor, payment.partner, payment.target.to_text(payment.target.currency.decimals_accepted_max)) == (
        corridor, partner, QRS[corridor]["54"])
    messages, invalid = _pacs008_messages(deps.mappings[partner], [payment], deps, NOW)
    assert invalid == {} and len(messages) == 1
