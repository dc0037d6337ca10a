"""Per-corridor compliance data rules (issue 12 item 2): which party data a payment must carry,
always and at or above a threshold, and the ISO reason a payment without it is refused with.

A profile (config/compliance.toml, read by switch/config.py into `Requirements`) names, for the
debtor (originator) and the creditor (beneficiary), the data required always and the data
required when the amount is at or above the profile's threshold in the amount's currency. A
currency the profile gives no threshold for counts as above it (fail safe: the stricter rule).

Reasons: ISO ExternalStatusReason1Code [O]:
  RR01 MissingDebtorAccountOrIdentification  the debtor's account or identification
  RR02 MissingDebtorNameOrAddress            the debtor's name or address
  RR03 MissingCreditorNameOrAddress          the creditor's name or address
FATF R16's "address, or national id, or date and place of birth" choice is refused RR02: the
address is R16's first-named element and the one CBPR+ makes mandatory, so a debtor who gives
neither is told about the address first; the detail names both alternatives. The creditor's
account (or the proxy that stands for it) has no code of its own: RR03 [U], the creditor's
regulatory data.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from switch.domain.instruction import Reject
from switch.domain.money import Money
from switch.domain.payment import Identification, Party, PostalAddress


class Need(StrEnum):
    """One datum a profile can require; the values are what config/compliance.toml writes."""

    NAME = "name"
    ACCOUNT = "account"
    ADDRESS = "address"  # town and country at least
    IDENTIFICATION = "identification"  # national id with issuer, or birth date and place, or LEI
    ADDRESS_OR_IDENTIFICATION = "address_or_identification"  # FATF R16's choice (debtor only)


DEBTOR_NEEDS: Final = frozenset(Need)
CREDITOR_NEEDS: Final = frozenset({Need.NAME, Need.ACCOUNT, Need.ADDRESS})
# a profile needing nothing more than these costs a few attribute reads per payment
BASIC_NEEDS: Final = frozenset({Need.NAME, Need.ACCOUNT})


@dataclass(frozen=True, slots=True)
class Requirements:
    """A compliance profile, validated. `threshold_minor`: per currency code, the amount (minor
    units of that currency) at or above which the `*_above` needs apply too."""

    name: str
    debtor: frozenset[Need] = frozenset()
    creditor: frozenset[Need] = frozenset()
    debtor_above: frozenset[Need] = frozenset()
    creditor_above: frozenset[Need] = frozenset()
    threshold_minor: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.debtor | self.debtor_above) <= DEBTOR_NEEDS:
            raise ValueError(f"profile {self.name}: unknown debtor need")
        extra = (self.creditor | self.creditor_above) - CREDITOR_NEEDS
        if extra:
            raise ValueError(f"profile {self.name}: the creditor cannot be required {', '.join(sorted(extra))}")

    def above(self, amount: Money) -> bool:
        """At or above the threshold in the amount's currency; no threshold for it: above."""
        limit = self.threshold_minor.get(amount.currency.code)
        return limit is None or amount.amount_minor >= limit


def has_address(address: PostalAddress | None) -> bool:
    """A usable address: town and country at least (CBPR+ and R16); anything less counts as none."""
    return address is not None and bool(address.town and address.town.strip()) and bool(address.country and address.country.strip())


def has_identification(ident: Identification | None) -> bool:
    """A national id with its issuer, or a date and place (city and country [U]) of birth, or an LEI."""
    if ident is None:
        return False
    if ident.national_id and ident.national_id_issuer:
        return True
    if ident.birth_date is not None and ident.birth_city and ident.birth_country:
        return True
    return bool(ident.lei)


def _has_account(party: Party) -> bool:
    # a partner proxy (mobile, national id, e-wallet) stands for the creditor's account: R16 takes
    # "a unique transaction reference" where there is no account [O]
    return bool(party.account and party.account.strip() and party.account != "-") or bool(party.proxy)


def _debtor_missing(needs: frozenset[Need], debtor: Party) -> Reject | None:
    # RR01 first (account, identification), then RR02 (name, address): a fixed order, so the same
    # payment always gets the same answer
    if Need.ACCOUNT in needs and not _has_account(debtor):
        return Reject("RR01", "the debtor's account is missing")
    if Need.IDENTIFICATION in needs and not has_identification(debtor.identification):
        return Reject("RR01", "the debtor's identification is missing (national id with issuer, date and place of birth, or LEI)")
    if Need.NAME in needs and not debtor.name.strip():
        return Reject("RR02", "the debtor's name is missing")
    if Need.ADDRESS in needs and not has_address(debtor.address):
        return Reject("RR02", "the debtor's address is missing (town and country at least)")
    if Need.ADDRESS_OR_IDENTIFICATION in needs and not has_address(debtor.address) and not has_identification(debtor.identification):
        return Reject("RR02", "the debtor's address (town and country at least) is missing, and no identification "
                      "(national id with issuer, date and place of birth, or LEI) replaces it")
    return None


def _creditor_missing(needs: frozenset[Need], creditor: Party) -> Reject | None:
    if Need.NAME in needs and not creditor.name.strip():
        return Reject("RR03", "the creditor's name is missing")
    if Need.ADDRESS in needs and not has_address(creditor.address):
        return Reject("RR03", "the creditor's address is missing (town and country at least)")
    if Need.ACCOUNT in needs and not _has_account(creditor):
        return Reject("RR03", "the creditor's account is missing")
    return None


def missing_data(req: Requirements | None, debtor: Party, creditor: Party, amount: Money) -> Reject | None:
    """None when the payment carries what the profile requires for `amount` (or no profile is
    named), else the refusal naming the first missing datum (debtor before creditor)."""
    if req is None:
        return None
    debtor_needs, creditor_needs = req.debtor, req.creditor
    if (req.debtor_above or req.creditor_above) and req.above(amount):
        debtor_needs = debtor_needs | req.debtor_above
        creditor_needs = creditor_needs | req.creditor_above
        threshold = req.threshold_minor.get(amount.currency.code)
        where = (f" (at or above {Money(threshold, amount.currency).to_text(amount.currency.decimals_accepted_max)} "
                 f"{amount.currency.code}, profile {req.name})" if threshold is not None
                 else f" (no {amount.currency.code} threshold in profile {req.name}: required at any amount)")
    else:
        where = f" (profile {req.name})"
    found = _debtor_missing(debtor_needs, debtor) or _creditor_missing(creditor_needs, creditor)
    return None if found is None else Reject(found.reason_code, found.detail + where)
