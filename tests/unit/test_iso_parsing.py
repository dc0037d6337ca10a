"""Hardened parsing of untrusted bodies."""

from __future__ import annotations

import pytest

from iso20022.errors import XmlRejected
from iso20022.parsing import message_id_of, parse_untrusted

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz>&lol9;</lolz>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10">&xxe;</Document>"""

VALID_HEAD = b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"><!-- c --><FIToFIPmtStsRpt/></Document>'


def _rejected(body: bytes, **kwargs: int) -> XmlRejected:
    with pytest.raises(XmlRejected) as rejected:
        parse_untrusted(body, **kwargs)
    return rejected.value


def test_billion_laughs_is_refused_as_ff01() -> None:
    assert _rejected(BILLION_LAUGHS).reason_code == "FF01"


def test_external_entity_is_refused_and_never_read() -> None:
    rejected = _rejected(EXTERNAL_ENTITY)
    assert rejected.reason_code == "FF01"
    assert "root:" not in str(rejected)


def test_doctype_is_refused_even_without_entities() -> None:
    assert _rejected(b'<?xml version="1.0"?><!DOCTYPE Document SYSTEM "http://x/d.dtd"><Document/>').reason_code == "FF01"


def test_doctype_hidden_in_utf16_is_refused() -> None:
    body = EXTERNAL_ENTITY.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16")
    assert _rejected(body).reason_code == "FF01"


def test_oversize_body_is_refused_before_parsing() -> None:
    rejected = _rejected(b"<a>" + b"x" * 2_000 + b"</a>", size_bytes_max=1_000)
    assert rejected.reason_code == "FF01" and "1000" in rejected.message


@pytest.mark.parametrize("body", [b"", b"not xml at all", b"<Document><open></Document>", b"\xff\xfe\x00garbage"])
def test_non_xml_is_ff02(body: bytes) -> None:
    assert _rejected(body).reason_code == "FF02"


def test_valid_body_parses_without_comments_and_names_its_message() -> None:
    root = parse_untrusted(VALID_HEAD)
    assert message_id_of(root) == "pacs.002.001.10"
    assert len(root) == 1 and root[0].tag.endswith("FIToFIPmtStsRpt")


def test_message_id_of_refuses_a_foreign_namespace() -> None:
    root = parse_untrusted(b'<Document xmlns="urn:example:not-iso"/>')
    with pytest.raises(XmlRejected, match="not an ISO 20022") as rejected:
        message_id_of(root)
    assert rejected.value.reason_code == "FF01"
