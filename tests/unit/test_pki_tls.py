"""The development PKI (`mekong pki init`) and the partner-identity check of mutual TLS."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from switch.config import DEFAULT_CONFIG_DIR
from switch.pki import Issued, PkiExists, init_pki, make_ca, make_leaf, partner_cn, spki_sha256
from switch.tls import (
    PartnerAuthenticator,
    PartnerIdentity,
    PartnerTlsSettings,
    TlsSetupError,
    load_simulator_tls,
    load_switch_tls,
)

NOW = datetime(2026, 11, 28, tzinfo=timezone.utc)
PARTNERS = ("lapnet", "napas", "promptpay", "unionpay")
OPS_CLIENTS = ("operator", "auditor", "monitor", "ACLBKHPPXXX", "ABAAKHPPXXX", "WINGKHPPXXX")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, config_dir=DEFAULT_CONFIG_DIR, now=NOW)
    return directory


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_the_manifest_lists_every_certificate_with_its_fingerprint(pki: Path) -> None:
    manifest = json.loads((pki / "manifest.json").read_text())
    owners = {(c["owner"], c["kind"]) for c in manifest["certificates"]}
    assert owners == (
        {("hub", "ca"), ("hub", "tls"), ("hub", "signing")} | {(p, k) for p in PARTNERS for k in ("ca", "tls", "signing")}
        | {("ops", "ca"), ("ops", "ops-server")} | {(c, "ops-client") for c in OPS_CLIENTS}
    )
    for entry in manifest["certificates"]:
        assert spki_sha256(_cert(pki / entry["certificate"])) == entry["spki_sha256"]
        assert _cert(pki / entry["certificate"]).subject.rfc4514_string() == entry["subject"]
    assert {p["participant"] for p in manifest["participants"]} == {"ACLBKHPPXXX", "ABAAKHPPXXX", "WINGKHPPXXX"}


def test_private_keys_are_readable_by_the_owner_only(pki: Path) -> None:
    keys = list(pki.rglob("*.key"))
    assert len(keys) == 3 + 3 * len(PARTNERS) + 3 + 2 + len(OPS_CLIENTS)  # CA, TLS and signing keys; participants; ops
    assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)


def test_signing_certificates_are_for_signatures_only_with_keys_apart_from_tls(pki: Path) -> None:
    for owner, tls_cert in [("hub", "hub/hub.crt"), *((p, f"partners/{p}/{p}.crt") for p in PARTNERS)]:
        base = "hub" if owner == "hub" else f"partners/{owner}"
        signing = _cert(pki / base / "signing.crt")
        usage = signing.extensions.get_extension_for_class(x509.KeyUsage).value
        assert (usage.digital_signature, usage.content_commitment, usage.key_encipherment, usage.key_cert_sign) == (True, True, False, False)
        with pytest.raises(x509.ExtensionNotFound):  # no TLS use
            signing.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        assert spki_sha256(signing) != spki_sha256(_cert(pki / tls_cert))  # a key of its own
        issuer = _cert(pki / ("hub/ca.crt" if owner == "hub" else f"{base}/ca.crt"))
        signing.verify_directly_issued_by(issuer)


def test_participant_keys_are_ed25519_pairs(pki: Path) -> None:
    private = serialization.load_pem_private_key((pki / "participants" / "ACLBKHPPXXX.key").read_bytes(), None)
    public = serialization.load_pem_public_key((pki / "participants" / "ACLBKHPPXXX.pub").read_bytes())
    signature = private.sign(b"instruction")  # type: ignore[union-attr, call-arg]
    public.verify(signature, b"instruction")  # type: ignore[union-attr, call-arg]


def test_an_existing_pki_is_not_overwritten_without_force(pki: Path) -> None:
    before = (pki / "hub" / "hub.crt").read_bytes()
    with pytest.raises(PkiExists):
        init_pki(pki, config_dir=DEFAULT_CONFIG_DIR, now=NOW)
    assert (pki / "hub" / "hub.crt").read_bytes() == before


def test_force_replaces_the_pki(tmp_path: Path) -> None:
    init_pki(tmp_path, config_dir=DEFAULT_CONFIG_DIR, now=NOW)
    before = (tmp_path / "hub" / "hub.crt").read_bytes()
    init_pki(tmp_path, config_dir=DEFAULT_CONFIG_DIR, now=NOW, force=True)
    assert (tmp_path / "hub" / "hub.crt").read_bytes() != before


def _authenticator(pki: Path, pins: dict[str, tuple[str, ...]] | None = None) -> PartnerAuthenticator:
    return load_switch_tls(
        pki,
        {p: PartnerTlsSettings(partner_cn(p), (pins or {}).get(p, ()), f"partners/{p}/ca-bundle.crt") for p in PARTNERS},
    ).authenticator


def test_each_partner_certificate_names_its_partner(pki: Path) -> None:
    auth = _authenticator(pki)
    for partner in PARTNERS:
        assert auth.partner_of(_der(_cert(pki / "partners" / partner / f"{partner}.crt"))) == partner
    assert auth.partner_of(_der(_cert(pki / "hub" / "hub.crt"))) is None


def test_the_right_name_from_another_partners_ca_names_nobody(pki: Path) -> None:
    """LAPNet's CA issuing a certificate in PromptPay's name does not make it PromptPay."""
    lapnet_ca_cert = _cert(pki / "partners" / "lapnet" / "ca.crt")
    lapnet_ca_key = serialization.load_pem_private_key((pki / "partners" / "lapnet" / "ca.key").read_bytes(), None)
    impostor = make_leaf(Issued(lapnet_ca_cert, lapnet_ca_key), partner_cn("promptpay"), "impostor", now=NOW)  # type: ignore[arg-type]
    assert _authenticator(pki).partner_of(_der(impostor.cert)) is None


def test_a_pinned_key_must_match(pki: Path) -> None:
    cert = _cert(pki / "partners" / "promptpay" / "promptpay.crt")
    assert _authenticator(pki, {"promptpay": ("0" * 64,)}).partner_of(_der(cert)) is None
    assert _authenticator(pki, {"promptpay": (spki_sha256(cert),)}).partner_of(_der(cert)) == "promptpay"


def test_a_certificate_two_profiles_accept_names_no_partner() -> None:
    ca = make_ca("shared CA", "x", now=NOW)
    leaf = make_leaf(ca, "shared.example", "x", now=NOW)
    both = [PartnerIdentity(p, "shared.example", frozenset(), (ca.cert,)) for p in ("promptpay", "lapnet")]
    assert PartnerAuthenticator(both).partner_of(_der(leaf.cert)) is None


def test_a_missing_pki_is_named_at_start(tmp_path: Path) -> None:
    with pytest.raises(TlsSetupError, match="mekong pki init"):
        load_switch_tls(tmp_path, {"promptpay": PartnerTlsSettings(partner_cn("promptpay"), (), "partners/promptpay/ca-bundle.crt")})
    with pytest.raises(TlsSetupError, match="promptpay"):
        load_simulator_tls(tmp_path, "promptpay")


def test_a_partner_without_a_tls_section_is_refused_at_start(pki: Path) -> None:
    with pytest.raises(TlsSetupError, match="no \\[tls\\] section"):
        load_switch_tls(pki, {"promptpay": None})


def test_pki_init_keep_keeps_a_complete_pki_and_remakes_one_without_signing_keys(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from switch.entrypoints.cli import main

    directory = tmp_path / "pki"
    assert CliRunner().invoke(main, ["pki", "init", str(directory)]).exit_code == 0
    hub = (directory / "hub/hub.crt").read_bytes()
    kept = CliRunner().invoke(main, ["pki", "init", str(directory), "--keep"])
    assert (kept.exit_code, "kept" in kept.output, (directory / "hub/hub.crt").read_bytes()) == (0, True, hub)
    for old in ("hub/signing.crt", "hub/signing.key"):  # as a PKI made before signing keys existed
        (directory / old).unlink()
    remade = CliRunner().invoke(main, ["pki", "init", str(directory), "--keep"])
    assert remade.exit_code == 0 and "made anew" in remade.output
    assert (directory / "hub/signing.crt").exists() and (directory / "hub/hub.crt").read_bytes() != hub


def test_the_operations_port_has_its_own_ca_a_server_certificate_and_client_only_certificates(pki: Path) -> None:
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from switch.pki import ops_client_cn

    def usages(path: Path) -> set[x509.ObjectIdentifier]:
        return set(_cert(path).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)

    ca = _cert(pki / "ops" / "ca.crt")
    assert ca.subject != _cert(pki / "hub" / "ca.crt").subject
    server = _cert(pki / "ops" / "ops.crt")
    server.verify_directly_issued_by(ca)
    assert usages(pki / "ops" / "ops.crt") == {ExtendedKeyUsageOID.SERVER_AUTH}
    for client in OPS_CLIENTS:
        cert = _cert(pki / "ops" / "clients" / f"{client}.crt")
        cert.verify_directly_issued_by(ca)
        assert usages(pki / "ops" / "clients" / f"{client}.crt") == {ExtendedKeyUsageOID.CLIENT_AUTH}  # never a server
        assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == ops_client_cn(client)


def test_the_shipped_operators_file_maps_every_development_client_certificate_to_a_role(pki: Path) -> None:
    from switch import config as config_mod
    from switch.entrypoints.api_auth import ApiCertificates, Role

    certificates = ApiCertificates(config_mod.load(env={}).api_certificates)
    roles = {}
    for client in OPS_CLIENTS:
        principal = certificates.authenticate(_der(_cert(pki / "ops" / "clients" / f"{client}.crt")))
        assert principal is not None, client
        roles[client] = (principal.role, principal.participant)
    assert roles["operator"] == (Role.OPERATOR, None) and roles["auditor"] == (Role.AUDITOR, None)
    assert roles["monitor"] == (Role.MONITOR, None) and roles["ACLBKHPPXXX"] == (Role.PARTICIPANT, "ACLBKHPPXXX")


def test_the_operations_port_asks_for_client_certificates_only_with_its_client_ca(pki: Path, tmp_path: Path) -> None:
    import shutil
    import ssl

    from switch.tls import load_ops_tls

    with_ca = load_ops_tls(pki)
    assert with_ca.client_certificates and with_ca.server.verify_mode is ssl.CERT_OPTIONAL
    shutil.copytree(pki / "ops", tmp_path / "ops")
    (tmp_path / "ops" / "ca.crt").unlink()
    without = load_ops_tls(tmp_path)
    assert not without.client_certificates and without.server.verify_mode is ssl.CERT_NONE
    (tmp_path / "ops" / "ops.key").unlink()
    with pytest.raises(TlsSetupError, match="operations port's key"):
        load_ops_tls(tmp_path)

