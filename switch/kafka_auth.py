"""Who published a Kafka record (issue 8 item 3), and how the switch's own Kafka clients
authenticate to the broker.

**Record signatures.** A participant signs the exact bytes of each record's value with Ed25519
and puts two headers on the record:

  mekong.key_id  which key signed: 16 lowercase hex digits, the first 8 bytes of the SHA-256 of
                 the 32-byte raw public key (`key_id_of`), so anyone holding the public key
                 computes the same id
  mekong.sig     the 64-byte Ed25519 signature, base64 (RFC 4648 standard alphabet, padded: 88
                 characters, ASCII)

A key id names one configured key, and each key belongs to exactly one participant
(config/participants.toml `keys`); a participant may have several keys at once, which is how a
key is rotated (add the new one, the participant switches, remove the old one). `KeyRing.verify`
answers who signed a record, or why it is refused: no headers (`unsigned`), a key id not
configured (`unknown_key`), a key past its `not_after` (`key_expired`), a signature that does not
verify over the value (`bad_signature`). The Kafka edge then checks that the participant the
record names is the signer (`participant_mismatch`).

**Broker authentication.** `client_options` turns `[kafka]` security settings (SASL/SCRAM,
TLS, client certificates) into the keyword arguments every aiokafka client of the switch gets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from switch.metrics import DlqReason

if TYPE_CHECKING:
    from switch.config import KafkaConfig, Participant, SwitchConfig

SIGNATURE_HEADER: Final = "mekong.sig"
KEY_ID_HEADER: Final = "mekong.key_id"
KEY_ID_PATTERN: Final = re.compile(r"[0-9a-f]{16}")
signature_bytes: Final = 64  # Ed25519
signature_b64_chars: Final = 88  # base64 of 64 bytes, padded
public_key_bytes: Final = 32  # Ed25519, raw


class ParticipantKeyError(ValueError):
    """A configured participant key cannot be used (raised at start, naming the key and why)."""


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """The key id of a public key: the first 16 hex digits of the SHA-256 of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signature_headers(value: bytes, private_key: Ed25519PrivateKey) -> list[tuple[str, bytes]]:
    """The two headers that sign `value` with `private_key` (what a participant puts on a record)."""
    signature = private_key.sign(value)
    return [
        (KEY_ID_HEADER, key_id_of(private_key.public_key()).encode("ascii")),
        (SIGNATURE_HEADER, base64.b64encode(signature)),
    ]


@dataclass(frozen=True, slots=True)
class ParticipantKey:
    """One public key of one participant, as the switch verifies with it."""

    key_id: str
    participant: str
    public_key: Ed25519PublicKey
    not_after: datetime | None = None  # aware; the key verifies nothing after this instant
    source: str = "inline"  # where it came from (a file path, or inline): for logs and the audit


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed a record: the participant owning the key, and the key's id."""

    participant: str
    key_id: str


@dataclass(frozen=True, slots=True)
class SignatureRefused:
    """Why a record's signature is not accepted (a value: the edge dead-letters the record)."""

    category: DlqReason  # one of SECURITY_REASONS
    reason: str
    key_id: str | None = None  # as the record gave it (bounded: 16 hex digits, or None)

    @property
    def reason_code(self) -> str:
        return SECURITY_REASON_CODES[self.category]


# The ISO 20022 external status reason code each refusal is dead-lettered with (ExternalStatusReason1Code)
SECURITY_REASON_CODES: Final[Mapping[DlqReason, str]] = {
    DlqReason.UNSIGNED: "DS0A",  # DataSignRequested: data signature is required
    DlqReason.BAD_SIGNATURE: "DS0B",  # UnknownDataSignFormat: data signature ... not available or invalid
    DlqReason.KEY_EXPIRED: "DS0D",  # SignerCertificateNotValid: revoked or not active
    DlqReason.UNKNOWN_KEY: "DS0E",  # IncorrectSignerCertificate: the signer certificate is not present
    DlqReason.PARTICIPANT_MISMATCH: "DS0H",  # NotAllowedAccount: the signer may not sign for this party
}


