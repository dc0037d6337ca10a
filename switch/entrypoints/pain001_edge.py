"""pain.001 on `mekong.instructions`: a participant may send ISO 20022 pain.001.001.09 instead of
JSON. A record is taken as XML when its `content-type` header says xml, its `mekong.format`
header names pain.001, or its first byte (after a BOM and blanks) is `<`.

The message is parsed with the hardened parser, validated against the official XSD and its
control totals recomputed (a bad one goes to the dead-letter topic with its reason). A pain.001
of another version, or one wrapped in a business-message envelope (`AppHdr` then `Document`), is
refused as a whole: dead-lettered, and its sender, when its MsgId and debtor agent can be read,
gets a pain.002 rejecting the group that names the supported versions. Each
transaction then becomes its own instruction v1 and, like a JSON one, the domain instruction
admission takes (`parsed_instruction`: same idempotency key, participant + InstrId, or EndToEndId
when InstrId is absent; same fingerprint); a transaction the switch cannot read as an instruction
is refused with FF01 / AG01 / RC01 in the acceptance report.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping
from datetime import date
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka.structs import ConsumerRecord
from lxml import etree
from pydantic import ValidationError

from adapters.base import PartnerMapping
from iso20022 import pain001
from iso20022.errors import SchemaViolation, XmlRejected
from iso20022.parsing import message_id_of, parse_untrusted
from iso20022.schemas import SchemaSet
from switch import limits
from switch.config import SwitchConfig
from iso20022.model import Party as IsoParty
from iso20022.model import PostalAddress as IsoAddress
from switch.contracts import AddressV1, IdentificationV1, InstructionV1
from switch.domain.instruction import read_instruction
from switch.domain.payment import Identification, Party, PostalAddress
from switch.metrics import DlqReason
from switch.service.handlers import ParsedInstruction
from switch.service.pain_reports import TransactionDecision, origin_of

VERSION: Final = "pain.001.001.09"
SUPPORTED_VERSIONS: Final = (VERSION,)
BIC: Final = re.compile(r"[A-Z0-9]{8}([A-Z0-9]{3})?")  # a participant, as instruction v1 spells it
NATIONAL_ID_SCHEME: Final = "NIDN"  # Id/PrvtId/Othr/SchmeNm/Cd of a national identity number [O ISO ExternalPersonIdentification1Code]
message_id_chars_max: Final = 35  # Max35Text: GrpHdr/MsgId, and the pain.002's OrgnlMsgId
# ISO ExternalProxyAccountType1Code (and Nexus) codes -> instruction v1 proxy types
PROXY_TYPES: Final[Mapping[str, str]] = {
    "MBNO": "MOBILE", "MOBL": "MOBILE", "TELE": "MOBILE", "CELL": "MOBILE",
    "NIDN": "NATID", "CINC": "NATID", "TXID": "NATID",
    "EWAL": "EWALLET",
}


def is_xml(record: ConsumerRecord[bytes, bytes]) -> bool:
    for name, value in record.headers or ():
        lowered = name.lower()
        if lowered == "content-type" and b"xml" in (value or b"").lower():
            return True
        if lowered == "mekong.format" and (value or b"").lower().startswith(b"pain.001"):
            return True
    head = (record.value or b"")[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


@dataclass
class Pain001Record:
    record: ConsumerRecord[bytes, bytes]
    message: pain001.CustomerCreditTransferInitiation
    participant: str  # the first PmtInf's debtor agent: who hears the acceptance report
    source_ref: str
    items: list[ParsedInstruction] = field(default_factory=list)
    # per transaction, in message order: (PmtInfId, InstrId, EndToEndId, amount, key or None, refusal or None)
    slots: list[tuple[str, str | None, str, Any, tuple[str, str] | None, tuple[str, str] | None]] = field(default_factory=list)

    def decisions(self, admissions: Mapping[tuple[str, str], tuple[str | None, str | None, str | None]]) -> list[TransactionDecision]:
        out = []
        for pmt_inf, instr, e2e, amount, key, refusal in self.slots:
            if refusal is not None or key is None:
                code, detail = refusal or ("FF01", "unreadable")
                out.append(TransactionDecision(pmt_inf, instr, e2e, amount, None, code, detail))
                continue
            uetr, code, detail = admissions.get(key, (None, "MS03", "no admission decision"))
            out.append(TransactionDecision(pmt_inf, instr, e2e, amount, uetr, code, detail))
        return out


class Pain001Refused(Exception):
    """The whole record is refused (dead-letter topic). When the document was at least valid
    against the XSD, `message_id` and `participant` name it, so the sender also gets a pain.002
    rejecting the group."""

    def __init__(self, reason_code: str, reason: str, *, message_id: str | None = None, participant: str | None = None,
                 dlq_reason: DlqReason = DlqReason.PAIN001_REFUSED) -> None:
        super().__init__(reason)
        self.reason_code = reason_code
        self.reason = reason
        self.message_id = message_id
        self.participant = participant
        self.dlq_reason = dlq_reason


def _header(root: Any) -> tuple[str | None, str | None]:
    """GrpHdr/MsgId and the first PmtInf/DbtrAgt BICFI of an XSD-valid pain.001."""
    ns = {"p": root.nsmap.get(None, "")}
    message_id = root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", namespaces=ns)
    participant = root.findtext("p:CstmrCdtTrfInitn/p:PmtInf/p:DbtrAgt/p:FinInstnId/p:BICFI", namespaces=ns)
    return message_id, participant


def _enveloped(root: Any) -> Any | None:
    """The Document of a business-message envelope (an element holding AppHdr then Document)."""
    first_two = list(itertools.islice(root.iterchildren(tag=etree.Element), 2))
    names = [etree.QName(child).localname for child in first_two]
    return first_two[1] if names == ["AppHdr", "Document"] else None


def _sender(document: Any) -> tuple[str | None, str | None]:
    """GrpHdr/MsgId and the first PmtInf's debtor agent of a pain.001 of any version, read without
    its XSD (the switch has only the one it takes): each only when a pain.002 can carry it.
    Versions up to .04 name the agent `BIC`, later ones `BICFI`."""
    ns = etree.QName(document).namespace or ""

    def path(*names: str) -> str:
        return "/".join(f"{{{ns}}}{name}" for name in names)

    message_id = document.findtext(path("CstmrCdtTrfInitn", "GrpHdr", "MsgId"))
    agent = document.find(path("CstmrCdtTrfInitn", "PmtInf", "DbtrAgt", "FinInstnId"))
    participant = None if agent is None else agent.findtext(path("BICFI")) or agent.findtext(path("BIC"))
    return (
        message_id if message_id and len(message_id) <= message_id_chars_max else None,
        participant if participant and BIC.fullmatch(participant) else None,
    )


def _refuse_unsupported(root: Any) -> None:
    """Raise Pain001Refused unless `root` is a bare pain.001 of a supported version."""
    document = _enveloped(root)
    bare = document is None
    message_type = message_id_of(root if bare else document)  # XmlRejected when not ISO 20022
    if bare and message_type in SUPPORTED_VERSIONS:
        return
    supported = ", ".join(SUPPORTED_VERSIONS)
    if not message_type.startswith("pain.001."):
        raise Pain001Refused("FF01", f"XML instructions must be {supported}, not {message_type}",
                             dlq_reason=DlqReason.UNSUPPORTED_MESSAGE)
    message_id, participant = _sender(root if bare else document)
    why = f"{message_type} is not supported" if bare else f"{message_type} in an AppHdr envelope is not supported"
    raise Pain001Refused(
        "FF01", f"{why}: send a bare Document, {supported}", message_id=message_id, participant=participant,
        dlq_reason=DlqReason.UNSUPPORTED_MESSAGE,
    )


def read_pain001(record: ConsumerRecord[bytes, bytes], schemas: SchemaSet, config: SwitchConfig,
                 mappings: Mapping[str, PartnerMapping]) -> Pain001Record:
    """The record's transactions as instructions, or Pain001Refused (for the dead-letter topic)."""
    raw = record.value or b""
    if len(raw) > limits.kafka_message_bytes_max:
        raise Pain001Refused("FF01", f"pain.001 of {len(raw)} bytes exceeds {limits.kafka_message_bytes_max}",
                             dlq_reason=DlqReason.TOO_LARGE)
    try:
        root = parse_untrusted(raw, size_bytes_max=limits.kafka_message_bytes_max)
    except XmlRejected as exc:
        raise Pain001Refused(exc.reason_code, f"pain.001 refused: {exc.message}", dlq_reason=DlqReason.MALFORMED_XML) from exc
    try:
        _refuse_unsupported(root)
    except XmlRejected as exc:
        raise Pain001Refused(exc.reason_code, f"pain.001 refused: {exc.message}",
                             dlq_reason=DlqReason.UNSUPPORTED_MESSAGE) from exc
    try:
        schemas.validate(root, VERSION)
    except SchemaViolation as exc:
        raise Pain001Refused("FF01", f"pain.001 does not validate against the official XSD: {'; '.join(exc.errors)[:300]}") from exc
    try:
        message = pain001.parse(root)  # recomputes the control totals
    except XmlRejected as exc:
        message_id, participant = _header(root)
        raise Pain001Refused(
            exc.reason_code, f"pain.001 refused: {exc.message}", message_id=message_id, participant=participant
        ) from exc
    source_ref = f"{record.topic}:{record.partition}:{record.offset}"
    first_agent = message.payment_instructions[0].debtor_agent.bicfi or ""
    out = Pain001Record(record, message, first_agent, source_ref)
    n = 0
    for pmt in message.payment_instructions:
        participant = pmt.debtor_agent.bicfi or ""
        for tx in pmt.transactions:
            n += 1
            instr = tx.instruction_id
            try:
                data = _instruction(pmt, tx, participant, config, mappings)
                ins = InstructionV1.model_validate(data)
            except Pain001Refused as exc:
                out.slots.append((pmt.payment_information_id, instr, tx.end_to_end_id, tx.amount, None, (exc.reason_code, exc.reason)))
                continue
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3])
                out.slots.append((pmt.payment_information_id, instr, tx.end_to_end_id, tx.amount, None, ("FF01", problems[:300])))
                continue
            key = (ins.participant, ins.instruction_id)
            out.slots.append((pmt.payment_information_id, instr, tx.end_to_end_id, tx.amount, key, None))
            origin = origin_of(message.message_id, pmt.payment_information_id, tx.end_to_end_id)
            out.items.append(parsed_instruction(ins, f"{source_ref}#{n}", origin=origin))
    return out


