"""No secret is logged or printed (issue 8): the real processes (`mekong db upgrade`, and the stack
`mekong run` is part of, at INFO) on a PostgreSQL URL that carries a password, a PAN key and API
tokens; every line they write is searched for each secret. The demo's own run is checked the
same way in tests/e2e/test_demo.py (SQLite, card numbers). The switch's log is JSON lines (issue 11):
each line is read as JSON and its values searched as well."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import urllib.error
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from switch.tools.stack import Stack
from tests.chaos.chaos import postgres_database
from tests.integration.conftest import PG_URL, _pg_answers


@contextmanager
def _database_with_password() -> Iterator[tuple[str, str]]:
    """A fresh database, and a URL to it with a random password (the test server trusts local
    connections, so the password travels in the URL and is never checked)."""
    if not asyncio.run(_pg_answers()):
        message = f"PostgreSQL does not answer at {PG_URL}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI requires it")
        pytest.skip(message)
    password = secrets.token_hex(12)
    with postgres_database(PG_URL) as url:  # the crash test's throw-away database, dropped after
        base, _, name = url.rpartition("/")
        scheme, _, host = base.partition("://")
        user = host.split("@", 1)[0].split(":", 1)[0]
        yield f"{scheme}://{user}:{password}@{host.split('@', 1)[1]}/{name}", password


def _get(stack: Stack, url: str, headers: dict[str, str]) -> int:
    try:
        stack.ops_get(url, headers)
        return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def test_no_database_password_key_or_token_shows_in_any_output(tmp_path: Path) -> None:
    with _database_with_password() as (url, password):
        upgrade = subprocess.run(
            [sys.executable, "-m", "switch.entrypoints.cli", "db", "upgrade", "--url", url],
            capture_output=True, text=True, timeout=120, check=True,
        )
        assert "***" in upgrade.stdout
        stack = Stack(tmp_path, switch_env={"MEKONG_DATABASE_URL": url}, switch_log_level="INFO")
        with stack:
            base = f"{stack.ops_url}/v1/payments/{uuid.uuid4()}"
            answers = (
                _get(stack, base, stack.api_headers),
                _get(stack, base, {"Authorization": f"Bearer {stack.api_token}x"}),
                _get(stack, base, {}),
            )
        assert answers == (404, 401, 401)
        logs = {p.name: p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log")}
        assert "switch up" in logs["switch.log"] and "***@" in logs["switch.log"]
        # issue 11: `mekong run` logs JSON lines (its one stdout line, "mekong switch ready", aside);
        # each value is searched too, as a log shipper would store it (JSON escapes undone)
        lines = [json.loads(line) for line in logs["switch.log"].splitlines() if line and not line.startswith("mekong switch ready")]
        assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
        logs["switch.log values"] = "\n".join(str(v) for line in lines for v in line.values())
        outputs = {**logs, "db upgrade stdout": upgrade.stdout, "db upgrade stderr": upgrade.stderr}
        found = {"database password": password, **stack.secrets}
        for where, text in outputs.items():
            for name, secret in found.items():
                assert secret not in text, f"the {name} shows in {where}"
