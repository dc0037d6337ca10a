"""CLI: python -m iso20022.schemas fetch|verify --dest DIR (one line per file)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from iso20022.errors import SchemaIntegrityError
from iso20022.schemas import default_cache_dir, default_schema_dir, default_shared_dir, fetch, verify


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iso20022.schemas")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("fetch", help="install the pinned XSDs into --dest")
    fetch_cmd.add_argument("--dest", type=Path, default=default_schema_dir())
    fetch_cmd.add_argument("--shared", type=Path, default=default_shared_dir())
    fetch_cmd.add_argument("--cache", type=Path, default=default_cache_dir())
    verify_cmd = commands.add_parser("verify", help="check every XSD in --dest against the manifest")
    verify_cmd.add_argument("--dest", type=Path, default=default_schema_dir())
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            fetch(args.dest, shared_dir=args.shared, cache_dir=args.cache)
        else:
            verify(args.dest)
    except SchemaIntegrityError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
