"""adapters/text.py: the Latin form of partner text (PARTNERS.md "Character sets")."""

from __future__ import annotations

import unicodedata

import pytest

from adapters import text
from adapters.text import TextProblem, render, to_latin


def latin(value: str, chars_max: int = 140, rule: text.TextRule = "latin", overflow: text.TextOverflow = "truncate") -> str | TextProblem:
    return render(value, rule=rule, chars_max=chars_max, overflow=overflow, what="name", network="X")


@pytest.mark.parametrize(
    ("original", "rule", "expected"),
    [
        ("Sok Dara", "latin", "Sok Dara"),  # Latin stays as it is
        ("O'Brien (Thailand) Co., Ltd.", "latin", "O'Brien (Thailand) Co., Ltd."),
        ("សុខ ដារា", "latin", "sokh dara"),  # Khmer
        ("สมชาย ใจดี", "latin", "smchay aichdi"),  # Thai
        ("ສົມພອນ ແກ້ວມະນີ", "latin", "somphn ekvmani"),  # Lao
        ("Nguyễn Văn Đức", "latin", "Nguyen Van Duc"),  # Vietnamese
        ("王小明", "latin", "WangXiaoMing"),  # Chinese
        ("Nguyễn Văn Đức", "ascii_upper", "NGUYEN VAN DUC"),
        ("đường", "ascii_upper", "DUONG"),
        ("Straße", "ascii_upper", "STRASSE"),
        ("  Sok Dara  ", "latin", "Sok Dara"),
        ("១២៣", "latin", "123"),  # Khmer digits
    ],
)
def test_latin_forms(original: str, rule: text.TextRule, expected: str) -> None:
    assert latin(original, rule=rule) == expected


def test_dj_is_mapped_explicitly_because_nfd_leaves_it_whole() -> None:
    assert unicodedata.normalize("NFD", "Đđ") == "Đđ"  # the reason for the explicit map
    assert text.EXPLICIT == str.maketrans({"Đ": "D", "đ": "d"})
    assert to_latin("Đđ", "latin") == "Dd" and to_latin("Đđ", "ascii_upper") == "DD"


@pytest.mark.parametrize("value", ["Sok ♥", "😀", "\u200b", "Sok\tDara", "Sok & Dara", "Sok_Dara", "   ", "a@b"])
def test_no_acceptable_form_is_rr10(value: str) -> None:
    out = latin(value)
    assert isinstance(out, TextProblem) and out.reason_code == "RR10", out


def test_lower_case_is_outside_ascii_upper_and_the_simulator_sees_it() -> None:
    assert text.charset_ok("NGUYEN VAN DUC", "ascii_upper") and not text.charset_ok("Nguyen Van Duc", "ascii_upper")
    assert text.charset_ok("Nguyen Van Duc", "latin") and not text.charset_ok("Nguyễn", "latin")


def test_lengths_count_characters_after_nfc() -> None:
    composed, decomposed = "Nguyễn", "Nguye\u0302\u0303n"
    assert (len(composed), len(decomposed)) == (6, 8)
    assert text.char_count(composed) == text.char_count(decomposed) == 6
    assert latin(decomposed, chars_max=6) == "Nguyen"
    too_long = latin("Nguyễn", chars_max=5)
    assert isinstance(too_long, TextProblem) and too_long.reason_code == "FF01"


def test_a_latin_form_past_the_maximum_is_truncated_or_refused_as_the_profile_says() -> None:
    assert latin("สมชาย ใจดี", chars_max=10) == "smchay aic"  # 10 characters in Thai, 13 in Latin
    assert latin("王小明 李", chars_max=13) == "WangXiaoMing"  # "WangXiaoMing Li" cut, the trailing space stripped
    refused = latin("สมชาย ใจดี", chars_max=10, overflow="reject")
    assert isinstance(refused, TextProblem) and refused.reason_code == "FF01"


def test_transliteration_is_deterministic_and_cached() -> None:
    to_latin.cache_clear()
    first = to_latin("សុខ ដារា", "latin")
    assert to_latin("សុខ ដារា", "latin") == first
    info = to_latin.cache_info()
    assert (info.hits, info.misses) == (1, 1) and info.maxsize == text.limits.transliterations_cached_max
