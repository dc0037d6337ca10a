"""Which ISO 20022 XSDs a configuration needs: every message version its partner profiles name,
plus the switch's own (pain.001 / pain.002 with the participants, acmt.023 / acmt.024 for proxy
look-ups, the business application header). `mekong schemas verify --config-dir` checks them
against the manifest and the schema directory, so an image or a deployment whose schema set
lacks a profile's version fails when it is built, not on the first payment of that kind."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from adapters.base import PartnerProfile, load_profile
from iso20022 import apphdr

# what the switch speaks whatever the partners: participants' pain.001 in, pain.002 out, and
# the proxy look-up pair it compiles at start (switch/entrypoints/main.py)
SWITCH_OWN: Final = frozenset({"pain.001.001.09", "pain.002.001.12", "acmt.023.001.04", "acmt.024.001.04"})
ADMI_REJECT: Final = "admi.002.001.01"  # a partner's message refused with an admi.002 (profile [exceptions])


def messages_of(profile: PartnerProfile) -> frozenset[str]:
    """The message versions one partner profile names."""
    needed = {profile.pacs008_version, profile.pacs002_version}
    x = profile.exceptions
    needed |= {x.pacs028_version, x.pacs004_version, x.camt056_version, x.camt029_version}
    if x.message_rejects == "admi.002":
        needed.add(ADMI_REJECT)
    if profile.settlement is not None:
        needed.add(profile.settlement.report)
    if profile.signing is not None:
        needed.add(apphdr.HEAD_VERSION)
    return frozenset(needed)


def profiles_in(config_dir: Path) -> dict[str, PartnerProfile]:
    """Every partner profile in the configuration directory (partners/*.toml), by partner."""
    return {path.stem: load_profile(path) for path in sorted((Path(config_dir) / "partners").glob("*.toml"))}


def needed_by(profiles: Mapping[str, PartnerProfile]) -> dict[str, frozenset[str]]:
    """Message version -> the partners that need it ("switch" for the switch's own)."""
    users: dict[str, set[str]] = {m: {"switch"} for m in SWITCH_OWN}
    for partner, profile in profiles.items():
        for message_id in messages_of(profile):
            users.setdefault(message_id, set()).add(partner)
    return {m: frozenset(p) for m, p in sorted(users.items())}


def unknown_to(manifest_ids: Iterable[str], needs: Mapping[str, frozenset[str]]) -> list[str]:
    """Problems, one line each, for the versions the manifest does not pin (no XSD can be verified)."""
    known = set(manifest_ids)
    return [
        f"{message_id} (needed by {', '.join(sorted(users))}) is not in the schema manifest"
        for message_id, users in needs.items()
        if message_id not in known
    ]
