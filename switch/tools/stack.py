"""A whole switch stack on this machine, as separate processes, for the demo, the benchmark and
the end-to-end test: the Tansu broker, one simulator per partner (`mekong sim`) and the switch
(`mekong run`) with SQLite in a working directory. Everything started here is stopped here.

For the crash test a stack also runs several switch replicas (`replicas`, with a PostgreSQL URL in
`switch_env`: SQLite is one process only), points the simulators' callbacks somewhere else
(`callback_base_url`, e.g. a load balancer in front of the replicas), and kills, freezes and
restarts any of its processes by name (`kill`, `pause`, `resume`, `restart`).

The switch and the simulators talk mutual TLS and sign every ISO message (signed business
application headers) with a development PKI made at start (switch/pki.py, as `mekong pki init`)
in `pki_dir` (default: <workdir>/pki, made once and kept), unless `insecure_dev` (plain HTTP, no
signatures); the participants' keys in it sign the tools' Kafka records (`signers`), which the
switch checks unless `insecure_dev`. The tools reach the switch's operations port (/readyz,
/metrics, /v1) over TLS (`ops_context`: its development CA trusted; /v1 and /metrics with the
operator token made at start), and the simulators' control ports (/sim/*) over plain HTTP on
loopback.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from switch.broker import TansuBroker, free_port, restartable_port
from switch.config import DEFAULT_CONFIG_DIR, TokensFile
from switch.pki import MANIFEST, init_pki
from switch.signing import HUB_SIGNING_CERT
from switch.tools.signer import ParticipantSigners
from switch.tls import OPS_CERT, ops_client_context

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
    replicas: int = 1  # switch processes: "switch", then "switch-1", "switch-2" ... (PostgreSQL for more than one)
    callback_base_url: str | None = None  # where simulators call back (+ /iso20022/<partner>); default: the first replica
    replica_ports: dict[str, int] = field(default_factory=dict)  # partner ports
    ops_ports: dict[str, int] = field(default_factory=dict)  # operations ports, per replica
    sim_control_ports: dict[str, int] = field(default_factory=dict)
    insecure_dev: bool = False  # plain HTTP between the switch and the simulators
    pki_dir: Path | None = None  # default: <workdir>/pki
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)  # to restart a process
    switch_log_level: str = "WARNING"  # INFO for the test that greps the logs for secrets
    api_token: str = ""  # an operator token for /v1, made at start (its hash is in the tokens file)
    secrets: dict[str, str] = field(default_factory=dict)  # what must never show in a log: name -> value

    @property
    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_token}"}

    @property
    def ops_context(self) -> ssl.SSLContext | None:
        """TLS to the operations port (its development CA trusted, no client certificate: the
        tools send the operator token); None with insecure_dev (plain HTTP)."""
        if self.insecure_dev:
            return None
        if getattr(self, "_ops_context", None) is None:
            self._ops_context = ops_client_context(self.pki_path)
        return self._ops_context

    @property
    def sim_port(self) -> int:
        return self.sim_ports["promptpay"]

    def sim_url(self, partner: str) -> str:
        """The simulator's control routes (/sim/*)."""
        return f"http://127.0.0.1:{self.sim_control_ports[partner]}"

    @property
    def scheme(self) -> str:
        return "http" if self.insecure_dev else "https"

    @property
    def pki_path(self) -> Path:
        return self.pki_dir or self.workdir / "pki"

    @property
    def signers(self) -> ParticipantSigners | None:
        """The participants' signing keys (from the PKI), or None with `insecure_dev`: the switch
        then checks no signature, and the tools publish unsigned (security off, end to end)."""
        return None if self.insecure_dev else ParticipantSigners.from_pki(self.pki_path)

    @property
    def database_path(self) -> Path:
        return self.workdir / "mekong.db"

    @property
    def bootstrap_servers(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap_servers

    @property
    def switch_url(self) -> str:
        """The first replica's partner port."""
        return f"{self.scheme}://127.0.0.1:{self.switch_port}"

    @property
    def ops_url(self) -> str:
        """The first replica's operations port (/v1, /metrics, /readyz)."""
        return self.replica_url("switch")

    @property
    def switch_names(self) -> list[str]:
        return ["switch", *(f"switch-{n}" for n in range(1, self.replicas))]

    def replica_url(self, name: str) -> str:
        """A replica's operations port (/v1, /metrics, /readyz)."""
        return f"{self.scheme}://127.0.0.1:{self.ops_ports[name]}"

    def replica_partner_url(self, name: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.replica_ports[name]}"

    def pid(self, name: str) -> int:
        return self._procs[name].pid

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for stale in self.workdir.glob("mekong.db*"):
            stale.unlink()
        self.broker = TansuBroker(log_path=self.workdir / "logs" / "tansu.log")
        self.broker.start()
        self.replica_ports = {name: restartable_port() for name in self.switch_names}  # a killed switch comes back on them
        self.ops_ports = {name: restartable_port() for name in self.switch_names}
        self.switch_port = self.replica_ports["switch"]
        self.sim_ports = {partner: restartable_port() for partner in self.partners}  # a killed simulator comes back on it
        self.sim_control_ports = {partner: free_port() for partner in self.partners}
        security_env = {"MEKONG_PKI_DIR": str(self.pki_path), "MEKONG_INSECURE_DEV": "1" if self.insecure_dev else "0"}
        # made once and kept; one from before signing keys or the operations port's TLS existed
        # (no hub/signing.crt, no ops certificate) is made anew
        if not self.insecure_dev and not ((self.pki_path / MANIFEST).exists() and (self.pki_path / HUB_SIGNING_CERT).exists()
                                          and (self.pki_path / OPS_CERT).exists()):
            init_pki(self.pki_path, config_dir=DEFAULT_CONFIG_DIR, now=datetime.now(timezone.utc), force=True)
        callback_base = self.callback_base_url or self.switch_url
        cli = [sys.executable, "-m", "switch.entrypoints.cli"]
        secret_env = self._make_secrets()
        for partner, port in self.sim_ports.items():
            self._spawn(
                f"sim-{partner}",
                [*cli, "sim", partner, "--port", str(port), "--control-port", str(self.sim_control_ports[partner]),
                 "--callback-url", f"{callback_base}/iso20022/{partner}",
                 *self.sim_args, *self.partner_sim_args.get(partner, [])],
                {**os.environ, **security_env},
            )
        for name, port in self.replica_ports.items():
            env = {
                **os.environ,
                **security_env,
                "MEKONG_KAFKA_BOOTSTRAP": self.bootstrap_servers,
                "MEKONG_DATABASE_URL": f"sqlite+aiosqlite:///{self.database_path}",
                "MEKONG_HTTP_PORT": str(port),
                "MEKONG_OPS_PORT": str(self.ops_ports[name]),
                **{f"MEKONG_PARTNER_URL_{p.upper()}": f"{self.scheme}://127.0.0.1:{sim_port}" for p, sim_port in self.sim_ports.items()},
                **secret_env,
                **self.switch_env,
            }
            self._spawn(name, [*cli, "run", "--log-level", self.switch_log_level], env)
            self._wait_ready(name)  # one after the other: the first one migrates the database

    def _make_secrets(self) -> dict[str, str]:
        """This run's secrets, made fresh in the working directory (owner-only files): the card
        token key and an operator API token (the tokens file holds only its hash). Returns the
        environment that points the switch at them."""
        from switch.entrypoints.api_auth import new_token, token_hash

        directory = self.workdir / "secrets"
        directory.mkdir(mode=0o700, exist_ok=True)
        pan_key = os.urandom(32).hex()
        self.api_token = new_token()
        self.secrets = {"PAN key": pan_key, "API token": self.api_token}
        key_path, tokens_path = directory / "pan.key", directory / "api-tokens.toml"
        tokens = f'[[tokens]]\nname = "demo-operator"\nrole = "operator"\nsha256 = "{token_hash(self.api_token)}"\n'
        # the shipped client certificate entries too (they name the development PKI's), so that
        # `curl --cert <pki>/ops/clients/operator.crt` works against the demo as the README shows
        with (DEFAULT_CONFIG_DIR / "operators.toml").open("rb") as fh:
            shipped = TokensFile.model_validate(tomllib.load(fh)).certificates
        for c in shipped:
            tokens += f'\n[[certificates]]\nname = "{c.name}"\nrole = "{c.role}"\n'
            tokens += "".join(f'{k} = "{v}"\n' for k, v in (("subject_cn", c.subject_cn), ("spki_sha256", c.spki_sha256)) if v)
        for path, text in (
            (key_path, pan_key + "\n"),
            (tokens_path, tokens),
        ):
            path.touch(mode=0o600)
            path.write_text(text)
        return {"MEKONG_PAN_KEY_FILE": str(key_path), "MEKONG_API_TOKENS_FILE": str(tokens_path)}

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self._commands[name] = (cmd, env)
        log_path = self.workdir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self._procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def _wait_ready(self, name: str = "switch", *, watch: tuple[str, ...] | None = None) -> None:
        """Until replica `name` answers ready with partitions assigned; fails at once if one of the
        `watch`ed processes (default: all) exits."""
        deadline = time.monotonic() + ready_s_max
        while time.monotonic() < deadline:
            for other in watch if watch is not None else tuple(self._procs):
                proc = self._procs[other]
                if proc.poll() is not None:
                    raise RuntimeError(f"{other} exited with {proc.returncode}:\n{self.log_tail(other)}")
            try:
                with urllib.request.urlopen(f"{self.replica_url(name)}/readyz", timeout=1, context=self.ops_context) as resp:
                    state = json.loads(resp.read())
                    if state.get("ready") and state.get("partitions_assigned"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready within {ready_s_max:g} s:\n{self.log_tail(name)}")

    # ------------------------------------------------------------------ faults (the crash test)
    def alive(self, name: str) -> bool:
        return self._procs[name].poll() is None

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int | None:
        """Send `sig` (default SIGKILL: no clean-up at all) and wait for the process to end."""
        proc = self._procs[name]
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=stop_s_max)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def pause(self, name: str) -> None:
        """Freeze the process (SIGSTOP): its sockets stay open and nobody answers, as a hung host."""
        self._procs[name].send_signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self._procs[name].send_signal(signal.SIGCONT)

    def restart(self, name: str, *, wait_ready: bool = True) -> None:
        """Start an ended process again with the same command, port and environment (its log is
        appended to); a switch replica is waited for until ready."""
        if self.alive(name):
            raise RuntimeError(f"{name} is still running")
        with (self.workdir / "logs" / f"{name}.log").open("ab") as log:
            log.write(f"---- restarted at {time.time():.3f} ----\n".encode())
        self._spawn(name, *self._commands[name])
        if wait_ready and name in self.replica_ports:
            self._wait_ready(name, watch=(name,))

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

    def ops_get(self, url: str, headers: dict[str, str] | None = None) -> bytes:
        """GET on an operations port (TLS, the operator token unless `headers` say otherwise)."""
        request = urllib.request.Request(url, headers=self.api_headers if headers is None else headers)
        with urllib.request.urlopen(request, timeout=5, context=self.ops_context) as resp:
            return resp.read()

    def ops_post(self, url: str, doc: dict) -> bytes:  # type: ignore[type-arg]
        """POST JSON on an operations port (TLS, the operator token)."""
        request = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                         headers={**self.api_headers, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10, context=self.ops_context) as resp:
            return resp.read()

    def stop(self) -> dict[str, int | None]:
        """SIGTERM the switch replicas first (they drain), then the simulators, then the broker."""
        codes: dict[str, int | None] = {}
        for name in (*(n for n in self._procs if n.startswith("switch")), *(n for n in self._procs if n.startswith("sim"))):
            proc = self._procs.get(name)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
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
