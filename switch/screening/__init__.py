"""Sanctions screening (issue 12): the implementations of the screening port
(`switch.service.ports.Screener`) and how the composition root picks one.

- the embedded matcher: a local FollowTheMoney list, matched in process;
- a client of an external screening API with yente's match contract.
"""

from __future__ import annotations

from switch.config import SwitchConfig
from switch.service.ports import Screener


def build_screener(config: SwitchConfig) -> Screener | None:
    """The screener the configuration asks for ([screening]), or None when screening is off."""
    if not config.screening.enabled:
        return None
    return None  # issue 12: the embedded and yente implementations come next
