"""Recognise the scheme of a decoded QR and say where the payment goes (PARTNERS.md "QR codes").

`route(payload, now=...)` returns a `QrRoute`: scheme, corridor, creditor, currency, amount text,
dynamic flag and expiry. It is `read_route(payload)` (everything but the time) followed by
`expiry_error(route, now=...)`: the switch reads a scanned QR once, where the instruction arrives,
and checks the expiry when it admits the payment. Schemes, in the order they are tried:

* **KHQR** (domestic Bakong, corridor None): template 29 (individual: 00 Bakong account id,
  01 account information, 02 acquiring bank) or 30 (merchant: 00 account id, 01 merchant id,
  02 acquiring bank), told apart from Thai QR by the ``local@institution`` account id in 00.
  58 ``KH``; 53 ``116`` or ``840``, and ``116`` only when the QR also carries UnionPay tag 15;
  59 and 60 are required (the KHQR SDKs require them). 99 holds 00 created / 01 expires, 13-digit
  Unix milliseconds. A dynamic KHQR (01 = ``12``) whose expiry is at or before `now` is rejected.
  A dynamic KHQR without an expiry is accepted (QRs from SDKs before the expiry field exist); a
  static one is never checked against its expiry.
* **Thai QR / PromptPay** (``KH-TH``): AID ``A000000677010111`` (or ``…0114``, one-time) with
  01 mobile, 02 national id / tax id, 03 e-wallet, 04 bank account (exactly one); AID
  ``A000000677010112`` (bill payment) or ``A000000677012006`` (cross-border bill payment) with
  01 biller id, 02 ref1, 03 ref2. 53 ``764``, 58 ``TH``.
* **VietQR** (``KH-VN``): template 38 with GUID ``A000000727``, 01 nested (00 BIN, 01
  account / card / merchant id), 02 service ``QRIBFTTA`` / ``QRIBFTTC`` / ``QRPUSH``. 53 ``704``,
  58 ``VN``.
* **LAO QR** (``KH-LA``): template 38 with AID ``A005266284662577``, 01 IIN (8 digits), 02 payment
  type, 03 receiver id. 53 ``418``, 58 ``LA``. [O] in PARTNERS.md: modelled on public code.
* **UnionPay** (``KH-CN``): tag 15 = acquirer IIN (8) + forwarding IIN (8) + merchant id (15),
  used only when no template above is present (a KHQR carrying tag 15 beside its Bakong template
  is paid domestically through Bakong). A KH UnionPay QR must be in KHR. [O, layout inferred]

Reason codes (ISO external status reasons, PARTNERS.md list):

* ``FF01`` a field a scheme needs is missing or malformed (wrong country for the scheme, a proxy
  of the wrong length, a BIN that is not 6 digits, a timestamp that is not 13 digits ...).
* ``CURR`` the currency is not one the scheme takes (KHQR not 116/840, Thai QR not 764, a KHR-only
  UnionPay KHQR in USD) or not an ISO 4217 currency the switch knows.
* ``CH20`` the amount has more decimals than the currency takes in practice (KHR, LAK, VND:
  integers), exactly as `Money.parse` says; ``AM09`` an amount of zero.
* ``AG01`` (transaction forbidden) no template of a network the switch routes, e.g. an unknown
  AID: the QR may be valid EMVCo, the switch has no corridor for it. This is the code the
  instruction handler gives "no open corridor", so a QR and an instruction for the same missing
  corridor are refused alike.
* ``TM01`` an expired dynamic KHQR. TM01 (InvalidCutOffTime) is "received after the agreed
  processing cut-off time"; the expiry in 99/01 is exactly that, a cut-off the creditor set for
  this one payment request. The alternatives fit worse: ``AB05``/``AB06`` are timeouts of an agent
  in the chain, nothing timed out; ``NARR`` carries no meaning a machine can act on; the AM codes
  are about the amount. Paying an expired KHQR is refused for the same reason as a payment
  after cut-off: the creditor no longer expects it.

Pure: no I/O, `now` is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Final, NamedTuple

from switch.domain.money import CURRENCIES, Currency, Money
from switch.qr.emvco import (
    FORMAT_INVALID,
    SUBTAG_NAMES,
    TAG_NAMES,
    QrError,
    QrPayload,
    decode,
    parse_template,
)

bakong_account_id_chars_max: Final = 32  # local@institution (PARTNERS.md, Identifiers)
khqr_timestamp_digits: Final = 13  # Unix milliseconds
napas_bin_digits: Final = 6
napas_id_chars_max: Final = 19  # account / card number
lapnet_iin_digits: Final = 8
unionpay_iin_digits: Final = 8
unionpay_merchant_id_chars: Final = 15
promptpay_mobile_chars: Final = 13  # 0066 + 9 digits
promptpay_natid_digits: Final = 13
promptpay_ewallet_digits: Final = 15
promptpay_bank_code_digits: Final = 3

CURRENCY_INVALID: Final = "CURR"
DECIMALS_INVALID: Final = "CH20"
AMOUNT_INVALID: Final = "AM09"
NOT_ROUTED: Final = "AG01"
EXPIRED: Final = "TM01"


class QrScheme(StrEnum):
    KHQR = "KHQR"
    THAI_QR = "THAI_QR"  # PromptPay
    VIETQR = "VIETQR"
    LAO_QR = "LAO_QR"
    UNIONPAY = "UNIONPAY"


class CreditorKind(StrEnum):
    BAKONG_ACCOUNT = "BAKONG_ACCOUNT"  # KHQR 29: individual
    BAKONG_MERCHANT = "BAKONG_MERCHANT"  # KHQR 30: merchant
    MOBILE = "MOBILE"  # PromptPay proxies ...
    NATID = "NATID"
    EWALLET = "EWALLET"
    BANK_ACCOUNT = "BANK_ACCOUNT"  # PromptPay 04: bank code + account
    BILLER = "BILLER"  # PromptPay bill payment
    ACCOUNT = "ACCOUNT"  # VietQR QRIBFTTA
    CARD = "CARD"  # VietQR QRIBFTTC
    MERCHANT = "MERCHANT"  # VietQR QRPUSH
    RECEIVER = "RECEIVER"  # LAO QR receiver id
    UNIONPAY_MERCHANT = "UNIONPAY_MERCHANT"


PROMPTPAY_TRANSFER_AID: Final = "A000000677010111"
PROMPTPAY_ONE_TIME_AID: Final = "A000000677010114"
PROMPTPAY_BILL_AID: Final = "A000000677010112"
PROMPTPAY_CROSS_BORDER_BILL_AID: Final = "A000000677012006"
VIETQR_GUID: Final = "A000000727"
LAOQR_AID: Final = "A005266284662577"


class SchemeRules(NamedTuple):
    """What a scheme requires of tags 58 and 53 (None: any), and its corridor from Cambodia."""

    scheme: QrScheme
    rank: int  # lower wins when a QR carries templates of several schemes
    corridor: str | None
    country: str | None
    currencies: frozenset[str] | None


KHQR_RULES: Final = SchemeRules(QrScheme.KHQR, 0, None, "KH", frozenset({"116", "840"}))
THAI_QR_RULES: Final = SchemeRules(QrScheme.THAI_QR, 1, "KH-TH", "TH", frozenset({"764"}))
VIETQR_RULES: Final = SchemeRules(QrScheme.VIETQR, 2, "KH-VN", "VN", frozenset({"704"}))
LAO_QR_RULES: Final = SchemeRules(QrScheme.LAO_QR, 3, "KH-LA", "LA", frozenset({"418"}))
UNIONPAY_RULES: Final = SchemeRules(QrScheme.UNIONPAY, 4, "KH-CN", None, None)
CORRIDORS: Final[Mapping[QrScheme, str | None]] = {
    r.scheme: r.corridor for r in (KHQR_RULES, THAI_QR_RULES, VIETQR_RULES, LAO_QR_RULES, UNIONPAY_RULES)
}

_AIDS: Final[Mapping[str, SchemeRules]] = {
    PROMPTPAY_TRANSFER_AID: THAI_QR_RULES,
    PROMPTPAY_ONE_TIME_AID: THAI_QR_RULES,
    PROMPTPAY_BILL_AID: THAI_QR_RULES,
    PROMPTPAY_CROSS_BORDER_BILL_AID: THAI_QR_RULES,
    VIETQR_GUID: VIETQR_RULES,
    LAOQR_AID: LAO_QR_RULES,
}
_MERCHANT_ACCOUNT_TAGS: Final = frozenset(f"{t:02d}" for t in range(2, 52))
_PROMPTPAY_PROXIES: Final = frozenset({"01", "02", "03", "04"})  # mobile, national id, e-wallet, bank account
_KHQR_TAGS: Final = frozenset({"29", "30"})
_DIGITS: Final = frozenset("0123456789")
_BY_NUMERIC: Final[Mapping[str, Currency]] = {c.numeric: c for c in CURRENCIES.values()}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS: Final = timedelta(milliseconds=1)


class CreditorId(NamedTuple):
    """Who is paid. `value` is the proxy / account / merchant id; `agent` the institution that
    holds it (PromptPay bank code, NAPAS BIN, LAPNet IIN, UnionPay acquirer IIN, KHQR acquiring
    bank) when the QR names one; `details` the rest, as (name, value) pairs.

    Immutable like the frozen dataclasses; a NamedTuple because one is built per payload on the
    hot path and costs a third of a frozen dataclass to make."""

    kind: CreditorKind
    value: str
    agent: str | None = None
    details: tuple[tuple[str, str], ...] = ()


class QrRoute(NamedTuple):
    """Where a decoded QR goes and who is paid. Immutable like a frozen dataclass; a NamedTuple,
    like `CreditorId`, because one is built per payload on the hot path (a 12-field frozen
    dataclass costs about five times as much to make)."""

    scheme: QrScheme
    corridor: str | None  # None: domestic KHQR
    creditor: CreditorId
    creditor_name: str | None  # tag 59
    creditor_city: str | None  # tag 60
    country: str  # tag 58
    currency: str  # ISO 4217 alpha, from the numeric tag 53
    amount: str | None  # tag 54 as text; None: the payer enters it (static QR)
    dynamic: bool  # tag 01 = 12
    expires_at: datetime | None = None  # KHQR 99/01
    created_at: datetime | None = None  # KHQR 99/00
    creditor_name_local: str | None = None  # tag 64/01 (Khmer, Thai ... script)

    def money(self) -> Money | None:
        return None if self.amount is None else Money.parse(self.amount, self.currency)


def _fail(message: str, tag: str | None) -> QrError:
    return QrError(FORMAT_INVALID, message, None, tag=tag)


def _require(template: Mapping[str, str], tag: str, subtag: str, what: str) -> str:
    value = template.get(subtag)
    if value is None:
        raise _fail(f"tag {tag}/{subtag}: {what} missing", f"{tag}/{subtag}")
    return value


def _digits(value: str, count: int, tag: str, what: str) -> str:
    if len(value) != count or not _DIGITS.issuperset(value):
        raise _fail(f"tag {tag}: {what} {value!r} is not {count} digits", tag)
    return value


# ----------------------------------------------------------------------------- scheme readers
def _khqr(tag: str, template: Mapping[str, str]) -> CreditorId:
    account = template["00"]
    if len(account) > bakong_account_id_chars_max:
        raise _fail(f"tag {tag}/00: Bakong account id longer than {bakong_account_id_chars_max}", f"{tag}/00")
    bank = template.get("02")
    if tag == "30":
        merchant = _require(template, tag, "01", "merchant id")
        bank = _require(template, tag, "02", "acquiring bank")
        return CreditorId(CreditorKind.BAKONG_MERCHANT, account, bank, (("MERCHANT_ID", merchant),))
    info = template.get("01")
    return CreditorId(CreditorKind.BAKONG_ACCOUNT, account, bank, () if info is None else (("ACCOUNT_INFO", info),))


def _promptpay(tag: str, template: Mapping[str, str], aid: str) -> CreditorId:
    if aid == PROMPTPAY_BILL_AID or aid == PROMPTPAY_CROSS_BORDER_BILL_AID:
        biller = _require(template, tag, "01", "biller id")
        details = [("REF1", _require(template, tag, "02", "reference 1"))]
        ref2 = template.get("03")
        if ref2 is not None:
            details.append(("REF2", ref2))
        if aid == PROMPTPAY_CROSS_BORDER_BILL_AID:
            details.append(("CROSS_BORDER", "1"))
        return CreditorId(CreditorKind.BILLER, biller, None, tuple(details))
    present = template.keys() & _PROMPTPAY_PROXIES
    if len(present) != 1:
        proxies = [s for s in sorted(_PROMPTPAY_PROXIES) if s in template]
        raise _fail(f"tag {tag}: PromptPay needs exactly one of 01..04, got {proxies or 'none'}", tag)
    (sub,) = present
    value = template[sub]
    where = f"{tag}/{sub}"
    details = (("ONE_TIME", "1"),) if aid == PROMPTPAY_ONE_TIME_AID else ()
    if sub == "01":
        return CreditorId(CreditorKind.MOBILE, _promptpay_mobile(value, where), None, details)
    if sub == "02":
        # the check digit is not verified: published test QRs carry invalid ones (PARTNERS.md)
        return CreditorId(CreditorKind.NATID, _digits(value, promptpay_natid_digits, where, "national id"), None, details)
    if sub == "03":
        return CreditorId(CreditorKind.EWALLET, _digits(value, promptpay_ewallet_digits, where, "e-wallet id"), None, details)
    if len(value) <= promptpay_bank_code_digits or not _DIGITS.issuperset(value):
        raise _fail(f"tag {where}: bank account {value!r} is not a 3-digit bank code and an account number", where)
    return CreditorId(CreditorKind.BANK_ACCOUNT, value[promptpay_bank_code_digits:], value[:promptpay_bank_code_digits], details)


def _promptpay_mobile(value: str, where: str) -> str:
    """The 13-character QR value (``0066`` + 9 digits; zero-padded ``66…``) as ``0066`` + 9 digits."""
    significant = value.lstrip("0")
    if len(value) != promptpay_mobile_chars or not _DIGITS.issuperset(value) or len(significant) != 11 \
            or not significant.startswith("66"):
        raise _fail(f"tag {where}: mobile {value!r} is not 0066 followed by 9 digits", where)
    return "00" + significant


def _vietqr(tag: str, template: Mapping[str, str]) -> CreditorId:
    inner = _require(template, tag, "01", "beneficiary organisation")
    beneficiary = parse_template(inner, f"{tag}/01")
    bank_bin = _digits(_require(beneficiary, f"{tag}/01", "00", "BIN"), napas_bin_digits, f"{tag}/01/00", "BIN")
    ident = _require(beneficiary, f"{tag}/01", "01", "account / card / merchant id")
    if len(ident) > napas_id_chars_max:
        raise _fail(f"tag {tag}/01/01: id longer than {napas_id_chars_max} characters", f"{tag}/01/01")
    service = _require(template, tag, "02", "service code")
    kind = _VIETQR_SERVICES.get(service)
    if kind is None:
        raise _fail(f"tag {tag}/02: unknown VietQR service {service!r} (QRIBFTTA, QRIBFTTC, QRPUSH)", f"{tag}/02")
    return CreditorId(kind, ident, bank_bin, (("SERVICE", service),))


_VIETQR_SERVICES: Final[Mapping[str, CreditorKind]] = {
    "QRIBFTTA": CreditorKind.ACCOUNT, "QRIBFTTC": CreditorKind.CARD, "QRPUSH": CreditorKind.MERCHANT,
}


def _laoqr(tag: str, template: Mapping[str, str]) -> CreditorId:
    iin = _digits(_require(template, tag, "01", "IIN"), lapnet_iin_digits, f"{tag}/01", "IIN")
    receiver = _require(template, tag, "03", "receiver id")
    payment_type = template.get("02")
    return CreditorId(CreditorKind.RECEIVER, receiver, iin, () if payment_type is None else (("PAYMENT_TYPE", payment_type),))


def _unionpay(value: str) -> CreditorId:
    iins = unionpay_iin_digits * 2
    if len(value) != iins + unionpay_merchant_id_chars or not _DIGITS.issuperset(value[:iins]):
        raise _fail(
            f"tag 15: UnionPay value {value!r} is not acquirer IIN (8 digits) + forwarding IIN (8 digits) "
            f"+ merchant id ({unionpay_merchant_id_chars})",
            "15",
        )
    return CreditorId(
        CreditorKind.UNIONPAY_MERCHANT, value[iins:], value[:unionpay_iin_digits],
        (("FORWARDING_IIN", value[unionpay_iin_digits:iins]),),
    )


# ----------------------------------------------------------------------------- route
def _scheme_of(payload: QrPayload) -> tuple[SchemeRules, str | None, str | None]:
    """(rules, template tag, AID); tag and AID are None for UnionPay."""
    best: SchemeRules | None = None
    best_tag = best_aid = None
    unknown: list[str] | None = None
    for tag, template in payload.templates.items():
        if tag not in _MERCHANT_ACCOUNT_TAGS:
            continue
        aid = template.get("00")
        if aid is None:
            (unknown := unknown or []).append(f"{tag} (no 00)")
            continue
        rules = _AIDS.get(aid)
        if rules is None:
            rules = _AIDS.get(aid.upper())
            if rules is None and tag in _KHQR_TAGS and "@" in aid:
                rules = KHQR_RULES
            if rules is None:
                (unknown := unknown or []).append(f"{tag} ({aid})")
                continue
        if best is None or rules.rank < best.rank:
            best, best_tag, best_aid = rules, tag, aid.upper()
    if best is not None:
        return best, best_tag, best_aid
    if "15" in payload.fields:
        return UNIONPAY_RULES, None, None
    if unknown:
        raise QrError(
            NOT_ROUTED, f"no network this switch routes: unknown AID in template {', '.join(unknown)}", None,
            tag=unknown[0][:2],
        )
    present = [t for t in payload.fields if t in _MERCHANT_ACCOUNT_TAGS]
    if present:
        raise QrError(NOT_ROUTED, f"no network this switch routes: merchant account tags {', '.join(present)}", None,
                      tag=present[0])
    raise _fail("no merchant account information (tags 02-51)", None)


def _timestamp(value: str | None, where: str) -> datetime | None:
    if value is None:
        return None
    if len(value) != khqr_timestamp_digits or not _DIGITS.issuperset(value):
        raise _fail(f"tag {where}: timestamp {value!r} is not {khqr_timestamp_digits}-digit Unix milliseconds", where)
    return _EPOCH + int(value) * _MS


def _check_amount(amount: str, currency: Currency) -> None:
    """The same verdict as `Money.parse` for the text `decode` lets through, without Decimal."""
    whole, _, fraction = amount.partition(".")
    fraction = fraction.rstrip("0")
    if len(fraction) > currency.decimals_accepted_max:
        raise QrError(
            DECIMALS_INVALID,
            f"tag 54: amount {amount!r} has more decimals than {currency.code} allows ({currency.decimals_accepted_max})",
            None, tag="54",
        )
    if not whole.strip("0") and not fraction:
        raise QrError(AMOUNT_INVALID, f"tag 54: amount {amount!r} must be positive", None, tag="54")


def route(payload: QrPayload, *, now: datetime) -> QrRoute:
    """Scheme, corridor and creditor of a decoded payload, checked against the scheme's rules,
    and a dynamic KHQR against its expiry at `now`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    routed = read_route(payload)
    expired = expiry_error(routed, now=now)
    if expired is not None:
        raise expired
    return routed


