"""Signed business messages: a Document in a business application header envelope
(head.001.001.02 `AppHdr`), signed with an XML digital signature, and the checks a receiver makes.

The business message on the wire (issue 8 item 2; ISO's BAH usage guide, DESIGN "Trust boundary"):

  <BizMsg xmlns="urn:mekong:xsd:bizmsg.001">          the envelope (ours: no ISO schema defines one)
    <AppHdr xmlns="urn:iso:std:iso:20022:tech:xsd:head.001.001.02">
      <Fr>, <To>          sender and receiver: FIId/FinInstnId with a BICFI or a ClrSysMmbId
      <BizMsgIdr>         the Document's message id (GrpHdr/MsgId, Assgnmt/MsgId)
      <MsgDefIdr>         the Document's type, e.g. pacs.008.001.13
      <CreDt>             when this copy was signed (UTC)
      <PssblDplct>        true on a resend of a message that may have arrived before
      <Sgntr><ds:Signature>…</ds:Signature></Sgntr>
    </AppHdr>
    <Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.13">…</Document>
  </BizMsg>

The signature (signxml: W3C XML-DSig on lxml and cryptography; no canonicalisation here) is
enveloped, placed in AppHdr/Sgntr, exclusive C14N, SHA-256 digests, ECDSA-P256-SHA256 (or
RSA-SHA256 for an RSA key), the signer's certificate in KeyInfo. It has ONE reference, URI="",
with the enveloped-signature transform: it covers the whole envelope, header and Document, less
the ds:Signature itself. The BAH usage guide's two references (the header, and the Document by a
reference without URI) cannot be made with signxml, which resolves references only by URI="" or
by an Id attribute, and neither AppHdr nor Document may carry an Id (their XSDs have no
attributes); one reference over the envelope signs the same bytes (docs/security.md).

A receiver trusts what the signature covers only after checking that the signature has exactly
that shape (so a signature over some other element cannot stand in for it), and verifies it
against the SENDER'S CONFIGURED CERTIFICATE, never against the certificate the message carries.

This module is the lower layer: it knows no partner, profile or database. Refusals are
`Refused` values with a label from a fixed set (metrics), an ISO reason code and an HTTP status.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml import SignatureConfiguration, XMLSigner, XMLVerifier
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
from signxml.exceptions import InvalidDigest, InvalidSignature, SignXMLException

from iso20022.errors import SchemaViolation, XmlRejected
from iso20022.parsing import ISO_NAMESPACE_PREFIX, message_id_of, safe_parser
from iso20022.schemas import SchemaSet

HEAD_VERSION: Final = "head.001.001.02"
HEAD_NAMESPACE: Final = ISO_NAMESPACE_PREFIX + HEAD_VERSION
ENVELOPE_NAMESPACE: Final = "urn:mekong:xsd:bizmsg.001"
ENVELOPE_TAG: Final = "BizMsg"
DS_NAMESPACE: Final = "http://www.w3.org/2000/09/xmldsig#"
_ENVELOPE: Final = f"{{{ENVELOPE_NAMESPACE}}}{ENVELOPE_TAG}"
_APPHDR: Final = f"{{{HEAD_NAMESPACE}}}AppHdr"
_DS: Final = {"ds": DS_NAMESPACE}

EXC_C14N: Final = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
ENVELOPED: Final = SignatureConstructionMethod.enveloped
# what a receiver accepts: issue 8 names RSA-SHA256 and ECDSA-P256 (SHA-256), nothing weaker
SIGNATURE_METHODS: Final = frozenset({SignatureMethod.ECDSA_SHA256, SignatureMethod.RSA_SHA256})
DIGEST_METHODS: Final = frozenset({DigestAlgorithm.SHA256})


# ---------------------------------------------------------------------------- refusals

# label (a metric label: fixed set) -> (ISO external status reason code, HTTP status). Why these
# codes: docs/security.md "Signed business application headers".
REFUSALS: Final[dict[str, tuple[str, int]]] = {
    "no_header": ("DS0A", 400),  # DataSignRequested: a bare Document, no envelope and AppHdr
    "header_invalid": ("FF01", 400),  # InvalidFileFormat: the envelope or AppHdr does not validate
    "header_mismatch": ("FF01", 400),  # MsgDefIdr / BizMsgIdr do not name the Document carried
    "from_not_partner": ("AG01", 403),  # TransactionForbidden: Fr is not the caller (as a wrong certificate)
    "to_not_hub": ("AGNT", 403),  # IncorrectAgent: addressed to another party
    "no_signature": ("DS0A", 403),  # DataSignRequested: AppHdr without Sgntr
    "bad_signature": ("DS0B", 403),  # UnknownDataSignFormat: not the agreed form, or does not verify (altered)
    "wrong_key": ("DS0E", 403),  # IncorrectSignerCertificate: signed, but not with the sender's agreed key
    "certificate_not_valid": ("DS0D", 403),  # SignerCertificateNotValid: the agreed certificate expired / not yet valid
    "credt_outside_window": ("DT02", 400),  # InvalidCreationDate: CreDt too old, ahead, or without offset
    "replayed": ("DU01", 409),  # DuplicateMessageID: a known BizMsgIdr with another Document
}


class Refused(Exception):
    """A business message refused: `reason` is a label of REFUSALS, `message` says why (it names
    no secret and at most a few identifiers from the message)."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REFUSALS:
            raise ValueError(f"unknown refusal {reason!r}")  # a programmer error, not a client's
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.reason_code, self.http_status = REFUSALS[reason]


