"""Where a key sits in a TOML file: the line of each table, array-of-tables entry and key, so a
config problem found on the parsed data (a pydantic error's `loc`, a duplicated id) is reported as
`file:line: message`.

Why a small locator over the lines rather than a library: `tomllib` keeps no positions, and
`tomlkit` (which keeps the document's formatting) exposes no line numbers either; the subset of
TOML our reviewed files use is small (tables, arrays of tables, `key = value`, inline tables,
multi-line arrays of values or inline tables), and the locator only has to point a person at
the right line. It never decides whether the file is valid: `tomllib` does, first. Anything it
cannot place falls back to the nearest enclosing table's line, then to no line at all.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Path = tuple[str | int, ...]

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')
_KEY = re.compile(r'^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\'))*)\s*=')
_INLINE_KEY = re.compile(r'(?:^|[{,])\s*([A-Za-z0-9_-]+|"[^"]*")\s*=')


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(r'"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+', text)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _code(line: str) -> str:
    """The line without its strings' contents and without its comment."""
    bare = _STRING.sub('""', line)
    return bare.split("#", 1)[0]


class TomlLines:
    """Line numbers (1-based) of the keys and tables of one TOML text."""

    def __init__(self, text: str) -> None:
        self._lines: dict[Path, int] = {}
        self._arrays: dict[Path, int] = {}  # array-of-tables path -> entries seen
        table: Path = ()
        open_array: Path | None = None  # inside a multi-line array value: its key's path
        array_index = 0
        depth = 0
        for number, raw in enumerate(text.splitlines(), start=1):
            code = _code(raw)
            stripped = code.strip()
            if open_array is not None:
                if stripped.startswith("{"):  # one inline table per line, as our files write them
                    self._mark(open_array + (array_index,), number)
                    self._mark_inline(open_array + (array_index,), code, number)
                    array_index += 1
                depth += code.count("[") - code.count("]")
                if depth <= 0:
                    open_array, depth = None, 0
                continue
            if stripped.startswith("[["):
                name = _split_key(stripped.strip("[] "))
                index = self._arrays.get(name, 0)
                self._arrays[name] = index + 1
                table = name + (index,)
                self._mark(name, number)
                self._mark(table, number)
                continue
            if stripped.startswith("["):
                table = _split_key(stripped.strip("[] "))
                self._mark(table, number)
                continue
            match = _KEY.match(code)
            if match is None:
                continue
            path = table + _split_key(match.group(1))
            self._mark(path, number)
            value = code[match.end():]
            if value.strip().startswith("["):  # an array: its inline tables on this line are entries 0, 1, ...
                for index, _ in enumerate(re.finditer(r"\{", value)):
                    self._mark(path + (index,), number)
            else:
                self._mark_inline(path, value, number)
            opened = value.count("[") - value.count("]")
            if opened > 0:
                open_array, depth, array_index = path, opened, value.count("{")

    def _mark(self, path: Path, number: int) -> None:
        self._lines.setdefault(path, number)

    def _mark_inline(self, path: Path, value: str, number: int) -> None:
        """Keys of an inline table on this line (`fee = { KHR = "0", USD = "0.00" }`)."""
        if "{" in value:
            for key in _INLINE_KEY.findall(value):
                self._mark(path + _split_key(key), number)

    def line(self, path: Sequence[str | int]) -> int | None:
        """The line of `path`, else of its longest prefix that has one, else None."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return None