def expiry_error(routed: QrRoute, *, now: datetime) -> QrError | None:
    """TM01 when the QR is a dynamic one whose expiry (KHQR 99/01) is at or before `now`, else
    None: the one check of a QR that depends on the time, apart from decoding and routing."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if routed.dynamic and routed.expires_at is not None and now >= routed.expires_at:
        return QrError(EXPIRED, f"dynamic KHQR expired at {routed.expires_at.isoformat()}", None, tag="99/01")
    return None


def read_route(payload: QrPayload) -> QrRoute:
    """Scheme, corridor and creditor of a decoded payload, checked against the scheme's rules;
    not against the time (`expiry_error` is that), so a QR is read once, whenever it arrives."""
    rules, tag, aid = _scheme_of(payload)
    fields = payload.fields
    country = fields.get("58")
    if country is None:
        raise _fail("tag 58: country code missing", "58")
    if rules.country is not None and country != rules.country:
        raise _fail(f"tag 58: a {rules.scheme} QR must carry country {rules.country}, got {country}", "58")
    numeric = fields.get("53")
    if numeric is None:
        raise _fail("tag 53: transaction currency missing", "53")
    currency = _BY_NUMERIC.get(numeric)
    if currency is None or (rules.currencies is not None and numeric not in rules.currencies):
        raise QrError(CURRENCY_INVALID, f"tag 53: currency {numeric} is not taken by {rules.scheme}", None, tag="53")
    if country == "KH" and numeric != "116" and "15" in fields:
        raise QrError(CURRENCY_INVALID, f"tag 53: a KHQR carrying UnionPay tag 15 is KHR (116) only, got {numeric}",
                      None, tag="53")
    amount = fields.get("54")
    if amount is not None:
        _check_amount(amount, currency)

    dynamic = fields.get("01") == "12"
    created_at = expires_at = None
    if rules is KHQR_RULES:
        creditor = _khqr(tag, payload.templates[tag])  # type: ignore[arg-type,index]
        if "59" not in fields or "60" not in fields:
            missing = "59" if "59" not in fields else "60"
            raise _fail(f"tag {missing}: a KHQR needs merchant name (59) and city (60)", missing)
        stamps = payload.templates.get("99")
        if stamps is not None:
            created_at = _timestamp(stamps.get("00"), "99/00")
            expires_at = _timestamp(stamps.get("01"), "99/01")
            if created_at is not None and expires_at is not None and expires_at <= created_at:
                raise _fail("tag 99: expiry is not after creation", "99/01")
    elif rules is THAI_QR_RULES:
        creditor = _promptpay(tag, payload.templates[tag], aid)  # type: ignore[arg-type,index]
    elif rules is VIETQR_RULES:
        creditor = _vietqr(tag, payload.templates[tag])  # type: ignore[arg-type,index]
    elif rules is LAO_QR_RULES:
        creditor = _laoqr(tag, payload.templates[tag])  # type: ignore[arg-type,index]
    else:
        creditor = _unionpay(fields["15"])
    language = payload.templates.get("64")
    return QrRoute(
        rules.scheme, rules.corridor, creditor, fields.get("59"), fields.get("60"), country, currency.code, amount,
        dynamic, expires_at, created_at, None if language is None else language.get("01"),
    )


def decode_and_route(text: str, *, now: datetime) -> tuple[QrPayload, QrRoute]:
    payload = decode(text)
    return payload, route(payload, now=now)


# ----------------------------------------------------------------------------- presentation (pure)
_SCHEME_SUBTAGS: Final[Mapping[tuple[QrScheme, str], Mapping[str, str]]] = {
    (QrScheme.KHQR, "29"): {"00": "Bakong account id", "01": "Account information", "02": "Acquiring bank"},
    (QrScheme.KHQR, "30"): {"00": "Bakong account id", "01": "Merchant id", "02": "Acquiring bank"},
    (QrScheme.THAI_QR, "29"): {"00": "AID", "01": "Mobile", "02": "National id / tax id", "03": "E-wallet id",
                               "04": "Bank account"},
    (QrScheme.THAI_QR, "30"): {"00": "AID", "01": "Biller id", "02": "Reference 1", "03": "Reference 2"},
    (QrScheme.VIETQR, "38"): {"00": "GUID", "01": "Beneficiary organisation", "02": "Service code"},
    (QrScheme.LAO_QR, "38"): {"00": "AID", "01": "IIN", "02": "Payment type", "03": "Receiver id"},
}
_VIETQR_BENEFICIARY: Final = {"00": "BIN", "01": "Account / card / merchant id"}


def rows(payload: QrPayload, scheme: QrScheme | None = None) -> list[tuple[int, str, str, str]]:
    """(depth, tag, name, value) for a table; template values are shown by their sub-fields."""
    out: list[tuple[int, str, str, str]] = []
    for tag, value in payload.fields.items():
        template = payload.templates.get(tag)
        out.append((0, tag, TAG_NAMES.get(tag, "?"), "" if template is not None else value))
        if template is None:
            continue
        names = _SCHEME_SUBTAGS.get((scheme, tag)) if scheme is not None else None  # type: ignore[call-overload]
        names = names or SUBTAG_NAMES.get(tag, {})
        for sub, sub_value in template.items():
            name = names.get(sub, "AID / GUID" if sub == "00" and tag in _MERCHANT_ACCOUNT_TAGS else "?")
            if scheme is QrScheme.VIETQR and tag == "38" and sub == "01":
                out.append((1, sub, name, ""))
                try:
                    inner = parse_template(sub_value, "38/01")
                except QrError:
                    out[-1] = (1, sub, name, sub_value)
                    continue
                out.extend((2, s, _VIETQR_BENEFICIARY.get(s, "?"), v) for s, v in inner.items())
            else:
                out.append((1, sub, name, sub_value))
    return out


def route_as_dict(r: QrRoute) -> dict[str, object]:
    return {
        "scheme": str(r.scheme),
        "corridor": r.corridor,
        "creditor": {
            "kind": str(r.creditor.kind), "value": r.creditor.value, "agent": r.creditor.agent,
            "details": dict(r.creditor.details),
        },
        "creditor_name": r.creditor_name,
        "creditor_name_local": r.creditor_name_local,
        "creditor_city": r.creditor_city,
        "country": r.country,
        "currency": r.currency,
        "amount": r.amount,
        "dynamic": r.dynamic,
        "created_at": None if r.created_at is None else r.created_at.isoformat(),
        "expires_at": None if r.expires_at is None else r.expires_at.isoformat(),
    }