def parsed_instruction(ins: InstructionV1, source_ref: str, *, origin: str | None = None) -> ParsedInstruction:
    """An instruction v1 (a JSON record, or a pain.001 transaction read as one) as admission takes
    it: the domain instruction, made here once (its QR decoded, its amount read), and the
    fingerprint of the v1 (the same for a JSON record and a pain.001 transaction that say the same)."""
    c = ins.creditor
    instruction = read_instruction(
        participant=ins.participant,
        instruction_id=ins.instruction_id,
        debtor=Party(name=ins.debtor.name, account=ins.debtor.account, address=postal_address(ins.debtor.address),
                     identification=identification(ins.debtor.identification)),
        debtor_currency=ins.debtor.currency,
        creditor=None if c is None else Party(
            name=c.name,
            account=c.account,
            proxy_type=c.proxy.type if c.proxy else None,
            proxy=c.proxy.value if c.proxy else None,
            agent=c.agent,
            address=postal_address(c.address),
        ),
        amount=None if ins.amount is None else (ins.amount.value, ins.amount.currency),
        qr=ins.qr,
        corridor=ins.corridor,
        remittance=ins.remittance,
        origin=origin,
        debtor_tier=ins.debtor_tier,
        quote_id=ins.quote_id,
    )
    # the canonical v1 once: its hash is the fingerprint (InstructionV1.fingerprint), the text itself
    # the replay record `mekong config dry-run` reads (issue 11)
    contract = ins.canonical_json()
    return ParsedInstruction(instruction, hashlib.sha256(contract.encode()).hexdigest(), source_ref, contract)


