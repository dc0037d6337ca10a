"""Sanctions screening (issue 12): the implementations of the screening port
(`switch.service.ports.Screener`) and how the composition root picks one.

- the embedded matcher: a local FollowTheMoney list, matched in process (embedded.py);
- a client of an external screening API with yente's match contract (yente.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from switch.config import ScreeningConfig, SwitchConfig
from switch.service.ports import Screener


def list_file(config_dir: str | Path, screening: ScreeningConfig) -> Path:
    """The embedded list's file: [screening] list_path, relative to the config directory."""
    path = Path(screening.list_path)
    return path if path.is_absolute() else Path(config_dir) / path


def build_screener(config: SwitchConfig, metrics: Any = None) -> Screener | None:
    """The screener the configuration asks for ([screening]), or None when screening is off.
    The embedded one loads its list here: ValueError when it does not load."""
    screening = config.screening
    if not screening.enabled:
        return None
    if screening.provider == "yente":
        from switch.screening.yente import YenteScreener

        if not screening.url:
            raise ValueError("[screening] provider yente needs url (or MEKONG_SCREENING_URL)")
        return YenteScreener(screening.url, dataset=screening.dataset, algorithm=screening.algorithm,
                             threshold=screening.threshold, timeout_s=screening.timeout_s, metrics=metrics)
    from switch.screening.embedded import EmbeddedScreener  # rigour's data: loaded when used

    return EmbeddedScreener(list_file(config.config_dir, screening), threshold=screening.threshold, metrics=metrics)
