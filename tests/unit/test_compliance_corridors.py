"""Compliance profiles per corridor (issue 12): admission applies the corridor's profile to the
debited amount, so two corridors with different profiles answer the same instruction differently;
`mekong config check` names an unknown profile and a bad threshold at their line; `mekong config
diff` says when a corridor's profile or a profile's threshold changes; the rejects metric counts
the refusals by code."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from switch import config as config_mod
from switch.config import DEFAULT_CONFIG_DIR, SwitchConfig
from switch.config_diff import diff
from switch.contracts import InstructionV1
from switch.domain.instruction import Instruction, Reject
from switch.domain.payment import Identification, PostalAddress
from switch.entrypoints.pain001_edge import parsed_instruction
from switch.service.handlers import AcceptInstructions, Admitted, Deps, accept_instructions, admit_instruction
from tests.factories import sample_instruction, sample_partner_instruction
from tests.fakes import FakeUnitOfWork, parsed_instruction as parsed_record

NOW = datetime(2025, 6, 2, 3, 0, tzinfo=timezone.utc)
ADDRESS = PostalAddress(country="KH", town="Phnom Penh", street="Preah Norodom Blvd", building="12")


def read(doc: dict[str, Any], **debtor: Any) -> Instruction:
    ins = parsed_instruction(InstructionV1.model_validate(doc), "t:0:0").instruction
    return dataclasses.replace(ins, debtor=dataclasses.replace(ins.debtor, **debtor)) if debtor else ins


def decide(deps: Deps, ins: Instruction) -> Admitted | Reject:
    return admit_instruction(ins, deps, now=NOW, resolutions={})


def with_profile(cfg: SwitchConfig, corridor_id: str, profile: str | None) -> SwitchConfig:
    fields = {name: getattr(cfg, name) for name in type(cfg).model_fields}
    fields["corridors"] = tuple(c.model_copy(update={"compliance": profile}) if c.id == corridor_id else c for c in cfg.corridors)
    return type(cfg).model_validate(fields)


def test_the_shipped_corridors_name_their_profiles() -> None:
    cfg = config_mod.load(env={})
    assert {c.id: c.compliance for c in cfg.corridors} == {
        "KH-TH": "fatf_r16", "KH-LA": "fatf_r16", "KH-VN": "fatf_r16", "KH-CN": "cbpr_plus_full"}
    assert {r.id: r.compliance for r in cfg.inbound_routes} == dict.fromkeys(("TH-KH", "LA-KH", "VN-KH", "CN-KH"), "fatf_r16")


def test_the_same_small_instruction_passes_r16_and_is_refused_rr02_where_the_address_is_always_required(deps: Deps) -> None:
    """200,000 KHR from a debtor without an address: below R16's threshold on KH-TH, but KH-CN's
    profile wants the originator's address at any amount."""
    on_th = decide(deps, read(sample_partner_instruction("promptpay"), address=None, identification=None))
    on_cn = decide(deps, read(sample_partner_instruction("unionpay"), address=None, identification=None))
    assert isinstance(on_th, Admitted), on_th
    assert isinstance(on_cn, Reject) and on_cn.reason_code == "RR02"
    assert on_cn.detail == "the debtor's address is missing (town and country at least) (profile cbpr_plus_full)"
    assert isinstance(decide(deps, read(sample_partner_instruction("unionpay"), address=ADDRESS)), Admitted)


def test_the_profile_not_the_partner_decides(deps: Deps) -> None:
    doc = sample_partner_instruction("promptpay")
    strict = dataclasses.replace(deps, config=with_profile(deps.config, "KH-TH", "cbpr_plus_full"))
    none = dataclasses.replace(deps, config=with_profile(deps.config, "KH-CN", None))
    assert isinstance(decide(strict, read(doc, address=None)), Reject)
    assert isinstance(decide(none, read(sample_partner_instruction("unionpay"))), Admitted)


@pytest.mark.parametrize(("value", "admitted"), [("4064999", True), ("4065000", False)])
def test_r16_applies_at_its_khr_threshold_on_the_debited_amount(deps: Deps, value: str, admitted: bool) -> None:
    decided = decide(deps, read(sample_instruction(amount={"value": value, "currency": "KHR"}), address=None, identification=None))
    assert isinstance(decided, Admitted) is admitted, decided
    if not admitted:
        assert isinstance(decided, Reject) and decided.reason_code == "RR02"


def test_r16_threshold_reads_the_debited_amount_when_the_instruction_names_the_target(deps: Deps) -> None:
    """THB 1,000 credited costs about KHR 121,000: far below R16's threshold, whatever the THB figure."""
    decided = decide(deps, read(sample_instruction(amount={"value": "1000.00", "currency": "THB"})))
    assert isinstance(decided, Admitted), decided


@pytest.mark.parametrize("debtor", [{"address": ADDRESS}, {"identification": Identification(national_id="010203040", national_id_issuer="KH")}],
                         ids=["address", "national-id"])
def test_a_large_payment_with_the_debtors_address_or_identification_is_admitted(deps: Deps, debtor: dict[str, Any]) -> None:
    decided = decide(deps, read(sample_instruction(amount={"value": "4900000", "currency": "KHR"}), **debtor))
    assert isinstance(decided, Admitted), decided


