"""The Kafka contracts with participants: instruction v1 in, status event v1 out (README documents both).

Parsed with pydantic at the edge (`extra="forbid"`, strict types) and turned into domain values
there. Amounts travel as decimal text, never as JSON numbers.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any, Literal

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from rigour.territories import get_territory
from stdnum import lei as stdnum_lei
from stdnum.exceptions import ValidationError as StdnumError

from switch import limits

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class AmountV1(_Strict):
    value: str = Field(pattern=r"^[0-9]{1,18}(\.[0-9]{1,5})?$", description="decimal text, e.g. '1500.00'")
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class ProxyV1(_Strict):
    type: Literal["MOBILE", "NATID", "EWALLET"]
    value: str = Field(min_length=1, max_length=64)


def _country_code(value: str) -> str:
    """An ISO 3166-1 alpha-2 code as rigour's territory table knows it (current, with an alpha-3:
    not EU, ZZ or a dissolved country) [O ISO 3166-1 via rigour]; XK (Kosovo, user-assigned but
    used by Swift and the EU) passes too [U]."""
    territory = get_territory(value) if len(value) == 2 and value.isascii() and value.isupper() else None
    if territory is None or territory.code != value.lower() or territory.alpha3 is None or territory.is_historical:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value


def _lei(value: str) -> str:
    try:
        return str(stdnum_lei.validate(value))
    except StdnumError as exc:
        raise ValueError(f"{value!r} is not a valid LEI (ISO 17442): {exc}") from None


def _birth_date(value: str) -> str:
    """An ISO date (YYYY-MM-DD) from 1900 to today. Kept as text in the contract: the Kafka edge
    validates strictly from JSON, where a date is a string."""
    try:
        if len(value) != 10 or value[4] != "-":
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError("birth date is not an ISO date (YYYY-MM-DD)") from None
    # the date itself stays out of the message: it becomes a refusal reason, and birth dates are
    # personal data that are not logged
    if day < date(1900, 1, 1):
        raise ValueError("birth date is before 1900")
    if day > date.today():
        raise ValueError("birth date is in the future")
    return value


Country = Annotated[str, AfterValidator(_country_code)]
BirthDate = Annotated[str, AfterValidator(_birth_date)]
_Text35 = Annotated[str, Field(min_length=1, max_length=35)]


class AddressV1(_Strict):
    """A postal address (issue 12, FATF R16, CBPR+): structured, or hybrid (town and country plus
    at most two free lines). Town and country are always required; ISO 20022 PostalAddress24
    lengths."""

    street: str | None = Field(default=None, min_length=1, max_length=70)
    building: str | None = Field(default=None, min_length=1, max_length=16)
    post_code: str | None = Field(default=None, min_length=1, max_length=16)
    town: str = Field(min_length=1, max_length=35, pattern=r"\S")  # not blank
    subdivision: str | None = Field(default=None, min_length=1, max_length=35)
    country: Country
    lines: list[Annotated[str, Field(min_length=1, max_length=70)]] | None = Field(default=None, max_length=2)


class NationalIdV1(_Strict):
    value: str = Field(min_length=1, max_length=35)
    issuer: str = Field(min_length=1, max_length=35, description="the issuing country (alpha-2) or authority")


class BirthV1(_Strict):
    date: BirthDate = Field(description="ISO date, YYYY-MM-DD")
    city: _Text35
    country: Country


class IdentificationV1(_Strict):
    """How the debtor is identified (issue 12, FATF R16): a national id with its issuer, and/or date
    and place of birth, or (an organisation) its LEI."""

    national_id: NationalIdV1 | None = None
    birth: BirthV1 | None = None
    lei: Annotated[str, AfterValidator(_lei)] | None = None

    @model_validator(mode="after")
    def _something(self) -> "IdentificationV1":
        if self.national_id is None and self.birth is None and self.lei is None:
            raise ValueError("identification needs at least one of national_id, birth or lei")
        return self


class DebtorV1(_Strict):
    name: str = Field(min_length=1, max_length=140)
    account: str = Field(min_length=3, max_length=32, pattern=r"^[^@\s]+@[a-z0-9_]+$")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="the debtor account's currency (KHR or USD)")
    # issue 12: FATF R16 originator data, optional here (the corridor's rules say when it is required)
    address: AddressV1 | None = None
    identification: IdentificationV1 | None = None


class CreditorV1(_Strict):
    name: str = Field(min_length=1, max_length=140)
    account: str | None = Field(default=None, min_length=1, max_length=34)
    agent: str | None = Field(default=None, min_length=1, max_length=35, description="partner bank code")
    proxy: ProxyV1 | None = None
    address: AddressV1 | None = None  # issue 12: the beneficiary's address, where known

    @model_validator(mode="after")
    def _one_way_to_reach(self) -> "CreditorV1":
        if (self.proxy is None) == (self.account is None):
            raise ValueError("creditor needs exactly one of account or proxy")
        if self.account is not None and self.agent is None:
            raise ValueError("a creditor account needs its agent (the partner bank code)")
        return self


class InstructionV1(_Strict):
    """A participant's payment instruction, topic `mekong.instructions`, JSON.

    The creditor is given either as `creditor` (with `corridor` and `amount`) or as an EMVCo
    `qr` payload the payer scanned (KHQR, Thai QR, VietQR, LAO QR, UnionPay): the switch decodes
    it and takes corridor, creditor and, from a dynamic QR, the amount out of it. With a QR,
    `corridor` and `amount` are optional; when given they must agree with the QR."""

    version: Literal[1]
    instruction_id: str = Field(min_length=1, max_length=limits.instruction_id_chars_max, pattern=_ID)
    participant: str = Field(pattern=r"^[A-Z0-9]{8}([A-Z0-9]{3})?$")
    corridor: str | None = Field(default=None, pattern=r"^[A-Z]{2}-[A-Z]{2,3}$")
    debtor: DebtorV1
    creditor: CreditorV1 | None = None
    qr: str | None = Field(default=None, min_length=12, max_length=limits.qr_payload_chars_max)
    amount: AmountV1 | None = None
    remittance: str | None = Field(default=None, max_length=140)
    # issue 11: the debtor's limit tier (config/corridors.toml [tiers]: per-payment and per-day
    # maximums); absent: the corridor's default tier
    debtor_tier: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,31}$")
    # a quote asked for first (issue 11: POST /v1/quotes or a quote request on mekong.requests):
    # honoured exactly (rate, fee, amounts) until it expires, by one instruction only
    quote_id: str | None = Field(default=None, pattern=r"^Q[0-9a-f]{24}$")

    @model_validator(mode="after")
    def _creditor_or_qr(self) -> "InstructionV1":
        if (self.creditor is None) == (self.qr is None):
            raise ValueError("give exactly one of creditor or qr")
        if self.qr is None and (self.corridor is None or self.amount is None):
            raise ValueError("corridor and amount are required unless the creditor comes from a qr")
        return self

    def fingerprint(self) -> str:
        """The idempotency fingerprint: SHA-256 of the validated instruction in canonical JSON
        (the model's field order, so the sender's key order does not matter; unknown fields
        cannot exist). Fields added later (debtor_tier, quote_id: issue 11) are left out when
        absent, so an instruction's fingerprint is the one it had before they existed (resends
        across the upgrade replay, not conflict). The same for the parties' address and
        identification (issue 12)."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def canonical_json(self) -> str:
        """The validated instruction as canonical JSON (what the fingerprint hashes), the fields
        added later left out when absent (see fingerprint)."""
        absent: dict[str, Any] = {name: True for name in ("debtor_tier", "quote_id") if getattr(self, name) is None}
        debtor = {name: True for name in ("address", "identification") if getattr(self.debtor, name) is None}
        if debtor:
            absent["debtor"] = debtor
        if self.creditor is not None and self.creditor.address is None:
            absent["creditor"] = {"address": True}
        return self.model_dump_json(exclude=absent or None)


