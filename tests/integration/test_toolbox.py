"""The operator's toolbox end to end (issue 11 item 3), on the real broker, each database and the
PromptPay simulator over mutual TLS: search with filters and keyset pages, a payment with its
messages, resolving a stuck payment each way, dead letters listed and replayed once, the roles,
and real answers checked against the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from click.testing import CliRunner

from adapters.simulator import SimBehaviour
from switch.broker import TansuBroker
from switch.entrypoints.cli import main as cli_main
from switch.entrypoints.kafka_consumer import DeadLetter, dead_letter_record
from switch.entrypoints.ops_edge import openapi_document
from switch.metrics import DlqReason
from switch.store.sql_store import Store
from adapters.simulator_inbound import InboundSpec
from tests.integration.harness import Running, partner_session, pki_dir, running_switch, signed
from tests.integration.test_inbound import answers_for
from tests.integration.test_pipeline import collect, finals_by_id, instruction, publish
from tests.openapi_contract import check

ACCOUNT = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}
SHORT = {"sla_s": 4.0, "resend_after_s": 1.0, "timeout_s": 1.0, "enquire_after_s": 60.0}
settle_s_max = 30.0


async def _call(run: Running, method: str, path: str, template: str, *, role: str = "operator", body: Any = None,
                status: int | None = None) -> tuple[int, Any]:
    """One call of the operations API as `role`; the answer checked against the OpenAPI document."""
    async with run.ops_session() as http, http.request(
        method, f"{run.url}{path}", headers=run.auth_as(role), json=body
    ) as resp:
        answer = await resp.json()
        check(method, template, resp.status, answer)
        if status is not None:
            assert resp.status == status, answer
        return resp.status, answer


async def _completed(run: Running, n: int, participant: str = "ACLBKHPPXXX") -> dict[str, str]:
    ids = [f"X{uuid.uuid4().hex[:10]}" for _ in range(n)]
    await publish(run, [(i, json.dumps(instruction(i, creditor=ACCOUNT, participant=participant)).encode()) for i in ids])
    statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: set(ids) <= set(finals_by_id(rs)))
    finals = finals_by_id(statuses)
    return {i: finals[i][0]["uetr"] for i in ids}


async def _timed_out(run: Running) -> tuple[str, str]:
    """A payment the silent partner never answers: TIMED_OUT past its (short) SLA."""
    iid = f"S{uuid.uuid4().hex[:10]}"
    await publish(run, [(iid, json.dumps(instruction(iid, creditor=ACCOUNT)).encode())])

    def timed_out(records: list[Any]) -> list[dict[str, Any]]:
        events = (json.loads(r.value) for r in records)
        return [e for e in events if e.get("instruction_id") == iid and e["state"] == "TIMED_OUT"]

    statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: bool(timed_out(rs)))
    (event,) = timed_out(statuses)
    return iid, event["uetr"]


# ---------------------------------------------------------------- search and show


async def test_search_filters_and_keyset_pages(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run:
        uetrs = set((await _completed(run, 5)).values())
        seen: list[str] = []
        cursor = ""
        while True:
            _, page = await _call(run, "GET", f"/v1/payments?limit=2&state=COMPLETED{cursor}", "/v1/payments", status=200)
            seen += [p["uetr"] for p in page["payments"]]
            assert len(page["payments"]) <= 2
            if page["next_cursor"] is None:
                break
            cursor = f"&cursor={page['next_cursor']}"
        assert set(seen) == uetrs and len(seen) == len(uetrs)  # every one once, across pages
        _, everything = await _call(run, "GET", "/v1/payments?limit=500", "/v1/payments", status=200)
        created = [p["created_at"] for p in everything["payments"]]
        assert created == sorted(created, reverse=True)  # newest first

        for query, expected in [
            ("corridor=KH-TH&participant=ACLBKHPPXXX&partner=promptpay&since=1h", uetrs),
            ("until=2000-01-01T00:00:00%2B00:00", set()),
            ("state=REJECTED", set()),
            ("reason=AC01", set()),
        ]:
            _, page = await _call(run, "GET", f"/v1/payments?{query}", "/v1/payments", status=200)
            assert {p["uetr"] for p in page["payments"]} == expected, query
        _, refused = await _call(run, "GET", "/v1/payments?state=LOST", "/v1/payments", status=400)
        assert refused["reason_code"] == "FF01"
        _, refused = await _call(run, "GET", f"/v1/payments?limit={10_000}", "/v1/payments", status=400)


async def test_a_participant_finds_only_its_own_payments_and_an_auditor_finds_all(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run:
        uetrs = set((await _completed(run, 2)).values())
        _, own = await _call(run, "GET", "/v1/payments", "/v1/payments", role="participant:ACLBKHPPXXX", status=200)
        assert {p["uetr"] for p in own["payments"]} == uetrs
        _, other = await _call(run, "GET", "/v1/payments", "/v1/payments", role="participant:ABAAKHPPXXX", status=200)
        assert other["payments"] == []
        _, asked = await _call(run, "GET", "/v1/payments?participant=ACLBKHPPXXX", "/v1/payments", role="participant:ABAAKHPPXXX", status=200)
        assert asked["payments"] == []  # another's: as if none
        uetr = next(iter(uetrs))
        await _call(run, "GET", f"/v1/payments/{uetr}/messages", "/v1/payments/{uetr}/messages", role="participant:ABAAKHPPXXX", status=404)
        _, audited = await _call(run, "GET", "/v1/payments", "/v1/payments", role="auditor", status=200)
        assert uetrs <= {p["uetr"] for p in audited["payments"]}
        async with run.ops_session(client="monitor") as http, http.get(f"{run.url}/v1/payments") as resp:  # its certificate
            assert resp.status == 403
            check("GET", "/v1/payments", 403, await resp.json())


async def test_show_lists_the_messages_sent_and_received_for_a_payment(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run:
        (uetr,) = (await _completed(run, 1)).values()
        _, answer = await _call(run, "GET", f"/v1/payments/{uetr}/messages?bodies=1", "/v1/payments/{uetr}/messages", status=200)
        kinds = {(m["direction"], m["kind"], m["message_type"]) for m in answer["messages"]}
        assert ("sent", "partner", "pacs.008.001.13") in kinds  # PromptPay's version
        assert ("sent", "status", "status event") in kinds
        assert any(d == "received" and t == "pacs.002.001.10" for d, _, t in kinds)  # the partner's status
        assert all(uetr in m["body"] for m in answer["messages"] if m["kind"] != "status" or m["direction"] == "received")

        result = await asyncio.to_thread(
            CliRunner().invoke, cli_main,
            ["payments", "show", uetr, "--url", run.url, "--token", run.tokens["auditor"], "--pki-dir", str(pki_dir())],
        )
        assert result.exit_code == 0, result.output
        assert f"payment {uetr}  COMPLETED (final)" in result.output and "pacs.008.001.13" in result.output


async def test_show_lists_an_inbound_payments_pacs008_received_and_pacs002_sent(broker: TansuBroker, store: Store) -> None:
    spec = InboundSpec(amount="8000", currency="KHR", creditor_name="Keo Vanna", creditor_account="keo_vanna@wing")
    async with running_switch(broker, store, confirm_timeout_s=1.0) as run, partner_session("promptpay") as http:
        (uetr,) = await run.sim.inbound.send(http, [spec])
        await answers_for(run, [uetr])  # nobody answers: rejected AB05 at the timeout, the partner told
        _, answer = await _call(run, "GET", f"/v1/payments/{uetr}/messages", "/v1/payments/{uetr}/messages", status=200)
        kinds = {(m["direction"], m["kind"], m["message_type"]) for m in answer["messages"]}
        assert ("received", "signed", "pacs.008.001.13") in kinds or ("received", "partner", "pacs.008.001.13") in kinds
        assert ("sent", "partner", "pacs.002.001.10") in kinds


# ---------------------------------------------------------------- resolve


async def test_an_operator_marks_a_timed_out_payment_rejected_once_and_the_participant_hears_it(
    broker: TansuBroker, store: Store
) -> None:
    async with running_switch(broker, store, SimBehaviour(timeout_rate=1.0), timing=SHORT) as run:
        iid, uetr = await _timed_out(run)
        path, template = f"/v1/payments/{uetr}/resolve", "/v1/payments/{uetr}/resolve"
        mark = {"action": "mark", "state": "REJECTED", "reason_code": "AB05", "note": "ITMX desk: never received"}
        await _call(run, "POST", path, template, role="auditor", body=mark, status=403)
        await _call(run, "POST", path, template, body={**mark, "note": ""}, status=400)
        await _call(run, "POST", path, template, body={**mark, "reason_code": None}, status=400)
        _, answer = await _call(run, "POST", path, template, body=mark, status=200)
        p = answer["payment"]
        assert (p["state"], p["reason_code"], p["final"]) == ("REJECTED", "AB05", True)
        assert p["history"][-1]["detail"].startswith("marked by operator")
        _, again = await _call(run, "POST", path, template, body=mark, status=409)
        assert again["reason_code"] == "AG01"

        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: iid in finals_by_id(rs))
        assert [(e["state"], e["reason_code"]) for e in finals_by_id(statuses)[iid]] == [("REJECTED", "AB05")]
        async with store.reader() as uow:
            entries = await uow.audit_entries(limit=50, newest=True)
        assert any(e.action == "payment.mark" and e.subject == uetr for e in entries)
        assert run.switch.metrics.operator_actions.labels("mark")._value.get() == 1


async def test_an_operator_resends_and_enquires_about_a_timed_out_payment(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store, SimBehaviour(timeout_rate=1.0), timing=SHORT) as run:
        _, uetr = await _timed_out(run)
        path, template = f"/v1/payments/{uetr}/resolve", "/v1/payments/{uetr}/resolve"
        _, resent = await _call(run, "POST", path, template, body={"action": "resend", "note": "partner restarted"}, status=200)
        assert resent["payment"]["state"] == "TIMED_OUT"
        _, enquired = await _call(run, "POST", path, template, body={"action": "enquire", "note": "ask now"}, status=202)
        assert [c["kind"] for c in enquired["payment"]["exceptions"]] == ["enquiry"]
        async with store.reader() as uow:
            actions = {(e.action, e.subject) for e in await uow.audit_entries(limit=50, newest=True)}
        assert {("payment.resend", uetr), ("payment.enquire", uetr)} <= actions
        (completed,) = (await _completed_elsewhere(run))
        _, refused = await _call(run, "POST", f"/v1/payments/{completed}/resolve", template,
                                 body={"action": "mark", "state": "REJECTED", "reason_code": "AB05", "note": "x"}, status=409)
        assert "TIMED_OUT" in refused["error"]
        await _call(run, "POST", f"/v1/payments/{uuid.uuid4()}/resolve", template, body={"action": "resend", "note": "x"}, status=404)


async def _completed_elsewhere(run: Running) -> list[str]:
    """A payment that is not stuck: the simulator answers nothing here, so one is marked
    COMPLETED through the toolbox itself from TIMED_OUT."""
    _, uetr = await _timed_out(run)
    await _call(run, "POST", f"/v1/payments/{uetr}/resolve", "/v1/payments/{uetr}/resolve",
                body={"action": "mark", "state": "COMPLETED", "note": "credited, says the ITMX desk"}, status=200)
    return [uetr]


# ---------------------------------------------------------------- dead letters


async def _dead_letters(run: Running, n: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(settle_s_max):
        while True:
            _, answer = await _call(run, "GET", "/v1/dlq?limit=50", "/v1/dlq", status=200)
            if len(answer["dead_letters"]) >= n:
                return answer["dead_letters"]  # type: ignore[no-any-return]
            await asyncio.sleep(0.2)


async def test_a_dead_letter_is_replayed_once_and_a_hostile_one_is_dead_lettered_again(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run:
        k = run.config.kafka
        await publish(run, [("hostile", b"{not json")])
        (hostile,) = await _dead_letters(run, 1)
        assert (hostile["reason_code"], hostile["source"]["topic"], hostile["truncated"]) == ("FF02", k.instructions_topic, [])
        await _call(run, "GET", "/v1/dlq", "/v1/dlq", role="participant:ACLBKHPPXXX", status=403)
        p, o = hostile["partition"], hostile["offset"]
        _, shown = await _call(run, "GET", f"/v1/dlq/{p}/{o}", "/v1/dlq/{partition}/{offset}", role="auditor", status=200)
        assert shown["value"] == "{not json" and shown["original_headers"]  # the signature's headers, kept for a replay

        await _call(run, "POST", "/v1/dlq/replay", "/v1/dlq/replay", role="auditor", body={"refs": [hostile["ref"]]}, status=403)
        _, first = await _call(run, "POST", "/v1/dlq/replay", "/v1/dlq/replay", body={"refs": [hostile["ref"]]}, status=200)
        assert [r["outcome"] for r in first["results"]] == ["replayed"]
        again = await _dead_letters(run, 2)  # it went through the checks again and failed them again
        assert [d["reason_code"] for d in again] == ["FF02", "FF02"] and again[0]["ref"] != hostile["ref"]
        _, second = await _call(run, "POST", "/v1/dlq/replay", "/v1/dlq/replay", body={"refs": [hostile["ref"]]}, status=200)
        assert [r["outcome"] for r in second["results"]] == ["already_replayed"]
        assert "already replayed" in second["results"][0]["detail"]
        _, shown = await _call(run, "GET", f"/v1/dlq/{p}/{o}", "/v1/dlq/{partition}/{offset}", status=200)
        assert shown["replay"]["state"] == "replayed"
        m = run.switch.metrics.dlq_replayed
        assert (m.labels("replayed")._value.get(), m.labels("already_replayed")._value.get()) == (1, 1)


async def _write_dead_letter(run: Running, value: bytes, key: bytes, *, cut: bool = False) -> None:
    """A dead letter as the consumer writes one (kafka_consumer.dead_letter_record), of a record
    the switch takes now: dead-lettered before for a cause since fixed."""
    record = ConsumerRecord(run.config.kafka.instructions_topic, 0, 10_000, 0, 0, key, value, None, len(key), len(value), signed(value))
    dl = dead_letter_record(DeadLetter(record, "a cause since fixed", "FF01", DlqReason.UNREADABLE), value_bytes_max=5 if cut else 10**6)
    producer = AIOKafkaProducer(bootstrap_servers=run.config.kafka.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(run.config.kafka.dlq_topic, value=dl.value, key=dl.key, headers=dl.headers)
    finally:
        await producer.stop()


async def test_a_fixed_dead_letter_replayed_becomes_a_payment_and_a_truncated_one_is_refused(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run:
        iid = f"R{uuid.uuid4().hex[:10]}"
        value = json.dumps(instruction(iid, creditor=ACCOUNT)).encode()
        await _write_dead_letter(run, value, iid.encode())
        await _write_dead_letter(run, value, b"cut", cut=True)
        letters = await _dead_letters(run, 2)
        whole = next(d for d in letters if not d["truncated"])
        cut = next(d for d in letters if d["truncated"])
        _, answer = await _call(run, "POST", "/v1/dlq/replay", "/v1/dlq/replay", body={"refs": [whole["ref"], cut["ref"], "0:999999"]}, status=200)
        outcomes = {r["ref"]: r["outcome"] for r in answer["results"]}
        assert outcomes == {whole["ref"]: "replayed", cut["ref"]: "truncated", "0:999999": "not_found"}
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: iid in finals_by_id(rs))
        assert [e["state"] for e in finals_by_id(statuses)[iid]] == ["COMPLETED"]  # its signature verified again

        result = await asyncio.to_thread(
            CliRunner().invoke, cli_main,
            ["dlq", "replay", whole["ref"], "--url", run.url, "--token", run.tokens["operator"], "--pki-dir", str(pki_dir())],
        )
        assert result.exit_code == 1 and "already_replayed" in result.output


# ---------------------------------------------------------------- OpenAPI


async def test_the_openapi_document_is_served_to_any_authenticated_role(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run:
        for role in ("operator", "auditor", "participant:ACLBKHPPXXX"):
            async with run.ops_session() as http, http.get(f"{run.url}/v1/openapi.json", headers=run.auth_as(role)) as resp:
                assert resp.status == 200 and await resp.read() == openapi_document()
        async with run.ops_session(client="monitor") as http, http.get(f"{run.url}/v1/openapi.json") as resp:  # its certificate
            assert resp.status == 200 and await resp.read() == openapi_document()
        async with run.ops_session(client=None) as http, http.get(f"{run.url}/v1/openapi.json") as resp:
            assert resp.status == 401
            check("get", "/v1/openapi.json", 401, await resp.json())
        for path in ("/healthz", "/readyz"):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=run.ops_ssl(None))) as http, http.get(f"{run.url}{path}") as resp:
                check("get", path, resp.status, await resp.json())
