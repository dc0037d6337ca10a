"""fx/convert.py: exact conversion, one named rounding, BaseOneRate limits. Values checked by hand."""

from __future__ import annotations

import ast
from decimal import (
    ROUND_05UP,
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
)
from pathlib import Path

import pytest

from fx.convert import convert, source_for_target, to_base_one_rate
from switch.domain.money import CURRENCIES, AmountError, Money

KHR, THB, USD, VND = (CURRENCIES[c] for c in ("KHR", "THB", "USD", "VND"))
FX_DIR = Path(__file__).resolve().parents[2] / "fx"
SHARED_XSD = Path(__file__).resolve().parents[3] / "shared" / "iso20022-xsd" / "pacs.008.001.08.xsd"


def thb(text: str) -> Money:
    return Money.parse(text, "THB")


def khr(text: str) -> Money:
    return Money.parse(text, "KHR")


# 0.05 THB × 110 = 5.5 KHR and 0.15 THB × 110 = 16.5 KHR: exact halves, KHR takes no decimals.
@pytest.mark.parametrize(
    ("rounding", "from_5_5", "from_16_5"),
    [
        (ROUND_DOWN, "5", "16"),
        (ROUND_UP, "6", "17"),
        (ROUND_FLOOR, "5", "16"),
        (ROUND_CEILING, "6", "17"),
        (ROUND_HALF_UP, "6", "17"),
        (ROUND_HALF_DOWN, "5", "16"),
        (ROUND_HALF_EVEN, "6", "16"),
        (ROUND_05UP, "6", "16"),
    ],
)
def test_exact_half_rounds_by_the_named_mode(rounding: str, from_5_5: str, from_16_5: str) -> None:
    assert convert(thb("0.05"), Decimal(110), KHR, rounding=rounding) == khr(from_5_5)
    assert convert(thb("0.15"), Decimal(110), KHR, rounding=rounding) == khr(from_16_5)


def test_just_off_half_rounds_to_the_nearer_side() -> None:
    # 0.05 × 110.2 = 5.51 and 0.05 × 109.8 = 5.49
    assert convert(thb("0.05"), Decimal("110.2"), KHR, rounding=ROUND_HALF_DOWN) == khr("6")
    assert convert(thb("0.05"), Decimal("109.8"), KHR, rounding=ROUND_HALF_UP) == khr("5")


@pytest.mark.parametrize("rounding", [ROUND_DOWN, ROUND_UP, ROUND_HALF_EVEN, ROUND_05UP])
def test_exact_result_is_not_rounded(rounding: str) -> None:
    assert convert(thb("0.10"), Decimal(110), KHR, rounding=rounding) == khr("11")


def test_khr_to_thb_rounds_to_two_decimals() -> None:
    # 10,000 × 0.0083298625 = 83.298625 THB
    rate = Decimal("0.0083298625")
    assert convert(khr("10000"), rate, THB, rounding=ROUND_DOWN) == thb("83.29")
    assert convert(khr("10000"), rate, THB, rounding=ROUND_UP) == thb("83.30")
    assert convert(khr("10000"), rate, THB, rounding=ROUND_HALF_EVEN) == thb("83.30")


def test_to_khr_gives_whole_riel_in_minor_units() -> None:
    # 1.00 USD × 4065.37 = 4065.37 KHR → 4065 riel = 406500 minor units (ISO exponent 2)
    result = convert(Money.parse("1", "USD"), Decimal("4065.37"), KHR, rounding=ROUND_DOWN)
    assert result == Money(406_500, KHR)


def test_to_vnd_gives_whole_dong() -> None:
    # 1.00 USD × 25980.5 = 25980.5 VND
    assert convert(Money.parse("1", "USD"), Decimal("25980.5"), VND, rounding=ROUND_DOWN) == Money(25_980, VND)
    assert convert(Money.parse("1", "USD"), Decimal("25980.5"), VND, rounding=ROUND_HALF_UP) == Money(25_981, VND)


def test_large_amounts_keep_every_digit() -> None:
    # 123456789012345.67 × 1.0000000001 = 123456789024691.348901234567 (30 digits, beyond Decimal's default 28)
    amount = thb("123456789012345.67")
    assert convert(amount, Decimal("1.0000000001"), THB, rounding=ROUND_DOWN) == thb("123456789024691.34")
    assert convert(amount, Decimal("1.0000000001"), THB, rounding=ROUND_HALF_UP) == thb("123456789024691.35")