def _one_header(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> tuple[int, bytes | None]:
    """How often the header `name` occurs, and its value when it occurs once."""
    found = [value for key, value in headers or () if key == name]
    return len(found), (found[0] if len(found) == 1 else None)


class KeyRing:
    """The participants' public keys by key id. Built once at start; `verify` costs one dict look-up
    and one Ed25519 verification."""

    def __init__(self, keys: Iterable[ParticipantKey]) -> None:
        self._keys: dict[str, ParticipantKey] = {}
        for key in keys:
            if not KEY_ID_PATTERN.fullmatch(key.key_id):
                raise ParticipantKeyError(f"{key.participant}: key id {key.key_id!r} is not 16 lowercase hex digits")
            known = self._keys.get(key.key_id)
            if known is not None:
                # the id is derived from the key: the same id is the same key, given twice or to two participants
                owners = "twice" if known.participant == key.participant else f"to {known.participant} and {key.participant}"
                raise ParticipantKeyError(f"key {key.key_id} is configured {owners} ({known.source}, {key.source}): "
                                          "each key belongs to exactly one participant, once")
            self._keys[key.key_id] = key

    def keys_of(self, participant: str) -> list[ParticipantKey]:
        return [k for k in self._keys.values() if k.participant == participant]

    def __iter__(self) -> Any:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, value: bytes, headers: Sequence[tuple[str, bytes | None]] | None, *, now: datetime) -> Signer | SignatureRefused:
        """Who signed `value` (the record's exact bytes) according to `headers`, or why not.
        Never raises on anything a record can hold."""
        n_ids, raw_id = _one_header(headers, KEY_ID_HEADER)
        n_sigs, raw_sig = _one_header(headers, SIGNATURE_HEADER)
        if n_ids == 0 or n_sigs == 0:
            missing = " and ".join(h for h, n in ((KEY_ID_HEADER, n_ids), (SIGNATURE_HEADER, n_sigs)) if n == 0)
            return SignatureRefused(DlqReason.UNSIGNED, f"unsigned: no {missing} header")
        if n_ids > 1 or n_sigs > 1:  # which one counts would be a guess: refuse
            return SignatureRefused(DlqReason.BAD_SIGNATURE, "bad signature: a signature header occurs more than once")
        key_id = (raw_id or b"").decode("ascii", "replace")
        if not KEY_ID_PATTERN.fullmatch(key_id):
            return SignatureRefused(DlqReason.UNKNOWN_KEY, f"unknown key: {KEY_ID_HEADER} is not 16 lowercase hex digits")
        key = self._keys.get(key_id)
        if key is None:
            return SignatureRefused(DlqReason.UNKNOWN_KEY, f"unknown key: {key_id} is not a configured participant key", key_id)
        if key.not_after is not None and now > key.not_after:
            return SignatureRefused(
                DlqReason.KEY_EXPIRED, f"key expired: {key_id} of {key.participant} was valid until {key.not_after.isoformat()}", key_id
            )
        signature = _signature(raw_sig or b"")
        if signature is None:
            return SignatureRefused(
                DlqReason.BAD_SIGNATURE, f"bad signature: {SIGNATURE_HEADER} is not base64 of {signature_bytes} bytes", key_id
            )
        try:
            key.public_key.verify(signature, value)
        except InvalidSignature:
            return SignatureRefused(
                DlqReason.BAD_SIGNATURE, f"bad signature: does not verify over the value with key {key_id} of {key.participant}", key_id
            )
        return Signer(key.participant, key_id)


def _signature(raw: bytes) -> bytes | None:
    if len(raw) != signature_b64_chars:  # bounded before decoding
        return None
    try:
        decoded = binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) == signature_bytes else None


