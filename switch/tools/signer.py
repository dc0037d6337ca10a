"""Signing Kafka records as the participants, for the demo, the benchmark, the load generators and
the tests: the private keys of a development PKI (`mekong pki init` writes
participants/<code>.key), and the headers switch/kafka_auth.py verifies. A participant's own
systems do the same with their own key: `kafka_auth.signature_headers(value, private_key)`.

Production code never imports this module (tests/unit/test_import_hygiene.py): the switch holds
public keys only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switch.kafka_auth import key_id_of, private_key_from_pem, signature_headers

Headers = list[tuple[str, bytes]]


class UnknownSigner(KeyError):
    """No private key for that participant here."""


class ParticipantSigners:
    """Signs a record's value as a participant whose private key it holds."""

    def __init__(self, keys: Mapping[str, Ed25519PrivateKey]) -> None:
        self._keys = dict(keys)

    @classmethod
    def from_pki(cls, pki_dir: Path) -> ParticipantSigners:
        """Every participant key in `pki_dir`/participants (PKCS#8 PEM, as `mekong pki init` writes)."""
        keys: dict[str, Ed25519PrivateKey] = {}
        for path in sorted((Path(pki_dir) / "participants").glob("*.key")):
            keys[path.stem] = private_key_from_pem(path.read_bytes(), source=str(path))
        if not keys:
            raise ValueError(f"no participant keys in {pki_dir / 'participants'} (mekong pki init {pki_dir})")
        return cls(keys)

    @property
    def participants(self) -> list[str]:
        return sorted(self._keys)

    def key_id(self, participant: str) -> str:
        return key_id_of(self._key(participant).public_key())

    def headers(self, participant: str, value: bytes | None) -> Headers:
        """The signature headers of `value` (b"" for a record without one) signed by `participant`."""
        return signature_headers(value or b"", self._key(participant))

    def headers_as_named(self, value: bytes | None, *, default: str) -> Headers:
        """Signed by the participant a JSON record names in its `participant` field when this
        holds its key, else by `default` (for bytes that name nobody: hostile or broken records)."""
        return self.headers(self.named(value, default=default), value)

    def named(self, value: bytes | None, *, default: str) -> str:
        try:
            data = json.loads(value or b"")
        except (ValueError, RecursionError):  # not JSON, or nested too deep for Python's parser
            return default
        participant = data.get("participant") if isinstance(data, dict) else None
        return participant if isinstance(participant, str) and participant in self._keys else default

    def _key(self, participant: str) -> Ed25519PrivateKey:
        try:
            return self._keys[participant]
        except KeyError:
            raise UnknownSigner(participant) from None
