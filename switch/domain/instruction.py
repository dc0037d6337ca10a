"""The domain instruction: what a participant asks the switch to pay, whatever it came as (a JSON
instruction v1, one that carries a scanned QR, a pain.001 transaction). The Kafka edge makes it
once per instruction; the proxy look-ups and admission read it, and nothing decodes it again.

What the edge cannot read (a QR that does not decode, an amount that does not fit its currency)
is kept as a `Reject` in `unreadable`: admission answers it in its turn, after the checks that
come first (who the participant is), so a record gets the same answer whatever else is wrong.
An instruction over its participant's rate (issue 8 item 6) carries its `Reject` in `limited`:
admission answers that before anything else, and like any reject it uses up the instruction id
(a resend of the id replays it; the participant sends the payment again under a new id).

A QR is decoded and routed here; whether a dynamic QR has expired depends on the time of
admission and is checked there (`switch.qr.templates.expiry_error`).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from switch.domain.money import AmountError, Money
from switch.domain.payment import Party
from switch.qr.emvco import QrError, decode
from switch.qr.templates import CreditorKind, QrRoute, read_route

# QR creditor kinds that are partner proxies, and their proxy type (as in instruction v1)
QR_PROXY_TYPES: Final = {CreditorKind.MOBILE: "MOBILE", CreditorKind.NATID: "NATID", CreditorKind.EWALLET: "EWALLET"}


@dataclass(frozen=True, slots=True)
class Reject:
    """Why the switch does not take an instruction: an ISO external status reason code and the
    text the participant reads. A value, not an exception (STYLE §8: client errors are values)."""

    reason_code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Instruction:
    participant: str
    instruction_id: str
    debtor: Party  # name and Bakong account (`name@bank`); admission checks it is the participant's
    debtor_currency: str  # the debtor account's currency
    creditor: Party | None  # as given, or as the QR names it; None only when the QR is unreadable
    instructed: Money | None  # the amount the sender gave; None: none (a QR's own amount is in `qr`)
    corridor: str | None  # the corridor the sender named (a QR's own corridor is in `qr`)
    remittance: str | None
    qr: QrRoute | None = None  # the scanned QR, decoded and routed, its expiry not yet checked
    origin: str | None = None  # pain.001 MsgId, PmtInfId, EndToEndId (tab-separated); None for JSON
    unreadable: Reject | None = None  # what the edge could not read (the QR, else the amount)
    limited: Reject | None = None  # over its participant's rate: refused before anything is looked at
    debtor_tier: str | None = None  # the debtor's limit tier (corridors.toml [tiers]); None: the corridor's default
    quote_id: str | None = None  # a quote asked for first (issue 11): admission honours it or refuses


def qr_creditor(route: QrRoute) -> Party:
    """The creditor a QR names: a partner proxy, or an account at the agent the QR gives."""
    c = route.creditor
    name = route.creditor_name or c.value
    proxy_type = QR_PROXY_TYPES.get(c.kind)
    if proxy_type is not None:
        return Party(name=name, proxy_type=proxy_type, proxy=c.value)
    return Party(name=name, account=c.value, agent=c.agent)


def read_instruction(
    *,
    participant: str,
    instruction_id: str,
    debtor: Party,
    debtor_currency: str,
    creditor: Party | None,
    amount: tuple[str, str] | None,
    qr: str | None,
    corridor: str | None,
    remittance: str | None,
    origin: str | None = None,
    debtor_tier: str | None = None,
    quote_id: str | None = None,
) -> Instruction:
    """The instruction, its QR payload (if any) decoded once and its amount (decimal text and
    currency, if any) read exactly. Never raises for what the sender wrote."""
    route: QrRoute | None = None
    unreadable: Reject | None = None
    if qr is not None:
        try:
            route = read_route(decode(qr))
        except QrError as exc:
            unreadable = Reject(exc.reason_code, str(exc))
        else:
            creditor = qr_creditor(route)
    instructed: Money | None = None
    if amount is not None and unreadable is None:
        try:
            instructed = Money.parse(*amount)
        except AmountError as exc:
            unreadable = Reject(exc.reason_code, str(exc))
    return Instruction(
        participant, instruction_id, debtor, debtor_currency, creditor, instructed, corridor, remittance, route, origin,
        unreadable, debtor_tier=debtor_tier, quote_id=quote_id,
    )
