"""ISO external status reason codes."""

from __future__ import annotations

import pytest

from iso20022.reason_codes import REASON_CODES, UnknownReasonCode, for_code

PARTNERS_MD_CODES = (
    "AB05 AB06 AB07 AB08 AC01 AC04 AC06 AG01 AGNT AM02 AM04 AM09 AM13 AM14 BE01 BE23 CH20 CURR DUPL "
    "FF01 FF02 NARR MS03 RC01 RR04 RR10 TM01"
).split()


def test_every_code_from_partners_md_is_known() -> None:
    assert sorted(REASON_CODES) == sorted(PARTNERS_MD_CODES)


def test_for_code_returns_iso_names() -> None:
    assert for_code("AC01").name == "IncorrectAccountNumber"
    assert for_code("BE01").name == "InconsistenWithEndCustomer"  # ISO's own spelling
    assert for_code("CH20").name == "DecimalPointsNotCompatibleWithCurrency"


def test_only_transient_agent_conditions_are_retriable() -> None:
    assert {code for code, rc in REASON_CODES.items() if rc.retriable} == {"AB05", "AB06", "AB07", "AB08"}


def test_unknown_code_raises_a_key_error() -> None:
    with pytest.raises(UnknownReasonCode):
        for_code("ZZ99")
    with pytest.raises(KeyError):
        for_code("ac01")
