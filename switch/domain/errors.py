"""Two error families (STYLE §8).

`SwitchError` subclasses are operating errors: expected, mapped to an ISO 20022 external status
reason code, with a `retriable` flag. `InvariantViolation` is a programmer error: nothing below
`main()` catches it.
"""

from __future__ import annotations

from typing import ClassVar


class InvariantViolation(AssertionError):
    """A bug: the code tried something the domain forbids."""


class ConcurrentUpdate(RuntimeError):
    """Another transaction changed a row this one read (a version check failed), or the database
    broke a lock cycle. Nothing was written: the whole unit of work is run again, never a crash."""

    retriable: ClassVar[bool] = True


class SwitchError(Exception):
    retriable: ClassVar[bool] = False
    default_reason_code: ClassVar[str] = "MS03"

    def __init__(self, message: str, *, reason_code: str | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code or self.default_reason_code


class InstructionRejected(SwitchError):
    """An instruction the switch refuses at admission (corridor, amount, party, limits)."""

    default_reason_code = "FF01"


class PartnerUnavailable(SwitchError):
    retriable = True
    default_reason_code = "AB07"