class ExceptionV1(BaseModel):
    """What a status event says about an exception (issue 9): a status enquiry, a return or a
    recall of the payment, as the case the switch keeps for it (`case_id`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case_id: str
    kind: Literal["enquiry", "return", "recall"]
    initiator: Literal["switch", "operator", "participant", "partner"]
    state: str  # OPEN, SENT, AWAITING_RETURN, DONE, REFUSED, UNANSWERED, REJECTED
    reason_code: str | None = None
    reason: str | None = None
    request_id: str | None = None  # the participant's request that opened it, if one did
    # a return: the amount that came back in the partner's currency, the same converted back to
    # the debtor's currency, the rate used and its rule (the corridor's return_fx)
    returned_amount: AmountV1 | None = None
    back_amount: AmountV1 | None = None
    rate: str | None = None
    rate_rule: Literal["original", "current"] | None = None
    reply_by: datetime | None = None


class StatusEventV1(BaseModel):
    """What the switch tells a participant, topic `mekong.status`, JSON, key = instruction id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    # the same id whenever this event is published again (after a crash, a retry): a participant
    # deduplicates on it; a new event (a replay of an outcome, a conflict) has a new id
    event_id: str | None = None
    # "status": the instruction's state; "conflict": the instruction id was reused with another
    # payload, this new record was refused and the first one stands (state CONFLICT, never final)
    # "exception": news of a case about the payment (a recall refused or unanswered, a request the
    # switch refused); `exception` says which (issue 9). A status event whose state came from a
    # case (RETURNED, CANCELLED, ...) carries `exception` too
    type: Literal["status", "conflict", "exception"] = "status"
    instruction_id: str
    participant: str
    uetr: str | None  # None only when the switch could not admit the instruction at all
    corridor: str | None
    state: str
    final: bool
    reason_code: str | None = None
    reason: str | None = None
    source_amount: AmountV1 | None = None
    target_amount: AmountV1 | None = None
    fee: AmountV1 | None = None
    fx_rate: str | None = None
    # what the debtor really gets per unit paid: target ÷ (source + fee), truncated to a
    # BaseOneRate (issue 11: Nexus requires it shown); None when no amounts are known
    effective_rate: str | None = None
    quote_id: str | None = None  # the quote the payment was priced with (asked first, or at admission)
    replayed: bool = False  # true when this repeats the outcome of an earlier identical instruction
    direction: Literal["outbound", "inbound"] = "outbound"  # inbound: instruction_id is the partner's EndToEndId
    exception: ExceptionV1 | None = None
    # the payment's version when the event was written (it grows with every move of the payment).
    # Events of one payment are published in order, but after a crash or a replica's takeover an
    # older event can reach the topic after a newer one: a participant keeps, per payment, the
    # event with the highest payment_version (issue 9: a payment has several events after its outcome)
    payment_version: int | None = None
    occurred_at: datetime