# ---------------------------------------------------------------------------- parties and header


def _bic11(bic: str) -> str:
    """BIC8 and BIC8 + XXX name the same institution."""
    return bic + "XXX" if len(bic) == 8 else bic


@dataclass(frozen=True, slots=True)
class Party:
    """Fr or To of an AppHdr: FIId/FinInstnId with a BICFI, or a clearing-system member id (with
    its ClrSysId code or proprietary id)."""

    bicfi: str | None = None
    member_id: str | None = None
    system_code: str | None = None
    system_proprietary: str | None = None

    def __post_init__(self) -> None:
        if (self.bicfi is None) == (self.member_id is None):
            raise ValueError("a party is a BICFI or a clearing-system member id, exactly one")
        if self.system_code is not None and self.system_proprietary is not None:
            raise ValueError("ClrSysId is a code or a proprietary id, not both")

    def same_as(self, other: Party) -> bool:
        return self._key() == other._key()

    def _key(self) -> tuple[str | None, ...]:
        bic = _bic11(self.bicfi.upper()) if self.bicfi else None
        return (bic, self.member_id, self.system_code, self.system_proprietary)

    def __str__(self) -> str:
        if self.bicfi is not None:
            return f"BIC {self.bicfi}"
        system = self.system_code or self.system_proprietary
        return f"member {self.member_id}" + (f" of {system}" if system else "")


@dataclass(frozen=True, slots=True)
class Header:
    fr: Party
    to: Party
    biz_msg_id: str
    msg_def_id: str
    created_at: datetime
    possible_duplicate: bool = False


def _h(tag: str) -> str:
    return f"{{{HEAD_NAMESPACE}}}{tag}"


def _party_element(parent: etree._Element, tag: str, party: Party) -> None:
    fi = etree.SubElement(etree.SubElement(etree.SubElement(parent, _h(tag)), _h("FIId")), _h("FinInstnId"))
    if party.bicfi is not None:
        etree.SubElement(fi, _h("BICFI")).text = party.bicfi
        return
    member = etree.SubElement(fi, _h("ClrSysMmbId"))
    if party.system_code is not None or party.system_proprietary is not None:
        system = etree.SubElement(member, _h("ClrSysId"))
        if party.system_code is not None:
            etree.SubElement(system, _h("Cd")).text = party.system_code
        else:
            etree.SubElement(system, _h("Prtry")).text = party.system_proprietary
    etree.SubElement(member, _h("MmbId")).text = party.member_id


def _party_of(element: etree._Element | None) -> Party | None:
    """The party of a validated Fr / To; None when it is not one this contract knows (an OrgId,
    or a FinInstnId with neither BICFI nor ClrSysMmbId)."""
    if element is None:
        return None
    fi = element.find(f"{_h('FIId')}/{_h('FinInstnId')}")
    if fi is None:
        return None
    bic = fi.findtext(_h("BICFI"))
    if bic is not None:
        return Party(bicfi=bic)
    member = fi.find(_h("ClrSysMmbId"))
    if member is None:
        return None
    return Party(
        member_id=member.findtext(_h("MmbId")),
        system_code=member.findtext(f"{_h('ClrSysId')}/{_h('Cd')}"),
        system_proprietary=member.findtext(f"{_h('ClrSysId')}/{_h('Prtry')}"),
    )


