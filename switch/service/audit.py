"""Writing the audit trail (issue 8 item 7): security refusals, operator actions, and the
configuration each replica loaded at start; who, what, when, in a hash-chained log
(switch/domain/audit.py) that no code path updates or deletes from.

`audit(uow, ...)` appends inside the caller's transaction, so an entry commits with the refusal
or action it records, or not at all. An edge with no transaction at hand (a refusal that changes
nothing) appends in a short one of its own. Nothing here runs per successful payment: refusals,
dead letters, starts and operator commands are rare, and a request refused at the partner port
costs one small insert.

What an entry names from the outside (a path segment, a Kafka coordinate) is cut to the limits
in switch/limits.py; the content of what was refused (a body, a record's value) is never written,
only its size and sha256.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from switch import limits
from switch.domain.audit import AuditEntry, NewAuditEntry
from switch.service.ports import Store, UnitOfWork

log = logging.getLogger(__name__)

# actions: a fixed set of dotted names
CONFIG_LOADED = "config.loaded"
PARTICIPANT_KEY_LOADED = "config.participant_key"
HTTP_REFUSED = "http.refused"
KAFKA_DEAD_LETTERED = "kafka.dead_lettered"
HTTP_RATE_LIMITED = "http.rate_limited"
KAFKA_RATE_LIMITED = "kafka.rate_limited"
DB_UPGRADED = "db.upgraded"


def _cut(text: str, chars_max: int) -> str:
    return text if len(text) <= chars_max else text[: chars_max - 1] + "…"


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return _cut(value, limits.audit_text_chars_max)
    if isinstance(value, Mapping):
        return {str(k): _bounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded(v) for v in value]
    return value


def entry(*, at: datetime, actor: str, action: str, subject: str, detail: Mapping[str, Any] | None = None) -> NewAuditEntry:
    """An entry with every text cut to its bound."""
    return NewAuditEntry(
        at=at,
        actor=_cut(actor, limits.audit_actor_chars_max),
        action=_cut(action, limits.audit_action_chars_max),
        subject=_cut(subject, limits.audit_subject_chars_max),
        detail=_bounded(dict(detail or {})),
    )


async def audit(
    uow: UnitOfWork, *, at: datetime, actor: str, action: str, subject: str, detail: Mapping[str, Any] | None = None
) -> AuditEntry:
    """Append one entry in the caller's transaction."""
    (appended,) = await uow.audit_append([entry(at=at, actor=actor, action=action, subject=subject, detail=detail)])
    return appended


async def audit_many(uow: UnitOfWork, entries: Sequence[NewAuditEntry]) -> list[AuditEntry]:
    """Append several entries (one chain step each) in the caller's transaction."""
    return await uow.audit_append(list(entries))


async def audit_alone(store: Store, entries: Sequence[NewAuditEntry]) -> list[AuditEntry]:
    """Append in a transaction of its own (an action with no other effect in the database)."""
    async with store.unit_of_work() as uow:
        return await uow.audit_append(list(entries))


# ----------------------------------------------------------------------------- configuration
def config_files(config_dir: Path) -> list[Path]:
    """The configuration files a replica reads from its directory: every TOML file in it or
    below (switch, participants, corridors, inbound routes, partner profiles, FX), sorted."""
    return sorted(p for p in config_dir.rglob("*.toml") if p.is_file())


