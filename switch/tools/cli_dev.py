"""The dev commands of `mekong`: `demo`, `bench` and `sim`. They need the dev tools and the
partner simulators, which production code never imports; the `mekong` group in
switch/entrypoints/cli.py imports this module by name, and only when one of these commands is
asked for (or the command list is shown)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import click

from switch.config import DEFAULT_CONFIG_DIR, PROJECT_ROOT
from switch.entrypoints.cli import _logging, _run

if TYPE_CHECKING:
    from switch.domain.settlement import Calendar


@click.group()
def dev() -> None:
    """The dev commands, attached to `mekong` (never run as a group of their own)."""


# ----------------------------------------------------------------------------- sim
@dev.command()
@click.argument("partner")
@click.option("--port", type=int, help="Port to listen on (default: the one in the profile's base_url: promptpay 8081, "
              "lapnet 8082, napas 8083, unionpay 8084; 0 = a free one).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--control-port", type=int, default=0, show_default=True,
              help="Plain-HTTP loopback port of the control routes (/sim/*; 0 = a free one).")
@click.option("--callback-url", required=True, help="Where to POST pacs.002, e.g. https://127.0.0.1:8080/iso20022/<partner>")
@click.option("--pki-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MEKONG_PKI_DIR", default=PROJECT_ROOT / "pki",
              show_default=True, help="Certificates and keys (mekong pki init): the network's own (TLS and signing), "
              "the hub's CA and signing certificate.")
@click.option("--insecure-dev", is_flag=True, envvar="MEKONG_INSECURE_DEV",
              help="Development only: plain HTTP both ways, no certificates, no signatures.")
@click.option("--delay-ms", default=0.0, show_default=True, help="Delay before each pacs.002.")
@click.option("--reject-rate", default=0.0, show_default=True, help="Share of valid payments rejected anyway.")
@click.option("--reject-codes", default="AC01,AC04,AM04", show_default=True,
              help="ISO codes (sent as the network's own code where its profile has one, e.g. NAPAS 14,12,51) "
              "or partner codes as they are (e.g. 99).")
@click.option("--unknown-proxy", multiple=True, help="A proxy the network's registry lacks (BE23); repeatable.")
@click.option("--timeout-rate", default=0.0, show_default=True, help="Share of payments never answered.")
@click.option("--duplicate-rate", default=0.0, show_default=True, help="Share of payments answered twice.")
@click.option("--recall-accept-rate", default=1.0, show_default=True,
              help="Share of recalls (camt.056) the network accepts: camt.029 CNCL, then a pacs.004 of the whole amount; "
              "the others are refused (camt.029 RJCR CUST).")
@click.option("--recall-silent-rate", default=0.0, show_default=True, help="Share of recalls (camt.056) never answered.")
@click.option("--return-rate", default=0.0, show_default=True,
              help="Share of completed payments the network later returns (pacs.004).")
@click.option("--return-delay-ms", default=0.0, show_default=True, help="Delay of a return after the pacs.002.")
@click.option("--return-reasons", default="AC04,CUST,FRAD", show_default=True, help="Return reason codes drawn from.")
@click.option("--partial-return-rate", default=0.0, show_default=True, help="Share of returns that return half.")
@click.option("--lose-rate", default=0.0, show_default=True,
              help="Share of decided payments whose pacs.002 is never called back (only a status enquiry recovers them).")
@click.option("--late-rate", default=0.0, show_default=True, help="Share of pacs.002 callbacks sent after --late-delay-ms.")
@click.option("--late-delay-ms", default=0.0, show_default=True, help="Delay of the late callbacks (e.g. past the SLA).")
@click.option("--out-of-order-rate", default=0.0, show_default=True,
              help="Share of accepted payments that also get an ACSP after their ACSC (answers out of order).")
@click.option("--reports/--no-reports", default=True, show_default=True,
              help="Keep a ledger of what the network settled and post its settlement report (camt.053 / camt.054, "
              "the profile's [settlement]) to the switch after each cut-off (cycles every "
              "MEKONG_PARTNER_SETTLEMENT_EVERY_S_<PARTNER> seconds when set).")
@click.option("--break-rate", default=0.0, show_default=True, help="Share of a cycle's movements given a break in its report.")
@click.option("--break-kinds", default="missing,unknown,amount,currency,duplicate,wrong_cycle,status", show_default=True,
              help="Breaks drawn from: missing (left out), unknown (plus an entry with a made-up UETR), amount (one minor "
              "unit more), currency (another ISO currency), duplicate (the entry twice), wrong_cycle (in the next cycle's "
              "report), status (PDNG instead of BOOK).")
@click.option("--report-delay-ms", default=0.0, show_default=True, help="Delay of each report after its cut-off (a late report).")
@click.option("--report-twice-rate", default=0.0, show_default=True, help="Share of reports posted twice (every page again).")
@click.option("--page-entries", default=0, show_default=True,
              help="Entries per report page (0: the profile's page_entries_max; fewer when a page would pass 1 MB).")
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Append-only file of what the network received and answered, reloaded at start: after a restart "
              "a resend still gets its stored pacs.002 (default: remember nothing across restarts).")
@click.option("--config-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), envvar="MEKONG_CONFIG_DIR",
              default=DEFAULT_CONFIG_DIR, show_default=True,
              help="The configuration whose partner profile the simulator plays (as the switch reads it).")
@click.option("--schema-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MEKONG_SCHEMA_DIR")
def sim(partner: str, port: int | None, host: str, control_port: int, callback_url: str, pki_dir: Path, insecure_dev: bool,
        delay_ms: float, reject_rate: float, reject_codes: str, unknown_proxy: tuple[str, ...], timeout_rate: float,
        duplicate_rate: float, return_rate: float, return_delay_ms: float, return_reasons: str, partial_return_rate: float,
        state_path: Path | None, config_dir: Path, schema_dir: Path | None,
        recall_accept_rate: float = 1.0, recall_silent_rate: float = 0.0,
        lose_rate: float = 0.0, late_rate: float = 0.0, late_delay_ms: float = 0.0, out_of_order_rate: float = 0.0,
        reports: bool = True, break_rate: float = 0.0, break_kinds: str = "", report_delay_ms: float = 0.0,
        report_twice_rate: float = 0.0, page_entries: int = 0) -> None:
    """Run a partner network simulator over real HTTP (PARTNER: promptpay, lapnet, napas or
    unionpay), with mutual TLS: it serves the network's certificate, requires the hub's, and calls
    the switch back with its own; and with signed business messages (AppHdr + XML signature) as the
    profile's [signing] says: it signs what it sends with the network's signing key and refuses
    what the hub's key did not sign (--insecure-dev: plain HTTP, bare Documents). It checks each pacs.008 against the official XSD and the partner's profile and
    answers with a pacs.002 (NAPAS rejects carry its numeric codes). GET /sim/received lists,
    per UETR, the distinct pacs.008 message ids and bodies it received. It keeps a ledger of what it
    settled and posts each cycle's settlement report after the cut-off, with breaks on request
    (GET /sim/settlement lists the reports, the injected breaks and the switch's answers)."""
    from urllib.parse import urlsplit

    from adapters.base import load_profile
    from adapters.registry import profile_path
    from adapters.simulator import SIMULATORS, SimBehaviour
    from iso20022.schemas import SchemaSet, default_schema_dir

    from switch.signing import SigningSetupError, load_simulator_signing
    from switch.tls import TlsSetupError, load_simulator_tls

    if partner not in SIMULATORS:
        raise click.BadParameter(f"known partners: {', '.join(sorted(SIMULATORS))}", param_hint="PARTNER")
    _logging("INFO")
    if insecure_dev:
        logging.getLogger("mekong").warning("INSECURE DEV MODE: the %s simulator speaks plain HTTP, no certificates", partner)
        tls = None
    else:
        try:
            tls = load_simulator_tls(pki_dir, partner)
        except TlsSetupError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        behaviour = SimBehaviour(
            delay_ms=delay_ms,
            reject_rate=reject_rate,
            reject_codes=tuple(c.strip() for c in reject_codes.split(",") if c.strip()),
            unknown_proxies=frozenset(unknown_proxy),
            timeout_rate=timeout_rate,
            duplicate_rate=duplicate_rate,
            recall_accept_rate=recall_accept_rate,
            recall_silent_rate=recall_silent_rate,
            return_rate=return_rate,
            return_delay_ms=return_delay_ms,
            return_reasons=tuple(c.strip() for c in return_reasons.split(",") if c.strip()),
            partial_return_rate=partial_return_rate,
            lose_rate=lose_rate,
            late_rate=late_rate,
            late_delay_ms=late_delay_ms,
            out_of_order_rate=out_of_order_rate,
            break_rate=break_rate,
            break_kinds=tuple(k.strip() for k in break_kinds.split(",") if k.strip()),
            report_delay_ms=report_delay_ms,
            report_twice_rate=report_twice_rate,
            page_entries=page_entries,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None

    profile = load_profile(profile_path(config_dir, partner))
    calendar = None
    if reports and profile.settlement is not None:
        try:
            calendar = profile.settlement_calendar(config_dir, env=os.environ)
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"{partner} settlement calendar: {exc}") from None
    signing = None
    if insecure_dev:
        logging.getLogger("mekong").warning("INSECURE DEV MODE: the %s simulator neither signs nor checks signatures", partner)
    elif profile.signing is not None:
        with (config_dir / "switch.toml").open("rb") as fh:
            hub_bic = tomllib.load(fh)["switch"]["agent_bic"]
        try:
            signing = load_simulator_signing(pki_dir, partner, profile.signing, hub_bic=hub_bic)
        except SigningSetupError as exc:
            raise click.ClickException(str(exc)) from None
    listen_port = port if port is not None else (urlsplit(profile.base_url).port or 8081)

    async def serve() -> None:
        simulator = SIMULATORS[partner](
            profile,
            SchemaSet(schema_dir or default_schema_dir()),
            callback_url=callback_url,
            behaviour=behaviour,
            state_path=state_path,
            tls=tls,
            signing=signing,
            calendar=calendar,
        )
        bound = await simulator.start(host, listen_port, control_port=control_port)
        scheme = "http" if tls is None else "https"
        print(f"{partner} simulator ready: {scheme}://{host}:{bound}/iso20022 -> {callback_url} "
              f"(control http://127.0.0.1:{simulator.control_port}/sim, signatures {'on' if signing else 'OFF'}, "
              f"settlement reports {_reports_line(calendar)})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await simulator.stop()

    _run(serve())


def _reports_line(calendar: Calendar | None) -> str:
    """How the simulator's ready line says when it reports."""
    if calendar is None:
        return "off"
    if calendar.every_s:
        return f"every {calendar.every_s:g} s"
    return "at " + ",".join(t.strftime("%H:%M") for t in calendar.cut_offs) + f" {calendar.timezone}"


# ----------------------------------------------------------------------------- demo / bench
@dev.command()
@click.option("--count", default=2000, show_default=True, help="Instructions to publish.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=PROJECT_ROOT / "demo-out", show_default=True)
def demo(count: int, workdir: Path) -> None:
    """Run the switch end to end: broker, the four partner simulators, switch; COUNT outbound
    instructions over KH-TH, KH-LA, KH-VN and KH-CN (JSON, QR and pain.001; about 2% bad ones)
    while each network sends 100 inbound payments; progress, then a summary per corridor and
    direction. Exits 0 only if every payment is accounted for."""
    from switch.tools.demo import run_demo

    sys.exit(run_demo(count=count, workdir=workdir))


@dev.command()
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the results here.")
@click.option("--count", default=20_000, show_default=True, help="Payments to push.")
@click.option("--rate", default=0.0, show_default=True, help="Offered payments per second (0 = as fast as possible).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=PROJECT_ROOT / "bench-out", show_default=True)
@click.option("--corridors", default="KH-TH,KH-LA,KH-VN,KH-CN", show_default=True,
              help="Corridors to mix, comma-separated (one simulator process per partner).")
@click.option("--insecure-dev", is_flag=True, help="Security off, to measure what it costs: plain HTTP between the switch and the "
              "simulators, and unsigned Kafka records the switch does not check.")
def bench(json_path: Path | None, count: int, rate: float, workdir: Path, corridors: str, insecure_dev: bool) -> None:
    """Benchmark the full path: Kafka in -> pacs.008 -> partner -> pacs.002 -> status out,
    with the corridors mixed round-robin."""
    from switch.tools.bench import run_bench

    result = run_bench(count=count, rate=rate, workdir=workdir, corridors=tuple(c.strip() for c in corridors.split(",") if c.strip()),
                       insecure_dev=insecure_dev)
    text = json.dumps(result, indent=2)
    click.echo(text)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n")
