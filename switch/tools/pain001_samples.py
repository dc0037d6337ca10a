"""pain.001.001.09 messages as a participant's core banking would send them, built from instruction
v1 documents (the demo, the load generator and the tests use it). One PmtInf per debtor account,
one CdtTrfTxInf per instruction; the creditor agent names the corridor's country and, for an
account, the partner bank code as ClrSysMmbId/MmbId."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from iso20022 import pain001
from iso20022.model import (
    Account,
    Agent,
    Amount,
    BirthPlace,
    ClearingSystemMember,
    Party,
    PartyIdentification,
    PostalAddress,
    Proxy,
)
from iso20022.schemas import SchemaSet

_PROXY_CODES = {"MOBILE": "MBNO", "NATID": "NIDN", "EWALLET": "EWAL"}


def _address(data: dict[str, Any] | None) -> PostalAddress | None:
    """Instruction v1's address (issue 12) as PstlAdr."""
    if not data:
        return None
    return PostalAddress(country=data["country"], town=data["town"], street=data.get("street"),
                         building=data.get("building"), post_code=data.get("post_code"),
                         subdivision=data.get("subdivision"), lines=tuple(data.get("lines") or ()))


def _debtor(debtor: dict[str, Any]) -> Party:
    """Dbtr with its PstlAdr and Id (issue 12): OrgId/LEI, or PrvtId/DtAndPlcOfBirth and
    PrvtId/Othr (NIDN, Issr)."""
    ident = debtor.get("identification") or {}
    national, birth = ident.get("national_id"), ident.get("birth")
    lei = ident.get("lei")
    return Party(
        name=debtor["name"],
        address=_address(debtor.get("address")),
        identification=PartyIdentification(national["value"], scheme_code="NIDN", issuer=national["issuer"])
        if national and not lei else None,
        birth=BirthPlace(date.fromisoformat(birth["date"]), birth["city"], birth["country"]) if birth else None,
        lei=lei,
    )


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
        creditor=Party(name=creditor["name"], address=_address(creditor.get("address"))),
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
    by_account: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    debtors: dict[tuple[str, str, str, str], Party] = {}
    for ins in instructions:
        if ins["participant"] != participant:
            raise ValueError("one pain.001 comes from one participant")
        d = ins["debtor"]
        # one PmtInf per debtor account and compliance data (PmtInf/Dbtr carries them, issue 12)
        key = (d["name"], d["account"], d["currency"],
               json.dumps([d.get("address"), d.get("identification")], sort_keys=True))
        by_account.setdefault(key, []).append(ins)
        debtors.setdefault(key, _debtor(d))
    payment_instructions = tuple(
        pain001.PaymentInstruction(
            payment_information_id=f"{message_id[:30]}-{n}",
            requested_execution_date=created_at.date(),
            debtor=debtors[(name, account, ccy, data)],
            debtor_account=Account(other_id=account, scheme_proprietary="BAKONG", currency=ccy),
            debtor_agent=Agent(bicfi=participant),
            transactions=tuple(_transaction(i) for i in group),
        )
        for n, ((name, account, ccy, data), group) in enumerate(by_account.items(), start=1)
    )
    message = pain001.CustomerCreditTransferInitiation(
        message_id=message_id,
        created_at=created_at,
        initiating_party=Party(name=participant, identification=PartyIdentification(participant, organisation=True)),
        payment_instructions=payment_instructions,
    )
    return pain001.build_validated(message, schemas) if schemas is not None else pain001.build(message)