def test_result_beyond_the_amount_limit_is_am09() -> None:
    # 10^12 VND × 100000 = 10^17 KHR = 10^19 minor units > 10^18 - 1
    with pytest.raises(AmountError) as caught:
        convert(Money(10**12, VND), Decimal(100_000), KHR, rounding=ROUND_DOWN)
    assert caught.value.reason_code == "AM09"


def test_source_for_target_rounds_up_to_the_smallest_sufficient_source() -> None:
    # 39,800 / 3980 = 10 exactly; 39,801 / 3980 = 10.000251… → 10.01 USD
    assert source_for_target(khr("39800"), Decimal(3980), USD, rounding=ROUND_UP) == Money.parse("10.00", "USD")
    assert source_for_target(khr("39801"), Decimal(3980), USD, rounding=ROUND_UP) == Money.parse("10.01", "USD")
    assert source_for_target(khr("39801"), Decimal(3980), USD, rounding=ROUND_DOWN) == Money.parse("10.00", "USD")


@pytest.mark.parametrize("rate", [Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity")])
def test_rate_must_be_finite_and_positive(rate: Decimal) -> None:
    with pytest.raises(ValueError):
        convert(thb("1"), rate, KHR, rounding=ROUND_DOWN)


def test_float_rate_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        convert(thb("1"), 110.0, KHR, rounding=ROUND_DOWN)  # type: ignore[arg-type]


def test_unknown_rounding_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="rounding"):
        convert(thb("0.05"), Decimal(110), KHR, rounding="ROUND_SIDEWAYS")


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        ("0.0085123456789", "0.0085123456"),  # fractionDigits 10 binds
        ("117.123456789012", "117.12345678"),  # totalDigits 11 binds
        ("4065", "4065"),
        ("0.99999999999", "0.9999999999"),
        ("1.99999999999", "1.9999999999"),
        ("12345678901.9", "12345678901"),
        ("0.00000000019", "0.0000000001"),
        ("0.0000384911470361", "0.0000384911"),
    ],
)
def test_to_base_one_rate_truncates_to_both_limits(rate: str, expected: str) -> None:
    result = to_base_one_rate(Decimal(rate))
    assert result == Decimal(expected)
    sign, digits, exponent = result.as_tuple()
    assert isinstance(exponent, int) and -exponent <= 10
    assert len(digits) <= 11


@pytest.mark.parametrize("rate", ["123456789012", "0.00000000009"])
def test_rate_that_cannot_be_a_base_one_rate_is_rejected(rate: str) -> None:
    with pytest.raises(ValueError):
        to_base_one_rate(Decimal(rate))


@pytest.fixture(scope="module")
def base_one_rate_type():  # type: ignore[no-untyped-def]
    if not SHARED_XSD.exists():
        pytest.skip(f"official XSD not found at {SHARED_XSD}")
    xmlschema = pytest.importorskip("xmlschema")
    return xmlschema.XMLSchema(str(SHARED_XSD)).types["BaseOneRate"]


@pytest.mark.parametrize(
    "rate", ["0.0085123456789", "117.123456789012", "4065.123456789", "0.99999999999", "12345678901.9", "0.000038491147036"]
)
def test_to_base_one_rate_output_is_valid_against_the_official_xsd(base_one_rate_type, rate: str) -> None:  # type: ignore[no-untyped-def]
    assert not base_one_rate_type.is_valid(rate)  # the input itself would not go on the wire
    assert base_one_rate_type.is_valid(f"{to_base_one_rate(Decimal(rate)):f}")


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_convert_is_pure() -> None:
    allowed = {"__future__", "decimal", "fractions", "typing", "switch.domain.money"}
    assert _imported_modules(FX_DIR / "convert.py") <= allowed


@pytest.mark.parametrize("module", ["convert.py", "quote.py", "rates.py", "errors.py"])
def test_fx_core_does_no_io(module: str) -> None:
    io_roots = {"asyncio", "aiohttp", "aiokafka", "sqlalchemy", "lxml", "socket", "time"}
    assert not {m.split(".")[0] for m in _imported_modules(FX_DIR / module)} & io_roots
