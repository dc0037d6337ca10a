"""The partner network's settlement, for the simulators (issue 10 item 7): a ledger of what the
network settled, and at each cut-off its settlement report to the switch, with breaks injected on
request.

The ledger (`SettlementLedger`) records each movement at the moment the network decided it, by
its own clock, as seen from the hub's settlement account at the network:

- an outbound pacs.008 it answered ACSC: DBIT, its IntrBkSttlmAmt (recorded when it decides, even
  when the pacs.002 is then lost or late: the network settled it);
- an inbound pacs.008 it sent that the switch answered ACSC: CRDT, its IntrBkSttlmAmt (recorded
  on the switch's first ACSC for that UETR);
- a pacs.004 it sent (returning an outbound payment, on its own or answering a recall): CRDT, the
  returned amount (recorded when the switch took it, HTTP 2xx; a pacs.004 the switch refused
  moved nothing);
- a pacs.004 it received from the switch (returning an inbound payment): DBIT, the returned
  amount (once per pacs.004 message id: a resend of the same return moves nothing again).

Recording a movement is one append (the simulator's hot path); the cycle a movement belongs to is
the one its time falls in (`settlement.cycle_at`: the first cut-off strictly after it), worked out
when the cycle's report is built. The ledger lives in memory only: a restarted simulator starts
empty (it has no record of what an earlier life settled, even with `--state`), so the first
report after a restart lacks what the earlier life settled in that cycle.

After each cut-off plus `report_delay_ms`, the desk (`SettlementDesk`, a background task started
with the simulator) builds the cycle's report in the profile's version (camt.053.001.08 statement
or camt.054.001.08 notification), `page_entries` entries a page (default: the profile's
`page_entries_max`; fewer when a page would not fit the switch's 1 MB partner body limit), every
page with the same report id, FrToDt = (the cycle's opening, its cut-off), the profile's
settlement account, and posts every page, signed like every message the simulator sends, to the
switch's partner endpoint (the pacs.002 callback URL). A cycle without movements still gets a
report (one empty page): the switch needs it to close the cycle clean.

Injected breaks (`break_rate`: the share of a cycle's movements given one, the kind drawn from
`break_kinds`): `missing` (left out), `unknown` (kept, plus an entry with a made-up UETR and ids),
`amount` (one minor unit more, in the decimals the wire uses: 1 for LAK, VND and KHR, 0.01 for
THB), `currency` (another ISO currency), `duplicate` (the entry twice), `wrong_cycle` (moved to
the next cycle's report), `status` (Sts PDNG instead of BOOK). `report_twice_rate`: the share of
reports posted twice (every page again).

  GET  /sim/settlement                  every cycle reported: report id, entries, pages, injected
                                        breaks, when posted and the switch's HTTP answers (JSON)
  POST /sim/settlement/report?cycle=ID  (re)post a closed cycle's report now (built first if its
                                        report was not yet built); no cycle: the last closed one
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp import web

from iso20022.model import Amount
from iso20022.parsing import parse_untrusted
from iso20022.reports import ReportEntry, ReportHeader, build_report
from switch.domain.money import CURRENCIES
from switch.domain.settlement import Calendar, Cycle, cycle_at, cycle_by_id

if TYPE_CHECKING:
    from adapters.simulator import PartnerSimulator

log = logging.getLogger(__name__)

BREAK_KINDS: Final = ("missing", "unknown", "amount", "currency", "duplicate", "wrong_cycle", "status")
# what the switch's matching should call each injected break (switch/domain/recon.py BreakKind);
# a wrong_cycle entry is also missing_at_partner in its own cycle until the next report comes
FINDING_OF: Final = {
    "missing": "missing_at_partner", "unknown": "unknown_to_switch", "amount": "amount_mismatch",
    "currency": "currency_mismatch", "duplicate": "duplicate_entry", "wrong_cycle": "wrong_cycle", "status": "status_mismatch",
}
movements_pending_max: Final = 5_000_000  # recorded, not yet reported (beyond: dropped and counted)
cycles_kept_max: Final = 2_000  # cycles listed on GET /sim/settlement (the oldest are dropped first)
cycles_with_pages_max: Final = 64  # cycles whose built pages are kept for a re-post
injected_listed_max: Final = 10_000  # injected breaks listed per cycle (all are counted)
page_bytes_max: Final = 1_000_000 - 16_000  # the switch's partner body limit, less the signed envelope
post_attempts_max: Final = 6
post_timeout_s: Final = 30.0
answer_chars_max: Final = 500
_MICROSECOND: Final = timedelta(microseconds=1)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


@dataclass(frozen=True, slots=True)
class Movement:
    """One movement on the hub's settlement account at the network, as the network settled it."""

    at: datetime  # when the network decided it (its own clock, UTC)
    credit: bool  # CRDT: the hub's account credited (inbound payment, the network's return)
    is_return: bool
    uetr: str  # a return: the returned payment's
    end_to_end_id: str | None
    tx_id: str | None
    message_id: str  # the pacs.008 / pacs.004 MsgId
    amount: Amount  # IntrBkSttlmAmt / RtrdIntrBkSttlmAmt, as on the wire
    return_reason: str | None = None


