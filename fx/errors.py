"""FX operating errors (`SwitchError`, STYLE §8): expected, with an ISO 20022 reason code and `retriable`.

Programmer errors (a float rate, an unknown rounding mode, a fee in the wrong currency) stay plain
TypeError / ValueError and are not caught.

Reason codes (ISO external status reason codes, PARTNERS.md):
- `RateUnavailable` → CURR ("currency of the payment is incorrect"): the switch has no rate for the
  pair, so it does not deal in it. Not retriable: it needs a config or provider change.
- `RateStale` → MS03 ("reason not specified"): ISO has no code for a stale rate; MS03 is the
  honest generic one. Retriable: a provider refresh makes the same request succeed.
- `AmountTooSmall` → AM09 ("wrong amount"): nothing to send, or the amount converts to zero in
  the other currency (1 KHR is 0.00 THB). Not retriable.
"""

from __future__ import annotations

from switch.domain.errors import SwitchError


class RateUnavailable(SwitchError):
    retriable = False
    default_reason_code = "CURR"


class RateStale(SwitchError):
    retriable = True
    default_reason_code = "MS03"


class AmountTooSmall(SwitchError):
    retriable = False
    default_reason_code = "AM09"
