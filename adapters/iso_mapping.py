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

from adapters import text
from adapters.base import PartnerProfile, PartnerStatus, StatusReport, luhn_ok
from iso20022 import pacs002, pacs008, pacs028
from iso20022.model import Agent, Amount, BirthPlace, ClearingSystemMember, PartyIdentification
from iso20022.model import PostalAddress as WireAddress
from switch.domain.errors import InstructionRejected
from switch.domain.pan import mask
from switch.domain.payment import Identification, Party, Payment, PaymentState, PostalAddress

LATIN_TEXT: Final = text.LATIN_TEXT  # CBPR+ Latin set; the rules live in adapters/text.py
ISO_REASON_SHAPE: Final = re.compile(r"[A-Z0-9]{4}")  # ExternalStatusReason1Code as ISO spells them
BAKONG_ACCOUNT_SCHEME: Final = "BAKONG"  # DbtrAcct/Id/Othr/SchmeNm/Prtry for `name@bank` ids
DEBTOR_COUNTRY: Final = "KH"  # outbound debtors are Bakong customers
NATIONAL_ID_SCHEME: Final = "NIDN"  # Id/PrvtId/Othr/SchmeNm/Cd: national identity number [O ISO ExternalPersonIdentification1Code]
# PostalAddress24/27 and DtAndPlcOfBirth lengths [O XSD]
_ADDRESS_CHARS: Final = {"street": 70, "building": 16, "post_code": 16, "town": 35, "subdivision": 35, "line": 70}
_ID_CHARS_MAX: Final = 35

