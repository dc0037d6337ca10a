"""XML helpers shared by the builders (text writer) and parsers (lxml lookups)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Final

from lxml import etree

from iso20022.errors import XmlRejected
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
from iso20022.parsing import message_id_of, safe_parser

# Characters that need escaping, plus those XML 1.0 cannot carry at all.
_SPECIAL = re.compile("[&<>\"\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape(text: str) -> str:
    """Text or attribute content; ValueError for characters XML 1.0 cannot represent."""
    if _SPECIAL.search(text) is None:
        return text
    if _FORBIDDEN.search(text) is not None:
        raise ValueError(f"{text!r} holds a character XML 1.0 cannot carry")
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace('"', "&quot;").replace("\r", "&#13;")
    )


class Writer:
    """Appends a Document's elements as text: several times faster than lxml element building.

    Callers emit elements in XSD sequence order; tags are trusted constants, text is escaped.
    """

    __slots__ = ("_parts",)

    def __init__(self, namespace: str) -> None:
        self._parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{namespace}">']

    def open(self, tag: str) -> None:
        self._parts.append(f"<{tag}>")

    def close(self, tag: str) -> None:
        self._parts.append(f"</{tag}>")

    def leaf(self, tag: str, text: str) -> None:
        self._parts.append(f"<{tag}>{escape(text)}</{tag}>")

    def amount(self, tag: str, amount: Amount) -> None:
        self._parts.append(f'<{tag} Ccy="{escape(amount.currency)}">{escape(amount.value)}</{tag}>')

    def choice(self, tag: str, code: str | None, proprietary: str | None) -> None:
        """tag/Cd or tag/Prtry (code wins); nothing when both are None."""
        if code is not None:
            self._parts.append(f"<{tag}><Cd>{escape(code)}</Cd></{tag}>")
        elif proprietary is not None:
            self._parts.append(f"<{tag}><Prtry>{escape(proprietary)}</Prtry></{tag}>")

    def to_bytes(self) -> bytes:
        self._parts.append("</Document>")
        return "".join(self._parts).encode("utf-8")


class Tags(dict[str, str]):
    """Local name -> Clark name ("{ns}Tag") for one namespace, memoised; paths "A/B" too."""

    def __init__(self, namespace: str) -> None:
        super().__init__()
        self.namespace = namespace

    def __missing__(self, local: str) -> str:
        clark = "/".join(f"{{{self.namespace}}}{part}" for part in local.split("/"))
        self[local] = clark
        return clark


def message_body(root: etree._Element, version: str, tags: Tags, name: str) -> etree._Element:
    """The message element (e.g. FIToFIPmtStsRpt) under a Document of `version`; XmlRejected FF01
    (with .path) when the Document is another message or lacks it."""
    found = message_id_of(root)
    if found != version:
        raise XmlRejected("FF01", f"expected {version}, got {found}")
    tag = tags[name]
    body = next((child for child in root if child.tag == tag), None)
    if body is None:
        raise XmlRejected("FF01", f"{name} is missing", path=name)
    return body


def kids(element: etree._Element) -> dict[str, etree._Element]:
    """Child elements by Clark tag in one pass (faster than several find() calls)."""
    return {child.tag: child for child in element}


def datetime_from(where: str, value: str | None) -> datetime | None:
    return None if value is None else _parse(datetime.fromisoformat, where, value)


def date_from(where: str, value: str | None) -> date | None:
    return None if value is None else _parse(date.fromisoformat, where, value)


def text_of(element: etree._Element, q: Tags, path: str) -> str | None:
    return element.findtext(q[path])


def required_text(element: etree._Element, q: Tags, path: str) -> str:
    value = element.findtext(q[path])
    if value is None:
        raise XmlRejected("FF01", f"{etree.QName(element).localname}/{path} is missing")
    return value


def amount_of(element: etree._Element, q: Tags, path: str) -> Amount | None:
    found = element.find(q[path])
    if found is None:
        return None
    return Amount(found.text or "", found.get("Ccy", ""))


def datetime_of(element: etree._Element, q: Tags, path: str) -> datetime | None:
    value = element.findtext(q[path])
    return None if value is None else _parse(datetime.fromisoformat, path, value)


def date_of(element: etree._Element, q: Tags, path: str) -> date | None:
    value = element.findtext(q[path])
    return None if value is None else _parse(date.fromisoformat, path, value)


def _parse(convert, path: str, value: str):  # type: ignore[no-untyped-def]
    try:
        return convert(value)
    except ValueError:
        raise XmlRejected("FF01", f"{path}: {value!r} is not an ISO date/time") from None


def write_agent(w: Writer, tag: str, agent: Agent) -> None:
    """BranchAndFinancialInstitutionIdentification: FinInstnId/(BICFI, ClrSysMmbId, PstlAdr/Ctry)."""
    w.open(tag)
    w.open("FinInstnId")
    if agent.bicfi is not None:
        w.leaf("BICFI", agent.bicfi)
    member = agent.clearing_member
    if member is not None:
        w.open("ClrSysMmbId")
        w.choice("ClrSysId", member.system_code, member.system_proprietary)
        w.leaf("MmbId", member.member_id)
        w.close("ClrSysMmbId")
    if agent.country is not None:
        w.open("PstlAdr")
        w.leaf("Ctry", agent.country)
        w.close("PstlAdr")
    w.close("FinInstnId")
    w.close(tag)


def write_agents(w: Writer, instructing: Agent | None, instructed: Agent | None) -> None:
    """InstgAgt and InstdAgt, each when given (a group header's or a transaction's)."""
    if instructing is not None:
        write_agent(w, "InstgAgt", instructing)
    if instructed is not None:
        write_agent(w, "InstdAgt", instructed)


def write_group_header(w: Writer, message_id: str, created_at: datetime, instructing: Agent | None, instructed: Agent | None) -> None:
    """GrpHdr of a status report or request (pacs.002, pacs.028): MsgId, CreDtTm and the agents."""
    w.open("GrpHdr")
    w.leaf("MsgId", message_id)
    w.leaf("CreDtTm", created_at.isoformat())
    write_agents(w, instructing, instructed)
    w.close("GrpHdr")


def write_party(w: Writer, tag: str, party: Party) -> None:
    """PartyIdentification: Nm, PstlAdr (write_address, or Ctry alone), Id/PrvtId/(DtAndPlcOfBirth,
    Othr) or Id/OrgId/(LEI, Othr)."""
    w.open(tag)
    if party.name is not None:
        w.leaf("Nm", party.name)
    if party.address is not None:
        write_address(w, "PstlAdr", party.address)
    elif party.country is not None:
        w.open("PstlAdr")
        w.leaf("Ctry", party.country)
        w.close("PstlAdr")
    ident = party.identification
    organisation = party.lei is not None or (ident is not None and ident.organisation)
    birth = None if organisation else party.birth
    if ident is not None or party.lei is not None or birth is not None:
        kind = "OrgId" if organisation else "PrvtId"
        w.open("Id")
        w.open(kind)
        if party.lei is not None:
            w.leaf("LEI", party.lei)
        if birth is not None:
            w.open("DtAndPlcOfBirth")
            w.leaf("BirthDt", birth.birth_date.isoformat())
            w.leaf("CityOfBirth", birth.city)
            w.leaf("CtryOfBirth", birth.country)
            w.close("DtAndPlcOfBirth")
        if ident is not None:
            w.open("Othr")
            w.leaf("Id", ident.identifier)
            w.choice("SchmeNm", ident.scheme_code, ident.scheme_proprietary)
            if ident.issuer is not None:
                w.leaf("Issr", ident.issuer)
            w.close("Othr")
        w.close(kind)
        w.close("Id")
    w.close(tag)


def write_address(w: Writer, tag: str, address: PostalAddress) -> None:
    """PostalAddress24/27 in XSD sequence order: StrtNm, BldgNb, PstCd, TwnNm, CtrySubDvsn, Ctry, AdrLine*."""
    w.open(tag)
    for element, value in (
        ("StrtNm", address.street),
        ("BldgNb", address.building),
        ("PstCd", address.post_code),
        ("TwnNm", address.town),
        ("CtrySubDvsn", address.subdivision),
        ("Ctry", address.country),
    ):
        if value is not None:
            w.leaf(element, value)
    for line in address.lines:
        w.leaf("AdrLine", line)
    w.close(tag)


def write_account(w: Writer, tag: str, account: Account) -> None:
    """CashAccount: Id/(IBAN | Othr/(Id, SchmeNm)), Ccy, Prxy/(Tp, Id)."""
    w.open(tag)
    if account.iban is not None:
        w.open("Id")
        w.leaf("IBAN", account.iban)
        w.close("Id")
    elif account.other_id is not None:
        w.open("Id")
        w.open("Othr")
        w.leaf("Id", account.other_id)
        w.choice("SchmeNm", account.scheme_code, account.scheme_proprietary)
        w.close("Othr")
        w.close("Id")
    if account.currency is not None:
        w.leaf("Ccy", account.currency)
    if account.proxy is not None:
        w.open("Prxy")
        w.choice("Tp", account.proxy.type_code, account.proxy.type_proprietary)
        w.leaf("Id", account.proxy.identifier)
        w.close("Prxy")
    w.close(tag)


def agent_of(element: etree._Element, q: Tags, path: str) -> Agent | None:
    fin = element.find(q[f"{path}/FinInstnId"])
    if fin is None:
        return None
    member = None
    mmb = fin.find(q["ClrSysMmbId"])
    if mmb is not None:
        member = ClearingSystemMember(
            member_id=required_text(mmb, q, "MmbId"),
            system_code=text_of(mmb, q, "ClrSysId/Cd"),
            system_proprietary=text_of(mmb, q, "ClrSysId/Prtry"),
        )
    return Agent(bicfi=text_of(fin, q, "BICFI"), clearing_member=member, country=text_of(fin, q, "PstlAdr/Ctry"))


# --- One-pass flattening for the parsers --------------------------------------------------------
#
# A rule tree (written with local names, compiled once per namespace to Clark names) says which
# descendants to read. flatten() walks an element's subtree once, touching only the elements the
# rules name, and records them under their local path ("PmtId/EndToEndId"): one lxml proxy, one
# tag and at most one text per element, no ElementPath. Semantics match find()/findtext() on the
# same paths: the first occurrence wins (GROUP / TEXT / ELEMENT), EVERY and LIST read all of them
# in document order (as iterfind), an empty element reads as "".

TEXT: Final = "text"  # leaf: its text, first occurrence
ELEMENT: Final = "element"  # leaf: the element itself (e.g. an amount with its Ccy), first occurrence
LIST: Final = "list"  # leaf: list of the texts of every occurrence
ELEMENTS: Final = "elements"  # leaf: list of every occurrence (a repeated group, flattened per item)


class Every(dict):  # type: ignore[type-arg]
    """A group whose every occurrence is walked (e.g. RmtInf, Strd); a plain dict walks the first."""


_GROUP: Final = "group"
_EVERY: Final = "every"


class _Rule:
    __slots__ = ("kind", "key", "rules")

    def __init__(self, kind: str, key: str, rules: dict[str, _Rule] | None) -> None:
        self.kind = kind
        self.key = key
        self.rules = rules


Rules = dict[str, _Rule]


def compile_rules(namespace: str, spec: dict, prefix: str = "") -> Rules:  # type: ignore[type-arg]
    """Clark-named rules for spec ({local: TEXT | ELEMENT | LIST | {...} | Every({...})})."""
    rules: Rules = {}
    for local, value in spec.items():
        key = prefix + local
        if isinstance(value, dict):
            kind = _EVERY if isinstance(value, Every) else _GROUP
            rules[f"{{{namespace}}}{local}"] = _Rule(kind, key, compile_rules(namespace, value, key + "/"))
        else:
            rules[f"{{{namespace}}}{local}"] = _Rule(value, key, None)
    return rules


def flatten(element: etree._Element, rules: Rules, out: dict) -> dict:  # type: ignore[type-arg]
    """Record element's descendants named by rules into out, by local path; returns out."""
    for child in element:
        rule = rules.get(child.tag)  # comments / PIs have a non-string tag: never found
        if rule is None:
            continue
        kind = rule.kind
        if kind is TEXT:
            if rule.key not in out:
                out[rule.key] = child.text or ""
        elif kind is _GROUP:
            if rule.key not in out:
                out[rule.key] = child
                flatten(child, rule.rules, out)  # type: ignore[arg-type]
        elif kind is ELEMENT:
            if rule.key not in out:
                out[rule.key] = child
        elif kind is LIST:
            texts = out.get(rule.key)
            if texts is None:
                texts = out[rule.key] = []
            texts.append(child.text or "")
        elif kind is ELEMENTS:
            items = out.get(rule.key)
            if items is None:
                items = out[rule.key] = []
            items.append(child)
        else:  # _EVERY
            if rule.key not in out:
                out[rule.key] = child
            flatten(child, rule.rules, out)  # type: ignore[arg-type]
    return out


