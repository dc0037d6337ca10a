"""pain.001.001.09 messages as a participant's core banking would send them, built from instruction
v1 documents (the demo, the load generator and the tests use it). One PmtInf per debtor account,
one CdtTrfTxInf per instruction; the creditor agent names the corridor's country and, for an
account, the partner bank code as ClrSysMmbId/MmbId."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from iso20022 import pain001
from iso20022.model import Account, Agent, Amount, ClearingSystemMember, Party, PartyIdentification, Proxy
from iso20022.schemas import SchemaSet

_PROXY_CODES = {"MOBILE": "MBNO", "NATID": "NIDN", "EWALLET": "EWAL"}


def _transaction(ins: dict[str, Any]) -> pain001.CreditTransferTransaction:
    creditor = ins["creditor"]
    country = ins["corridor"].split("-", 1)[1][:2]
    if creditor.get("proxy"):
        proxy = creditor["proxy"]
        # pain.001.001.09 needs CdtrAcct/Id next to Prxy: the proxy value again
        account = Account(other_id=proxy["value"], proxy=Proxy(identifier=proxy["value"], type_proprietary=_PROXY_CODES[proxy["type"]]))
        agent = Agent(country=country)
    else:
        account = Account(other_id=creditor["account"])
        agent = Agent(clearing_member=ClearingSystemMember(member_id=creditor["agent"]), country=country)
    return pain001.CreditTransferTransaction(
        instruction_id=ins["instruction_id"],
        end_to_end_id=ins["instruction_id"],
        amount=Amount(ins["amount"]["value"], ins["amount"]["currency"]),
        creditor_agent=agent,
        creditor=Party(name=creditor["name"]),
        creditor_account=account,
        remittance_lines=(ins["remittance"],) if ins.get("remittance") else (),
        exchange_contract_id=ins.get("quote_id"),  # a quote asked for first (issue 11)
    )


def pain001_from_instructions(
    instructions: Sequence[dict[str, Any]], *, message_id: str, created_at: datetime, schemas: SchemaSet | None = None
) -> bytes:
    """One pain.001 carrying `instructions` (all from one participant); validated when `schemas`."""
    if not instructions:
        raise ValueError("a pain.001 needs at least one transaction")
    participant = instructions[0]["participant"]
    by_account: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for ins in instructions:
        if ins["participant"] != participant:
            raise ValueError("one pain.001 comes from one participant")
        d = ins["debtor"]
        by_account.setdefault((d["name"], d["account"], d["currency"]), []).append(ins)
    payment_instructions = tuple(
        pain001.PaymentInstruction(
            payment_information_id=f"{message_id[:30]}-{n}",
            requested_execution_date=created_at.date(),
            debtor=Party(name=name),
            debtor_account=Account(other_id=account, scheme_proprietary="BAKONG", currency=ccy),
            debtor_agent=Agent(bicfi=participant),
            transactions=tuple(_transaction(i) for i in group),
        )
        for n, ((name, account, ccy), group) in enumerate(by_account.items(), start=1)
    )
    message = pain001.CustomerCreditTransferInitiation(
        message_id=message_id,
        created_at=created_at,
        initiating_party=Party(name=participant, identification=PartyIdentification(participant, organisation=True)),
        payment_instructions=payment_instructions,
    )
    return pain001.build_validated(message, schemas) if schemas is not None else pain001.build(message)
