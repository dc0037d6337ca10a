"""Config mistakes named in issue 11: each is reported with its file and line, every problem at
once, and `mekong run` refuses to start with the same lines and no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from switch import config as config_mod
from switch.config import DEFAULT_CONFIG_DIR
from switch.entrypoints.cli import main

PAN_KEY = {"MEKONG_PAN_KEY": "ab" * 32}


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    return target


def _line_of(path: Path, text: str, nth: int = 1) -> int:
    found = [n for n, line in enumerate(path.read_text().splitlines(), start=1) if text in line]
    return found[nth - 1]


def _problems(cfg_dir: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(config_mod.ConfigErrors) as caught:
        config_mod.load(cfg_dir, env=env or {})
    return [str(p) for p in caught.value.problems]


def test_the_shipped_config_passes_the_check_with_a_pki_and_a_pan_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["pki", "init", str(tmp_path / "pki")])
    assert result.exit_code == 0, result.output
    cfg, problems = config_mod.check(DEFAULT_CONFIG_DIR, {**PAN_KEY, "MEKONG_PKI_DIR": str(tmp_path / "pki")})
    assert problems == [] and cfg is not None


def test_a_start_without_its_key_material_is_refused_at_the_keys_line_and_the_pki(tmp_path: Path) -> None:
    empty = tmp_path / "no-pki"
    empty.mkdir()
    _, problems = config_mod.check(DEFAULT_CONFIG_DIR, {"MEKONG_PKI_DIR": str(empty)})
    participants = DEFAULT_CONFIG_DIR / "participants.toml"
    lines = [str(p) for p in problems]
    keys_line = _line_of(participants, 'keys = [{ public_key_file = "participants/ACLBKHPPXXX.pub" }]')
    assert lines[0] == (
        f"{participants}:{keys_line}: "
        f"participant ACLBKHPPXXX key 1: {empty}/participants/ACLBKHPPXXX.pub is missing (make a development PKI with "
        f"`mekong pki init {empty}`, give the participant's public key there, or run with --insecure-dev)"
    )
    assert [line.split(": ")[0:2] for line in lines[3:]] == [
        [str(empty), "partner port TLS"], [str(empty), "operations port TLS"], [str(empty), "signed business messages"],
        ["environment", "no card-number token key"],
    ]
    # a review of the files alone (CI without the deployment's secrets), or a development start, needs none of it
    assert config_mod.check(DEFAULT_CONFIG_DIR, {"MEKONG_PKI_DIR": str(empty)}, secrets=False)[1] == []
    assert config_mod.check(DEFAULT_CONFIG_DIR, {**PAN_KEY, "MEKONG_PKI_DIR": str(empty), "MEKONG_INSECURE_DEV": "1"})[1] == []


def test_a_duplicated_corridor_id_is_an_error_at_its_line(cfg_dir: Path) -> None:
    corridors = cfg_dir / "corridors.toml"
    corridors.write_text(corridors.read_text() + """
