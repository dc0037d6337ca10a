"""Money as integer minor units with its currency (STYLE §2).

`Currency.exponent` is the ISO 4217 exponent and fixes the minor unit the switch stores.
`Currency.decimals_accepted_max` is what the corridors accept in practice (PARTNERS.md): KHR and
LAK are integer amounts although ISO 4217 gives them two decimals, VND has none at all. An amount
with more fraction digits than that is rejected (`CH20`), never rounded.

Pure: no I/O, no float anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    numeric: str
    exponent: int
    decimals_accepted_max: int

    def __str__(self) -> str:
        return self.code


CURRENCIES: Final[dict[str, Currency]] = {
    c.code: c
    for c in (
        Currency("KHR", "116", 2, 0),
        Currency("THB", "764", 2, 2),
        Currency("LAK", "418", 2, 0),
        Currency("VND", "704", 0, 0),
        Currency("CNY", "156", 2, 2),
        Currency("USD", "840", 2, 2),
    )
}

# The pacs.008 XSD types amounts as xs:decimal with totalDigits 18: keep every amount inside it.
amount_minor_max: Final = 10**18 - 1


class AmountError(ValueError):
    """An amount that does not fit its currency. `reason_code` is the ISO external code."""

    def __init__(self, message: str, *, reason_code: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


def currency(code: str) -> Currency:
    try:
        return CURRENCIES[code]
    except KeyError:
        raise AmountError(f"unknown currency {code!r}", reason_code="CURR") from None


@dataclass(frozen=True, slots=True, order=True)
class Money:
    amount_minor: int
    currency: Currency

    def __post_init__(self) -> None:
        if type(self.amount_minor) is not int:
            raise TypeError(f"amount_minor must be int, got {type(self.amount_minor).__name__}")
        if not 0 <= self.amount_minor <= amount_minor_max:
            raise AmountError(f"amount {self.amount_minor} out of range", reason_code="AM09")

    @classmethod
    def parse(cls, text: str, code: str) -> Money:
        """Parse a decimal amount given as text ('1500', '12.50'). Exact or a reject, never rounded."""
        cur = currency(code)
        try:
            value = Decimal(text.strip())
        except (InvalidOperation, AttributeError):
            raise AmountError(f"amount {text!r} is not a decimal number", reason_code="FF01") from None
        if not value.is_finite():
            raise AmountError(f"amount {text!r} is not finite", reason_code="FF01")
        if value <= 0:
            raise AmountError(f"amount {text!r} must be positive", reason_code="AM09")
        if value.adjusted() + cur.exponent >= 18:  # beyond amount_minor_max (and Decimal's precision)
            raise AmountError(f"amount {text!r} is too large", reason_code="AM09")
        if value != value.quantize(Decimal(1).scaleb(-cur.decimals_accepted_max)):
            raise AmountError(
                f"amount {text!r} has more decimals than {cur.code} allows "
                f"({cur.decimals_accepted_max})",
                reason_code="CH20",
            )
        minor = value.scaleb(cur.exponent)
        if minor != minor.to_integral_value():
            raise AmountError(f"amount {text!r} is finer than the {cur.code} minor unit", reason_code="CH20")
        return cls(int(minor), cur)

    def to_decimal(self) -> Decimal:
        return Decimal(self.amount_minor).scaleb(-self.currency.exponent)

    def to_text(self, decimals: int | None = None) -> str:
        """Amount as text with exactly `decimals` fraction digits (default: the ISO exponent).

        Asking for fewer decimals than the amount carries is a programmer error.
        """
        places = self.currency.exponent if decimals is None else decimals
        exponent = self.currency.exponent
        if places < exponent:
            units, dropped = divmod(self.amount_minor, 10 ** (exponent - places))
            if dropped:
                raise ValueError(f"{self} does not fit {places} decimals")
        else:
            units = self.amount_minor * 10 ** (places - exponent)
        if places == 0:
            return str(units)
        whole, fraction = divmod(units, 10**places)
        return f"{whole}.{fraction:0{places}d}"

    def __str__(self) -> str:
        return f"{self.to_text()} {self.currency.code}"
