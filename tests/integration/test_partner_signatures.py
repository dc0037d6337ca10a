"""Signed business application headers on the partner edge (real switch, real broker, each
database, mutual TLS, real XML signatures): who may move a payment is decided by the signature on
the message, on top of the TLS certificate. Every forgery here comes over PromptPay's own TLS
connection, so only the signature can stop it: a pacs.002 altered after PromptPay signed it,
one signed with LAPNet's key, a known BizMsgIdr replayed with another Document, one with no
header at all. Each is refused with its reason code, counted, audited, and changes nothing
(payment, history, outbox, idempotency keys, inbound and signed-message records); the control,
a pacs.002 PromptPay signed, is applied. Outbound, every attempt is signed afresh around the same
stored Document, and the simulator (playing the network) refuses what the hub did not sign."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from adapters.simulator import SimBehaviour
from adapters.transport import HttpPartnerTransport
from iso20022 import apphdr
from iso20022.parsing import parse_untrusted
from switch.broker import TansuBroker, free_port
from switch.domain.payment import PaymentState
from switch.service import audit
from switch.signing import HUB, Counterpart, Sealer
from switch.store import tables
from switch.store.sql_store import Store
from switch.tls import operator_client_context
from tests.integration.harness import Running, partner_session, partner_signing, pki_dir, running_switch, signed_as
from tests.integration.test_audit_edges import entries
from tests.integration.test_partner_tls import silent_payment, snapshot

H = apphdr.HEAD_NAMESPACE


async def _state(store: Store, uetr: str) -> PaymentState:
    async with store.reader() as uow:
        return (await uow.payments_get([uetr]))[uetr].state


async def _post_as_promptpay(run: Running, body: bytes) -> tuple[int, dict[str, Any]]:
    """Over PromptPay's own TLS connection (its certificate): only the signature can tell."""
    async with partner_session("promptpay") as http, http.post(f"{run.partner_url}/iso20022/promptpay", data=body) as resp:
        return resp.status, await resp.json()


async def _refusals(run: Running) -> str:
    async with run.ops_session() as http, http.get(f"{run.url}/metrics") as resp:
        return "\n".join(line for line in (await resp.text()).splitlines() if line.startswith("switch_security_refusals_total{"))


async def _refused_and_nothing_changed(
    run: Running, store: Store, uetr: str, body: bytes, *, status: int, reason_code: str, reason: str
) -> dict[str, Any]:
    before = await snapshot(store, uetr)
    assert before["state"] is PaymentState.SUBMITTED
    got, answer = await _post_as_promptpay(run, body)
    assert (got, answer["reason_code"]) == (status, reason_code), answer
    await asyncio.sleep(0.5)  # anything the forgery set off would show by now
    assert await snapshot(store, uetr) == before
    assert f'switch_security_refusals_total{{edge="partner_port",reason="{reason}"}} 1.0' in await _refusals(run)
    refused = [e for e in await entries(store, audit.HTTP_REFUSED) if e.detail["reason_code"] == reason_code]
    assert [(e.subject, e.detail["status"]) for e in refused] == [("/iso20022/promptpay", status)]
    assert refused[0].detail["error"] == answer["error"][:200]
    return answer


async def test_a_pacs002_promptpay_signed_is_applied(broker: TansuBroker, store: Store) -> None:
    """The control: the forgeries below differ from this only where they say."""
    async with running_switch(broker, store) as run:
        uetr, report = await silent_payment(run)
        status, answer = await _post_as_promptpay(run, signed_as("promptpay", report))
        assert (status, answer["applied"]) == (200, 1), answer
        assert await _state(store, uetr) is PaymentState.COMPLETED
        async with store.reader() as uow:  # the signed envelope is kept, as it came, for later proof
            kept = await uow.run_sync(lambda conn: conn.execute(select(tables.signed_messages)).all())
        assert [(r.partner, r.biz_msg_id, r.message_type) for r in kept] == [("promptpay", answer["message_id"], "pacs.002.001.10")]
        assert b"<ds:SignatureValue>" in kept[0].envelope


