"""Card numbers (PANs) at rest and on display (issue 8, personal data).

A PAN is kept in full only inside the message sent to the partner (the pacs.008 in the outbox).
Everywhere else (the payments table, the API, status events, logs) it is a token:

    tok:<20 hex digits of HMAC-SHA256(key, PAN)>:<first 4>:<last 4>     e.g. tok:3f9a...c1:9704:1234

- Keyed, not a plain hash: the PAN space is small (a BIN, a few unknown digits and a Luhn digit),
  so an unkeyed SHA-256 of a PAN is reversed by enumeration; without the key the HMAC is not.
- 80 bits of the HMAC: the token must fit the account column (34 characters, ISO's Max34Text),
  and it only has to tell PANs apart (a collision needs ~2^40 distinct cards); the key, not the
  length, is what keeps it from being reversed.
- First four and last four: what a person needs to recognise a card (the scheme, e.g. NAPAS
  9704, and the card); PCI DSS allows up to the first six and last four to be displayed.
- The same key gives the same token, so replicas and restarts agree, and a PAN can be looked up
  by computing its token. The key comes from the deployment's secrets (MEKONG_PAN_KEY_FILE).

Pure: no I/O. `is_card` is the partner profile's rule (its card_pattern), passed in.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from switch.domain.payment import Party, Payment

TOKEN_PREFIX: Final = "tok:"
token_hex_digits: Final = 20
pan_key_bytes_min: Final = 32  # a random 256-bit key
account_chars_max: Final = 34  # the payments table's account column (ISO Max34Text)

if len(TOKEN_PREFIX) + token_hex_digits + len(":1234:1234") > account_chars_max:
    raise RuntimeError("a PAN token must fit the account column")


def is_token(account: str | None) -> bool:
    return account is not None and account.startswith(TOKEN_PREFIX)


class PanTokens:
    """Turns card numbers into tokens with one secret key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < pan_key_bytes_min:
            raise ValueError(f"the PAN key must be at least {pan_key_bytes_min} random bytes")
        self._key = key

    def __repr__(self) -> str:  # never the key
        return "PanTokens(<key hidden>)"

    def token(self, pan: str) -> str:
        digest = hmac.new(self._key, pan.encode("ascii"), hashlib.sha256).hexdigest()[:token_hex_digits]
        return f"{TOKEN_PREFIX}{digest}:{pan[:4]}:{pan[-4:]}"

    def protect_party(self, party: Party, is_card: Callable[[str], bool]) -> Party:
        """The party with its account tokenised when it is a card number (else the same object)."""
        account = party.account
        if account is None or is_token(account) or not is_card(account):
            return party
        return replace(party, account=self.token(account))

    def protect(self, payment: Payment, is_card: Callable[[str], bool]) -> Payment:
        """The payment as it may be stored: card accounts (creditor of an outbound payment,
        debtor of an inbound one) as tokens. The same object when it holds no card, so the
        common case costs two checks."""
        debtor = self.protect_party(payment.debtor, is_card)
        creditor = self.protect_party(payment.creditor, is_card)
        if debtor is payment.debtor and creditor is payment.creditor:
            return payment
        return replace(payment, debtor=debtor, creditor=creditor)


def shown(account: str | None) -> str | None:
    """An account as the API shows it: a stored card (its token) masked, any other as stored."""
    return mask(account) if is_token(account) else account


def mask(account: str | None, is_card: Callable[[str], bool] | None = None) -> str | None:
    """An account as people may see it: a token or a card number as `9704 **** **** 1234`;
    anything else unchanged. With `is_card`, only what it calls a card is masked from the
    plain text; without, any run of 12 or more digits is treated as a card."""
    if account is None:
        return None
    if is_token(account):
        parts = account.split(":")
        if len(parts) == 4:
            return f"{parts[2]} **** **** {parts[3]}"
        return "**** **** **** ****"
    digits = account.replace(" ", "")
    card = is_card(digits) if is_card is not None else (digits.isdigit() and len(digits) >= 12)
    if card:
        return f"{digits[:4]} **** **** {digits[-4:]}"
    return account
