"""Idempotency as a domain outcome: admit() and fingerprint() (STYLE §4)."""

from __future__ import annotations

import copy
from typing import Any, Iterator

import pytest

from switch.domain.idempotency import Admission, StoredKey, admit, fingerprint
from tests.factories import sample_instruction

INSTRUCTION: dict[str, Any] = sample_instruction(quote_id=None)
FP = fingerprint(INSTRUCTION)


def test_first_sight_of_a_key_is_new() -> None:
    assert admit(None, FP) is Admission.NEW


def test_same_payload_with_a_final_outcome_is_a_replay() -> None:
    assert admit(StoredKey(FP, final=True), FP) is Admission.REPLAY


def test_same_payload_without_a_final_outcome_is_in_flight() -> None:
    assert admit(StoredKey(FP, final=False), FP) is Admission.IN_FLIGHT


@pytest.mark.parametrize("final", [True, False])
def test_replay_with_different_payload_is_a_conflict(final: bool) -> None:
    changed = copy.deepcopy(INSTRUCTION)
    changed["amount"]["value"] = "200001"
    assert admit(StoredKey(FP, final=final), fingerprint(changed)) is Admission.CONFLICT


def test_fingerprint_is_a_sha256_hex_digest() -> None:
    assert len(FP) == 64 and int(FP, 16) >= 0
    assert fingerprint(copy.deepcopy(INSTRUCTION)) == FP  # deterministic


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    return value


def test_fingerprint_is_independent_of_key_order_at_every_depth() -> None:
    reordered = _reordered(INSTRUCTION)
    assert list(reordered) != list(INSTRUCTION)
    assert list(reordered["debtor"]) != list(INSTRUCTION["debtor"])
    assert fingerprint(reordered) == FP


def _leaf_paths(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaf_paths(child, (*path, key))
    else:
        yield path


def _with(payload: dict[str, Any], path: tuple[str, ...], new: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return out


LEAVES = list(_leaf_paths(INSTRUCTION))


@pytest.mark.parametrize("path", LEAVES, ids=["/".join(p) for p in LEAVES])
def test_fingerprint_changes_with_any_value(path: tuple[str, ...]) -> None:
    node: Any = INSTRUCTION
    for key in path:
        node = node[key]
    assert fingerprint(_with(INSTRUCTION, path, "changed" if node != "changed" else "other")) != FP


@pytest.mark.parametrize(
    ("original", "changed"),
    [("200000", "200000.00"), ("200000", 200000), (1, "1"), (None, ""), ("Sok Dara", "sok dara"), ("a", "a ")],
)
def test_fingerprint_distinguishes_values_that_look_alike(original: Any, changed: Any) -> None:
    assert fingerprint({"v": original}) != fingerprint({"v": changed})


def test_fingerprint_changes_when_a_field_is_added_or_removed() -> None:
    without = {k: v for k, v in INSTRUCTION.items() if k != "quote_id"}  # quote_id: None vs absent
    assert fingerprint(without) != FP
    assert fingerprint({**INSTRUCTION, "extra": None}) != FP


def test_fingerprint_of_non_ascii_text_is_stable() -> None:
    payload = {"name": "សុខ ដារ៉ា"}
    assert fingerprint(payload) == fingerprint({"name": "សុខ ដារ៉ា"})
    assert fingerprint(payload) != fingerprint({"name": "សុខ ដារ"})
