"""`mekong config diff`: a change said in words, per item."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from switch.config import DEFAULT_CONFIG_DIR
from switch.config_diff import diff
from switch.entrypoints.cli import main


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "new"
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    return target


def _edit(path: Path, old: str, new: str, *, after: str = "") -> None:
    text = path.read_text()
    at = text.index(after) if after else 0
    assert old in text[at:], old
    path.write_text(text[:at] + text[at:].replace(old, new, 1))


def test_an_unchanged_copy_has_no_change(tmp_path: Path) -> None:
    assert diff(DEFAULT_CONFIG_DIR, _copy(tmp_path)) == []


def test_each_kind_of_change_is_one_line_in_words(tmp_path: Path) -> None:
    new = _copy(tmp_path)
    _edit(new / "corridors.toml", 'fee = { KHR = "0", USD = "0.00" }', 'fee = { KHR = "0", USD = "0.75" }')
    _edit(new / "corridors.toml", "enabled = true", "enabled = false", after='id = "KH-VN"')
    _edit(new / "fx.toml", "mid = 120.05", "mid = 121.0")
    _edit(new / "partners/napas.toml", 'base_url = "https://127.0.0.1:8083"', 'base_url = "https://napas.example:8443"')
    (new / "corridors.toml").write_text((new / "corridors.toml").read_text().replace(
        (new / "corridors.toml").read_text()[(new / "corridors.toml").read_text().index('[[corridors]]\nid = "KH-CN"'):], ""))
    (new / "participants.toml").write_text((new / "participants.toml").read_text()
                                           + '\n[[participants]]\ncode = "CANAKHPPXXX"\nname = "Canadia Bank"\n'
                                             'bakong_suffix = "cana"\ncurrencies = ["KHR"]\n')
    _edit(new / "inbound.toml", 'currencies = ["KHR", "USD"]', 'currencies = ["KHR"]')
    assert diff(DEFAULT_CONFIG_DIR, new) == [
        "corridor KH-TH: fee USD 0.00 -> 0.75",
        "corridor KH-VN: disabled",
        "corridor KH-CN: removed",
        "inbound route TH-KH: currencies removed USD",
        "participant CANAKHPPXXX: added (Canadia Bank)",
        "fx THB/KHR mid 120.05 -> 121.0",
        "partner napas: base_url https://127.0.0.1:8083 -> https://napas.example:8443",
    ]


def test_a_rate_given_the_other_way_round_is_compared_as_its_inverse(tmp_path: Path) -> None:
    new = _copy(tmp_path)
    _edit(new / "fx.toml", 'base = "THB"\nquote = "KHR"\nmid = 120.05', 'base = "KHR"\nquote = "THB"\nmid = 0.0083')
    assert diff(DEFAULT_CONFIG_DIR, new) == ["fx KHR/THB mid 0.0083298626 -> 0.0083"]


def test_config_diff_command_prints_the_changes_and_their_count(tmp_path: Path) -> None:
    new = _copy(tmp_path)
    _edit(new / "switch.toml", 'bootstrap_servers = "127.0.0.1:9092"', 'bootstrap_servers = "kafka-0:9092"')
    result = CliRunner().invoke(main, ["config", "diff", str(DEFAULT_CONFIG_DIR), str(new)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["switch: kafka bootstrap_servers 127.0.0.1:9092 -> kafka-0:9092", "1 change"]
    assert not re.search("Traceback", result.output)


def test_tier_limits_and_corridor_hours_are_said_in_words(tmp_path: Path) -> None:
    new = _copy(tmp_path)
    _edit(new / "corridors.toml", 'tx_max = { KHR = "2000000", USD = "500.00" }', 'tx_max = { KHR = "1000000", USD = "500.00" }')
    _edit(new / "corridors.toml", 'default_tier = "participant"\n',
          'default_tier = "basic"\ntimezone = "Asia/Ho_Chi_Minh"\nhours = { mon = ["08:00-17:00"] }\n', after='id = "KH-VN"')
    assert diff(DEFAULT_CONFIG_DIR, new) == [
        "corridors: tiers basic tx_max KHR 2000000 -> 1000000",
        "corridor KH-VN: default_tier participant -> basic",
        "corridor KH-VN: timezone (unset) -> Asia/Ho_Chi_Minh",
        "corridor KH-VN: hours mon (unset) -> [08:00-17:00]",
    ]
