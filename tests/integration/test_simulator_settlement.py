"""The simulators' settlement (issue 10 item 7), the simulator alone over real HTTP with signed
messages: it keeps a ledger of what the network settled (outbound payments it accepted, inbound
payments the hub accepted, returns both ways) and after each cut-off posts the cycle's report to
the hub's partner endpoint, here a small aiohttp server standing in for the switch that opens
each signed page and reads it with iso20022.reports.read_report. Cycles every 2 s
(MEKONG_PARTNER_SETTLEMENT_EVERY_S_<PARTNER>, as the demo sets it).

Waits are bounded (`settle_s_max`) and only say how long to wait for something to happen; no
assertion is about how long anything took."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner

from adapters.base import PartnerProfile, load_profile
from adapters.registry import profile_path
from adapters.simulator import SIMULATORS, PartnerSimulator, SimBehaviour
from iso20022 import pacs002, pacs004, pacs008
from iso20022.model import Amount
from iso20022.parsing import message_id_of, parse_untrusted
from iso20022.reports import ReportEntry, ReportHeader, read_report
from iso20022.schemas import SchemaSet, default_schema_dir
from switch.config import DEFAULT_CONFIG_DIR
from switch.domain.payment import Party
from switch.domain.settlement import Calendar, cycle_at
from switch.signing import Sealer, load_switch_signing
from switch.tools.cli_dev import dev
from tests.factories import PARTNER_SAMPLES
from tests.integration.harness import HUB_BIC, partner_signing, pki_dir
from tests.unit.partner_kit import mapping_for, payment

every_s = 2
settle_s_max = 30.0
SCHEMAS = SchemaSet(default_schema_dir())


@dataclass
class Page:
    header: ReportHeader
    entries: list[ReportEntry]


@dataclass
class Hub:
    """Stands in for the switch's partner endpoint: opens every signed message from the network,
    reads report pages, answers the network's inbound pacs.008 (ACSC, or RJCT AC01 for creditors
    named in `reject`) with a signed pacs.002 to the network's endpoint, and takes the rest with 200."""

    partner: str
    profile: PartnerProfile
    signing: Sealer
    sim_url: str = ""
    reject: set[str] = field(default_factory=set)
    pages: list[Page] = field(default_factory=list)
    inbound: dict[str, tuple[str, pacs008.CreditTransfer]] = field(default_factory=dict)  # uetr -> (MsgId, tx)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    http: aiohttp.ClientSession | None = None

    async def take(self, request: web.Request) -> web.Response:
        opened = self.signing.open(self.partner, parse_untrusted(await request.read()), schemas=SCHEMAS, now=datetime.now(timezone.utc))
        message_type = message_id_of(opened.document)
        if message_type.startswith(("camt.053", "camt.054")):
            reader = read_report(opened.document_bytes, SCHEMAS)
            try:
                self.pages.append(Page(reader.header, list(reader)))
            finally:
                reader.close()
            return web.json_response({"stored": True})
        if message_type == self.profile.pacs008_version:  # the network pays a Bakong customer
            SCHEMAS.validate(opened.document, message_type)
            message = pacs008.parse(opened.document)
            for tx in message.transactions:
                assert tx.uetr is not None
                self.inbound[tx.uetr] = (message.message_id, tx)
            task = asyncio.create_task(self._answer(message, message_type))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return web.json_response({"message_id": message.message_id}, status=202)
        return web.json_response({"taken": message_type})

    async def _answer(self, message: pacs008.CustomerCreditTransfer, message_type: str) -> None:
        now = datetime.now(timezone.utc)
        refused = {tx.uetr for tx in message.transactions if tx.creditor.name in self.reject}
        report = pacs002.PaymentStatusReport(
            message_id=f"H{uuid.uuid4().hex}"[:35], created_at=now,
            transactions=tuple(
                pacs002.TransactionReport(
                    status=pacs002.TransactionStatus.RJCT if tx.uetr in refused else pacs002.TransactionStatus.ACSC,
                    original_group=pacs002.OriginalGroup(message.message_id, message_type),
                    original_instruction_id=tx.instruction_id, original_end_to_end_id=tx.end_to_end_id, original_tx_id=tx.tx_id,
                    original_uetr=tx.uetr, reasons=(pacs002.StatusReason("AC01", ("no such account",)),) if tx.uetr in refused else (),
                    accepted_at=None if tx.uetr in refused else now,
                )
                for tx in message.transactions
            ),
        )
        await self.send(pacs002.build_validated(report, SCHEMAS), expect=200)

    async def send(self, document: bytes, *, expect: int) -> Any:
        """A Document of the hub's, signed, to the network's endpoint."""
        assert self.http is not None
        sealed = self.signing.seal(self.partner, document, now=datetime.now(timezone.utc))
        async with self.http.post(self.sim_url, data=sealed) as resp:
            assert resp.status == expect, await resp.text()
            return await resp.json()

    def entries(self) -> list[tuple[ReportHeader, ReportEntry]]:
        return [(p.header, e) for p in self.pages for e in p.entries]


