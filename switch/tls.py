"""Mutual TLS with the partner networks: the SSL contexts and the partner-identity check.

Inbound (the partner port): the switch serves TLS with the hub's certificate and requires a client
certificate that chains to one of the partners' CA bundles. Which partner is calling is then
decided by the certificate alone: the partner whose profile names it (subject CN and/or pinned
SPKI SHA-256, issued by a CA of that partner's bundle). The `{partner}` of the path must be that
partner (switch/entrypoints/http_app.py).

Outbound: one client context per partner, presenting the hub's certificate and trusting only that
partner's CA bundle, so a server with another network's certificate is refused at the handshake.

Files are read from the PKI directory (`mekong pki init` writes a development one, switch/pki.py);
profile paths are relative to it.
"""

from __future__ import annotations

import hashlib
import ssl
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from switch import limits

HUB_CERT, HUB_KEY, HUB_CA = "hub/hub.crt", "hub/hub.key", "hub/ca.crt"
# The operations port: its server certificate, and the CA whose client certificates it accepts
OPS_CERT, OPS_KEY, OPS_CLIENT_CA = "ops/ops.crt", "ops/ops.key", "ops/ca.crt"


class TlsSetupError(Exception):
    """The PKI directory or a profile lacks what TLS needs (raised at start, with what is missing)."""


def existing_pki_file(pki_dir: Path, relative: str, what: str, *, error: type[Exception] = TlsSetupError) -> Path:
    """pki_dir/relative, or `error` naming `what` and how to make a development PKI."""
    path = pki_dir / relative
    if not path.is_file():
        raise error(
            f"{what}: {path} is missing (make a development PKI with `mekong pki init {pki_dir}`, "
            "or run with --insecure-dev)"
        )
    return path


def _existing(pki_dir: Path, relative: str, what: str) -> Path:
    return existing_pki_file(pki_dir, relative, what)


def server_context(cert: Path, key: Path, client_cas: list[Path]) -> ssl.SSLContext:
    """TLS server that requires a client certificate chaining to one of `client_cas`."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    for ca in client_cas:
        ctx.load_verify_locations(cafile=str(ca))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(cert: Path, key: Path, server_ca: Path) -> ssl.SSLContext:
    """TLS client presenting `cert` and trusting only `server_ca` (host name checked)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server_ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def spki_sha256_of_der(der: bytes) -> tuple[x509.Certificate, str]:
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert, hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True, slots=True)
class PartnerIdentity:
    """What a partner's profile accepts: subject CN and/or SPKI pins, issued by its CA bundle."""

    partner: str
    subject_cn: str | None
    spki_sha256: frozenset[str]
    cas: tuple[x509.Certificate, ...]

    def accepts(self, cert: x509.Certificate, fingerprint: str) -> bool:
        if self.subject_cn is not None:
            cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
            if cns != [self.subject_cn]:
                return False
        if self.spki_sha256 and fingerprint not in self.spki_sha256:
            return False
        return any(_issued_by(cert, ca) for ca in self.cas)


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (InvalidSignature, ValueError, TypeError):  # not this CA (or not its key type)
        return False


class PartnerAuthenticator:
    """Maps a verified peer certificate (DER) to the one partner it identifies, or None. Answers
    are cached per certificate (bounded: limits.tls_identity_cache_max), as partners keep their
    connections open and send the same certificate on every request."""

    def __init__(self, identities: list[PartnerIdentity]) -> None:
        self._identities = identities
        self._cache: OrderedDict[bytes, str | None] = OrderedDict()

    def partner_of(self, der: bytes) -> str | None:
        key = hashlib.sha256(der).digest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        cert, fingerprint = spki_sha256_of_der(der)
        matches = [i.partner for i in self._identities if i.accepts(cert, fingerprint)]
        found = matches[0] if len(matches) == 1 else None  # a certificate naming two partners names none
        self._cache[key] = found
        if len(self._cache) > limits.tls_identity_cache_max:
            self._cache.popitem(last=False)
        return found


@dataclass(frozen=True, slots=True)
class PartnerTlsSettings:
    """A profile's [tls] section, as the switch needs it (adapters/base.py PartnerTls)."""

    subject_cn: str | None
    spki_sha256: tuple[str, ...]
    ca_bundle: str


@dataclass(frozen=True, slots=True)
class SwitchTls:
    server: ssl.SSLContext  # the partner port
    clients: Mapping[str, ssl.SSLContext]  # per partner, for outbound calls
    authenticator: PartnerAuthenticator


