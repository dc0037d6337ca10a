"""The HTTP API's tokens and roles (issue 8): the real operations app (build_ops_app, the api_auth middleware)
over real HTTP, on the in-memory store. Each attack is refused and leaves the payments as they were."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from iso20022.schemas import SchemaSet
from switch.config import ApiToken
from switch.entrypoints.api_auth import ApiTokens, Principal, Role, new_token, principal_of, token_hash
from switch.entrypoints.http_app import build_ops_app
from switch.service.bus import MessageBus
from switch.service.handlers import AcceptInstructions, Deps, accept_instructions
from tests.factories import sample_partner_instruction
from tests.fakes import FakeClock, FakeStore, deps_from_config, parsed_instruction

OWN, OTHER = "ACLBKHPPXXX", "ABAAKHPPXXX"  # the sample instruction is ACLB's
CARD = "9704366612345678"
ROLES = ("operator", "auditor", "monitor", f"participant:{OWN}", f"participant:{OTHER}")


async def _ready() -> tuple[dict[str, bool], dict[str, Any]]:
    return {"database": True}, {}


async def _no_gauges() -> None:
    return None


class Api:
    def __init__(self, client: TestClient, tokens: dict[str, str], store: FakeStore, deps: Deps, uetr: str) -> None:
        self.client, self.tokens, self.store, self.deps, self.uetr = client, tokens, store, deps, uetr

    async def get(self, path: str, role: str | None = None, *, header: str | None = None) -> tuple[int, Any, Any]:
        headers = {"Authorization": header} if header is not None else {}
        if role is not None:
            headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        async with self.client.get(path, headers=headers) as resp:
            return resp.status, await resp.json(), resp.headers

    def refusals(self, reason: str) -> float:
        return self.deps.metrics.registry.get_sample_value("switch_api_refusals_total", {"reason": reason}) or 0.0


@pytest.fixture
async def api(schemas: SchemaSet) -> AsyncIterator[Api]:
    tokens = {role: new_token() for role in ROLES}
    entries = [ApiToken(name=f"t{i}", role=role, sha256=token_hash(t)) for i, (role, t) in enumerate(tokens.items())]
    deps = deps_from_config(schemas, FakeClock())
    store = FakeStore()
    doc = sample_partner_instruction("napas")
    doc["creditor"]["account"] = CARD
    async with store.unit_of_work() as uow:
        await accept_instructions(AcceptInstructions([parsed_instruction(doc, source_ref="t:0:1")]), uow, deps)
    (uetr,) = store.state.payments
    bus = MessageBus(store, deps, on_commit=lambda _: None, metrics=deps.metrics)  # type: ignore[arg-type]
    app = build_ops_app(bus, readiness=_ready, refresh_gauges=_no_gauges, api_tokens=ApiTokens(entries))
    async with TestClient(TestServer(app)) as client:
        yield Api(client, tokens, store, deps, uetr)


async def test_no_token_is_refused_401_with_a_bearer_challenge(api: Api) -> None:
    status, body, headers = await api.get(f"/v1/payments/{api.uetr}")
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="mekong"'
    assert set(body) == {"reason_code", "error"}
    assert api.refusals("missing_token") == 1


@pytest.mark.parametrize("header", ["Bearer mekong_not-a-token", "Basic b3BzOm9wcw==", "Bearer ", "mekong_x"])
async def test_an_unknown_or_malformed_token_is_refused_401(api: Api, header: str) -> None:
    status, body, headers = await api.get(f"/v1/payments/{api.uetr}", header=header)
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="mekong", error="invalid_token"'
    assert set(body) == {"reason_code", "error"} and api.tokens["operator"] not in repr(body)


async def test_a_participant_reads_its_own_payment(api: Api) -> None:
    status, body, _ = await api.get(f"/v1/payments/{api.uetr}", f"participant:{OWN}")
    assert status == 200 and body["participant"] == OWN


async def test_a_participant_reading_another_participants_payment_gets_404_as_for_none(api: Api) -> None:
    before = dict(api.store.state.payments)
    status, body, _ = await api.get(f"/v1/payments/{api.uetr}", f"participant:{OTHER}")
    missing_status, missing, _ = await api.get("/v1/payments/00000000-0000-4000-8000-000000000000", f"participant:{OTHER}")
    assert (status, body["reason_code"]) == (missing_status, missing["reason_code"]) == (404, "MS03")
    assert "participant" not in body and CARD[-4:] not in repr(body)
    assert api.store.state.payments == before
    assert api.refusals("not_own") == 1


async def test_a_participant_asking_for_another_participants_instruction_gets_404(api: Api) -> None:
    status, _, _ = await api.get(f"/v1/instructions/{OWN}/INS-0001", f"participant:{OTHER}")
    own_status, _, _ = await api.get(f"/v1/instructions/{OWN}/INS-0001", f"participant:{OWN}")
    assert (status, own_status) == (404, 200)


@pytest.mark.parametrize("role", ["operator", "auditor"])
async def test_operators_and_auditors_read_every_payment(api: Api, role: str) -> None:
    status, body, _ = await api.get(f"/v1/payments/{api.uetr}", role)
    assert status == 200 and body["uetr"] == api.uetr


async def test_the_api_shows_the_card_masked(api: Api) -> None:
    _, body, _ = await api.get(f"/v1/payments/{api.uetr}", "operator")
    assert body["creditor"]["account"] == "9704 **** **** 5678"
    assert CARD not in repr(body)


@pytest.mark.parametrize("role", ["auditor", f"participant:{OWN}"])
async def test_a_write_by_a_read_only_role_is_refused_403_and_changes_nothing(api: Api, role: str) -> None:
    before = dict(api.store.state.payments)
    headers = {"Authorization": f"Bearer {api.tokens[role]}"}
    async with api.client.post(f"/v1/payments/{api.uetr}", headers=headers, json={"state": "COMPLETED"}) as resp:
        assert resp.status == 403 and set(await resp.json()) == {"reason_code", "error"}
    assert api.store.state.payments == before
    assert api.refusals("role_forbidden") == 1


async def test_health_and_readiness_stay_open_for_probes(api: Api) -> None:
    for path in ("/healthz", "/readyz"):
        async with api.client.get(path) as resp:
            assert resp.status == 200, path


async def test_metrics_without_a_token_or_certificate_is_refused_401(api: Api) -> None:
    status, body, headers = await api.get("/metrics")
    assert (status, body["reason_code"], headers["WWW-Authenticate"]) == (401, "AG01", 'Bearer realm="mekong"')
    assert "certificate" in body["error"]


@pytest.mark.parametrize("role", ["operator", "auditor", "monitor"])
async def test_operators_auditors_and_monitors_read_metrics(api: Api, role: str) -> None:
    async with api.client.get("/metrics", headers={"Authorization": f"Bearer {api.tokens[role]}"}) as resp:
        assert resp.status == 200 and "switch_api_refusals_total" in await resp.text()


async def test_a_participant_may_not_read_metrics(api: Api) -> None:
    status, body, _ = await api.get("/metrics", f"participant:{OWN}")
    assert (status, body["reason_code"]) == (403, "AG01")
    assert api.refusals("role_forbidden") == 1


async def test_a_monitor_reads_no_payment(api: Api) -> None:
    status, body, _ = await api.get(f"/v1/payments/{api.uetr}", "monitor")
    assert (status, body["reason_code"]) == (403, "AG01") and "participant" not in body


def test_the_role_model() -> None:
    operator, auditor, monitor = Principal("o", Role.OPERATOR), Principal("a", Role.AUDITOR), Principal("m", Role.MONITOR)
    participant = principal_of(ApiToken(name="p", role=f"participant:{OWN}", sha256="0" * 64))
    assert operator.may("POST") and operator.may("GET") and operator.may_see(OTHER)
    assert not auditor.may("POST") and not auditor.may("DELETE") and auditor.may("GET") and auditor.may_see(OTHER)
    assert not participant.may("POST") and participant.may("GET")
    assert participant.may_see(OWN) and not participant.may_see(OTHER)
    assert not monitor.may("POST") and not monitor.may_see(OWN) and not monitor.may_use("/v1/payments/x")
    assert [p.may_use("/metrics") for p in (operator, auditor, monitor, participant)] == [True, True, True, False]


def test_tokens_are_random_and_only_their_hash_is_kept() -> None:
    token = new_token()
    assert token != new_token() and len(token) > 40
    tokens = ApiTokens([ApiToken(name="o", role="operator", sha256=token_hash(token))])
    assert tokens.authenticate(token) == Principal("o", Role.OPERATOR)
    assert tokens.authenticate(token + "x") is None
    assert token not in repr(vars(tokens))


async def test_a_refusal_is_logged_by_the_tokens_name_never_the_token(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="switch.entrypoints.api_auth")
    headers = {"Authorization": f"Bearer {api.tokens['auditor']}"}
    async with api.client.post(f"/v1/payments/{api.uetr}", headers=headers) as resp:
        assert resp.status == 403
    await api.get(f"/v1/payments/{api.uetr}", header=f"Bearer {api.tokens['operator']}x")
    assert "role_forbidden (t1)" in caplog.text and "invalid_token" in caplog.text
    assert not [t for t in api.tokens.values() if t in caplog.text]


# ------------------------------------------------------------------ client certificates (who holds which)


def _der(cn: str, ca: Any = None) -> bytes:
    from datetime import datetime, timezone

    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from switch.pki import make_ca, make_leaf

    now = datetime(2026, 11, 28, tzinfo=timezone.utc)
    ca = ca or make_ca("ops CA", "test", now=now)
    leaf = make_leaf(ca, cn, "test", now=now, dns=(), usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    return leaf.cert.public_bytes(serialization.Encoding.DER)


def test_a_certificate_is_known_by_its_subject_cn_and_its_role_is_the_entrys() -> None:
    from switch.config import ApiCertificate
    from switch.entrypoints.api_auth import ApiCertificates

    certificates = ApiCertificates([
        ApiCertificate(name="oncall", role="operator", subject_cn="operator.ops.mekong.test"),
        ApiCertificate(name="acleda", role=f"participant:{OWN}", subject_cn=f"{OWN}.participant.ops.mekong.test"),
    ])
    assert certificates.authenticate(_der("operator.ops.mekong.test")) == Principal("oncall", Role.OPERATOR)
    assert certificates.authenticate(_der(f"{OWN}.participant.ops.mekong.test")) == Principal("acleda", Role.PARTICIPANT, OWN)
    assert certificates.authenticate(_der("someone.else.test")) is None


def test_a_pinned_key_tells_two_certificates_with_one_name_apart() -> None:
    from cryptography import x509

    from switch.config import ApiCertificate
    from switch.entrypoints.api_auth import ApiCertificates
    from switch.pki import spki_sha256

    pinned, other = _der("operator.ops.mekong.test"), _der("operator.ops.mekong.test")
    pin = spki_sha256(x509.load_der_x509_certificate(pinned))
    certificates = ApiCertificates([ApiCertificate(name="oncall", role="operator", subject_cn="operator.ops.mekong.test", spki_sha256=pin)])
    assert certificates.authenticate(pinned) == Principal("oncall", Role.OPERATOR)
    assert certificates.authenticate(other) is None


def test_a_certificate_two_entries_name_is_nobodys() -> None:
    from switch.config import ApiCertificate
    from switch.entrypoints.api_auth import ApiCertificates

    der = _der("shared.ops.mekong.test")
    certificates = ApiCertificates([
        ApiCertificate(name="a", role="operator", subject_cn="shared.ops.mekong.test"),
        ApiCertificate(name="b", role="auditor", subject_cn="shared.ops.mekong.test"),
    ])
    assert certificates.authenticate(der) is None


def test_a_certificate_entry_must_name_a_subject_or_a_key_and_a_participant_of_the_switch() -> None:
    from pydantic import ValidationError

    from switch import config as config_mod
    from switch.config import ApiCertificate

    with pytest.raises(ValidationError, match="subject_cn and/or spki_sha256"):
        ApiCertificate(name="x", role="operator")
    cfg = config_mod.load(env={})
    with pytest.raises(ValidationError, match="not a participant"):
        cfg.model_validate({**cfg.model_dump(), "api_certificates": [
            {"name": "x", "role": "participant:NOSUCHBKXXX", "subject_cn": "x"}]})
