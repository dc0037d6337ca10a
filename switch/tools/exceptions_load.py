"""Exceptions for the demo (issue 9): once the payments have their outcomes, the demo plays the
participants' and the networks' sides of what goes wrong afterwards, and checks that each one
ended as planned.

- Status enquiries: one simulator loses some callbacks (`--lose-rate`, set by the demo), so the
  switch's pacs.028 resolves those payments during the ordinary drive; here every network also
  asks the switch about a few inbound payments it sent (`POST /sim/enquire`: pacs.028 -> pacs.002).
- Returns: the simulators return a share of the payments they completed (`--return-rate`, some
  partial) during the drive; here the participants return a few inbound payments they had
  accepted (ReturnRequestV1 on mekong.requests, signed), all or half of each; and each network
  returns once more a payment it had already returned in full (one it returns now if its
  --return-rate drew none), which the switch refuses (ARDT, with an admi.002 to the network).
- Recalls: the participants recall a few completed outbound payments (RecallRequestV1), which the
  networks accept (camt.029 then pacs.004), refuse, or never answer, as their flags say; a few are
  recalled right behind their instruction, usually read in the same batch as the admission (a
  recall read before its instruction, the topics being read independently, is refused NOOR: the
  demo counts those as planned). Those are not cancelled locally: admission hands the pacs.008 row to the relay (leased), so the recall
  waits for the delivery and, the partner being up, goes out as a camt.056 (local cancellation
  needs a failed delivery, which the demo does not stage; tests/unit/test_handlers_recalls.py and
  tests/integration/test_recalls.py cover it). Each network recalls a few inbound payments (`POST /sim/recall`), and the
  participant, reading the recall events (`type: "recall"`) on mekong.inbound, answers ACCEPT or
  REFUSE (RecallReplyV1), or stays silent.

`outcomes` reads how each exception ended from the switch's database (payment_cases, payments,
the status outbox) and lists what did not end as planned.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from switch.tools.inbound_load import INBOUND_ROUTES, InboundResult
from switch.tools.loadgen import ALL_CORRIDORS, DriveResult, _partitions, plan_instructions
from switch.tools.signer import ParticipantSigners

recalls_per_corridor = 6  # outbound payments the participants recall, per corridor
instant_recalls = 4  # instructions recalled right behind their publication (one produce request for both)
returns_per_partner = 2  # inbound payments the participants return: one whole, one half
inbound_recalls = ("ACCEPT", "REFUSE", "silent")  # per network: how the participant answers its recalls
enquiries_per_partner = 2  # inbound payments each network asks about (pacs.028)
lost_callbacks = 3  # KH-LA instructions whose pacs.002 LAPNet never calls back: the switch's pacs.028 finds them
lossy_partner, lossy_corridor = "lapnet", "KH-LA"
RECALL_REASONS = ("DUPL", "FRAD", "CUST", "TECH", "AM09")
TERMINAL_CASES = ("DONE", "REFUSED", "UNANSWERED", "REJECTED")
OPEN_CASES = ("OPEN", "SENT", "AWAITING_RETURN")
CORRIDOR_PARTNERS = {"KH-TH": "promptpay", "KH-LA": "lapnet", "KH-VN": "napas", "KH-CN": "unionpay"}
EXPECTED_BAD_RETURN = "ARDT"  # a network returns again a payment it already returned in full


@dataclass
class ExceptionsRun:
    recalls_out: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> uetr, participant, corridor, partner
    instant: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> instruction id, participant, corridor
    overtaken: int = 0  # instant recalls read before their instruction: refused NOOR (planned)
    returns_in: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> uetr, partner, amount, partial
    recalls_in: dict[str, dict[str, Any]] = field(default_factory=dict)  # uetr -> partner, decision, case_id, answered
    recall_events: int = 0
    lost: dict[str, str] = field(default_factory=dict)  # instruction id -> participant: callbacks lost on purpose
    enquiries_in: dict[str, list[str]] = field(default_factory=dict)  # partner -> uetrs it asked about
    bad_returns: list[dict[str, Any]] = field(default_factory=list)  # the second return of a returned payment
    sims: dict[str, dict[str, Any]] = field(default_factory=dict)  # partner -> /sim/returns, /sim/recalls, /sim/enquiries
    waited_s: float = 0.0


def _half(amount: dict[str, str]) -> dict[str, str]:
    value = Decimal(amount["value"])
    quantum = Decimal(1) if amount["currency"] == "KHR" else Decimal("0.01")
    return {"value": f"{(value / 2).quantize(quantum, rounding=ROUND_DOWN):f}", "currency": amount["currency"]}


async def drive_exceptions(
    bootstrap_servers: str,
    sim_urls: dict[str, str],
    database: Path,
    outbound: DriveResult,
    inbound: InboundResult,
    *,
    run_id: str,
    signers: ParticipantSigners | None,
    wait_s_max: float = 60.0,
    instructions_topic: str = "mekong.instructions",
    requests_topic: str = "mekong.requests",
    inbound_topic: str = "mekong.inbound",
) -> ExceptionsRun:
    run = ExceptionsRun()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=False, linger_ms=20)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=20)
    await producer.start()
    await consumer.start()
    stop = asyncio.Event()
    try:
        parts = [TopicPartition(inbound_topic, p) for p in await _partitions(consumer, inbound_topic)]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:  # pin the position before any recall is asked for
            await consumer.position(tp)

        async def publish(topic: str, doc: dict[str, Any], key: str) -> None:
            value = json.dumps(doc).encode()
            headers = signers.headers(doc["participant"], value) if signers is not None else None
            await producer.send_and_wait(topic, value, key=key.encode(), headers=headers)

        async def participant() -> None:  # answers the networks' recalls of inbound payments
            n = 0
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=500)
                for records in batches.values():
                    for rec in records:
                        event = json.loads(rec.value)
                        if event.get("type") != "recall":
                            continue  # an inbound payment: not the demo's any more
                        run.recall_events += 1
                        planned = run.recalls_in.get(event["uetr"])
                        if planned is None or planned.get("case_id"):
                            continue
                        planned["case_id"] = event["case_id"]
                        if planned["decision"] == "silent":
                            continue
                        n += 1
                        reply: dict[str, Any] = {"version": 1, "type": "recall_reply", "request_id": f"RR-{run_id}-{n:03d}",
                                                 "participant": event["participant"], "case_id": event["case_id"],
                                                 "decision": planned["decision"]}
                        if planned["decision"] == "REFUSE":
                            reply["reason_code"], reply["reason"] = "CUST", "the customer has spent it"
                        await publish(requests_topic, reply, reply["request_id"])
                        planned["answered"] = True

        replier = asyncio.create_task(participant())
        async with aiohttp.ClientSession() as http:
            # 0. a few payments whose callback the network loses, whatever its --lose-rate drew:
            #    only the switch's status enquiry (after enquire_after_s) resolves them
            lossy = sim_urls[lossy_partner]
            async with http.get(f"{lossy}/sim/stats") as resp:
                stats = await resp.json()
            lost_before, lose_rate = stats.get("callbacks_lost", 0), stats["behaviour"]["lose_rate"]
            async with http.put(f"{lossy}/sim/behaviour", json={"lose_rate": 1.0}) as resp:
                resp.raise_for_status()
            planned_lost, _ = plan_instructions(lost_callbacks, seed=98, bad_share=0, run_id=f"L{run_id}", corridors=(lossy_corridor,))
            for p in (i for i in planned_lost if i.value is not None and i.kind == "good"):
                headers = signers.headers(p.participant, p.value) if signers is not None else None
                await producer.send_and_wait(instructions_topic, p.value, key=p.key.encode(), headers=headers)
                run.lost[p.key] = p.participant
            deadline = time.perf_counter() + 10
            while time.perf_counter() < deadline:
                async with http.get(f"{lossy}/sim/stats") as resp:
                    if (await resp.json()).get("callbacks_lost", 0) >= lost_before + len(run.lost):
                        break
                await asyncio.sleep(0.1)
            async with http.put(f"{lossy}/sim/behaviour", json={"lose_rate": lose_rate}) as resp:
                resp.raise_for_status()

            returned_by_sims = set()
            for partner, url in sim_urls.items():
                async with http.get(f"{url}/sim/returns") as resp:
                    returned_by_sims |= {s["uetr"] for s in (await resp.json())["sent"]}

            # 1. the participants recall completed outbound payments (the earliest: the networks'
            #    own returns of them, if any, are long done)
            finals = sorted(outbound.finals.values(), key=lambda f: f.record_ts_ms)
            n = 0
            for corridor in ALL_CORRIDORS:
                chosen = [f.event for f in finals if f.state == "COMPLETED" and f.event.get("corridor") == corridor
                          and f.event["uetr"] not in returned_by_sims][:recalls_per_corridor]
                for ev in chosen:
                    n += 1
                    request_id = f"RC-{run_id}-{n:03d}"
                    doc = {"version": 1, "type": "recall", "request_id": request_id, "participant": ev["participant"],
                           "uetr": ev["uetr"], "reason_code": RECALL_REASONS[n % len(RECALL_REASONS)],
                           "reason": "recalled by the demo"}
                    await publish(requests_topic, doc, request_id)
                    run.recalls_out[request_id] = {"uetr": ev["uetr"], "participant": ev["participant"], "corridor": corridor}

            # 2. instructions recalled right behind their publication: the admission and the recall in
            #    one batch cancel the payment before its pacs.008 leaves (else the recall goes out)
            instant, _ = plan_instructions(instant_recalls, seed=99, bad_share=0, run_id=f"X{run_id}", corridors=ALL_CORRIDORS)
            for k, p in enumerate(i for i in instant if i.value is not None and i.kind == "good"):
                headers = signers.headers(p.participant, p.value) if signers is not None else None
                request_id = f"RX-{run_id}-{k:03d}"
                recall = json.dumps({"version": 1, "type": "recall", "request_id": request_id, "participant": p.participant,
                                     "instruction_id": p.key, "reason_code": "DUPL", "reason": "sent twice"}).encode()
                # one produce request for both (linger): the switch reads them in one batch, the admission first
                sent = [await producer.send(instructions_topic, p.value, key=p.key.encode(), headers=headers),
                        await producer.send(requests_topic, recall, key=request_id.encode(),
                                            headers=signers.headers(p.participant, recall) if signers is not None else None)]
                await asyncio.gather(*sent)
                run.instant[request_id] = {"instruction_id": p.key, "participant": p.participant, "corridor": p.corridor}

            # 3. the participants return inbound payments they accepted; 4. the networks recall others;
            #    5. and ask about a few (pacs.028)
            accepted: dict[str, list[str]] = defaultdict(list)
            asked_about: dict[str, list[str]] = defaultdict(list)
            for uetr, planned in inbound.uetrs.items():
                answer = inbound.answers.get(uetr)
                if answer is None or uetr not in inbound.participants:
                    continue
                if planned.expect == "ACSC" and answer["status"] == "ACSC":
                    accepted[planned.partner].append(uetr)
                if len(asked_about[planned.partner]) < enquiries_per_partner and (
                        planned.expect != "ACSC" or not asked_about[planned.partner]):
                    asked_about[planned.partner].append(uetr)  # one completed, one refused
            n = 0
            for partner, uetrs in accepted.items():
                for k, uetr in enumerate(uetrs[:returns_per_partner]):
                    n += 1
                    request_id = f"RT-{run_id}-{n:03d}"
                    amount = inbound.amounts[uetr] if k == 0 else _half(inbound.amounts[uetr])
                    doc = {"version": 1, "type": "return", "request_id": request_id, "participant": inbound.participants[uetr],
                           "uetr": uetr, "amount": amount, "reason_code": "CUST" if k == 0 else "AC04",
                           "reason": "returned by the demo"}
                    await publish(requests_topic, doc, request_id)
                    run.returns_in[request_id] = {"uetr": uetr, "partner": partner, "amount": amount, "partial": k > 0}
                recalled = uetrs[returns_per_partner:returns_per_partner + len(inbound_recalls)]
                for uetr, decision in zip(recalled, inbound_recalls):
                    run.recalls_in[uetr] = {"partner": partner, "decision": decision, "case_id": None, "answered": False}
                async with http.post(f"{sim_urls[partner]}/sim/recall", json={"uetrs": recalled, "reason": "FRAD"}) as resp:
                    resp.raise_for_status()
            for partner, uetrs in asked_about.items():
                run.enquiries_in[partner] = uetrs
                async with http.post(f"{sim_urls[partner]}/sim/enquire", json={"uetrs": uetrs}) as resp:
                    resp.raise_for_status()

            # wait until every exception has ended (or the deadline)
            started = time.perf_counter()
            while time.perf_counter() - started < wait_s_max:
                if _all_ended(database, run) and await _sims_settled(http, sim_urls, run):
                    break
                await asyncio.sleep(0.5)
            run.waited_s = time.perf_counter() - started

            # 6. each network returns again a payment it returned in full: refused ARDT (admi.002)
            for partner, url in sim_urls.items():
                async with http.get(f"{url}/sim/returns") as resp:
                    sent = (await resp.json())["sent"]
                full = next((s for s in sent if not s["partial"] and s["http_status"] == 200), None)
                if full is None:  # its --return-rate drew no whole return: the network returns one now
                    taken = {s["uetr"] for s in sent} | {r["uetr"] for r in run.recalls_out.values()}
                    corridor = next(c for c, q in CORRIDOR_PARTNERS.items() if q == partner)
                    uetr = next((f.event["uetr"] for f in finals if f.state == "COMPLETED" and f.event.get("corridor") == corridor
                                 and f.event["uetr"] not in taken), None)
                    if uetr is None:
                        continue
                    async with http.post(f"{url}/sim/return", json={"uetr": uetr, "reason": "CUST"}) as resp:
                        full = await resp.json()
                async with http.post(f"{url}/sim/return", json={"uetr": full["uetr"], "amount": full["amount"],
                                                               "currency": full["currency"], "reason": full["reason_code"]}) as resp:
                    answer = await resp.json()
                run.bad_returns.append({"partner": partner, "uetr": full["uetr"], "http_status": answer.get("http_status"),
                                        "reason_code": (answer.get("answer") or {}).get("reason_code")
                                        if isinstance(answer.get("answer"), dict) else None})
            await asyncio.sleep(1.0)  # the admi.002s on their way to the networks
            for partner, url in sim_urls.items():
                run.sims[partner] = {}
                for what in ("returns", "recalls", "enquiries"):
                    async with http.get(f"{url}/sim/{what}") as resp:
                        run.sims[partner][what] = await resp.json()
        stop.set()
        await replier
    finally:
        await consumer.stop()
        await producer.stop()
    return run


def _db(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)


def _refused_request(db: sqlite3.Connection, request_id: str) -> str | None:
    """The reason code of a request the switch refused before any case (a status event only)."""
    for (body,) in db.execute("SELECT body FROM outbox WHERE kind = 'status' AND CAST(body AS TEXT) LIKE ?", (f"%{request_id}%",)):
        event = json.loads(bytes(body))
        if event.get("type") == "exception" and (event.get("exception") or {}).get("request_id") == request_id:
            return str(event.get("reason_code"))
    return None


def _all_ended(database: Path, run: ExceptionsRun) -> bool:
    with _db(database) as db:
        for instruction_id, participant in run.lost.items():
            row = db.execute("SELECT state FROM payments WHERE participant = ? AND instruction_id = ?", (participant, instruction_id)).fetchone()
            if row is None or row[0] not in ("COMPLETED", "SETTLED", "REJECTED"):
                return False
        refs = [f"participant/{r['participant']}/{rid}" for rid, r in {**run.recalls_out, **run.instant}.items()]
        states = dict(db.execute(f"SELECT ref, state FROM payment_cases WHERE ref IN ({','.join('?' * len(refs))})", refs)) if refs else {}
        for ref in refs:
            if states.get(ref) in OPEN_CASES or (ref not in states and _refused_request(db, ref.rsplit("/", 1)[1]) is None):
                return False
        uetrs = list(run.recalls_in)
        if uetrs:
            rows = list(db.execute(f"SELECT uetr, state FROM payment_cases WHERE kind = 'recall' AND initiator = 'partner' "
                                   f"AND uetr IN ({','.join('?' * len(uetrs))})", uetrs))
            if len({u for u, _ in rows}) < len(uetrs) or any(s in OPEN_CASES for _, s in rows):
                return False
        for rid, r in run.returns_in.items():
            ref = f"participant/{inbound_participant(db, r['uetr'])}/{rid}"
            if db.execute("SELECT 1 FROM payment_cases WHERE ref = ?", (ref,)).fetchone() is None and _refused_request(db, rid) is None:
                return False
    return True


def inbound_participant(db: sqlite3.Connection, uetr: str) -> str:
    row = db.execute("SELECT participant FROM payments WHERE uetr = ?", (uetr,)).fetchone()
    return row[0] if row else "-"


async def _sims_settled(http: aiohttp.ClientSession, sim_urls: dict[str, str], run: ExceptionsRun) -> bool:
    """Every return a network sent has the switch's answer, every enquiry its pacs.002."""
    for partner, url in sim_urls.items():
        async with http.get(f"{url}/sim/returns") as resp:
            if any(s["http_status"] is None for s in (await resp.json())["sent"]):
                return False
        async with http.get(f"{url}/sim/enquiries") as resp:
            asked = (await resp.json())["enquiries"]
        if any(not asked.get(u, {}).get("answers") for u in run.enquiries_in.get(partner, [])):
            return False
    return True


