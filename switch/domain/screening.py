"""Sanctions screening as values (issue 12): who is screened and what the screening said.

The screening port (`switch.service.ports.Screener`) takes `Subject`s and answers one `Verdict`
each. Admission (outbound) and booking (inbound) are handed the verdicts, made before their
transaction like the proxy look-ups, and hold a payment whose verdict is not clear.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Role(StrEnum):
    DEBTOR = "debtor"
    CREDITOR = "creditor"


class SubjectKind(StrEnum):
    PERSON = "Person"
    ORGANIZATION = "Organization"
    UNKNOWN = "LegalEntity"  # FollowTheMoney's schema for "a person or an organisation"


@dataclass(frozen=True, slots=True)
class Subject:
    """One party of one payment, as the screening sees it. `key` ties the verdict back to the
    payment: (participant, instruction id) outbound, (partner, UETR) inbound."""

    key: tuple[str, str]
    role: Role
    name: str  # as given, in its own script
    kind: SubjectKind = SubjectKind.UNKNOWN
    country: str | None = None  # the address country (alpha-2), where known
    birth_date: date | None = None
    national_id: str | None = None
    lei: str | None = None
    latin: str | None = None  # the switch's Latin transliteration, when the name is not Latin


@dataclass(frozen=True, slots=True)
class Hit:
    """A possible match: the list entry, how sure the matcher is, and on which party."""

    role: Role
    score: float  # 0..1, the matcher's
    entry_id: str  # the list entry's id (FollowTheMoney entity id)
    entry_name: str  # its caption
    matched_name: str  # the payment's name that matched
    datasets: tuple[str, ...] = ()  # the list(s) the entry comes from
    explanation: str = ""  # what matched (name, birth date, id, country)


class Outcome(StrEnum):
    CLEAR = "clear"  # no entry at or above the threshold
    HIT = "hit"  # a possible match: the payment is held
    UNAVAILABLE = "unavailable"  # the screening could not answer: held too (fail closed)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the screening says of one payment (all its subjects): the best hit when any."""

    outcome: Outcome
    hit: Hit | None = None
    list_version: str = ""  # which list (file digest, or the API's dataset version) decided
    detail: str = ""  # for UNAVAILABLE: why

    @property
    def holds(self) -> bool:
        return self.outcome is not Outcome.CLEAR


CLEAR = Verdict(Outcome.CLEAR)
