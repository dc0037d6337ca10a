"""PromptPay / National ITMX: what its profile cannot say as data.

Nexus-style pacs.008.001.13: the UETR and AccptncDtTm are always present (the shared mapping does
that when `nexus_style`), and the FX quote id travels in RmtInf/Strd/AddtlRmtInf. A proxy payment
whose creditor bank is not known names the network itself as creditor agent.
"""

from __future__ import annotations

import logging

import phonenumbers
from stdnum.th import pin as thai_pin

from adapters.iso_mapping import IsoMapping
from iso20022.model import Agent
from switch.domain.errors import InstructionRejected
from switch.domain.payment import Party, Payment


log = logging.getLogger(__name__)
_MOBILE_TYPES = frozenset({phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE})


def thai_mobile_ok(proxy: str) -> bool:
    """A PromptPay mobile proxy (`0066` + 9 digits) that libphonenumber knows as a Thai mobile."""
    try:
        number = phonenumbers.parse("+66" + proxy.removeprefix("0066"), None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in _MOBILE_TYPES


class PromptPayMapping(IsoMapping):
    natid_check_digit_warnings = 0  # per instance once incremented: how many ids failed the check
    def check_creditor(self, creditor: Party) -> None:
        super().check_creditor(creditor)
        if creditor.proxy_type == "MOBILE" and creditor.proxy is not None and not thai_mobile_ok(creditor.proxy):
            raise InstructionRejected(f"{creditor.proxy} is not a Thai mobile number", reason_code="BE23")
        if creditor.proxy_type == "NATID" and creditor.proxy is not None and not thai_pin.is_valid(creditor.proxy):
            # published Thai QR test data carries invalid check digits (PARTNERS.md): warn, let ITMX decide
            # the id is personal data: only at DEBUG, and masked even there
            log.warning("a national id's check digit does not verify; sent anyway")
            log.debug("national id %s*********: check digit does not verify", creditor.proxy[:4])
            self.natid_check_digit_warnings += 1

    def creditor_agent(self, creditor: Party) -> Agent:
        if creditor.agent is None and creditor.proxy is not None and self.profile.proxy_network_member_id:
            return Agent(clearing_member=self._member(self.profile.proxy_network_member_id))
        if creditor.agent is None:
            raise InstructionRejected("creditor agent unknown", reason_code="RC01")
        return super().creditor_agent(creditor)

    def additional_remittance(self, payment: Payment) -> tuple[str, ...]:
        return (f"QUOTE:{payment.quote_id}",) if payment.quote_id else ()
