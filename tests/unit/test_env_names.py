"""Every MEKONG_* variable the project reads is one `mekong config check` and `mekong run` know:
an unknown name is refused there as a typo, so a variable added without listing it would stop
the switch wherever it is set (the image, compose, Kubernetes, the tests)."""

from __future__ import annotations

import re
from pathlib import Path

from switch.config import PARTNER_URL_ENV, PROJECT_ROOT, SWITCH_ENV, TOOLS_ENV

NAME = re.compile(r"MEKONG_[A-Z0-9_]*[A-Z0-9]")
PER_PARTNER = "MEKONG_PARTNER"  # MEKONG_PARTNER_<FIELD>_<PARTNER> in prose; MEKONG_PARTNER_URL_<PARTNER>, MEKONG_PARTNER_<TIMING>_<PARTNER>
SOURCES = ("switch", "adapters", "fx", "iso20022", "deploy", "tests", "Makefile", ".ci")
TYPOS_ON_PURPOSE = {"MEKONG_PARTNER_URL_PROMTPAY", "MEKONG_DATABSE_URL"}  # the config check's tests


def _files() -> list[Path]:
    out: list[Path] = []
    for name in SOURCES:
        path = PROJECT_ROOT / name
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out.extend(p for p in path.rglob("*") if p.is_file() and p.suffix in {".py", ".sh", ".yaml", ".yml", ".toml", ""})
    return out


def test_every_mekong_variable_in_the_project_is_known_to_the_config_check() -> None:
    seen: dict[str, str] = {}
    for path in _files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for name in NAME.findall(text):
            seen.setdefault(name, str(path.relative_to(PROJECT_ROOT)))
    unknown = {
        name: where for name, where in seen.items()
        if name not in SWITCH_ENV | TOOLS_ENV | TYPOS_ON_PURPOSE and not name.startswith(PER_PARTNER)
    }
    assert len(seen) > 20, sorted(seen)  # the scan found the project's variables
    assert PARTNER_URL_ENV.startswith(PER_PARTNER)
    assert unknown == {}, f"add these to SWITCH_ENV or TOOLS_ENV in switch/config.py: {unknown}"
