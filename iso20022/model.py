"""Message-model types shared by the builders and parsers (frozen, no behaviour)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Amount:
    """An amount exactly as on the wire ("1500.00"); the domain converts it, never this layer."""

    value: str
    currency: str


@dataclass(frozen=True, slots=True)
class ClearingSystemMember:
    """ClrSysMmbId: MmbId plus ClrSysId/Cd (e.g. "THCBC") or ClrSysId/Prtry."""

    member_id: str
    system_code: str | None = None
    system_proprietary: str | None = None


@dataclass(frozen=True, slots=True)
class Agent:
    """A financial institution by BICFI and/or clearing-system membership."""

    bicfi: str | None = None
    clearing_member: ClearingSystemMember | None = None