class SettlementLedger:
    """What the network settled, in memory (a restarted simulator starts empty)."""

    def __init__(self, *, clock: Callable[[], datetime] = _now) -> None:
        self.clock = clock
        self._pending: list[Movement] = []
        self.dropped = 0

    def record(self, movement: Movement) -> None:
        """One append: this runs on the simulator's hot path."""
        if len(self._pending) >= movements_pending_max:
            self.dropped += 1
            return
        self._pending.append(movement)

    def paid_out(self, message_id: str, uetr: str, end_to_end_id: str | None, tx_id: str | None, amount: Amount) -> None:
        """An outbound pacs.008 the network answered ACSC."""
        self.record(Movement(self.clock(), False, False, uetr, end_to_end_id, tx_id, message_id, amount))

    def paid_in(self, message_id: str, uetr: str, end_to_end_id: str | None, tx_id: str | None, amount: Amount) -> None:
        """An inbound pacs.008 the network sent, answered ACSC by the switch."""
        self.record(Movement(self.clock(), True, False, uetr, end_to_end_id, tx_id, message_id, amount))

    def returned(
        self, message_id: str, uetr: str, end_to_end_id: str | None, tx_id: str | None, amount: Amount, reason: str | None,
        *, by_network: bool,
    ) -> None:
        """A pacs.004: the network's (CRDT, it gives the hub back an outbound payment) or the
        switch's (DBIT, the hub gives back an inbound payment)."""
        self.record(Movement(self.clock(), by_network, True, uetr, end_to_end_id, tx_id, message_id, amount, reason))

    def take(self, cycle: Cycle) -> list[Movement]:
        """The movements of `cycle` (opens_at <= at < cut_off, which is cycle_at's rule), removed."""
        mine: list[Movement] = []
        rest: list[Movement] = []
        for m in self._pending:
            (mine if cycle.opens_at <= m.at < cycle.cut_off else rest).append(m)
        self._pending = rest
        return mine

    @property
    def pending(self) -> int:
        return len(self._pending)


