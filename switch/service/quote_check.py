"""The check admission makes of an instruction's quote (issue 11; the reason codes and why:
switch/service/quotes.py and docs/operations/fx-quotes.md). Pure: handlers.py calls it with the
quote it read (one query, only for a batch that references quotes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fx.quote import FixedSide
from switch.domain.instruction import Reject
from switch.domain.money import Money
from switch.service.ports import StoredQuote


@dataclass(frozen=True, slots=True)
class QuoteRefused:
    """Why an instruction's quote is not honoured: the reject and the metric outcome."""

    reject: Reject
    outcome: str  # expired, used, mismatched


def check_quote(
    stored: StoredQuote | None, *, quote_id: str, participant: str, corridor: str, instructed: Money, debtor_currency: str,
    now: datetime, used_in_batch: bool,
) -> QuoteRefused | None:
    """None when the instruction may be priced exactly as `stored` says; else why not. Pure."""
    if stored is None or stored.participant != participant:  # another's is as unknown as none
        return QuoteRefused(Reject("AG01", f"no quote {quote_id} for {participant}"), "mismatched")
    q = stored.quote
    if stored.used_by_uetr is not None or used_in_batch:
        return QuoteRefused(Reject("DUPL", f"quote {quote_id} was already used by another instruction"), "used")
    if q.is_expired(now):
        return QuoteRefused(Reject("TM01", f"quote {quote_id} expired at {q.expires_at.isoformat()}"), "expired")
    if stored.corridor != corridor:
        return QuoteRefused(Reject("AG01", f"quote {quote_id} is for corridor {stored.corridor}, not {corridor}"), "mismatched")
    if debtor_currency != q.source.currency.code:
        return QuoteRefused(Reject("AM09", f"quote {quote_id} debits {q.source.currency}, not {debtor_currency}"), "mismatched")
    fixed = q.source if q.fixed_side is FixedSide.SOURCE else q.target
    if instructed != fixed:
        return QuoteRefused(Reject("AM09", f"the amount {instructed} is not the quoted {fixed} (quote {quote_id})"), "mismatched")
    return None