def load_switch_tls(pki_dir: Path, partners: Mapping[str, PartnerTlsSettings | None]) -> SwitchTls:
    """The switch's contexts for these partners; TlsSetupError names what is missing."""
    pki_dir = Path(pki_dir)
    cert = _existing(pki_dir, HUB_CERT, "the hub's certificate")
    key = _existing(pki_dir, HUB_KEY, "the hub's key")
    identities: list[PartnerIdentity] = []
    clients: dict[str, ssl.SSLContext] = {}
    bundles: list[Path] = []
    for partner, settings in sorted(partners.items()):
        if settings is None:
            raise TlsSetupError(f"partner {partner}: its profile has no [tls] section (subject_cn / spki_sha256, ca_bundle)")
        bundle = _existing(pki_dir, settings.ca_bundle, f"partner {partner}'s CA bundle")
        bundles.append(bundle)
        cas = tuple(x509.load_pem_x509_certificates(bundle.read_bytes()))
        identities.append(
            PartnerIdentity(partner, settings.subject_cn, frozenset(p.lower() for p in settings.spki_sha256), cas)
        )
        clients[partner] = client_context(cert, key, bundle)
    return SwitchTls(server_context(cert, key, bundles), clients, PartnerAuthenticator(identities))


@dataclass(frozen=True, slots=True)
class OpsTls:
    server: ssl.SSLContext  # the operations port
    client_certificates: bool  # whether a client certificate is asked for (ops/ca.crt is there)


def load_ops_tls(pki_dir: Path) -> OpsTls:
    """The operations port's TLS: its own certificate, and client certificates asked for but not
    required (CERT_OPTIONAL), verified against the operations client CA when one is presented (a
    certificate from any other CA fails the handshake). Who a verified certificate is, and what it
    may do, is api_auth's to say; without one, a bearer token is needed. Without ops/ca.crt no
    client certificate is asked for (tokens only)."""
    pki_dir = Path(pki_dir)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(_existing(pki_dir, OPS_CERT, "the operations port's certificate"),
                        _existing(pki_dir, OPS_KEY, "the operations port's key"))
    client_ca = pki_dir / OPS_CLIENT_CA
    if client_ca.is_file():
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return OpsTls(ctx, client_ca.is_file())


def ops_client_context(pki_dir: Path, client: str | None = None) -> ssl.SSLContext:
    """For tools and tests that call the operations port: trusting its development CA (host name
    checked), presenting the development client certificate `client` (operator, auditor, monitor,
    a participant's code; None: none, a bearer token then)."""
    pki_dir = Path(pki_dir)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(_existing(pki_dir, OPS_CLIENT_CA, "the operations CA")))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if client is not None:
        ctx.load_cert_chain(_existing(pki_dir, f"ops/clients/{client}.crt", f"{client}'s operations certificate"),
                            _existing(pki_dir, f"ops/clients/{client}.key", f"{client}'s operations key"))
    return ctx


@dataclass(frozen=True, slots=True)
class SimulatorTls:
    server: ssl.SSLContext  # serves the network's ISO endpoint, requires the hub's client certificate
    client: ssl.SSLContext  # calls the switch back with the network's certificate


def load_simulator_tls(pki_dir: Path, partner: str) -> SimulatorTls:
    """A partner simulator's contexts: its own certificate both ways, trusting the hub's CA."""
    pki_dir = Path(pki_dir)
    cert = _existing(pki_dir, f"partners/{partner}/{partner}.crt", f"{partner}'s certificate")
    key = _existing(pki_dir, f"partners/{partner}/{partner}.key", f"{partner}'s key")
    hub_ca = _existing(pki_dir, HUB_CA, "the hub's CA")
    return SimulatorTls(server_context(cert, key, [hub_ca]), client_context(cert, key, hub_ca))


def operator_client_context(pki_dir: Path) -> ssl.SSLContext:
    """For development tools that talk to the simulators' ISO endpoints as the hub would."""
    pki_dir = Path(pki_dir)
    ctx = client_context(_existing(pki_dir, HUB_CERT, "the hub's certificate"), _existing(pki_dir, HUB_KEY, "the hub's key"),
                         _existing(pki_dir, HUB_CA, "the hub's CA"))
    for bundle in sorted(pki_dir.glob("partners/*/ca-bundle.crt")):
        ctx.load_verify_locations(cafile=str(bundle))
    return ctx
