"""Idempotency as a domain outcome (STYLE §4).

The participant's instruction id is the key and a SHA-256 of the canonical payload the
fingerprint. Same key and fingerprint replays the stored outcome; same key with another payload
is a conflict (cf. TigerBeetle's `exists_with_different_amount`, Mojaloop's `MODIFIED_REQUEST`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Admission(StrEnum):
    NEW = "new"
    REPLAY = "replay"  # same payload again: re-emit the stored outcome
    CONFLICT = "conflict"  # same key, different payload: reject (DUPL)
    IN_FLIGHT = "in_flight"  # same payload, outcome not final yet: re-emit the current status


@dataclass(frozen=True, slots=True)
class StoredKey:
    fingerprint: str
    final: bool


def fingerprint(payload: Any) -> str:
    """SHA-256 of the canonical JSON form (sorted keys, no whitespace) of `payload`."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def admit(existing: StoredKey | None, fingerprint_: str) -> Admission:
    if existing is None:
        return Admission.NEW
    if existing.fingerprint != fingerprint_:
        return Admission.CONFLICT
    return Admission.REPLAY if existing.final else Admission.IN_FLIGHT
