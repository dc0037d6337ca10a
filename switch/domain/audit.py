"""The audit log's hash chain, pure (no I/O): the canonical form of an entry, its hash, and the
walk that checks a chain and names the first broken entry.

An entry's hash is sha256 over the previous entry's hash (hex text) followed by the canonical
form of the entry: compact JSON with sorted keys of {at, actor, action, subject, detail}, UTF-8,
`at` as ISO 8601 UTC with microseconds. The first entry's previous hash is GENESIS_HASH. Ids
count up from 1 without gaps, so a deleted entry shows as a gap even where the hashes are
rewritten around it. What the chain alone cannot show: the last entries cut off, or the whole
chain rewritten from some entry on; comparing the head (id and hash, printed by `mekong audit
verify`) with one recorded elsewhere earlier shows both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

from switch.domain.errors import InvariantViolation

GENESIS_HASH: Final = "0" * 64  # the previous hash of the first entry


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry as stored. `detail` is a JSON object of strings, integers, booleans, null, lists
    and objects (no floats: their text is not the same in every language that may verify)."""

    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class NewAuditEntry:
    """An entry not yet in the chain: the appender gives it its id and hashes."""

    at: datetime
    actor: str
    action: str
    subject: str
    detail: Mapping[str, Any]


def _check_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvariantViolation(f"audit detail key {key!r} at {where} is not a string")
            _check_value(item, f"{where}.{key}")
        return
    raise InvariantViolation(f"audit detail {where} is a {type(value).__name__}: not canonical JSON")


def at_text(at: datetime) -> str:
    if at.tzinfo is None:
        raise InvariantViolation("naive datetime in an audit entry")
    return at.astimezone(timezone.utc).isoformat(timespec="microseconds")


def canonical(at: datetime, actor: str, action: str, subject: str, detail: Mapping[str, Any]) -> str:
    """The entry's canonical text: what its hash covers."""
    _check_value(detail, "detail")
    body = {"at": at_text(at), "actor": actor, "action": action, "subject": subject, "detail": detail}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def detail_text(detail: Mapping[str, Any]) -> str:
    """How `detail` is stored: the same canonical JSON the hash covers."""
    _check_value(detail, "detail")
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, at: datetime, actor: str, action: str, subject: str, detail: Mapping[str, Any]) -> str:
    text = prev_hash + canonical(at, actor, action, subject, detail)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_after(last_id: int, last_hash: str, new: Iterable[NewAuditEntry]) -> list[AuditEntry]:
    """The new entries chained after the entry (`last_id`, `last_hash`): 0 and GENESIS_HASH for
    an empty log."""
    out: list[AuditEntry] = []
    for e in new:
        last_id += 1
        digest = entry_hash(last_hash, e.at, e.actor, e.action, e.subject, e.detail)
        out.append(AuditEntry(last_id, e.at, e.actor, e.action, e.subject, e.detail, last_hash, digest))
        last_hash = digest
    return out


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first entry where the chain does not hold, and what differs there."""

    id: int
    problem: str  # "gap", "link", "hash"
    message: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    entries: int
    first_at: datetime | None
    last_at: datetime | None
    head_id: int | None
    head_hash: str
    broken: ChainBreak | None


class ChainWalk:
    """Feed entries in id order (in pages, so a long chain is never held whole); `report()` says
    whether the chain holds, or where it first breaks. Checks, in order, for each entry: its id
    follows the one before (a deleted entry leaves a gap), its prev_hash is the hash of the one
    before (entries moved or replaced), its hash is that of its own content (an entry edited)."""

    def __init__(self) -> None:
        self._count = 0
        self._first_at: datetime | None = None
        self._last: AuditEntry | None = None
        self._broken: ChainBreak | None = None

    @property
    def broken(self) -> ChainBreak | None:
        return self._broken

    def feed(self, entries: Iterable[AuditEntry]) -> None:
        for entry in entries:
            if self._broken is not None:
                return
            self._broken = self._check(entry)
            if self._broken is not None:
                return
            self._count += 1
            if self._first_at is None:
                self._first_at = entry.at
            self._last = entry

    def _check(self, entry: AuditEntry) -> ChainBreak | None:
        last = self._last
        expected_id = 1 if last is None else last.id + 1
        if entry.id != expected_id:
            before = "the start of the log" if last is None else f"entry {last.id}"
            missing = f"{expected_id}" if entry.id == expected_id + 1 else f"{expected_id}..{entry.id - 1}"
            return ChainBreak(entry.id, "gap", f"gap in ids: entry {entry.id} follows {before} (missing {missing})")
        expected_prev = GENESIS_HASH if last is None else last.hash
        if entry.prev_hash != expected_prev:
            before = "the genesis value" if last is None else f"the hash of entry {last.id}"
            return ChainBreak(
                entry.id, "link", f"prev_hash link broken: prev_hash {entry.prev_hash} is not {before} ({expected_prev})"
            )
        try:
            computed = entry_hash(entry.prev_hash, entry.at, entry.actor, entry.action, entry.subject, entry.detail)
        except InvariantViolation as exc:
            return ChainBreak(entry.id, "hash", f"hash mismatch: the entry is not canonical ({exc})")
        if computed != entry.hash:
            return ChainBreak(entry.id, "hash", f"hash mismatch: stored {entry.hash}, content hashes to {computed}")
        return None

    def report(self) -> ChainReport:
        last = self._last
        return ChainReport(
            entries=self._count,
            first_at=self._first_at,
            last_at=last.at if last else None,
            head_id=last.id if last else None,
            head_hash=last.hash if last else GENESIS_HASH,
            broken=self._broken,
        )
