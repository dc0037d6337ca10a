"""`mekong recon report` (switch/entrypoints/recon_report.py): a cycle document as the operations
API returns it, rendered as a terminal table, CSV and JSON, with amounts in their currency's
decimals."""

from __future__ import annotations

import csv
import io
import json

from switch.entrypoints.recon_report import amount, breaks_table, cycles_table, render

CYCLE = {
    "id": "promptpay-20261128T093000Z", "partner": "promptpay", "state": "reconciled", "settlement_date": "2026-11-28",
    "cut_off": "2026-11-28T09:30:00+00:00", "books_count": 12, "entries_count": 12, "report_pages": 2, "report_last_page": 2,
    "summary": {
        "books": 12, "entries": 12, "matched": 10, "resolved_by_switch": 1, "breaks_open": 1, "clean": False,
        "breaks": {"missing_at_partner": 1, "amount_mismatch": 1},
        "break_amounts": {"missing_at_partner": {"THB": 150025}, "amount_mismatch": {"THB": 1000}},
        "partner_positions": [{"partner": "promptpay", "currency": "THB", "count": 10, "outbound_minor": 900000, "inbound_minor": 0,
                               "returns_to_partner_minor": 0, "returns_from_partner_minor": 25000, "fees_minor": 0, "net_minor": 875000}],
        "participant_positions": [{"participant": "ACLBKHPPXXX", "currency": "KHR", "count": 10, "debits_minor": 26000000,
                                   "credits_minor": 0, "returns_in_minor": 700000, "returns_out_minor": 0, "fees_minor": 50000,
                                   "net_minor": 25350000}],
    },
    "breaks_detail": [
        {"id": "B1", "cycle_id": "promptpay-20261128T093000Z", "kind": "amount_mismatch", "state": "open", "action": "none",
         "uetr": "u-1", "detail": "amounts differ"},
        {"id": "B2", "cycle_id": "promptpay-20261128T093000Z", "kind": "missing_at_partner", "state": "resolved", "action": "enquiry",
         "uetr": "u-2", "detail": "settled a cycle late"},
    ],
}


def test_amounts_show_in_their_currency_decimals() -> None:
    assert amount(150025, "THB") == "1,500.25 THB"
    assert amount(1500, "VND") == "1,500 VND"
    assert amount(-5, "USD") == "-0.05 USD"


def test_the_table_shows_counts_breaks_positions_and_only_the_open_breaks() -> None:
    text = render([CYCLE], "table")
    assert "Cycle promptpay-20261128T093000Z (promptpay, settles 2026-11-28" in text
    assert "missing_at_partner  1      1,500.25 THB" in text
    assert "8,750.00 THB hub owes" in text
    assert "253,500.00 KHR" in text
    assert "B1" in text and "B2" not in text  # a resolved break is not an open one


def test_csv_and_json_carry_the_same_numbers() -> None:
    rows = list(csv.DictReader(io.StringIO(render([CYCLE], "csv"))))
    net = next(r for r in rows if r["section"] == "partner_position")
    assert (net["item"], net["amount_minor"], net["currency"], net["returns_from_partner_minor"]) == ("promptpay", "875000", "THB", "25000")
    kinds = {r["item"]: r["count"] for r in rows if r["section"] == "breaks"}
    assert kinds["amount_mismatch"] == "1" and kinds["duplicate_entry"] == "0"
    assert [r["item"] for r in rows if r["section"] == "open_break"] == ["B1"]
    assert json.loads(render([CYCLE], "json"))["cycles"][0]["summary"]["matched"] == 10


def test_cycle_and_break_lists() -> None:
    assert "promptpay-20261128T093000Z  reconciled" in cycles_table([CYCLE])
    assert "amount_mismatch" in breaks_table(CYCLE["breaks_detail"])  # type: ignore[arg-type]
