"""Properties of the back-conversion of returns (fx/returns.py), under any split of the returned
amount: never more than the full-return amount, exactly that amount once all is back, the debtor
never above its exact share (rounding goes to the switch; the remainder with the last return)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from fx.returns import back_current, back_original, full_back, pro_rata
from switch.domain.money import CURRENCIES, Money

SOURCES = [CURRENCIES[c] for c in ("KHR", "USD", "VND", "THB")]
TARGETS = [CURRENCIES[c] for c in ("THB", "LAK", "VND", "CNY", "KHR")]


def _step(code: str) -> int:
    c = CURRENCIES[code]
    return 10 ** (c.exponent - c.decimals_accepted_max)


@st.composite
def payments(draw: st.DrawFn) -> tuple[Money, Money, Money]:
    """(source principal, fee, target) of a payment, each a whole number of its currency's steps."""
    src, tgt = draw(st.sampled_from(SOURCES)), draw(st.sampled_from(TARGETS))
    source = Money(draw(st.integers(1, 10**9)) * _step(src.code), src)
    fee = Money(draw(st.integers(0, 10**4)) * _step(src.code), src)
    target = Money(draw(st.integers(1, 10**7)) * _step(tgt.code), tgt)
    return source, fee, target


@st.composite
def splits(draw: st.DrawFn, total_steps: int) -> list[int]:
    """A split of `total_steps` into 1..6 positive parts."""
    cuts = sorted(draw(st.sets(st.integers(1, total_steps - 1), max_size=min(5, total_steps - 1))) if total_steps > 1 else [])
    bounds = [0, *cuts, total_steps]
    return [b - a for a, b in zip(bounds, bounds[1:])]


def _run(source: Money, fee: Money, target: Money, parts_steps: list[int], fee_rule: str) -> tuple[Money, list[int]]:
    full = full_back(source, fee, fee_rule)  # type: ignore[arg-type]
    step = _step(target.currency.code)
    before, back_before, backs = 0, 0, []
    for part in parts_steps:
        returned = Money(part * step, target.currency)
        b = back_original(returned=returned, target=target, returned_before=before, back_before=back_before, full=full, rate="1")
        backs.append(b.back.amount_minor)
        before += returned.amount_minor
        back_before += b.back.amount_minor
    return full, backs


@given(data=st.data(), payment=payments(), fee_rule=st.sampled_from(["keep", "refund"]))
def test_all_partial_returns_add_up_to_exactly_the_full_return_amount(data: st.DataObject, payment: tuple[Money, Money, Money],
                                                                     fee_rule: str) -> None:
    source, fee, target = payment
    parts = data.draw(splits(target.amount_minor // _step(target.currency.code)))
    full, backs = _run(source, fee, target, parts, fee_rule)
    assert sum(backs) == full.amount_minor
    assert all(b >= 0 and b % _step(source.currency.code) == 0 for b in backs)


@given(data=st.data(), payment=payments(), fee_rule=st.sampled_from(["keep", "refund"]))
def test_no_prefix_of_returns_gives_the_debtor_more_than_its_exact_share(data: st.DataObject, payment: tuple[Money, Money, Money],
                                                                        fee_rule: str) -> None:
    """The debtor gets the floor: after any returns, what came back is at most the exact
    proportional share of the full amount, and less than one step below it."""
    source, fee, target = payment
    step_t, step_s = _step(target.currency.code), _step(source.currency.code)
    parts = data.draw(splits(target.amount_minor // step_t))
    full, backs = _run(source, fee, target, parts, fee_rule)
    returned = 0
    for part, running in zip(parts, [sum(backs[: i + 1]) for i in range(len(backs))]):
        returned += part * step_t
        exact = Fraction(full.amount_minor * returned, target.amount_minor)
        assert running <= exact <= running + step_s  # never more than the share, the remainder below one step


@given(payment=payments())
def test_a_full_return_at_the_original_rate_is_the_principal_exactly(payment: tuple[Money, Money, Money]) -> None:
    source, fee, target = payment
    keep = back_original(returned=target, target=target, returned_before=0, back_before=0,
                         full=full_back(source, fee, "keep"), rate="0.5")
    refund = back_original(returned=target, target=target, returned_before=0, back_before=0,
                           full=full_back(source, fee, "refund"), rate="0.5")
    assert keep.back == source and keep.rule == "original" and keep.rate == "0.5"
    assert refund.back.amount_minor == source.amount_minor + fee.amount_minor


@given(data=st.data(), payment=payments())
def test_whatever_came_back_before_the_total_never_exceeds_the_full_amount(data: st.DataObject,
                                                                          payment: tuple[Money, Money, Money]) -> None:
    """Even after earlier returns that gave back more than their share (another rule, a config
    change), the original rule never takes the total above the full amount."""
    source, fee, target = payment
    step_t = _step(target.currency.code)
    total_steps = target.amount_minor // step_t
    if total_steps < 2:
        return
    first = data.draw(st.integers(1, total_steps - 1)) * step_t
    over = data.draw(st.integers(0, source.amount_minor))
    rest = Money(target.amount_minor - first, target.currency)
    b = back_original(returned=rest, target=target, returned_before=first, back_before=over, full=source, rate=None)
    assert over + b.back.amount_minor <= max(over, source.amount_minor)


@given(data=st.data(), payment=payments(), mid=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("30000"), places=6))
def test_the_current_rule_rounds_down_and_refunds_the_fee_pro_rata(data: st.DataObject, payment: tuple[Money, Money, Money],
                                                                   mid: Decimal) -> None:
    source, fee, target = payment
    step_t = _step(target.currency.code)
    parts = data.draw(splits(target.amount_minor // step_t))
    before, fees = 0, 0
    for part in parts:
        returned = Money(part * step_t, target.currency)
        plain = back_current(returned=returned, target=target, returned_before=before, mid_source_to_target=mid,
                             source_currency=source.currency, fee_refund=None)
        with_fee = back_current(returned=returned, target=target, returned_before=before, mid_source_to_target=mid,
                                source_currency=source.currency, fee_refund=fee)
        assert plain.back.amount_minor <= Fraction(returned.amount_minor, 10**target.currency.exponent) / Fraction(
            Decimal(plain.rate or "1")) * 10**source.currency.exponent
        fees += with_fee.back.amount_minor - plain.back.amount_minor
        before += returned.amount_minor
    assert fees == fee.amount_minor


@given(payment=payments(), data=st.data())
def test_pro_rata_shares_add_up(payment: tuple[Money, Money, Money], data: st.DataObject) -> None:
    source, _, target = payment
    parts = data.draw(splits(target.amount_minor // _step(target.currency.code)))
    before, total = 0, 0
    for part in parts:
        total += pro_rata(source, target, before, part * _step(target.currency.code)).amount_minor
        before += part * _step(target.currency.code)
    assert total == source.amount_minor