class InboundAddressV1(BaseModel):
    """A party's postal address as the partner's pacs.008 gave it (issue 12): the fields of
    AddressV1, passed on as received (up to the XSD's seven lines, any town)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    street: str | None = None
    building: str | None = None
    post_code: str | None = None
    town: str | None = None
    subdivision: str | None = None
    country: str
    lines: list[str] | None = None


class InboundNationalIdV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    value: str
    issuer: str | None = None


class InboundBirthV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    date: str  # ISO date
    city: str | None = None
    country: str | None = None


class InboundIdentificationV1(BaseModel):
    """The originator's identification as the partner's pacs.008 gave it (issue 12): the shape of
    IdentificationV1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    national_id: InboundNationalIdV1 | None = None
    birth: InboundBirthV1 | None = None
    lei: str | None = None


class InboundPartyV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    account: str | None = None  # Bakong `name@bank` (creditor) or the foreign account (debtor)
    mobile: str | None = None  # the creditor's Bakong mobile, when the partner paid a mobile number
    agent: str | None = None  # debtor: the foreign bank's id in its network; creditor: the participant
    # issue 12 (FATF R16: originator data travels to the beneficiary institution): the address,
    # and the debtor's identification, when the partner sent them
    address: InboundAddressV1 | None = None
    identification: InboundIdentificationV1 | None = None


