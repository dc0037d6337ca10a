"""Sample values shared by the tests: one payment and one instruction v1, changed per test."""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any

from switch.domain.money import CURRENCIES, Money
from switch.domain.payment import Identification, Party, Payment, PaymentState, PostalAddress

SAMPLE_UETR = "5f0e7a1c-3b2d-4e6f-8a9b-0c1d2e3f4a5b"

# issue 12: the sample debtor's address and identification (FATF R16 originator data; made up)
DEBTOR_ADDRESS: dict[str, Any] = {
    "street": "Preah Norodom Boulevard", "building": "41", "post_code": "120207", "town": "Phnom Penh",
    "country": "KH",
}
DEBTOR_IDENTIFICATION: dict[str, Any] = {
    "national_id": {"value": "010203040", "issuer": "KH"},
    "birth": {"date": "1985-04-12", "city": "Phnom Penh", "country": "KH"},
}
SAMPLE_DEBTOR_ADDRESS = PostalAddress(
    country="KH", town="Phnom Penh", street="Preah Norodom Boulevard", building="41", post_code="120207"
)
SAMPLE_DEBTOR_IDENTIFICATION = Identification(
    national_id="010203040", national_id_issuer="KH", birth_date=date(1985, 4, 12), birth_city="Phnom Penh",
    birth_country="KH",
)

_INSTRUCTION: dict[str, Any] = {
    "version": 1,
    "instruction_id": "INS-0001",
    "participant": "ACLBKHPPXXX",
    "corridor": "KH-TH",
    "debtor": {"name": "Sok Dara", "account": "sok_dara@aclb", "currency": "KHR",
               "address": DEBTOR_ADDRESS, "identification": DEBTOR_IDENTIFICATION},
    "creditor": {"name": "Somchai Jaidee", "proxy": {"type": "MOBILE", "value": "0066812345678"}},
    "amount": {"value": "200000", "currency": "KHR"},
    "remittance": "Family support",
}


def sample_instruction(**changes: Any) -> dict[str, Any]:
    """A valid instruction v1 as a participant sends it (a fresh copy, top-level keys replaced)."""
    doc = copy.deepcopy(_INSTRUCTION)
    doc.update(changes)
    return doc


def sample_payment(
    state: PaymentState,
    *,
    created_at: datetime,
    version: int = 1,
    reason_code: str | None = None,
    uetr: str = SAMPLE_UETR,
) -> Payment:
    """200,000 KHR to a PromptPay mobile proxy at 0.0082882132 THB/KHR, with a 2,000 KHR fee."""
    khr, thb = CURRENCIES["KHR"], CURRENCIES["THB"]
    return Payment(
        uetr=uetr,
        instruction_id="INS-0001",
        participant="ACLBKHPPXXX",
        corridor="KH-TH",
        partner="promptpay",
        debtor=Party(name="Sok Dara", account="sok_dara@aclb", agent="ACLBKHPPXXX",
                     address=SAMPLE_DEBTOR_ADDRESS, identification=SAMPLE_DEBTOR_IDENTIFICATION),
        creditor=Party(name="Somchai Jaidee", proxy_type="MOBILE", proxy="0066812345678"),
        instructed=Money(20_000_000, khr),
        source=Money(20_000_000, khr),
        target=Money(165_764, thb),
        fee=Money(200_000, khr),
        fx_rate="0.0082882132",
        quote_id="Q0123456789abcdef01234567",
        remittance=None,
        state=state,
        reason_code=reason_code,
        version=version,
        created_at=created_at,
        updated_at=created_at,
    )


