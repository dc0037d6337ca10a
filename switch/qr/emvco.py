"""EMVCo merchant-presented QR payloads as text: TLV decode, CRC check, encode (PARTNERS.md "QR codes").

The payload is a run of fields ``id(2 digits) length(2 digits) value``. ``00`` = ``"01"`` comes
first, ``63`` (the CRC, length ``04``) comes last, and the CRC is CRC-16/CCITT-FALSE (poly 0x1021,
init 0xFFFF, no reflection, xorout 0) over the UTF-8 bytes of everything up to and including
``6304``. It is emitted as upper-case hex and accepted in either case. Lengths count characters;
when that reading fails, the payload is read again counting UTF-8 bytes (a public Thai test vector
does this); when both fail, the error of the character reading is the one reported. Tags may come in
any order; `encode` emits them in ascending order. A tag may not repeat inside one template.

Templates (26-51 merchant account information, 62 additional data, 64 language template, 99 the
KHQR timestamps) are themselves TLV and come back parsed one level deep. Anything deeper (VietQR
``38/01``) is the scheme's business: see `switch.qr.templates`.

Pure: no I/O, no clock. Programmer errors (a non-str payload, an unencodable field in `encode`)
raise `TypeError` / `ValueError`; a bad payload raises `QrError`, an `InstructionRejected` with an
ISO 20022 reason code.

Reason codes chosen here (the ISO external status reason list in PARTNERS.md):

* ``FF01`` InvalidFileFormat, for everything that makes the payload unreadable as EMVCo: a
  header that is not two digits, length ``00``, a value running past the end, a repeated tag,
  ``00`` missing or not first, ``63`` missing, not last or not 4 hex digits, a field over its
  limit, and a CRC mismatch (the message then says "checksum"). ``FF02`` (SyntaxError) was
  considered for the TLV cases; FF01 is used throughout because it is what the rest of the switch
  uses for a structurally unusable message (iso20022/errors.py) and because a partner or a wallet
  gains nothing from the distinction: the QR cannot be paid either way.

The routing codes (CURR, CH20, AG01, TM01) are documented in `switch.qr.templates`.

The bounds below belong with the others in `switch/limits.py` (STYLE §5); they sit here until
that module can be edited, named the same way.
"""

from __future__ import annotations

from binascii import crc_hqx
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, NamedTuple

from switch.domain.errors import InstructionRejected

# ----------------------------------------------------------------------------- limits
payload_chars_max: Final = 512  # EMVCo MPM: the whole payload
field_value_chars_max: Final = 99  # two length digits
merchant_name_chars_max: Final = 25  # tag 59 (and 64/01)
merchant_city_chars_max: Final = 15  # tag 60 (and 64/02)
amount_chars_max: Final = 13  # tag 54
postal_code_chars_max: Final = 10  # tag 61
crc_chars: Final = 4  # tag 63

LengthUnit = Literal["chars", "bytes"]

FORMAT_INVALID: Final = "FF01"

# Tags whose value is itself TLV, parsed one level deep by `decode`.
TEMPLATE_TAGS: Final[frozenset[str]] = frozenset({*(f"{t:02d}" for t in range(26, 52)), "62", "64", "99"})

TAG_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "00": "Payload format indicator",
        "01": "Point of initiation method",
        **{f"{t:02d}": "Merchant account information" for t in range(2, 52)},
        "15": "Merchant account information (UnionPay)",
        "52": "Merchant category code",
        "53": "Transaction currency",
        "54": "Transaction amount",
        "55": "Tip or convenience indicator",
        "56": "Convenience fee (fixed)",
        "57": "Convenience fee (percentage)",
        "58": "Country code",
        "59": "Merchant name",
        "60": "Merchant city",
        "61": "Postal code",
        "62": "Additional data",
        "63": "CRC",
        "64": "Merchant information, alternate language",
        **{f"{t:02d}": "RFU for EMVCo" for t in range(65, 80)},
        **{f"{t:02d}": "Unreserved template" for t in range(80, 100)},
        "99": "Timestamps (KHQR)",
    }
)

SUBTAG_NAMES: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        "62": {
            "01": "Bill number", "02": "Mobile number", "03": "Store label", "04": "Loyalty number",
            "05": "Reference label", "06": "Customer label", "07": "Terminal label",
            "08": "Purpose of transaction", "09": "Additional consumer data request",
            "10": "Merchant tax id", "11": "Merchant channel",
        },
        "64": {"00": "Language preference", "01": "Merchant name, alternate language",
               "02": "Merchant city, alternate language"},
        "99": {"00": "Created (Unix ms)", "01": "Expires (Unix ms)"},
    }
)


