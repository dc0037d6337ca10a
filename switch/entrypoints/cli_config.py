"""`mekong config ...`: what the interop team runs before a configuration change goes live
(issue 11 item 2): `check` (everything a start would refuse, every problem at once, as
`file:line: message`), `diff` (what a change does, in words) and `dry-run` (the recorded
instructions of a period replayed against the new configuration, nothing sent).
Detail: docs/operations/config.md."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
