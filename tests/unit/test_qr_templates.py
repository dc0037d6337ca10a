"""Scheme recognition and routing (switch/qr/templates.py) and `mekong qr decode`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from switch.entrypoints.cli import main
from switch.qr import CreditorKind, QrError, QrRoute, QrScheme, decode, encode, route
from switch.qr.templates import decode_and_route

NOW = datetime(2025, 3, 10, 9, 30, tzinfo=timezone.utc)
NOW_MS = 1741599000000  # NOW in Unix ms
assert datetime.fromtimestamp(NOW_MS / 1000, timezone.utc) == NOW


def routed(fields: dict, *, now: datetime = NOW, length_unit: str = "chars") -> QrRoute:
    return route(decode(encode(fields, length_unit=length_unit)), now=now)  # type: ignore[arg-type]


def refused(fields: dict, *, now: datetime = NOW) -> QrError:
    with pytest.raises(QrError) as info:
        routed(fields, now=now)
    return info.value


def khqr(**over: object) -> dict:
    fields = {"01": "12", "29": {"00": "sok_dara@aclb", "01": "85512345678", "02": "ACLEDA"}, "52": "5999",
              "53": "116", "54": "200000", "58": "KH", "59": "Sok Dara", "60": "Phnom Penh",
              "99": {"00": str(NOW_MS - 600_000), "01": str(NOW_MS + 600_000)}}
    fields.update(over)
    return {k: v for k, v in fields.items() if v is not None}


def thai(**over: object) -> dict:
    fields = {"01": "11", "29": {"00": "A000000677010111", "01": "0066812345678"}, "53": "764", "58": "TH"}
    fields.update(over)
    return {k: v for k, v in fields.items() if v is not None}


# ----------------------------------------------------------------------------- KHQR
def test_khqr_individual_routes_domestically() -> None:
    r = routed(khqr())
    assert r.scheme is QrScheme.KHQR and r.corridor is None
    assert r.creditor.kind is CreditorKind.BAKONG_ACCOUNT
    assert r.creditor.value == "sok_dara@aclb" and r.creditor.agent == "ACLEDA"
    assert dict(r.creditor.details) == {"ACCOUNT_INFO": "85512345678"}
    assert (r.currency, r.amount, r.country, r.creditor_name, r.creditor_city) == ("KHR", "200000", "KH", "Sok Dara",
                                                                                   "Phnom Penh")
    assert r.dynamic
    assert r.expires_at == NOW + timedelta(minutes=10) and r.created_at == NOW - timedelta(minutes=10)
    assert r.money() is not None and r.money().amount_minor == 20_000_000  # type: ignore[union-attr]


def test_khqr_merchant_needs_merchant_id_and_bank() -> None:
    r = routed(khqr(**{"29": None, "30": {"00": "shop@aclb", "01": "MER-1", "02": "ACLEDA"}, "53": "840", "54": "2.50"}))
    assert r.creditor.kind is CreditorKind.BAKONG_MERCHANT
    assert r.creditor.agent == "ACLEDA" and dict(r.creditor.details) == {"MERCHANT_ID": "MER-1"}
    assert r.currency == "USD"
    err = refused(khqr(**{"29": None, "30": {"00": "shop@aclb", "01": "MER-1"}}))
    assert err.reason_code == "FF01" and err.tag == "30/02"


def test_khqr_keeps_the_khmer_name_from_the_language_template() -> None:
    r = routed(khqr(**{"64": {"00": "km", "01": "សុខ ដារា", "02": "ភ្នំពេញ"}}))
    assert r.creditor_name_local == "សុខ ដារា" and r.creditor_name == "Sok Dara"


def test_expired_dynamic_khqr_is_rejected_tm01() -> None:
    stamps = {"00": str(NOW_MS - 600_000), "01": str(NOW_MS - 1)}
    err = refused(khqr(**{"99": stamps}))
    assert err.reason_code == "TM01" and "expired" in err.message
    # one millisecond earlier it was still good; at the expiry instant it is not
    assert routed(khqr(**{"99": stamps}), now=NOW - timedelta(milliseconds=2)).dynamic
    assert refused(khqr(**{"99": stamps}), now=NOW - timedelta(milliseconds=1)).reason_code == "TM01"


def test_static_khqr_is_not_checked_against_its_expiry() -> None:
    stamps = {"00": str(NOW_MS - 600_000), "01": str(NOW_MS - 1)}
    r = routed(khqr(**{"01": "11", "54": None, "99": stamps}))
    assert not r.dynamic and r.amount is None and r.expires_at is not None


def test_dynamic_khqr_without_expiry_is_accepted() -> None:
    r = routed(khqr(**{"99": None}))
    assert r.dynamic and r.expires_at is None


def test_khqr_timestamp_must_be_13_digits() -> None:
    err = refused(khqr(**{"99": {"00": str(NOW_MS), "01": "174159900000"}}))
    assert err.reason_code == "FF01" and err.tag == "99/01"


def test_khqr_expiry_before_creation_is_rejected() -> None:
    assert refused(khqr(**{"99": {"00": str(NOW_MS + 10), "01": str(NOW_MS + 5)}})).tag == "99/01"


@pytest.mark.parametrize("numeric", ["764", "156", "418"])
def test_khqr_currency_other_than_khr_or_usd_is_curr(numeric: str) -> None:
    err = refused(khqr(**{"53": numeric, "54": None}))
    assert err.reason_code == "CURR" and err.tag == "53"


def test_khqr_unknown_currency_is_curr() -> None:
    assert refused(khqr(**{"53": "999"})).reason_code == "CURR"


def test_khqr_with_unionpay_tag_is_khr_only() -> None:
    union = "2676076419740116000000000123456"
    assert routed(khqr(**{"15": union})).scheme is QrScheme.KHQR
    err = refused(khqr(**{"15": union, "53": "840", "54": "5.00"}))
    assert err.reason_code == "CURR" and "116" in err.message


def test_khr_amount_with_fraction_is_ch20() -> None:
    assert refused(khqr(**{"54": "100.50"})).reason_code == "CH20"
    assert routed(khqr(**{"54": "100.00"})).amount == "100.00"  # zero fraction: Money.parse accepts it too


def test_zero_amount_is_am09() -> None:
    assert refused(khqr(**{"54": "0"})).reason_code == "AM09"


def test_khqr_country_must_be_kh() -> None:
    err = refused(khqr(**{"58": "TH"}))
    assert err.reason_code == "FF01" and err.tag == "58"


def test_khqr_needs_name_and_city() -> None:
    assert refused(khqr(**{"60": None})).tag == "60"


def test_naive_now_is_a_programmer_error() -> None:
    with pytest.raises(ValueError):
        routed(khqr(), now=datetime(2025, 3, 10))


# ----------------------------------------------------------------------------- Thai QR / PromptPay
def test_promptpay_mobile_routes_to_kh_th() -> None:
    r = routed(thai())
    assert (r.scheme, r.corridor, r.currency, r.country) == (QrScheme.THAI_QR, "KH-TH", "THB", "TH")
    assert r.creditor.kind is CreditorKind.MOBILE and r.creditor.value == "0066812345678"
    assert r.amount is None and not r.dynamic and r.creditor_name is None


def test_public_promptpay_vector_routes() -> None:
    r = route(decode("00020101021129370016A000000677010111011300668123456785802TH530376463045D82"), now=NOW)
    assert r.creditor.value == "0066812345678" and r.corridor == "KH-TH"


@pytest.mark.parametrize("value", ["0000812345678", "0067812345678", "066812345678"])
def test_promptpay_mobile_not_0066_plus_9_digits_is_ff01(value: str) -> None:
    err = refused(thai(**{"29": {"00": "A000000677010111", "01": value}}))
    assert err.reason_code == "FF01" and err.tag == "29/01"


@pytest.mark.parametrize(
    ("sub", "value", "kind", "agent", "expected"),
    [
        ("02", "3101234567891", CreditorKind.NATID, None, "3101234567891"),
        ("02", "1234567890123", CreditorKind.NATID, None, "1234567890123"),  # bad check digit: not refused
        ("03", "140000123456789", CreditorKind.EWALLET, None, "140000123456789"),
        ("04", "0041234567890", CreditorKind.BANK_ACCOUNT, "004", "1234567890"),
    ],
)
def test_promptpay_proxies(sub: str, value: str, kind: CreditorKind, agent: str | None, expected: str) -> None:
    r = routed(thai(**{"29": {"00": "A000000677010111", sub: value}}))
    assert (r.creditor.kind, r.creditor.agent, r.creditor.value) == (kind, agent, expected)


@pytest.mark.parametrize(("sub", "value"), [("01", "081234567"), ("02", "310123456789"), ("03", "14000012345678X")])
def test_promptpay_proxy_of_wrong_shape_is_ff01(sub: str, value: str) -> None:
    err = refused(thai(**{"29": {"00": "A000000677010111", sub: value}}))
    assert err.reason_code == "FF01" and err.tag == f"29/{sub}"


def test_promptpay_needs_exactly_one_proxy() -> None:
    assert refused(thai(**{"29": {"00": "A000000677010111", "01": "0066812345678", "02": "3101234567891"}})).tag == "29"


@pytest.mark.parametrize("aid", ["A000000677010112", "A000000677012006"])
def test_promptpay_bill_payment(aid: str) -> None:
    r = routed(thai(**{"01": "12", "29": None, "30": {"00": aid, "01": "099400015804189", "02": "INV42", "03": "C7"},
                       "54": "1250.50"}))
    assert r.creditor.kind is CreditorKind.BILLER and r.creditor.value == "099400015804189"
    details = dict(r.creditor.details)
    assert details["REF1"] == "INV42" and details["REF2"] == "C7"
    assert ("CROSS_BORDER" in details) == (aid == "A000000677012006")
    assert r.amount == "1250.50" and r.dynamic


def test_thai_qr_in_another_currency_is_curr() -> None:
    assert refused(thai(**{"53": "116"})).reason_code == "CURR"


def test_thai_amount_with_three_decimals_is_ch20() -> None:
    assert refused(thai(**{"54": "10.005"})).reason_code == "CH20"


def test_thai_qr_with_byte_counted_name_routes() -> None:
    r = routed(thai(**{"59": "ร้านกาแฟสด", "60": "เชียงใหม่"}), length_unit="bytes")
    assert r.creditor_name == "ร้านกาแฟสด" and r.creditor_city == "เชียงใหม่"


# ----------------------------------------------------------------------------- VietQR, LAO QR, UnionPay
@pytest.mark.parametrize(
    ("service", "kind"),
    [("QRIBFTTA", CreditorKind.ACCOUNT), ("QRIBFTTC", CreditorKind.CARD), ("QRPUSH", CreditorKind.MERCHANT)],
)
def test_vietqr_routes_to_kh_vn(service: str, kind: CreditorKind) -> None:
    r = routed({"01": "12", "38": {"00": "A000000727", "01": {"00": "970436", "01": "0011001234567"}, "02": service},
                "53": "704", "54": "150000", "58": "VN", "59": "Nguyễn Văn Đức", "60": "Hà Nội"})
    assert (r.scheme, r.corridor, r.currency) == (QrScheme.VIETQR, "KH-VN", "VND")
    assert (r.creditor.kind, r.creditor.agent, r.creditor.value) == (kind, "970436", "0011001234567")
    assert r.creditor_name == "Nguyễn Văn Đức"


def test_vietqr_decimals_are_ch20_and_unknown_service_ff01() -> None:
    base = {"38": {"00": "A000000727", "01": {"00": "970436", "01": "0011001234567"}, "02": "QRIBFTTA"},
            "53": "704", "58": "VN"}
    assert refused({**base, "54": "1000.5"}).reason_code == "CH20"
    err = refused({**base, "38": {**base["38"], "02": "QRXYZ"}})  # type: ignore[dict-item]
    assert err.reason_code == "FF01" and err.tag == "38/02"
    err = refused({**base, "38": {**base["38"], "01": {"00": "97043", "01": "1"}}})  # type: ignore[dict-item]
    assert err.tag == "38/01/00"


def test_lao_qr_routes_to_kh_la() -> None:
    r = routed({"38": {"00": "A005266284662577", "01": "27710418", "02": "001", "03": "0101234567890"},
                "53": "418", "58": "LA", "59": "Vientiane Noodles", "60": "Vientiane"})
    assert (r.scheme, r.corridor, r.currency) == (QrScheme.LAO_QR, "KH-LA", "LAK")
    assert (r.creditor.kind, r.creditor.agent, r.creditor.value) == (CreditorKind.RECEIVER, "27710418", "0101234567890")
    assert dict(r.creditor.details) == {"PAYMENT_TYPE": "001"}


def test_lao_qr_iin_must_be_8_digits() -> None:
    err = refused({"38": {"00": "A005266284662577", "01": "2771041", "03": "1"}, "53": "418", "58": "LA"})
    assert err.tag == "38/01"


def test_unionpay_routes_to_kh_cn() -> None:
    r = routed({"15": "2676076419740116000000000123456", "53": "156", "54": "88.00", "58": "CN",
                "59": "Shanghai Mart", "60": "Shanghai"})
    assert (r.scheme, r.corridor, r.currency) == (QrScheme.UNIONPAY, "KH-CN", "CNY")
    assert (r.creditor.agent, r.creditor.value) == ("26760764", "000000000123456")
    assert dict(r.creditor.details) == {"FORWARDING_IIN": "19740116"}


def test_unionpay_on_a_kh_qr_without_bakong_template_is_khr_only() -> None:
    union = {"15": "2676076419740116000000000123456", "58": "KH", "59": "Shop", "60": "Phnom Penh"}
    assert routed({**union, "53": "116"}).scheme is QrScheme.UNIONPAY
    assert refused({**union, "53": "840"}).reason_code == "CURR"


def test_unionpay_value_of_wrong_layout_is_ff01() -> None:
    assert refused({"15": "26760764197401160001", "53": "156", "58": "CN"}).tag == "15"


# ----------------------------------------------------------------------------- not routable
def test_unknown_aid_is_ag01_and_names_it() -> None:
    err = refused({"26": {"00": "SG.PAYNOW", "01": "2"}, "53": "702", "58": "SG"})
    assert err.reason_code == "AG01" and "SG.PAYNOW" in err.message and err.tag == "26"


def test_only_card_scheme_tags_is_ag01() -> None:
    err = refused({"02": "4000123412341234", "53": "116", "58": "KH"})
    assert err.reason_code == "AG01" and "02" in err.message


def test_no_merchant_account_information_is_ff01() -> None:
    assert refused({"53": "116", "58": "KH"}).reason_code == "FF01"


def test_known_template_wins_over_an_unknown_one() -> None:
    r = routed(thai(**{"26": {"00": "SG.PAYNOW", "01": "2"}}))
    assert r.scheme is QrScheme.THAI_QR


def test_decode_and_route_returns_both() -> None:
    payload, r = decode_and_route(encode(thai()), now=NOW)
    assert payload.get("58") == "TH" and r.corridor == "KH-TH"


def test_route_is_read_only() -> None:
    r = routed(thai())
    with pytest.raises(AttributeError):
        r.corridor = "KH-VN"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        r.creditor.value = "0"  # type: ignore[misc]


# ----------------------------------------------------------------------------- CLI
def test_cli_prints_a_table_and_the_route() -> None:
    result = CliRunner().invoke(main, ["qr", "decode", encode(khqr(**{"99": None}))])
    assert result.exit_code == 0, result.output
    assert "Merchant name" in result.output and "Sok Dara" in result.output
    assert "  00" in result.output and "Bakong account id" in result.output  # nested rows indented
    assert "KHQR" in result.output and "domestic" in result.output


def test_cli_json_has_fields_and_route() -> None:
    result = CliRunner().invoke(main, ["qr", "decode", "--json", encode(thai(**{"59": "ร้านกาแฟ"}))])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["route"]["corridor"] == "KH-TH" and body["route"]["creditor"]["kind"] == "MOBILE"
    tag29 = next(f for f in body["fields"] if f["tag"] == "29")
    assert {"tag": "01", "name": "Mobile", "value": "0066812345678"} in tag29["fields"]
    assert body["route"]["creditor_name"] == "ร้านกาแฟ"


def test_cli_exits_2_with_reason_code_on_a_bad_payload() -> None:
    payload = encode(thai())
    bad = payload[:-4] + ("0000" if payload[-4:] != "0000" else "0001")
    result = CliRunner().invoke(main, ["qr", "decode", bad])
    assert result.exit_code == 2
    assert "FF01" in result.output and "checksum" in result.output


def test_cli_json_error_on_an_expired_khqr() -> None:
    expired = encode(khqr(**{"99": {"00": "1700000000000", "01": "1700000600000"}}))
    result = CliRunner().invoke(main, ["qr", "decode", "--json", expired])
    assert result.exit_code == 2
    first_line = result.output.splitlines()[0]
    assert json.loads(first_line)["error"]["reason_code"] == "TM01"
