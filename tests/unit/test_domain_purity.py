"""The domain core and fx/convert.py do no I/O: they import no async, XML, SQL or HTTP library (STYLE §1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_LIBRARIES = frozenset(
    {"asyncio", "aiokafka", "aiohttp", "lxml", "sqlalchemy", "xmlschema", "alembic", "asyncpg", "aiosqlite"}
)
# The domain also stays free of the edge's parsing library and of the layers around it.
DOMAIN_ONLY = frozenset({"pydantic", "switch.service", "switch.store", "switch.entrypoints", "adapters", "iso20022"})

DOMAIN_MODULES = sorted((ROOT / "switch" / "domain").glob("*.py"))
PURE_MODULES = [*DOMAIN_MODULES, ROOT / "fx" / "convert.py"]


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])


def imported_modules(source: str, package: str) -> set[str]:
    """Every module an Import or ImportFrom node names, relative imports resolved against `package`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def forbidden(names: set[str], banned: frozenset[str]) -> set[str]:
    return {n for n in names for b in banned if n == b or n.startswith(b + ".")}


def test_the_pure_modules_exist() -> None:
    names = {p.name for p in DOMAIN_MODULES}
    assert {"money.py", "payment.py", "idempotency.py", "errors.py"} <= names
    assert (ROOT / "fx" / "convert.py").is_file()


@pytest.mark.parametrize("path", PURE_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module_imports_no_io_library(path: Path) -> None:
    names = imported_modules(path.read_text(encoding="utf-8"), _package_of(path))
    assert forbidden(names, IO_LIBRARIES) == set()


@pytest.mark.parametrize("path", DOMAIN_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_domain_module_imports_no_pydantic_nor_outer_layer(path: Path) -> None:
    names = imported_modules(path.read_text(encoding="utf-8"), _package_of(path))
    assert forbidden(names, DOMAIN_ONLY) == set()


@pytest.mark.parametrize(
    ("source", "offender"),
    [
        ("import asyncio", "asyncio"),
        ("import lxml.etree as et", "lxml.etree"),
        ("from sqlalchemy import select", "sqlalchemy"),
        ("from aiohttp.web import Application", "aiohttp.web"),
        ("def f():\n    import aiokafka\n", "aiokafka"),  # nested imports count too
        ("if TYPE_CHECKING:\n    from asyncpg import Pool\n", "asyncpg"),
    ],
)
def test_the_checker_catches_an_io_import(source: str, offender: str) -> None:
    assert offender in forbidden(imported_modules(source, "switch.domain"), IO_LIBRARIES)


def test_the_checker_sees_the_real_imports_of_a_domain_module() -> None:
    names = imported_modules((ROOT / "switch/domain/payment.py").read_text(encoding="utf-8"), "switch.domain")
    assert {"dataclasses", "switch.domain.errors", "switch.domain.money.Money"} <= names


def test_the_checker_resolves_relative_imports() -> None:
    names = imported_modules("from ..store import tables\nfrom . import money\n", "switch.domain")
    assert "switch.store.tables" in forbidden(names, DOMAIN_ONLY)
    assert "switch.domain.money" in names