# ----------------------------------------------------------------------------- loading keys
def public_key_from_pem(data: bytes, *, source: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ParticipantKeyError(f"{source}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ParticipantKeyError(f"{source}: not an Ed25519 public key ({type(key).__name__})")
    return key


def private_key_from_pem(data: bytes, *, source: str) -> Ed25519PrivateKey:
    """A participant's Ed25519 private key (PKCS#8 PEM, unencrypted, as `mekong pki init` and
    `openssl genpkey -algorithm ed25519` write it), for the participant's side: `mekong load` and
    the dev tools sign with it. The switch itself never holds one."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ParticipantKeyError(f"{source}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ParticipantKeyError(f"{source}: not an Ed25519 private key ({type(key).__name__})")
    return key


def public_key_from_base64(text: str, *, source: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ParticipantKeyError(f"{source}: public_key is not base64") from None
    if len(raw) != public_key_bytes:
        raise ParticipantKeyError(f"{source}: public_key is {len(raw)} bytes, an Ed25519 key is {public_key_bytes}")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_key_ring(participants: Iterable[Participant], pki_dir: Path) -> KeyRing:
    """The key ring of the configured participants (each with its `keys`): files are read relative to `pki_dir` (absolute paths as they are). A key whose
    configured `id` is not the id of the key it names is refused: the file was replaced, or the
    entry names the wrong file."""
    keys: list[ParticipantKey] = []
    for participant in participants:
        for n, entry in enumerate(participant.keys, start=1):
            where = f"participant {participant.code} key {n}"
            if entry.public_key_file is not None:
                path = Path(entry.public_key_file)
                path = path if path.is_absolute() else pki_dir / path
                source = str(path)
                if not path.is_file():
                    raise ParticipantKeyError(
                        f"{where}: {path} is missing (make a development PKI with `mekong pki init {pki_dir}`, "
                        "give the participant's public key there, or run with --insecure-dev)"
                    )
                public_key = public_key_from_pem(path.read_bytes(), source=f"{where} ({path})")
            else:
                source = "inline"
                public_key = public_key_from_base64(entry.public_key or "", source=where)
            key_id = key_id_of(public_key)
            if entry.id is not None and entry.id != key_id:
                raise ParticipantKeyError(f"{where}: configured id {entry.id} but the key's id is {key_id} ({source})")
            keys.append(ParticipantKey(key_id, participant.code, public_key, entry.not_after, source))
    return KeyRing(keys)


# ----------------------------------------------------------------------------- broker authentication
def client_options(config: SwitchConfig) -> dict[str, Any]:
    """Keyword arguments for every aiokafka client the switch builds (consumer, producer, admin)
    from `[kafka]`: the security protocol, SASL/SCRAM credentials (the password from the
    environment, never the reviewed files), and a TLS context that trusts `ssl_cafile` and
    presents `ssl_certfile`/`ssl_keyfile` when given (mutual TLS with the broker). PLAINTEXT (the
    default, and Tansu in development) adds nothing else."""
    kafka = config.kafka
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = broker_ssl_context(kafka, pki_dir=config.security.pki_path())
    if kafka.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = config.kafka_sasl_password
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = password.get_secret_value() if password is not None else None
    return options


def broker_ssl_context(kafka: KafkaConfig, *, pki_dir: Path) -> ssl.SSLContext:
    """TLS to the broker: its certificate checked against `ssl_cafile` (else the system's CAs) and
    its host name; a client certificate presented when configured."""

    def path(name: str | None) -> str | None:
        if name is None:
            return None
        p = Path(name)
        return str(p if p.is_absolute() else pki_dir / p)

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=path(kafka.ssl_cafile))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if kafka.ssl_certfile is not None:
        ctx.load_cert_chain(path(kafka.ssl_certfile), path(kafka.ssl_keyfile))  # type: ignore[arg-type]
    return ctx