def postal_address(a: AddressV1 | None) -> PostalAddress | None:
    """The contract's address as the domain's (issue 12)."""
    if a is None:
        return None
    return PostalAddress(country=a.country, town=a.town, street=a.street, building=a.building, post_code=a.post_code,
                         subdivision=a.subdivision, lines=tuple(a.lines or ()))


def identification(i: IdentificationV1 | None) -> Identification | None:
    """The contract's identification as the domain's (issue 12)."""
    if i is None:
        return None
    return Identification(
        national_id=i.national_id.value if i.national_id else None,
        national_id_issuer=i.national_id.issuer if i.national_id else None,
        birth_date=date.fromisoformat(i.birth.date) if i.birth else None,
        birth_city=i.birth.city if i.birth else None,
        birth_country=i.birth.country if i.birth else None,
        lei=i.lei,
    )


def _address_data(address: IsoAddress | None) -> dict[str, Any] | None:
    """A pain.001 PstlAdr (structured or hybrid) as instruction v1's address (issue 12); None when
    it holds no more than Ctry (instruction v1 has no address without a town)."""
    if address is None:
        return None
    data: dict[str, Any] = {
        key: value for key, value in (
            ("street", address.street), ("building", address.building), ("post_code", address.post_code),
            ("town", address.town), ("subdivision", address.subdivision), ("country", address.country),
        ) if value is not None
    }
    if address.lines:
        data["lines"] = list(address.lines)
    return data