CHOICE_SPEC: Final = {"Cd": TEXT, "Prtry": TEXT}
AGENT_SPEC: Final = {
    "FinInstnId": {
        "BICFI": TEXT,
        "ClrSysMmbId": {"ClrSysId": CHOICE_SPEC, "MmbId": TEXT},
        "PstlAdr": {"Ctry": TEXT},
    },
}
_PARTY_OTHER_SPEC: Final = {"Id": TEXT, "SchmeNm": CHOICE_SPEC, "Issr": TEXT}
ADDRESS_SPEC: Final = {
    "StrtNm": TEXT, "BldgNb": TEXT, "PstCd": TEXT, "TwnNm": TEXT, "CtrySubDvsn": TEXT, "Ctry": TEXT, "AdrLine": LIST,
}
PARTY_SPEC: Final = {
    "Nm": TEXT,
    "PstlAdr": ADDRESS_SPEC,
    "Id": {
        "OrgId": {"LEI": TEXT, "Othr": _PARTY_OTHER_SPEC},
        "PrvtId": {"DtAndPlcOfBirth": {"BirthDt": TEXT, "CityOfBirth": TEXT, "CtryOfBirth": TEXT},
                   "Othr": _PARTY_OTHER_SPEC},
    },
}
ACCOUNT_SPEC: Final = {
    "Id": {"IBAN": TEXT, "Othr": {"Id": TEXT, "SchmeNm": CHOICE_SPEC}},
    "Ccy": TEXT,
    "Prxy": {"Tp": CHOICE_SPEC, "Id": TEXT},
}


