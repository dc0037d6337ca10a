"""Signed business messages (iso20022/apphdr.py): a Document in a BizMsg envelope with a
head.001.001.02 AppHdr, signed with signxml, and every check a receiver makes. Real keys from a
development PKI (`mekong pki init`), real XML signatures, the official head.001.001.02 XSD."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree
from signxml import XMLSigner

from iso20022 import apphdr
from iso20022.apphdr import ENVELOPED, EXC_C14N, Party, Refused, SigningKey
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch.config import DEFAULT_CONFIG_DIR, PROJECT_ROOT
from switch.pki import init_pki

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
HUB = Party(bicfi="NBCAKHPPXXX")
ITMX = Party(member_id="ITMX", system_code="THCBC")
LAPNET = Party(member_id="LAPNET", system_proprietary="LAPNET")
H = apphdr.HEAD_NAMESPACE
PACS002 = (PROJECT_ROOT / "adapters/lapnet/fixtures/pacs002_reject_ac04.xml").read_bytes()
PACS008 = (PROJECT_ROOT / "adapters/promptpay/fixtures/pacs008_khr_mobile.xml").read_bytes()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, config_dir=DEFAULT_CONFIG_DIR, now=NOW - timedelta(days=1))
    return directory


def _key(pki: Path, owner: str) -> SigningKey:
    base = pki / ("hub" if owner == "hub" else f"partners/{owner}")
    return SigningKey.load(base / "signing.crt", base / "signing.key")


def _cert(pki: Path, owner: str) -> x509.Certificate:
    return _key(pki, owner).certificate


def _seal(pki: Path, document: bytes = PACS008, *, signer: str = "hub", fr: Party = HUB, to: Party = ITMX,
          at: datetime = NOW) -> bytes:
    return apphdr.seal(document, fr=fr, to=to, signer=_key(pki, signer), created_at=at)


def _open(schemas: SchemaSet, pki: Path, body: bytes, *, sender: Party = HUB, receiver: Party = ITMX,
          signer_of_record: str = "hub", now: datetime = NOW, window_s: float = 300) -> apphdr.Opened:
    return apphdr.open_envelope(
        parse_untrusted(body), schemas=schemas, sender=sender, receiver=receiver,
        certificates=[_cert(pki, signer_of_record)], now=now, credt_window_s=window_s,
    )


def _refusal(schemas: SchemaSet, pki: Path, body: bytes, **kwargs: object) -> Refused:
    with pytest.raises(Refused) as caught:
        _open(schemas, pki, body, **kwargs)  # type: ignore[arg-type]
    return caught.value


def _resigned(body: bytes, key: SigningKey, edit: object) -> bytes:
    """The message with `edit(root)` applied, then signed again properly with `key`: a message
    whose signature is good, so only the check under test can refuse it."""
    root = etree.fromstring(body)
    edit(root)  # type: ignore[operator]
    sgntr = root.find(f"{{{H}}}AppHdr/{{{H}}}Sgntr")
    assert sgntr is not None
    sgntr.clear()
    etree.SubElement(sgntr, f"{{{apphdr.DS_NAMESPACE}}}Signature", Id="placeholder", nsmap={"ds": apphdr.DS_NAMESPACE})
    signed = XMLSigner(method=ENVELOPED, signature_algorithm=key.method, c14n_algorithm=EXC_C14N).sign(
        root, key=key.key, cert=[key.certificate]
    )
    return etree.tostring(signed)


def _header(root: etree._Element, tag: str) -> etree._Element:
    found = root.find(f"{{{H}}}AppHdr/{{{H}}}{tag}")
    assert found is not None
    return found


# ---------------------------------------------------------------------------- the round trip


def test_a_signed_message_opens_with_the_senders_certificate_and_names_its_document(schemas: SchemaSet, pki: Path) -> None:
    opened = _open(schemas, pki, _seal(pki))
    assert (opened.header.fr, opened.header.to) == (HUB, ITMX)
    assert (opened.header.biz_msg_id, opened.header.msg_def_id) == ("M5f0e7a1c3b2d4e6f8a9b0c1d2e3f4a5b01", "pacs.008.001.13")
    assert opened.header.created_at == NOW
    schemas.validate(parse_untrusted(opened.document_bytes), "pacs.008.001.13")  # the Document, whole


def test_the_apphdr_validates_against_head_001_001_02_and_the_signature_sits_in_sgntr(schemas: SchemaSet, pki: Path) -> None:
    root = parse_untrusted(_seal(pki))
    header, document = list(root)
    assert (etree.QName(root).localname, etree.QName(header).localname, etree.QName(document).localname) == ("BizMsg", "AppHdr", "Document")
    schemas.validate(header, "head.001.001.02")
    signature = header.find(f"{{{H}}}Sgntr/{{{apphdr.DS_NAMESPACE}}}Signature")
    assert signature is not None
    methods = [e.get("Algorithm") for e in signature.iter() if e.get("Algorithm")]
    assert methods == [
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/04/xmlenc#sha256",
    ]


def test_each_seal_is_fresh_and_the_document_inside_stays_byte_for_byte_the_stored_one(schemas: SchemaSet, pki: Path) -> None:
    first, later = _seal(pki, at=NOW), _seal(pki, at=NOW + timedelta(minutes=3))
    stored = PACS008.split(b"?>", 1)[1].strip()  # the stored Document, less its XML declaration
    assert stored in first and stored in later
    assert first != later  # another CreDt, another signature
    a, b = _open(schemas, pki, first), _open(schemas, pki, later, now=NOW + timedelta(minutes=3))
    assert (a.document_bytes, a.document_sha256) == (b.document_bytes, b.document_sha256)


def test_non_latin_text_in_the_document_survives_sealing_as_utf8(schemas: SchemaSet, pki: Path) -> None:
    thai = PACS008.replace(b"<Nm>Sok Dara</Nm>", "<Nm>สมชาย ใจดี</Nm>".encode())
    assert thai != PACS008
    sealed = _seal(pki, thai)
    assert thai.split(b"?>", 1)[1].strip() in sealed
    assert "สมชาย ใจดี".encode() in _open(schemas, pki, sealed).document_bytes


def test_a_pacs002_from_a_partner_opens_with_that_partners_certificate(schemas: SchemaSet, pki: Path) -> None:
    body = _seal(pki, PACS002, signer="lapnet", fr=LAPNET, to=HUB)
    opened = _open(schemas, pki, body, sender=LAPNET, receiver=HUB, signer_of_record="lapnet")
    assert opened.header.msg_def_id == "pacs.002.001.10"


def test_a_bic8_names_the_same_party_as_its_bic11() -> None:
    assert Party(bicfi="NBCAKHPP").same_as(HUB) and not Party(bicfi="NBCAKHPPXXY").same_as(HUB)
    assert not ITMX.same_as(Party(member_id="ITMX", system_code="VN"))


# ---------------------------------------------------------------------------- refusals


def test_a_bare_document_is_refused_as_unsigned(schemas: SchemaSet, pki: Path) -> None:
    refused = _refusal(schemas, pki, PACS008)
    assert (refused.reason, refused.reason_code, refused.http_status) == ("no_header", "DS0A", 400)


def test_a_tampered_document_is_refused_as_altered(schemas: SchemaSet, pki: Path) -> None:
    tampered = _seal(pki).replace(b'Ccy="THB">1657.64<', b'Ccy="THB">9657.64<')
    refused = _refusal(schemas, pki, tampered)
    assert (refused.reason, refused.reason_code) == ("bad_signature", "DS0B")
    assert "altered" in refused.message


def test_a_tampered_header_is_refused_as_altered(schemas: SchemaSet, pki: Path) -> None:
    tampered = _seal(pki).replace(b"<CreDt>2026-11-30T10:00:00.000Z</CreDt>", b"<CreDt>2026-11-30T10:00:01.000Z</CreDt>")
    assert tampered != _seal(pki)
    assert _refusal(schemas, pki, tampered).reason == "bad_signature"


def test_a_signature_by_another_partners_key_is_refused_even_with_its_own_certificate_in_keyinfo(schemas: SchemaSet, pki: Path) -> None:
    """LAPNet's key and LAPNet's certificate in KeyInfo make a valid XML signature; it is checked
    against PromptPay's configured certificate, not the one it carries, and refused."""
    forged = _seal(pki, PACS002, signer="lapnet", fr=ITMX, to=HUB)
    refused = _refusal(schemas, pki, forged, sender=ITMX, receiver=HUB, signer_of_record="promptpay")
    assert (refused.reason, refused.reason_code, refused.http_status) == ("wrong_key", "DS0E", 403)
    assert "lapnet" in refused.message


