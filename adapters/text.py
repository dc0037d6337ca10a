"""Partner text rules: what a name or remittance line becomes on the wire (PARTNERS.md "Character
sets"). The payment keeps the original (Khmer, Thai, Lao, Vietnamese, Chinese ...) text; the
pacs.008 carries a deterministic Latin form when the partner's profile wants Latin.

The Latin form, for every rule:
  1. NFC-normalise (so a decomposed Vietnamese name counts as many characters as a composed one);
  2. map `Đ`/`đ` to `D`/`d` explicitly (NFD decomposition leaves them alone);
  3. transliterate every non-ASCII letter, mark, digit, punctuation or space character with
     anyascii (ISC licence, per-character tables for Khmer, Thai, Lao, Vietnamese, CJK ...); other
     non-ASCII characters (symbols such as emoji, control and format characters) are kept as they
     are, so the character-set check refuses them;
  4. strip leading and trailing spaces;
  5. `ascii_upper` only: upper-case.
The result must be non-empty and inside the rule's character set, else `RR10`.

Lengths count Unicode characters (code points after NFC, as the XSD's maxLength does). An original
longer than the partner's maximum is the sender's to fix: `FF01`. A Latin form that grows past the
maximum (Khmer and Thai transliterations are often longer than the script) follows the profile's
`text_overflow`: `truncate` (default) cuts it to the maximum and strips trailing spaces, because
the sender cannot shorten a transliteration it never wrote and the original stays on the payment in
full; `reject` refuses it with `FF01`.

Pure, no I/O. The transliteration is cached: it sits on the admission hot path.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from anyascii import anyascii

from switch import limits

TextRule = Literal["latin", "ascii_upper"]
TextOverflow = Literal["truncate", "reject"]

# CBPR+ Latin character set for names and free text ([U] secondary source, PARTNERS.md).
LATIN_TEXT: Final = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]*")
ASCII_UPPER_TEXT: Final = re.compile(r"[A-Z0-9/\-?:().,'+ ]*")
CHARSETS: Final[dict[str, re.Pattern[str]]] = {"latin": LATIN_TEXT, "ascii_upper": ASCII_UPPER_TEXT}
CHARSET_NAMES: Final = {"latin": "the Latin character set", "ascii_upper": "upper-case ASCII"}

# Letters NFD leaves whole, mapped before anything else (PARTNERS.md: Vietnamese `Đ/đ`).
EXPLICIT: Final = str.maketrans({"Đ": "D", "đ": "d"})
# Unicode general categories transliterated; others (S* symbols, C* controls/format) stay as
# they are and fail the character-set check.
_TRANSLITERATED: Final = frozenset("LMNPZ")


@dataclass(frozen=True, slots=True)
class TextProblem:
    """Why a text cannot be carried: the ISO reason code and a sentence naming the field."""

    reason_code: str
    detail: str


@lru_cache(maxsize=limits.transliterations_cached_max)
def to_latin(text: str, rule: TextRule) -> str:
    """The deterministic Latin form of `text` under `rule` (steps 1-5 above), not yet checked."""
    nfc = unicodedata.normalize("NFC", text).translate(EXPLICIT)
    if nfc.isascii():
        out = nfc
    else:
        out = "".join(
            ch if ch.isascii() or unicodedata.category(ch)[0] not in _TRANSLITERATED else anyascii(ch) for ch in nfc
        )
    out = out.strip(" ")
    return out.upper() if rule == "ascii_upper" else out


def char_count(text: str) -> int:
    """Length in Unicode characters, as the XSD counts them (after NFC)."""
    return len(text) if text.isascii() else len(unicodedata.normalize("NFC", text))


def charset_ok(text: str, rule: TextRule) -> bool:
    return CHARSETS[rule].fullmatch(text) is not None


def render(
    text: str, *, rule: TextRule, chars_max: int, overflow: TextOverflow, what: str, network: str
) -> str | TextProblem:
    """The text as it goes on the wire, or why it cannot (RR10 charset, FF01 length)."""
    length = char_count(text)
    if length > chars_max:
        return TextProblem("FF01", f"{what} has {length} characters, {network} takes {chars_max}")
    latin = to_latin(text, rule)
    if not latin:
        return TextProblem("RR10", f"{what} {text!r} has no {CHARSET_NAMES[rule]} form")
    if not charset_ok(latin, rule):
        bad = sorted({ch for ch in latin if not charset_ok(ch, rule)})
        return TextProblem("RR10", f"{what} {text!r} keeps {''.join(bad)!r} outside {CHARSET_NAMES[rule]}")
    if len(latin) > chars_max:
        if overflow == "reject":
            return TextProblem(
                "FF01", f"{what} {text!r} is {len(latin)} characters in Latin, {network} takes {chars_max}"
            )
        latin = latin[:chars_max].rstrip(" ")
    return latin