def utc_text(at: datetime) -> str:
    """ISODateTime in UTC with milliseconds: 2026-11-30T10:00:00.123Z."""
    if at.tzinfo is None:
        raise ValueError("naive datetime")
    return at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def document_message_id(document: etree._Element) -> str | None:
    """The business message id a Document carries: <message>/GrpHdr/MsgId (pacs, pain, camt.05x)
    or <message>/Assgnmt/MsgId (acmt); None when it has none there."""
    message = next(iter(document), None)
    header = next(iter(message), None) if message is not None else None
    if header is None:
        return None
    namespace = etree.QName(document).namespace
    found = header.findtext(f"{{{namespace}}}MsgId")
    if found is None and etree.QName(message).localname.startswith("admi.002"):
        # an admi.002 carries no id of its own (RltdRef/Ref names the message it rejects): its
        # id is derived from its content, the same for sender and receiver (exclusive C14N)
        return "J" + hashlib.sha256(etree.tostring(document, method="c14n", exclusive=True)).hexdigest()[:34]
    return found


# ---------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class SigningKey:
    """The sender's signing key and certificate (the certificate goes in KeyInfo)."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def method(self) -> SignatureMethod:
        return SignatureMethod.RSA_SHA256 if isinstance(self.key, rsa.RSAPrivateKey) else SignatureMethod.ECDSA_SHA256

    @classmethod
    def load(cls, certificate: Path, key: Path) -> SigningKey:
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        if isinstance(private, ec.EllipticCurvePrivateKey):
            if not isinstance(private.curve, ec.SECP256R1):
                raise ValueError(f"{key}: ECDSA signing keys are P-256, not {private.curve.name}")
        elif not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError(f"{key}: a signing key is ECDSA P-256 or RSA, not {type(private).__name__}")
        cert = x509.load_pem_x509_certificate(certificate.read_bytes())
        if cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != (
            private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ):
            raise ValueError(f"{certificate} is not the certificate of the key in {key}")
        return cls(private, cert)


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_certificates(path: Path, *, certificates_max: int) -> tuple[x509.Certificate, ...]:
    """The signing certificate(s) a sender is known by: one PEM file, the current certificate and,
    during a key rotation, the next (at most `certificates_max`)."""
    certs = tuple(x509.load_pem_x509_certificates(path.read_bytes()))
    if not certs:
        raise ValueError(f"{path} holds no certificate")
    if len(certs) > certificates_max:
        raise ValueError(f"{path} holds {len(certs)} certificates; at most {certificates_max}")
    return certs


# ---------------------------------------------------------------------------- sealing (sender)


def seal(
    document: bytes,
    *,
    fr: Party,
    to: Party,
    signer: SigningKey,
    created_at: datetime,
    possible_duplicate: bool = False,
) -> bytes:
    """The signed business message (UTF-8 bytes) carrying `document`, one of the sender's own
    Documents (a stored pacs.008: byte for byte, less its XML declaration, inside the envelope).
    BizMsgIdr and MsgDefIdr are read from the Document; CreDt is `created_at`."""
    doc = etree.fromstring(document, safe_parser())
    msg_id = document_message_id(doc)
    if msg_id is None:
        raise ValueError("the Document has no message id (GrpHdr/MsgId or Assgnmt/MsgId)")
    envelope = etree.Element(_ENVELOPE, nsmap={None: ENVELOPE_NAMESPACE})
    header = etree.SubElement(envelope, _APPHDR, nsmap={None: HEAD_NAMESPACE})
    _party_element(header, "Fr", fr)
    _party_element(header, "To", to)
    etree.SubElement(header, _h("BizMsgIdr")).text = msg_id
    etree.SubElement(header, _h("MsgDefIdr")).text = message_id_of(doc)
    etree.SubElement(header, _h("CreDt")).text = utc_text(created_at)
    if possible_duplicate:
        etree.SubElement(header, _h("PssblDplct")).text = "true"
    sgntr = etree.SubElement(header, _h("Sgntr"))
    # signxml puts the signature where this placeholder is (and leaves it out of the digest)
    etree.SubElement(sgntr, f"{{{DS_NAMESPACE}}}Signature", Id="placeholder", nsmap={"ds": DS_NAMESPACE})
    envelope.append(doc)
    signed = XMLSigner(
        method=ENVELOPED, signature_algorithm=signer.method, digest_algorithm=DigestAlgorithm.SHA256, c14n_algorithm=EXC_C14N
    ).sign(envelope, key=signer.key, cert=[signer.certificate])
    return etree.tostring(signed, encoding="UTF-8", xml_declaration=True)


# ---------------------------------------------------------------------------- opening (receiver)


@dataclass(frozen=True, slots=True)
class Opened:
    """A business message whose header and signature were checked."""

    header: Header
    document: etree._Element  # the Document element (inside the envelope)
    document_bytes: bytes  # its exclusive C14N: the same bytes for the same Document, whatever the envelope
    document_sha256: str  # hex, of document_bytes: what the replay rule compares


def is_envelope(root: etree._Element) -> bool:
    return root.tag == _ENVELOPE


def open_envelope(
    root: etree._Element,
    *,
    schemas: SchemaSet,
    sender: Party,
    receiver: Party,
    certificates: Sequence[x509.Certificate],
    now: datetime,
    credt_window_s: float,
) -> Opened:
    """Check a business message parsed from untrusted bytes (iso20022.parsing.parse_untrusted),
    in this order: the envelope and AppHdr (head.001.001.02 XSD), the header against the Document
    (MsgDefIdr, BizMsgIdr), Fr = `sender`, To = `receiver`, the signature (its shape, then the
    signature itself against `certificates`, the sender's configured ones), CreDt within
    `credt_window_s` of `now`. Raises Refused; the Document itself is not validated here (the
    caller validates it against its own XSD as before)."""
    if not is_envelope(root):
        namespace = etree.QName(root).namespace or ""
        what = "a bare Document" if namespace.startswith(ISO_NAMESPACE_PREFIX) else f"<{etree.QName(root).localname}>"
        raise Refused("no_header", f"{what} without a business application header: send <{ENVELOPE_TAG} xmlns=\"{ENVELOPE_NAMESPACE}\"> with AppHdr and Document")
    children = [c for c in root if isinstance(c.tag, str)]
    if (
        root.attrib
        or (root.text or "").strip()
        or len(children) != 2
        or children[0].tag != _APPHDR
        or not (etree.QName(children[1]).namespace or "").startswith(ISO_NAMESPACE_PREFIX)
        or etree.QName(children[1]).localname != "Document"
        or any((c.tail or "").strip() for c in children)
    ):
        raise Refused("header_invalid", f"<{ENVELOPE_TAG}> must hold exactly AppHdr ({HEAD_VERSION}) then Document, nothing else")
    apphdr, document = children
    try:
        schemas.validate(apphdr, HEAD_VERSION)
    except SchemaViolation as exc:
        raise Refused("header_invalid", f"AppHdr does not validate against {HEAD_VERSION}: {'; '.join(exc.errors[:2])}"[:300]) from None
    header = _read_header(apphdr)
    try:
        document_type = message_id_of(document)
    except XmlRejected as exc:
        raise Refused("header_invalid", exc.message) from None
    if header.msg_def_id != document_type:
        raise Refused("header_mismatch", f"MsgDefIdr {header.msg_def_id[:35]!r} but the Document is {document_type}")
    document_msg_id = document_message_id(document)
    if header.biz_msg_id != document_msg_id:
        raise Refused("header_mismatch", f"BizMsgIdr {header.biz_msg_id!r} but the Document's message id is {document_msg_id!r}")
    if not header.fr.same_as(sender):
        raise Refused("from_not_partner", f"Fr is {header.fr}, not the caller ({sender})")
    if not header.to.same_as(receiver):
        raise Refused("to_not_hub", f"To is {header.to}, not {receiver}")
    _verify_signature(root, apphdr, certificates, now)
    if header.created_at.tzinfo is None:
        raise Refused("credt_outside_window", "CreDt must carry its UTC offset")
    skew_s = (now - header.created_at).total_seconds()
    if abs(skew_s) > credt_window_s:
        when = "old" if skew_s > 0 else "ahead"
        raise Refused("credt_outside_window", f"CreDt {utc_text(header.created_at)} is {abs(skew_s):.0f} s {when}; the window is {credt_window_s:g} s")
    canonical = etree.tostring(document, method="c14n", exclusive=True)
    return Opened(header, document, canonical, hashlib.sha256(canonical).hexdigest())


def _read_header(apphdr: etree._Element) -> Header:
    """The fields of an AppHdr that validated against head.001.001.02."""
    fr, to = _party_of(apphdr.find(_h("Fr"))), _party_of(apphdr.find(_h("To")))
    if fr is None or to is None:
        raise Refused("header_invalid", "Fr and To must be FIId/FinInstnId with a BICFI or a ClrSysMmbId")
    created = apphdr.findtext(_h("CreDt")) or ""
    try:
        created_at = datetime.fromisoformat(created)
    except ValueError:
        raise Refused("header_invalid", f"CreDt {created[:40]!r} is not a date and time") from None
    return Header(
        fr=fr,
        to=to,
        biz_msg_id=apphdr.findtext(_h("BizMsgIdr")) or "",
        msg_def_id=apphdr.findtext(_h("MsgDefIdr")) or "",
        created_at=created_at,
        possible_duplicate=(apphdr.findtext(_h("PssblDplct")) or "").strip() in ("true", "1"),
    )


def _signature_shape(signature: etree._Element) -> str | None:
    """What is wrong with the signature's shape (None: it is the agreed one): exclusive C14N,
    one reference URI="" with exactly the enveloped-signature and exclusive C14N transforms."""
    c14n = signature.find("ds:SignedInfo/ds:CanonicalizationMethod", _DS)
    if c14n is None or c14n.get("Algorithm") != EXC_C14N.value:
        return "SignedInfo is not canonicalised with exclusive C14N"
    references = signature.findall("ds:SignedInfo/ds:Reference", _DS)
    if len(references) != 1 or references[0].get("URI") != "":
        return 'the signature must have one reference, URI="" (the whole business message)'
    transforms = [t.get("Algorithm") for t in references[0].findall("ds:Transforms/ds:Transform", _DS)]
    if transforms != [ENVELOPED.value, EXC_C14N.value]:
        return "the reference's transforms must be enveloped-signature then exclusive C14N"
    return None


def _verify_signature(root: etree._Element, apphdr: etree._Element, certificates: Sequence[x509.Certificate], now: datetime) -> None:
    sgntr = apphdr.find(_h("Sgntr"))
    if sgntr is None:
        raise Refused("no_signature", "AppHdr has no Sgntr: the message is not signed")
    signature = sgntr.find("ds:Signature", _DS)
    if signature is None:
        raise Refused("bad_signature", "Sgntr holds no ds:Signature")
    problem = _signature_shape(signature)
    if problem is not None:
        raise Refused("bad_signature", problem)
    valid = [c for c in certificates if c.not_valid_before_utc <= now <= c.not_valid_after_utc]
    if not valid:
        raise Refused("certificate_not_valid", "the sender's signing certificate is expired or not yet valid")
    config = SignatureConfiguration(
        location=f"./{_APPHDR}/{_h('Sgntr')}/",  # the signature is AppHdr/Sgntr/ds:Signature, nowhere else
        expect_references=1,
        signature_methods=SIGNATURE_METHODS,
        digest_algorithms=DIGEST_METHODS,
        verification_time=now,  # the caller's clock, as for CreDt (signxml would read its own)
    )
    last: SignXMLException | None = None
    for certificate in valid:  # the current certificate, and the next one during a rotation
        try:
            XMLVerifier().verify(root, x509_cert=certificate, expect_config=config, parser=safe_parser())
            return
        except InvalidDigest:  # the key is right and the bytes are not those it signed
            raise Refused("bad_signature", "the message was altered after it was signed (digest mismatch)") from None
        except SignXMLException as exc:
            last = exc
        except (ValueError, TypeError) as exc:  # an unreadable SignatureValue (base64, length)
            last = InvalidSignature(str(exc))
    carried = _carried_certificate(signature)
    if isinstance(last, InvalidSignature) and carried is not None and all(_spki(carried) != _spki(c) for c in certificates):
        raise Refused("wrong_key", f"signed with the key of {carried.subject.rfc4514_string()[:120]!r}, not the sender's signing certificate")
    raise Refused("bad_signature", f"the signature does not verify with the sender's signing certificate ({type(last).__name__})")


def _carried_certificate(signature: etree._Element) -> x509.Certificate | None:
    """The first certificate in KeyInfo (only to say whose key signed a refused message)."""
    text = signature.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=_DS)
    if not text:
        return None
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    except ValueError:
        return None
