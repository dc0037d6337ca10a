"""QR-initiated instructions end to end (real broker, PromptPay simulator, each database): the
switch decodes the scanned EMVCo payload, routes it to its corridor, takes creditor and amount
from it, and rejects a broken checksum, an expired dynamic KHQR, a domestic KHQR and an amount
that disagrees with the QR, each with its ISO reason."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from switch.broker import TansuBroker
from switch.qr.emvco import encode
from switch.store.sql_store import Store
from tests.factories import sample_instruction
from tests.integration.harness import running_switch
from tests.integration.test_pipeline import collect, finals_by_id, publish


def qr_instruction(instruction_id: str, qr: str, **changes: Any) -> dict[str, Any]:
    doc = sample_instruction(instruction_id=instruction_id, qr=qr, **changes)
    for key in ("creditor", "corridor", "amount"):
        if key not in changes:
            doc.pop(key)
    return doc


def thai_qr(**over: Any) -> str:
    fields = {"01": "12", "29": {"00": "A000000677010111", "01": "0066812345678"}, "53": "764", "54": "150.00",
              "58": "TH", "59": "SOMCHAI SHOP", "60": "BANGKOK"}
    fields.update(over)
    return encode({k: v for k, v in fields.items() if v is not None})


def khqr(expires_in_ms: int) -> str:
    now_ms = int(time.time() * 1000)
    return encode({"01": "12", "29": {"00": "sok_dara@aclb", "01": "85512345678", "02": "ACLEDA"}, "52": "5999",
                   "53": "116", "54": "20000", "58": "KH", "59": "Sok Dara", "60": "Phnom Penh",
                   "99": {"00": str(now_ms - 600_000), "01": str(now_ms + expires_in_ms)}})


async def test_qr_instructions_are_routed_and_bad_qrs_rejected(broker: TansuBroker, store: Store) -> None:
    tag = uuid.uuid4().hex[:6]
    good = thai_qr()
    broken = good[:-4] + ("0000" if not good.endswith("0000") else "1111")
    cases = {
        "dynamic": qr_instruction(f"Q{tag}-dyn", good),
        "static": qr_instruction(f"Q{tag}-sta", thai_qr(**{"01": "11", "54": None}), amount={"value": "100000", "currency": "KHR"}),
        "checksum": qr_instruction(f"Q{tag}-crc", broken),
        "expired": qr_instruction(f"Q{tag}-exp", khqr(-60_000)),
        "domestic": qr_instruction(f"Q{tag}-dom", khqr(600_000)),
        "mismatch": qr_instruction(f"Q{tag}-mis", good, amount={"value": "151.00", "currency": "THB"}),
        "wrong_corridor": qr_instruction(f"Q{tag}-cor", good, corridor="KH-LA"),
    }
    async with running_switch(broker, store) as run:
        await publish(run, [(d["instruction_id"], json.dumps(d).encode()) for d in cases.values()])
        ids = {d["instruction_id"] for d in cases.values()}
        records = await collect(run, run.config.kafka.status_topic, until=lambda rs: ids <= set(finals_by_id(rs)))
        finals = {k: finals_by_id(records)[d["instruction_id"]][0] for k, d in cases.items()}

    assert finals["dynamic"]["state"] == "COMPLETED"
    assert finals["dynamic"]["corridor"] == "KH-TH"
    assert finals["dynamic"]["target_amount"] == {"value": "150.00", "currency": "THB"}  # the QR fixed the creditor's amount
    assert finals["static"]["state"] == "COMPLETED"
    assert finals["static"]["source_amount"] == {"value": "100000", "currency": "KHR"}
    got = {k: (e["state"], e["reason_code"]) for k, e in finals.items() if k not in ("dynamic", "static")}
    assert got == {
        "checksum": ("REJECTED", "FF01"),
        "expired": ("REJECTED", "TM01"),
        "domestic": ("REJECTED", "AG01"),
        "mismatch": ("REJECTED", "AM09"),
        "wrong_corridor": ("REJECTED", "AG01"),
    }
    assert "checksum" in finals["checksum"]["reason"]