async def test_a_pacs002_altered_after_promptpay_signed_it_is_refused(broker: TansuBroker, store: Store) -> None:
    """A reject turned into an acceptance on the way: the signature no longer matches."""
    async with running_switch(broker, store) as run:
        uetr, report = await silent_payment(run, answer=SimBehaviour(reject_rate=1.0, reject_codes=("AC04",)))
        signed = signed_as("promptpay", report)
        assert b"<TxSts>RJCT</TxSts>" in signed
        forged = signed.replace(b"<TxSts>RJCT</TxSts>", b"<TxSts>ACSC</TxSts>")
        answer = await _refused_and_nothing_changed(run, store, uetr, forged, status=403, reason_code="DS0B", reason="bad_signature")
        assert "altered" in answer["error"]


async def test_a_pacs002_signed_with_another_partners_key_is_refused(broker: TansuBroker, store: Store) -> None:
    """LAPNet's signing key, LAPNet's certificate in KeyInfo, Fr naming PromptPay, sent over
    PromptPay's TLS connection: checked against PromptPay's configured certificate, refused."""
    async with running_switch(broker, store) as run:
        uetr, report = await silent_payment(run)
        promptpay, lapnet = partner_signing("promptpay"), partner_signing("lapnet")
        impostor = Sealer(lapnet.key, promptpay.me, promptpay.counterparts)
        forged = impostor.seal(HUB, report, now=datetime.now(timezone.utc))
        answer = await _refused_and_nothing_changed(run, store, uetr, forged, status=403, reason_code="DS0E", reason="wrong_key")
        assert "lapnet" in answer["error"]


async def test_a_known_bizmsgidr_replayed_with_another_document_is_refused_and_its_resend_is_not_reapplied(
    broker: TansuBroker, store: Store
) -> None:
    """PromptPay's signed pacs.002 completes one payment; then a Document under the same message
    id, also signed with PromptPay's key, names a second payment: a replay, refused DU01. The
    first message itself sent again (signed anew, the same Document) is a resend: answered, not
    applied twice."""
    async with running_switch(broker, store) as run:
        first_uetr, first = await silent_payment(run)
        status, answer = await _post_as_promptpay(run, signed_as("promptpay", first))
        assert (status, answer["applied"]) == (200, 1)
        message_id = answer["message_id"]
        second_uetr, second = await silent_payment(run)
        second_id = parse_untrusted(second).findtext(".//{*}GrpHdr/{*}MsgId")
        assert second_id and second_id != message_id
        replay = second.replace(f"<MsgId>{second_id}</MsgId>".encode(), f"<MsgId>{message_id}</MsgId>".encode())
        await _refused_and_nothing_changed(
            run, store, second_uetr, signed_as("promptpay", replay), status=409, reason_code="DU01", reason="replayed"
        )
        before = await snapshot(store, first_uetr)
        status, answer = await _post_as_promptpay(run, signed_as("promptpay", first, now=datetime.now(timezone.utc) + timedelta(seconds=5)))
        assert (status, answer.get("applied", 0), answer.get("duplicate_message")) == (200, 0, 1), answer
        assert await snapshot(store, first_uetr) == before


async def test_a_pacs002_without_a_header_is_refused(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run:
        uetr, report = await silent_payment(run)
        answer = await _refused_and_nothing_changed(run, store, uetr, report, status=400, reason_code="DS0A", reason="no_header")
        assert "business application header" in answer["error"]


async def test_a_pacs002_with_a_stale_credt_is_refused(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run:
        uetr, report = await silent_payment(run)
        stale = signed_as("promptpay", report, now=datetime.now(timezone.utc) - timedelta(minutes=10))
        await _refused_and_nothing_changed(run, store, uetr, stale, status=400, reason_code="DT02", reason="credt_outside_window")


async def test_the_simulator_refuses_a_pacs008_the_hub_did_not_sign(broker: TansuBroker, store: Store) -> None:
    """The network's side: a pacs.008 over the hub's own TLS certificate but bare, or signed with
    a partner's key, is refused 4xx and decides nothing; the switch's own signed one is taken."""
    async with running_switch(broker, store) as run:
        await silent_payment(run)
        document = run.sim.samples["pacs008"]
        decided = run.sim.stats["accepted"]
        url = f"https://127.0.0.1:{run.sim_port}/iso20022"
        lapnet, itmx = partner_signing("lapnet"), partner_signing("promptpay").me
        as_hub = Sealer(lapnet.key, apphdr.Party(bicfi="NBCAKHPPXXX"), {"promptpay": Counterpart(itmx, (), 300)})
        bodies = {
            "bare": (document, 400, "DS0A"),
            "another key": (as_hub.seal("promptpay", document, now=datetime.now(timezone.utc)), 403, "DS0E"),
        }
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=operator_client_context(pki_dir()))) as http:
            for body, status, code in bodies.values():
                async with http.post(url, data=body) as resp:
                    assert (resp.status, (await resp.json())["reason_code"]) == (status, code)
        assert run.sim.stats["accepted"] == decided
        assert (run.sim.stats["refused_no_header"], run.sim.stats["refused_wrong_key"]) == (1, 1)


