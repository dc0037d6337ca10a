"""Dead letters as the toolbox reads them (switch/entrypoints/dead_letters.py) and the original
headers the consumer now keeps in them (kafka_consumer.dead_letter_record), so that a replay
republishes the record as it was."""

from __future__ import annotations

import pytest
from aiokafka.structs import ConsumerRecord

from switch import limits
from switch.entrypoints.dead_letters import DeadLetterView, masked_text, parse_ref
from switch.entrypoints.kafka_consumer import DeadLetter, dead_letter_record
from switch.metrics import DlqReason

SIGNED = [("mekong.key_id", b"0123456789abcdef"), ("mekong.sig", b"s" * 88)]


def _record(value: bytes, headers: list[tuple[str, bytes]], key: bytes = b"k1") -> ConsumerRecord:  # type: ignore[type-arg]
    return ConsumerRecord("mekong.instructions", 1, 41, 0, 0, key, value, None, len(key), len(value), headers)


def _view(value: bytes, headers: list[tuple[str, bytes]], **kwargs: int) -> DeadLetterView:
    dl = dead_letter_record(DeadLetter(_record(value, headers), "malformed JSON", "FF02", DlqReason.MALFORMED_JSON), **kwargs)
    return DeadLetterView(0, 7, 1_700_000_000_000, dl.key, dl.value, tuple(dl.headers))


def test_a_dead_letter_keeps_the_original_headers_for_a_replay() -> None:
    view = _view(b"{not json", SIGNED)
    assert view.original_headers() == SIGNED
    assert view.truncated == [] and view.source_topic == "mekong.instructions"
    summary = view.summary()
    assert (summary["ref"], summary["reason_code"], summary["source"]) == ("0:7", "FF02", {"topic": "mekong.instructions", "partition": 1, "offset": 41})


def test_headers_over_their_bound_are_dropped_and_the_dead_letter_says_so() -> None:
    big = [("mekong.sig", b"x" * (limits.dlq_original_headers_bytes_max + 1))]
    view = _view(b"{}", big)
    assert view.original_headers() == [] and view.truncated == ["headers"]


def test_a_cut_value_is_named_truncated() -> None:
    view = _view(b"y" * 100, SIGNED, value_bytes_max=10)
    assert "value" in view.truncated and view.summary()["value_bytes"] == 100


def test_card_numbers_in_a_record_are_masked_when_shown() -> None:
    text = masked_text(b'{"creditor": {"account": "9704123456781234"}, "amount": "150000", "ref": "20261128"}')
    assert "9704 **** **** 1234" in text and "9704123456781234" not in text
    assert '"150000"' in text and '"20261128"' in text  # short numbers stay


@pytest.mark.parametrize(("ref", "expected"), [("0:12", (0, 12)), ("12", (0, 12)), ("3:0", (3, 0))])
def test_references(ref: str, expected: tuple[int, int]) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "a:1", "1:b", "-1:2", "1:-2"])
def test_bad_references_are_refused(ref: str) -> None:
    with pytest.raises(ValueError):
        parse_ref(ref)
