"""Proxy resolution, Nexus-style (acmt.023 request -> acmt.024 report), pure: no I/O.

Before a payment to a PromptPay mobile / national-id / e-wallet proxy goes out, the switch asks the
network who is behind the proxy. One acmt.023 carries a batch of proxies (one Vrfctn each); the
acmt.024 answers each: verified with the account, its bank (clearing-system member id) and the
registered name, or not verified with a reason (BE23: proxy unknown).

The simulators answer with the same functions, so both sides speak one dialect; the real ITMX
rules for acmt.023/024 are not public [U].
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from adapters.base import PartnerProfile
from iso20022 import acmt023, acmt024
from iso20022.model import Account, Agent, Assignment, ClearingSystemMember, Party, PartyAndAccount, Proxy

unknown_proxy_reason_code: Final = "BE23"


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the network said about one proxy."""

    proxy_type: str  # MOBILE | NATID | EWALLET
    proxy: str
    verified: bool
    account: str | None = None
    agent: str | None = None  # the creditor's bank, as the partner's member id (Thai bank code)
    name: str | None = None
    reason_code: str | None = None


def verification_id(proxy_type: str, proxy: str) -> str:
    return f"{proxy_type}:{proxy}"[:35]


def request(
    profile: PartnerProfile, proxies: Sequence[tuple[str, str]], *, message_id: str, created_at: datetime, switch_bic: str
) -> acmt023.IdentificationVerificationRequest:
    """One acmt.023 for `proxies` ((type, value) pairs, each a type the profile knows)."""
    verifications = []
    for proxy_type, value in proxies:
        rule = profile.proxy_rule(proxy_type)
        if rule is None:
            raise ValueError(f"{profile.network} has no {proxy_type} proxies")
        verifications.append(
            acmt023.Verification(
                verification_id=verification_id(proxy_type, value),
                party_and_account=PartyAndAccount(account=Account(proxy=Proxy(identifier=value, type_proprietary=rule.iso_type))),
            )
        )
    return acmt023.IdentificationVerificationRequest(
        assignment=Assignment(
            message_id=message_id, created_at=created_at, assigner=Agent(bicfi=switch_bic), assignee=_network_agent(profile)
        ),
        verifications=tuple(verifications),
    )


def _network_agent(profile: PartnerProfile) -> Agent:
    member = profile.proxy_network_member_id or profile.partner.upper()
    return Agent(
        clearing_member=ClearingSystemMember(
            member_id=member, system_code=profile.member_id_system_code, system_proprietary=profile.member_id_system_proprietary
        )
    )


def read_report(profile: PartnerProfile, report: acmt024.IdentificationVerificationReport) -> dict[str, Resolution]:
    """The report's answers by verification id (proxy type and value)."""
    types_by_code = {rule.iso_type: name for name, rule in profile.proxies.items()}
    out: dict[str, Resolution] = {}
    for r in report.reports:
        original = r.original_party_and_account
        proxy = original.account.proxy if original is not None and original.account is not None else None
        proxy_type, _, value = r.original_id.partition(":")
        if proxy is not None:
            proxy_type = types_by_code.get(proxy.type_proprietary or proxy.type_code or "", proxy_type)
            value = proxy.identifier
        updated = r.updated_party_and_account
        account = updated.account.other_id if updated is not None and updated.account is not None else None
        member = updated.agent.clearing_member if updated is not None and updated.agent is not None else None
        name = updated.party.name if updated is not None and updated.party is not None else None
        verified = r.verified and account is not None and member is not None
        out[r.original_id] = Resolution(
            proxy_type, value, verified, account, member.member_id if member else None, name,
            None if verified else (r.reason_code or unknown_proxy_reason_code),
        )
    return out


# ---------------------------------------------------------------------------- the network's side


def answer(
    profile: PartnerProfile,
    request_: acmt023.IdentificationVerificationRequest,
    registry: Mapping[tuple[str, str], tuple[str, str, str]] | None,
    *,
    unknown: Iterable[str],
    message_id: str,
    created_at: datetime,
) -> acmt024.IdentificationVerificationReport:
    """What a network answers: `registry` maps (proxy type code, value) to (name, bank, account);
    without a registry every well-formed proxy not in `unknown` resolves to a deterministic
    account at a bank derived from its digits (simulation)."""
    unknown_set = set(unknown)
    reports = []
    for v in request_.verifications:
        account = v.party_and_account.account
        proxy = account.proxy if account is not None else None
        code = (proxy.type_proprietary or proxy.type_code or "") if proxy else ""
        value = proxy.identifier if proxy else ""
        rule = next((r for r in profile.proxies.values() if r.iso_type == code), None)
        entry = registry.get((code, value)) if registry is not None else None
        if entry is None and registry is None and rule is not None and re.fullmatch(rule.pattern, value) and value not in unknown_set:
            entry = _simulated_entry(value)
        if entry is None:
            reports.append(acmt024.VerificationReport(
                original_id=v.verification_id, verified=False, reason_code=unknown_proxy_reason_code,
                original_party_and_account=v.party_and_account,
            ))
            continue
        name, bank, number = entry
        reports.append(acmt024.VerificationReport(
            original_id=v.verification_id,
            verified=True,
            original_party_and_account=v.party_and_account,
            updated_party_and_account=PartyAndAccount(
                party=Party(name=name),
                account=Account(other_id=number),
                agent=Agent(clearing_member=ClearingSystemMember(
                    member_id=bank, system_code=profile.member_id_system_code,
                    system_proprietary=profile.member_id_system_proprietary,
                )),
            ),
        ))
    return acmt024.IdentificationVerificationReport(
        assignment=Assignment(
            message_id=message_id, created_at=created_at,
            assigner=request_.assignment.assignee, assignee=request_.assignment.assigner,
        ),
        reports=tuple(reports),
        original_message_id=request_.assignment.message_id,
    )


_SIM_BANKS: Final = ("002", "004", "006", "011", "014", "025", "069")


def _simulated_entry(value: str) -> tuple[str, str, str]:
    digits = "".join(ch for ch in value if ch.isdigit()) or "0"
    bank = _SIM_BANKS[int(digits[-3:]) % len(_SIM_BANKS)]
    return f"PROMPTPAY USER {digits[-4:]}", bank, digits[-10:].rjust(10, "0")