# ---------------------------------------------------------------- one sample per partner network
# Sample creditors (test data, not real people or accounts) and the rate target per KHR used by
# the golden files; amounts are 200,000 KHR each, converted with ROUND_DOWN.
PARTNER_SAMPLES: dict[str, dict[str, Any]] = {
    "promptpay": {
        "corridor": "KH-TH", "currency": "THB", "rate": "0.0082882132", "target_minor": 165_764,
        "creditor": Party(name="Somchai Jaidee", proxy_type="MOBILE", proxy="0066812345678"),
        "instruction_creditor": {"name": "Somchai Jaidee", "proxy": {"type": "MOBILE", "value": "0066812345678"}},
    },
    "lapnet": {
        "corridor": "KH-LA", "currency": "LAK", "rate": "5.3259532595", "target_minor": 106_519_000,  # 1,065,190 kip
        "creditor": Party(name="ສົມພອນ ແກ້ວມະນີ", account="0101000123456789", agent="27710418",  # BCEL IIN [O]
                          address=PostalAddress(country="LA", town="Vientiane", lines=("Ban Sisaket", "Chanthabouly"))),
        "instruction_creditor": {"name": "ສົມພອນ ແກ້ວມະນີ", "account": "0101000123456789", "agent": "27710418",
                                 "address": {"town": "Vientiane", "country": "LA", "lines": ["Ban Sisaket", "Chanthabouly"]}},
    },
    "napas": {
        "corridor": "KH-VN", "currency": "VND", "rate": "6.3910000000", "target_minor": 1_278_200,
        "creditor": Party(name="Nguyễn Văn Đức", account="0011004123456", agent="970436",  # Vietcombank BIN [O]
                          address=PostalAddress(country="VN", town="Hà Nội", street="Phố Huế", building="12")),
        "instruction_creditor": {"name": "Nguyễn Văn Đức", "account": "0011004123456", "agent": "970436",
                                 "address": {"street": "Phố Huế", "building": "12", "town": "Hà Nội", "country": "VN"}},
    },
    "unionpay": {
        "corridor": "KH-CN", "currency": "CNY", "rate": "0.0017749077", "target_minor": 35_498,
        "creditor": Party(name="王小明", account="6212345678901232", agent="01040000"),  # Luhn-valid sample PAN
        "instruction_creditor": {"name": "王小明", "account": "6212345678901232", "agent": "01040000"},
    },
}


def sample_partner_payment(
    partner: str, state: PaymentState, *, created_at: datetime, uetr: str = SAMPLE_UETR, **changes: Any
) -> Payment:
    """200,000 KHR from a Bakong wallet to PARTNER_SAMPLES[partner]'s creditor, Khmer debtor name."""
    sample = PARTNER_SAMPLES[partner]
    khr = CURRENCIES["KHR"]
    fields: dict[str, Any] = dict(
        uetr=uetr,
        instruction_id="INS-0001",
        participant="ACLBKHPPXXX",
        corridor=sample["corridor"],
        partner=partner,
        debtor=Party(name="សុខ ដារា", account="sok_dara@aclb", agent="ACLBKHPPXXX",
                     address=SAMPLE_DEBTOR_ADDRESS, identification=SAMPLE_DEBTOR_IDENTIFICATION),
        creditor=sample["creditor"],
        instructed=Money(20_000_000, khr),
        source=Money(20_000_000, khr),
        target=Money(sample["target_minor"], CURRENCIES[sample["currency"]]),
        fee=Money(0, khr),
        fx_rate=sample["rate"],
        quote_id="Q0123456789abcdef01234567",
        remittance="Family support",
        state=state,
        reason_code=None,
        version=1,
        created_at=created_at,
        updated_at=created_at,
    )
    fields.update(changes)
    return Payment(**fields)


def sample_partner_instruction(partner: str, **changes: Any) -> dict[str, Any]:
    """A valid instruction v1 on the partner's corridor, to its sample creditor."""
    sample = PARTNER_SAMPLES[partner]
    return sample_instruction(**{
        "corridor": sample["corridor"],
        "debtor": {"name": "សុខ ដារា", "account": "sok_dara@aclb", "currency": "KHR",
                   "address": copy.deepcopy(DEBTOR_ADDRESS), "identification": copy.deepcopy(DEBTOR_IDENTIFICATION)},
        "creditor": copy.deepcopy(sample["instruction_creditor"]),
        **changes,
    })
