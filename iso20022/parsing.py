"""Hardened parsing of untrusted XML bodies (partner responses, inbound messages).

Reason codes: FF01 InvalidFileFormat for a body we refuse by policy (oversize, any DOCTYPE / DTD /
entity declaration, not an ISO 20022 document); FF02 SyntaxError for bytes that are not
well-formed XML. Schema validation (also FF01) is the caller's next step, via SchemaSet.
"""

from __future__ import annotations

import threading
from typing import Final

from lxml import etree

from iso20022.errors import XmlRejected

body_size_bytes_max: Final = 1_000_000
ISO_NAMESPACE_PREFIX: Final = "urn:iso:std:iso:20022:tech:xsd:"

_local = threading.local()  # lxml parsers must not be shared between threads


def safe_parser() -> etree.XMLParser:
    """This thread's parser with the hardened options."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
    return parser


def parse_untrusted(body: bytes, *, size_bytes_max: int = body_size_bytes_max) -> etree._Element:
    """Parse body into its root element or raise XmlRejected (FF01/FF02)."""
    if len(body) > size_bytes_max:
        raise XmlRejected("FF01", f"body is {len(body)} bytes, over the {size_bytes_max}-byte limit")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise XmlRejected("FF01", "DOCTYPE / entity declarations are not allowed")
    try:
        root = etree.fromstring(body, safe_parser())
    except etree.XMLSyntaxError as error:
        raise XmlRejected("FF02", f"not well-formed XML: {error}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # e.g. a UTF-16 body hiding its DOCTYPE
        raise XmlRejected("FF01", "DOCTYPE / DTD is not allowed")
    return root


def message_id_of(root: etree._Element) -> str:
    """'pacs.002.001.10' from the Document namespace, or XmlRejected FF01."""
    namespace = etree.QName(root).namespace or ""
    if not namespace.startswith(ISO_NAMESPACE_PREFIX):
        raise XmlRejected("FF01", f"root namespace {namespace!r} is not an ISO 20022 message namespace")
    return namespace[len(ISO_NAMESPACE_PREFIX):]
