"""The mapping every partner shares: domain payment -> pacs.008, pacs.002 -> domain statuses,
driven by the partner's profile. A partner package subclasses it only for what data cannot say
(STYLE §7: partner deviations as named options, no `skip_all`).

Pure: no I/O, `created_at` is an argument.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from lxml import etree

from adapters.base import PartnerProfile, PartnerStatus, StatusReport
from iso20022 import pacs002, pacs008
from iso20022.model import Agent, Amount, ClearingSystemMember
from switch.domain.errors import InstructionRejected
from switch.domain.payment import Party, Payment, PaymentState

# CBPR+ Latin character set for names and free text ([U] secondary source, PARTNERS.md).
LATIN_TEXT: Final = re.compile(r"^[A-Za-z0-9/\-?:().,'+ ]*$")
BAKONG_ACCOUNT_SCHEME: Final = "BAKONG"  # DbtrAcct/Id/Othr/SchmeNm/Prtry for `name@bank` ids

_STATUS_TARGET: Final = {
    pacs002.TransactionStatus.ACCC: PaymentState.COMPLETED,
    pacs002.TransactionStatus.ACSC: PaymentState.COMPLETED,
    pacs002.TransactionStatus.ACSP: PaymentState.ACCEPTED,
    pacs002.TransactionStatus.ACTC: PaymentState.ACCEPTED,
    pacs002.TransactionStatus.PDNG: PaymentState.ACCEPTED,
    pacs002.TransactionStatus.RJCT: PaymentState.REJECTED,
}
missing_reject_reason_code: Final = "MS03"  # a partner reject without a reason: "not specified"


def tx_id(uetr: str) -> str:
    return f"T{uetr.replace('-', '')}"


class IsoMapping:
    def __init__(self, profile: PartnerProfile, *, switch_bic: str) -> None:
        self.profile = profile
        self.switch_bic = switch_bic

    # -- checks at admission ------------------------------------------------------------
    def check_creditor(self, creditor: Party) -> None:
        p = self.profile
        self.check_text(creditor.name, "creditor name", p.name_chars_max)
        if creditor.proxy is not None:
            rule = p.proxy_rule(creditor.proxy_type or "")
            if rule is None:
                raise InstructionRejected(f"{p.network} takes no {creditor.proxy_type} proxies", reason_code="BE23")
            if re.fullmatch(rule.pattern, creditor.proxy) is None:
                raise InstructionRejected(
                    f"{creditor.proxy_type} proxy {creditor.proxy!r} is not valid for {p.network} ({rule.description})",
                    reason_code="BE23",
                )
        if creditor.account is not None and not p.account_ok(creditor.account):
            raise InstructionRejected(f"account {creditor.account!r} is not a {p.network} account number", reason_code="AC01")
        if creditor.agent is not None and not p.member_id_ok(creditor.agent):
            raise InstructionRejected(f"{creditor.agent!r} is not a {p.network} member id", reason_code="RC01")

    def check_text(self, text: str, what: str, chars_max: int) -> None:
        if len(text) > chars_max:
            raise InstructionRejected(f"{what} has {len(text)} characters, {self.profile.network} takes {chars_max}", reason_code="FF01")
        if self.profile.text_rule == "latin" and not LATIN_TEXT.match(text):
            raise InstructionRejected(f"{what} {text!r} is outside the Latin character set", reason_code="RR10")

    # -- pacs.008 -----------------------------------------------------------------------
    def creditor_agent(self, creditor: Party) -> Agent:
        if creditor.agent is None:
            raise InstructionRejected("creditor agent unknown", reason_code="RC01")
        return Agent(clearing_member=self._member(creditor.agent))

    def _member(self, member_id: str) -> ClearingSystemMember:
        p = self.profile
        return ClearingSystemMember(
            member_id=member_id, system_code=p.member_id_system_code, system_proprietary=p.member_id_system_proprietary
        )

    def additional_remittance(self, payment: Payment) -> tuple[str, ...]:
        return ()

    def to_pacs008(
        self, payments: Sequence[Payment], *, message_id: str, created_at: datetime
    ) -> pacs008.CustomerCreditTransfer:
        """One pacs.008 carrying `payments` (at most the profile's transactions per message)."""
        if not 0 < len(payments) <= self.profile.transactions_per_message_max:
            raise ValueError(f"{len(payments)} transactions for one message; the profile allows "
                             f"{self.profile.transactions_per_message_max}")
        return pacs008.CustomerCreditTransfer(
            message_id=message_id,
            created_at=created_at,
            settlement=pacs008.Settlement(
                clearing_system_code=self.profile.clearing_system_code,
                clearing_system_proprietary=self.profile.clearing_system_proprietary,
            ),
            transactions=tuple(self._transaction(p, created_at) for p in payments),
            settlement_date=created_at.date(),
        )

    def _transaction(self, payment: Payment, created_at: datetime) -> pacs008.CreditTransfer:
        p = self.profile
        creditor = payment.creditor
        converted = payment.source.currency != payment.target.currency
        return pacs008.CreditTransfer(
            instruction_id=payment.instruction_id,
            end_to_end_id=payment.instruction_id,
            tx_id=tx_id(payment.uetr),
            uetr=payment.uetr,
            settlement_amount=Amount(payment.target.to_text(p.amount_decimals), payment.target.currency.code),
            accepted_at=created_at if p.nexus_style else None,
            instructed_amount=Amount(
                payment.source.to_text(payment.source.currency.decimals_accepted_max), payment.source.currency.code
            )
            if converted
            else None,
            exchange_rate=payment.fx_rate if converted else None,
            charge_bearer=p.charge_bearer,
            instructing_agent=Agent(bicfi=self.switch_bic),
            instructed_agent=Agent(clearing_member=self._member(creditor.agent)) if creditor.agent else None,
            debtor=pacs008.Party(name=payment.debtor.name, country="KH"),
            debtor_account=pacs008.Account(other_id=payment.debtor.account, scheme_proprietary=BAKONG_ACCOUNT_SCHEME),
            debtor_agent=Agent(bicfi=payment.debtor.agent),
            creditor_agent=self.creditor_agent(creditor),
            creditor=pacs008.Party(name=creditor.name, country=p.country),
            creditor_account=self._creditor_account(creditor),
            remittance_lines=(payment.remittance,) if payment.remittance else (),
            additional_remittance=self.additional_remittance(payment),
        )

    def _creditor_account(self, creditor: Party) -> pacs008.Account:
        if creditor.proxy is not None:
            rule = self.profile.proxy_rule(creditor.proxy_type or "")
            assert rule is not None, "check_creditor ran at admission"
            return pacs008.Account(proxy=pacs008.Proxy(identifier=creditor.proxy, type_proprietary=rule.iso_type))
        return pacs008.Account(other_id=creditor.account)

    # -- pacs.002 -----------------------------------------------------------------------
    def reason_code(self, partner_code: str | None) -> str:
        """The ISO external code for a partner's reason (identity for ISO-speaking partners)."""
        return partner_code or missing_reject_reason_code

    def parse_status(self, root: etree._Element) -> StatusReport:
        report = pacs002.parse(root)
        statuses = []
        for tx in report.transactions:
            uetr = tx.original_uetr or _uetr_from_tx_id(tx.original_tx_id)
            if uetr is None:
                continue
            target = _STATUS_TARGET[tx.status]
            first = tx.reasons[0] if tx.reasons else None
            reason_code = self.reason_code(first.code if first else None) if target is PaymentState.REJECTED else None
            detail = "; ".join(first.additional_info) if first and first.additional_info else None
            original_msg = tx.original_group.message_id if tx.original_group else None
            statuses.append(PartnerStatus(uetr, original_msg, target, reason_code, detail))
        return StatusReport(report.message_id, tuple(statuses))


def _uetr_from_tx_id(value: str | None) -> str | None:
    if value and value.startswith("T") and len(value) == 33:
        try:
            return str(uuid.UUID(value[1:]))
        except ValueError:
            return None
    return None