async def test_every_attempt_is_signed_afresh_around_the_same_stored_document(schemas: Any) -> None:
    """The relay's transport seals at send time: two attempts of one stored pacs.008 carry two
    CreDt and two signatures, the second flagged as a possible duplicate, and byte for byte the
    same Document, which the network opens to the same digest (its resend rule holds)."""
    received: list[bytes] = []

    async def take(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({}, status=202)

    app = web.Application()
    app.router.add_post("/iso20022", take)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    hub = partner_signing("promptpay")  # for the network's side: checks the hub's signature
    switch_side = _hub_sealer()
    clock = iter([datetime.now(timezone.utc), datetime.now(timezone.utc) + timedelta(seconds=2)])
    document = _stored_pacs008()
    try:
        async with aiohttp.ClientSession() as session:
            transport = HttpPartnerTransport(
                session, f"http://127.0.0.1:{port}", timeout_s=5, inflight_max=2,
                seal=lambda doc, duplicate: switch_side.seal("promptpay", doc, now=next(clock), possible_duplicate=duplicate),
            )
            for duplicate in (False, True):
                assert (await transport.submit(document, message_id="M1", possible_duplicate=duplicate)).outcome.value == "ok"
    finally:
        await runner.cleanup()
    first, second = (parse_untrusted(body) for body in received)
    credt = [r.findtext(f"{{{H}}}AppHdr/{{{H}}}CreDt") for r in (first, second)]
    signature = [r.findtext(f".//{{{apphdr.DS_NAMESPACE}}}SignatureValue") for r in (first, second)]
    assert credt[0] != credt[1] and signature[0] != signature[1]
    assert [r.findtext(f"{{{H}}}AppHdr/{{{H}}}PssblDplct") for r in (first, second)] == [None, "true"]
    stored = document.split(b"?>", 1)[1].strip()
    assert all(stored in body for body in received)
    now = datetime.now(timezone.utc)
    opened = [hub.open(HUB, r, schemas=schemas, now=now) for r in (first, second)]
    assert opened[0].document_sha256 == opened[1].document_sha256


def _hub_sealer() -> Sealer:
    """The switch's side, as the composition root loads it from the session's PKI."""
    from switch.config import DEFAULT_CONFIG_DIR
    from adapters.base import load_profile
    from switch.signing import load_switch_signing

    profile = load_profile(DEFAULT_CONFIG_DIR / "partners" / "promptpay.toml")
    return load_switch_signing(pki_dir(), "NBCAKHPPXXX", {"promptpay": profile.signing})


def _stored_pacs008() -> bytes:
    from switch.config import PROJECT_ROOT

    return (PROJECT_ROOT / "adapters/promptpay/fixtures/pacs008_khr_mobile.xml").read_bytes()


@pytest.mark.parametrize("insecure_dev", [False, True], ids=["signed", "insecure_dev"])
async def test_readyz_and_the_log_say_whether_messages_are_signed(
    broker: TansuBroker, store: Store, insecure_dev: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="switch.entrypoints.main"):
        async with running_switch(broker, store, insecure_dev=insecure_dev) as run, run.ops_session() as http:
            async with http.get(f"{run.url}/readyz") as resp:
                ready = await resp.json()
    every = ["lapnet", "napas", "promptpay", "unionpay"]  # the shipped profiles all sign
    assert ready["signatures"] == ([] if insecure_dev else every)
    warned = any("neither signed nor checked" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert warned is insecure_dev
    (up,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("switch up")]
    assert up.endswith("signatures OFF" if insecure_dev else "signatures " + ", ".join(every))