class InboundPaymentV1(BaseModel):
    """A partner network pays a Bakong customer: topic `mekong.inbound`, JSON, key =
    participant/uetr. The beneficiary participant credits the account and answers on
    `mekong.inbound.replies` before `reply_by`, or the switch rejects it to the partner (AB05)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    uetr: str
    participant: str  # the beneficiary's Bakong participant
    corridor: str  # e.g. TH-KH
    partner: str
    end_to_end_id: str
    debtor: InboundPartyV1
    creditor: InboundPartyV1
    amount: AmountV1  # what to credit, in the Bakong account's currency
    instructed_amount: AmountV1 | None = None  # what the payer sent, when the partner converted
    remittance: str | None = None
    reply_by: datetime
    occurred_at: datetime


class InboundReplyV1(_Strict):
    """The beneficiary participant's answer to an inbound payment: topic
    `mekong.inbound.replies`, JSON. ACCEPT once the account is credited; REJECT with an ISO
    external status reason code (AC01 unknown account, AC04 closed, AC06 blocked, ...)."""

    version: Literal[1]
    uetr: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    participant: str = Field(pattern=r"^[A-Z0-9]{8}([A-Z0-9]{3})?$")
    decision: Literal["ACCEPT", "REJECT"]
    reason_code: str | None = Field(default=None, pattern=r"^[A-Z0-9]{4}$")
    reason: str | None = Field(default=None, max_length=105)

    @model_validator(mode="after")
    def _reason_for_reject(self) -> "InboundReplyV1":
        if (self.decision == "REJECT") != (self.reason_code is not None):
            raise ValueError("a REJECT needs a reason_code, an ACCEPT takes none")
        return self


# ---------------------------------------------------------------- mekong.requests (issue 9)

_UETR = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
_PARTICIPANT = r"^[A-Z0-9]{8}([A-Z0-9]{3})?$"
_REQUEST_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,34}$"


class ReturnRequestV1(_Strict):
    """A Bakong participant returns an inbound payment it had credited (all of it, or `amount`
    of it): the switch sends the partner that paid it a pacs.004."""

    version: Literal[1]
    type: Literal["return"]
    request_id: str = Field(pattern=_REQUEST_ID)  # the participant's own id: the same again is the same request
    participant: str = Field(pattern=_PARTICIPANT)
    uetr: str = Field(pattern=_UETR)
    amount: AmountV1 | None = None  # None: what remains unreturned
    reason_code: str = Field(pattern=r"^[A-Z0-9]{4}$")  # ISO ExternalReturnReason1Code: AC04, CUST, FRAD, MD06, ...
    reason: str | None = Field(default=None, max_length=105)


class RecallRequestV1(_Strict):
    """A Bakong participant recalls one of its outbound payments, by UETR or instruction id."""

    version: Literal[1]
    type: Literal["recall"]
    request_id: str = Field(pattern=_REQUEST_ID)
    participant: str = Field(pattern=_PARTICIPANT)
    uetr: str | None = Field(default=None, pattern=_UETR)
    instruction_id: str | None = Field(default=None, min_length=1, max_length=35)
    reason_code: Literal["DUPL", "FRAD", "TECH", "CUST", "AM09"]
    reason: str | None = Field(default=None, max_length=105)

    @model_validator(mode="after")
    def _names_one_payment(self) -> "RecallRequestV1":
        if (self.uetr is None) == (self.instruction_id is None):
            raise ValueError("a recall names the payment by exactly one of uetr or instruction_id")
        return self


class RecallReplyV1(_Strict):
    """The beneficiary participant's answer to a partner's recall of an inbound payment
    (`InboundRecallV1` on mekong.inbound): ACCEPT (the switch returns the money with a pacs.004
    and confirms with a camt.029) or REFUSE with a camt.029 reason (CUST, LEGL, AC04, NOAS, ARDT, AM04)."""

    version: Literal[1]
    type: Literal["recall_reply"]
    request_id: str = Field(pattern=_REQUEST_ID)
    participant: str = Field(pattern=_PARTICIPANT)
    case_id: str = Field(pattern=r"^C[0-9a-f]{32}$")
    decision: Literal["ACCEPT", "REFUSE"]
    reason_code: str | None = Field(default=None, pattern=r"^[A-Z0-9]{4}$")
    reason: str | None = Field(default=None, max_length=105)

    @model_validator(mode="after")
    def _reason_for_refusal(self) -> "RecallReplyV1":
        if (self.decision == "REFUSE") != (self.reason_code is not None):
            raise ValueError("a REFUSE needs a reason_code, an ACCEPT takes none")
        return self


class QuoteAskV1(_Strict):
    """What a participant asks a quote for (issue 11), on the operations API (POST /v1/quotes):
    a corridor and exactly one fixed amount. `source_amount` fixed: the debtor pays that (plus
    the fee) and the creditor gets what it converts to. `target_amount` fixed: the creditor
    gets exactly that; `source_currency` (the debtor account's) says what the debtor pays in."""

    participant: str = Field(pattern=_PARTICIPANT)
    corridor: str = Field(pattern=r"^[A-Z]{2}-[A-Z]{2,3}$")
    source_amount: AmountV1 | None = None
    target_amount: AmountV1 | None = None
    source_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")

    @model_validator(mode="after")
    def _one_fixed_amount(self) -> "QuoteAskV1":
        if (self.source_amount is None) == (self.target_amount is None):
            raise ValueError("give exactly one of source_amount or target_amount")
        if self.target_amount is not None and self.source_currency is None:
            raise ValueError("a target_amount quote needs source_currency (the debtor account's currency)")
        if self.source_amount is not None and self.source_currency not in (None, self.source_amount.currency):
            raise ValueError("source_currency differs from source_amount's currency")
        return self


class QuoteRequestV1(QuoteAskV1):
    """A quote asked on Kafka: topic `mekong.requests`, `type: "quote"`, signed like every request;
    answered by a QuoteV1 on `mekong.quotes` (key participant/request_id). The same request_id
    again (a redelivery, a resend) is answered with the same quote."""

    version: Literal[1]
    type: Literal["quote"]
    request_id: str = Field(pattern=_REQUEST_ID)


class QuoteV1(BaseModel):
    """The answer to a quote request (issue 11): on `mekong.quotes` for a Kafka request, and the
    body of POST /v1/quotes. state QUOTED with the terms, or REFUSED with an ISO reason code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    type: Literal["quote"] = "quote"
    event_id: str | None = None  # the same on every republication
    request_id: str | None = None
    participant: str
    corridor: str
    state: Literal["QUOTED", "REFUSED"]
    reason_code: str | None = None
    reason: str | None = None
    quote_id: str | None = None
    fixed: Literal["source", "target"] | None = None
    source_amount: AmountV1 | None = None  # what is converted (the fee is on top)
    target_amount: AmountV1 | None = None  # what the creditor gets
    fee: AmountV1 | None = None  # fixed + fee_bps of the source amount, in the source currency
    fee_bps: int | None = None
    debit_amount: AmountV1 | None = None  # source + fee: what the debtor is debited
    rate: str | None = None  # the customer rate (pacs.008 XchgRate): target units per source unit
    mid: str | None = None
    spread_bps: int | None = None
    effective_rate: str | None = None  # target ÷ (source + fee)
    rate_source: str | None = None
    rate_as_of: datetime | None = None
    rounding_favours: Literal["switch", "customer"] | None = None
    expires_at: datetime | None = None
    occurred_at: datetime


RequestV1 = Annotated[ReturnRequestV1 | RecallRequestV1 | RecallReplyV1 | QuoteRequestV1, Field(discriminator="type")]
REQUEST_ADAPTER: TypeAdapter[ReturnRequestV1 | RecallRequestV1 | RecallReplyV1 | QuoteRequestV1] = TypeAdapter(RequestV1)


class InboundRecallV1(BaseModel):
    """A partner recalls an inbound payment (camt.056): topic `mekong.inbound`, JSON, key =
    participant/uetr, `type: "recall"`. The beneficiary participant answers with a RecallReplyV1
    on mekong.requests before `reply_by`; silence is answered to the partner as a refusal (NOAS)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    type: Literal["recall"] = "recall"
    case_id: str
    uetr: str
    participant: str
    corridor: str
    partner: str
    end_to_end_id: str
    amount: AmountV1
    reason_code: str | None
    reason: str | None = None
    reply_by: datetime
    occurred_at: datetime


class SettlementStatementV1(BaseModel):
    """A participant's settlement statement for one partner's cycle (issue 10): topic
    `mekong.statements`, JSON, key = participant, one record per participant and currency each
    time a cycle is reconciled (`page`/`last_page` when it lists more movements than fit in one
    record). Amounts are integer minor units of `currency` (the participant's side); `net_minor`
    > 0: the participant owes the hub for the cycle, < 0: the hub owes it. `entries` are the
    movements both the switch and the partner's report agree settled in the cycle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    type: Literal["settlement_statement"] = "settlement_statement"
    statement_id: str  # cycle id / participant / currency / page
    cycle_id: str
    partner: str
    participant: str
    currency: str
    settlement_date: date
    cut_off: datetime
    page: int
    last_page: bool
    debits_minor: int  # outbound payments debited (fees apart)
    credits_minor: int  # inbound payments credited
    returns_in_minor: int  # returns credited back to the participant
    returns_out_minor: int  # returns the participant sent back
    fees_minor: int
    net_minor: int
    count: int
    entries: list[dict[str, Any]]  # uetr, kind, direction, amount_minor, fee_minor, settlement_amount_minor, settlement_currency
    issued_at: datetime
