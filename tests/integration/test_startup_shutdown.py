"""`mekong run` as an operator meets it (issue 11 item 4), as a real subprocess:

- start-up problems in one line that names what did not answer (the broker's host:port, the
  database with its password hidden, the port already taken), exit code 1, within a bound, with
  no traceback and no "Unclosed client session" / "unclosed connector" noise;
- SIGTERM with the broker stopped and the partner's simulator killed ends within the configured
  grace (a correctness bound: the orchestrator kills the process after its own), and what was not
  delivered is still in the outbox;
- the log is JSON lines, and the partner's outage is in it, with the payment and partner fields,
  rate-limited.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from switch.broker import TansuBroker, free_port
from switch.config import DEFAULT_CONFIG_DIR
from switch.tools.stack import Stack
from tests.factories import sample_partner_instruction

start_s_max = 60.0  # a start that fails must fail well within this (the broker's bound is 2 s here)
NOISE = ("Traceback", "Unclosed", "unclosed", "Task was destroyed", "was never retrieved")  # "Unclosed client session", ".. connector", "Unclosed AIOKafkaProducer"


def _mekong_run(tmp_path: Path, **env: str) -> tuple[int, str, float]:
    """Run `mekong run` (TLS and signatures on: the session's PKI) until it exits; its exit code,
    its stderr and how long it ran."""
    full = {
        **os.environ,
        "MEKONG_PAN_KEY": os.urandom(32).hex(),
        "MEKONG_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'mekong.db'}",
        "MEKONG_HTTP_PORT": "0",
        "MEKONG_OPS_PORT": "0",
        "MEKONG_KAFKA_CONNECT_TIMEOUT_S": "2",
        **env,
    }
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "switch.entrypoints.cli", "run"], env=full, capture_output=True, text=True,
                          timeout=start_s_max)
    return done.returncode, done.stderr, time.monotonic() - started


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line as the JSON object it must be (a line that is not one fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _the_error(stderr: str) -> str:
    (line,) = [d for d in _json_lines(stderr) if d["logger"] == "mekong" and d["level"] == "ERROR"]
    return str(line["message"])


def test_kafka_refusing_connections_is_named_by_host_and_port(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    code, stderr, _ = _mekong_run(tmp_path, MEKONG_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}")
    assert code == 1
    assert _the_error(stderr) == (
        f"cannot start: Kafka at 127.0.0.1:{port} did not answer (creating topics): no connection (refused, closed or unreachable)"
    )
    assert not [n for n in NOISE if n in stderr]


def test_kafka_that_accepts_but_never_answers_is_given_up_on_within_the_connect_timeout(tmp_path: Path) -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        code, stderr, elapsed = _mekong_run(tmp_path, MEKONG_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}")
    assert code == 1
    assert _the_error(stderr) == f"cannot start: Kafka at 127.0.0.1:{port} did not answer (creating topics): no answer within 2 s"
    assert elapsed < start_s_max
    assert not [n for n in NOISE if n in stderr]


def test_a_database_that_does_not_answer_is_named_with_its_password_hidden(tmp_path: Path) -> None:
    port, password = free_port(), uuid.uuid4().hex
    code, stderr, _ = _mekong_run(
        tmp_path, MEKONG_DATABASE_URL=f"postgresql+asyncpg://mekong:{password}@127.0.0.1:{port}/switch", MEKONG_KAFKA_BOOTSTRAP="127.0.0.1:9"
    )
    assert code == 1
    message = _the_error(stderr)
    assert message.startswith(f"cannot start: the database postgresql+asyncpg://mekong:***@127.0.0.1:{port}/switch did not answer: ")
    assert password not in stderr
    assert not [n for n in NOISE if n in stderr]


def test_the_partner_port_already_in_use_is_named(tmp_path: Path, broker: TansuBroker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, stderr, _ = _mekong_run(tmp_path, MEKONG_KAFKA_BOOTSTRAP=broker.bootstrap_servers, MEKONG_HTTP_PORT=str(port))
    assert code == 1
    assert _the_error(stderr) == f"cannot start: the partner port 127.0.0.1:{port} cannot be opened: already in use"
    assert not [n for n in NOISE if n in stderr]


def test_a_config_mistake_is_printed_without_a_traceback(tmp_path: Path) -> None:
    """The config check's messages are its own (ConfigErrors: a `file:line: message` line each);
    `mekong run` prints them as they are and exits 2 (a configuration to fix, not a part that did
    not answer: those exit 1), whatever the mistake."""
    config_dir = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config_dir)
    switch_toml = config_dir / "switch.toml"
    switch_toml.write_text(switch_toml.read_text().replace("shutdown_grace_s = 20", "shutdown_grace_s = 0"))
    code, stderr, _ = _mekong_run(tmp_path, MEKONG_CONFIG_DIR=str(config_dir), MEKONG_KAFKA_BOOTSTRAP="127.0.0.1:9")
    assert code == 2
    line = next(ln for ln in stderr.splitlines() if "shutdown_grace_s" in ln)
    assert line.startswith(f"{switch_toml}:"), line  # file:line: message
    assert line.split(":")[1].isdigit(), line
    assert not [n for n in NOISE if n in stderr]


# ------------------------------------------------------------------ SIGTERM within the grace

GRACE_S = 10.0
PAYMENTS = 5


async def _publish(stack: Stack, instructions: list[dict[str, Any]]) -> None:
    signers = stack.signers
    assert signers is not None
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for doc in instructions:
            value = json.dumps(doc).encode()
            await producer.send_and_wait("mekong.instructions", value=value, key=doc["instruction_id"].encode(),
                                         headers=signers.headers(doc["participant"], value))
    finally:
        await producer.stop()


def _switch_log(stack: Stack) -> list[dict[str, Any]]:
    """The switch's log as JSON objects (its one stdout line, "mekong switch ready", left out)."""
    text = (stack.workdir / "logs" / "switch.log").read_text()
    if not text.endswith("\n"):
        # the switch is still running and its buffered stream can be flushed mid-line: the last,
        # unfinished line is read again on the next poll; every finished line must be JSON
        text = text[: text.rfind("\n") + 1]
    return _json_lines("\n".join(line for line in text.splitlines() if not line.startswith("mekong switch ready")))


def _wait_for(stack: Stack, what: str, test: Any, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [d for d in _switch_log(stack) if test(d)]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no {what} in the switch's log:\n{stack.log_tail('switch')}")


def test_sigterm_with_the_broker_stopped_and_the_partner_killed_ends_within_the_grace(tmp_path: Path) -> None:
    """The hard case: the partner is gone, then the broker; the relay gives up on the pacs.008 at
    the (shortened) SLA and the AB07 status events have nowhere to go when SIGTERM comes."""
    stack = Stack(tmp_path, partners=("promptpay",), switch_log_level="INFO", switch_env={
        "MEKONG_SHUTDOWN_GRACE_S": f"{GRACE_S:g}",
        "MEKONG_PARTNER_SLA_S_PROMPTPAY": "16",  # above the inbound confirm timeout (15 s), as start requires
        "MEKONG_PARTNER_RESEND_AFTER_S_PROMPTPAY": "2",
        "MEKONG_PARTNER_TIMEOUT_S_PROMPTPAY": "1",
    })
    with stack:
        began = time.monotonic()
        stack.kill("sim-promptpay")  # the partner is gone: every delivery fails to connect
        instructions = [sample_partner_instruction("promptpay", instruction_id=f"grace-{i}-{uuid.uuid4().hex[:8]}") for i in range(PAYMENTS)]
        asyncio.run(_publish(stack, instructions))
        outage = _wait_for(stack, "partner outage line", lambda d: d.get("problem") == "unreachable")
        stack.broker.stop()  # type: ignore[union-attr]  # and now Kafka is gone too
        _wait_for(stack, "lost broker line", lambda d: "does not answer" in str(d["message"]) and d["logger"] == "switch.entrypoints.main")
        gave_up = _wait_for(stack, "give-up line", lambda d: d.get("problem") == "gave_up")
        sent = time.monotonic()
        os.kill(stack.pid("switch"), signal.SIGTERM)
        while stack.alive("switch") and time.monotonic() - sent < 3 * GRACE_S:
            time.sleep(0.05)
        exit_s = time.monotonic() - sent
        code = stack.kill("switch")  # already ended: its exit code
        lines = _switch_log(stack)
        test_s = time.monotonic() - began
    assert exit_s < GRACE_S, f"SIGTERM took {exit_s:.1f} s, the grace is {GRACE_S:g} s"
    assert code == 0  # ended by its own bounds, not by the last-resort exit
    assert any(str(d["message"]).startswith("stopped in ") for d in lines)
    # the outage and the give-up are in the log with the partner and the payments, and the outage
    # is said a few times, not once per attempt
    uetrs = {u for u in str(outage.get("uetr", "")).split(",") if u}
    assert outage["partner"] == "promptpay" and outage["level"] == "WARNING" and uetrs
    assert gave_up["partner"] == "promptpay" and "AB07" in str(gave_up["message"])
    outage_lines = [d for d in lines if d.get("problem") == "unreachable" and d.get("partner") == "promptpay"]
    assert 1 <= len(outage_lines) <= 1 + test_s / 10
    raw = (stack.workdir / "logs" / "switch.log").read_text()
    assert not [n for n in NOISE if n in raw]
    # nothing was lost: the payments are rejected AB07, and their status events, which the broker
    # could not take, are still in the outbox for the next start
    with sqlite3.connect(stack.database_path) as db:
        states = db.execute("SELECT uetr, state, reason_code FROM payments WHERE instruction_id LIKE 'grace-%'").fetchall()
        unsent = db.execute("SELECT uetrs FROM outbox WHERE kind = 'status' AND sent_at IS NULL").fetchall()
    assert len(states) == PAYMENTS
    rejected = {u for u, state, reason in states if (state, reason) == ("REJECTED", "AB07")}
    assert uetrs <= rejected
    assert rejected & {u for (text,) in unsent for u in text.split()}
