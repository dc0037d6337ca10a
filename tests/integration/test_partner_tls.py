"""Mutual TLS on the partner edge (real switch, real broker, each database): who may speak for a
partner is decided by its certificate. A client without a certificate, or with one from a CA no
partner uses, is refused at the handshake; another partner's certificate, or a certificate whose
key is not the pinned one, gets a 403 and changes nothing (payment, history, outbox, inbound
messages); the switch refuses a server at a partner's address that is not that partner (the
delivery fails as a connection error and the payment is not rejected for it)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import ssl
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from adapters.simulator import SimBehaviour
from iso20022 import pacs008
from iso20022.parsing import message_id_of, parse_untrusted
from switch.broker import TansuBroker
from switch.domain.payment import PaymentState
from switch.pki import make_ca, make_leaf, partner_cn
from switch.store import tables
from switch.store.sql_store import Store
from switch.tls import HUB_CA, client_context
from tests.integration.harness import Running, partner_session, pki_dir, running_switch, signed_as
from tests.integration.test_pipeline import instruction, publish

wait_s_max = 30.0


async def until(predicate: Any, timeout_s: float = wait_s_max) -> None:
    async with asyncio.timeout(timeout_s):
        while not await predicate():
            await asyncio.sleep(0.05)


async def snapshot(store: Store, uetr: str) -> dict[str, Any]:
    """Everything a forged status could change: the payment, its history, the outbox, the
    idempotency keys, the inbound messages and the signed messages kept."""
    counted = (tables.payments, tables.payment_history, tables.outbox, tables.instructions, tables.inbound_messages, tables.signed_messages)
    async with store.reader() as uow:
        payment = (await uow.payments_get([uetr]))[uetr]
        history = await uow.history_of(uetr)
        counts = await uow.run_sync(
            lambda conn: {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in counted}
        )
    return {"state": payment.state, "version": payment.version, "history": len(history), **counts}


async def silent_payment(run: Running, *, answer: SimBehaviour | None = None) -> tuple[str, bytes]:
    """A payment the partner took and has not answered (it stays SUBMITTED), and the pacs.002 it
    would send for it (`answer`: accepted by default): the forgery's body."""
    run.sim.behaviour = SimBehaviour(timeout_rate=1.0)
    run.sim.samples.pop("pacs008", None)
    iid = f"T{uuid.uuid4().hex[:10]}"
    await publish(run, [(iid, json.dumps(instruction(iid)).encode())])

    async def received() -> bool:
        return "pacs008" in run.sim.samples

    await until(received)
    root = parse_untrusted(run.sim.samples["pacs008"])
    message = pacs008.parse(root)
    run.sim.behaviour = answer or SimBehaviour()
    decision, statuses = run.sim._decide(message, message_id_of(root))
    assert decision is not None and len(statuses) == 1
    (uetr,) = statuses

    async def submitted() -> bool:  # the switch has heard the partner take it (202)
        async with run.switch.store.reader() as uow:
            return (await uow.payments_get([uetr]))[uetr].state is PaymentState.SUBMITTED

    await until(submitted)
    return uetr, decision.report


def _certificate_files(directory: Path, issued: Any, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    cert.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, key


async def _refusals(run: Running) -> str:
    async with run.ops_session() as http, http.get(f"{run.url}/metrics") as resp:
        return "\n".join(line for line in (await resp.text()).splitlines() if line.startswith("switch_security_refusals_total{"))


async def test_a_client_without_a_certificate_is_refused_at_the_handshake(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run:
        no_certificate = ssl.create_default_context(cafile=str(pki_dir() / HUB_CA))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=no_certificate)) as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.post(f"{run.partner_url}/iso20022/promptpay", data=b"<Document/>") as resp:
                    await resp.read()
        async with aiohttp.ClientSession() as http:  # nor does plain HTTP reach the partner endpoint
            with pytest.raises(aiohttp.ClientError):
                async with http.post(f"http://127.0.0.1:{run.switch.http_port}/iso20022/promptpay", data=b"<Document/>") as resp:
                    await resp.read()


async def test_a_certificate_from_an_unknown_ca_is_refused_at_the_handshake(
    broker: TansuBroker, store: Store, tmp_path: Path
) -> None:
    now = datetime.now(timezone.utc)
    rogue_ca = make_ca("rogue CA", "rogue", now=now)
    # the right name, the wrong issuer
    cert, key = _certificate_files(tmp_path, make_leaf(rogue_ca, partner_cn("promptpay"), "rogue", now=now), "rogue")
    async with running_switch(broker, store) as run:
        rogue = client_context(cert, key, pki_dir() / HUB_CA)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=rogue)) as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.post(f"{run.partner_url}/iso20022/promptpay", data=b"<Document/>") as resp:
                    await resp.read()