async def test_a_refusal_is_a_rejected_status_event_and_counted_by_its_code(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    bare_debtor = {"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "KHR"}  # no address, no identification
    cmd = AcceptInstructions([parsed_record(sample_instruction(amount={"value": "4900000", "currency": "KHR"}, debtor=bare_debtor),
                                            source_ref="t:0:1")])
    out = await accept_instructions(cmd, uow, deps)
    assert out.admissions[("ACLBKHPPXXX", "INS-0001")][1:] == (
        "RR02", "the debtor's address (town and country at least) is missing, and no identification (national id with issuer, "
        "date and place of birth, or LEI) replaces it (at or above 4065000 KHR, profile fatf_r16)")
    assert not uow.payments
    assert deps.metrics.registry.get_sample_value("switch_rejects_total", {"stage": "admission", "reason_code": "RR02"}) == 1


# ------------------------------------------------------------------ the configuration check and diff


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    return target


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


def _problems(cfg_dir: Path) -> list[str]:
    with pytest.raises(config_mod.ConfigErrors) as caught:
        config_mod.load(cfg_dir, env={})
    return [str(p) for p in caught.value.problems]


def test_an_unknown_profile_of_a_corridor_is_reported_at_its_line(cfg_dir: Path) -> None:
    corridors = cfg_dir / "corridors.toml"
    text = corridors.read_text()
    corridors.write_text(text.replace('compliance = "cbpr_plus_full"', 'compliance = "cbpr_plus"'))
    line = _line_of(corridors, 'compliance = "cbpr_plus"')
    assert _problems(cfg_dir) == [
        f"{corridors}:{line}: corridor KH-CN: unknown compliance profile 'cbpr_plus' (known: cbpr_plus_full, fatf_r16)"]


def test_an_unknown_profile_of_an_inbound_route_is_reported_at_its_line(cfg_dir: Path) -> None:
    inbound = cfg_dir / "inbound.toml"
    text = inbound.read_text()
    head, _, tail = text.partition('compliance = "fatf_r16"')
    inbound.write_text(head + 'compliance = "fatf"' + tail)
    line = _line_of(inbound, 'compliance = "fatf"')
    assert _problems(cfg_dir) == [
        f"{inbound}:{line}: inbound route TH-KH: unknown compliance profile 'fatf' (known: cbpr_plus_full, fatf_r16)"]


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        ('USD = "1000.001"', "USD '1000.001' is not an amount: amount '1000.001' has more decimals than USD allows (2)"),
        ('XYZ = "1000"', "unknown currency 'XYZ' (known: KHR, THB, LAK, VND, CNY, USD)"),
        ('USD = "0.00"', "USD '0.00' is not an amount: amount '0.00' must be positive"),
    ],
    ids=["bad-amount", "unknown-currency", "zero"],
)
def test_a_bad_threshold_is_reported_at_its_line(cfg_dir: Path, threshold: str, message: str) -> None:
    path = cfg_dir / "compliance.toml"
    path.write_text(path.read_text().replace('threshold = { USD = "1000.00", ', f"threshold = {{ {threshold}, ", 1))
    line = _line_of(path, f"threshold = {{ {threshold}")
    assert _problems(cfg_dir) == [f"{path}:{line}: profiles.fatf_r16.threshold: {message}"]


def test_an_unknown_need_is_reported_at_its_line(cfg_dir: Path) -> None:
    path = cfg_dir / "compliance.toml"
    path.write_text(path.read_text().replace('debtor_above = ["address_or_identification"]', 'debtor_above = ["adress"]', 1))
    line = _line_of(path, 'debtor_above = ["adress"]')
    (problem,) = _problems(cfg_dir)
    assert problem.startswith(f"{path}:{line}: profiles.fatf_r16.debtor_above[0]: Input should be 'name', 'account'")


def test_a_config_without_the_compliance_file_and_keys_has_no_data_rule(cfg_dir: Path) -> None:
    (cfg_dir / "compliance.toml").unlink()
    for name in ("corridors.toml", "inbound.toml"):
        path = cfg_dir / name
        path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.startswith("compliance =")) + "\n")
    cfg = config_mod.load(cfg_dir, env={})
    assert cfg.compliance_profiles == {} and all(cfg.compliance(c.compliance) is None for c in cfg.corridors)


def test_config_diff_names_a_corridors_profile_and_a_profiles_threshold(cfg_dir: Path) -> None:
    corridors = cfg_dir / "corridors.toml"
    corridors.write_text(corridors.read_text().replace('compliance = "cbpr_plus_full"', 'compliance = "fatf_r16"'))
    path = cfg_dir / "compliance.toml"
    path.write_text(path.read_text().replace('threshold = { USD = "1000.00", ', 'threshold = { USD = "900.00", ', 1))
    assert diff(DEFAULT_CONFIG_DIR, cfg_dir) == [
        "corridor KH-CN: compliance cbpr_plus_full -> fatf_r16",
        "compliance profile fatf_r16: threshold USD 1000.00 -> 900.00",
    ]
