"""What a return gives back in the debtor's currency (issue 9): pure, exact, every rounding named.

A partner returns (part of) an outbound payment in its settlement currency (the payment's
`target`); the switch credits the debtor back in the debtor's currency (the payment's `source`
currency). How a payment's amounts relate (fx/quote.py, switch/service/handlers.py): the debtor is
debited `source + fee`; `source` is the principal that was converted, `target` = source × rate
(ROUND_DOWN, or source = target / rate ROUND_UP when the target was fixed); the fee is its own leg
in the source currency, on top.

What a *full* return gives back (`full_back`): the principal `source`, plus the `fee` when the
corridor says `return_fee = "refund"` (`"keep"`: the fee paid for a service rendered).

The corridor's `return_fx` says how a return converts:

- "original" (default; the Nexus fairness rule: neither side gains from the FX move): the
  returned share of the target gives back the same share of `full_back`, at the payment's own
  effective rate. Computed on integer steps of the currency with exact rationals, cumulatively:
  after returns totalling R of the target T, the debtor has got back floor(full × R / T) in all,
  so each return is floor(full × (R + r) / T) − (what earlier returns gave back). The debtor gets
  the floor (never more than its exact share; the switch never pays out more than it got); the
  remainder (less than one step of the currency at any time) goes with the last return, which
  makes the sum of all returns exactly `full_back`. A full return at once is `full_back` exactly.
- "current": the returned amount divided by the current mid rate source -> target (truncated to a
  BaseOneRate, fx/convert.py, like the payment's own `fx_rate`), ROUND_DOWN: the debtor bears the
  FX move either way; a refunded fee still comes back pro rata as above (the fee is in the
  debtor's currency: no FX).

Every rate here is "target units per source unit", the convention of the payment's `fx_rate` and
the pacs.008 XchgRate.

No I/O, no clock, no float.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction
from typing import Final, Literal

from fx.convert import source_for_target, to_base_one_rate
from switch.domain.money import Currency, Money

ReturnFx = Literal["original", "current"]
ReturnFee = Literal["keep", "refund"]
RULES: Final = ("original", "current")


@dataclass(frozen=True, slots=True)
class ReturnBack:
    """What one return gives back: `back` in the debtor's currency, at `rate` (target per source,
    decimal text: the payment's own for "original", the current mid for "current") under `rule`."""

    back: Money
    rate: str | None
    rule: ReturnFx


def _step(c: Currency) -> int:
    """Minor units in one step the currency accepts (KHR: 100, its amounts are whole riels)."""
    return 10 ** (c.exponent - c.decimals_accepted_max)


def full_back(source: Money, fee: Money, return_fee: ReturnFee) -> Money:
    """What a full return gives back: the principal, plus the fee when it is refunded."""
    if fee.currency != source.currency:
        raise ValueError(f"fee {fee} is not in the source currency {source.currency}")
    return Money(source.amount_minor + (fee.amount_minor if return_fee == "refund" else 0), source.currency)


def pro_rata(total: Money, target: Money, returned_before: int, returned_now: int) -> Money:
    """The share of `total` that returning `returned_now` more minor units of `target` (after
    `returned_before`) adds: floor(total × after / T) − floor(total × before / T), in whole steps
    of total's currency. The sum over returns that add up to `target` is `total` exactly."""
    t = target.amount_minor
    after = returned_before + returned_now
    if t <= 0 or returned_before < 0 or returned_now <= 0 or after > t:
        raise ValueError(f"cannot return {returned_now} after {returned_before} of {t}")
    step = _step(total.currency)
    units = total.amount_minor // step  # a stored amount is a whole number of steps

    def cumulative(done: int) -> int:
        share = Fraction(units * done, t)
        return share.numerator // share.denominator  # floor: the debtor gets no more than its share

    return Money((cumulative(after) - cumulative(returned_before)) * step, total.currency)


def back_original(
    *, returned: Money, target: Money, returned_before: int, back_before: int, full: Money, rate: str | None,
) -> ReturnBack:
    """The "original" rule: the returned share of `full` (see the module docstring). `back_before`
    is what earlier returns gave back; it is taken into account so that the total never exceeds
    `full` even if an earlier return was converted under another rule."""
    if returned.currency != target.currency:
        raise ValueError(f"a return of {returned} for a payment in {target.currency}")
    after = returned_before + returned.amount_minor
    step = _step(full.currency)
    units = full.amount_minor // step
    due_total = (units * after // target.amount_minor) * step  # floor(full × after / T), in steps
    back = max(0, min(due_total, full.amount_minor) - back_before)
    return ReturnBack(Money(back, full.currency), rate, "original")


def back_current(
    *, returned: Money, target: Money, returned_before: int, mid_source_to_target: Decimal, source_currency: Currency,
    fee_refund: Money | None,
) -> ReturnBack:
    """The "current" rule: `returned` / today's mid (source -> target, truncated to a
    BaseOneRate), ROUND_DOWN; plus the fee's pro-rata share when it is refunded (`fee_refund`:
    the whole fee, or None when kept)."""
    if returned.currency != target.currency:
        raise ValueError(f"a return of {returned} for a payment in {target.currency}")
    rate = to_base_one_rate(mid_source_to_target)
    back = source_for_target(returned, rate, source_currency, rounding=ROUND_DOWN)
    if fee_refund is not None and fee_refund.amount_minor:
        share = pro_rata(fee_refund, target, returned_before, returned.amount_minor)
        back = Money(back.amount_minor + share.amount_minor, source_currency)
    return ReturnBack(back, f"{rate:f}", "current")