[[corridors]]
id = "KH-TH"
partner = "lapnet"
source_currencies = ["KHR"]
target_currency = "LAK"
amount_max = { KHR = "5000000" }
""")
    first, second = _line_of(corridors, 'id = "KH-TH"'), _line_of(corridors, 'id = "KH-TH"', 2)
    assert _problems(cfg_dir) == [f"{corridors}:{second}: duplicated corridor id KH-TH (first at line {first})"]


def test_a_corridor_without_an_fx_rate_route_is_an_error_at_its_currencies(cfg_dir: Path) -> None:
    fx = cfg_dir / "fx.toml"
    fx.write_text(fx.read_text().replace('[[rates]]\nbase = "USD"\nquote = "LAK"\nmid = 21650.0\nas_of = 2025-06-02T02:00:00Z\n', ""))
    corridors = cfg_dir / "corridors.toml"
    line = _line_of(corridors, 'source_currencies = ["KHR", "USD"]', 2)  # KH-LA's
    assert _problems(cfg_dir) == [
        f"{corridors}:{line}: corridor KH-LA: no FX rate for KHR -> LAK in fx.toml (directly or via USD)",
        f"{corridors}:{line}: corridor KH-LA: no FX rate for USD -> LAK in fx.toml (directly or via USD)",
    ]


def test_a_typo_in_a_partner_url_variable_names_the_known_ones(cfg_dir: Path) -> None:
    assert _problems(cfg_dir, {"MEKONG_PARTNER_URL_PROMTPAY": "https://10.0.0.7:8443"}) == [
        (
            "environment: MEKONG_PARTNER_URL_PROMTPAY: no partner 'promtpay' (known: MEKONG_PARTNER_URL_LAPNET, "
            "MEKONG_PARTNER_URL_NAPAS, MEKONG_PARTNER_URL_PROMPTPAY, MEKONG_PARTNER_URL_UNIONPAY)"
        )
    ]


def test_an_unknown_mekong_variable_is_an_error(cfg_dir: Path) -> None:
    (problem,) = _problems(cfg_dir, {"MEKONG_DATABSE_URL": "sqlite+aiosqlite:///x.db"})
    assert problem.startswith("environment: MEKONG_DATABSE_URL: not a variable the switch knows (known: MEKONG_API_TOKENS_FILE, ")


def test_an_unknown_partner_in_a_corridor_is_an_error_at_its_line(cfg_dir: Path) -> None:
    corridors = cfg_dir / "corridors.toml"
    corridors.write_text(corridors.read_text().replace('partner = "napas"', 'partner = "napass"'))
    line = _line_of(corridors, 'partner = "napass"')
    assert _problems(cfg_dir) == [
        f"{corridors}:{line}: corridor KH-VN: unknown partner 'napass' (known: lapnet, napas, promptpay, unionpay)"
    ]


def test_bad_toml_syntax_is_reported_at_its_line(cfg_dir: Path) -> None:
    fx = cfg_dir / "fx.toml"
    fx.write_text(fx.read_text().replace("pivot = \"USD\"", "pivot \"USD\""))
    line = _line_of(fx, 'pivot "USD"')
    assert _problems(cfg_dir) == [f"{fx}:{line}: invalid TOML: Expected '=' after a key in a key/value pair (column 7)"]


def test_a_type_error_is_reported_at_its_key_with_the_other_problems(cfg_dir: Path) -> None:
    corridors = cfg_dir / "corridors.toml"
    text = corridors.read_text().replace("spread_bps = 50", 'spread_bps = "fifty"', 1)
    corridors.write_text(text.replace('partner = "napas"', 'partner = "napass"'))
    spread, partner = _line_of(corridors, 'spread_bps = "fifty"'), _line_of(corridors, 'partner = "napass"')
    assert _problems(cfg_dir) == [
        f"{corridors}:{spread}: corridors[0].spread_bps: Input should be a valid integer, unable to parse string as an integer",
        f"{corridors}:{partner}: corridor KH-VN: unknown partner 'napass' (known: lapnet, napas, promptpay, unionpay)",
    ]


def test_a_confirm_timeout_past_the_partner_sla_is_an_error_at_its_line(cfg_dir: Path) -> None:
    inbound = cfg_dir / "inbound.toml"
    inbound.write_text(inbound.read_text().replace("confirm_timeout_s = 15", "confirm_timeout_s = 90", 1))
    line = _line_of(inbound, "confirm_timeout_s = 90")
    assert _problems(cfg_dir) == [f"{inbound}:{line}: inbound route TH-KH: confirm_timeout_s 90 must be below promptpay's SLA of 60 s"]


def test_a_plain_http_partner_url_is_refused_unless_insecure(cfg_dir: Path) -> None:
    env = {"MEKONG_PARTNER_URL_NAPAS": "http://127.0.0.1:9"}
    assert _problems(cfg_dir, env) == [
        "environment: partner napas: base_url http://127.0.0.1:9 is not https:// (TLS is on; insecure_dev for plain HTTP)"
    ]
    assert config_mod.load(cfg_dir, env={**env, "MEKONG_INSECURE_DEV": "1"}).partner_urls["napas"] == "http://127.0.0.1:9"


def test_duplicated_participant_route_and_operator_names_are_errors(cfg_dir: Path) -> None:
    participants, inbound, operators = cfg_dir / "participants.toml", cfg_dir / "inbound.toml", cfg_dir / "operators.toml"
    participants.write_text(participants.read_text() + '\n[[participants]]\ncode = "ABAAKHPPXXX"\nname = "again"\n'
                            'bakong_suffix = "abaa_again"\ncurrencies = ["KHR"]\n')
    inbound.write_text(inbound.read_text().replace('id = "LA-KH"', 'id = "TH-KH"'))
    operators.write_text(operators.read_text().replace('name = "dev-auditor"', 'name = "dev-operator"'))
    th, ops, aba = 'id = "TH-KH"', 'name = "dev-operator"', 'code = "ABAAKHPPXXX"'
    assert _problems(cfg_dir) == [
        f"{inbound}:{_line_of(inbound, th, 2)}: duplicated inbound route id TH-KH (first at line {_line_of(inbound, th)})",
        f"{operators}:{_line_of(operators, ops, 2)}: duplicated operator name dev-operator (first at line {_line_of(operators, ops)})",
        f"{participants}:{_line_of(participants, aba, 2)}: duplicated participant code ABAAKHPPXXX (first at line {_line_of(participants, aba)})",
    ]


def test_config_check_prints_each_problem_and_exits_1(cfg_dir: Path) -> None:
    corridors = cfg_dir / "corridors.toml"
    corridors.write_text(corridors.read_text().replace('partner = "napas"', 'partner = "napass"'))
    result = CliRunner().invoke(main, ["config", "check", "--config-dir", str(cfg_dir)], env={"MEKONG_PAN_KEY": "ab" * 32})
    assert result.exit_code == 1
    line = _line_of(corridors, 'partner = "napass"')
    assert f"{corridors}:{line}: corridor KH-VN: unknown partner 'napass'" in result.output
    assert "Traceback" not in result.output


def test_config_check_summarises_a_good_config() -> None:
    result = CliRunner().invoke(main, ["config", "check", "--without-secrets", "--config-dir", str(DEFAULT_CONFIG_DIR)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("config OK: 4 corridors (4 enabled: KH-TH, KH-LA, KH-VN, KH-CN), 4 inbound routes, 3 participants")


def test_mekong_run_with_a_bad_config_exits_non_zero_with_the_lines_and_no_traceback(cfg_dir: Path) -> None:
    corridors = cfg_dir / "corridors.toml"
    corridors.write_text(corridors.read_text().replace('partner = "napas"', 'partner = "napass"'))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEKONG_")} | PAN_KEY
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mekong"), "run", "--config-dir", str(cfg_dir)],
        check=False, capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 2
    line = _line_of(corridors, 'partner = "napass"')
    assert f"{corridors}:{line}: corridor KH-VN: unknown partner 'napass' (known: lapnet, napas, promptpay, unionpay)" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_an_invalid_participant_is_reported_once_not_again_by_the_certificates_naming_it(cfg_dir: Path) -> None:
    participants = cfg_dir / "participants.toml"
    participants.write_text(participants.read_text().replace('bakong_suffix = "wing"', 'bakong_suffix = "Wing Bank"'))
    line = _line_of(participants, 'bakong_suffix = "Wing Bank"')
    assert _problems(cfg_dir) == [
        f"{participants}:{line}: participants[2].bakong_suffix: String should match pattern '^[a-z0-9_]+$'"
    ]