def _row(corridor: str, direction: str) -> str:
    return f"{corridor} {'out' if direction == 'outbound' else 'in'}"


def outcomes(database: Path, run: ExceptionsRun, inbound: InboundResult) -> dict[str, Any]:
    """How every exception ended, per corridor and direction, and what did not end as planned."""
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    return_reasons: dict[str, Counter[str]] = defaultdict(Counter)
    unmet: list[str] = []
    with _db(database) as db:
        db.row_factory = sqlite3.Row
        payments = {r["uetr"]: r for r in db.execute("SELECT uetr, participant, instruction_id, corridor, partner, direction, state, "
                                                     "target_minor, target_ccy FROM payments")}
        cases = list(db.execute("SELECT * FROM payment_cases ORDER BY created_at"))
        by_ref = {c["ref"]: c for c in cases}
        last_final: dict[str, str] = {}
        for (body,) in db.execute("SELECT body FROM outbox WHERE kind = 'status' AND hex(substr(body, 1, 1)) = '7B' ORDER BY id"):
            event = json.loads(bytes(body))
            about_case = (event.get("exception") or {}).get("case_id") is not None  # not a refusal before any case
            if event.get("uetr") and event.get("final") and (event.get("type", "status") == "status" or about_case):
                last_final[event["uetr"]] = event["state"]
    returned: Counter[str] = Counter()
    for c in cases:
        p = payments.get(c["uetr"])
        row = _row(p["corridor"], p["direction"]) if p is not None else "?"
        kind, state = c["kind"], c["state"]
        if kind == "enquiry":
            rows[row]["enquiries sent"] += c["attempts"]
            if state == "DONE" and c["attempts"] > 0:
                rows[row]["resolved by enquiry"] += 1
            if c["reason_code"]:
                rows[row][f"enquiry answered {c['reason_code']}"] += 1
        elif kind == "return" and state == "DONE":
            returned[c["uetr"]] += c["amount_minor"] or 0
            partial = p is not None and (c["amount_minor"] or 0) < p["target_minor"]
            rows[row]["returns booked"] += 1
            rows[row]["returns partial"] += partial
            return_reasons[row][c["reason_code"] or "-"] += 1
        elif kind == "recall":
            side = "recalls" if c["initiator"] == "partner" else "recalls made"
            if state == "DONE":
                outcome = "cancelled locally" if p is not None and p["state"] == "CANCELLED" and c["attempts"] == 0 else \
                    "cancelled" if p is not None and p["state"] == "CANCELLED" else "accepted, returned"
            else:
                outcome = {"REFUSED": "refused", "UNANSWERED": "unanswered", "REJECTED": "rejected"}.get(state, f"still {state}")
            rows[row][f"{side}: {outcome}"] += 1
    # the networks' own returns (and the deliberate second return of a returned payment)
    expected_bad = {(b["partner"], b["uetr"]) for b in run.bad_returns}
    for partner, sims in run.sims.items():
        for s in sims["returns"]["sent"]:
            answer = s.get("answer") if isinstance(s.get("answer"), dict) else {}
            if s["http_status"] == 200:
                case = by_ref.get(f"partner/{partner}/{s['message_id']}/{s['return_id']}")
                if case is None or case["state"] != "DONE":
                    unmet.append(f"return {s['message_id']} of {s['uetr']} ({partner}) answered 200 but not booked")
            elif (partner, s["uetr"]) in expected_bad and answer.get("reason_code") == EXPECTED_BAD_RETURN:
                p = payments.get(s["uetr"])
                rows[_row(p["corridor"], p["direction"]) if p else "?"][f"returns refused {EXPECTED_BAD_RETURN}"] += 1
            else:
                unmet.append(f"return {s['message_id']} of {s['uetr']} ({partner}): HTTP {s['http_status']} {answer.get('reason_code')}")
        rejects = sims["returns"]["rejects"]
        if any((b["partner"] == partner) for b in run.bad_returns) and not any(r["reason_code"] == EXPECTED_BAD_RETURN for r in rejects):
            unmet.append(f"{partner} got no admi.002 {EXPECTED_BAD_RETURN} for its second return")
        for uetr in run.enquiries_in.get(partner, []):
            answers = sims["enquiries"]["enquiries"].get(uetr, {}).get("answers", [])
            want = inbound.answers.get(uetr, {}).get("status")
            row = f"{INBOUND_ROUTES[partner]} in"
            rows[row]["enquiries sent"] += 1
            if answers and answers[-1]["status"] == want:
                rows[row]["answered by enquiry"] += 1
            else:
                unmet.append(f"{partner}'s enquiry about {uetr}: answers {answers}, its payment's answer was {want}")
    # the participants' recalls: each ended as its network decided
    decided = {u: d for sims in run.sims.values() for u, d in sims["recalls"]["decided"].items()}
    for rid, r in {**run.recalls_out, **run.instant}.items():
        case = by_ref.get(f"participant/{r['participant']}/{rid}")
        if case is None:
            refused = _refused_from(database, rid)
            if rid in run.instant and refused == "NOOR":
                # the recall overtook its instruction: the two topics are read independently, so a
                # recall read before its instruction is admitted names no payment yet (NOOR, and
                # the participant hears it); planned, and counted
                run.overtaken += 1
                continue
            unmet.append(f"recall {rid}: no case (refused {refused})")
            continue
        p = payments[case["uetr"]]
        got = (case["state"], p["state"])
        kept = "PARTIALLY_RETURNED" if returned.get(case["uetr"]) else "COMPLETED"  # a part the network returned on its own
        # a payment its settlement cycle matched meanwhile goes back to SETTLED (issue 10)
        back = {kept, "SETTLED"} if kept == "COMPLETED" else {kept}
        want = {"accepted": {("DONE", "RETURNED"), ("DONE", "CANCELLED")}, "refused": {("REFUSED", k) for k in back},
                "silent": {("UNANSWERED", k) for k in back}}.get(decided.get(case["uetr"], ""), set())
        if rid in run.instant and got in (("DONE", "CANCELLED"), ("REJECTED", "REJECTED")):
            continue  # cancelled before the pacs.008 left (or the network accepted); or the network rejected the payment first
        if got not in want:
            unmet.append(f"recall {rid} of {case['uetr']}: the network {decided.get(case['uetr'], 'never saw it')}, case {got[0]}, payment {got[1]}")
    # the networks' recalls: each ended as the participant answered
    for uetr, r in run.recalls_in.items():
        case = next((c for c in cases if c["uetr"] == uetr and c["kind"] == "recall" and c["initiator"] == "partner"), None)
        want = {"ACCEPT": ("DONE", "RETURNED", "CNCL"), "REFUSE": ("REFUSED", "COMPLETED", "RJCR"),
                "silent": ("UNANSWERED", "COMPLETED", "RJCR")}[r["decision"]]
        answer = run.sims[r["partner"]]["recalls"]["answers"].get(uetr, {})
        state = payments[uetr]["state"]
        got = (case["state"] if case else None, "COMPLETED" if state == "SETTLED" else state, answer.get("status"))
        if got != want:
            unmet.append(f"{r['partner']}'s recall of {uetr}: participant {r['decision']}, got case/payment/camt.029 {got}")
    # the participants' returns: booked, and the pacs.004 reached the network
    for rid, r in run.returns_in.items():
        case = by_ref.get(f"participant/{payments[r['uetr']]['participant']}/{rid}")
        received = [t for m in run.sims[r["partner"]]["returns"]["received"] for t in m["returns"] if t["uetr"] == r["uetr"]]
        want_state = "PARTIALLY_RETURNED" if r["partial"] else "RETURNED"
        if case is None or case["state"] != "DONE" or payments[r["uetr"]]["state"] != want_state or not received:
            unmet.append(f"return {rid} of {r['uetr']}: case {case['state'] if case else None}, payment "
                         f"{payments[r['uetr']]['state']} (want {want_state}), pacs.004 at the network: {len(received)}")
    # the callbacks lost on purpose: each payment resolved after a pacs.028, or by the network's
    # settlement report when that came first
    with _db(database) as db:
        by_report = {u for (u,) in db.execute("SELECT uetr FROM payment_history WHERE to_state = 'COMPLETED' AND detail LIKE 'settled in %'")}
    for instruction_id, participant in run.lost.items():
        p = next((q for q in payments.values() if (q["participant"], q["instruction_id"]) == (participant, instruction_id)), None)
        enquiry = next((c for c in cases if p is not None and c["uetr"] == p["uetr"] and c["kind"] == "enquiry"), None)
        if p is not None and p["uetr"] in by_report:  # the network's settlement report settled it before a pacs.028 did (issue 10)
            rows[_row(p["corridor"], p["direction"])]["resolved by settlement report"] += 1
            continue
        if p is None or p["state"] not in ("COMPLETED", "SETTLED", "REJECTED") or enquiry is None or enquiry["state"] != "DONE" or not enquiry["attempts"]:
            unmet.append(f"lost callback of {instruction_id}: payment {p['state'] if p else None}, "
                         f"enquiry {(enquiry['state'], enquiry['attempts']) if enquiry else None}")
    # every payment: one outcome, the participant's last word is the switch's, nothing left open
    for uetr, p in payments.items():
        if p["state"] == "RECALL_PENDING":
            unmet.append(f"{uetr} still RECALL_PENDING")
        # SETTLED (issue 10) is told by the cycle's statement on mekong.statements, not by a status
        # event: the participant's last word for a settled payment is COMPLETED (or SETTLED when a
        # refused recall's event put it back there)
        told = {"COMPLETED", "SETTLED"} if p["state"] == "SETTLED" else {p["state"]}
        if uetr in last_final and last_final[uetr] not in told:
            unmet.append(f"{uetr}: the participant last heard {last_final[uetr]}, the switch has {p['state']}")
        back = returned.get(uetr, 0)
        if back > p["target_minor"] or (p["state"] == "PARTIALLY_RETURNED" and not 0 < back < p["target_minor"]):
            unmet.append(f"{uetr}: {back} returned of {p['target_minor']} {p['target_ccy']}, state {p['state']}")
    still_open = [c["id"] for c in cases if c["state"] in OPEN_CASES and c["kind"] != "enquiry"]
    if still_open:
        unmet.append(f"{len(still_open)} return/recall cases still open: {still_open[:5]}")
    return {
        "by_corridor": {row: dict(sorted(c.items())) for row, c in sorted(rows.items())},
        "return_reasons": {row: dict(c.most_common()) for row, c in sorted(return_reasons.items())},
        "recall_events_read": run.recall_events,
        "demo_requests": {"lost_callbacks": len(run.lost), "recalls": len(run.recalls_out), "instant_recalls": len(run.instant), "returns": len(run.returns_in),
                          "partner_recalls": len(run.recalls_in), "instant_recalls_overtaken": run.overtaken},
        "waited_s": round(run.waited_s, 1),
        "expectations_unmet": unmet,
    }


def _refused_from(database: Path, request_id: str) -> str | None:
    with _db(database) as db:
        return _refused_request(db, request_id)
