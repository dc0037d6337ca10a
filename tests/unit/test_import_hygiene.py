"""Production code never imports simulator or dev-tool code (DESIGN "Inside the switch": simulators
and dev tools sit outside the production import graph).

Production: switch/** except switch/tools/**, adapters/** except the simulator modules,
iso20022/**, fx/**. Every import is checked, at module level and inside functions (ast), and so
is every string that names a forbidden module (an `importlib.import_module("...")` in disguise).
One such string is allowed: `switch/entrypoints/cli.py` names `switch.tools.cli_dev`, the module
its click group imports only when a dev command (demo, bench, sim) is asked for.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.unit.test_domain_purity import forbidden, imported_modules

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = frozenset({"switch.tools"})
SIMULATOR_FILE = re.compile(r"simulator\w*\.py")
# the one place production names a dev module, as a string, imported on demand only
ALLOWED_STRINGS = {Path("switch/entrypoints/cli.py"): frozenset({"switch.tools.cli_dev"})}


def _simulator_modules() -> frozenset[str]:
    return frozenset(f"adapters.{p.stem}" for p in (ROOT / "adapters").glob("*.py") if SIMULATOR_FILE.fullmatch(p.name))


def _is_production(path: Path) -> bool:
    rel = path.relative_to(ROOT)
    if rel.parts[:2] == ("switch", "tools"):
        return False
    return not (rel.parts[0] == "adapters" and len(rel.parts) == 2 and SIMULATOR_FILE.fullmatch(rel.name))


PRODUCTION_MODULES = sorted(
    p for top in ("switch", "adapters", "iso20022", "fx") for p in (ROOT / top).rglob("*.py") if _is_production(p)
)
BANNED = DEV_ONLY | _simulator_modules()


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts if rel.name == "__init__" else rel.parts[:-1]).removesuffix(".__init__")


def module_strings(source: str) -> set[str]:
    """Every string constant that is a dotted module name (what importlib would be given)."""
    return {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and re.fullmatch(r"[A-Za-z_]\w*(\.\w+)+", node.value)
    }


def test_production_and_banned_modules_are_found() -> None:
    rel = {p.relative_to(ROOT).as_posix() for p in PRODUCTION_MODULES}
    assert {"switch/entrypoints/cli.py", "switch/service/handlers.py", "adapters/registry.py", "fx/quote.py"} <= rel
    assert not any(r.startswith("switch/tools/") or SIMULATOR_FILE.fullmatch(Path(r).name) for r in rel)
    assert {"adapters.simulator", "adapters.simulator_inbound", "switch.tools"} <= BANNED


@pytest.mark.parametrize("path", PRODUCTION_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_production_module_imports_no_simulator_nor_dev_tool(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert forbidden(imported_modules(source, _package_of(path)), BANNED) == set()
    allowed = ALLOWED_STRINGS.get(path.relative_to(ROOT), frozenset())
    assert forbidden(module_strings(source), BANNED) - allowed == set()


@pytest.mark.parametrize(
    ("source", "offender"),
    [
        ("from adapters.simulator import PartnerSimulator", "adapters.simulator"),
        ("def sim():\n    from adapters.simulator import SimBehaviour\n", "adapters.simulator"),
        ("def demo():\n    from switch.tools.demo import run_demo\n", "switch.tools.demo"),
        ("import switch.tools.bench as b", "switch.tools.bench"),
        ("from switch import tools", "switch.tools"),
        ("from .simulator_inbound import InboundSpec", "adapters.simulator_inbound"),
    ],
)
def test_the_checker_catches_a_simulator_or_tool_import(source: str, offender: str) -> None:
    assert offender in forbidden(imported_modules(source, "adapters"), BANNED)


def test_the_checker_catches_a_module_named_in_a_string() -> None:
    source = 'import importlib\nm = importlib.import_module("adapters.simulator")\n'
    assert forbidden(module_strings(source), BANNED) == {"adapters.simulator"}


def test_the_cli_attaches_the_dev_commands_without_importing_them() -> None:
    source = (ROOT / "switch/entrypoints/cli.py").read_text(encoding="utf-8")
    assert forbidden(module_strings(source), BANNED) == ALLOWED_STRINGS[Path("switch/entrypoints/cli.py")]