def test_a_certificate_in_keyinfo_that_is_not_the_signers_proves_nothing(schemas: SchemaSet, pki: Path) -> None:
    """Signed with LAPNet's key while carrying PromptPay's certificate: still refused."""
    lapnet, promptpay = _key(pki, "lapnet"), _key(pki, "promptpay")
    forged = apphdr.seal(PACS002, fr=ITMX, to=HUB, signer=SigningKey(lapnet.key, promptpay.certificate), created_at=NOW)
    assert _refusal(schemas, pki, forged, sender=ITMX, receiver=HUB, signer_of_record="promptpay").reason == "bad_signature"


def test_a_message_without_sgntr_is_refused_as_unsigned(schemas: SchemaSet, pki: Path) -> None:
    root = etree.fromstring(_seal(pki))
    sgntr = _header(root, "Sgntr")
    sgntr.getparent().remove(sgntr)
    refused = _refusal(schemas, pki, etree.tostring(root))
    assert (refused.reason, refused.reason_code, refused.http_status) == ("no_signature", "DS0A", 403)


def test_fr_that_is_not_the_caller_is_refused(schemas: SchemaSet, pki: Path) -> None:
    body = _seal(pki, PACS002, signer="lapnet", fr=LAPNET, to=HUB)
    refused = _refusal(schemas, pki, body, sender=ITMX, receiver=HUB, signer_of_record="lapnet")
    assert (refused.reason, refused.reason_code, refused.http_status) == ("from_not_partner", "AG01", 403)


