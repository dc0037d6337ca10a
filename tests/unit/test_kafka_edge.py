"""The Kafka edge's parts that decide what happens to a bad record (issue 7: no record can stop
the consumer): the bounded JSON reader, the dead-letter record builder, the dead-letter publisher
(on a fake producer), the sender read off a dead letter, and pain.001 refusals by version."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError, TopicAuthorizationFailedError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from iso20022.schemas import SchemaSet
from switch import config as config_mod
from switch import limits
from switch.entrypoints.kafka_consumer import (
    DeadLetter,
    JsonRefused,
    _identifiable,
    dead_letter_record,
    parse_record,
    parse_reply,
    publish_dead_letters,
    read_json,
    unreadable,
)
from switch.entrypoints.pain001_edge import Pain001Refused, read_pain001
from switch.metrics import DlqReason, Metrics
from switch.tools.pain001_samples import pain001_from_instructions
from tests.factories import sample_instruction
from tests.unit.edge_kit import consumer_record, enveloped, in_version


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# ------------------------------------------------------------------ the bounded JSON reader


def test_json_within_the_bounds_is_parsed() -> None:
    assert read_json(json.dumps(sample_instruction()).encode()) == sample_instruction()


def test_json_nested_exactly_to_the_bound_is_parsed() -> None:
    data = read_json(nested(limits.json_depth_max))
    assert not isinstance(data, JsonRefused)


def test_json_nested_one_level_past_the_bound_is_refused_as_too_deep() -> None:
    refused = read_json(b'{"a":' + nested(limits.json_depth_max) + b"}")
    assert isinstance(refused, JsonRefused)
    assert (refused.category, refused.reason_code) == (DlqReason.TOO_DEEP, "FF01")


def test_json_tens_of_thousands_of_levels_deep_is_refused_without_recursion() -> None:
    for raw in (b"[" * 60_000, b'{"a":' * 12_000):  # both under the size bound: the depth decides
        assert len(raw) <= limits.json_bytes_max
        refused = read_json(raw)
        assert isinstance(refused, JsonRefused) and refused.category is DlqReason.TOO_DEEP


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    raw = json.dumps({"remittance": "[" * 100 + '\\"{' * 50}).encode()
    assert read_json(raw) == {"remittance": "[" * 100 + '\\"{' * 50}


@pytest.mark.parametrize("raw", [
    b'"\\' * (limits.json_bytes_max // 2),  # quotes escaped, never closed: quadratic for a plain string pattern
    b'["]"' * (limits.json_bytes_max // 4),
    b'"' * limits.json_bytes_max,
])
def test_reading_json_costs_time_linear_in_its_size_whatever_its_quotes(raw: bytes) -> None:
    started = time.perf_counter()
    read_json(raw)
    assert time.perf_counter() - started < limits.record_budget_s_max


def test_json_over_the_size_bound_is_refused_before_parsing() -> None:
    raw = b'"' + b"a" * limits.json_bytes_max + b'"'
    refused = read_json(raw)
    assert isinstance(refused, JsonRefused) and refused.category is DlqReason.TOO_LARGE
    assert str(len(raw)) in refused.reason


@pytest.mark.parametrize(
    "raw", [b"\xff\xfe{}", b'{"participant": "ACLB\xffKHPPXXX"}', b"", b'{"a": NaN}', b'{"version": 1,', b'"\\ud800"']
)
def test_bytes_that_are_not_json_are_refused_as_malformed(raw: bytes) -> None:
    refused = read_json(raw)
    assert isinstance(refused, JsonRefused)
    assert (refused.category, refused.reason_code) == (DlqReason.MALFORMED_JSON, "FF02")
    assert refused.reason.startswith("malformed JSON")


def test_both_contracts_are_read_through_the_bounded_reader() -> None:
    deep = nested(limits.json_depth_max + 1)
    for parse in (parse_record, parse_reply):
        dl = parse(consumer_record(deep))
        assert isinstance(dl, DeadLetter) and dl.category is DlqReason.TOO_DEEP


def test_a_json_record_that_breaks_the_contract_is_an_invalid_contract() -> None:
    dl = parse_record(consumer_record(json.dumps(sample_instruction(amount={"value": 1500, "currency": "KHR"})).encode()))
    assert isinstance(dl, DeadLetter)
    assert (dl.category, dl.reason_code) == (DlqReason.INVALID_CONTRACT, "FF01")
    assert "amount.value" in dl.reason


def test_a_reading_that_raises_becomes_a_dead_letter_naming_the_exception() -> None:
    dl = unreadable(consumer_record(b"{}"), RecursionError("maximum recursion depth exceeded"))
    assert (dl.category, dl.reason_code) == (DlqReason.UNREADABLE, "FF01")
    assert "RecursionError" in dl.reason


# ------------------------------------------------------------------ the dead-letter record


def headers_of(record: Any) -> dict[str, bytes]:
    return dict(record.headers)


def test_a_record_within_the_bound_is_dead_lettered_whole_with_its_size_sha256_and_source() -> None:
    raw = b'{"version": 1, "instruction_id": "broken'
    out = dead_letter_record(DeadLetter(consumer_record(raw, key=b"K1"), "malformed JSON: EOF", "FF02", DlqReason.MALFORMED_JSON))
    h = headers_of(out)
    assert (out.key, out.value) == (b"K1", raw)
    assert h["mekong.reason"] == b"malformed JSON: EOF"
    assert h["mekong.reason_code"] == b"FF02"
    assert (h["mekong.source.topic"], h["mekong.source.partition"], h["mekong.source.offset"]) == (b"mekong.instructions", b"1", b"42")
    assert h["mekong.source.value_bytes"] == str(len(raw)).encode()
    assert h["mekong.source.sha256"] == hashlib.sha256(raw).hexdigest().encode()
    assert "mekong.truncated" not in h


def test_a_record_over_the_bound_is_dead_lettered_as_a_prefix_with_its_original_size_and_sha256() -> None:
    raw = bytes(range(256)) * (limits.dlq_value_bytes_max // 256 + 10)
    assert len(raw) > limits.dlq_value_bytes_max
    out = dead_letter_record(DeadLetter(consumer_record(raw), "too large", "FF01", DlqReason.TOO_LARGE))
    h = headers_of(out)
    assert out.value == raw[: limits.dlq_prefix_bytes_max]
    assert h["mekong.truncated"] == b"value"
    assert h["mekong.source.value_bytes"] == str(len(raw)).encode()
    assert h["mekong.source.sha256"] == hashlib.sha256(raw).hexdigest().encode()
    assert h["mekong.source.offset"] == b"42"


def test_a_record_exactly_at_the_bound_goes_whole() -> None:
    raw = b"x" * limits.dlq_value_bytes_max
    out = dead_letter_record(DeadLetter(consumer_record(raw), "r", "FF01", DlqReason.TOO_LARGE))
    assert out.value == raw and "mekong.truncated" not in headers_of(out)


def test_a_long_key_is_cut_and_its_size_kept() -> None:
    key = b"k" * (limits.dlq_key_bytes_max + 1)
    out = dead_letter_record(DeadLetter(consumer_record(b"x", key=key), "r", "FF01", DlqReason.MALFORMED_JSON))
    h = headers_of(out)
    assert out.key == key[: limits.dlq_key_bytes_max]
    assert (h["mekong.source.key_bytes"], h["mekong.truncated"]) == (str(len(key)).encode(), b"key")


def test_a_record_without_value_or_key_is_dead_lettered_as_empty_bytes() -> None:
    out = dead_letter_record(DeadLetter(consumer_record(None, key=None), "r", "FF02", DlqReason.MALFORMED_JSON))
    assert (out.key, out.value) == (None, b"")
    assert headers_of(out)["mekong.source.value_bytes"] == b"0"


def test_a_long_reason_is_cut_to_whole_utf8_characters() -> None:
    out = dead_letter_record(DeadLetter(consumer_record(b"x"), "é" * limits.dlq_reason_bytes_max + "\ud800", "FF01",
                                        DlqReason.INVALID_CONTRACT))
    reason = headers_of(out)["mekong.reason"]
    assert len(reason) <= limits.dlq_reason_bytes_max
    assert reason.decode("utf-8") == "é" * (limits.dlq_reason_bytes_max // 2)


def test_the_largest_dead_letter_fits_the_producer_request() -> None:
    record = consumer_record(b"x" * limits.dlq_value_bytes_max, key=b"k" * 10 * limits.dlq_key_bytes_max,
                             topic="t" * 249, partition=2**31 - 1, offset=2**63 - 1)
    out = dead_letter_record(DeadLetter(record, "é" * 10 * limits.dlq_reason_bytes_max, "FF01", DlqReason.INVALID_CONTRACT))
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(out.key, out.value, out.headers)
    assert size <= limits.kafka_request_bytes_max


def test_a_headers_only_dead_letter_has_no_value_but_says_what_it_was() -> None:
    raw = b"y" * 5000
    out = dead_letter_record(DeadLetter(consumer_record(raw), "r", "FF01", DlqReason.TOO_LARGE), value_bytes_max=0)
    h = headers_of(out)
    assert out.value == b""
    assert (h["mekong.truncated"], h["mekong.source.value_bytes"]) == (b"value", b"5000")


# ------------------------------------------------------------------ publishing, on a fake producer


class FakeProducer:
    """Plays the broker for `send`: each call takes the next scripted outcome (None: delivered;
    an exception raised by send(); ("future", exc): the acknowledgement fails)."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.delivered: list[tuple[str, bytes | None, bytes, dict[str, bytes]]] = []
        self.calls = 0

    async def send(self, topic: str, *, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]) -> asyncio.Future[None]:
        self.calls += 1
        outcome = self.script.pop(0) if self.script else None
        if isinstance(outcome, BaseException):
            raise outcome
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if isinstance(outcome, tuple):
            future.set_exception(outcome[1])
        else:
            self.delivered.append((topic, key, value, dict(headers)))
            future.set_result(None)
        return future


