"""Signed Kafka records (issue 8 item 3): the verifier (KeyRing), the key ids, loading the
participants' keys from configuration, and the switch's own broker authentication settings."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr, ValidationError

from switch import config as config_mod
from switch.config import KafkaConfig, Participant, ParticipantKey as ParticipantKeyConfig
from switch.kafka_auth import (
    KEY_ID_HEADER,
    SECURITY_REASON_CODES,
    SIGNATURE_HEADER,
    KeyRing,
    ParticipantKey,
    ParticipantKeyError,
    SignatureRefused,
    Signer,
    client_options,
    key_id_of,
    load_key_ring,
    signature_headers,
)
from switch.metrics import SECURITY_REASONS, DlqReason, Metrics
from switch.pki import init_pki
from switch.config import DEFAULT_CONFIG_DIR
from tests.factories import sample_instruction

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
ACLB, ABAA = "ACLBKHPPXXX", "ABAAKHPPXXX"
VALUE = json.dumps(sample_instruction(instruction_id="SIG-1")).encode()


def new_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def entry(participant: str, key: Ed25519PrivateKey, *, not_after: datetime | None = None) -> ParticipantKey:
    return ParticipantKey(key_id_of(key.public_key()), participant, key.public_key(), not_after)


def refused(result: Signer | SignatureRefused) -> DlqReason:
    assert isinstance(result, SignatureRefused), result
    return result.category


@pytest.fixture(scope="module")
def aclb() -> Ed25519PrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def abaa() -> Ed25519PrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def ring(aclb: Ed25519PrivateKey, abaa: Ed25519PrivateKey) -> KeyRing:
    return KeyRing([entry(ACLB, aclb), entry(ABAA, abaa)])


# ------------------------------------------------------------------ key ids and headers


def test_a_key_id_is_the_first_16_hex_digits_of_the_sha256_of_the_raw_public_key(aclb: Ed25519PrivateKey) -> None:
    raw = aclb.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id_of(aclb.public_key()) == hashlib.sha256(raw).hexdigest()[:16]


def test_the_signature_headers_carry_the_key_id_and_64_bytes_of_signature_in_base64(aclb: Ed25519PrivateKey) -> None:
    headers = dict(signature_headers(VALUE, aclb))
    assert set(headers) == {KEY_ID_HEADER, SIGNATURE_HEADER}
    assert headers[KEY_ID_HEADER] == key_id_of(aclb.public_key()).encode()
    signature = base64.b64decode(headers[SIGNATURE_HEADER], validate=True)
    assert len(headers[SIGNATURE_HEADER]) == 88 and len(signature) == 64
    aclb.public_key().verify(signature, VALUE)  # over the value's exact bytes, nothing else


def test_pki_init_gives_each_participant_key_its_id(tmp_path: Path) -> None:
    manifest = init_pki(tmp_path, config_dir=DEFAULT_CONFIG_DIR, now=NOW)
    for p in manifest["participants"]:
        public = serialization.load_pem_public_key((tmp_path / p["public_key"]).read_bytes())
        assert p["key_id"] == key_id_of(public)  # type: ignore[arg-type]


# ------------------------------------------------------------------ the verifier


def test_a_record_signed_with_a_configured_key_names_its_owner(ring: KeyRing, aclb: Ed25519PrivateKey) -> None:
    assert ring.verify(VALUE, signature_headers(VALUE, aclb), now=NOW) == Signer(ACLB, key_id_of(aclb.public_key()))


@pytest.mark.parametrize("keep", [(), (KEY_ID_HEADER,), (SIGNATURE_HEADER,)], ids=["none", "key id only", "signature only"])
def test_a_record_without_both_headers_is_unsigned(ring: KeyRing, aclb: Ed25519PrivateKey, keep: tuple[str, ...]) -> None:
    headers = [(k, v) for k, v in signature_headers(VALUE, aclb) if k in keep]
    assert refused(ring.verify(VALUE, headers, now=NOW)) is DlqReason.UNSIGNED


def test_a_record_with_no_headers_at_all_is_unsigned(ring: KeyRing) -> None:
    assert refused(ring.verify(VALUE, None, now=NOW)) is DlqReason.UNSIGNED


def test_a_changed_value_does_not_verify(ring: KeyRing, aclb: Ed25519PrivateKey) -> None:
    headers = signature_headers(VALUE, aclb)
    tampered = VALUE.replace(b'"150000"', b'"950000"') if b'"150000"' in VALUE else VALUE + b" "
    assert tampered != VALUE
    assert refused(ring.verify(tampered, headers, now=NOW)) is DlqReason.BAD_SIGNATURE


def test_one_byte_more_whitespace_does_not_verify(ring: KeyRing, aclb: Ed25519PrivateKey) -> None:
    assert refused(ring.verify(VALUE + b"\n", signature_headers(VALUE, aclb), now=NOW)) is DlqReason.BAD_SIGNATURE


def test_another_participants_signature_under_this_key_id_does_not_verify(
    ring: KeyRing, aclb: Ed25519PrivateKey, abaa: Ed25519PrivateKey
) -> None:
    forged = [(KEY_ID_HEADER, key_id_of(aclb.public_key()).encode()),
              (SIGNATURE_HEADER, dict(signature_headers(VALUE, abaa))[SIGNATURE_HEADER])]
    assert refused(ring.verify(VALUE, forged, now=NOW)) is DlqReason.BAD_SIGNATURE


def test_a_key_that_is_not_configured_is_unknown(ring: KeyRing) -> None:
    stranger = new_key()
    result = ring.verify(VALUE, signature_headers(VALUE, stranger), now=NOW)
    assert refused(result) is DlqReason.UNKNOWN_KEY
    assert isinstance(result, SignatureRefused) and result.key_id == key_id_of(stranger.public_key())


@pytest.mark.parametrize("key_id", [b"", b"ABCDEF0123456789", b"0123", b"0123456789abcdef0", b"\xff" * 16, b"x" * 10_000])
def test_a_malformed_key_id_is_unknown_and_not_echoed(ring: KeyRing, aclb: Ed25519PrivateKey, key_id: bytes) -> None:
    headers = [(KEY_ID_HEADER, key_id), (SIGNATURE_HEADER, dict(signature_headers(VALUE, aclb))[SIGNATURE_HEADER])]
    result = ring.verify(VALUE, headers, now=NOW)
    assert refused(result) is DlqReason.UNKNOWN_KEY
    assert isinstance(result, SignatureRefused) and result.key_id is None and len(result.reason) < 200


@pytest.mark.parametrize("signature", [
    b"", b"not base64 at all", b"A" * 87, b"A" * 89, base64.b64encode(b"\x00" * 63) + b"AAAA", base64.b64encode(b"\x00" * 64)[:-2] + b"!!",
    base64.urlsafe_b64encode(b"\xfb\xff" * 32),  # the URL-safe alphabet is not ours
])
def test_a_signature_header_that_is_not_base64_of_64_bytes_is_a_bad_signature(
    ring: KeyRing, aclb: Ed25519PrivateKey, signature: bytes
) -> None:
    headers = [(KEY_ID_HEADER, key_id_of(aclb.public_key()).encode()), (SIGNATURE_HEADER, signature)]
    assert refused(ring.verify(VALUE, headers, now=NOW)) is DlqReason.BAD_SIGNATURE


def test_a_signature_header_given_twice_is_refused_even_if_one_verifies(ring: KeyRing, aclb: Ed25519PrivateKey) -> None:
    good = signature_headers(VALUE, aclb)
    twice = [*good, (SIGNATURE_HEADER, base64.b64encode(b"\x00" * 64))]
    assert refused(ring.verify(VALUE, twice, now=NOW)) is DlqReason.BAD_SIGNATURE
    assert refused(ring.verify(VALUE, [*good, good[0]], now=NOW)) is DlqReason.BAD_SIGNATURE


def test_header_names_are_exact(ring: KeyRing, aclb: Ed25519PrivateKey) -> None:
    upper = [(k.upper(), v) for k, v in signature_headers(VALUE, aclb)]
    assert refused(ring.verify(VALUE, upper, now=NOW)) is DlqReason.UNSIGNED


def test_other_headers_do_not_matter(ring: KeyRing, aclb: Ed25519PrivateKey) -> None:
    headers = [("content-type", b"application/json"), *signature_headers(VALUE, aclb), ("trace", b"x")]
    assert isinstance(ring.verify(VALUE, headers, now=NOW), Signer)


def test_an_empty_value_can_be_signed_and_verified(ring: KeyRing, aclb: Ed25519PrivateKey) -> None:
    assert isinstance(ring.verify(b"", signature_headers(b"", aclb), now=NOW), Signer)


def test_a_key_verifies_until_its_not_after_and_not_a_moment_later(aclb: Ed25519PrivateKey) -> None:
    until = NOW + timedelta(days=30)
    ring = KeyRing([entry(ACLB, aclb, not_after=until)])
    headers = signature_headers(VALUE, aclb)
    assert isinstance(ring.verify(VALUE, headers, now=until), Signer)
    assert refused(ring.verify(VALUE, headers, now=until + timedelta(microseconds=1))) is DlqReason.KEY_EXPIRED


def test_during_a_rotation_old_and_new_keys_both_verify_and_a_removed_key_no_longer_does() -> None:
    old, new = new_key(), new_key()
    both = KeyRing([entry(ACLB, old), entry(ACLB, new)])
    for key in (old, new):
        assert both.verify(VALUE, signature_headers(VALUE, key), now=NOW) == Signer(ACLB, key_id_of(key.public_key()))
    after = KeyRing([entry(ACLB, new)])
    assert refused(after.verify(VALUE, signature_headers(VALUE, old), now=NOW)) is DlqReason.UNKNOWN_KEY
    assert isinstance(after.verify(VALUE, signature_headers(VALUE, new), now=NOW), Signer)


def test_one_key_for_two_participants_is_refused() -> None:
    shared = new_key()
    with pytest.raises(ParticipantKeyError, match="exactly one participant"):
        KeyRing([entry(ACLB, shared), entry(ABAA, shared)])


def test_one_key_given_twice_to_a_participant_is_refused() -> None:
    key = new_key()
    with pytest.raises(ParticipantKeyError, match="twice"):
        KeyRing([entry(ACLB, key), entry(ACLB, key)])


def test_each_refusal_has_a_fixed_iso_ds_reason_code_and_a_metric_series() -> None:
    assert set(SECURITY_REASON_CODES) == SECURITY_REASONS
    assert SECURITY_REASON_CODES == {
        DlqReason.UNSIGNED: "DS0A", DlqReason.BAD_SIGNATURE: "DS0B", DlqReason.KEY_EXPIRED: "DS0D",
        DlqReason.UNKNOWN_KEY: "DS0E", DlqReason.PARTICIPANT_MISMATCH: "DS0H",
    }
    assert {r for r in DlqReason if r.security} == SECURITY_REASONS
    text = __import__("prometheus_client").generate_latest(Metrics().registry).decode()
    for reason in SECURITY_REASONS:
        assert f'switch_security_refusals_total{{edge="kafka",reason="{reason.value}"}} 0.0' in text


# ------------------------------------------------------------------ loading keys from configuration


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _participant(code: str, *keys: dict[str, object]) -> Participant:
    return Participant(code=code, name=code, bakong_suffix=code[:4].lower(), currencies=("KHR",),
                       keys=tuple(ParticipantKeyConfig.model_validate(k) for k in keys))


def test_keys_are_read_from_files_relative_to_the_pki_dir_or_inline(tmp_path: Path) -> None:
    from_file, inline = new_key(), new_key()
    (tmp_path / "participants").mkdir()
    (tmp_path / "participants" / "a.pub").write_bytes(_pem(from_file))
    raw = inline.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ring = load_key_ring([_participant(ACLB, {"public_key_file": "participants/a.pub"}),
                          _participant(ABAA, {"public_key": base64.b64encode(raw).decode()})], tmp_path)
    assert ring.verify(VALUE, signature_headers(VALUE, from_file), now=NOW) == Signer(ACLB, key_id_of(from_file.public_key()))
    assert ring.verify(VALUE, signature_headers(VALUE, inline), now=NOW) == Signer(ABAA, key_id_of(inline.public_key()))


def test_a_configured_id_that_is_not_the_keys_id_stops_the_start(tmp_path: Path) -> None:
    key = new_key()
    (tmp_path / "k.pub").write_bytes(_pem(key))
    with pytest.raises(ParticipantKeyError, match="configured id 0000000000000000"):
        load_key_ring([_participant(ACLB, {"public_key_file": "k.pub", "id": "0000000000000000"})], tmp_path)
    ring = load_key_ring([_participant(ACLB, {"public_key_file": "k.pub", "id": key_id_of(key.public_key())})], tmp_path)
    assert len(ring) == 1


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ParticipantKeyError, match=r"participants/ACLBKHPPXXX\.pub is missing"):
        load_key_ring([_participant(ACLB, {"public_key_file": "participants/ACLBKHPPXXX.pub"})], tmp_path)


def test_a_key_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "ec.pub").write_bytes(ec_pem)
    with pytest.raises(ParticipantKeyError, match="not an Ed25519 public key"):
        load_key_ring([_participant(ACLB, {"public_key_file": "ec.pub"})], tmp_path)
    with pytest.raises(ParticipantKeyError, match="33 bytes"):
        load_key_ring([_participant(ACLB, {"public_key": base64.b64encode(b"\x01" * 33).decode()})], tmp_path)


@pytest.mark.parametrize("key", [
    {},  # neither source
    {"public_key_file": "a.pub", "public_key": "AAAA"},  # both
    {"public_key_file": "a.pub", "not_after": "2027-01-31T00:00:00"},  # no UTC offset
    {"public_key_file": "a.pub", "id": "ABCDEF0123456789"},  # ids are lowercase hex
])
def test_a_key_entry_is_validated_at_load(key: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ParticipantKeyConfig.model_validate(key)


def test_the_shipped_participants_each_name_their_pki_key() -> None:
    cfg = config_mod.load(env={})
    for p in cfg.participants:
        assert [k.public_key_file for k in p.keys] == [f"participants/{p.code}.pub"]


def test_the_shipped_configuration_loads_with_the_keys_pki_init_makes(tmp_path: Path) -> None:
    manifest = init_pki(tmp_path, config_dir=DEFAULT_CONFIG_DIR, now=NOW)
    ring = load_key_ring(config_mod.load(env={}).participants, tmp_path)
    assert {(k.participant, k.key_id) for k in ring} == {(p["participant"], p["key_id"]) for p in manifest["participants"]}


# ------------------------------------------------------------------ the switch's own broker authentication


def _config(env: dict[str, str] | None = None, **kafka: object) -> config_mod.SwitchConfig:
    """The shipped configuration with `kafka` settings changed, validated as a whole again."""
    data = config_mod.load(env=env or {}).model_dump()
    data["kafka"] = {**data["kafka"], **kafka}
    return config_mod.SwitchConfig.model_validate(data)


def test_plaintext_adds_no_credentials() -> None:
    assert client_options(config_mod.load(env={})) == {"security_protocol": "PLAINTEXT"}


def test_sasl_scram_over_tls_gives_every_client_the_mechanism_the_user_and_the_password_from_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("s3cret-from-a-file\n")
    cfg = _config({"MEKONG_KAFKA_SASL_PASSWORD_FILE": str(secret)}, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                  sasl_username="mekong-switch")
    options = client_options(cfg)
    assert {k: v for k, v in options.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "mekong-switch",
        "sasl_plain_password": "s3cret-from-a-file",
    }
    assert options["ssl_context"].check_hostname is True
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg.model_dump())


def test_mutual_tls_with_the_broker_presents_the_configured_certificate(tmp_path: Path) -> None:
    init_pki(tmp_path, config_dir=DEFAULT_CONFIG_DIR, now=NOW)
    cfg = _config({"MEKONG_PKI_DIR": str(tmp_path)}, security_protocol="SSL", ssl_cafile="hub/ca.crt",
                  ssl_certfile="hub/hub.crt", ssl_keyfile="hub/hub.key")
    options = client_options(cfg)
    assert options["security_protocol"] == "SSL"
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"
    assert options["ssl_context"].get_ca_certs()  # the CA file, not the system store only


@pytest.mark.parametrize("kafka", [
    {"security_protocol": "SASL_SSL"},  # no mechanism, no user
    {"security_protocol": "PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "u"},
    {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"},  # SCRAM only
    {"security_protocol": "PLAINTEXT", "ssl_cafile": "ca.crt"},
    {"security_protocol": "SSL", "ssl_certfile": "c.crt"},  # a certificate without its key
])
def test_broker_security_settings_that_disagree_are_refused(kafka: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        KafkaConfig.model_validate(kafka)


def test_sasl_without_a_password_in_the_environment_is_refused() -> None:
    with pytest.raises(ValidationError, match="MEKONG_KAFKA_SASL_PASSWORD"):
        _config(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256", sasl_username="u")
    cfg = _config({"MEKONG_KAFKA_SASL_PASSWORD": "p"}, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                  sasl_username="u")
    assert cfg.kafka_sasl_password == SecretStr("p")
