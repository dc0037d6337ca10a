"""`mekong config diff OLD NEW`: what a configuration change does, in words, one line per change
of one item ("corridor KH-VN: disabled", "corridor KH-TH: fee USD 0.50 -> 0.75", "fx THB/KHR mid
115.2 -> 116.0", "participant WINGKHPPXXX: added").

It compares the files as written (TOML read with exact decimals), not the validated models: a
reviewer wants the change they made, and the diff must still say something about a directory
that does not pass `mekong config check` yet. Entries of the arrays are matched by their id
(corridors and inbound routes by `id`, participants by `code`, operators by `name`, rates by
pair, holidays by date), so reordering a file is no change. Generic over the fields: a field
the corridor work adds to a corridor shows up without a change here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

Data = dict[str, Any]


def _read(path: Path) -> Data | None:
    """The file's data; None when absent; an unreadable file is shown as one."""
    if not path.is_file():
        return None
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh, parse_float=Decimal)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return {"(unreadable)": str(exc)}


def _shown(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as `a b c` keys (how a person reads `fee.USD`: "fee USD"); arrays stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix} {key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flat(value, name))
        else:
            out[name] = value
    return out


def _fields(what: str, old: Mapping[str, Any], new: Mapping[str, Any], *, skip: tuple[str, ...] = ()) -> Iterator[str]:
    """One line per changed field of one item."""
    a, b = _flat(old), _flat(new)
    for key in [k for k in a if k not in skip] + [k for k in b if k not in a and k not in skip]:
        before, after = a.get(key), b.get(key)
        if before == after:
            continue
        if key == "enabled" and isinstance(after, bool | None) and isinstance(before, bool | None):
            yield f"{what}: {'enabled' if after in (True, None) else 'disabled'}"
        elif isinstance(before, list) and isinstance(after, list):
            added = [v for v in after if v not in before]
            removed = [v for v in before if v not in after]
            if not added and not removed:
                yield f"{what}: {key} reordered {_shown(before)} -> {_shown(after)}"
            for v in added:
                yield f"{what}: {key} added {_shown(v)}"
            for v in removed:
                yield f"{what}: {key} removed {_shown(v)}"
        else:
            yield f"{what}: {key} {_shown(before)} -> {_shown(after)}"


def _entries(what: str, old: list[Any] | None, new: list[Any] | None, key: Callable[[Mapping[str, Any]], str],
             summary: Callable[[Mapping[str, Any]], str] = lambda e: "", skip: tuple[str, ...] = ()) -> Iterator[str]:
    """Added, removed and changed entries of an array of tables, matched by `key`."""
    a = {key(e): e for e in old or [] if isinstance(e, Mapping)}
    b = {key(e): e for e in new or [] if isinstance(e, Mapping)}
    for k, entry in b.items():
        if k not in a:
            extra = summary(entry)
            yield f"{what} {k}: added" + (f" ({extra})" if extra else "")
        else:
            yield from _fields(f"{what} {k}", a[k], entry, skip=skip)
    for k in a:
        if k not in b:
            yield f"{what} {k}: removed"


def _corridor_summary(c: Mapping[str, Any]) -> str:
    sources = "/".join(c.get("source_currencies") or [])
    return f"partner {c.get('partner')}, {sources} -> {c.get('target_currency')}" + (", disabled" if c.get("enabled") is False else "")


def _profiles(old: Any, new: Any) -> Iterator[str]:
    """compliance.toml's [profiles.<name>] tables, matched by name."""
    a = dict(old) if isinstance(old, Mapping) else {}
    b = dict(new) if isinstance(new, Mapping) else {}
    for name, profile in b.items():
        if name not in a:
            yield f"compliance profile {name}: added"
        elif isinstance(profile, Mapping) and isinstance(a[name], Mapping):
            yield from _fields(f"compliance profile {name}", a[name], profile)
    for name in a:
        if name not in b:
            yield f"compliance profile {name}: removed"