class AgentKeys:
    """The flattened keys of one agent element (e.g. prefix "DbtrAgt")."""

    __slots__ = ("fin", "bicfi", "member", "member_id", "code", "proprietary", "country")

    def __init__(self, prefix: str) -> None:
        self.fin = f"{prefix}/FinInstnId"
        self.bicfi = f"{self.fin}/BICFI"
        self.member = f"{self.fin}/ClrSysMmbId"
        self.member_id = f"{self.member}/MmbId"
        self.code = f"{self.member}/ClrSysId/Cd"
        self.proprietary = f"{self.member}/ClrSysId/Prtry"
        self.country = f"{self.fin}/PstlAdr/Ctry"


def agent_in(fields: dict, keys: AgentKeys) -> Agent | None:  # type: ignore[type-arg]
    """The Agent flattened under keys, or None without FinInstnId."""
    if keys.fin not in fields:
        return None
    member = None
    if keys.member in fields:
        member_id = fields.get(keys.member_id)
        if member_id is None:
            raise XmlRejected("FF01", f"{keys.member_id} is missing")
        member = ClearingSystemMember(
            member_id=member_id, system_code=fields.get(keys.code), system_proprietary=fields.get(keys.proprietary)
        )
    return Agent(bicfi=fields.get(keys.bicfi), clearing_member=member, country=fields.get(keys.country))


