"""EMVCo merchant-presented QR payloads (KHQR, Thai QR / PromptPay, VietQR, LAO QR, UnionPay).

`decode` reads and checks the text payload, `route` says which scheme and corridor it belongs to
and who the creditor is, `encode` builds a payload with its CRC. Pure: no I/O, `now` passed in.
"""

from switch.qr.emvco import QrError, QrPayload, crc16_ccitt_false, decode, encode, parse_template, with_crc
from switch.qr.templates import CreditorId, CreditorKind, QrRoute, QrScheme, decode_and_route, route

__all__ = [
    "CreditorId",
    "CreditorKind",
    "QrError",
    "QrPayload",
    "QrRoute",
    "QrScheme",
    "crc16_ccitt_false",
    "decode",
    "decode_and_route",
    "encode",
    "parse_template",
    "route",
    "with_crc",
]
