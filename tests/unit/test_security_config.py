"""Where the API tokens and the PAN key come from (issue 8), `mekong tokens new`, and the database
URL as it is printed."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from switch import config as config_mod
from switch.entrypoints.api_auth import ApiTokens, Role, token_hash
from switch.entrypoints.cli import main
from switch.store.sql_store import shown_url


def _tokens_file(path: Path, *entries: tuple[str, str, str]) -> Path:
    path.write_text("".join(f'[[tokens]]\nname = "{n}"\nrole = "{r}"\nsha256 = "{h}"\n' for n, r, h in entries))
    return path


def test_the_shipped_config_holds_no_token_and_no_key() -> None:
    cfg = config_mod.load(env={})
    assert cfg.api_tokens == () and cfg.pan_key is None


def test_a_tokens_file_from_the_environment_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = _tokens_file(tmp_path / "t.toml", ("ops", "operator", "a" * 64), ("aclb", "participant:ACLBKHPPXXX", "b" * 64))
    cfg = config_mod.load(env={"MEKONG_API_TOKENS_FILE": str(path)})
    assert [(t.name, t.role) for t in cfg.api_tokens] == [("ops", "operator"), ("aclb", "participant:ACLBKHPPXXX")]


def test_a_tokens_file_that_is_not_there_stops_the_load(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MEKONG_API_TOKENS_FILE"):
        config_mod.load(env={"MEKONG_API_TOKENS_FILE": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    ("role", "sha256"),
    [("participant:NOPEKHPPXXX", "a" * 64), ("root", "a" * 64), ("operator", "not-a-hash")],
)
def test_a_token_for_an_unknown_participant_role_or_a_bad_hash_is_refused(tmp_path: Path, role: str, sha256: str) -> None:
    path = _tokens_file(tmp_path / "t.toml", ("x", role, sha256))
    with pytest.raises(config_mod.ConfigErrors) as caught:  # every config problem, `file:line: message` (issue 11)
        config_mod.load(env={"MEKONG_API_TOKENS_FILE": str(path)})
    assert [p.file for p in caught.value.problems] == [str(path)]


def test_the_pan_key_is_read_from_its_file_and_never_shown(tmp_path: Path) -> None:
    key = os.urandom(32).hex()
    (tmp_path / "pan.key").write_text(key + "\n")
    cfg = config_mod.load(env={"MEKONG_PAN_KEY_FILE": str(tmp_path / "pan.key")})
    assert cfg.pan_key is not None and cfg.pan_key.get_secret_value() == key
    assert key not in repr(cfg) and key not in str(cfg.model_dump())


def test_a_short_pan_key_is_refused() -> None:
    with pytest.raises(config_mod.ConfigErrors, match="the PAN key must be at least 64 hex digits"):
        config_mod.load(env={"MEKONG_PAN_KEY": "abcd"})


def test_tokens_new_prints_a_token_once_and_the_entry_with_its_hash() -> None:
    result = CliRunner().invoke(main, ["tokens", "new", "--role", "auditor", "--name", "audit-1"])
    assert result.exit_code == 0, result.output
    (token,) = re.findall(r"mekong_[A-Za-z0-9_-]{43}", result.output)
    assert result.output.count(token) == 1
    (sha256,) = re.findall(r'sha256 = "([0-9a-f]{64})"', result.output)
    assert sha256 == token_hash(token)
    tokens = ApiTokens([config_mod.ApiToken(name="audit-1", role="auditor", sha256=sha256)])
    assert (principal := tokens.authenticate(token)) is not None and principal.role is Role.AUDITOR


def test_tokens_new_refuses_an_unknown_role() -> None:
    result = CliRunner().invoke(main, ["tokens", "new", "--role", "admin", "--name", "x"])
    assert result.exit_code != 0 and "mekong_" not in result.output


def test_a_database_url_is_shown_without_its_password() -> None:
    shown = shown_url("postgresql+asyncpg://mekong:s3cr3t-pw@db:5432/mekong")
    assert "s3cr3t-pw" not in shown and shown == "postgresql+asyncpg://mekong:***@db:5432/mekong"
    assert shown_url("sqlite+aiosqlite:///mekong.db") == "sqlite+aiosqlite:///mekong.db"