def config_entries(config_dir: Path, *, replica: str, at: datetime) -> list[NewAuditEntry]:
    """One entry per configuration file: its path, size and the sha256 of its bytes."""
    out = []
    for path in config_files(config_dir):
        data = path.read_bytes()
        out.append(
            entry(
                at=at,
                actor=f"replica {replica}",
                action=CONFIG_LOADED,
                subject=str(path),
                detail={"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "replica": replica},
            )
        )
    return out


async def audit_config_loaded(store: Store, config_dir: Path, *, replica: str, at: datetime) -> None:
    """At start: what configuration this replica runs with, in one transaction."""
    await audit_alone(store, config_entries(config_dir, replica=replica, at=at))


def participant_key_entries(keys: Iterable[Any], *, replica: str, at: datetime) -> list[NewAuditEntry]:
    """One entry per participant key the replica verifies Kafka records with (kafka_auth.ParticipantKey):
    where it came from, whose it is and its id. The key files are not TOML, so the configuration
    entries do not cover them; a public key swapped on disk shows here as another key id."""
    return [
        entry(
            at=at,
            actor=f"replica {replica}",
            action=PARTICIPANT_KEY_LOADED,
            subject=key.source,
            detail={"participant": key.participant, "key_id": key.key_id,
                    "not_after": key.not_after.isoformat() if key.not_after else None, "replica": replica},
        )
        for key in keys
    ]


async def audit_participant_keys(store: Store, keys: Iterable[Any], *, replica: str, at: datetime) -> None:
    """At start: the participant keys this replica runs with, in one transaction."""
    await audit_alone(store, participant_key_entries(keys, replica=replica, at=at))


# ----------------------------------------------------------------------------- Kafka edge
def dead_letter_entries(dead: Sequence[Any], *, at: datetime) -> list[NewAuditEntry]:
    """One entry per dead letter (kafka_consumer.DeadLetter): where the record was, why it was
    refused (the category and ISO reason code), its size and sha256, and, when the record gave
    them, the key id it was signed with and the participant that key belongs to; never its content."""
    out = []
    for dl in dead:
        record = dl.record
        value = record.value or b""
        detail: dict[str, Any] = {
            "category": str(dl.category.value),
            "reason_code": dl.reason_code,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "value_bytes": len(value),
            "sha256": hashlib.sha256(value).hexdigest(),
        }
        if getattr(dl, "key_id", None) is not None:
            detail["key_id"] = dl.key_id
        if getattr(dl, "sender", None) is not None:
            detail["signer"] = dl.sender
        out.append(
            entry(
                at=at,
                actor=f"kafka {record.topic}",
                action=KAFKA_DEAD_LETTERED,
                subject=f"{record.topic}:{record.partition}:{record.offset}",
                detail=detail,
            )
        )
    return out


async def audit_dead_letters(uow: UnitOfWork, dead: Sequence[Any], *, at: datetime) -> None:
    """The consumer's hook: its dead letters, in the transaction that answers them. A batch read
    again after a crash before its offsets were committed is refused, and recorded, again."""
    if dead:
        await uow.audit_append(dead_letter_entries(dead, at=at))


# ----------------------------------------------------------------------------- HTTP edge
def http_refusal_entry(
    *, at: datetime, peer: str | None, path: str, status: int, reason_code: str | None, error: str | None,
    declared_bytes: int | None,
) -> NewAuditEntry:
    return entry(
        at=at,
        actor=f"peer {peer or 'unknown'}",
        action=HTTP_REFUSED,
        subject=path,
        detail={"status": status, "reason_code": reason_code, "error": error, "declared_bytes": declared_bytes},
    )


async def audit_refusal(
    in_transaction: Callable[..., Awaitable[Any]], refusal: NewAuditEntry
) -> None:
    """A refusal at the HTTP edge, in a short transaction of its own (the refusal changed nothing).
    `in_transaction` is the bus's: it runs the append again if it lost a race. If the database
    cannot take it the refusal still stands: the failure is logged, the answer is unchanged."""

    async def work(uow: UnitOfWork) -> list[Any]:
        await uow.audit_append([refusal])
        return []  # no outbox rows to hand on

    try:
        await in_transaction(work, name="audit")
    except Exception:  # noqa: BLE001 - an audit failure must not turn a refusal into a 500
        log.exception("could not audit the refusal of %s (%s)", refusal.subject, refusal.detail.get("status"))


# ----------------------------------------------------------------------------- abuse limits
def rate_limit_entry(
    *, at: datetime, action: str, actor: str, party: str, per_s: int, burst: int, detail: Mapping[str, Any] | None = None
) -> NewAuditEntry:
    """A party started being refused for its rate (issue 8 item 6): the first refusal of a spell.
    The refusals themselves are counted (switch_rate_limited_total), never audited one by one, so
    a flood cannot flood the audit log."""
    return entry(
        at=at, actor=actor, action=action, subject=party,
        detail={"per_s": per_s, "burst": burst, "quiet_gap_s": limits.rate_limit_episode_gap_s, **(detail or {})},
    )


# ----------------------------------------------------------------------------- operators
async def audit_operator_action(
    store: Store, *, at: datetime, operator: str, action: str, subject: str, detail: Mapping[str, Any] | None = None
) -> None:
    await audit_alone(store, [entry(at=at, actor=f"operator {operator}", action=action, subject=subject, detail=detail)])