class QrError(InstructionRejected):
    """A payload the switch cannot use. `position` is the character offset of the offending field
    (None when the fault is not at one place); `tag` names it ("62/05" inside a template)."""

    def __init__(self, reason_code: str, message: str, position: int | None = None, *, tag: str | None = None) -> None:
        super().__init__(message, reason_code=reason_code)
        self.message = message
        self.position = position
        self.tag = tag

    def __str__(self) -> str:
        where = "" if self.position is None else f" (at character {self.position})"
        return f"{self.reason_code}: {self.message}{where}"


class QrPayload(NamedTuple):
    """A decoded payload. `fields` maps every top-level tag to its raw value, in payload order (the
    CRC included); `templates` maps each template tag to its parsed sub-fields, also in payload
    order. `length_unit` says how the lengths were counted.

    Immutable like a frozen dataclass (and `fields` / `templates` are read-only views); a
    NamedTuple because one is built per payload on the hot path and costs less than half as much
    to make."""

    fields: Mapping[str, str]
    templates: Mapping[str, Mapping[str, str]]
    length_unit: LengthUnit = "chars"

    def get(self, tag: str) -> str | None:
        return self.fields.get(tag)

    def sub(self, tag: str, subtag: str) -> str | None:
        template = self.templates.get(tag)
        return None if template is None else template.get(subtag)

    @property
    def crc(self) -> str:
        return self.fields["63"]

    @property
    def dynamic(self) -> bool:
        """Point of initiation ``12``; ``11`` or an absent tag 01 is static."""
        return self.fields.get("01") == "12"

    def to_fields(self) -> dict[str, str | dict[str, str]]:
        """Everything but the CRC, templates as dicts: what `encode` takes back."""
        templates = self.templates
        return {
            tag: (dict(templates[tag]) if tag in templates else value)
            for tag, value in self.fields.items()
            if tag != "63"
        }


# ----------------------------------------------------------------------------- decode
_TWO_DIGITS: Final[dict[str | bytes, int]] = {}
_TAG_TEXT: Final[dict[str | bytes, str]] = {}
for _n in range(100):
    _k = f"{_n:02d}"
    _TWO_DIGITS[_k] = _TWO_DIGITS[_k.encode()] = _n
    _TAG_TEXT[_k] = _TAG_TEXT[_k.encode()] = _k
del _n, _k
# Every valid 4-character field header ("5303" -> ("53", 3)), as str and as bytes; length 00 is absent.
_HEADERS: Final[dict[str | bytes, tuple[str, int]]] = {}
for _t in range(100):
    for _n in range(1, 100):
        _h = f"{_t:02d}{_n:02d}"
        _HEADERS[_h] = _HEADERS[_h.encode()] = (_h[:2], _n)
del _t, _n, _h

_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
_DIGITS: Final = frozenset("0123456789")
_AMOUNT_CHARS: Final = frozenset("0123456789.")
_UPPER: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_THREE_DIGITS: Final = frozenset(f"{n:03d}" for n in range(1000))  # tag 53, one look-up
_COUNTRY_CODES: Final = frozenset(a + b for a in _UPPER for b in _UPPER)  # tag 58

def _fail(message: str, position: int | None, tag: str | None = None) -> QrError:
    return QrError(FORMAT_INVALID, message, position, tag=tag)


def _header_error(s: str | bytes, i: int, end: int, parent: str | None) -> QrError:
    """Why the 4 characters at `i` are not a field header (slow path, errors only)."""
    where = "" if parent is None else f"template {parent}: "
    if i + 4 > end:
        return _fail(f"{where}truncated field header {_show(s[i:end])}", i, parent)
    tag = _TAG_TEXT.get(s[i : i + 2])
    if tag is None:
        return _fail(f"{where}field id {_show(s[i:i + 2])} is not two digits", i, parent)
    path = tag if parent is None else f"{parent}/{tag}"
    if _TWO_DIGITS.get(s[i + 2 : i + 4]) == 0:
        return _fail(f"tag {path}: length 00 is invalid", i + 2, path)
    return _fail(f"tag {path}: length {_show(s[i + 2:i + 4])} is not two digits", i + 2, path)


def _repeated(s: str | bytes, start: int, end: int, parent: str | None) -> QrError:
    """The first repeated tag (slow path: only after the fast scan counted one)."""
    seen: set[str] = set()
    i = start
    while i < end:
        tag, n = _HEADERS[s[i : i + 4]]
        if tag in seen:
            path = tag if parent is None else f"{parent}/{tag}"
            return _fail(f"tag {path}: repeated", i, path)
        seen.add(tag)
        i += 4 + n
    raise AssertionError("no repeated tag")  # pragma: no cover


