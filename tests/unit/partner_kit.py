"""Helpers shared by the per-partner conformance tests (test_<partner>_mapping.py): load a
shipped profile, build a validated pacs.008, read elements back, make a pacs.002."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from lxml import etree

from adapters.base import load_profile
from adapters.iso_mapping import IsoMapping
from adapters.registry import MAPPINGS, profile_path
from iso20022 import pacs002, pacs008
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch.domain.payment import Payment, PaymentState
from tests.factories import sample_partner_payment

ROOT = Path(__file__).resolve().parents[2]
SWITCH_BIC = "NBCAKHPPXXX"
ICT = timezone(timedelta(hours=7))
CREATED_AT = datetime(2025, 3, 10, 9, 30, 15, 250000, tzinfo=ICT)
MESSAGE_ID = "M5f0e7a1c3b2d4e6f8a9b0c1d2e3f4a5b01"  # handlers.message_id(uetr, attempt=1)
TS = pacs002.TransactionStatus


def mapping_for(partner: str) -> IsoMapping:
    return MAPPINGS[partner](load_profile(profile_path(ROOT / "config", partner)), switch_bic=SWITCH_BIC)


def payment(partner: str, **changes: object) -> Payment:
    return sample_partner_payment(partner, PaymentState.QUOTED, created_at=CREATED_AT - timedelta(seconds=1), **changes)


def build(mapping: IsoMapping, p: Payment, schemas: SchemaSet) -> bytes:
    message = mapping.to_pacs008([p], message_id=MESSAGE_ID, created_at=CREATED_AT)
    return pacs008.build_validated(message, mapping.profile.pacs008_version, schemas)


def ns(mapping: IsoMapping) -> dict[str, str]:
    return {"p": f"urn:iso:std:iso:20022:tech:xsd:{mapping.profile.pacs008_version}"}


def tx_of(mapping: IsoMapping, data: bytes) -> etree._Element:
    (tx,) = etree.fromstring(data).findall("p:FIToFICstmrCdtTrf/p:CdtTrfTxInf", ns(mapping))
    return tx


def header_of(mapping: IsoMapping, data: bytes) -> etree._Element:
    header = etree.fromstring(data).find("p:FIToFICstmrCdtTrf/p:GrpHdr", ns(mapping))
    assert header is not None
    return header


def text(mapping: IsoMapping, element: etree._Element, path: str) -> str:
    found = element.find(path, ns(mapping))
    assert found is not None, f"{path} is missing"
    return found.text or ""


def status_root(
    schemas: SchemaSet, mapping: IsoMapping, uetr: str, *reasons: pacs002.StatusReason, status: TS = TS.RJCT
) -> etree._Element:
    report = pacs002.PaymentStatusReport(
        message_id="STS-0001",
        created_at=CREATED_AT,
        transactions=(
            pacs002.TransactionReport(
                status=status,
                original_group=pacs002.OriginalGroup(MESSAGE_ID, mapping.profile.pacs008_version),
                original_end_to_end_id="INS-0001",
                original_uetr=uetr,
                reasons=reasons,
            ),
        ),
    )
    return parse_untrusted(pacs002.build_validated(report, schemas))
