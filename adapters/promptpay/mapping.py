"""PromptPay / National ITMX: what its profile cannot say as data.

Nexus-style pacs.008.001.13: the UETR and AccptncDtTm are always present (the shared mapping does
that when `nexus_style`), and the FX quote id travels in RmtInf/Strd/AddtlRmtInf. A proxy payment
whose creditor bank is not known names the network itself as creditor agent.
"""

from __future__ import annotations

from adapters.iso_mapping import IsoMapping
from iso20022.model import Agent
from switch.domain.errors import InstructionRejected
from switch.domain.payment import Party, Payment


class PromptPayMapping(IsoMapping):
    def creditor_agent(self, creditor: Party) -> Agent:
        if creditor.agent is None and creditor.proxy is not None and self.profile.proxy_network_member_id:
            return Agent(clearing_member=self._member(self.profile.proxy_network_member_id))
        if creditor.agent is None:
            raise InstructionRejected("creditor agent unknown", reason_code="RC01")
        return super().creditor_agent(creditor)

    def additional_remittance(self, payment: Payment) -> tuple[str, ...]:
        return (f"QUOTE:{payment.quote_id}",) if payment.quote_id else ()