class PartyKeys:
    """The flattened keys of one party element (e.g. prefix "Cdtr"), read with PARTY_SPEC."""

    __slots__ = ("party", "name", "country", "others", "address", "address_keys", "lines", "lei", "birth",
                 "birth_date", "birth_city", "birth_country")

    def __init__(self, prefix: str) -> None:
        self.party = prefix
        self.name = f"{prefix}/Nm"
        self.country = f"{prefix}/PstlAdr/Ctry"
        self.address = f"{prefix}/PstlAdr"
        self.address_keys = tuple(
            f"{prefix}/PstlAdr/{local}" for local in ("StrtNm", "BldgNb", "PstCd", "TwnNm", "CtrySubDvsn")
        )
        self.lines = f"{prefix}/PstlAdr/AdrLine"
        self.lei = f"{prefix}/Id/OrgId/LEI"
        self.birth = f"{prefix}/Id/PrvtId/DtAndPlcOfBirth"
        self.birth_date = f"{self.birth}/BirthDt"
        self.birth_city = f"{self.birth}/CityOfBirth"
        self.birth_country = f"{self.birth}/CtryOfBirth"
        self.others = tuple(
            (f"{prefix}/Id/{kind}/Othr", f"{prefix}/Id/{kind}/Othr/Id", f"{prefix}/Id/{kind}/Othr/SchmeNm/Cd",
             f"{prefix}/Id/{kind}/Othr/SchmeNm/Prtry", f"{prefix}/Id/{kind}/Othr/Issr", kind == "OrgId")
            for kind in ("PrvtId", "OrgId")
        )


