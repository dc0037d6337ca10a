"""Errors raised by the iso20022 layer.

Client errors (a partner sent something wrong) carry an ISO 20022 reason code; integrity errors
(the local schema directory is wrong) are operator errors and carry the offending file.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar


class XmlRejected(Exception):
    """An untrusted body was refused before schema validation.

    reason_code is FF01 (InvalidFileFormat: oversize, DTD/DOCTYPE, wrong namespace or a
    structurally unusable document) or FF02 (SyntaxError: not well-formed XML); a parser that
    recomputes control totals uses AM10 (InvalidControlSum) for a CtrlSum that does not add up.
    path names the failing element when one is known ("GrpHdr/CtrlSum", "PmtInf[PMT-1]/NbOfTxs").
    """

    def __init__(self, reason_code: str, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        # raised in a worker process too (an imported report file, read beside the event loop)
        return _xml_rejected, (self.reason_code, self.message, self.path)


def _xml_rejected(reason_code: str, message: str, path: str | None) -> XmlRejected:
    return XmlRejected(reason_code, message, path=path)


class SchemaViolation(Exception):
    """A document does not validate against its official XSD (reason FF01)."""

    reason_code: ClassVar[str] = "FF01"

    def __init__(self, message_id: str, errors: list[str]) -> None:
        super().__init__(f"{message_id}: {'; '.join(errors[:3])}")
        self.message_id = message_id
        self.errors = errors


class SchemaIntegrityError(Exception):
    """A schema file or wheel is missing, not official, or differs from the pinned manifest."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = Path(path)
