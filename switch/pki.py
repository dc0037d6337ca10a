"""`mekong pki init DIR`: a development PKI for the switch, its partners and its participants.

What it makes (paths relative to DIR, all listed with subjects and SPKI fingerprints in
manifest.json):

  hub/ca.crt, hub/ca.key            the hub's development CA (the simulators trust it)
  hub/hub.crt, hub/hub.key          the hub: server auth on the partner port, client auth outbound
  partners/<p>/ca.crt, ca.key       the network's own development CA (one per network, as in
                                    production every network runs its own PKI)
  partners/<p>/ca-bundle.crt        what the switch trusts for that network (its CA certificate)
  partners/<p>/<p>.crt, <p>.key     the network: client auth (calls to the switch) and server auth
                                    (the switch calls it)
  hub/signing.crt, hub/signing.key  the hub's signing certificate and key (the AppHdr signature on
                                    every ISO message it sends; key usage digitalSignature and
                                    nonRepudiation only, apart from its TLS key)
  partners/<p>/signing.crt, .key    the network's signing certificate and key (its profile's
                                    [signing] certificate; the simulator signs with the key)
  participants/<code>.key, .pub     an Ed25519 key pair per Bakong participant (PKCS#8 / SPKI PEM):
                                    it signs the participant's Kafka records; the manifest gives
                                    each key's id (switch/kafka_auth.py `key_id_of`)
  ops/ca.crt, ca.key                the operations port's development CA: it issues the port's server
                                    certificate and the client certificates below, and the port
                                    accepts client certificates it issued
  ops/ops.crt, ops.key              the operations port (/v1, /metrics, health): server auth
  ops/clients/<name>.crt, .key      client certificates for the operations port (client auth only):
                                    operator, auditor, monitor (Prometheus) and one per participant
                                    (<code>); config/operators.toml maps their subject CNs to roles

TLS and signing keys are ECDSA P-256. Private keys are written 0600 and never printed. Nothing here is for
production: production supplies its own certificates in the same layout (README, "Security").
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from switch.kafka_auth import key_id_of

ca_validity_days = 3650
leaf_validity_days = 825
HUB_CN = "hub.mekong.test"
HUB_SIGNING_CN = "signing.hub.mekong.test"
MANIFEST = "manifest.json"


def partner_cn(partner: str) -> str:
    """The certificate subject CN a shipped partner profile pins (config/partners/*.toml [tls])."""
    return f"{partner}.partner.mekong.test"


def partner_signing_cn(partner: str) -> str:
    """The subject CN of a partner's development signing certificate."""
    return f"signing.{partner}.partner.mekong.test"


OPS_CN = "ops.mekong.test"
OPS_CLIENT_ROLES = ("operator", "auditor", "monitor")  # and one certificate per participant


def ops_client_cn(name: str) -> str:
    """The subject CN of a development client certificate for the operations port, as the shipped
    config/operators.toml maps it to a role: `operator.ops.mekong.test`,
    `ACLBKHPPXXX.participant.ops.mekong.test`."""
    return f"{name}.ops.mekong.test" if name in OPS_CLIENT_ROLES else f"{name}.participant.ops.mekong.test"


class PkiExists(Exception):
    """DIR already holds a PKI; refused without --force."""


def spki_sha256(cert: x509.Certificate) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex: what a profile pins."""
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True, slots=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str, org: str, *, now: datetime) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(cn, org)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=ca_validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


BOTH_ENDS = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


def make_leaf(
    ca: Issued, cn: str, org: str, *, now: datetime, dns: tuple[str, ...] = ("localhost",),
    usages: tuple[x509.ObjectIdentifier, ...] = BOTH_ENDS,
) -> Issued:
    """A certificate for both ends of TLS (server and client auth; `usages` narrows it), valid for
    `cn`, the `dns` names and 127.0.0.1 (the development stack runs on loopback)."""
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(cn), *(x509.DNSName(d) for d in dns), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        _leaf_builder(ca, cn, org, key, now=now, non_repudiation=False)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def make_signing_leaf(ca: Issued, cn: str, org: str, *, now: datetime) -> Issued:
    """A certificate for XML signatures only (the AppHdr signature): key usage digitalSignature
    and nonRepudiation (contentCommitment), no TLS use, a key of its own."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _leaf_builder(ca, cn, org, key, now=now, non_repudiation=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def _leaf_builder(
    ca: Issued, cn: str, org: str, key: ec.EllipticCurvePrivateKey, *, now: datetime, non_repudiation: bool
) -> x509.CertificateBuilder:
    """What every leaf `ca` issues has: subject, validity, not a CA, digitalSignature (and
    nonRepudiation for a signing certificate) as its only key usages."""
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=leaf_validity_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=non_repudiation,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def partners_of(config_dir: Path) -> list[str]:
    return sorted(p.stem for p in (config_dir / "partners").glob("*.toml"))


def participants_of(config_dir: Path) -> list[str]:
    with (config_dir / "participants.toml").open("rb") as fh:
        return [p["code"] for p in tomllib.load(fh)["participants"]]


def init_pki(
    directory: Path,
    *,
    config_dir: Path,
    now: datetime,
    force: bool = False,
    hub_dns: tuple[str, ...] = (),
    partner_dns: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Write a development PKI into `directory` for the partners and participants of
    `config_dir`; the manifest (also written as manifest.json). Raises PkiExists when the
    directory already has a manifest and `force` is false. `hub_dns` adds host names to the hub's
    certificate, `partner_dns` to each partner's ("{partner}" is replaced: "{partner}-sim"), for
    stacks whose hosts are not localhost (deploy/compose.yaml)."""
    directory = Path(directory)
    if (directory / MANIFEST).exists() and not force:
        raise PkiExists(f"{directory} already holds a PKI ({MANIFEST}); pass --force to replace it")
    directory.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []

    def record(kind: str, owner: str, cert: x509.Certificate, cert_path: str, key_path: str | None) -> None:
        entries.append({
            "kind": kind, "owner": owner, "certificate": cert_path, "key": key_path,
            "subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "spki_sha256": spki_sha256(cert), "not_after": cert.not_valid_after_utc.isoformat(),
        })

    def save(issued: Issued, cert_path: str, key_path: str) -> None:
        _write(directory / cert_path, _cert_pem(issued.cert))
        _write(directory / key_path, _key_pem(issued.key), private=True)

    hub_ca = make_ca("Mekong Switch development hub CA", "Mekong Switch (development)", now=now)
    save(hub_ca, "hub/ca.crt", "hub/ca.key")
    record("ca", "hub", hub_ca.cert, "hub/ca.crt", "hub/ca.key")
    hub = make_leaf(hub_ca, HUB_CN, "Mekong Switch (development)", now=now, dns=("localhost", *hub_dns))
    save(hub, "hub/hub.crt", "hub/hub.key")
    record("tls", "hub", hub.cert, "hub/hub.crt", "hub/hub.key")
    hub_signing = make_signing_leaf(hub_ca, HUB_SIGNING_CN, "Mekong Switch (development)", now=now)
    save(hub_signing, "hub/signing.crt", "hub/signing.key")
    record("signing", "hub", hub_signing.cert, "hub/signing.crt", "hub/signing.key")

    for partner in partners_of(config_dir):
        base = f"partners/{partner}"
        ca = make_ca(f"{partner} development CA", f"{partner} (development)", now=now)
        save(ca, f"{base}/ca.crt", f"{base}/ca.key")
        _write(directory / f"{base}/ca-bundle.crt", _cert_pem(ca.cert))
        record("ca", partner, ca.cert, f"{base}/ca.crt", f"{base}/ca.key")
        names = ("localhost", *(t.replace("{partner}", partner) for t in partner_dns))
        leaf = make_leaf(ca, partner_cn(partner), f"{partner} (development)", now=now, dns=names)
        save(leaf, f"{base}/{partner}.crt", f"{base}/{partner}.key")
        record("tls", partner, leaf.cert, f"{base}/{partner}.crt", f"{base}/{partner}.key")
        signing = make_signing_leaf(ca, partner_signing_cn(partner), f"{partner} (development)", now=now)
        save(signing, f"{base}/signing.crt", f"{base}/signing.key")
        record("signing", partner, signing.cert, f"{base}/signing.crt", f"{base}/signing.key")

    _ops_certificates(save, record, now=now, dns=hub_dns, participants=participants_of(config_dir))

    participants: list[dict[str, Any]] = []
    for code in participants_of(config_dir):
        key = ed25519.Ed25519PrivateKey.generate()
        public_der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        _write(directory / f"participants/{code}.key", _key_pem(key), private=True)
        _write(
            directory / f"participants/{code}.pub",
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        )
        participants.append({
            "participant": code, "algorithm": "Ed25519", "key": f"participants/{code}.key",
            "public_key": f"participants/{code}.pub", "key_id": key_id_of(key.public_key()),
            "spki_sha256": hashlib.sha256(public_der).hexdigest(),
        })

    manifest = {
        "created_at": now.isoformat(),
        "purpose": "development only: production supplies its own certificates and keys in this layout",
        "hub": {
            "certificate": "hub/hub.crt", "key": "hub/hub.key", "ca": "hub/ca.crt",
            "signing_certificate": "hub/signing.crt", "signing_key": "hub/signing.key",
        },
        "certificates": entries,
        "participants": participants,
    }
    _write(directory / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def _ops_certificates(save: Any, record: Any, *, now: datetime, dns: tuple[str, ...], participants: list[str]) -> None:
    """The operations port's CA, its server certificate (also for the `dns` names the hub gets),
    and client certificates: one per role the shipped operators.toml maps, one per participant.
    A client certificate is for client auth only, so it can never serve as the port."""
    org = "Mekong Switch operations (development)"
    ca = make_ca("Mekong Switch development operations CA", org, now=now)
    save(ca, "ops/ca.crt", "ops/ca.key")
    record("ca", "ops", ca.cert, "ops/ca.crt", "ops/ca.key")
    server = make_leaf(ca, OPS_CN, org, now=now, dns=("localhost", *dns), usages=(ExtendedKeyUsageOID.SERVER_AUTH,))
    save(server, "ops/ops.crt", "ops/ops.key")
    record("ops-server", "ops", server.cert, "ops/ops.crt", "ops/ops.key")
    for name in (*OPS_CLIENT_ROLES, *participants):
        client = make_leaf(ca, ops_client_cn(name), org, now=now, dns=(), usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
        save(client, f"ops/clients/{name}.crt", f"ops/clients/{name}.key")
        record("ops-client", name, client.cert, f"ops/clients/{name}.crt", f"ops/clients/{name}.key")