def _identification_data(party: IsoParty) -> dict[str, Any] | None:
    """A pain.001 Dbtr/Id as instruction v1's identification (issue 12): Id/OrgId/LEI,
    Id/PrvtId/DtAndPlcOfBirth, and an Id/PrvtId/Othr whose scheme is NIDN (its Issr the issuer)."""
    data: dict[str, Any] = {}
    if party.lei is not None:
        data["lei"] = party.lei
    if party.birth is not None:
        data["birth"] = {"date": party.birth.birth_date.isoformat(), "city": party.birth.city,
                         "country": party.birth.country}
    other = party.identification
    if other is not None and not other.organisation and other.scheme_code == NATIONAL_ID_SCHEME:
        data["national_id"] = {"value": other.identifier, "issuer": other.issuer or ""}
    return data or None


def _corridor(tx: pain001.CreditTransferTransaction, config: SwitchConfig, mappings: Mapping[str, PartnerMapping]) -> str:
    """The corridor a transaction goes through: by the creditor agent's clearing system (a
    partner's member-id scheme), else by the creditor agent's or creditor's country."""
    agent = tx.creditor_agent
    member = agent.clearing_member if agent is not None else None
    for corridor in config.corridors:
        mapping = mappings.get(corridor.partner)
        if not corridor.enabled or mapping is None or member is None:
            continue
        p = mapping.profile
        if (member.system_code and member.system_code == p.member_id_system_code) or (
            member.system_proprietary and member.system_proprietary == p.member_id_system_proprietary
        ):
            return corridor.id
    country = (agent.country if agent is not None else None) or (tx.creditor.country if tx.creditor is not None else None)
    if country and config.corridor(f"{config.switch.country}-{country}") is not None:
        return f"{config.switch.country}-{country}"
    raise Pain001Refused("AG01", "no corridor: the creditor agent names no partner clearing system and no country served")


def _instruction(pmt: pain001.PaymentInstruction, tx: pain001.CreditTransferTransaction, participant: str,
                 config: SwitchConfig, mappings: Mapping[str, PartnerMapping]) -> dict[str, Any]:
    if config.participant(participant) is None:
        raise Pain001Refused("RC01", f"debtor agent {participant!r} is not a Bakong participant of this switch")
    creditor: dict[str, Any] = {"name": (tx.creditor.name if tx.creditor else None) or ""}
    account = tx.creditor_account
    if account is not None and account.proxy is not None:
        proxy_type = PROXY_TYPES.get((account.proxy.type_code or account.proxy.type_proprietary or "").upper())
        if proxy_type is None:
            raise Pain001Refused("BE23", f"proxy type {account.proxy.type_code or account.proxy.type_proprietary!r} is not supported")
        creditor["proxy"] = {"type": proxy_type, "value": account.proxy.identifier}
    elif account is not None and account.other_id is not None:
        creditor["account"] = account.other_id
        member = tx.creditor_agent.clearing_member if tx.creditor_agent is not None else None
        creditor["agent"] = member.member_id if member is not None else None
    else:
        raise Pain001Refused("AC01", "the creditor has neither an account id nor a proxy")
    creditor_address = _address_data(tx.creditor.address if tx.creditor else None)
    if creditor_address is not None:
        creditor["address"] = creditor_address
    debtor: dict[str, Any] = {
        "name": pmt.debtor.name or "",
        "account": pmt.debtor_account.other_id or "",
        "currency": pmt.debtor_account.currency or tx.amount.currency,
    }
    debtor_address = _address_data(pmt.debtor.address)
    if debtor_address is not None:
        debtor["address"] = debtor_address
    debtor_identification = _identification_data(pmt.debtor)
    if debtor_identification is not None:
        debtor["identification"] = debtor_identification
    return {
        "version": 1,
        "instruction_id": tx.instruction_id or tx.end_to_end_id,
        "participant": participant,
        "corridor": _corridor(tx, config, mappings),
        "debtor": debtor,
        "creditor": creditor,
        "amount": {"value": tx.amount.value, "currency": tx.amount.currency},
        "remittance": tx.remittance_lines[0] if tx.remittance_lines else None,
        # a quote asked for first (issue 11), named as the transaction's FX contract
        **({"quote_id": tx.exchange_contract_id} if tx.exchange_contract_id is not None else {}),
    }