def _show(piece: str | bytes) -> str:
    return repr(piece.decode("utf-8", "replace") if isinstance(piece, bytes) else piece)


def _scan(s: str | bytes, start: int, end: int, parent: str) -> dict:  # type: ignore[type-arg]
    """Sub-fields of the template value s[start:end] (values of the type of `s`). Offsets are absolute."""
    out = {}
    headers = _HEADERS
    i = start
    count = 0
    tag = ""
    n = j = 0
    while i < end:
        header = headers.get(s[i : i + 4])
        if header is None:
            raise _header_error(s, i, end, parent)
        tag, n = header
        j = i + 4
        i = j + n
        out[tag] = s[j:i]
        count += 1
    if i != end:  # only the last field can overrun: the loop stops there
        raise _fail(f"tag {parent}/{tag}: length {n} runs past the end of template {parent}", j - 2, f"{parent}/{tag}")
    if count != len(out):
        raise _repeated(s, start, end, parent)
    return out


def _frame(s: str | bytes) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """Top-level fields and parsed templates, values of the type of `s`: the TLV frame only.
    The hot loop of `decode`: one slice and one dict look-up per field header."""
    fields = {}
    templates = {}
    headers = _HEADERS
    template_tags = TEMPLATE_TAGS
    end = len(s)
    i = 0
    count = 0
    tag = ""
    n = j = 0
    while i < end:
        header = headers.get(s[i : i + 4])  # a slice cut short by the end is no header either
        if header is None:
            raise _header_error(s, i, end, None)
        tag, n = header
        j = i + 4
        i = j + n
        if tag in template_tags and i <= end:
            templates[tag] = _scan(s, j, i, tag)
        fields[tag] = s[j:i]
        count += 1
    if i != end:  # only the last field can overrun: the loop stops there
        raise _fail(f"tag {tag}: length {n} runs past the end of the payload", j - 2, tag)
    if count != len(fields):
        raise _repeated(s, 0, end, None)
    return fields, templates


def _as_text(fields: dict[str, bytes], templates: dict[str, dict[str, bytes]]) -> tuple[dict, dict]:  # type: ignore[type-arg]
    try:
        return (
            {tag: value.decode("utf-8") for tag, value in fields.items()},
            {tag: {sub: value.decode("utf-8") for sub, value in t.items()} for tag, t in templates.items()},
        )
    except UnicodeDecodeError:
        raise _fail("a length cuts a UTF-8 character in two", None) from None


def _check_frame(fields: dict[str, str], templates: dict[str, dict[str, str]], size: int) -> None:
    """00 first, 63 last, and the EMVCo limits every scheme shares. Scheme rules live in templates.py."""
    if next(iter(fields), None) != "00":
        raise _fail("the payload must start with tag 00" if fields else "empty payload", 0, "00")
    if fields["00"] != "01":
        raise _fail(f"tag 00: payload format indicator must be '01', got {fields['00']!r}", 4, "00")
    if next(reversed(fields)) != "63":
        raise _fail("the payload must end with the CRC, tag 63" if "63" in fields else "no CRC (tag 63)", None, "63")
    crc = fields["63"]
    if len(crc) != crc_chars:
        raise _fail(f"tag 63: CRC length must be 04, got {len(crc):02d}", size - len(crc) - 2, "63")
    if not _HEX_DIGITS.issuperset(crc):
        raise _fail(f"tag 63: CRC {crc!r} is not 4 hex digits", size - 4, "63")
    _check_values(fields, templates)


