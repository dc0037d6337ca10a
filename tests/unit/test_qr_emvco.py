"""EMVCo TLV decode / encode and the CRC (switch/qr/emvco.py)."""

from __future__ import annotations

import binascii

import pytest

from switch.domain.errors import InstructionRejected
from switch.qr import QrError, crc16_ccitt_false, decode, encode, with_crc
from switch.qr.emvco import _decode_careful, _decode_fast


def reference_crc(data: bytes) -> int:
    """CRC-16/CCITT-FALSE bit by bit, straight from its definition (no table, no binascii)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def tlv(tag: str, value: str, *, count_bytes: bool = False) -> str:
    n = len(value.encode("utf-8")) if count_bytes else len(value)
    return f"{tag}{n:02d}{value}"


def signed(body: str) -> str:
    """Append 6304 and the CRC computed by the reference implementation."""
    head = body + "6304"
    return f"{head}{reference_crc(head.encode('utf-8')):04X}"


# Public PromptPay vectors (promptpay-qr style generators): tag 58 before 53, i.e. out of order.
PROMPTPAY_STATIC = "00020101021129370016A000000677010111011300668123456785802TH530376463045D82"
PROMPTPAY_STATIC_2 = "00020101021129370016A000000677010111011300668999999995802TH53037646304FE29"


# ----------------------------------------------------------------------------- CRC
def test_reference_crc_matches_the_ccitt_false_check_value() -> None:
    assert reference_crc(b"123456789") == 0x29B1


def test_crc_hqx_with_init_ffff_is_ccitt_false() -> None:
    assert binascii.crc_hqx(b"123456789", 0xFFFF) == 0x29B1
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    for data in (b"", b"6304", PROMPTPAY_STATIC[:-4].encode(), "ร้าน ភ្នំពេញ Đà Nẵng".encode()):
        assert crc16_ccitt_false(data) == reference_crc(data)


@pytest.mark.parametrize("payload", [PROMPTPAY_STATIC, PROMPTPAY_STATIC_2])
def test_public_promptpay_vectors_carry_the_reference_crc_and_decode(payload: str) -> None:
    assert payload[-4:] == f"{reference_crc(payload[:-4].encode()):04X}"
    decoded = decode(payload)
    assert decoded.templates["29"]["00"] == "A000000677010111"
    assert decoded.crc == payload[-4:]


def test_encode_emits_upper_case_crc_over_everything_up_to_6304() -> None:
    payload = encode({"53": "764", "58": "TH", "29": {"00": "A000000677010111", "01": "0066812345678"}})
    assert payload[-8:-4] == "6304"
    assert payload[-4:] == f"{reference_crc(payload[:-4].encode()):04X}"
    assert payload[-4:] == payload[-4:].upper()


def test_crc_covers_utf8_bytes_not_characters() -> None:
    payload = encode({"53": "116", "58": "KH", "59": "ភោជនីយដ្ឋាន", "60": "Phnom Penh"})
    assert payload[-4:] == f"{reference_crc(payload[:-4].encode('utf-8')):04X}"
    decode(payload)


def test_with_crc_appends_6304_and_the_checksum() -> None:
    body = "000201" + tlv("58", "TH")
    assert with_crc(body) == signed(body)


# ----------------------------------------------------------------------------- accept
def test_encode_emits_tags_ascending_with_00_first_and_63_last() -> None:
    payload = encode({"60": "Phnom Penh", "58": "KH", "29": {"02": "ACLEDA", "00": "a@b"}, "01": "11"})
    assert payload.startswith("000201" + "010211" + "2917" + "0003a@b" + "0206ACLEDA" + "5802KH")
    assert payload[-8:-4] == "6304"
    assert list(decode(payload).fields) == ["00", "01", "29", "58", "60", "63"]


def test_lower_case_crc_is_accepted() -> None:
    payload = PROMPTPAY_STATIC[:-4] + PROMPTPAY_STATIC[-4:].lower()
    assert payload != PROMPTPAY_STATIC
    assert decode(payload).get("58") == "TH"


def test_tags_out_of_order_are_accepted_and_kept_in_payload_order() -> None:
    body = "000201" + tlv("58", "KH") + tlv("53", "116") + tlv("01", "12") + tlv("29", tlv("02", "BANK") + tlv("00", "x@y"))
    decoded = decode(signed(body))
    assert list(decoded.fields) == ["00", "58", "53", "01", "29", "63"]
    assert decoded.templates["29"] == {"02": "BANK", "00": "x@y"}
    assert decoded.dynamic


def test_nested_templates_are_parsed_and_primitives_kept_raw() -> None:
    payload = encode({
        "15": "2676076419740116000000000123456",
        "29": {"00": "sok@aclb"},
        "62": {"01": "INV-1", "07": "T1"},
        "64": {"00": "km", "01": "សុខ ដារា"},
        "99": {"00": "1741598400000"},
        "58": "KH",
    })
    decoded = decode(payload)
    assert set(decoded.templates) == {"29", "62", "64", "99"}
    assert decoded.sub("62", "07") == "T1"
    assert decoded.sub("64", "01") == "សុខ ដារា"
    assert decoded.get("15") == "2676076419740116000000000123456"
    assert "15" not in decoded.templates


def test_byte_counted_thai_name_falls_back_to_utf8_byte_lengths() -> None:
    name = "ร้านกาแฟ"  # 8 characters, 24 UTF-8 bytes
    body = "000201" + tlv("53", "764") + tlv("58", "TH") + tlv("59", name, count_bytes=True)
    payload = signed(body)
    assert "5924" + name in payload
    decoded = decode(payload)
    assert decoded.length_unit == "bytes"
    assert decoded.get("59") == name


def test_byte_counted_thai_language_template_falls_back_too() -> None:
    inner = tlv("00", "th") + tlv("01", "ร้านข้าวมันไก่", count_bytes=True)
    body = "000201" + tlv("58", "TH") + tlv("64", inner, count_bytes=True)
    decoded = decode(signed(body))
    assert decoded.length_unit == "bytes"
    assert decoded.sub("64", "01") == "ร้านข้าวมันไก่"


def test_character_counted_khmer_text_reads_in_characters() -> None:
    payload = encode({"58": "KH", "59": "ហាងកាហ្វេ", "64": {"00": "km", "02": "ភ្នំពេញ"}})
    decoded = decode(payload)
    assert decoded.length_unit == "chars"
    assert decoded.get("59") == "ហាងកាហ្វេ"


def test_encode_can_count_bytes_and_decode_reads_it_back() -> None:
    payload = encode({"58": "TH", "59": "เชียงใหม่"}, length_unit="bytes")
    assert tlv("59", "เชียงใหม่", count_bytes=True) in payload
    assert decode(payload).length_unit == "bytes"


def test_to_fields_round_trips_through_encode() -> None:
    fields = {"00": "01", "01": "12", "30": {"00": "shop@aclb", "01": "M1", "02": "ACLEDA"}, "53": "840", "54": "12.50",
              "58": "KH", "59": "Shop", "60": "Siem Reap"}
    assert decode(encode(fields)).to_fields() == fields


@pytest.mark.parametrize(
    "payload",
    [
        PROMPTPAY_STATIC,
        PROMPTPAY_STATIC[:-4] + PROMPTPAY_STATIC[-4:].lower(),
        encode({"01": "12", "29": {"00": "sok@aclb", "01": "855"}, "53": "116", "54": "100", "58": "KH",
                "59": "Sok", "60": "Phnom Penh", "62": {"01": "INV-1"}, "64": {"00": "km", "01": "សុខ ដារា"},
                "99": {"00": "1741598400000", "01": "1741599000000"}}),
        encode({"58": "TH", "59": "เชียงใหม่", "64": {"00": "th", "01": "ร้านกาแฟ"}}, length_unit="bytes"),
        signed("000201" + tlv("58", "KH") + tlv("53", "116") + tlv("29", tlv("02", "BANK") + tlv("00", "x@y"))),
    ],
    ids=["promptpay", "lower-case-crc", "khqr-khmer", "thai-bytes", "out-of-order"],
)
def test_fast_path_decodes_valid_payloads_as_the_careful_path_does(payload: str) -> None:
    fast, careful = _decode_fast(payload), _decode_careful(payload)
    assert fast is not None and fast == careful
    assert list(fast.fields) == list(careful.fields) and fast.length_unit == careful.length_unit
    assert all(list(fast.templates[t]) == list(careful.templates[t]) for t in careful.templates)
    assert decode(payload) == careful


def test_decoded_payload_is_read_only() -> None:
    decoded = decode(PROMPTPAY_STATIC)
    with pytest.raises(AttributeError):
        decoded.fields = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        decoded.fields["58"] = "KH"  # type: ignore[index]


# ----------------------------------------------------------------------------- reject
def rejected(payload: str) -> QrError:
    """decode refuses it; the fast path gives up on it (so the error is the careful path's)."""
    with pytest.raises(QrError) as info:
        decode(payload)
    assert isinstance(info.value, InstructionRejected)
    assert _decode_fast(payload) is None
    return info.value


def test_wrong_crc_is_rejected_as_checksum_ff01() -> None:
    bad = PROMPTPAY_STATIC[:-4] + ("0000" if PROMPTPAY_STATIC[-4:] != "0000" else "0001")
    err = rejected(bad)
    assert err.reason_code == "FF01"
    assert "checksum" in err.message
    assert err.position == len(bad) - 4


def test_a_changed_value_breaks_the_checksum() -> None:
    tampered = PROMPTPAY_STATIC.replace("0066812345678", "0066812345679")
    assert "checksum" in rejected(tampered).message


def test_crc_that_is_not_hex_is_rejected() -> None:
    err = rejected(PROMPTPAY_STATIC[:-4] + "5DXZ")
    assert err.reason_code == "FF01" and "hex" in err.message


def test_length_00_is_invalid() -> None:
    err = rejected(signed("000201" + "5900" + tlv("58", "TH")))
    assert err.reason_code == "FF01"
    assert "length 00" in err.message
    assert err.position == 8


def test_length_00_inside_a_template_is_invalid() -> None:
    err = rejected(signed("000201" + tlv("62", "0100" + tlv("02", "x")) + tlv("58", "TH")))
    assert "62/01" in err.message and "length 00" in err.message


def test_truncated_payload_is_rejected() -> None:
    err = rejected(PROMPTPAY_STATIC[:30])
    assert err.reason_code == "FF01"
    assert "runs past the end" in err.message


def test_truncated_header_is_rejected() -> None:
    err = rejected("00020101021158")
    assert err.reason_code == "FF01" and "truncated" in err.message and err.position == 12


def test_template_whose_field_overruns_it_is_rejected() -> None:
    # template 29 says 10 characters, its field 00 claims 20
    err = rejected(signed("000201" + "2910" + "0020abcdef" + tlv("58", "TH")))
    assert "template 29" in err.message


def test_non_digit_header_is_rejected_with_its_position() -> None:
    err = rejected(signed("000201" + "5A02TH"))
    assert err.position == 6 and "two digits" in err.message


def test_missing_00_is_rejected() -> None:
    err = rejected(signed(tlv("58", "TH") + tlv("53", "764")))
    assert err.reason_code == "FF01" and "tag 00" in err.message


def test_00_not_first_is_rejected() -> None:
    assert "start with tag 00" in rejected(signed(tlv("58", "TH") + "000201")).message


def test_00_other_than_01_is_rejected() -> None:
    assert "'01'" in rejected(signed("000202" + tlv("58", "TH"))).message


def test_crc_not_last_is_rejected() -> None:
    valid = signed("000201" + tlv("58", "TH"))
    err = rejected(valid + tlv("53", "764"))
    assert err.reason_code == "FF01" and "end with the CRC" in err.message


def test_crc_missing_is_rejected() -> None:
    assert "no CRC" in rejected("000201" + tlv("58", "TH")).message


def test_crc_of_wrong_length_is_rejected() -> None:
    err = rejected("000201" + tlv("58", "TH") + "630312A")
    assert "length must be 04" in err.message


def test_repeated_tag_is_rejected() -> None:
    err = rejected(signed("000201" + tlv("58", "TH") + tlv("58", "KH")))
    assert "repeated" in err.message and err.tag == "58" and err.position == 12


def test_empty_payload_is_rejected() -> None:
    assert rejected("").reason_code == "FF01"


@pytest.mark.parametrize(
    ("tag", "value", "limit"),
    [("59", "N" * 26, "25"), ("60", "C" * 16, "15"), ("54", "1" * 14, "13")],
)
def test_field_limits(tag: str, value: str, limit: str) -> None:
    at_limit = value[:-1]
    decode(encode({"58": "KH", tag: at_limit}))
    err = rejected(encode({"58": "KH", tag: value}))
    assert err.reason_code == "FF01" and limit in err.message and err.tag == tag


def test_name_limit_counts_characters_not_bytes() -> None:
    khmer_25 = ("ក" * 25)
    assert len(khmer_25.encode()) == 75
    assert decode(encode({"58": "KH", "59": khmer_25})).get("59") == khmer_25


@pytest.mark.parametrize("amount", ["1,00", "1.0.0", "-5", ".", "1e3", " 10"])
def test_malformed_amount_is_rejected(amount: str) -> None:
    assert rejected(encode({"58": "KH", "54": amount})).tag == "54"


def test_payload_over_512_characters_is_rejected() -> None:
    big = {f"{t}": "x" * 99 for t in range(80, 86)}
    assert "512" in rejected(encode(big)).message


def test_encode_refuses_a_given_crc_and_oversized_values() -> None:
    with pytest.raises(ValueError):
        encode({"63": "ABCD"})
    with pytest.raises(ValueError):
        encode({"59": "x" * 100})
    with pytest.raises(ValueError):
        encode({"5": "x"})


def test_decode_refuses_bytes_as_a_programmer_error() -> None:
    with pytest.raises(TypeError):
        decode(PROMPTPAY_STATIC.encode())  # type: ignore[arg-type]