async def test_another_partners_certificate_cannot_complete_a_promptpay_payment(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run:
        uetr, forged = await silent_payment(run)
        before = await snapshot(store, uetr)
        assert before["state"] is PaymentState.SUBMITTED
        async with partner_session("lapnet") as lapnet:
            async with lapnet.post(f"{run.partner_url}/iso20022/promptpay", data=forged) as resp:
                answer = await resp.json()
        assert (resp.status, answer["reason_code"]) == (403, "AG01"), answer
        assert "lapnet" in answer["error"]
        await asyncio.sleep(0.5)  # anything the forgery set off would show by now
        assert await snapshot(store, uetr) == before
        assert 'switch_security_refusals_total{edge="partner_port",reason="partner_mismatch"} 1.0' in await _refusals(run)


async def test_the_partners_own_certificate_completes_the_same_payment(broker: TansuBroker, store: Store) -> None:
    """The control for the forgery above: the same body from PromptPay's certificate (signed with
    its key, as everything PromptPay sends) is applied."""
    async with running_switch(broker, store) as run:
        uetr, report = await silent_payment(run)
        async with partner_session("promptpay") as promptpay:
            async with promptpay.post(f"{run.partner_url}/iso20022/promptpay", data=signed_as("promptpay", report)) as resp:
                assert resp.status == 200, await resp.text()
        assert (await snapshot(store, uetr))["state"] is PaymentState.COMPLETED


def _config_with_pin(tmp_path: Path, partner: str, pin: str) -> Path:
    config_dir = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config_dir)
    profile = config_dir / "partners" / f"{partner}.toml"
    head, tls_line, rest = profile.read_text().partition("\n[tls]")
    assert tls_line, f"{profile} has no [tls] section"
    first, _, others = rest.partition("\n")
    profile.write_text(f'{head}{tls_line}{first}\nspki_sha256 = ["{pin}"]\n{others}')
    return config_dir


def _pinned(partner: str) -> str:
    manifest = json.loads((pki_dir() / "manifest.json").read_text())
    return next(c["spki_sha256"] for c in manifest["certificates"] if c["owner"] == partner and c["kind"] == "tls")


async def test_a_certificate_whose_key_is_not_the_pinned_one_is_refused(
    broker: TansuBroker, store: Store, tmp_path: Path
) -> None:
    """PromptPay's profile pins a key other than the one its certificate carries (as after a
    certificate swapped by someone holding the CA): right name, right CA, refused."""
    config_dir = _config_with_pin(tmp_path, "promptpay", "0" * 64)
    async with running_switch(broker, store, config_dir=config_dir) as run:
        uetr, report = await silent_payment(run)
        before = await snapshot(store, uetr)
        async with partner_session("promptpay") as promptpay:
            async with promptpay.post(f"{run.partner_url}/iso20022/promptpay", data=report) as resp:
                answer = await resp.json()
        assert (resp.status, answer["reason_code"]) == (403, "AG01"), answer
        assert await snapshot(store, uetr) == before
        assert 'reason="unknown_identity"} 1.0' in await _refusals(run)


async def test_the_pinned_key_is_accepted(broker: TansuBroker, store: Store, tmp_path: Path) -> None:
    config_dir = _config_with_pin(tmp_path, "promptpay", _pinned("promptpay"))
    async with running_switch(broker, store, config_dir=config_dir) as run:
        iid = f"P{uuid.uuid4().hex[:10]}"
        await publish(run, [(iid, json.dumps(instruction(iid)).encode())])
        await until(lambda: _completed(store, iid))


async def test_a_server_with_another_networks_certificate_gets_nothing_and_the_payment_waits(
    broker: TansuBroker, store: Store
) -> None:
    """LAPNet's certificate at PromptPay's address: the switch does not trust it for PromptPay, the
    handshake fails, nothing is sent; the delivery is a connection error to retry, not a reject."""
    async with running_switch(broker, store, sim_certificate_of="lapnet") as run:
        iid = f"I{uuid.uuid4().hex[:10]}"
        await publish(run, [(iid, json.dumps(instruction(iid)).encode())])

        async def failed_to_connect() -> bool:
            return run.switch.metrics.delivery_failures.labels("partner", "connection_error")._value.get() >= 1

        await until(failed_to_connect)
        assert run.sim.stats["received"] == 0
        async with store.reader() as uow:
            payment = await uow.payment_by_instruction("ACLBKHPPXXX", iid)
        # not sent, not rejected: it waits in the relay for a partner that is PromptPay, until its SLA
        assert payment is not None and payment.state is PaymentState.QUOTED


async def test_insecure_dev_is_plain_http_and_says_so_loudly(
    broker: TansuBroker, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="switch.entrypoints.main"):
        async with running_switch(broker, store, insecure_dev=True) as run:
            async with aiohttp.ClientSession() as http:
                assert run.url.startswith("http://")  # the operations port is plain HTTP too
                async with http.get(f"{run.url}/readyz") as resp:
                    assert (await resp.json())["insecure_dev"] is True
                async with http.get(f"{run.url}/v1/payments/{uuid.uuid4()}") as resp:
                    assert resp.status == 401  # and still wants a token
                async with http.post(f"{run.partner_url}/iso20022/promptpay", data=b"not xml") as resp:
                    assert resp.status == 400  # read and refused as XML: no certificate asked for
            iid = f"H{uuid.uuid4().hex[:10]}"
            await publish(run, [(iid, json.dumps(instruction(iid)).encode())])
            await until(lambda: _completed(store, iid))
    assert any("INSECURE DEV MODE" in r.getMessage() and "operations port" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


async def test_readyz_says_when_tls_is_on(broker: TansuBroker, store: Store) -> None:
    async with running_switch(broker, store) as run, run.ops_session(None) as http:
        async with http.get(f"{run.url}/readyz") as resp:
            assert (await resp.json())["insecure_dev"] is False
        async with http.post(f"{run.url}/iso20022/promptpay", data=b"<Document/>") as resp:
            assert resp.status == 404  # the operations port has no partner endpoint


async def _completed(store: Store, iid: str) -> bool:
    async with store.reader() as uow:
        found = await uow.payment_by_instruction("ACLBKHPPXXX", iid)
    return found is not None and found.state is PaymentState.COMPLETED
