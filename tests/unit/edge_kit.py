"""Records for tests of the Kafka edge: a consumer record, a pain.001 in another version, a
pain.001 in a business-message envelope (shared by the unit and integration tests)."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

PAIN001_09_NS = b"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"


def consumer_record(
    value: bytes | None, *, key: bytes | None = b"key", topic: str = "mekong.instructions", partition: int = 1, offset: int = 42,
    headers: list[tuple[str, bytes]] | None = None,
    timestamp_ms: int = 0,
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic, partition, offset, timestamp_ms, 0, key, value, None, len(key or b""), len(value or b""), list(headers or [])  # type: ignore[arg-type]
    )


def _body(pain001_09: bytes) -> bytes:
    """The Document element alone, without the XML declaration."""
    return pain001_09[pain001_09.index(b"<Document"):]


def in_version(pain001_09: bytes, version: str) -> bytes:
    """A pain.001.001.09 rewritten into the namespace of `version`, as an older or newer sender
    would name it; versions up to .04 call the agent identifier `BIC` instead of `BICFI`. Not
    valid against that version's XSD (the switch does not read it that far)."""
    body = pain001_09.replace(PAIN001_09_NS, f"urn:iso:std:iso:20022:tech:xsd:{version}".encode())
    if version <= "pain.001.001.04":
        body = body.replace(b"<BICFI>", b"<BIC>").replace(b"</BICFI>", b"</BIC>")
    return body


def enveloped(pain001: bytes, *, sender: str = "ACLBKHPPXXX") -> bytes:
    """The pain.001 inside a business-message envelope: an element holding AppHdr (head.001.001.02)
    then the Document, as the business application header usage guide shows it."""
    app_hdr = (
        '<AppHdr xmlns="urn:iso:std:iso:20022:tech:xsd:head.001.001.02">'
        f"<Fr><FIId><FinInstnId><BICFI>{sender}</BICFI></FinInstnId></FIId></Fr>"
        "<To><FIId><FinInstnId><BICFI>NBCAKHPPXXX</BICFI></FinInstnId></FIId></To>"
        "<BizMsgIdr>B1</BizMsgIdr><MsgDefIdr>pain.001.001.09</MsgDefIdr><CreDt>2026-11-28T01:00:00Z</CreDt>"
        "</AppHdr>"
    ).encode()
    return b'<BizMsgEnvlp xmlns="urn:example:business-message-envelope">' + app_hdr + _body(pain001) + b"</BizMsgEnvlp>"