def _check_values(fields: Mapping[str, str], templates: Mapping[str, Mapping[str, str]]) -> None:
    """The EMVCo limits on the values every scheme shares (both paths of `decode` call this)."""
    get = fields.get
    poi = get("01")
    if poi is not None and poi != "11" and poi != "12":
        raise _fail(f"tag 01: point of initiation must be 11 or 12, got {poi!r}", None, "01")
    mcc = get("52")
    if mcc is not None and (len(mcc) != 4 or not _DIGITS.issuperset(mcc)):
        raise _fail(f"tag 52: merchant category code {mcc!r} is not 4 digits", None, "52")
    ccy = get("53")
    if ccy is not None and ccy not in _THREE_DIGITS:
        raise _fail(f"tag 53: currency {ccy!r} is not a 3-digit ISO 4217 code", None, "53")
    amount = get("54")
    if amount is not None and (
        len(amount) > amount_chars_max or not _AMOUNT_CHARS.issuperset(amount) or amount.count(".") > 1 or amount == "."
    ):
        raise _fail(f"tag 54: amount {amount!r} is not a decimal of at most {amount_chars_max} characters", None, "54")
    country = get("58")
    if country is not None and country not in _COUNTRY_CODES:
        raise _fail(f"tag 58: country {country!r} is not an ISO 3166 alpha-2 code", None, "58")
    name = get("59")
    if name is not None and len(name) > merchant_name_chars_max:
        raise _fail(f"tag 59: merchant name has {len(name)} characters, at most {merchant_name_chars_max}", None, "59")
    city = get("60")
    if city is not None and len(city) > merchant_city_chars_max:
        raise _fail(f"tag 60: merchant city has {len(city)} characters, at most {merchant_city_chars_max}", None, "60")
    postal = get("61")
    if postal is not None and len(postal) > postal_code_chars_max:
        raise _fail(f"tag 61: postal code has {len(postal)} characters, at most {postal_code_chars_max}", None, "61")
    language = templates.get("64")
    if language is not None:
        name = language.get("01")
        if name is not None and len(name) > merchant_name_chars_max:
            raise _fail(
                f"tag 64/01: alternate name has {len(name)} characters, at most {merchant_name_chars_max}", None, "64/01"
            )
        city = language.get("02")
        if city is not None and len(city) > merchant_city_chars_max:
            raise _fail(
                f"tag 64/02: alternate city has {len(city)} characters, at most {merchant_city_chars_max}", None, "64/02"
            )