@dataclass
class Network:
    sim: PartnerSimulator
    hub: Hub
    control: str
    calendar: Calendar

    async def get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as http, http.get(self.control + path) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def call(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        async with aiohttp.ClientSession() as http, http.request(method, self.control + path, **kwargs) as resp:
            assert resp.status == expect, await resp.text()
            return await resp.json()

    async def pay_out(self, *, bad_account: bool = False) -> tuple[str, str, pacs008.CreditTransfer]:
        """An outbound pacs.008 from the hub (one payment); (uetr, MsgId, its transaction). A bad
        creditor account: the network rejects it (RJCT AC01)."""
        mapping = mapping_for(self.hub.partner)
        uetr = str(uuid.uuid4())
        changes: dict[str, Any] = {}
        if bad_account:
            sample = PARTNER_SAMPLES[self.hub.partner]["creditor"]
            changes["creditor"] = Party(name=sample.name, account="no-such-account", agent=sample.agent)
        message_id = f"M{uuid.uuid4().hex}"[:35]
        message = mapping.to_pacs008([payment(self.hub.partner, uetr=uetr, **changes)], message_id=message_id,
                                     created_at=datetime.now(timezone.utc))
        body = pacs008.build_validated(message, mapping.profile.pacs008_version, SCHEMAS)
        await self.hub.send(body, expect=202)
        return uetr, message_id, message.transactions[0]

    async def statuses(self, uetrs: list[str]) -> dict[str, str]:
        """The network's answers to these outbound payments, once it decided them all."""
        return await until(lambda: _all_decided(self.sim, uetrs))

    async def reported_through(self, since: datetime) -> dict[str, Any]:
        """GET /sim/settlement once a cycle opened at or after `since` is posted: every movement
        recorded before `since` (and every entry moved to a next cycle) has been reported."""
        async def check() -> dict[str, Any] | None:
            summary = await self.get("/sim/settlement")
            done = [c for c in summary["cycles"] if datetime.fromisoformat(c["opens_at"]) >= since
                    and c["posts"] and len(c["posts"][0]["answers"]) == c["pages"]]
            return summary if done else None

        return await until(check)


def _answered(sim: PartnerSimulator, uetrs: list[str]) -> dict[str, Any] | None:
    answers = sim.inbound.summary()["answers"]
    return answers if set(uetrs) <= set(answers) else None


def _all_decided(sim: PartnerSimulator, uetrs: list[str]) -> dict[str, str] | None:
    got = {u: e.status for u in uetrs if (e := sim.received_log.uetrs.get(u)) is not None and e.status}
    return got if len(got) == len(uetrs) else None


async def until(check: Callable[[], Any]) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_s_max
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert loop.time() < deadline, "waited too long"
        await asyncio.sleep(0.1)


@asynccontextmanager
async def network(partner: str, **behaviour: Any) -> AsyncIterator[Network]:
    profile = load_profile(profile_path(DEFAULT_CONFIG_DIR, partner))
    calendar = profile.settlement_calendar(DEFAULT_CONFIG_DIR, env={f"MEKONG_PARTNER_SETTLEMENT_EVERY_S_{partner.upper()}": str(every_s)})
    hub_signing = load_switch_signing(pki_dir(), HUB_BIC, {partner: profile.signing})
    hub = Hub(partner, profile, hub_signing)
    app = web.Application(client_max_size=1_000_000)
    app.router.add_post(f"/iso20022/{partner}", hub.take)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    sim = SIMULATORS[partner](
        profile, SCHEMAS, callback_url=f"http://127.0.0.1:{port}/iso20022/{partner}", behaviour=SimBehaviour(**behaviour),
        signing=partner_signing(partner), calendar=calendar,
    )
    sim_port = await sim.start()
    hub.sim_url = f"http://127.0.0.1:{sim_port}/iso20022"
    hub.http = aiohttp.ClientSession()
    try:
        yield Network(sim, hub, f"http://127.0.0.1:{sim.control_port}", calendar)
    finally:
        await sim.stop()
        for task in list(hub.tasks):
            task.cancel()
        await asyncio.gather(*hub.tasks, return_exceptions=True)
        await hub.http.close()
        await runner.cleanup()


def by_report(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["report_id"]: c for c in summary["cycles"]}


def key(e: ReportEntry) -> tuple[Any, ...]:
    return (e.uetr, e.credit, e.is_return, Decimal(e.amount.value), e.amount.currency, e.message_id, e.end_to_end_id, e.tx_id, e.status)


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("partner", ["lapnet", "unionpay"])  # a camt.053 network and a camt.054 one
async def test_each_movement_the_network_settled_is_one_entry_of_its_cycle_report(partner: str) -> None:
    async with network(partner) as net:
        net.hub.reject.add("Chan Sophea")
        (ok1, msg1, tx1), (ok2, msg2, tx2), (bad, _, _) = [await net.pay_out(), await net.pay_out(), await net.pay_out(bad_account=True)]
        assert await net.statuses([ok1, ok2, bad]) == {ok1: "ACSC", ok2: "ACSC", bad: "RJCT"}

        paid_in, refused_in = (await net.call("POST", "/sim/inbound", json={"payments": [
            {"amount": "40000", "currency": "KHR", "creditor_name": "Sok Dara", "creditor_account": "sok_dara@aclb"},
            {"amount": "12.50", "currency": "USD", "creditor_name": "Chan Sophea", "creditor_account": "chan_sophea@abaa"},
        ]}))["uetrs"]
        answers = await until(lambda: _answered(net.sim, [paid_in, refused_in]))
        assert (answers[paid_in]["status"], answers[refused_in]["status"]) == ("ACSC", "RJCT")

        network_return = await net.call("POST", "/sim/return", json={"uetr": ok1, "reason": "AC04"})
        assert network_return["http_status"] == 200
        in_msg, in_tx = net.hub.inbound[paid_in]
        hub_return_id = f"RH{uuid.uuid4().hex}"[:35]
        now = datetime.now(timezone.utc)
        await net.hub.send(pacs004.build_validated(pacs004.PaymentReturn(
            message_id=hub_return_id, created_at=now,
            transactions=(pacs004.ReturnTx(
                return_id=f"R{uuid.uuid4().hex}"[:35], returned_amount=in_tx.settlement_amount, original_end_to_end_id=in_tx.end_to_end_id,
                original_tx_id=in_tx.tx_id, original_uetr=paid_in, original_settlement_amount=in_tx.settlement_amount,
                settlement_date=now.date(), charge_bearer="SLEV", reason_code="AC04",
            ),),
            clearing_system_code=net.sim.profile.clearing_system_code,
            clearing_system_proprietary=None if net.sim.profile.clearing_system_code else net.sim.profile.clearing_system_proprietary,
        ), SCHEMAS), expect=200)

        summary = await net.reported_through(datetime.now(timezone.utc))

    def expected(uetr: str, credit: bool, is_return: bool, amount: Amount, message_id: str, tx: pacs008.CreditTransfer) -> tuple[Any, ...]:
        return (uetr, credit, is_return, Decimal(amount.value), amount.currency, message_id, tx.end_to_end_id, tx.tx_id, "BOOK")

    assert sorted(key(e) for _, e in net.hub.entries()) == sorted([
        expected(ok1, False, False, tx1.settlement_amount, msg1, tx1),  # outbound, accepted: the hub's account debited
        expected(ok2, False, False, tx2.settlement_amount, msg2, tx2),
        expected(paid_in, True, False, in_tx.settlement_amount, in_msg, in_tx),  # inbound, accepted by the hub: credited
        expected(ok1, True, True, tx1.settlement_amount, network_return["message_id"], tx1),  # the network's return: credited
        expected(paid_in, False, True, in_tx.settlement_amount, hub_return_id, in_tx),  # the hub's return: debited
    ])
    reports = by_report(summary)
    settlement = net.sim.profile.settlement
    assert settlement is not None
    for page in net.hub.pages:
        cycle = reports[page.header.report_id]
        assert (page.header.message_type, page.header.account_id, page.header.currency) == (
            settlement.report, settlement.account_id, settlement.currency)
        assert (page.header.period_from, page.header.period_to) == (
            datetime.fromisoformat(cycle["opens_at"]), datetime.fromisoformat(cycle["cut_off"]))
    assert summary["pending_movements"] == 0 and summary["injected_total"] == {}


async def test_a_cycle_without_movements_still_gets_its_report_after_the_delay() -> None:
    async with network("lapnet", report_delay_ms=300) as net:
        summary = await net.reported_through(datetime.now(timezone.utc) - timedelta(seconds=every_s))
    (cycle, *_) = summary["cycles"]
    (page,) = [p for p in net.hub.pages if p.header.report_id == cycle["report_id"]]
    assert (page.entries, page.header.page_no, page.header.last_page, cycle["entries"], cycle["pages"]) == ([], 1, True, 0, 1)
    assert page.header.period_to == datetime.fromisoformat(cycle["cut_off"])
    posted_at = datetime.fromisoformat(cycle["posts"][0]["at"])
    assert posted_at >= datetime.fromisoformat(cycle["cut_off"]) + timedelta(milliseconds=300)
    assert cycle["posts"][0]["answers"] == [{"page": 1, "http_status": 200, "answer": {"stored": True}}]


async def test_a_report_is_paginated_under_one_report_id() -> None:
    async with network("lapnet", page_entries=2) as net:
        sent = [await net.pay_out() for _ in range(5)]
        await net.statuses([u for u, _, _ in sent])
        summary = await net.reported_through(datetime.now(timezone.utc))
    assert sorted(e.uetr for _, e in net.hub.entries()) == sorted(u for u, _, _ in sent)
    for report_id, cycle in by_report(summary).items():
        pages = sorted((p for p in net.hub.pages if p.header.report_id == report_id), key=lambda p: p.header.page_no)
        assert cycle["pages"] == max(1, math.ceil(cycle["entries"] / 2)) == len(pages), cycle
        assert [p.header.page_no for p in pages] == list(range(1, len(pages) + 1))
        assert [p.header.last_page for p in pages] == [False] * (len(pages) - 1) + [True]
        assert all(len(p.entries) <= 2 for p in pages) and sum(len(p.entries) for p in pages) == cycle["entries"]
        assert len({p.header.message_id for p in pages}) == len(pages)


BREAK_CASES = [("lapnet", kind) for kind in ("missing", "unknown", "amount", "currency", "duplicate", "wrong_cycle", "status")]
BREAK_CASES.append(("promptpay", "amount"))  # THB has two decimals on the wire: one satang more


@pytest.mark.parametrize(("partner", "kind"), BREAK_CASES)
async def test_an_injected_break_shows_in_the_report_and_is_listed(partner: str, kind: str) -> None:
    async with network(partner, break_rate=1.0, break_kinds=(kind,)) as net:
        sent = {u: (m, tx) for u, m, tx in [await net.pay_out() for _ in range(3)]}
        await net.statuses(list(sent))
        summary = await net.reported_through(datetime.now(timezone.utc))
    injected = [i for c in summary["cycles"] for i in c["injected"]]
    assert sorted(i.get("made_from", i["uetr"]) for i in injected) == sorted(sent)
    assert {i["kind"] for i in injected} == {kind} and summary["injected_total"] == {kind: 3}
    entries = net.hub.entries()
    of = {u: [e for _, e in entries if e.uetr == u] for u in sent}
    reports = by_report(summary)
    for uetr, (message_id, tx) in sent.items():
        found = of[uetr]
        wire = tx.settlement_amount
        if kind == "missing":
            assert found == []
        elif kind == "duplicate":
            assert len(found) == 2 and key(found[0]) == key(found[1]) and found[0].entry_ref != found[1].entry_ref
        else:
            (entry,) = found
            assert (entry.message_id, entry.end_to_end_id) == (message_id, tx.end_to_end_id)
            if kind == "amount":
                unit = Decimal("0.01") if wire.currency == "THB" else Decimal(1)  # LAK: 0 decimals on the wire
                assert (Decimal(entry.amount.value) - Decimal(wire.value), entry.amount.currency) == (unit, wire.currency)
            elif kind == "currency":
                assert (entry.amount.value, entry.amount.currency) == (wire.value, "USD")
            elif kind == "status":
                assert entry.status == "PDNG"
            else:
                assert (entry.amount.value, entry.amount.currency, entry.status) == (wire.value, wire.currency, "BOOK")
    if kind == "unknown":
        made_up = {i["uetr"] for i in injected}
        strangers = [e for _, e in entries if e.uetr in made_up]
        assert len(strangers) == 3 and not {e.message_id for e in strangers} & {m for m, _ in sent.values()}
        assert not {e.end_to_end_id for e in strangers} & {tx.end_to_end_id for _, tx in sent.values()}
    if kind == "wrong_cycle":
        for note in injected:
            (header,) = [h for h, e in entries if e.uetr == note["uetr"]]
            reported_in = reports[header.report_id]
            assert reported_in["cycle"] == note["reported_in"] != note["cycle"]
            own = next(c for c in summary["cycles"] if c["cycle"] == note["cycle"])
            assert reported_in["opens_at"] == own["cut_off"]  # the next cycle


async def test_a_report_is_posted_twice_at_the_behaviours_rate() -> None:
    async with network("lapnet", report_twice_rate=1.0) as net:
        async def posted_twice() -> dict[str, Any] | None:
            cycles = (await net.get("/sim/settlement"))["cycles"]
            return next((c for c in cycles if len(c["posts"]) == 2 and len(c["posts"][1]["answers"]) == c["pages"]), None)

        cycle = await until(posted_twice)
    assert [p["trigger"] for p in cycle["posts"]] == ["cut_off", "twice"]
    assert Counter(p.header.message_id for p in net.hub.pages if p.header.report_id == cycle["report_id"]) == {
        m: 2 for m in cycle["page_message_ids"]}


async def test_a_closed_cycle_is_posted_again_on_request_and_an_open_one_is_refused() -> None:
    async with network("lapnet") as net:
        uetr, _, _ = await net.pay_out()
        await net.statuses([uetr])
        summary = await net.reported_through(datetime.now(timezone.utc))
        cycle = next(c for c in summary["cycles"] if c["entries"] == 1)
        first = [(p.header, p.entries) for p in net.hub.pages if p.header.report_id == cycle["report_id"]]
        again = await net.call("POST", f"/sim/settlement/report?cycle={cycle['cycle']}")
        assert [p["trigger"] for p in again["posts"]] == ["cut_off", "request"]
        assert again["posts"][1]["answers"][0]["http_status"] == 200
        repeated = [(p.header, p.entries) for p in net.hub.pages if p.header.report_id == cycle["report_id"]][len(first):]
        assert [(h.message_id, h.page_no, e) for h, e in repeated] == [(h.message_id, h.page_no, e) for h, e in first]
        future = cycle_at(net.calendar, datetime.now(timezone.utc) + timedelta(hours=1))
        refused = await net.call("POST", f"/sim/settlement/report?cycle={future.id}", expect=409)
        assert "still open" in refused["error"]
        await net.call("POST", "/sim/settlement/report?cycle=lapnet-nonsense", expect=400)


async def test_the_break_knobs_change_at_run_time_and_bad_ones_are_refused() -> None:
    async with network("lapnet") as net:
        refused = await net.call("PUT", "/sim/behaviour", json={"break_kinds": ["missing", "bogus"]}, expect=400)
        assert "bogus" in refused["error"]
        await net.call("PUT", "/sim/behaviour", json={"break_rate": 0.25, "break_kinds": ["missing", "status"], "page_entries": 7})
        knobs = (await net.get("/sim/settlement"))["behaviour"]
    assert (knobs["break_rate"], knobs["break_kinds"], knobs["page_entries"]) == (0.25, ["missing", "status"], 7)


def test_the_sim_command_refuses_an_unknown_break_kind() -> None:
    result = CliRunner().invoke(dev, ["sim", "lapnet", "--insecure-dev", "--callback-url", "http://127.0.0.1:9/x",
                                      "--break-kinds", "missing,late"])
    assert result.exit_code == 2 and "late" in result.output
