"""`mekong config ...`: what the interop team runs before a configuration change goes live
(issue 11 item 2): `check` (everything a start would refuse, every problem at once, as
`file:line: message`), `diff` (what a change does, in words) and `dry-run` (the recorded
instructions of a period replayed against the new configuration, nothing sent).
Detail: docs/operations/config.md."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from switch import config as config_mod
from switch.config import DEFAULT_CONFIG_DIR


def echo_problems(problems: list[config_mod.ConfigProblem]) -> None:
    for problem in problems:
        click.echo(str(problem), err=True)
    click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the configuration", err=True)


@click.group("config")
def config_group() -> None:
    """Check, compare and try out a configuration directory before it goes live."""


@config_group.command("check")
@click.option("--config-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MEKONG_CONFIG_DIR",
              default=DEFAULT_CONFIG_DIR, show_default=True, help="The configuration directory to check.")
@click.option("--insecure-dev", is_flag=True, default=None, help="Check as `mekong run --insecure-dev` would start.")
@click.option("--without-secrets", is_flag=True,
              help="Review the files only: do not require the secrets a start needs (the card-number token key).")
def config_check(config_dir: Path, insecure_dev: bool | None, without_secrets: bool) -> None:
    """Validate everything a start would (each file, references between files, duplicates, every
    enabled corridor priced, MEKONG_* variable names, partner profiles and calendars, TLS). Prints
    one `file:line: message` per problem and exits 1, or a summary and exits 0."""
    cfg, problems = config_mod.check(config_dir, os.environ, insecure_dev=insecure_dev or None, secrets=not without_secrets)
    if problems:
        echo_problems(problems)
        sys.exit(1)
    assert cfg is not None
    click.echo(summary(cfg))


def summary(cfg: config_mod.SwitchConfig) -> str:
    enabled = [c for c in cfg.corridors if c.enabled]
    partners = sorted({c.partner for c in enabled} | {r.partner for r in cfg.inbound_routes if r.enabled})
    return (
        f"config OK: {len(cfg.corridors)} corridors ({len(enabled)} enabled: {', '.join(c.id for c in enabled)}), "
        f"{len(cfg.inbound_routes)} inbound routes, {len(cfg.participants)} participants, {len(partners)} partners "
        f"({', '.join(partners)}), {len(cfg.api_tokens)} API tokens, {len(cfg.api_certificates)} API certificates"
        + (" [insecure_dev]" if cfg.security.insecure_dev else "")
    )


@config_group.command("diff")
@click.argument("old", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, file_okay=False, path_type=Path))
def config_diff(old: Path, new: Path) -> None:
    """What changing the configuration from OLD to NEW (two config directories) does, in words:
    one line per changed item (corridors, inbound routes, participants, partners, fx rates,
    operators, calendars, the switch's own settings)."""
    from switch.config_diff import diff

    lines = diff(old, new)
    for line in lines:
        click.echo(line)
    click.echo(f"{len(lines)} change{'s' if len(lines) != 1 else ''}" if lines else "no change")


def parse_since(text: str, now: datetime) -> datetime:
    """`7d`, `12h`, `30m`, `90s` before `now`, or an ISO 8601 time with its offset."""
    found = re.fullmatch(r"(\d+)([dhms])", text.strip())
    if found:
        amount, unit = int(found.group(1)), found.group(2)
        return now - timedelta(**{{"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}[unit]: amount})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: give a duration (7d, 12h, 30m) or an ISO time with its offset") from None
    if at.utcoffset() is None:
        raise click.BadParameter(f"{text!r}: give the time's UTC offset (e.g. 2026-11-21T00:00:00Z)")
    return at


def replay_deps(cfg: config_mod.SwitchConfig) -> Any:
    """Deps for admission built from a configuration alone: its partner profiles, its corridors
    and participants, a rate book from its fx.toml; no network, no database, no Kafka. The card
    key is a throwaway: replay records hold card numbers as tokens already."""
    from adapters.registry import load_partners
    from fx.config import load_fx_config
    from fx.quote import Quoter
    from iso20022.schemas import SchemaSet, default_schema_dir
    from switch.metrics import Metrics
    from switch.service.handlers import Deps

    directory = Path(cfg.config_dir)
    partners = {c.partner for c in cfg.corridors if c.enabled}
    mappings = load_partners(directory, partners, switch_bic=cfg.switch.agent_bic, base_urls=cfg.partner_urls, timing=cfg.partner_timing)
    fx = load_fx_config(directory / "fx.toml")
    return Deps(
        config=cfg, mappings=mappings, quoter=Quoter(fx.rate_book()), schemas=SchemaSet(Path(cfg.switch.schema_dir or default_schema_dir())),
        metrics=Metrics(), clock=lambda: datetime.now(timezone.utc),
    )


def read_replayed(contract: str, origin: str | None) -> Any:
    """A replay record's instruction v1 read as the Kafka edge reads one (its QR decoded, its
    amount read): the same function, so the replay sees what admission saw."""
    from switch.contracts import InstructionV1
    from switch.entrypoints.pain001_edge import parsed_instruction

    return parsed_instruction(InstructionV1.model_validate_json(contract), "dry-run", origin=origin).instruction


async def run_dry_run(cfg: config_mod.SwitchConfig, url: str, *, since: datetime, until: datetime, samples_max: int) -> Any:
    from switch.service.dry_run import dry_run
    from switch.store.sql_store import Store

    deps = replay_deps(cfg)
    store = Store(url)
    await store.start(migrate=False)
    try:
        async with store.reader() as uow:
            return await dry_run(uow, deps, read_replayed, since=since, until=until, samples_max=samples_max)
    finally:
        await store.close()


@config_group.command("dry-run")
@click.argument("new", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--since", required=True, help="Start of the period: 7d, 12h, 30m before now, or an ISO time with offset.")
@click.option("--until", "until_text", default=None, help="End of the period (default: now); same forms as --since.")
@click.option("--url", envvar="MEKONG_DATABASE_URL", help="The switch's database (default: NEW's switch.toml database_url).")
@click.option("--samples", "samples_max", default=3, show_default=True, type=click.IntRange(0, 100), help="Examples shown per kind of change.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def config_dry_run(new: Path, since: str, until_text: str | None, url: str | None, samples_max: int, as_json: bool) -> None:
    """Replay the instructions recorded in a period against the NEW configuration directory,
    sending nothing (no Kafka, no partner, no proxy look-up), and report what would change:
    instructions now rejected (with the reason code) or now admitted, fee, rate and route
    changes, counted per corridor, with a few examples of each."""
    cfg, problems = config_mod.check(new, os.environ, secrets=False)
    if cfg is None:
        echo_problems(problems)
        sys.exit(1)
    now = datetime.now(timezone.utc)
    start = parse_since(since, now)
    end = parse_since(until_text, now) if until_text else now
    from switch.entrypoints.cli import _run

    result: list[Any] = []

    async def go() -> None:
        result.append(await run_dry_run(cfg, url or cfg.switch.database_url, since=start, until=end, samples_max=samples_max))

    from sqlalchemy.exc import DBAPIError

    from switch.store.sql_store import shown_url

    try:
        _run(go())
    except DBAPIError as exc:  # no tables, or a schema before migration 0012: say so, no traceback
        raise click.ClickException(
            f"cannot read the recorded instructions at {shown_url(url or cfg.switch.database_url)} "
            f"({type(exc.orig).__name__}): is it the switch's database, migrated (mekong db upgrade)?"
        ) from None
    report = result[0]
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report.lines():
            click.echo(line)
