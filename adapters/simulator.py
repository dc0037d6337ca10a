"""A partner network simulator: an aiohttp server that plays the network over real HTTP.

It checks every pacs.008 it receives against the official XSD and the partner's profile, answers
202 at once, and after a configurable delay calls the switch back with a pacs.002 (accepted, or
rejected with a reason: the network's own code in Rsn/Prtry where its profile's `reason_codes`
table has one, as NAPAS answers `51` for AM04, the ISO code in Rsn/Cd otherwise). It can be told
to reject a share of payments, to treat some proxies as unknown, to stay silent (timeout) or to
answer twice. A resend of a message id it has seen gets the same answer again, never a second
decision.

With a state file (`--state FILE`) the simulator survives its own crash the way a real network
does: every distinct pacs.008 it receives and every answer it decides are appended to the file
(one JSON object a line) before the 202 goes back, and reloaded at start, so a resend after a
restart still gets the stored pacs.002, byte for byte, and the received log below still holds what
the earlier life saw. Without it, nothing is written and a restart forgets (the default).

One class plays every network: what differs (message version, clearing codes, identifier and
card patterns, amount decimals, text rule, reason codes) is profile data. A network that needs
more gets a subclass registered in SIMULATORS below.

The network's endpoint serves mutual TLS when given the network's certificates (switch/tls.py
SimulatorTls: it requires the hub's client certificate and calls the switch back with its own);
the control routes (/sim/*) are for the tools driving the simulation and listen on a separate
plain-HTTP control port on loopback.

With the network's signing key (switch/signing.py load_simulator_signing) it speaks signed
business messages (iso20022/apphdr.py) as the profile's [signing] says: every message it takes
must be a BizMsg signed by the hub's key, addressed to the network, fresh (else 4xx with the
reason code, nothing decided), and everything it sends (pacs.002 callbacks, acmt.024 answers,
inbound pacs.008) it signs at the moment it sends, the stored Document unchanged. Without one
(--insecure-dev) it sends and takes bare Documents.

  POST /iso20022          from the switch: a pacs.008 (answered later by a pacs.002 callback), an
                          acmt.023 proxy look-up (answered at once with an acmt.024), or a
                          pacs.002 answering one of the network's inbound payments
  GET  /sim/stats         counters as JSON
  GET  /sim/received      per UETR: the distinct pacs.008 message ids and body sha256 received
                          (resends of the same bytes add nothing), and the status answered
  PUT  /sim/behaviour     change the behaviour at run time (JSON, same fields as SimBehaviour)
  POST /sim/inbound       make the network pay Bakong customers (adapters/simulator_inbound.py)
  GET  /sim/inbound       the answers the network got for them
  POST /sim/recall        make the network recall inbound payments it sent (camt.056; adapters/simulator_recalls.py)
  GET  /sim/recalls       recalls both ways: camt.056 received and answered, sent, and the switch's answers
  POST /sim/return        return a payment the network completed (adapters/simulator_returns.py)
  GET  /sim/returns       the returns it sent (and the switch's answers), received, and admi.002 rejects
  POST /sim/enquire       make the network ask the switch about inbound payments it sent
                          (a pacs.028, JSON {"uetrs": [...]}); GET /sim/enquiries: the answers
  GET  /sim/settlement    the network's settlement reports per cycle (adapters/simulator_settlement.py)
  POST /sim/settlement/report?cycle=ID   (re)post a closed cycle's report now

Settlement (issue 10): given the network's settlement calendar (`calendar`), the simulator keeps a
ledger of what it settled and, after each cut-off, posts the cycle's camt.053 / camt.054 report to
the switch, with breaks injected on request (`break_rate`, `break_kinds`), late
(`report_delay_ms`), paginated (`page_entries`) or twice (`report_twice_rate`). Without a
calendar it keeps no ledger and posts no report.

Status enquiries (issue 9): a pacs.028 from the switch is answered, per transaction, with the
network's stored decision (its pacs.002 sent again as a callback), or with a pacs.002 RJCT AG09
("not received") for a payment it never received. Behaviours for the switch to cope with:
`lose_rate` (decided, but the callback is never sent, not even for a resend: only an enquiry
recovers the payment), `late_rate` / `late_delay_ms` (callbacks sent late, e.g. after the SLA),
`out_of_order_rate` (an ACSP sent after the ACSC of the same payment).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import random
import re
import uuid
from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiohttp import web
from lxml import etree

from adapters import proxy_resolution, text
from adapters.base import PartnerProfile, luhn_ok
from adapters.iso_mapping import ISO_REASON_SHAPE
from adapters.simulator_inbound import InboundOriginator, InboundSpec, retry_after_s
from adapters.simulator_recalls import RECALL_MESSAGES, RecallDesk
from adapters.simulator_returns import Completed, ReturnDesk
from adapters.simulator_settlement import BREAK_KINDS, SettlementDesk
from iso20022 import acmt023, acmt024, apphdr, pacs002, pacs008, pacs028
from iso20022.errors import SchemaViolation, XmlRejected
from iso20022.model import Amount
from iso20022.parsing import message_id_of, parse_untrusted
from iso20022.schemas import SchemaSet
from switch.domain.settlement import Calendar
from switch.signing import HUB, Sealer
from switch.tls import SimulatorTls

log = logging.getLogger(__name__)
body_bytes_max = 1_000_000
seen_messages_max = 200_000  # message ids remembered for idempotent resends
callbacks_inflight_max = 128
callback_attempts_max = 5
callback_timeout_s = 5.0
received_uetrs_max = 200_000  # UETRs kept in the received log (the oldest are dropped first)
received_variants_max = 8  # distinct message ids, and distinct bodies, kept per UETR


@dataclass(frozen=True)
class SimBehaviour:
    delay_ms: float = 0.0  # before the pacs.002 callback
    reject_rate: float = 0.0  # share of valid payments the network rejects anyway
    reject_codes: tuple[str, ...] = ("AC01", "AC04", "AM04")
    unknown_proxies: frozenset[str] = frozenset()  # proxies the network's registry lacks: BE23
    timeout_rate: float = 0.0  # share of payments never answered
    duplicate_rate: float = 0.0  # share of payments answered twice (same pacs.002 resent)
    seed: int = 7
    # recalls (issue 9): how the network answers a camt.056 about a payment it received
    recall_accept_rate: float = 1.0  # accepted: camt.029 CNCL, then a pacs.004 of the whole amount
    recall_silent_rate: float = 0.0  # never answered
    recall_delay_ms: float = 0.0  # before the answer
    recall_refuse_reason: str = "CUST"  # camt.029 RJCR reason of a refusal
    # returns (issue 9): a share of the payments it completed is returned (pacs.004) after a
    # delay, half of it for a share of those, with a reason drawn from return_reasons
    return_rate: float = 0.0
    return_delay_ms: float = 0.0
    return_reasons: tuple[str, ...] = ("AC04", "CUST", "FRAD")
    partial_return_rate: float = 0.0
    # issue 9: answers that go wrong (status enquiries recover them)
    lose_rate: float = 0.0  # share of decided payments whose pacs.002 callback is never sent (resends included)
    late_rate: float = 0.0  # share of callbacks sent after late_delay_ms instead of delay_ms
    late_delay_ms: float = 0.0
    out_of_order_rate: float = 0.0  # share of accepted payments that also get an ACSP after their ACSC
    # settlement reports (issue 10; adapters/simulator_settlement.py)
    break_rate: float = 0.0  # share of a cycle's movements given a break in the report
    break_kinds: tuple[str, ...] = BREAK_KINDS  # drawn from for each break
    report_delay_ms: float = 0.0  # after the cut-off, before the report is built and posted
    report_twice_rate: float = 0.0  # share of reports posted twice
    page_entries: int = 0  # entries a report page (0: the profile's page_entries_max)

    def __post_init__(self) -> None:
        unknown = set(self.break_kinds) - set(BREAK_KINDS)
        if unknown:
            raise ValueError(f"break kinds {sorted(unknown)} unknown; known: {', '.join(BREAK_KINDS)}")
        if not 0 <= self.break_rate <= 1 or not 0 <= self.report_twice_rate <= 1:
            raise ValueError("break_rate and report_twice_rate are shares between 0 and 1")
        if self.page_entries < 0 or self.report_delay_ms < 0:
            raise ValueError("page_entries and report_delay_ms cannot be negative")

    @classmethod
    def from_json(cls, data: dict[str, Any], base: SimBehaviour | None = None) -> SimBehaviour:
        current = asdict(base or cls())
        current.update(data)
        current["reject_codes"] = tuple(current["reject_codes"])
        current["unknown_proxies"] = frozenset(current["unknown_proxies"])
        current["return_reasons"] = tuple(current["return_reasons"])
        current["break_kinds"] = tuple(current["break_kinds"])
        return cls(**current)


@dataclass
class _Decision:
    report: bytes


@dataclass
class _Received:
    """What the network received for one UETR: one message id and one body unless the switch sent
    two different messages for the same payment."""

    message_ids: list[str]
    body_sha256: list[str]
    status: str | None = None  # the transaction status the network answered (ACSC, RJCT), if any


class ReceivedLog:
    """Per UETR, the distinct pacs.008 message ids and bodies the network received, and its
    answer; bounded (`received_uetrs_max`, `received_variants_max`). With a state file every new
    fact is appended to it as one JSON line before the sender hears back, and reloaded at start
    together with the stored answers (`answers`)."""

    def __init__(self, state_path: Path | None = None) -> None:
        self.state_path = state_path
        self.uetrs: OrderedDict[str, _Received] = OrderedDict()
        self.answers: dict[str, bytes | None] = {}  # reloaded: message id -> pacs.002 (None: silenced)
        self.return_facts: list[dict[str, Any]] = []  # reloaded: the returns it sent (ReturnDesk.restore)
        self.dropped: Counter[str] = Counter()
        self._file: IO[str] | None = None

    def open(self) -> None:
        if self.state_path is None:
            return
        if self.state_path.exists():
            self._reload(self.state_path)
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.state_path.open("a", encoding="utf-8")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _reload(self, path: Path) -> None:
        lines = path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            try:
                fact = json.loads(line)
            except ValueError:
                # a process killed in the middle of a write leaves a torn last line: that fact never
                # reached the sender either (the 202 follows the write), so it is dropped
                log.warning("state file %s: line %d unreadable, skipped%s", path, n + 1, "" if n == len(lines) - 1 else " (not the last)")
                continue
            if fact["kind"] == "received":
                self._note_received(fact["uetrs"], fact["message_id"], fact["sha256"])
            elif fact["kind"] == "answered":
                report = fact["pacs002"]
                self.answers[fact["message_id"]] = None if report is None else base64.b64decode(report)
                for uetr, status in fact["statuses"].items():
                    self._note_status(uetr, status)
            elif fact["kind"].startswith("return_"):
                self.return_facts.append(fact)
        log.info("state file %s: %d UETRs received, %d answers reloaded", path, len(self.uetrs), len(self.answers))

    def append(self, fact: dict[str, Any]) -> None:
        """Another fact worth surviving a crash (the returns the network sent)."""
        self._append(fact)

    def _append(self, fact: dict[str, Any]) -> None:
        if self._file is not None:
            # written through to the kernel: survives the process being killed (not a power cut)
            self._file.write(json.dumps(fact, separators=(",", ":")) + "\n")
            self._file.flush()

    def _note_received(self, uetrs: list[str], message_id: str, sha256: str) -> bool:
        new = False
        for uetr in uetrs:
            entry = self.uetrs.get(uetr)
            if entry is None:
                entry = self.uetrs[uetr] = _Received([], [])
                while len(self.uetrs) > received_uetrs_max:
                    self.uetrs.popitem(last=False)
                    self.dropped["uetrs"] += 1
            for values, value in ((entry.message_ids, message_id), (entry.body_sha256, sha256)):
                if value in values:
                    continue
                new = True
                if len(values) < received_variants_max:
                    values.append(value)
                else:
                    self.dropped["variants"] += 1
        return new

    def _note_status(self, uetr: str, status: str) -> None:
        entry = self.uetrs.get(uetr)
        if entry is not None:
            entry.status = status

    def received(self, uetrs: list[str], message_id: str, body: bytes) -> None:
        sha256 = hashlib.sha256(body).hexdigest()
        if self._note_received(uetrs, message_id, sha256):
            self._append({"kind": "received", "message_id": message_id, "sha256": sha256, "uetrs": uetrs})

    def answered(self, message_id: str, report: bytes | None, statuses: dict[str, str]) -> None:
        for uetr, status in statuses.items():
            self._note_status(uetr, status)
        if self._file is not None:  # only a state file needs the answer itself
            pacs002_text = None if report is None else base64.b64encode(report).decode()
            self._append({"kind": "answered", "message_id": message_id, "pacs002": pacs002_text, "statuses": statuses})

    def as_json(self) -> dict[str, Any]:
        return {
            "uetrs": {u: {"message_ids": e.message_ids, "body_sha256": e.body_sha256, "status": e.status} for u, e in self.uetrs.items()},
            "dropped": dict(self.dropped),
        }


class PartnerSimulator:
    def __init__(
        self,
        profile: PartnerProfile,
        schemas: SchemaSet,
        *,
        callback_url: str,
        behaviour: SimBehaviour | None = None,
        state_path: Path | None = None,
        tls: SimulatorTls | None = None,
        signing: Sealer | None = None,
        calendar: Calendar | None = None,
    ) -> None:
        self.profile = profile
        self.tls = tls  # None: plain HTTP both ways (--insecure-dev)
        self.signing = signing  # None: bare Documents both ways (--insecure-dev, or a profile without [signing])
        self.schemas = schemas
        self.callback_url = callback_url
        self.behaviour = behaviour or SimBehaviour()
        self._random = random.Random(self.behaviour.seed)
        self._seen: OrderedDict[str, _Decision | None] = OrderedDict()
        self.stats: Counter[str] = Counter()
        self.received_log = ReceivedLog(state_path)
        self._session: aiohttp.ClientSession | None = None
        self._callback_slots = asyncio.Semaphore(callbacks_inflight_max)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._control_runner: web.AppRunner | None = None
        self.port: int | None = None
        self.control_port: int | None = None
        self.samples: dict[str, bytes] = {}  # one received pacs.008 and one sent pacs.002, for the demo
        # the network's side of inbound payments (it pays Bakong customers through the switch)
        self.inbound = InboundOriginator(profile, schemas, switch_url=callback_url, signing=signing)
        self.recalls = RecallDesk(self)  # recalls both ways (issue 9)
        # the network's side of returns (pacs.004 both ways)
        self.returns = ReturnDesk(profile, schemas, switch_url=callback_url, sealed=self.sealed, record=self.received_log.append)
        self._lost: set[str] = set()  # pacs.008 message ids whose decision is never called back (lose_rate)
        # uetr -> the switch's answers to the network's pacs.028 about it (POST /sim/enquire)
        self.enquiries: dict[str, dict[str, Any]] = {}
        # settlement (issue 10): the ledger and the cycle reports; None without a calendar
        self.settlement: SettlementDesk | None = None
        if calendar is not None:
            settings = profile.settlement
            if settings is None:
                raise ValueError(f"the {profile.partner} profile has no [settlement] section for the calendar to go with")
            self.settlement = SettlementDesk(
                self, calendar, report_version=settings.report, account_id=settings.account_id, currency=settings.currency,
                page_entries_max=settings.page_entries_max,
            )
            self.inbound.ledger = self.returns.ledger = self.settlement.ledger

    # ------------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        """The network's endpoint (the switch calls it)."""
        app = web.Application(client_max_size=body_bytes_max)
        app.router.add_post("/iso20022", self._receive)
        return app

    def control_app(self) -> web.Application:
        """The control routes, for the tools that drive the simulation."""
        app = web.Application(client_max_size=body_bytes_max)
        app.router.add_get("/sim/stats", self._stats)
        app.router.add_get("/sim/received", self._received)
        app.router.add_put("/sim/behaviour", self._set_behaviour)
        app.router.add_post("/sim/inbound", self._send_inbound)
        app.router.add_get("/sim/inbound", self._inbound_summary)
        app.router.add_post("/sim/recall", self.recalls.send_recalls)
        app.router.add_get("/sim/recalls", self.recalls.summary)
        app.router.add_post("/sim/return", self._return_now)
        app.router.add_get("/sim/returns", self._returns_summary)
        app.router.add_post("/sim/enquire", self._send_enquiry)  # issue 9
        app.router.add_get("/sim/enquiries", self._enquiries_summary)
        if self.settlement is not None:
            self.settlement.routes(app)  # issue 10
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, control_port: int = 0) -> int:
        """Serve the network's endpoint on `port` and the control routes on loopback
        `control_port` (0: free ones); the endpoint's port."""
        self.received_log.open()
        for message_id, report in self.received_log.answers.items():
            self._remember(message_id, None if report is None else _Decision(report))
        self.received_log.answers.clear()  # kept from here on by _seen, bounded
        self.returns.restore(self.received_log.return_facts)
        self.received_log.return_facts.clear()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=callbacks_inflight_max, ssl=self.tls.client if self.tls else True)
        )
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self.tls.server if self.tls else None)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._control_runner = web.AppRunner(self.control_app(), access_log=None)
        await self._control_runner.setup()
        control = web.TCPSite(self._control_runner, "127.0.0.1", control_port)
        await control.start()
        self.control_port = control._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.settlement is not None:
            task = asyncio.create_task(self.settlement.run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self.port

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._control_runner is not None:
            await self._control_runner.cleanup()
        if self._session is not None:
            await self._session.close()
        self.received_log.close()

    async def _received(self, _request: web.Request) -> web.Response:
        return web.json_response(self.received_log.as_json())

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response({**self.stats, "behaviour": {**asdict(self.behaviour), "unknown_proxies": sorted(self.behaviour.unknown_proxies)}})

    def _resolve_proxies(self, root: Any) -> web.Response:
        """acmt.023 -> acmt.024: every well-formed proxy resolves to a simulated account, except
        those in `behaviour.unknown_proxies` (BE23)."""
        self.schemas.validate(root, "acmt.023.001.04")
        request = acmt023.parse(root)
        report = proxy_resolution.answer(
            self.profile, request, None, unknown=self.behaviour.unknown_proxies,
            message_id=f"A{uuid.uuid4().hex}", created_at=datetime.now(timezone.utc),
        )
        body = acmt024.build_validated(report, self.schemas)
        self.stats["proxy_lookups"] += len(request.verifications)
        self.samples.setdefault("acmt023", etree.tostring(root))
        self.samples.setdefault("acmt024", body)
        return web.Response(body=self.sealed(body), content_type="application/xml", charset="utf-8")

    def sealed(self, document: bytes) -> bytes:
        """What goes to the switch: `document` in a business message signed now (bare without signing)."""
        if self.signing is None:
            return document
        return self.signing.seal(HUB, document, now=datetime.now(timezone.utc))

    def _opened(self, body: bytes, root: Any) -> tuple[Any, bytes]:
        """The Document of a signed business message from the hub, checked (raises apphdr.Refused),
        and its bytes; the root and body as they came without signing."""
        if self.signing is None:
            return root, body
        opened = self.signing.open(HUB, root, schemas=self.schemas, now=datetime.now(timezone.utc))
        self.samples.setdefault(f"bizmsg_{opened.header.msg_def_id[:8]}", body)
        return opened.document, opened.document_bytes

    async def _send_inbound(self, request: web.Request) -> web.Response:
        data = await request.json()
        specs = [InboundSpec.model_validate(item) for item in data.get("payments", [])]
        assert self._session is not None
        uetrs = await self.inbound.send(self._session, specs)
        return web.json_response({"uetrs": uetrs})

    async def _inbound_summary(self, _request: web.Request) -> web.Response:
        return web.json_response(self.inbound.summary())

    async def _set_behaviour(self, request: web.Request) -> web.Response:
        try:
            self.behaviour = SimBehaviour.from_json(await request.json(), self.behaviour)
        except (TypeError, ValueError) as exc:  # an unknown field, a kind or a share out of range
            return web.json_response({"error": str(exc)[:500]}, status=400)
        return await self._stats(request)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.stats["received"] += 1
        try:
            root = parse_untrusted(body, size_bytes_max=body_bytes_max)
            root, body = self._opened(body, root)
            message_type = message_id_of(root)
            if message_type == "acmt.023.001.04":  # a proxy look-up: answered in the HTTP response
                return self._resolve_proxies(root)
            if message_type == self.profile.pacs002_version:  # the switch answers an inbound payment
                self.schemas.validate(root, message_type)
                report = self._enquiry_answers(pacs002.parse(root))
                if report.transactions:
                    self.inbound.receive_answer(report)
                return web.json_response({"answered": True})
            if message_type == "admi.002.001.01":  # the switch could not process one of our messages
                self.stats["rejects_received"] += 1
                return web.json_response(self.returns.receive_reject(root))
            if message_type == self.profile.exceptions.pacs004_version:  # the switch returns an inbound payment
                answer = self.returns.receive_return(root, message_type)
                await self.recalls.receive(root, message_type)  # an accepted recall's return: in the recalls log too
                return web.json_response(answer)
            if message_type[:8] in RECALL_MESSAGES:  # recalls (issue 9): camt.056, camt.029 from the switch
                return await self.recalls.receive(root, message_type)
            if message_type == self.profile.exceptions.pacs028_version:  # the switch asks (issue 9)
                self.schemas.validate(root, message_type)
                return self._answer_status_request(pacs028.parse(root))
            if message_type != self.profile.pacs008_version:
                raise XmlRejected("FF01", f"{self.profile.network} takes {self.profile.pacs008_version}, not {message_type}")
            self.schemas.validate(root, message_type)
            message = pacs008.parse(root)
        except apphdr.Refused as exc:  # not signed by the hub, not to us, stale: nothing decided
            self.stats["refused"] += 1
            self.stats[f"refused_{exc.reason}"] += 1
            return web.json_response({"reason_code": exc.reason_code, "error": exc.message}, status=exc.http_status)
        except XmlRejected as exc:
            self.stats["refused"] += 1
            return web.json_response({"reason_code": exc.reason_code, "error": exc.message}, status=400)
        except SchemaViolation as exc:
            self.stats["refused"] += 1
            return web.json_response({"reason_code": "FF01", "error": str(exc)[:500]}, status=400)
        self.samples.setdefault("pacs008", body)
        self.received_log.received([tx.uetr for tx in message.transactions], message.message_id, body)
        self.recalls.note_payment(message, message_type)
        if message.message_id in self._seen:  # a resend: the same answer, never a new decision
            self.stats["resends"] += 1
            decision = self._seen[message.message_id]
            if decision is not None and message.message_id in self._lost:
                self.stats["callbacks_lost"] += 1
            elif decision is not None:
                self._schedule(decision.report, delay_s=0)
            return web.json_response({"message_id": message.message_id, "duplicate": True}, status=202)
        decision, statuses = self._decide(message, message_type)
        if decision is not None and self.settlement is not None:  # the network settled what it accepted
            ledger = self.settlement.ledger
            for tx in message.transactions:
                if tx.uetr is not None and statuses.get(tx.uetr) == "ACSC":
                    ledger.paid_out(message.message_id, tx.uetr, tx.end_to_end_id, tx.tx_id, tx.settlement_amount)
        self._remember(message.message_id, decision)
        self.received_log.answered(message.message_id, None if decision is None else decision.report, statuses)
        if decision is not None and self._random.random() < self.behaviour.lose_rate:
            self._lost.add(message.message_id)  # decided, never called back: an enquiry finds it
            self.stats["callbacks_lost"] += 1
        elif decision is not None:
            called_back = self._schedule_decision(decision.report, statuses, message, message_type)
            self._plan_returns(message, statuses, called_back)
            if self._random.random() < self.behaviour.duplicate_rate:
                self.stats["duplicates_sent"] += 1
                self._schedule(decision.report, delay_s=self.behaviour.delay_ms / 1000 * 2)
        return web.json_response({"message_id": message.message_id}, status=202)

    def _remember(self, message_id: str, decision: _Decision | None) -> None:
        self._seen[message_id] = decision
        while len(self._seen) > seen_messages_max:
            self._seen.popitem(last=False)

    # ------------------------------------------------------------------ network rules
    def check(self, message: pacs008.CustomerCreditTransfer, tx: pacs008.CreditTransfer) -> tuple[str, str] | None:
        """The profile's rules, as the network would apply them: (reason code, detail) or None."""
        p = self.profile
        if (message.settlement.clearing_system_code, message.settlement.clearing_system_proprietary) != (
            p.clearing_system_code,
            p.clearing_system_proprietary,
        ):
            return "FF01", "wrong clearing system"
        amount = tx.settlement_amount
        if amount.currency != p.currency:
            return "CURR", f"{p.network} settles {p.currency}, not {amount.currency}"
        exponent = Decimal(amount.value).as_tuple().exponent
        if isinstance(exponent, int) and -exponent > p.amount_decimals:
            return "CH20", f"{amount.value} has more than {p.amount_decimals} decimals"
        member = tx.creditor_agent.clearing_member
        if member is None:
            return "RC01", "creditor agent has no clearing-system member id"
        if not (p.member_id_ok(member.member_id) or member.member_id == p.proxy_network_member_id):
            return "RC01", f"{member.member_id!r} is not a {p.network} member"
        texts = [("creditor name", tx.creditor.name or "", p.name_chars_max), ("debtor name", tx.debtor.name or "", p.name_chars_max)]
        texts += [("remittance information", line, p.remittance_chars_max) for line in tx.remittance_lines]
        for what, value, chars_max in texts:
            if not value or not text.charset_ok(value, p.text_rule):
                return "RR10", f"{what} outside {text.CHARSET_NAMES[p.text_rule]}"
            if text.char_count(value) > chars_max:
                return "FF01", f"{what} longer than {chars_max}"
        account = tx.creditor_account
        if account is not None and account.proxy is not None:
            rule = next((r for r in p.proxies.values() if r.iso_type == account.proxy.type_proprietary), None)
            if rule is None or re.fullmatch(rule.pattern, account.proxy.identifier) is None:
                return "BE23", "proxy type or format unknown"
            if account.proxy.identifier in self.behaviour.unknown_proxies:
                return "BE23", "proxy not registered"
        elif account is None or account.other_id is None:
            return "AC01", "no creditor account"
        elif not p.account_ok(account.other_id):
            return "AC01", f"{account.other_id!r} is not a {p.network} account number"
        elif p.is_card(account.other_id):
            if account.scheme_proprietary != p.card_scheme_proprietary:
                return "AC01", "card number without the card scheme"
            if p.card_luhn and not luhn_ok(account.other_id):
                return "AC01", "card number fails the Luhn check"
        if p.nexus_style and tx.accepted_at is None:
            return "FF01", "AccptncDtTm is mandatory"
        return None

    def reason(self, code: str, detail: str) -> pacs002.StatusReason:
        """A reject reason as this network words it: its own code in Rsn/Prtry when its profile's
        table has one for the ISO code (NAPAS answers 51, not AM04), a code that is not ISO-shaped
        as given (a partner code, e.g. `--reject-codes 99`), an ISO code in Rsn/Cd otherwise."""
        info = (detail[:105],)
        if not ISO_REASON_SHAPE.fullmatch(code):
            return pacs002.StatusReason(proprietary=code, additional_info=info)
        own = self.profile.partner_code_for(code)
        return pacs002.StatusReason(proprietary=own, additional_info=info) if own else pacs002.StatusReason(code, info)

    def _decide(self, message: pacs008.CustomerCreditTransfer, message_type: str) -> tuple[_Decision | None, dict[str, str]]:
        """The answer to a new pacs.008 (None: the network stays silent) and the status per UETR."""
        b = self.behaviour
        if self._random.random() < b.timeout_rate:
            self.stats["silenced"] += 1
            return None, {}
        reports = []
        for tx in message.transactions:
            problem = self.check(message, tx)
            if problem is None and self._random.random() < b.reject_rate:
                problem = (self._random.choice(b.reject_codes), "rejected by the beneficiary bank")
            if problem is None:
                status, reasons = pacs002.TransactionStatus.ACSC, ()
                self.stats["accepted"] += 1
            else:
                status, reasons = pacs002.TransactionStatus.RJCT, (self.reason(problem[0], problem[1]),)
                self.stats[f"rejected_{problem[0]}"] += 1
            reports.append(
                pacs002.TransactionReport(
                    status=status,
                    original_group=pacs002.OriginalGroup(message.message_id, message_type),
                    original_instruction_id=tx.instruction_id,
                    original_end_to_end_id=tx.end_to_end_id,
                    original_tx_id=tx.tx_id,
                    original_uetr=tx.uetr,
                    reasons=reasons,
                    accepted_at=datetime.now(timezone.utc) if status is pacs002.TransactionStatus.ACSC else None,
                )
            )
        report = pacs002.PaymentStatusReport(
            message_id=f"S{uuid.uuid4().hex}"[:35], created_at=datetime.now(timezone.utc), transactions=tuple(reports)
        )
        body = pacs002.build_validated(report, self.schemas)
        self.samples.setdefault("pacs002", body)
        return _Decision(body), {r.original_uetr: r.status.value for r in reports if r.original_uetr}

    # ------------------------------------------------------------------ returns (issue 9)
    def _plan_returns(
        self, message: pacs008.CustomerCreditTransfer, statuses: dict[str, str], called_back: asyncio.Task[Any] | None = None,
    ) -> None:
        """Remember the payments it completed; return a share of them the return delay after the
        switch took the pacs.002 that completed them (`called_back`: a return that overtook its own
        completion would find the payment not yet completed and be refused AG01)."""
        b = self.behaviour
        for tx in message.transactions:
            if tx.uetr is None or statuses.get(tx.uetr) != pacs002.TransactionStatus.ACSC.value:
                continue
            self.returns.note_completed(Completed(tx.uetr, tx.end_to_end_id, tx.tx_id, tx.settlement_amount, message.message_id))
            if b.return_rate <= 0 or self._random.random() >= b.return_rate:
                continue
            partial = self._random.random() < b.partial_return_rate
            amount = self.returns.half(tx.settlement_amount) if partial else tx.settlement_amount
            reason = self._random.choice(b.return_reasons)
            task = asyncio.create_task(self._return_later(
                tx.uetr, amount, reason, partial, (b.return_delay_ms if called_back else b.delay_ms + b.return_delay_ms) / 1000,
                after=called_back,
            ))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _return_later(
        self, uetr: str, amount: Any, reason: str, partial: bool, delay_s: float, *, after: asyncio.Task[Any] | None = None
    ) -> None:
        if after is not None:
            await asyncio.wait([after])  # the completing pacs.002 delivered (or given up on) first
        await asyncio.sleep(delay_s)
        assert self._session is not None
        sent = await self.returns.send(self._session, uetr, amount, reason, partial=partial)
        self.stats["returns_sent"] += 1
        if sent is not None and sent.http_status != 200:
            self.stats[f"returns_http_{sent.http_status}"] += 1

    async def _return_now(self, request: web.Request) -> web.Response:
        data = await request.json()
        amount = Amount(str(data["amount"]), data.get("currency") or self.profile.currency) if data.get("amount") else None
        assert self._session is not None
        sent = await self.returns.send(
            self._session, str(data["uetr"]), amount, str(data.get("reason") or self.behaviour.return_reasons[0]),
            message_id=data.get("message_id"), return_id=data.get("return_id"),
        )
        if sent is None:
            return web.json_response({"error": "the network completed no such payment"}, status=404)
        self.stats["returns_sent"] += 1
        return web.json_response(asdict(sent))

    async def _returns_summary(self, _request: web.Request) -> web.Response:
        return web.json_response(self.returns.summary())

    # ------------------------------------------------------------------ callbacks
    def _schedule(self, report: bytes, *, delay_s: float) -> asyncio.Task[None]:
        task = asyncio.create_task(self._callback(report, delay_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _callback(self, report: bytes, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        assert self._session is not None
        async with self._callback_slots:
            for attempt in range(callback_attempts_max):
                try:
                    async with self._session.post(
                        self.callback_url,
                        data=self.sealed(report),  # signed per attempt: a fresh CreDt, the same pacs.002
                        headers={"Content-Type": "application/xml; charset=utf-8"},
                        timeout=aiohttp.ClientTimeout(total=callback_timeout_s),
                    ) as resp:
                        await resp.read()
                        # 429: over the switch's rate limit; a network waits as told and sends again
                        wait_s = retry_after_s(resp.headers) if resp.status == 429 else None
                        if resp.status < 500:
                            self.stats["callbacks_ok" if resp.status < 300 else f"callbacks_http_{resp.status}"] += 1
                            if wait_s is None:
                                return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    wait_s = None
                self.stats["callback_retries"] += 1
                await asyncio.sleep(wait_s if wait_s is not None else min(2.0, 0.05 * 2**attempt))
            self.stats["callbacks_failed"] += 1

    # ------------------------------------------------------------------ status enquiries (issue 9)
    def _callback_delay_s(self) -> float:
        """delay_ms, or late_delay_ms for the behaviour's late share."""
        b = self.behaviour
        if b.late_rate and self._random.random() < b.late_rate:
            self.stats["callbacks_late"] += 1
            return b.late_delay_ms / 1000
        return b.delay_ms / 1000

    def _acsp_after(self, message: pacs008.CustomerCreditTransfer, message_type: str, uetrs: list[str]) -> bytes:
        """An ACSP (settlement in process) for payments the network has already answered ACSC: an
        answer out of order, which the switch must not let move a final payment back."""
        wanted = set(uetrs)
        report = pacs002.PaymentStatusReport(
            message_id=f"S{uuid.uuid4().hex}"[:35], created_at=datetime.now(timezone.utc),
            transactions=tuple(
                pacs002.TransactionReport(
                    status=pacs002.TransactionStatus.ACSP, original_group=pacs002.OriginalGroup(message.message_id, message_type),
                    original_instruction_id=tx.instruction_id, original_end_to_end_id=tx.end_to_end_id, original_tx_id=tx.tx_id,
                    original_uetr=tx.uetr,
                )
                for tx in message.transactions if tx.uetr in wanted
            ),
        )
        return pacs002.build_validated(report, self.schemas)

    def _schedule_decision(
        self, report: bytes, statuses: dict[str, str], message: pacs008.CustomerCreditTransfer, message_type: str,
    ) -> asyncio.Task[None]:
        """The first callback of a decision: on time or late; for the out-of-order share of accepted
        payments, followed by an ACSP once the ACSC went. The task that delivers it."""
        delay_s = self._callback_delay_s()
        accepted = [u for u, st in statuses.items() if st == "ACSC"]
        if accepted and self.behaviour.out_of_order_rate and self._random.random() < self.behaviour.out_of_order_rate:
            self.stats["out_of_order_sent"] += 1
            return self._schedule_chain([report, self._acsp_after(message, message_type, accepted)], delay_s=delay_s)
        return self._schedule(report, delay_s=delay_s)

    def _schedule_chain(self, reports: list[bytes], *, delay_s: float) -> asyncio.Task[None]:
        async def chain() -> None:
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            for report in reports:  # one after the other: the second leaves once the first was taken
                await self._callback(report, 0)

        task = asyncio.create_task(chain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _answer_status_request(self, request: pacs028.StatusRequest) -> web.Response:
        """The switch's pacs.028: per transaction the stored decision's pacs.002 again (a callback,
        lost ones included: this is how they are recovered), nothing for a payment it received but
        stayed silent on, a pacs.002 RJCT AG09 for one it never received."""
        self.stats["enquiries_received"] += 1
        self.samples.setdefault("pacs028", pacs028.build(request))
        again: dict[str, bytes] = {}
        not_found: list[pacs028.StatusRequestTx] = []
        for tx in request.transactions:
            entry = self.received_log.uetrs.get(tx.original_uetr or "")
            if entry is None:
                not_found.append(tx)
                continue
            decided = next((d for m in entry.message_ids if (d := self._seen.get(m)) is not None), None)
            if decided is None:
                self.stats["enquiries_silent"] += 1
                continue
            again.setdefault(hashlib.sha256(decided.report).hexdigest(), decided.report)
        for report in again.values():
            self.stats["enquiries_answered"] += 1
            self._schedule(report, delay_s=self._callback_delay_s())
        if not_found:
            self.stats["enquiries_not_found"] += len(not_found)
            reason = self.reason(self.profile.exceptions.not_found_reason, "payment not received")
            report = pacs002.PaymentStatusReport(
                message_id=f"S{uuid.uuid4().hex}"[:35], created_at=datetime.now(timezone.utc),
                transactions=tuple(
                    pacs002.TransactionReport(
                        status=pacs002.TransactionStatus.RJCT, original_group=tx.original_group,
                        original_instruction_id=tx.original_instruction_id, original_end_to_end_id=tx.original_end_to_end_id,
                        original_tx_id=tx.original_tx_id, original_uetr=tx.original_uetr, reasons=(reason,),
                    )
                    for tx in not_found
                ),
            )
            self._schedule(pacs002.build_validated(report, self.schemas), delay_s=self._callback_delay_s())
        return web.json_response({"message_id": request.message_id, "answered": len(again), "not_found": len(not_found)}, status=202)

    async def _send_enquiry(self, request: web.Request) -> web.Response:
        """POST /sim/enquire {"uetrs": [...]}: one pacs.028 to the switch about these inbound
        payments (the network's own, or any UETR), signed like every message; the switch's answers
        come back as pacs.002 callbacks (GET /sim/enquiries)."""
        data = await request.json()
        uetrs = [str(u) for u in data.get("uetrs", [])]
        now = datetime.now(timezone.utc)
        msg_id = f"Q{uuid.uuid4().hex}"[:35]
        status_request = pacs028.StatusRequest(
            message_id=msg_id, created_at=now,
            transactions=tuple(
                pacs028.StatusRequestTx(
                    status_request_id=f"{msg_id[:31]}{n:04d}",
                    original_group=pacs002.OriginalGroup(self.inbound.sent.get(u, "UNKNOWN"), self.profile.pacs008_version),
                    original_end_to_end_id=f"E{u.replace('-', '')}"[:35], original_uetr=u,
                )
                for n, u in enumerate(uetrs)
            ),
        )
        body = pacs028.build_validated(status_request, self.schemas)
        for u in uetrs:
            self.enquiries.setdefault(u, {"asked": 0, "answers": []})["asked"] += 1
        assert self._session is not None
        async with self._session.post(
            self.callback_url, data=self.sealed(body), headers={"Content-Type": "application/xml; charset=utf-8"},
            timeout=aiohttp.ClientTimeout(total=callback_timeout_s),
        ) as resp:
            text = await resp.text()
            status = resp.status
        self.stats["enquiries_sent"] += 1
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {"body": text[:500]}
        return web.json_response({"message_id": msg_id, "http_status": status, "switch": answer})

    async def _enquiries_summary(self, _request: web.Request) -> web.Response:
        return web.json_response({"enquiries": self.enquiries})

    def _enquiry_answers(self, report: pacs002.PaymentStatusReport) -> pacs002.PaymentStatusReport:
        """Record the switch's answers about payments the network asked after (its pacs.028); a
        PDNG or a not-found RJCT answers only the enquiry and is kept from the inbound answers (it
        decides nothing); the rest goes on as before."""
        kept = []
        not_found = self.profile.exceptions.not_found_reason
        for tx in report.transactions:
            asked = self.enquiries.get(tx.original_uetr or "")
            reason = tx.reasons[0].code if tx.reasons else None
            if asked is not None:
                asked["answers"].append({"message_id": report.message_id, "status": tx.status.value, "reason_code": reason})
            if tx.status is pacs002.TransactionStatus.PDNG or (asked is not None and reason == not_found):
                continue
            kept.append(tx)
        return replace(report, transactions=tuple(kept))


# Each partner's simulator. The shared one plays every profile (its rules, decimals, text rule and
# reason codes are profile data) until a network needs more than data can say. Kept here, next to
# the simulators: production code (adapters/registry.py) never imports a simulator.
SIMULATORS: dict[str, type[PartnerSimulator]] = {
    "promptpay": PartnerSimulator,
    "lapnet": PartnerSimulator,
    "napas": PartnerSimulator,
    "unionpay": PartnerSimulator,
}
