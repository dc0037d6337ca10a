"""What the audit trail writes (switch/service/audit.py), on the fake unit of work: entries cut
to their bounds, dead letters by coordinates and digest (never content), one entry per
configuration file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from switch import limits
from switch.domain.audit import GENESIS_HASH, ChainWalk
from switch.metrics import DlqReason
from switch.service import audit
from switch.entrypoints.kafka_consumer import DeadLetter
from tests.fakes import T0, FakeStore, FakeUnitOfWork
from tests.unit.edge_kit import consumer_record


async def test_audit_appends_one_chained_entry_in_the_callers_unit_of_work() -> None:
    uow = FakeUnitOfWork()
    first = await audit.audit(uow, at=T0, actor="a", action="x.y", subject="s", detail={"k": "v"})
    second = await audit.audit(uow, at=T0, actor="a", action="x.y", subject="s")
    assert (first.id, first.prev_hash, second.prev_hash) == (1, GENESIS_HASH, first.hash)
    assert uow.state.audit == [first, second]


async def test_what_an_entry_names_from_outside_is_cut_to_its_bound() -> None:
    uow = FakeUnitOfWork()
    e = await audit.audit(uow, at=T0, actor="p" * 1000, action="a" * 1000, subject="s" * 1000, detail={"error": "e" * 1000})
    assert len(e.actor) == limits.audit_actor_chars_max
    assert len(e.action) == limits.audit_action_chars_max
    assert len(e.subject) == limits.audit_subject_chars_max
    assert len(e.detail["error"]) == limits.audit_text_chars_max


def test_a_dead_letter_is_recorded_by_coordinates_and_digest_not_content() -> None:
    value = b'{"participant":"ACLBKHPPXXX","debtor":{"name":"Sok Dara","account":"000123456789"}'
    record = consumer_record(value, topic="mekong.instructions", partition=1, offset=42)
    (e,) = audit.dead_letter_entries([DeadLetter(record, "malformed JSON: EOF", "FF02", DlqReason.MALFORMED_JSON)], at=T0)
    assert e.action == audit.KAFKA_DEAD_LETTERED and e.subject == "mekong.instructions:1:42"
    assert e.detail == {
        "category": DlqReason.MALFORMED_JSON.value, "reason_code": "FF02", "topic": "mekong.instructions", "partition": 1,
        "offset": 42, "value_bytes": len(value), "sha256": hashlib.sha256(value).hexdigest(),
    }
    assert "Sok Dara" not in repr(e) and "000123456789" not in repr(e)


def test_each_configuration_file_is_an_entry_with_its_sha256_and_the_replica(tmp_path: Path) -> None:
    (tmp_path / "partners").mkdir()
    (tmp_path / "switch.toml").write_bytes(b"[switch]\n")
    (tmp_path / "partners" / "promptpay.toml").write_bytes(b"[profile]\n")
    (tmp_path / "notes.txt").write_bytes(b"not configuration")
    entries = audit.config_entries(tmp_path, replica="host-1-abc", at=T0)
    assert [e.subject for e in entries] == [str(tmp_path / "partners" / "promptpay.toml"), str(tmp_path / "switch.toml")]
    assert entries[1].detail == {"sha256": hashlib.sha256(b"[switch]\n").hexdigest(), "bytes": 9, "replica": "host-1-abc"}
    assert {e.actor for e in entries} == {"replica host-1-abc"} and {e.action for e in entries} == {audit.CONFIG_LOADED}


async def test_a_refusal_at_the_http_edge_commits_in_a_transaction_of_its_own() -> None:
    store = FakeStore()

    async def in_transaction(work, *, name):  # type: ignore[no-untyped-def]
        async with store.unit_of_work() as uow:
            return await work(uow)

    refusal = audit.http_refusal_entry(
        at=T0, peer="203.0.113.9", path="/iso20022/nobody", status=404, reason_code="RC01", error="unknown partner", declared_bytes=10
    )
    await audit.audit_refusal(in_transaction, refusal)
    (e,) = store.state.audit
    assert (e.actor, e.action, e.subject, e.detail["status"]) == ("peer 203.0.113.9", audit.HTTP_REFUSED, "/iso20022/nobody", 404)
    walk = ChainWalk()
    walk.feed(store.state.audit)
    assert walk.broken is None


async def test_a_refusal_that_cannot_be_audited_is_logged_and_still_stands(caplog) -> None:  # type: ignore[no-untyped-def]
    async def database_away(work, *, name):  # type: ignore[no-untyped-def]
        raise ConnectionError("database away")

    refusal = audit.http_refusal_entry(
        at=T0, peer=None, path="/iso20022/x", status=413, reason_code="FF01", error=None, declared_bytes=None
    )
    await audit.audit_refusal(database_away, refusal)  # does not raise
    assert "could not audit the refusal" in caplog.text