def test_to_that_is_not_the_hub_is_refused(schemas: SchemaSet, pki: Path) -> None:
    body = _seal(pki, PACS002, signer="lapnet", fr=LAPNET, to=Party(bicfi="BKKBTHBKXXX"))
    refused = _refusal(schemas, pki, body, sender=LAPNET, receiver=HUB, signer_of_record="lapnet")
    assert (refused.reason, refused.reason_code) == ("to_not_hub", "AGNT")


def test_msgdefidr_that_is_not_the_documents_type_is_refused_though_signed(schemas: SchemaSet, pki: Path) -> None:
    def edit(root: etree._Element) -> None:
        _header(root, "MsgDefIdr").text = "pacs.002.001.10"

    body = _resigned(_seal(pki), _key(pki, "hub"), edit)
    refused = _refusal(schemas, pki, body)
    assert (refused.reason, refused.reason_code) == ("header_mismatch", "FF01")
    assert "MsgDefIdr" in refused.message


def test_bizmsgidr_that_is_not_the_documents_message_id_is_refused_though_signed(schemas: SchemaSet, pki: Path) -> None:
    def edit(root: etree._Element) -> None:
        _header(root, "BizMsgIdr").text = "ANOTHER-ID"

    refused = _refusal(schemas, pki, _resigned(_seal(pki), _key(pki, "hub"), edit))
    assert (refused.reason, refused.reason_code) == ("header_mismatch", "FF01")
    assert "BizMsgIdr" in refused.message


def test_an_apphdr_that_does_not_validate_is_refused(schemas: SchemaSet, pki: Path) -> None:
    def edit(root: etree._Element) -> None:
        _header(root, "CreDt").text = "yesterday"

    refused = _refusal(schemas, pki, _resigned(_seal(pki), _key(pki, "hub"), edit))
    assert (refused.reason, refused.reason_code) == ("header_invalid", "FF01")