_STATUS_TARGET: Final = {
    pacs002.TransactionStatus.ACCC: PaymentState.COMPLETED,
    pacs002.TransactionStatus.ACSC: PaymentState.COMPLETED,
    pacs002.TransactionStatus.ACSP: PaymentState.ACCEPTED,
    pacs002.TransactionStatus.ACTC: PaymentState.ACCEPTED,
    pacs002.TransactionStatus.PDNG: PaymentState.ACCEPTED,
    pacs002.TransactionStatus.RJCT: PaymentState.REJECTED,
}
missing_reject_reason_code: Final = "MS03"  # a partner reject without a reason: "not specified"
unknown_partner_reason_code: Final = "MS03"  # a partner code outside the profile's table


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
            raise InstructionRejected(f"account {mask(creditor.account)!r} is not a {p.network} account number", reason_code="AC01")
        if creditor.account is not None and p.card_luhn and p.is_card(creditor.account) and not luhn_ok(creditor.account):
            raise InstructionRejected(f"card number {mask(creditor.account)!r} fails the Luhn check", reason_code="AC01")
        if creditor.agent is not None and not p.member_id_ok(creditor.agent):
            raise InstructionRejected(f"{creditor.agent!r} is not a {p.network} member id", reason_code="RC01")

    def check_party_data(self, party: Party, role: str) -> None:
        """Admission (issue 12): the party's address and identification take this partner's text
        rule (as names do), or InstructionRejected (RR10, or FF01 when too long and the profile
        refuses to cut), so that building the pacs.008 later cannot fail on them."""
        if party.address is not None:
            self.wire_address(party.address, role, party.address.country)
        self._national_id(party.identification, role)
        self._birth(party.identification, role)

    def check_text(self, text: str, what: str, chars_max: int) -> None:
        self.wire_text(text, what, chars_max)

    def wire_text(self, value: str, what: str, chars_max: int) -> str:
        """`value` as the partner takes it (adapters/text.py: transliterated under the profile's
        text rule), or InstructionRejected: RR10 when no acceptable form exists, FF01 when too long."""
        p = self.profile
        out = text.render(
            value, rule=p.text_rule, chars_max=chars_max, overflow=p.text_overflow, what=what, network=p.network
        )
        if isinstance(out, text.TextProblem):
            raise InstructionRejected(out.detail, reason_code=out.reason_code)
        return out

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
            debtor=self.wire_party(payment.debtor, "debtor", DEBTOR_COUNTRY),
            debtor_account=pacs008.Account(other_id=payment.debtor.account, scheme_proprietary=BAKONG_ACCOUNT_SCHEME),
            debtor_agent=Agent(bicfi=payment.debtor.agent),
            creditor_agent=self.creditor_agent(creditor),
            creditor=self.wire_party(creditor, "creditor", p.country),
            creditor_account=self._creditor_account(creditor),
            remittance_lines=(self.wire_text(payment.remittance, "remittance information", p.remittance_chars_max),)
            if payment.remittance
            else (),
            additional_remittance=self.additional_remittance(payment),
        )

    def wire_party(self, party: Party, role: str, country: str) -> pacs008.Party:
        """Dbtr or Cdtr (issue 12): the name, a structured or hybrid PstlAdr that always has TwnNm
        and Ctry (the profile's [address] fallback where the payment has none: `country` and the
        unknown town), and the party's identification where given."""
        p = self.profile
        name = self.wire_text(party.name, f"{role} name", p.name_chars_max)
        ident = party.identification
        return pacs008.Party(
            name=name,
            address=self.wire_address(party.address, role, country),
            identification=self._national_id(ident, role),
            birth=self._birth(ident, role),
            lei=ident.lei if ident is not None else None,
        )

    def wire_address(self, address: PostalAddress | None, role: str, country: str) -> WireAddress:
        """The party's address as the partner takes it: every text under the profile's text rule
        (transliterated, cut to the ISO length), at most the profile's lines_max AdrLine."""
        fallback = self.profile.address
        if address is None:
            return WireAddress(country=country, town=self.wire_text(fallback.unknown_town, f"{role} town", 35))

        def text(value: str | None, field: str) -> str | None:
            if value is None or not value.strip():
                return None
            return self.wire_text(value, f"{role} {field.replace('_', ' ')}", _ADDRESS_CHARS[field]) or None

        return WireAddress(
            country=address.country,
            town=text(address.town, "town") or self.wire_text(fallback.unknown_town, f"{role} town", 35),
            street=text(address.street, "street"),
            building=text(address.building, "building"),
            post_code=text(address.post_code, "post_code"),
            subdivision=text(address.subdivision, "subdivision"),
            lines=tuple(line for line in (text(x, "line") for x in address.lines[: fallback.lines_max]) if line),
        )

    def _national_id(self, ident: Identification | None, role: str) -> PartyIdentification | None:
        if ident is None or ident.national_id is None or ident.lei is not None:
            return None  # an organisation (LEI) goes out as OrgId: no national id there
        return PartyIdentification(
            identifier=self.wire_text(ident.national_id, f"{role} national id", _ID_CHARS_MAX),
            scheme_code=NATIONAL_ID_SCHEME,
            issuer=self.wire_text(ident.national_id_issuer, f"{role} national id issuer", _ID_CHARS_MAX)
            if ident.national_id_issuer else None,
        )

    def _birth(self, ident: Identification | None, role: str) -> BirthPlace | None:
        if ident is None or ident.lei is not None or ident.birth_date is None or not ident.birth_city or not ident.birth_country:
            return None  # the XSD requires date, city and country together
        return BirthPlace(
            birth_date=ident.birth_date,
            city=self.wire_text(ident.birth_city, f"{role} city of birth", _ID_CHARS_MAX),
            country=ident.birth_country,
        )

    def _creditor_account(self, creditor: Party) -> pacs008.Account:
        if creditor.proxy is not None:
            rule = self.profile.proxy_rule(creditor.proxy_type or "")
            assert rule is not None, "check_creditor ran at admission"
            # a proxy resolved by acmt.023/024 before sending also carries the account it resolved to
            return pacs008.Account(
                other_id=creditor.account, proxy=pacs008.Proxy(identifier=creditor.proxy, type_proprietary=rule.iso_type)
            )
        if creditor.account is not None and self.profile.is_card(creditor.account):
            return pacs008.Account(other_id=creditor.account, scheme_proprietary=self.profile.card_scheme_proprietary)
        return pacs008.Account(other_id=creditor.account)

    # -- pacs.002 -----------------------------------------------------------------------
    def reason_code(self, partner_code: str | None) -> str:
        """The ISO external code for a partner's reason: the profile's table first (NAPAS's numeric
        codes), then an ISO-shaped code as it is, MS03 for anything else or nothing."""
        if partner_code is None:
            return missing_reject_reason_code
        mapped = self.profile.reason_codes.get(partner_code)
        if mapped is not None:
            return mapped
        return partner_code if ISO_REASON_SHAPE.fullmatch(partner_code) else unknown_partner_reason_code

    def _reason(self, reason: pacs002.StatusReason | None) -> tuple[str, str | None]:
        """(ISO code, detail) for a reject's first reason. Rsn/Cd with an ISO code is taken as it
        is; a partner's own code (Rsn/Prtry, or a Cd in the profile's table or not ISO-shaped)
        goes through the table, MS03 when it is not there, and stays in the detail."""
        if reason is None:
            return missing_reject_reason_code, None
        info = "; ".join(reason.additional_info) or None
        table = self.profile.reason_codes
        if reason.code is not None and reason.code not in table and ISO_REASON_SHAPE.fullmatch(reason.code):
            return reason.code, info
        partner_code = reason.code if reason.code is not None else reason.proprietary or ""
        kept = f"{self.profile.network} code {partner_code}"
        return table.get(partner_code, unknown_partner_reason_code), kept if info is None else f"{kept}: {info}"

    def parse_status(self, root: etree._Element) -> StatusReport:
        report = pacs002.parse(root)
        statuses = []
        for tx in report.transactions:
            uetr = tx.original_uetr or _uetr_from_tx_id(tx.original_tx_id)
            if uetr is None:
                continue
            target = _STATUS_TARGET[tx.status]
            first = tx.reasons[0] if tx.reasons else None
            if target is PaymentState.REJECTED:
                reason_code, detail = self._reason(first)
            else:
                reason_code, detail = None, "; ".join(first.additional_info) if first and first.additional_info else None
            original_msg = tx.original_group.message_id if tx.original_group else None
            statuses.append(PartnerStatus(uetr, original_msg, target, reason_code, detail))
        return StatusReport(report.message_id, tuple(statuses))


    # -- pacs.028 (issue 9: status enquiries) ---------------------------------------------
    def status_request(self, payment: Payment, *, message_id: str, created_at: datetime) -> pacs028.StatusRequest:
        """A pacs.028 asking what became of one payment: the original pacs.008 (its MsgId, the
        profile's pacs.008 version) and the payment's ids exactly as `to_pacs008` carried them."""
        assert payment.message_id is not None, "only a payment with a pacs.008 is enquired about"
        original = pacs002.OriginalGroup(payment.message_id, self.profile.pacs008_version)
        return pacs028.StatusRequest(
            message_id=message_id,
            created_at=created_at,
            instructing_agent=Agent(bicfi=self.switch_bic),
            transactions=(
                pacs028.StatusRequestTx(
                    status_request_id=message_id,
                    original_group=original,
                    original_instruction_id=payment.instruction_id,
                    original_end_to_end_id=payment.instruction_id,
                    original_tx_id=tx_id(payment.uetr),
                    original_uetr=payment.uetr,
                ),
            ),
        )


def _uetr_from_tx_id(value: str | None) -> str | None:
    if value and value.startswith("T") and len(value) == 33:
        try:
            return str(uuid.UUID(value[1:]))
        except ValueError:
            return None
    return None