def _rates(old: Data, new: Data) -> Iterator[str]:
    """Rates matched by pair in either direction: the other direction is compared as 1/mid."""
    def table(data: Data) -> dict[frozenset[str], Mapping[str, Any]]:
        return {frozenset((r.get("base"), r.get("quote"))): r for r in data.get("rates") or [] if isinstance(r, Mapping)}

    a, b = table(old), table(new)
    for pair, rate in b.items():
        name = f"{rate.get('base')}/{rate.get('quote')}"
        before = a.get(pair)
        if before is None:
            yield f"fx {name}: added, mid {_shown(rate.get('mid'))}"
            continue
        mid = before.get("mid")
        if before.get("base") != rate.get("base") and isinstance(mid, Decimal) and mid:
            mid = (1 / mid).quantize(Decimal("1.0000000000"))  # the old rate, as the new one reads
        if mid != rate.get("mid"):
            yield f"fx {name} mid {_shown(mid)} -> {_shown(rate.get('mid'))}"
        if before.get("as_of") != rate.get("as_of"):
            yield f"fx {name} as_of {_shown(before.get('as_of'))} -> {_shown(rate.get('as_of'))}"
    for pair, rate in a.items():
        if pair not in b:
            yield f"fx {rate.get('base')}/{rate.get('quote')}: removed"


def _named_files(old_dir: Path, new_dir: Path, sub: str) -> list[str]:
    names = {p.stem for d in (old_dir, new_dir) for p in (d / sub).glob("*.toml")}
    return sorted(names)


def diff(old_dir: Path, new_dir: Path) -> list[str]:
    """What changes from the configuration in `old_dir` to the one in `new_dir`, in words."""
    lines: list[str] = []

    def both(name: str) -> tuple[Data, Data, bool, bool]:
        a, b = _read(old_dir / name), _read(new_dir / name)
        return a or {}, b or {}, a is not None, b is not None

    old, new, _, _ = both("switch.toml")
    lines += _fields("switch", old, new)

    old, new, _, _ = both("corridors.toml")
    lines += _fields("corridors", old, new, skip=("corridors",))  # the file's own keys: tiers, usage_timezone
    lines += _entries("corridor", old.get("corridors"), new.get("corridors"), lambda c: str(c.get("id")), _corridor_summary)

    old, new, _, _ = both("inbound.toml")
    lines += _entries("inbound route", old.get("routes"), new.get("routes"), lambda r: str(r.get("id")),
                      lambda r: f"partner {r.get('partner')}")
    lines += _entries("directory", old.get("directory"), new.get("directory"), lambda d: str(d.get("mobile")),
                      lambda d: f"account {d.get('account')}")

    old, new, _, _ = both("compliance.toml")  # issue 12: profiles by name ("compliance profile fatf_r16: threshold USD ...")
    lines += _profiles(old.get("profiles"), new.get("profiles"))

    old, new, _, _ = both("participants.toml")
    lines += _fields("participants", {"limits": old.get("limits", {})}, {"limits": new.get("limits", {})})
    lines += _entries("participant", old.get("participants"), new.get("participants"), lambda p: str(p.get("code")),
                      lambda p: str(p.get("name")))

    old, new, _, _ = both("fx.toml")
    lines += _fields("fx", old, new, skip=("rates",))
    lines += _rates(old, new)

    old, new, _, _ = both("operators.toml")
    lines += _entries("operator token", old.get("tokens"), new.get("tokens"), lambda t: str(t.get("name")),
                      lambda t: f"role {t.get('role')}")
    lines += _entries("operator certificate", old.get("certificates"), new.get("certificates"), lambda t: str(t.get("name")),
                      lambda t: f"role {t.get('role')}")

    for partner in _named_files(old_dir, new_dir, "partners"):
        old, new, had, has = both(f"partners/{partner}.toml")
        if not has:
            lines.append(f"partner {partner}: profile removed")
        elif not had:
            lines.append(f"partner {partner}: profile added")
        else:
            lines += _fields(f"partner {partner}", old, new)

    for calendar in _named_files(old_dir, new_dir, "calendars"):
        old, new, had, has = both(f"calendars/{calendar}.toml")
        if not has or not had:
            lines.append(f"calendar {calendar}: {'removed' if had else 'added'}")
            continue
        lines += _fields(f"calendar {calendar}", old, new, skip=("holidays",))
        lines += _entries(f"calendar {calendar} holiday", old.get("holidays"), new.get("holidays"),
                          lambda h: _shown(h.get("date")), lambda h: str(h.get("name")))
    return lines