def dead_letters(n: int) -> list[DeadLetter]:
    return [DeadLetter(consumer_record(f"r{i}".encode(), key=f"k{i}".encode(), offset=i), "r", "FF02", DlqReason.MALFORMED_JSON)
            for i in range(n)]


async def test_dead_letters_are_sent_again_while_the_broker_is_briefly_away() -> None:
    producer = FakeProducer([KafkaConnectionError(), ("future", KafkaTimeoutError()), None,  # attempt 1: 1 of 3 lands
                             KafkaConnectionError(), None])  # attempt 2: 1 of 2, attempt 3: the last one
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    await publish_dead_letters(producer, "dlq", dead_letters(3), sleep=sleep)  # type: ignore[arg-type]
    assert sorted(key for _, key, _, _ in producer.delivered) == [b"k0", b"k1", b"k2"]  # each once
    assert len(sleeps) == 2
    assert sleeps[0] <= limits.dlq_backoff_s_min <= sleeps[1]  # jittered, doubling


async def test_a_broker_that_stays_away_ends_in_the_error_after_the_attempts() -> None:
    producer = FakeProducer([KafkaConnectionError()] * (limits.dlq_publish_attempts_max + 1))

    async def sleep(_s: float) -> None:
        return None

    with pytest.raises(KafkaConnectionError):
        await publish_dead_letters(producer, "dlq", dead_letters(1), sleep=sleep)  # type: ignore[arg-type]
    assert producer.calls == limits.dlq_publish_attempts_max


