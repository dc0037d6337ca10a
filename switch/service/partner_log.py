"""Partner trouble is logged, never silent, and never a flood (issue 11 item 4).

An outage (connection refused, a TLS failure, 5xx), a timeout, a give-up (the relay stopped
retrying a message) and a partner reject each make a WARNING, at most one per partner and kind
in a window (limits.partner_problem_log_window_s): the lines held back meanwhile are counted and
the next line says how many. When a partner that had trouble takes a message again, that is
logged once ("partner ... answers again").

This is log rate-limiting only: per process, in memory, nothing another replica needs (each
replica says what it saw). Time is passed in (a monotonic clock), so the tests drive it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from switch import limits
from switch.log_context import payment_context, uetrs_field

log = logging.getLogger(__name__)


class Problem(StrEnum):
    UNREACHABLE = "unreachable"  # no connection: refused, DNS, TLS handshake failed
    SERVER_ERROR = "server_error"  # 5xx, 503/429 (the partner is up but not taking messages)
    TIMEOUT = "timeout"  # no answer in time
    DISCONNECTED = "disconnected"  # the connection broke after the request went out
    REJECTED = "rejected"  # the partner refused a message (4xx) or rejected a payment (pacs.002 RJCT)
    GAVE_UP = "gave_up"  # the switch stopped trying (retries exhausted, the SLA ran out)
    SLA_PASSED = "sla_passed"  # a payment had no final status within the partner's SLA (TIMED_OUT)


OUTAGES: Final = frozenset({Problem.UNREACHABLE, Problem.SERVER_ERROR, Problem.TIMEOUT, Problem.DISCONNECTED})


@dataclass
class _Window:
    logged_at: float
    suppressed: int = 0


class PartnerProblems:
    """The rate-limited log of partner trouble. `clock`: monotonic seconds."""

    def __init__(self, *, window_s: float = limits.partner_problem_log_window_s,
                 clock: Callable[[], float] = time.monotonic, logger: logging.Logger = log) -> None:
        self._window_s = window_s
        self._clock = clock
        self._log = logger
        self._windows: dict[tuple[str, Problem], _Window] = {}
        self._troubled: dict[str, float] = {}  # partner -> when its outage began (monotonic)
        self._failures: dict[str, int] = {}  # partner -> failed attempts since then

    def problem(self, partner: str, kind: Problem, detail: str, *, uetrs: tuple[str, ...] | list[str] = ()) -> bool:
        """Note one problem; log it unless one of this partner and kind was logged within the
        window (then it is counted). Returns whether a line was written."""
        now = self._clock()
        if kind in OUTAGES:
            self._troubled.setdefault(partner, now)
            self._failures[partner] = self._failures.get(partner, 0) + 1
        key = (partner, kind)
        window = self._windows.get(key)
        if window is not None and now - window.logged_at < self._window_s:
            window.suppressed += 1
            return False
        held_back = window.suppressed if window is not None else 0
        self._windows[key] = _Window(now)
        more = f" ({held_back} more like it in the last {now - window.logged_at:.0f} s not logged)" if window and held_back else ""
        with payment_context(partner=partner, uetr=uetrs_field(list(uetrs))):
            self._log.warning("partner %s %s: %s%s", partner, _WHAT[kind], detail[:300], more,
                              extra={"problem": kind.value, "suppressed": held_back})
        return True

    def ok(self, partner: str) -> bool:
        """A message reached the partner: if it was in trouble, say once that it is back."""
        began = self._troubled.pop(partner, None)
        if began is None:
            return False
        failures = self._failures.pop(partner, 0)
        for kind in OUTAGES:  # the next outage is news at once
            self._windows.pop((partner, kind), None)
        with payment_context(partner=partner):
            self._log.warning("partner %s answers again after %.0f s of trouble (%d failed attempt%s)", partner,
                              self._clock() - began, failures, "" if failures == 1 else "s",
                              extra={"problem": "recovered"})
        return True

    def in_trouble(self, partner: str) -> bool:
        return partner in self._troubled


_WHAT: Final = {
    Problem.UNREACHABLE: "unreachable",
    Problem.SERVER_ERROR: "answered with a server error",
    Problem.TIMEOUT: "did not answer in time",
    Problem.DISCONNECTED: "dropped the connection",
    Problem.REJECTED: "rejected",
    Problem.GAVE_UP: "delivery given up",
    Problem.SLA_PASSED: "left a payment past its SLA",
}