def party_in(fields: dict, keys: PartyKeys, where: str = "") -> Party | None:  # type: ignore[type-arg]
    """The Party flattened under keys (the first Othr identification), or None without the element.

    where prefixes the path in an XmlRejected, e.g. "CdtTrfTxInf".
    """
    if keys.party not in fields:
        return None
    identification = None
    for other, identifier, code, proprietary, issuer, organisation in keys.others:
        if other in fields:
            identification = PartyIdentification(
                identifier=required_in(fields, identifier, where),
                scheme_code=fields.get(code),
                scheme_proprietary=fields.get(proprietary),
                issuer=fields.get(issuer),
                organisation=organisation,
            )
            break
    country = fields.get(keys.country)
    address = None
    if keys.address in fields:
        street, building, post_code, town, subdivision = (fields.get(key) for key in keys.address_keys)
        lines = tuple(fields.get(keys.lines, ()))
        if street or building or post_code or town or subdivision or lines:  # more than Ctry alone
            address = PostalAddress(country=country, town=town, street=street, building=building,
                                    post_code=post_code, subdivision=subdivision, lines=lines)
    birth = None
    if keys.birth in fields:
        birth = BirthPlace(
            birth_date=date_from(keys.birth_date, required_in(fields, keys.birth_date, where)),  # type: ignore[arg-type]
            city=required_in(fields, keys.birth_city, where),
            country=required_in(fields, keys.birth_country, where),
        )
    return Party(name=fields.get(keys.name), country=country, identification=identification, address=address,
                 birth=birth, lei=fields.get(keys.lei))


class AccountKeys:
    """The flattened keys of one account element (e.g. prefix "CdtrAcct"), read with ACCOUNT_SPEC."""

    __slots__ = ("account", "proxy", "proxy_id", "proxy_code", "proxy_proprietary", "iban", "other_id", "code",
                 "proprietary", "currency")

    def __init__(self, prefix: str) -> None:
        self.account = prefix
        self.proxy = f"{prefix}/Prxy"
        self.proxy_id = f"{prefix}/Prxy/Id"
        self.proxy_code = f"{prefix}/Prxy/Tp/Cd"
        self.proxy_proprietary = f"{prefix}/Prxy/Tp/Prtry"
        self.iban = f"{prefix}/Id/IBAN"
        self.other_id = f"{prefix}/Id/Othr/Id"
        self.code = f"{prefix}/Id/Othr/SchmeNm/Cd"
        self.proprietary = f"{prefix}/Id/Othr/SchmeNm/Prtry"
        self.currency = f"{prefix}/Ccy"


def account_in(fields: dict, keys: AccountKeys, where: str = "") -> Account | None:  # type: ignore[type-arg]
    """The Account flattened under keys, or None without the element."""
    if keys.account not in fields:
        return None
    proxy = None
    get = fields.get
    if keys.proxy in fields:
        proxy = Proxy(
            identifier=required_in(fields, keys.proxy_id, where),
            type_code=get(keys.proxy_code),
            type_proprietary=get(keys.proxy_proprietary),
        )
    return Account(
        iban=get(keys.iban), other_id=get(keys.other_id), scheme_code=get(keys.code),
        scheme_proprietary=get(keys.proprietary), proxy=proxy, currency=get(keys.currency),
    )


def required_in(fields: dict, key: str, where: str = "") -> str:  # type: ignore[type-arg]
    """fields[key] or XmlRejected FF01 naming where/key."""
    value = fields.get(key)
    if value is None:
        path = f"{where}/{key}" if where else key
        raise XmlRejected("FF01", f"{path} is missing", path=path)
    return value  # type: ignore[no-any-return]


def datetime_in(fields: dict, key: str, where: str = "") -> datetime | None:  # type: ignore[type-arg]
    """The ISO date-time at key, None when absent, XmlRejected FF01 (naming where/key) when unreadable."""
    value = fields.get(key)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        path = f"{where}/{key}" if where else key
        raise XmlRejected("FF01", f"{path}: {value!r} is not an ISO date-time", path=path) from None


def amount_in(fields: dict, key: str) -> Amount | None:  # type: ignore[type-arg]
    element = fields.get(key)
    return None if element is None else Amount(element.text or "", element.get("Ccy", ""))


def to_element(data: bytes) -> etree._Element:
    """Parse bytes this package just wrote (trusted, but parsed with the same safe options)."""
    return etree.fromstring(data, safe_parser())