def test_anything_beside_apphdr_and_document_in_the_envelope_is_refused(schemas: SchemaSet, pki: Path) -> None:
    def edit(root: etree._Element) -> None:
        root.append(etree.fromstring(PACS008))  # a second Document, covered by the signature

    assert _refusal(schemas, pki, _resigned(_seal(pki), _key(pki, "hub"), edit)).reason == "header_invalid"


@pytest.mark.parametrize("skew", [timedelta(seconds=-301), timedelta(seconds=301)], ids=["too_old", "ahead"])
def test_credt_outside_the_window_is_refused(schemas: SchemaSet, pki: Path, skew: timedelta) -> None:
    body = _seal(pki, at=NOW + skew)
    refused = _refusal(schemas, pki, body, window_s=300)
    assert (refused.reason, refused.reason_code, refused.http_status) == ("credt_outside_window", "DT02", 400)
    _open(schemas, pki, body, window_s=302)  # the same message inside a wider window


def test_a_signature_over_something_else_than_the_whole_message_is_refused(schemas: SchemaSet, pki: Path) -> None:
    body = _seal(pki).replace(b'<ds:Reference URI="">', b'<ds:Reference URI="#x">')
    refused = _refusal(schemas, pki, body)
    assert refused.reason == "bad_signature" and "one reference" in refused.message


def test_an_expired_signing_certificate_verifies_nothing(schemas: SchemaSet, pki: Path) -> None:
    later = _cert(pki, "hub").not_valid_after_utc + timedelta(days=1)
    refused = _refusal(schemas, pki, _seal(pki, at=later), now=later)
    assert (refused.reason, refused.reason_code) == ("certificate_not_valid", "DS0D")


def test_during_a_key_rotation_either_configured_certificate_verifies(schemas: SchemaSet, pki: Path) -> None:
    body = _seal(pki, PACS002, signer="lapnet", fr=LAPNET, to=HUB)
    apphdr.open_envelope(
        parse_untrusted(body), schemas=schemas, sender=LAPNET, receiver=HUB,
        certificates=[_cert(pki, "napas"), _cert(pki, "lapnet")], now=NOW, credt_window_s=300,
    )


def test_every_refusal_label_has_an_iso_code_and_a_4xx_status() -> None:
    for reason, (code, status) in apphdr.REFUSALS.items():
        assert len(code) == 4 and 400 <= status < 500, reason
    with pytest.raises(ValueError):
        Refused("made_up", "a label outside the fixed set is a programmer error")


def test_an_admi002_has_no_msgid_of_its_own_and_is_sealed_under_an_id_derived_from_its_content(schemas: SchemaSet, pki: Path) -> None:
    from iso20022 import admi002

    reject = admi002.build_validated(
        admi002.MessageReject(reference="RT1", reason_code="AM02", rejected_at=NOW, description="over-return"), schemas
    )
    opened = _open(schemas, pki, _seal(pki, reject))
    assert opened.header.msg_def_id == "admi.002.001.01"
    assert opened.header.biz_msg_id.startswith("J") and len(opened.header.biz_msg_id) == 35
    # the same Document sealed again carries the same id (a redelivery); another reject another id
    assert _open(schemas, pki, _seal(pki, reject)).header.biz_msg_id == opened.header.biz_msg_id
    other = admi002.build_validated(
        admi002.MessageReject(reference="RT2", reason_code="AM02", rejected_at=NOW, description="over-return"), schemas
    )
    assert _open(schemas, pki, _seal(pki, other)).header.biz_msg_id != opened.header.biz_msg_id
    # the id comes from the refused message and the reason: the same refusal at another time is
    # the same business message (a partner deduplicates it), another reason is another one
    later = admi002.build_validated(
        admi002.MessageReject(reference="RT1", reason_code="AM02", rejected_at=NOW.replace(year=2030), description="x"), schemas
    )
    other_reason = admi002.build_validated(admi002.MessageReject(reference="RT1", reason_code="NOOR"), schemas)
    assert _open(schemas, pki, _seal(pki, later)).header.biz_msg_id == opened.header.biz_msg_id
    assert _open(schemas, pki, _seal(pki, other_reason)).header.biz_msg_id != opened.header.biz_msg_id
