"""JSON logs an operator can use (issue 11 item 4): one JSON object per line with time, level,
logger and message; the payment context (uetr, instruction id, participant, partner, corridor)
on every line logged while a payment is in hand, and on no other; concurrent payments never see
each other's fields; no full card number; aiokafka's reconnection storm held to a line per window."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from switch.log_context import FIELDS, bind_payment, current, payment_context, reset, uetrs_field
from switch.log_format import RepeatFilter, configure, redact

UETR = "7f9c1d2e-3b4a-4c5d-8e6f-0a1b2c3d4e5f"


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    """The root logger configured as `mekong run` does (JSON), writing into a buffer."""
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    buffer = io.StringIO()
    configure("DEBUG", "json", buffer)
    yield buffer, logging.getLogger("switch.test")
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in before[0]:
        root.addHandler(h)
    root.setLevel(before[1])


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_time_level_logger_and_message(captured: tuple[io.StringIO, logging.Logger]) -> None:
    buffer, log = captured
    log.warning("partner %s unreachable", "promptpay")
    (line,) = _lines(buffer)
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "switch.test", "partner promptpay unreachable")
    at = datetime.fromisoformat(str(line["time"]).replace("Z", "+00:00"))
    assert at.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - at) < timedelta(minutes=1)
    assert not set(FIELDS) & set(line)  # no payment in hand: no payment fields


def test_a_line_logged_inside_a_payment_context_carries_its_five_fields(captured: tuple[io.StringIO, logging.Logger]) -> None:
    buffer, log = captured
    with payment_context(uetr=UETR, instruction_id="i-1", participant="ACLBKHPPXXX", partner="promptpay", corridor="KH-TH"):
        log.info("resent")
    log.info("after")
    inside, after = _lines(buffer)
    assert {k: inside[k] for k in FIELDS} == {
        "uetr": UETR, "instruction_id": "i-1", "participant": "ACLBKHPPXXX", "partner": "promptpay", "corridor": "KH-TH"
    }
    assert not set(FIELDS) & set(after)


def test_an_inner_context_adds_to_the_outer_one_and_the_outer_comes_back() -> None:
    with payment_context(partner="lapnet"):
        with payment_context(uetr=UETR, corridor=None):
            assert dict(current()) == {"partner": "lapnet", "uetr": UETR}
        assert dict(current()) == {"partner": "lapnet"}
    assert dict(current()) == {}
    token = bind_payment(instruction_id="i-9")
    assert dict(current()) == {"instruction_id": "i-9"}
    reset(token)
    assert dict(current()) == {}


def test_an_unknown_field_name_is_a_programmer_error() -> None:
    with pytest.raises(TypeError, match="uert"):
        with payment_context(uert=UETR):
            pass


async def test_concurrent_payments_never_see_each_others_fields(captured: tuple[io.StringIO, logging.Logger]) -> None:
    buffer, log = captured

    async def handle(uetr: str) -> None:
        with payment_context(uetr=uetr):
            await asyncio.sleep(0)  # the other payment runs here
            log.info("handled %s", uetr)

    await asyncio.gather(*(handle(f"u-{i}") for i in range(20)))
    lines = [line for line in _lines(buffer) if line["logger"] == "switch.test"]  # not asyncio's own DEBUG
    assert len(lines) == 20
    assert all(line["message"] == f"handled {line['uetr']}" for line in lines)


def test_extra_fields_and_exceptions_are_fields_of_the_object(captured: tuple[io.StringIO, logging.Logger]) -> None:
    buffer, log = captured
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("round failed", extra={"problem": "timeout"})
    (line,) = _lines(buffer)
    assert line["problem"] == "timeout"
    assert "RuntimeError: boom" in str(line["exc_info"])


def test_a_card_number_never_shows_whole(captured: tuple[io.StringIO, logging.Logger]) -> None:
    buffer, log = captured
    log.warning("refused card %s", "4111111111111111")
    (line,) = _lines(buffer)
    assert "4111111111111111" not in buffer.getvalue()
    assert line["message"] == "refused card ****1111"
    # a long number that is no card number (fails the Luhn check) is left alone
    assert redact("offset 4111111111111112") == "offset 4111111111111112"


def test_the_text_format_appends_the_context(captured: tuple[io.StringIO, logging.Logger]) -> None:
    buffer = io.StringIO()
    configure("INFO", "text", buffer)
    with payment_context(uetr=UETR, partner="napas"):
        logging.getLogger("switch.test").warning("timed out")
    assert buffer.getvalue().rstrip().endswith(f"WARNING switch.test: timed out [uetr={UETR} partner=napas]")


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="json or text"):
        configure("INFO", "yaml", io.StringIO())  # type: ignore[arg-type]


def test_several_uetrs_are_one_searchable_field_bounded() -> None:
    assert uetrs_field(["a", "b"]) == "a,b"
    assert uetrs_field([]) is None
    assert uetrs_field([str(i) for i in range(12)], shown_max=10) == "0,1,2,3,4,5,6,7,8,9,+2 more"


def test_the_broker_client_repeating_itself_is_one_line_per_window() -> None:
    now = [0.0]
    limiter = RepeatFilter("aiokafka", 10.0, clock=lambda: now[0])

    def record(name: str, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, ("x",), None)

    passed = [limiter.filter(record("aiokafka", "Unable connect to node %s")) for _ in range(50)]
    assert passed.count(True) == 1
    assert limiter.filter(record("aiokafka.consumer", "Unable connect to node %s"))  # another logger: its own window
    assert limiter.filter(record("switch.relay", "anything %s"))  # not the broker client's: never held back
    now[0] = 10.5
    again = record("aiokafka", "Unable connect to node %s")
    assert limiter.filter(again)
    assert getattr(again, "suppressed") == 49
    assert "49 more like it" in again.getMessage()


async def test_the_bus_names_the_payment_of_a_command_about_one(captured: tuple[io.StringIO, logging.Logger]) -> None:
    """An operator's enquiry (EnquirePayment) runs with its UETR in the context: what its handler
    or the store logs meanwhile names the payment."""
    from dataclasses import dataclass

    from switch.service import bus as bus_module
    from switch.service.bus import MessageBus

    buffer, log = captured

    @dataclass(frozen=True)
    class AboutOne:
        uetr: str

    async def handler(cmd: AboutOne, uow: object, deps: object) -> object:
        log.warning("looked at it")
        return bus_module.Outcome()

    from switch.metrics import Metrics
    from tests.fakes import FakeStore

    bus_module.HANDLERS[AboutOne] = handler
    try:
        bus = MessageBus(FakeStore(), None, on_commit=lambda outcome: None, metrics=Metrics())  # type: ignore[arg-type]
        await bus.handle(AboutOne(UETR))
    finally:
        del bus_module.HANDLERS[AboutOne]
    (line,) = [d for d in _lines(buffer) if d["logger"] == "switch.test"]
    assert line["uetr"] == UETR
    assert dict(current()) == {}  # and only while it ran