async def test_a_dead_letter_the_broker_refuses_goes_again_as_headers_only() -> None:
    producer = FakeProducer([("future", MessageSizeTooLargeError()), None])

    async def sleep(_s: float) -> None:
        return None

    await publish_dead_letters(producer, "dlq", dead_letters(1), sleep=sleep)  # type: ignore[arg-type]
    ((_, key, value, headers),) = producer.delivered
    assert (key, value, headers["mekong.truncated"], headers["mekong.source.value_bytes"]) == (b"k0", b"", b"value", b"2")


async def test_a_refusal_that_is_not_about_the_record_is_raised() -> None:
    producer = FakeProducer([("future", TopicAuthorizationFailedError()), ("future", TopicAuthorizationFailedError())])

    async def sleep(_s: float) -> None:
        return None

    with pytest.raises(TopicAuthorizationFailedError):
        await publish_dead_letters(producer, "dlq", dead_letters(1), sleep=sleep)  # type: ignore[arg-type]


# ------------------------------------------------------------------ who hears of a dead letter


def identify(value: bytes) -> tuple[str, str] | None:
    return _identifiable(DeadLetter(consumer_record(value), "r", "FF01", DlqReason.INVALID_CONTRACT))


def test_the_sender_of_an_invalid_instruction_is_read_off_it() -> None:
    raw = json.dumps(sample_instruction(instruction_id="ID-1", amount={"value": 1, "currency": "KHR"})).encode()
    assert identify(raw) == ("ACLBKHPPXXX", "ID-1")


