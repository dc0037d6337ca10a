"""A sanctions list in the FollowTheMoney format (issue 12): JSON lines, one entity a line, as
OpenSanctions exports `entities.ftm.json`. Only parties are kept (Person, Organization, Company,
LegalEntity and their descendants); sanctions, addresses and the like are skipped.

Reading the list needs `followthemoney` only (no name analysis), so `mekong config check` can
validate a list file without loading the matcher.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ENTRY_SCHEMATA: Final = ("Person", "Organization", "Company", "LegalEntity")
NAME_PROPS: Final = ("name", "alias", "weakAlias", "previousName")
ID_PROPS: Final = ("idNumber", "nationalId", "taxNumber", "leiCode", "registrationNumber", "passportNumber")
COUNTRY_PROPS: Final = ("country", "nationality", "citizenship", "jurisdiction")
LIST_CHECK_LINES_MAX: Final = 1000  # lines `mekong config check` validates (a start loads them all)
LIST_BYTES_MAX: Final = 512 * 1024 * 1024  # a list larger than this is refused, not read into memory

_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")


def normalise_id(value: str) -> str:
    """An identifier as compared: letters and digits only, upper case ("KH-04 17" -> "KH0417")."""
    return _NOT_ALNUM.sub("", value).upper()


@dataclass(frozen=True, slots=True)
class Entry:
    """One party of the list, as the matcher reads it."""

    id: str
    schema: str  # Person, Organization, Company, LegalEntity
    caption: str
    names: tuple[str, ...]  # name, aliases, previous names: each in its own script
    birth_dates: tuple[str, ...]  # ISO dates, possibly partial ("1970", "1970-03")
    ids: frozenset[str]  # normalised identifiers
    countries: frozenset[str]  # alpha-2, lower case
    datasets: tuple[str, ...]

    @property
    def is_person(self) -> bool:
        return self.schema == "Person"


@dataclass(frozen=True, slots=True)
class LoadedList:
    name: str  # the file's name
    digest: str  # sha256 of the file, hex
    entries: tuple[Entry, ...]

    @property
    def version(self) -> str:
        return f"sha256:{self.digest[:16]}"

    def describe(self) -> str:
        return f"{self.name}: {len(self.entries)} entities, sha256 {self.digest[:8]}"


def check_list(path: Path, *, lines_max: int = LIST_CHECK_LINES_MAX) -> None:
    """What `mekong config check` asks of the list without reading all of a real list (a million
    entities): the file is there and readable, and its first `lines_max` lines are entities.
    ValueError as load_list."""
    from followthemoney import model
    from followthemoney.exc import FollowTheMoneyException

    try:
        with path.open("rb") as f:
            head = [f.readline() for _ in range(lines_max)]
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the screening list: {exc.strerror or exc}") from exc
    if not any(line.strip() for line in head):
        raise ValueError(f"{path}: empty")
    for number, line in enumerate(head, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            model.get_proxy(data)
        except (ValueError, TypeError, KeyError, FollowTheMoneyException) as exc:
            raise ValueError(f"{path}:{number}: not a FollowTheMoney entity: {exc}") from exc


def load_list(path: Path) -> LoadedList:
    """Read and validate the list; ValueError naming the file and line when it does not load."""
    from followthemoney import model  # imported when used: 0.8 s
    from followthemoney.exc import FollowTheMoneyException

    try:
        if path.stat().st_size > LIST_BYTES_MAX:
            raise ValueError(f"{path}: larger than {LIST_BYTES_MAX} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the screening list: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    party_schemata = [model.get(s) for s in ENTRY_SCHEMATA]
    entries: list[Entry] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            proxy = model.get_proxy(data)
        except (ValueError, TypeError, KeyError, FollowTheMoneyException) as exc:
            raise ValueError(f"{path}:{number}: not a FollowTheMoney entity: {exc}") from exc
        if not proxy.id:
            raise ValueError(f"{path}:{number}: entity without an id")
        if not any(proxy.schema.is_a(s) for s in party_schemata if s is not None):
            continue
        if proxy.id in seen:
            raise ValueError(f"{path}:{number}: duplicate entity id {proxy.id}")
        seen.add(proxy.id)
        names = tuple(dict.fromkeys(n for p in NAME_PROPS if p in proxy.schema.properties for n in proxy.get(p) if n.strip()))
        if not names:
            continue  # nothing to match on
        datasets = data.get("datasets") or ()
        entries.append(Entry(
            id=proxy.id,
            schema=proxy.schema.name,
            caption=str(data.get("caption") or proxy.caption),
            names=names,
            birth_dates=tuple(proxy.get("birthDate")) if "birthDate" in proxy.schema.properties else (),
            ids=frozenset(normalise_id(v) for p in ID_PROPS if p in proxy.schema.properties for v in proxy.get(p) if normalise_id(v)),
            countries=frozenset(c.lower() for p in COUNTRY_PROPS if p in proxy.schema.properties for c in proxy.get(p)),
            datasets=tuple(str(d) for d in datasets) if isinstance(datasets, list) else (),
        ))
    if not entries:
        raise ValueError(f"{path}: no Person, Organization, Company or LegalEntity with a name")
    return LoadedList(path.name, hashlib.sha256(raw).hexdigest(), tuple(entries))
