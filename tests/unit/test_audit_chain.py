"""The audit log's hash chain (switch/domain/audit.py): the canonical form an entry's hash
covers, the genesis value, and the walk that names the first broken entry."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from switch.domain.audit import GENESIS_HASH, AuditEntry, ChainWalk, NewAuditEntry, canonical, chain_after, entry_hash
from switch.domain.errors import InvariantViolation

T0 = datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=timezone.utc)


def _new(i: int) -> NewAuditEntry:
    return NewAuditEntry(T0 + timedelta(seconds=i), f"replica r{i}", "config.loaded", f"config/f{i}.toml", {"sha256": "ab" * 32, "bytes": i})


def _chain(n: int) -> list[AuditEntry]:
    return chain_after(0, GENESIS_HASH, [_new(i) for i in range(n)])


def _walk(entries: list[AuditEntry]) -> ChainWalk:
    walk = ChainWalk()
    walk.feed(entries)
    return walk


def test_the_canonical_form_is_compact_json_with_sorted_keys_and_utc_microseconds() -> None:
    at = datetime(2026, 11, 28, 8, 0, 0, tzinfo=timezone(timedelta(hours=7)))  # 01:00 UTC
    text = canonical(at, "operator ops@host", "db.upgraded", "sqlite:///x", {"to": "0005", "from": None, "n": 2})
    assert text == (
        '{"action":"db.upgraded","actor":"operator ops@host","at":"2026-11-28T01:00:00.000000+00:00",'
        '"detail":{"from":null,"n":2,"to":"0005"},"subject":"sqlite:///x"}'
    )


def test_the_canonical_form_keeps_non_ascii_text_as_utf8() -> None:
    assert '"subject":"ສະບາຍດີ"' in canonical(T0, "a", "b", "ສະບາຍດີ", {})


def test_the_hash_is_sha256_of_the_previous_hash_then_the_canonical_form() -> None:
    detail = {"k": "v"}
    expected = hashlib.sha256((GENESIS_HASH + canonical(T0, "a", "b", "c", detail)).encode()).hexdigest()
    assert entry_hash(GENESIS_HASH, T0, "a", "b", "c", detail) == expected


def test_the_first_entry_follows_the_genesis_value_and_ids_start_at_one() -> None:
    first, second = _chain(2)
    assert GENESIS_HASH == "0" * 64
    assert (first.id, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.id, second.prev_hash) == (2, first.hash)


def test_the_key_order_of_a_detail_does_not_change_the_hash() -> None:
    assert entry_hash(GENESIS_HASH, T0, "a", "b", "c", {"x": 1, "y": 2}) == entry_hash(GENESIS_HASH, T0, "a", "b", "c", {"y": 2, "x": 1})


@pytest.mark.parametrize("detail", [{"rate": 1.5}, {"at": T0}, {"raw": b"bytes"}, {1: "key not text"}])
def test_a_detail_that_is_not_canonical_json_is_a_programmer_error(detail: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvariantViolation):
        canonical(T0, "a", "b", "c", detail)


def test_a_naive_time_is_a_programmer_error() -> None:
    with pytest.raises(InvariantViolation):
        canonical(T0.replace(tzinfo=None), "a", "b", "c", {})


def test_an_intact_chain_is_reported_with_its_count_times_and_head() -> None:
    entries = _chain(5)
    report = _walk(entries).report()
    assert report.broken is None
    assert (report.entries, report.first_at, report.last_at) == (5, entries[0].at, entries[-1].at)
    assert (report.head_id, report.head_hash) == (5, entries[-1].hash)


def test_an_empty_log_is_intact() -> None:
    report = _walk([]).report()
    assert (report.entries, report.broken, report.head_hash) == (0, None, GENESIS_HASH)


def test_an_edited_detail_is_a_hash_mismatch_at_that_entry() -> None:
    entries = _chain(5)
    entries[2] = replace(entries[2], detail={**entries[2].detail, "bytes": 999})
    report = _walk(entries).report()
    assert report.broken is not None and (report.broken.id, report.broken.problem) == (3, "hash")
    assert report.entries == 2 and report.head_id == 2


def test_an_edited_entry_whose_hash_is_recomputed_breaks_the_link_of_the_next() -> None:
    entries = _chain(5)
    e = replace(entries[2], actor="someone else")
    entries[2] = replace(e, hash=entry_hash(e.prev_hash, e.at, e.actor, e.action, e.subject, e.detail))
    broken = _walk(entries).report().broken
    assert broken is not None and (broken.id, broken.problem) == (4, "link")


def test_a_deleted_entry_is_a_gap_at_the_entry_after_it() -> None:
    entries = _chain(5)
    del entries[1]
    broken = _walk(entries).report().broken
    assert broken is not None and (broken.id, broken.problem) == (3, "gap")
    assert "missing 2" in broken.message


def test_a_deleted_first_entry_is_a_gap_at_the_start() -> None:
    broken = _walk(_chain(3)[1:]).report().broken
    assert broken is not None and (broken.id, broken.problem) == (2, "gap")


def test_two_entries_swapped_under_their_ids_break_the_link() -> None:
    entries = _chain(5)
    a, b = entries[1], entries[2]
    entries[1], entries[2] = replace(b, id=2), replace(a, id=3)
    broken = _walk(entries).report().broken
    assert broken is not None and (broken.id, broken.problem) == (2, "link")


def test_a_detail_that_is_no_longer_json_is_a_hash_mismatch() -> None:
    entries = _chain(2)
    entries[0] = replace(entries[0], detail="{not json")  # what the store reads back from a mangled row
    broken = _walk(entries).report().broken
    assert broken is not None and (broken.id, broken.problem) == (1, "hash")


def test_the_walk_takes_the_chain_in_pages() -> None:
    entries = _chain(7)
    walk = ChainWalk()
    for start in range(0, 7, 3):
        walk.feed(entries[start : start + 3])
    assert walk.report().entries == 7 and walk.broken is None
