"""Which payment a log line is about (issue 11 item 4): a context variable the edges, handlers,
relay and timers set where a payment is in hand, and a logging filter that copies it onto every
record logged meanwhile, so an operator can follow one UETR through the JSON logs.

Why a context variable: asyncio copies it into each task, so concurrent payments never see each
other's fields, and code that logs (`logging.getLogger(__name__)` as everywhere) need not pass
them along. Setting it costs a dict and a ContextVar.set per payment; nothing is formatted
unless a line is actually logged.

    with payment_context(uetr=p.uetr, instruction_id=p.instruction_id, participant=p.participant,
                         partner=p.partner, corridor=p.corridor):
        log.warning("...")   # the line carries the five fields
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Final

# the fields a payment-related line carries (their names in the JSON object)
FIELDS: Final = ("uetr", "instruction_id", "participant", "partner", "corridor")

_EMPTY: Final[Mapping[str, str]] = {}
_context: ContextVar[Mapping[str, str]] = ContextVar("mekong_payment_context", default=_EMPTY)


_FIELD_SET: Final = frozenset(FIELDS)


def _merged(fields: Mapping[str, object]) -> dict[str, str]:
    if not _FIELD_SET.issuperset(fields):  # a programmer error: a typo would silently drop the field from every line
        raise TypeError(f"unknown payment context field(s): {', '.join(sorted(set(fields) - _FIELD_SET))}")
    merged = dict(_context.get())
    for key, value in fields.items():
        if value is not None and value != "":
            merged[key] = value if isinstance(value, str) else str(value)
    return merged


def bind_payment(**fields: object) -> Token[Mapping[str, str]]:
    """Add `fields` (uetr, instruction_id, participant, partner, corridor; None leaves one out) to
    the current context, over what an outer context set; returns the token for `reset`."""
    return _context.set(_merged(fields))


def reset(token: Token[Mapping[str, str]]) -> None:
    _context.reset(token)


class payment_context:  # noqa: N801 - used like a function: `with payment_context(uetr=...):`
    """The payment (or partner) these lines are about, for the duration of the block. A class,
    not @contextmanager: it is entered once per message on the relay's path (about 1 µs)."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: object) -> None:
        self._fields = fields

    def __enter__(self) -> None:
        self._token = _context.set(_merged(self._fields))

    def __exit__(self, *_exc: object) -> None:
        _context.reset(self._token)


def current() -> Mapping[str, str]:
    """The fields in force (empty outside any payment)."""
    return _context.get()


def uetrs_field(uetrs: tuple[str, ...] | list[str], shown_max: int = 10) -> str | None:
    """The `uetr` field of a line about several payments (a pacs.008 carrying a few): the UETRs
    joined by commas, so a search for one finds the line; bounded, with how many were left out."""
    if not uetrs:
        return None
    shown = ",".join(uetrs[:shown_max])
    return shown if len(uetrs) <= shown_max else f"{shown},+{len(uetrs) - shown_max} more"


class PaymentContextFilter(logging.Filter):
    """Copies the payment context onto each record (as attributes: the JSON formatter writes them
    as fields, the text formatter appends them). Installed on the handler, so it sees the records
    of every logger, aiohttp's and aiokafka's included. A field the call passed in `extra` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get()
        for key, value in fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True
