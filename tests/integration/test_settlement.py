"""Settlement reconciliation end to end (issue 10) on the real broker, each database and the
PromptPay simulator over mutual TLS with signed messages, cycles of a few seconds: the network
posts its camt.053 after each cut-off and the switch settles what matched; injected breaks are
found as the kinds the network meant; an operator resolves one (an auditor may not); a report the
network never posted is imported by an operator as a file; statements reach mekong.statements."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp

from adapters.simulator import SimBehaviour
from iso20022.model import Amount
from iso20022.reports import ReportEntry, ReportHeader, build_report
from switch.broker import TansuBroker
from switch.store.sql_store import Store
from tests.integration.harness import Running, running_switch
from tests.integration.test_pipeline import collect, finals_by_id, instruction, publish

ACCOUNT = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}
CYCLE_S = 3.0
settle_s_max = 60.0


async def _wait_for(check: Callable[[], Awaitable[Any]], timeout_s: float = settle_s_max) -> Any:
    async with asyncio.timeout(timeout_s):
        while not (found := await check()):
            await asyncio.sleep(0.2)
    return found


async def _get(run: Running, path: str, role: str = "operator") -> tuple[int, Any]:
    async with run.ops_session(client=None) as http, http.get(f"{run.url}{path}", headers=run.auth_as(role)) as resp:
        return resp.status, await resp.json()


async def _completed(run: Running, n: int) -> dict[str, str]:
    ids = [f"S{uuid.uuid4().hex[:10]}" for _ in range(n)]
    await publish(run, [(i, json.dumps(instruction(i, creditor=ACCOUNT)).encode()) for i in ids])
    statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: set(ids) <= set(finals_by_id(rs)))
    finals = finals_by_id(statuses)
    assert {finals[i][0]["state"] for i in ids} == {"COMPLETED"}
    return {i: finals[i][0]["uetr"] for i in ids}


async def _reconciled_with(run: Running, uetrs: set[str]) -> list[dict[str, Any]]:
    """Wait until the payments are all booked in reconciled cycles; those cycles, as the API shows them."""
    await _wait_for(lambda: _all_booked(run, uetrs))
    async with run.switch.store.reader() as uow:
        ids = sorted({b.cycle_id for b in (await uow.books_find(sorted(uetrs))).values()})
    cycles = []
    for cycle_id in ids:
        status, doc = await _get(run, f"/v1/recon/cycles/{cycle_id}")
        assert status == 200
        cycles.append(doc)
    return cycles


async def _payment_state(run: Running, uetr: str) -> str:
    status, doc = await _get(run, f"/v1/payments/{uetr}")
    assert status == 200
    return str(doc["state"])


async def _all_booked(run: Running, uetrs: set[str]) -> bool:
    async with run.switch.store.reader() as uow:
        books = await uow.books_find(sorted(uetrs))
        cycles = await uow.cycles_get(sorted({b.cycle_id for b in books.values()}))
    return len(books) == len(uetrs) and all(c.state == "reconciled" for c in cycles.values())


async def test_matched_payments_settle_and_statements_reach_the_participants(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store, settlement_every_s=CYCLE_S) as run:
        uetrs = set((await _completed(run, 4)).values())
        mine = await _reconciled_with(run, uetrs)
        assert {await _payment_state(run, u) for u in uetrs} == {"SETTLED"}
        assert all(d["state"] == "reconciled" and d["report_complete"] and d["report_pages_detail"] for d in mine)
        assert sum(d["summary"]["matched"] for d in mine) >= 4
        listed = (await _get(run, "/v1/recon/cycles?partner=promptpay&limit=100"))[1]["cycles"]
        assert {d["id"] for d in mine} <= {c["id"] for c in listed}
        assert all(d["summary"]["breaks"] == {} for d in mine)  # nothing injected: clean
        status, payment = await _get(run, f"/v1/payments/{next(iter(uetrs))}")
        assert [h["to"] for h in payment["history"]][-1] == "SETTLED"
        records = await collect(run, run.config.kafka.statements_topic,
                                until=lambda rs: uetrs <= {e["uetr"] for r in rs for e in json.loads(r.value)["entries"]})
        statement = json.loads(records[0].value)
        assert statement["type"] == "settlement_statement" and statement["cycle_id"].startswith("promptpay-")
        assert run.switch.metrics.last_clean_cycle.labels("promptpay")._value.get() > 0


async def test_injected_breaks_are_found_and_an_operator_resolves_one(broker: TansuBroker, store: Store) -> None:
    behaviour = SimBehaviour(break_rate=1.0, break_kinds=("amount",))
    async with running_switch(broker, store, behaviour, settlement_every_s=CYCLE_S) as run:
        uetrs = set((await _completed(run, 3)).values())
        await _wait_for(lambda: _all_booked(run, uetrs))
        status, listed = await _get(run, "/v1/recon/breaks?partner=promptpay&limit=100")
        assert status == 200
        found = {b["uetr"]: b for b in listed["breaks"] if b["uetr"] in uetrs}
        assert {b["kind"] for b in found.values()} == {"amount_mismatch"} and set(found) == uetrs
        assert all(b["entry_amount_minor"] != b["book_amount_minor"] for b in found.values())
        assert {await _payment_state(run, u) for u in uetrs} == {"COMPLETED"}  # a break settles nothing
        # what the dashboard's "Reconciliation breaks" panel and the MekongReconciliationBreaks alert
        # query (deploy/), read from /metrics as Prometheus scrapes it
        async with run.ops_session() as http, http.get(f"{run.url}/metrics") as resp:
            exported = await resp.text()
        series = re.search(r'^switch_reconciliation_breaks_total\{kind="amount_mismatch",partner="promptpay"\} ([0-9.]+)$', exported, re.M)
        assert series is not None and float(series.group(1)) >= 3
        assert re.search(r'^switch_reconciliation_breaks_open\{kind="amount_mismatch",partner="promptpay"\} ', exported, re.M)
        target = next(iter(found.values()))
        body = {"note": "one satang of rounding at the network, accepted", "write_off": True}
        async with run.ops_session(client=None) as http:
            async with http.post(f"{run.url}/v1/recon/breaks/{target['id']}/resolve", json=body, headers=run.auth_as("auditor")) as resp:
                assert resp.status == 403  # auditors read, operators act
            async with http.post(f"{run.url}/v1/recon/breaks/{target['id']}/resolve", json={"note": ""}, headers=run.auth) as resp:
                assert resp.status == 400  # a note is required
            async with http.post(f"{run.url}/v1/recon/breaks/{target['id']}/resolve", json=body, headers=run.auth) as resp:
                assert resp.status == 200, await resp.text()
                done = await resp.json()
        assert done["state"] == "written_off" and done["note"] == body["note"]
        assert [h["state"] for h in done["history"]] == ["open", "written_off"]
        async with run.switch.store.reader() as uow:
            audit = await uow.audit_entries(limit=20, newest=True)
        assert any(e.action == "recon.resolve" and e.subject == target["id"] for e in audit)


async def test_an_operator_imports_the_report_the_network_did_not_post(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store, settlement_every_s=CYCLE_S, sim_reports=False) as run:
        uetrs = await _completed(run, 2)
        payments = {}
        for u in uetrs.values():
            status, payments[u] = await _get(run, f"/v1/payments/{u}")

        async def closed() -> Any:
            async with run.switch.store.reader() as uow:
                books = await uow.books_find(sorted(payments))
                cycles = await uow.cycles_get(sorted({b.cycle_id for b in books.values()}))
            return list(cycles.values()) if len(books) == len(payments) and all(c.state == "closed" for c in cycles.values()) else None

        cycles = await _wait_for(closed)
        for cycle in cycles:
            mine = [u for u, p in payments.items() if (await _books_cycle(run, u)) == cycle.id]
            header = ReportHeader(
                message_type="camt.053.001.08", message_id=f"IMP{uuid.uuid4().hex[:20]}", created_at=datetime.now(timezone.utc),
                report_id=f"IMP-{cycle.id}"[:35], page_no=1, last_page=True, account_id="MEKONG-HUB-THB-001", currency="THB",
                period_from=cycle.opens_at, period_to=cycle.cut_off,
            )
            entries = [
                ReportEntry(amount=Amount(payments[u]["target_amount"]["value"], "THB"), credit=False, status="BOOK",
                            booking_date=cycle.settlement_date, value_date=cycle.settlement_date, entry_ref=f"N{i}",
                            account_servicer_ref=None, bank_tx_code="PMNT/ICDT/XBCT", uetr=u, end_to_end_id=None, tx_id=None,
                            message_id=None, is_return=False, return_reason=None)
                for i, u in enumerate(mine)
            ]
            async with run.ops_session(client=None) as http:
                async with http.post(f"{run.url}/v1/recon/reports?partner=promptpay", data=build_report(header, entries),
                                     headers={**run.auth, "Content-Type": "application/xml"}) as resp:
                    assert resp.status == 200, await resp.text()
                async with http.post(f"{run.url}/v1/recon/reports?partner=promptpay", data=b"<not-a-report/>",
                                     headers={**run.auth, "Content-Type": "application/xml"}) as resp:
                    assert resp.status == 400 and (await resp.json())["reason_code"] in ("FF01", "FF02")
        await _wait_for(lambda: _all_booked(run, set(payments)))
        assert {await _payment_state(run, u) for u in payments} == {"SETTLED"}
        async with run.switch.store.reader() as uow:
            audit = await uow.audit_entries(limit=50, newest=True)
        assert any(e.action == "recon.import" for e in audit)


async def _books_cycle(run: Running, uetr: str) -> str:
    async with run.switch.store.reader() as uow:
        return (await uow.books_find([uetr]))[uetr].cycle_id
