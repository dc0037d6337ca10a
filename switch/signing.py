"""Signed business application headers with the partner networks: the keys and certificates
from the PKI directory, and what each side needs to seal and open messages (iso20022/apphdr.py).

The switch signs every ISO message it sends a partner with the hub's signing key
(`hub/signing.key`, its certificate `hub/signing.crt` in KeyInfo), Fr = the hub's BIC, To = the
partner as its profile's [signing] names it, at send time (a fresh CreDt per attempt). It opens
every message a partner sends against that partner's configured signing certificate. A partner
whose profile has no [signing] section exchanges bare Documents.

The simulators do the same from the network's side (`partners/<p>/signing.key`, and the hub's
certificate to verify the switch). Files: `mekong pki init` makes development ones
(switch/pki.py); production supplies its own in the same layout (README, "Security").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from lxml import etree

from adapters.base import PartnerSigning
from iso20022 import apphdr
from switch.tls import existing_pki_file
from iso20022.schemas import SchemaSet
from switch import limits

HUB_SIGNING_CERT, HUB_SIGNING_KEY = "hub/signing.crt", "hub/signing.key"


class SigningSetupError(Exception):
    """The PKI directory or a profile lacks what signing needs (raised at start, naming it)."""


def _existing(pki_dir: Path, relative: str, what: str) -> Path:
    return existing_pki_file(pki_dir, relative, what, error=SigningSetupError)


def _signing_use(cert: x509.Certificate, path: Path) -> None:
    """A signing certificate must allow digital signatures (development ones add nonRepudiation)."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return  # no KeyUsage: any use
    if not (usage.digital_signature or usage.content_commitment):
        raise SigningSetupError(f"{path}: its key usage allows neither digitalSignature nor nonRepudiation")


def _certificates(pki_dir: Path, relative: str, what: str) -> tuple[x509.Certificate, ...]:
    path = _existing(pki_dir, relative, what)
    try:
        certs = apphdr.load_certificates(path, certificates_max=limits.apphdr_certificates_per_partner_max)
    except ValueError as exc:
        raise SigningSetupError(f"{what}: {exc}") from None
    for cert in certs:
        _signing_use(cert, path)
    return certs


def _key(pki_dir: Path, cert: str, key: str, what: str) -> apphdr.SigningKey:
    cert_path, key_path = _existing(pki_dir, cert, f"{what}'s signing certificate"), _existing(pki_dir, key, f"{what}'s signing key")
    try:
        signing_key = apphdr.SigningKey.load(cert_path, key_path)
    except ValueError as exc:
        raise SigningSetupError(str(exc)) from None
    _signing_use(signing_key.certificate, cert_path)
    return signing_key


@dataclass(frozen=True, slots=True)
class Counterpart:
    """The other side of signed messages: how it is named in AppHdr, the certificates its
    messages are checked against, how far its CreDt may be from our clock, whether it must sign."""

    party: apphdr.Party
    certificates: tuple[x509.Certificate, ...]
    credt_window_s: float
    required: bool = True


@dataclass(frozen=True)
class Sealer:
    """One side's signing: its key and name (Fr), and its counterparts by name (To, and the
    certificates their messages are checked against)."""

    key: apphdr.SigningKey
    me: apphdr.Party
    counterparts: Mapping[str, Counterpart]

    def signs_with(self, name: str) -> bool:
        return name in self.counterparts

    def seal(self, name: str, document: bytes, *, now: datetime, possible_duplicate: bool = False) -> bytes:
        """`document` (ours) as a business message to `name`, signed now."""
        return apphdr.seal(
            document, fr=self.me, to=self.counterparts[name].party, signer=self.key, created_at=now,
            possible_duplicate=possible_duplicate,
        )

    def open(self, name: str, root: etree._Element, *, schemas: SchemaSet, now: datetime) -> apphdr.Opened:
        """A business message from `name` (parsed from untrusted bytes), checked; raises apphdr.Refused."""
        other = self.counterparts[name]
        return apphdr.open_envelope(
            root, schemas=schemas, sender=other.party, receiver=self.me, certificates=other.certificates,
            now=now, credt_window_s=other.credt_window_s,
        )


def load_switch_signing(pki_dir: Path, hub_bic: str, partners: Mapping[str, PartnerSigning | None]) -> Sealer:
    """The switch's side for these partners (those whose profile has [signing]); names what is missing."""
    pki_dir = Path(pki_dir)
    key = _key(pki_dir, HUB_SIGNING_CERT, HUB_SIGNING_KEY, "the hub")
    counterparts = {
        partner: Counterpart(
            settings.party(),
            _certificates(pki_dir, settings.certificate, f"partner {partner}'s signing certificate"),
            settings.credt_window_s,
            settings.required,
        )
        for partner, settings in sorted(partners.items())
        if settings is not None
    }
    return Sealer(key, apphdr.Party(bicfi=hub_bic), counterparts)


def load_simulator_signing(pki_dir: Path, partner: str, settings: PartnerSigning, *, hub_bic: str) -> Sealer:
    """A partner simulator's side: the network's own signing key, the hub as its one counterpart
    ("hub"), checked against the hub's signing certificate."""
    pki_dir = Path(pki_dir)
    key = _key(pki_dir, f"partners/{partner}/signing.crt", f"partners/{partner}/signing.key", partner)
    hub = Counterpart(
        apphdr.Party(bicfi=hub_bic),
        _certificates(pki_dir, HUB_SIGNING_CERT, "the hub's signing certificate"),
        settings.credt_window_s,
    )
    return Sealer(key, settings.party(), {HUB: hub})


HUB = "hub"  # the simulators' name for their one counterpart