@dataclass
class CycleReport:
    """A cycle's report as the network built and posted it."""

    cycle: Cycle
    report_id: str
    message_type: str
    built_at: datetime
    movements: int = 0  # the ledger's movements in this cycle
    carried_in: int = 0  # wrong_cycle entries of the previous cycle reported here
    entries: int = 0  # entries in the report (after breaks)
    page_entries: int = 0  # entries a page
    pages: list[bytes] = field(default_factory=list)  # the Documents (unsigned); emptied for old cycles
    page_count: int = 0
    page_message_ids: list[str] = field(default_factory=list)
    injected: list[dict[str, Any]] = field(default_factory=list)
    injected_counts: Counter[str] = field(default_factory=Counter)
    posts: list[dict[str, Any]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # pages built

    def as_json(self) -> dict[str, Any]:
        c = self.cycle
        return {
            "cycle": c.id, "opens_at": _iso(c.opens_at), "cut_off": _iso(c.cut_off), "settlement_date": c.settlement_date.isoformat(),
            "report_id": self.report_id, "message_type": self.message_type, "built_at": _iso(self.built_at),
            "movements": self.movements, "carried_in": self.carried_in, "entries": self.entries, "pages": self.page_count,
            "page_entries": self.page_entries, "page_message_ids": self.page_message_ids,
            "injected_counts": dict(self.injected_counts), "injected": self.injected, "posts": self.posts,
        }


def wire_decimals(currency: str, amount: Amount, profile_currency: str, profile_decimals: int) -> int:
    """The decimals an amount in `currency` uses on the wire: the profile's for its own currency,
    the corridors' practice for the others (KHR, LAK and VND none), the amount's own otherwise."""
    if currency == profile_currency:
        return profile_decimals
    known = CURRENCIES.get(currency)
    if known is not None:
        return known.decimals_accepted_max
    exponent = Decimal(amount.value).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


class SettlementDesk:
    """The ledger, the cycle reports, the background task and the control routes of one simulator."""

    def __init__(
        self, sim: PartnerSimulator, calendar: Calendar, *, report_version: str, account_id: str, currency: str,
        page_entries_max: int, clock: Callable[[], datetime] = _now,
    ) -> None:
        self.sim = sim
        self.calendar = calendar
        self.report_version = report_version
        self.account_id = account_id
        self.currency = currency
        self.page_entries_max = page_entries_max
        self.clock = clock
        self.ledger = SettlementLedger(clock=clock)
        self.cycles: OrderedDict[str, CycleReport] = OrderedDict()
        self._carried: dict[str, list[ReportEntry]] = {}  # next cycle id -> wrong_cycle entries moved there
        self._random = random.Random(sim.behaviour.seed + 2)
        self.stats: Counter[str] = Counter()
        self.injected_total: Counter[str] = Counter()
        self.next_cycle: Cycle | None = None  # the next cycle the background task reports
        self._building = asyncio.Lock()

    # ------------------------------------------------------------------ background task
    async def run(self) -> None:
        """Report each cycle after its cut-off plus the report delay; runs for the simulator's life
        (cancelled by its stop)."""
        self.sim.schemas.xml_schema(self.report_version)  # compiled here, once, not in the builder's thread
        cycle = cycle_at(self.calendar, self.clock())
        while True:
            self.next_cycle = cycle
            wait_s = (cycle.cut_off - self.clock()).total_seconds() + self.sim.behaviour.report_delay_ms / 1000
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            try:
                await self.report(cycle, trigger="cut_off")
            except asyncio.CancelledError:
                raise
            except Exception:  # a report that failed to build or post must not stop the next ones
                log.exception("%s settlement report of cycle %s failed", self.sim.profile.partner, cycle.id)
                self.stats["reports_failed"] += 1
            cycle = cycle_at(self.calendar, cycle.cut_off)

    async def report(self, cycle: Cycle, *, trigger: str) -> CycleReport:
        """Build the cycle's report unless it was built already, and post it (twice, for the
        behaviour's share)."""
        built = self.cycles.get(cycle.id)
        if built is None:
            built, entries = self._start(cycle)
            async with self._building:  # one build at a time: the compiled XSD is not shared between threads
                await self._build(built, entries)
        else:
            await built.ready.wait()
            if self.cycles.get(cycle.id) is not built:
                raise RuntimeError(f"the report of cycle {cycle.id} could not be built")
            if trigger == "cut_off":  # posted on request before the task came to it
                return built
        await self._post_report(built, trigger)
        if trigger == "cut_off" and self._random.random() < self.sim.behaviour.report_twice_rate:
            self.stats["reports_twice"] += 1
            await self._post_report(built, "twice")
        return built

    # ------------------------------------------------------------------ building
    def _start(self, cycle: Cycle) -> tuple[CycleReport, list[ReportEntry]]:
        """Take the cycle's movements and inject its breaks (synchronous: no other task sees the
        ledger half taken); the pages are built next, off the event loop."""
        b = self.sim.behaviour
        # the report id names the cycle: the same on every page and on a re-post (the switch keeps a page once)
        built = CycleReport(cycle, f"R-{cycle.id}"[:35], self.report_version, self.clock())
        self.cycles[cycle.id] = built
        while len(self.cycles) > cycles_kept_max:
            self.cycles.popitem(last=False)
        for old in list(self.cycles.values())[:-cycles_with_pages_max]:
            old.pages.clear()
        movements = self.ledger.take(cycle)
        built.movements = len(movements)
        entries: list[ReportEntry] = []
        kinds = tuple(k for k in b.break_kinds if k in BREAK_KINDS)
        for m in movements:
            entry = self._entry(m, cycle.settlement_date)
            if b.break_rate > 0 and kinds and self._random.random() < b.break_rate:
                entries.extend(self._inject(built, m, entry, self._random.choice(kinds)))
            else:
                entries.append(entry)
        carried = self._carried.pop(cycle.id, [])
        built.carried_in = len(carried)
        entries.extend(replace(e, booking_date=cycle.settlement_date, value_date=cycle.settlement_date) for e in carried)
        built.entries = len(entries)
        built.page_entries = max(1, b.page_entries or self.page_entries_max)
        return built, entries

    async def _build(self, built: CycleReport, entries: list[ReportEntry]) -> None:
        try:
            pages, page_entries = await asyncio.to_thread(self._pages, built.cycle, built.report_id, entries, built.page_entries)
        except BaseException:
            self.cycles.pop(built.cycle.id, None)
            built.ready.set()  # whoever waits for it learns it failed
            raise
        if page_entries != built.page_entries:
            self.stats["pages_shrunk"] += 1
            log.warning("%s cycle %s: %d entries a page would pass the switch's body limit; %d a page",
                        self.sim.profile.partner, built.cycle.id, built.page_entries, page_entries)
        built.pages, built.page_count, built.page_entries = pages, len(pages), page_entries
        built.page_message_ids = [self._page_message_id(built.report_id, n + 1) for n in range(len(pages))]
        built.ready.set()
        self.stats["reports_built"] += 1

    def _entry(self, m: Movement, booked_on: date) -> ReportEntry:
        family = ("RCDT" if m.credit else "ICDT") if not m.is_return else ("ICDT" if m.credit else "RCDT")
        return ReportEntry(
            amount=m.amount, credit=m.credit, status="BOOK", booking_date=booked_on, value_date=booked_on, entry_ref=None,
            account_servicer_ref=None, bank_tx_code=f"PMNT/{family}/{'RRTN' if m.is_return else 'XBCT'}",
            uetr=m.uetr, end_to_end_id=m.end_to_end_id, tx_id=m.tx_id, message_id=m.message_id,
            is_return=m.is_return, return_reason=m.return_reason,
        )

    def _inject(self, built: CycleReport, m: Movement, entry: ReportEntry, kind: str) -> list[ReportEntry]:
        """The entries a movement becomes under the break `kind`; the break recorded."""
        cycle = built.cycle
        note: dict[str, Any] = {"uetr": m.uetr, "kind": kind, "finding": FINDING_OF[kind], "cycle": cycle.id,
                                "is_return": m.is_return, "message_id": m.message_id, "reported_in": cycle.id}
        out: list[ReportEntry]
        if kind == "missing":
            out, note["reported_in"] = [], None
        elif kind == "unknown":
            made_up = str(uuid.uuid4())
            hex_ = made_up.replace("-", "")
            note.update(uetr=made_up, made_from=m.uetr)
            out = [entry, replace(entry, uetr=made_up, end_to_end_id=f"E{hex_}"[:35], tx_id=f"T{hex_}"[:35],
                                  message_id=f"{'RT' if m.is_return else 'M'}{hex_}"[:35])]
        elif kind == "amount":
            decimals = wire_decimals(m.amount.currency, m.amount, self.sim.profile.currency, self.sim.profile.amount_decimals)
            changed = Decimal(m.amount.value) + Decimal(1).scaleb(-decimals)
            note.update(amount=m.amount.value, reported_amount=f"{changed:f}")
            out = [replace(entry, amount=Amount(f"{changed:f}", m.amount.currency))]
        elif kind == "currency":
            other = "USD" if m.amount.currency != "USD" else "THB"
            note.update(currency=m.amount.currency, reported_currency=other)
            out = [replace(entry, amount=Amount(m.amount.value, other))]
        elif kind == "duplicate":
            out = [entry, entry]
        elif kind == "wrong_cycle":
            following = cycle_at(self.calendar, cycle.cut_off)
            if following.id in self.cycles:  # its report is out already (posted on request): the entry is lost
                note["reported_in"] = None
            else:
                self._carried.setdefault(following.id, []).append(entry)
                note["reported_in"] = following.id
            out = []
        else:  # status
            out = [replace(entry, status="PDNG")]
        built.injected_counts[kind] += 1
        self.injected_total[kind] += 1
        if len(built.injected) < injected_listed_max:
            built.injected.append(note)
        return out

    def _page_message_id(self, report_id: str, page_no: int) -> str:
        return f"{report_id[:29]}P{page_no:05d}"

    def _pages(self, cycle: Cycle, report_id: str, entries: list[ReportEntry], page_entries: int) -> tuple[list[bytes], int]:
        """The report's pages (validated Documents), `page_entries` entries each, fewer when a page
        would not fit the switch's body limit. Runs in a worker thread."""
        numbered = [replace(e, entry_ref=f"N{cycle.cut_off:%Y%m%d%H%M%S}{n:07d}") for n, e in enumerate(entries, 1)]
        while True:
            chunks = [numbered[i:i + page_entries] for i in range(0, len(numbered), page_entries)] or [[]]
            pages = []
            for n, chunk in enumerate(chunks, 1):
                header = ReportHeader(
                    message_type=self.report_version, message_id=self._page_message_id(report_id, n), created_at=self.clock(),
                    report_id=report_id, page_no=n, last_page=n == len(chunks), account_id=self.account_id, currency=self.currency,
                    period_from=cycle.opens_at, period_to=cycle.cut_off, sequence_no=int(cycle.cut_off.timestamp()),
                    entries_total=len(chunk),
                )
                body = build_report(header, chunk)
                if len(body) > page_bytes_max and page_entries > 1:
                    break
                self.sim.schemas.validate(parse_untrusted(body, size_bytes_max=page_bytes_max), self.report_version)
                pages.append(body)
            else:
                return pages, page_entries
            page_entries = max(1, page_entries // 2)

    # ------------------------------------------------------------------ posting
    async def _post_report(self, built: CycleReport, trigger: str) -> None:
        if not built.pages and built.page_count:
            raise RuntimeError(f"the pages of cycle {built.cycle.id} are no longer kept")
        post: dict[str, Any] = {"at": _iso(self.clock()), "trigger": trigger, "answers": []}
        built.posts.append(post)
        for n, body in enumerate(built.pages, 1):
            status, answer = await self._post(body)
            post["answers"].append({"page": n, "http_status": status, "answer": answer})
            self.stats["pages_posted"] += 1
            self.stats[f"pages_http_{status}"] += 1
        self.stats["reports_posted"] += 1

    async def _post(self, body: bytes) -> tuple[int | None, Any]:
        """POST one page, signed per attempt, until the switch answers below 500 (429: after its
        Retry-After)."""
        from adapters.simulator_inbound import retry_after_s

        session = self.sim._session
        assert session is not None
        status: int | None = None
        answer: Any = None
        for attempt in range(post_attempts_max):
            wait_s: float | None = None
            try:
                async with session.post(
                    self.sim.callback_url, data=self.sim.sealed(body), headers={"Content-Type": "application/xml; charset=utf-8"},
                    timeout=aiohttp.ClientTimeout(total=post_timeout_s),
                ) as resp:
                    status = resp.status
                    text = await resp.text()
                    wait_s = retry_after_s(resp.headers) if status == 429 else None
                try:
                    answer = json.loads(text)
                except ValueError:
                    answer = text[:answer_chars_max]
                if status < 500 and wait_s is None:
                    return status, answer
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, answer = None, f"{type(exc).__name__}: {exc}"[:answer_chars_max]
            self.stats["page_retries"] += 1
            await asyncio.sleep(wait_s if wait_s is not None else min(2.0, 0.1 * 2**attempt))
        return status, answer

    # ------------------------------------------------------------------ control routes
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/sim/settlement", self._summary)
        app.router.add_post("/sim/settlement/report", self._report_now)

    def as_json(self) -> dict[str, Any]:
        b = self.sim.behaviour
        cal = self.calendar
        return {
            "partner": self.sim.profile.partner,
            "report": self.report_version, "account_id": self.account_id, "currency": self.currency,
            "calendar": {"timezone": cal.timezone, "every_s": cal.every_s, "cut_offs": [t.isoformat("minutes") for t in cal.cut_offs]},
            "behaviour": {"break_rate": b.break_rate, "break_kinds": list(b.break_kinds), "report_delay_ms": b.report_delay_ms,
                          "report_twice_rate": b.report_twice_rate, "page_entries": b.page_entries or self.page_entries_max},
            "next_cycle": None if self.next_cycle is None else self.next_cycle.id,
            "pending_movements": self.ledger.pending, "dropped_movements": self.ledger.dropped,
            "injected_total": dict(self.injected_total), "stats": dict(self.stats),
            "cycles": [c.as_json() for c in self.cycles.values()],
        }

    async def _summary(self, _request: web.Request) -> web.Response:
        return web.json_response(self.as_json())

    async def _report_now(self, request: web.Request) -> web.Response:
        wanted = request.query.get("cycle")
        now = self.clock()
        if wanted is None:
            open_now = cycle_at(self.calendar, now)
            cycle = cycle_at(self.calendar, open_now.opens_at - _MICROSECOND)  # the last closed one
        else:
            try:
                cycle = cycle_by_id(self.calendar, wanted)
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
        if cycle.cut_off > now:
            return web.json_response({"error": f"cycle {cycle.id} is still open (cut-off {_iso(cycle.cut_off)})"}, status=409)
        built = self.cycles.get(cycle.id)
        if built is not None and not built.pages and built.page_count:
            return web.json_response({"error": f"the pages of cycle {cycle.id} are no longer kept"}, status=410)
        built = await self.report(cycle, trigger="request")
        return web.json_response(built.as_json())