def parse_template(value: str, tag: str) -> dict[str, str]:
    """The sub-fields of a template value (lengths in characters); `tag` names it in errors."""
    return _scan(value, 0, len(value), tag)


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE. `binascii.crc_hqx` is that polynomial, unreflected, with the initial
    value given: init 0xFFFF makes it CCITT-FALSE (check value of b"123456789" = 0x29B1)."""
    return crc_hqx(data, 0xFFFF)


def decode(payload: str) -> QrPayload:
    """Decode and check an EMVCo MPM payload (text, not an image). Raises `QrError`.

    Lengths are read in characters first and in UTF-8 bytes only when that fails. A non-ASCII
    payload that frames validly both ways is therefore read in characters (rare: the character
    reading has to land exactly on ``6304`` at the end).

    Two paths with one verdict: `_decode_fast` takes every payload that is valid and gives up
    (None) on anything else, without building an error; `_decode_careful` then reads the payload
    again and raises the precise `QrError`. tests/property/test_qr_roundtrip.py checks that the
    two agree on valid, corrupted and random payloads.
    """
    if type(payload) is not str:
        raise TypeError(f"payload must be str, got {type(payload).__name__}")
    decoded = _decode_fast(payload)
    return decoded if decoded is not None else _decode_careful(payload)


# The fast path. Every valid 4-character header -> (tag, length, whether the tag is a template):
# one table of str (lengths in characters) and one of bytes (lengths in UTF-8 bytes), apart because
# "0002" and b"0002" hash alike and would make every look-up in a shared table compare both.
_STR_HEADERS: Final[dict[str, tuple[str, int, bool]]] = {
    header: (tag, n, tag in TEMPLATE_TAGS) for header, (tag, n) in _HEADERS.items() if type(header) is str
}
_BYTES_HEADERS: Final[dict[bytes, tuple[str, int, bool]]] = {
    header: (tag, n, tag in TEMPLATE_TAGS) for header, (tag, n) in _HEADERS.items() if type(header) is bytes
}


def _decode_fast(payload: str) -> QrPayload | None:
    """The payload decoded, or None when it is not valid (or the fast path cannot tell: then
    `_decode_careful` decides). Same readings, same checks, same result as `_decode_careful`."""
    if len(payload) > payload_chars_max or not payload.startswith("000201"):  # 00 = "01" first
        return None
    framed = _frame_fast(payload, _STR_HEADERS)
    unit: LengthUnit = "chars"
    if framed is not None:
        fields, templates = framed
        try:
            _check_values(fields, templates)
        except QrError:
            framed = None
    if framed is None:  # the character reading failed: try UTF-8 bytes, as `_decode_careful` does
        if payload.isascii():  # the same reading, the same failure
            return None
        framed_bytes = _frame_fast(payload.encode("utf-8"), _BYTES_HEADERS)
        if framed_bytes is None:
            return None
        try:
            fields, templates = _as_text(*framed_bytes)
            _check_values(fields, templates)
        except QrError:
            return None
        unit = "bytes"
    # 63 is last and 4 long (checked by _frame_fast), so its value is payload[-4:] in both readings
    # once it is ASCII; ASCII upper-cases to a hex digit only from a hex digit.
    given = fields["63"]
    if not given.isascii() or given.upper() != "%04X" % crc_hqx(payload[:-4].encode("utf-8"), 0xFFFF):
        return None
    return QrPayload(MappingProxyType(fields), MappingProxyType(templates), unit)


def _frame_fast(s: str | bytes, headers: dict) -> tuple[dict, dict] | None:  # type: ignore[type-arg]
    """`_frame` and the structural part of `_check_frame` in one pass, templates scanned inline,
    without errors: (fields, templates) with values of the type of `s`, or None. `headers` is the
    table for the type of `s`; `s` must start with 00 = "01" (the caller checks); this checks that
    63 comes last with length 04. A header that is not in the table (not two digits and a length
    01..99, or cut short by the end) ends the reading."""
    fields = {}
    templates = {}
    end = len(s)
    i = count = n = 0
    tag = ""
    try:
        while i < end:
            tag, n, is_template = headers[s[i : i + 4]]
            j = i + 4
            i = j + n
            fields[tag] = s[j:i]
            count += 1
            if is_template:
                if i > end:
                    return None
                sub = {}
                sub_count = 0
                k = j
                while k < i:
                    sub_tag, m, _ = headers[s[k : k + 4]]
                    k += 4
                    sub[sub_tag] = s[k : k + m]
                    k += m
                    sub_count += 1
                if k != i or sub_count != len(sub):
                    return None
                templates[tag] = sub
    except KeyError:
        return None
    if i != end or count != len(fields) or tag != "63" or n != crc_chars:
        return None
    return fields, templates


def _decode_careful(payload: str) -> QrPayload:
    """`decode` step by step, raising the `QrError` that says what is wrong."""
    size = len(payload)
    if size > payload_chars_max:
        raise _fail(f"payload has {size} characters, at most {payload_chars_max}", None)
    unit: LengthUnit = "chars"
    try:
        fields, templates = _frame(payload)
        _check_frame(fields, templates, size)
    except QrError as by_chars:
        if payload.isascii():
            raise
        try:
            fields, templates = _as_text(*_frame(payload.encode("utf-8")))
            _check_frame(fields, templates, size)
        except QrError:
            raise by_chars from None
        unit = "bytes"
    crc = crc_hqx(payload[:-4].encode("utf-8"), 0xFFFF)
    given = payload[-4:]
    if given.upper() != f"{crc:04X}":
        raise QrError(FORMAT_INVALID, f"checksum mismatch: CRC {given} given, {crc:04X} computed", size - 4, tag="63")
    return QrPayload(MappingProxyType(fields), MappingProxyType(templates), unit)


# ----------------------------------------------------------------------------- encode
FieldValue = str | Mapping[str, "FieldValue"]


def _length(value: str, unit: LengthUnit) -> int:
    return len(value) if unit == "chars" else len(value.encode("utf-8"))


def _tlv(fields: Mapping[str, FieldValue], unit: LengthUnit, where: str) -> str:
    parts = []
    for tag in sorted(fields, key=_tag_order):
        value = fields[tag]
        text = value if isinstance(value, str) else _tlv(value, unit, f"{where}{tag}/")
        n = _length(text, unit)
        if not 1 <= n <= field_value_chars_max:
            raise ValueError(f"{where}{tag}: value length {n} outside 1..{field_value_chars_max}")
        parts.append(f"{tag}{n:02d}{text}")
    return "".join(parts)


def _tag_order(tag: str) -> int:
    if type(tag) is not str or len(tag) != 2 or not _DIGITS.issuperset(tag):
        raise ValueError(f"tag {tag!r} is not two digits")
    return int(tag)


def with_crc(body: str) -> str:
    """Append ``6304`` and the CRC (upper-case hex) to a payload body."""
    head = body + "6304"
    return f"{head}{crc_hqx(head.encode('utf-8'), 0xFFFF):04X}"


def encode(fields: Mapping[str, FieldValue], *, length_unit: LengthUnit = "chars") -> str:
    """Build a payload: ``00`` = ``01`` unless given, tags in ascending order (templates too, a
    mapping value becomes a nested template), the CRC computed and appended last.

    Only the TLV frame is enforced (two-digit tags, lengths 1..99 in `length_unit`), so tests can
    build payloads that `decode` must refuse. ``63`` may not be given.
    """
    if "63" in fields:
        raise ValueError("tag 63 (CRC) is computed, not given")
    if length_unit not in ("chars", "bytes"):
        raise ValueError(f"length_unit must be 'chars' or 'bytes', got {length_unit!r}")
    full = {"00": "01", **fields}
    return with_crc(_tlv(full, length_unit, ""))
