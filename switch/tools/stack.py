"""A whole switch stack on this machine, as separate processes, for the demo, the benchmark and
the end-to-end test: the Tansu broker, one simulator per partner (`mekong sim`) and the switch
(`mekong run`) with SQLite in a working directory. Everything started here is stopped here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from switch.broker import TansuBroker, free_port

ready_s_max = 90.0  # the switch must be ready (DB migrated, Kafka group joined) within this
stop_s_max = 30.0


@dataclass
class Stack:
    workdir: Path
    sim_args: list[str] = field(default_factory=list)  # for every simulator
    switch_env: dict[str, str] = field(default_factory=dict)
    broker: TansuBroker | None = None
    switch_port: int = 0
    partners: tuple[str, ...] = ("promptpay", "lapnet", "napas", "unionpay")  # one simulator process each
    partner_sim_args: dict[str, list[str]] = field(default_factory=dict)  # extra, per partner
    sim_ports: dict[str, int] = field(default_factory=dict)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def sim_port(self) -> int:
        return self.sim_ports["promptpay"]

    def sim_url(self, partner: str) -> str:
        return f"http://127.0.0.1:{self.sim_ports[partner]}"

    @property
    def database_path(self) -> Path:
        return self.workdir / "mekong.db"

    @property
    def bootstrap_servers(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap_servers

    @property
    def switch_url(self) -> str:
        return f"http://127.0.0.1:{self.switch_port}"

    def pid(self, name: str) -> int:
        return self._procs[name].pid

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for stale in self.workdir.glob("mekong.db*"):
            stale.unlink()
        self.broker = TansuBroker(log_path=self.workdir / "logs" / "tansu.log")
        self.broker.start()
        self.switch_port = free_port()
        self.sim_ports = {partner: free_port() for partner in self.partners}
        cli = [sys.executable, "-m", "switch.entrypoints.cli"]
        for partner, port in self.sim_ports.items():
            self._spawn(
                f"sim-{partner}",
                [*cli, "sim", partner, "--port", str(port), "--callback-url", f"{self.switch_url}/iso20022/{partner}",
                 *self.sim_args, *self.partner_sim_args.get(partner, [])],
                os.environ.copy(),
            )
        env = {
            **os.environ,
            "MEKONG_KAFKA_BOOTSTRAP": self.bootstrap_servers,
            "MEKONG_DATABASE_URL": f"sqlite+aiosqlite:///{self.database_path}",
            "MEKONG_HTTP_PORT": str(self.switch_port),
            **{f"MEKONG_PARTNER_URL_{p.upper()}": f"http://127.0.0.1:{port}" for p, port in self.sim_ports.items()},
            **self.switch_env,
        }
        self._spawn("switch", [*cli, "run", "--log-level", "WARNING"], env)
        self._wait_ready()

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log_path = self.workdir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self._procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + ready_s_max
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                with urllib.request.urlopen(f"{self.switch_url}/readyz", timeout=1) as resp:
                    state = json.loads(resp.read())
                    if state.get("ready") and state.get("partitions_assigned"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"switch not ready within {ready_s_max:g} s:\n{self.log_tail('switch')}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / "logs" / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def cpu_seconds(self, name: str) -> float:
        """User + system CPU time the process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self._procs[name].pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def get_json(self, url: str) -> dict:  # type: ignore[type-arg]
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> dict[str, int | None]:
        """SIGTERM the switch first (it drains), then the simulator, then the broker."""
        codes: dict[str, int | None] = {}
        for name in ("switch", *(n for n in self._procs if n.startswith("sim"))):
            proc = self._procs.get(name)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=stop_s_max)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            codes[name] = proc.returncode
        self._procs.clear()
        if self.broker is not None:
            self.broker.stop()
        return codes

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
