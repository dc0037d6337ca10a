"""The operations port over TLS, with client certificates as an alternative to bearer tokens
(issue 8 item 4), on the running switch: who may read what is decided by the certificate (its
subject CN mapped to a role in the tokens file) or by a token; a certificate from another CA fails
the TLS handshake; every refusal over HTTP is JSON. One switch for the module (SQLite: nothing here
depends on the database), one payment of ACLEDA's to read."""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from switch.broker import TansuBroker
from switch.pki import Issued, make_ca, make_leaf, ops_client_cn
from switch.store.sql_store import Store
from switch.tls import OPS_CLIENT_CA, client_context
from tests.integration.harness import Running, pki_dir, running_switch
from tests.integration.test_pipeline import collect, finals_by_id, instruction, publish

ACLB, ABAA = "ACLBKHPPXXX", "ABAAKHPPXXX"


@dataclass
class Ops:
    run: Running
    uetr: str  # a completed payment of ACLEDA's
    tmp: Path

    async def get(self, path: str, *, client: str | None = None, token: str | None = None,
                  context: ssl.SSLContext | None = None, method: str = "GET") -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {self.run.tokens[token]}"} if token else {}
        ssl_context = context or self.run.ops_ssl(client)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context)) as http:
            async with http.request(method, f"{self.run.url}{path}", headers=headers) as resp:
                body = await resp.json() if resp.content_type == "application/json" else await resp.text()
                return resp.status, body, resp.headers

    def refusals(self, reason: str) -> float:
        return self.run.switch.metrics.registry.get_sample_value("switch_api_refusals_total", {"reason": reason}) or 0.0

    def certificate(self, issuer: Issued, cn: str, name: str) -> ssl.SSLContext:
        """A client context presenting a certificate for `cn` issued by `issuer`."""
        leaf = make_leaf(issuer, cn, "test", now=datetime.now(timezone.utc), dns=(), usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
        cert, key = self.tmp / f"{name}.crt", self.tmp / f"{name}.key"
        cert.write_bytes(leaf.cert.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(leaf.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return client_context(cert, key, pki_dir() / OPS_CLIENT_CA)


@pytest.fixture(scope="module")
async def ops(broker: TansuBroker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ops]:
    tmp = tmp_path_factory.mktemp("ops")
    store = Store(f"sqlite+aiosqlite:///{tmp / 'mekong.db'}")
    await store.start()
    try:
        async with running_switch(broker, store) as run:
            iid = f"O{uuid.uuid4().hex[:10]}"
            await publish(run, [(iid, json.dumps(instruction(iid)).encode())])
            statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: iid in finals_by_id(rs))
            (final,) = finals_by_id(statuses)[iid]
            assert final["state"] == "COMPLETED" and final["participant"] == ACLB
            yield Ops(run, final["uetr"], tmp)
    finally:
        await store.close()


async def test_a_certificate_from_an_unknown_ca_is_refused_at_the_tls_handshake(ops: Ops) -> None:
    """The right name (the operator's), the wrong issuer: no HTTP answer at all, not a 401. With
    TLS 1.2 the handshake itself fails (the server's alert: no connection); with TLS 1.3 the client
    has sent its certificate last, so it learns of the alert as the connection closing before any
    answer."""
    rogue = make_ca("rogue CA", "rogue", now=datetime.now(timezone.utc))
    context = ops.certificate(rogue, ops_client_cn("operator"), "rogue")
    before = sum(ops.refusals(r) for r in ("missing_token", "invalid_token", "unknown_certificate"))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(aiohttp.ClientConnectorError):
        await ops.get(f"/v1/payments/{ops.uetr}", context=context)
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await ops.get(f"/v1/payments/{ops.uetr}", context=context)
    assert sum(ops.refusals(r) for r in ("missing_token", "invalid_token", "unknown_certificate")) == before  # never reached HTTP


async def test_the_operators_certificate_reads_any_payment(ops: Ops) -> None:
    status, body, _ = await ops.get(f"/v1/payments/{ops.uetr}", client="operator")
    assert (status, body["uetr"], body["participant"]) == (200, ops.uetr, ACLB)


async def test_a_participants_certificate_reads_its_own_payment(ops: Ops) -> None:
    status, body, _ = await ops.get(f"/v1/payments/{ops.uetr}", client=ACLB)
    assert (status, body["uetr"]) == (200, ops.uetr)


async def test_another_participants_certificate_gets_404_as_for_no_payment(ops: Ops) -> None:
    status, body, _ = await ops.get(f"/v1/payments/{ops.uetr}", client=ABAA)
    none_status, none_body, _ = await ops.get(f"/v1/payments/{uuid.uuid4()}", client=ABAA)
    assert (status, body) == (none_status, {**none_body, "error": body["error"]}) and status == 404
    assert body["reason_code"] == "MS03" and "participant" not in body


async def test_the_auditors_certificate_reads_but_may_not_write(ops: Ops) -> None:
    status, body, _ = await ops.get(f"/v1/payments/{ops.uetr}", client="auditor")
    assert (status, body["uetr"]) == (200, ops.uetr)
    status, body, _ = await ops.get(f"/v1/payments/{ops.uetr}", client="auditor", method="POST")
    assert (status, body["reason_code"]) == (403, "AG01")


async def test_a_bearer_token_still_works_without_a_certificate(ops: Ops) -> None:
    status, body, _ = await ops.get(f"/v1/payments/{ops.uetr}", client=None, token="operator")
    assert (status, body["uetr"]) == (200, ops.uetr)


async def test_no_token_and_no_certificate_is_refused_401_in_json(ops: Ops) -> None:
    before = ops.refusals("missing_token")
    status, body, headers = await ops.get(f"/v1/payments/{ops.uetr}", client=None)
    assert (status, set(body), body["reason_code"]) == (401, {"reason_code", "error"}, "AG01")
    assert headers["WWW-Authenticate"] == 'Bearer realm="mekong"'
    assert ops.refusals("missing_token") == before + 1


async def test_a_certificate_of_the_operations_ca_that_no_entry_names_is_refused_401(ops: Ops) -> None:
    """Issued by the right CA (the handshake passes) but named by no [[certificates]] entry."""
    ca_dir = pki_dir() / "ops"
    ca = Issued(x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes()),
                serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None))  # type: ignore[arg-type]
    context = ops.certificate(ca, "stranger.ops.mekong.test", "stranger")
    before = ops.refusals("unknown_certificate")
    status, body, _ = await ops.get(f"/v1/payments/{ops.uetr}", context=context)
    assert (status, body["reason_code"]) == (401, "AG01") and "certificate" in body["error"]
    assert ops.refusals("unknown_certificate") == before + 1


async def test_a_token_sent_decides_over_the_certificate(ops: Ops) -> None:
    status, _, _ = await ops.get(f"/v1/payments/{ops.uetr}", client=ABAA, token="operator")
    assert status == 200  # ABA's certificate would get 404; the operator's token decides
    status, _, _ = await ops.get(f"/v1/payments/{ops.uetr}", client="operator", token=f"participant:{ABAA}")
    assert status == 404  # and the other way round


async def test_probes_stay_open_and_metrics_need_a_monitor_an_auditor_or_an_operator(ops: Ops) -> None:
    for path in ("/healthz", "/readyz"):
        status, body, _ = await ops.get(path, client=None)
        assert status == 200, (path, body)
    assert (await ops.get("/metrics", client=None))[0] == 401
    status, text, _ = await ops.get("/metrics", client="monitor")
    assert status == 200 and "switch_payments_total" in text
    assert (await ops.get(f"/v1/payments/{ops.uetr}", client="monitor"))[0] == 403  # metrics only
    assert (await ops.get("/metrics", client=ACLB))[0] == 403


async def test_plain_http_does_not_reach_the_operations_port(ops: Ops) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{ops.run.switch.ops_port}/healthz") as resp:
                await resp.read()
