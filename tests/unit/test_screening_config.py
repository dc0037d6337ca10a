"""`mekong config check` and the composition root on [screening] (issue 12): a list that does not
load or a yente provider without a URL is reported as file:line; build_screener picks the provider."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from switch import config as config_mod
from switch.config import DEFAULT_CONFIG_DIR
from switch.screening import build_screener
from switch.screening.embedded import EmbeddedScreener
from switch.screening.yente import YenteScreener


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    return target


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


def _problems(cfg_dir: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(config_mod.ConfigErrors) as caught:
        config_mod.load(cfg_dir, env=env or {})
    return [str(p) for p in caught.value.problems]


def test_a_missing_list_file_is_reported_at_list_path(cfg_dir: Path) -> None:
    (cfg_dir / "screening" / "demo-list.ftm.json").unlink()
    switch_toml = cfg_dir / "switch.toml"
    [problem] = _problems(cfg_dir)
    assert problem.startswith(f"{switch_toml}:{_line_of(switch_toml, 'list_path =')}: screening: ")
    assert "cannot read the screening list" in problem


def test_a_list_that_is_not_ftm_is_reported_with_its_line(cfg_dir: Path) -> None:
    listed = cfg_dir / "screening" / "demo-list.ftm.json"
    listed.write_text(listed.read_text(encoding="utf-8") + "{oops\n", encoding="utf-8")
    [problem] = _problems(cfg_dir)
    assert f"{listed}:33: not a FollowTheMoney entity" in problem


def test_yente_without_a_url_is_reported_at_provider(cfg_dir: Path) -> None:
    switch_toml = cfg_dir / "switch.toml"
    switch_toml.write_text(switch_toml.read_text().replace('provider = "embedded"', 'provider = "yente"'))
    assert _problems(cfg_dir) == [
        f"{switch_toml}:{_line_of(switch_toml, 'provider = ')}: screening: provider yente needs url (or MEKONG_SCREENING_URL)"
    ]


def test_build_screener_follows_the_provider(cfg_dir: Path) -> None:
    cfg = config_mod.load(cfg_dir, env={})
    assert isinstance(build_screener(cfg), EmbeddedScreener)
    remote = cfg.model_copy(update={"screening": cfg.screening.model_copy(update={"provider": "yente", "url": "https://screening.example"})})
    screener = build_screener(remote)
    assert isinstance(screener, YenteScreener) and screener.reload() == "remote: https://screening.example dataset default"
    off = cfg.model_copy(update={"screening": cfg.screening.model_copy(update={"enabled": False})})
    assert build_screener(off) is None


@pytest.mark.parametrize("implementation", [EmbeddedScreener, YenteScreener])
def test_both_screeners_offer_the_port_with_its_signatures(implementation: type) -> None:
    import inspect

    from switch.service.ports import Screener

    for method in ("screen", "reload"):
        port, impl = getattr(Screener, method), getattr(implementation, method)
        assert inspect.signature(impl) == inspect.signature(port), method
        assert inspect.iscoroutinefunction(impl) == inspect.iscoroutinefunction(port), method
