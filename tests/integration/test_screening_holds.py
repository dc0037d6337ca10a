"""Screening holds through the SQL store on SQLite and PostgreSQL (issue 12): the hold row written
with the held payment, release and reject through the bus and the operations API (operators decide,
auditors read, participants are refused), two concurrent decisions (one wins, the other is told),
a stale version refused by the store, the deadline expiring a hold, an inbound hold released and
rejected; every answer checked against the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from iso20022.schemas import SchemaSet
from switch.domain.errors import ConcurrentUpdate
from switch.domain.payment import PaymentState
from switch.entrypoints.api_auth import ApiToken, ApiTokens, new_token, token_hash
from switch.entrypoints.http_app import build_ops_app
from switch.service.bus import MessageBus
from switch.service.follow_up import FollowUpPayments
from switch.service.handlers import AcceptInstructions, Deps
from switch.service.holds import RejectHeld, ReleaseHeld
from switch.service.inbound import AcceptInbound
from switch.service.screening import screen_instructions, screen_transfers
from switch.store.sql_store import Store
from tests.factories import sample_instruction
from tests.fakes import INBOUND_TRANSFER, FakeClock, FakeScreener, deps_from_config, parsed_instruction
from tests.openapi_contract import check

S = PaymentState
ROLES = ("operator", "auditor", "participant:ACLBKHPPXXX")
CREDITOR = "Somchai Jaidee"  # the sample instruction's creditor


async def _ready() -> tuple[dict[str, bool], dict[str, Any]]:
    return {"database": True}, {}


async def _no_gauges() -> None:
    return None


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]
    bus: MessageBus
    store: Store
    deps: Deps
    clock: FakeClock
    screener: FakeScreener

    async def call(self, method: str, path: str, template: str, *, role: str = "operator", body: Any = None,
                   status: int | None = None) -> Any:
        async with self.client.request(method, path, headers={"Authorization": f"Bearer {self.tokens[role]}"}, json=body) as resp:
            answer = await resp.json()
            check(method, template, resp.status, answer)
            if status is not None:
                assert resp.status == status, answer
            return answer

    async def held(self, instruction_id: str) -> str:
        items = [parsed_instruction(sample_instruction(instruction_id=instruction_id), source_ref=f"t:0:{instruction_id}")]
        screenings = await screen_instructions(self.screener, items)
        out = await self.bus.handle(AcceptInstructions(items, screenings=screenings))
        assert out.counts == {"held": 1}
        ((uetr, _, _),) = out.admissions.values()
        assert uetr is not None
        return uetr

    async def payment(self, uetr: str) -> Any:
        async with self.store.reader() as uow:
            return (await uow.payments_get([uetr]))[uetr]


@pytest.fixture
async def api(store: Store, schemas: SchemaSet) -> AsyncIterator[Api]:
    tokens = {role: new_token() for role in ROLES}
    entries = [ApiToken(name=f"t{i}", role=role, sha256=token_hash(t)) for i, (role, t) in enumerate(tokens.items())]
    clock = FakeClock()
    deps = deps_from_config(schemas, clock)
    screener = FakeScreener({CREDITOR: 0.91, INBOUND_TRANSFER.creditor_name: 0.8})
    deps.screener = screener
    bus = MessageBus(store, deps, on_commit=lambda _: None, metrics=deps.metrics)
    app = build_ops_app(bus, readiness=_ready, refresh_gauges=_no_gauges, api_tokens=ApiTokens(entries))
    async with TestClient(TestServer(app)) as client:
        yield Api(client, tokens, bus, store, deps, clock, screener)


async def test_a_held_payment_is_listed_shown_and_released_by_an_operator_not_an_auditor(api: Api) -> None:
    uetr = await api.held("H1")
    async with api.store.reader() as uow:
        hold = (await uow.holds_get([uetr]))[uetr]
        assert (hold.outcome, hold.score, hold.entry_id, hold.role, hold.decision) == ("hit", 0.91, f"E-{CREDITOR}", "creditor", None)
        assert await uow.holds_open_count() == 1
        assert [m.kind for m in await uow.outbox_by_message_ids("partner", [(await uow.payments_get([uetr]))[uetr].message_id])] == []
    listed = await api.call("GET", "/v1/screening/holds", "/v1/screening/holds", role="auditor", status=200)
    (row,) = listed["holds"]
    assert (row["uetr"], row["state"], row["score"], row["entry_id"], row["decision"]) == (uetr, "HELD", 0.91, f"E-{CREDITOR}", None)
    shown = await api.call("GET", f"/v1/screening/holds/{uetr}", "/v1/screening/holds/{uetr}", role="auditor", status=200)
    assert shown["deadline_at"] == row["deadline_at"]
    await api.call("GET", "/v1/screening/holds", "/v1/screening/holds", role="participant:ACLBKHPPXXX", status=403)
    await api.call("POST", f"/v1/screening/holds/{uetr}/release", "/v1/screening/holds/{uetr}/release", role="auditor",
                   body={"note": "x"}, status=403)
    refused = await api.call("POST", f"/v1/screening/holds/{uetr}/release", "/v1/screening/holds/{uetr}/release",
                             body={"note": " "}, status=400)
    assert refused["reason_code"] == "FF01"
    api.clock.advance(120)
    released = await api.call("POST", f"/v1/screening/holds/{uetr}/release", "/v1/screening/holds/{uetr}/release",
                              body={"note": "other person"}, status=200)
    assert (released["decision"], released["state"], released["note"]) == ("released", "QUOTED", "other person")
    p = await api.payment(uetr)
    assert p.state is S.QUOTED
    async with api.store.reader() as uow:
        (sent,) = await uow.outbox_by_message_ids("partner", [p.message_id])
        assert sent.uetrs == (uetr,) and b"<UETR>" + uetr.encode() in sent.body
        assert (await uow.history_of(uetr))[-1].from_state is S.HELD
        assert await uow.holds_open_count() == 0
    again = await api.call("POST", f"/v1/screening/holds/{uetr}/reject", "/v1/screening/holds/{uetr}/reject",
                           body={"note": "late"}, status=409)
    assert "already released" in again["error"]
    closed = await api.call("GET", "/v1/screening/holds?open=false", "/v1/screening/holds", status=200)
    assert [h["decision"] for h in closed["holds"]] == ["released"]
    await api.call("GET", "/v1/screening/holds/00000000-0000-4000-8000-000000000000", "/v1/screening/holds/{uetr}", status=404)


async def test_two_operators_deciding_at_once_one_wins_and_the_other_is_told(api: Api) -> None:
    uetr = await api.held("H2")
    first, second = await asyncio.gather(
        api.bus.handle(ReleaseHeld(uetr, "alice", "cleared")), api.bus.handle(RejectHeld(uetr, "bob", "match"))
    )
    outcomes = [o for o in (first, second) if not o.refusals]
    refused = [o for o in (first, second) if o.refusals]
    assert len(outcomes) == 1 and len(refused) == 1
    assert refused[0].refusals[0][0] == "AG01" and "already" in refused[0].refusals[0][1]
    async with api.store.reader() as uow:
        hold = (await uow.holds_get([uetr]))[uetr]
        assert hold.version == 2 and hold.decision in ("released", "rejected")
    async with api.store.unit_of_work() as uow:  # a writer that read the hold before the decision
        with pytest.raises(ConcurrentUpdate):
            await uow.holds_update([(1, replace(hold, decision="rejected", version=2))])


async def test_a_rejected_hold_is_rr04_and_an_unanswered_one_expires_at_its_deadline(api: Api) -> None:
    rejected, expiring = await api.held("H3"), await api.held("H4")
    answer = await api.call("POST", f"/v1/screening/holds/{rejected}/reject", "/v1/screening/holds/{uetr}/reject",
                            body={"note": "confirmed"}, status=200)
    assert answer["decision"] == "rejected"
    p = await api.payment(rejected)
    assert (p.state, p.reason_code) == (S.REJECTED, "RR04")
    api.clock.advance(api.deps.config.screening.hold_deadline_s + 1)
    out = await api.bus.handle(FollowUpPayments())
    assert out.counts.get("holds_expired") == 1
    p = await api.payment(expiring)
    assert (p.state, p.reason_code, p.follow_up_at) == (S.REJECTED, "RR04", None)
    shown = await api.call("GET", f"/v1/screening/holds/{expiring}", "/v1/screening/holds/{uetr}", status=200)
    assert (shown["decision"], shown["decided_by"]) == ("expired", "system")
    async with api.store.reader() as uow:
        events = [json.loads(m.body) for m in await uow.payment_messages(p, [p.updated_at], 5.0, 50) if m.kind == "status"]
    assert events and events[-1]["reason_code"] == "RR04"


async def test_an_inbound_hold_is_released_to_its_participant_or_rejected_to_its_partner(api: Api) -> None:
    second = replace(INBOUND_TRANSFER, uetr="1c0e7d4f-2a3b-4c5d-9e8f-0a1b2c3d4e5f", end_to_end_id="E1c0e7d4f")
    for i, t in enumerate((INBOUND_TRANSFER, second)):
        screenings = await screen_transfers(api.screener, "promptpay", [t])
        cmd = AcceptInbound("promptpay", f"M{i}", "pacs.008.001.13", f"m{i}".encode(), (t,), screenings)
        # dispatched in a transaction of its own: the group-commit loop the bus feeds does not run here
        out = await api.bus.in_transaction(lambda uow, cmd=cmd: api.bus.dispatch(cmd, uow), name="AcceptInbound")
        assert out.counts == {"held": 1} and out.status_outbox == [] and out.partner_outbox == []
    released = await api.call("POST", f"/v1/screening/holds/{INBOUND_TRANSFER.uetr}/release",
                              "/v1/screening/holds/{uetr}/release", body={"note": "ok"}, status=200)
    assert released["state"] == "SUBMITTED" and released["direction"] == "inbound"
    await api.call("POST", f"/v1/screening/holds/{second.uetr}/reject", "/v1/screening/holds/{uetr}/reject",
                   body={"note": "match"}, status=200)
    async with api.store.reader() as uow:
        published = await uow.outbox_by_message_ids("status", [f"I{INBOUND_TRANSFER.uetr.replace('-', '')}"])
        assert len(published) == 1 and published[0].destination == api.deps.config.kafka.inbound_topic
        (answer,) = await uow.outbox_by_message_ids("partner", [f"R{second.uetr.replace('-', '')}"])
        assert b"<TxSts>RJCT</TxSts>" in answer.body and b"<Cd>RR04</Cd>" in answer.body and b"match" not in answer.body


async def test_the_list_reloads_through_the_api_and_is_audited(api: Api) -> None:
    answer = await api.call("POST", "/v1/screening/reload", "/v1/screening/reload", status=200)
    assert answer["applied"] is True and api.screener.reloads == 1
    await api.call("POST", "/v1/screening/reload", "/v1/screening/reload", role="auditor", status=403)
    api.deps.screener = None
    off = await api.call("POST", "/v1/screening/reload", "/v1/screening/reload", status=503)
    assert off["reason_code"] == "FF01"


async def test_the_shipped_embedded_list_holds_a_listed_creditor_through_the_edge_helpers(schemas: SchemaSet) -> None:
    from switch.screening import build_screener
    from switch.service.handlers import accept_instructions
    from tests.fakes import FakeUnitOfWork

    deps = deps_from_config(schemas, FakeClock())
    screener = build_screener(deps.config)  # the embedded matcher and the demo list, as shipped
    assert screener is not None
    doc = sample_instruction(instruction_id="L1")
    doc["creditor"]["name"] = "Chhuon Sovannarith"  # an alias of the demo list's first entry
    items = [parsed_instruction(doc, source_ref="r:0:1"), parsed_instruction(sample_instruction(instruction_id="L2"), source_ref="r:0:2")]
    screenings = await screen_instructions(screener, items)
    uow = FakeUnitOfWork()
    out = await accept_instructions(AcceptInstructions(items, screenings=screenings), uow, deps)
    assert out.counts == {"held": 1, "admitted": 1}
    (held,) = uow.state.holds.values()
    assert held.entry_id == "mk-kh-001" and held.role == "creditor" and held.score is not None and held.score >= 0.7