@pytest.mark.parametrize("changes", [
    {"participant": "not a bic"},  # no participant to answer
    {"instruction_id": "x" * 53},  # its answer's key would not fit the outbox
    {"instruction_id": "a\nb"},
    {"instruction_id": 7},
    {"remittance": [[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]},  # too deep to be read at all
])
def test_a_dead_letter_whose_sender_cannot_be_read_safely_is_not_answered(changes: dict[str, Any]) -> None:
    assert identify(json.dumps(sample_instruction(**changes)).encode()) is None


def test_deep_invalid_utf8_and_xml_records_name_no_sender() -> None:
    for raw in (b"[" * 100_000, b'{"participant": "ACLBKHPPXXX", "instruction_id": "\xff"}', b"<Document/>"):
        assert identify(raw) is None


# ------------------------------------------------------------------ pain.001 in another version or an envelope


@pytest.fixture(scope="module")
def pain001_09(schemas: SchemaSet) -> bytes:
    return pain001_from_instructions([sample_instruction(instruction_id="V1")], message_id="MSG-V", schemas=schemas,
                                     created_at=datetime(2026, 11, 28, tzinfo=timezone.utc))


def refusal(value: bytes, schemas: SchemaSet) -> Pain001Refused:
    config = config_mod.load(env={})
    with pytest.raises(Pain001Refused) as caught:
        read_pain001(consumer_record(value), schemas, config, {})
    return caught.value


@pytest.mark.parametrize("version", ["pain.001.001.03", "pain.001.001.11"])
def test_a_pain001_of_another_version_is_refused_naming_the_supported_one(version: str, pain001_09: bytes, schemas: SchemaSet) -> None:
    exc = refusal(in_version(pain001_09, version), schemas)
    assert (exc.message_id, exc.participant, exc.reason_code) == ("MSG-V", "ACLBKHPPXXX", "FF01")
    assert exc.dlq_reason is DlqReason.UNSUPPORTED_MESSAGE
    assert version in exc.reason and "pain.001.001.09" in exc.reason
    assert len(exc.reason) <= 105  # whole in the pain.002's AddtlInf


def test_a_pain001_in_an_apphdr_envelope_is_refused_naming_the_supported_version(pain001_09: bytes, schemas: SchemaSet) -> None:
    exc = refusal(enveloped(pain001_09), schemas)
    assert (exc.message_id, exc.participant) == ("MSG-V", "ACLBKHPPXXX")
    assert "envelope" in exc.reason and "pain.001.001.09" in exc.reason
    assert exc.dlq_reason is DlqReason.UNSUPPORTED_MESSAGE


def test_a_message_id_a_pain002_cannot_carry_is_not_answered(pain001_09: bytes, schemas: SchemaSet) -> None:
    long_id = pain001_09.replace(b"<MsgId>MSG-V</MsgId>", b"<MsgId>" + b"M" * 36 + b"</MsgId>")
    exc = refusal(in_version(long_id, "pain.001.001.03"), schemas)
    assert (exc.message_id, exc.participant) == (None, "ACLBKHPPXXX")


def test_another_iso_message_is_unsupported_and_names_no_sender(schemas: SchemaSet) -> None:
    exc = refusal(b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><FIToFICstmrCdtTrf/></Document>', schemas)
    assert (exc.message_id, exc.participant, exc.dlq_reason) == (None, None, DlqReason.UNSUPPORTED_MESSAGE)


def test_xml_too_deep_for_the_parser_is_malformed(schemas: SchemaSet) -> None:
    exc = refusal(b"<a>" * 100_000 + b"</a>" * 100_000, schemas)
    assert exc.dlq_reason is DlqReason.MALFORMED_XML


# ------------------------------------------------------------------ the metric's labels


def test_the_dlq_metric_has_exactly_the_fixed_reason_labels() -> None:
    metrics = Metrics()
    reasons = {s.labels["reason"] for m in metrics.registry.collect() if m.name == "switch_dlq" for s in m.samples
               if s.name == "switch_dlq_total"}
    assert reasons == {r.value for r in DlqReason}
