"""A real Prometheus against a running switch (issue 11 item 5): the switch with TLS on, scraped
on its operations port with the `monitor` client certificate as deploy/prometheus/prometheus.yml
does it (same job, scheme and path; every second here), the shipped alert rules loaded with their
`for:` durations shortened. Payments of every kind the dashboard shows are driven through it
(outbound, a proxy look-up, a reject, inbound, stuck payments the switch then enquires about and
resends, settlement cycles); then every query of every panel of the Grafana dashboard (read from
its JSON) must return data through Prometheus' HTTP API, and the partner-down and stuck-payment
alerts must fire while the partner's simulator is stopped and clear once it is back."""

from __future__ import annotations

import asyncio
import json
import math
import re
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from adapters.simulator import SIMULATORS, SimBehaviour
from adapters.simulator_inbound import InboundSpec
from switch.broker import TansuBroker, free_port
from switch.store.sql_store import Store
from switch.tls import OPS_CLIENT_CA
from tests.integration.harness import Running, partner_session, pki_dir, running_switch
from tests.integration.test_inbound import reply
from tests.integration.test_pipeline import collect, finals_by_id, instruction, publish
from tests.prom import binary
from tests.unit.test_deploy_metrics import NOT_YET

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
ACCOUNT = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}
KNOWN_PROXY = "0066812345678"  # the simulator resolves every well-formed proxy
# Grafana's built-in variables, as a dashboard over the last hour would use them: windows long
# enough to hold the whole test, so a panel shows what happened during it
BUILTINS = {"__rate_interval": "5m", "__interval": "15s", "__range": "1h"}
# short drills: a payment the partner never answered is TIMED_OUT (stuck) after sla_s
TIMING = {"sla_s": 6.0, "resend_after_s": 2.0, "timeout_s": 1.0, "enquire_after_s": 1.0}
CYCLE_S = 3.0  # a settlement cycle every 3 s, the simulator posting each report
wait_s_max = 60.0


# ---------------------------------------------------------------- the dashboard's queries


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    expr: str


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def _variable_values(variable: dict[str, Any], *, repeated: bool) -> list[str]:
    """What Grafana puts for `variable`: each value of a repeated panel's variable; otherwise
    the "All" selection (its allValue, or every option as a regex alternation)."""
    options = [o["value"] for o in variable.get("options", []) if o["value"] != "$__all"]
    if not options and variable.get("type") == "custom":
        options = [v.strip() for v in str(variable["query"]).split(",")]
    if repeated:
        return options
    if variable.get("allValue"):
        return [variable["allValue"]]
    return ["(" + "|".join(map(re.escape, options)) + ")"]


def dashboard_queries(path: Path) -> list[Query]:
    """Every target expression of every panel, with the dashboard's variables expanded."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in doc.get("templating", {}).get("list", [])}
    queries: list[Query] = []
    for panel in _panels(doc["panels"]):
        for target in panel.get("targets", []):
            exprs = [target["expr"]]
            for name in set(re.findall(r"\$\{?(\w+)\}?", target["expr"])):
                if name in BUILTINS:
                    values = [BUILTINS[name]]
                else:
                    assert name in variables, f"{path.name} {panel['title']!r}: ${name} is no variable of the dashboard"
                    values = _variable_values(variables[name], repeated=panel.get("repeat") == name)
                pattern = re.compile(r"\$\{" + name + r"\}|\$" + name + r"\b")
                exprs = [pattern.sub(lambda _m, v=v: v, e) for e in exprs for v in values]
            queries.extend(Query(path.name, panel["title"], e) for e in exprs)
    return queries


def variable_queries(path: Path) -> list[tuple[str, str]]:
    """The (metric, label) of each label_values() variable."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for v in doc.get("templating", {}).get("list", []):
        definition = v.get("definition") or (v.get("query") or {}).get("query", "") if v.get("type") == "query" else ""
        if match := re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", str(definition).strip()):
            found.append((match.group(1), match.group(2)))
    return found


def _families(expr: str) -> set[str]:
    return {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in re.findall(r"\b(switch_[a-z_]+)", expr)}


def test_the_dashboard_queries_are_read_from_its_json() -> None:
    # the parsing the live test relies on: every panel target, variables expanded, none left over
    queries = [q for path in DASHBOARDS for q in dashboard_queries(path)]
    assert len(queries) > 40
    assert not [q.expr for q in queries if "$" in q.expr]
    stages = {q.expr for q in queries if q.panel == "$stage: p50 / p95 / p99"}
    assert len(stages) == 3 * 5  # p50/p95/p99 for each of the five stages the panel repeats over
    assert any('switch_fx_quotes_total{corridor=~".*"}' in q.expr for q in queries)


# ---------------------------------------------------------------- Prometheus


@dataclass
class Prometheus:
    url: str
    http: aiohttp.ClientSession
    log: Path

    async def api(self, path: str, **params: str) -> Any:
        async with self.http.get(f"{self.url}/api/v1/{path}", params=params) as resp:
            body = await resp.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    async def query(self, expr: str) -> list[Any]:
        data = await self.api("query", query=expr)
        return [data["result"]] if data["resultType"] == "scalar" else data["result"]

    async def alerts(self, name: str, state: str | None = None) -> list[dict[str, Any]]:
        alerts = (await self.api("alerts"))["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == name and (state is None or a["state"] == state)]


def has_data(result: list[Any]) -> bool:
    """At least one series (or a scalar) with a number, not NaN (what an empty panel shows)."""
    values = [r[1] if isinstance(r, list) else r["value"][1] for r in result]
    return any(not math.isnan(float(v)) for v in values)


def _rules_with_short_for(directory: Path) -> Path:
    """The shipped rules, each `for:` shortened to 1 s (the expressions unchanged)."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    path = directory / "alerts.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return path


def _config(directory: Path, ops_port: int) -> Path:
    """deploy/prometheus/prometheus.yml, its mekong-switch job pointed at this switch with the
    session PKI's monitor certificate, every second."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(_rules_with_short_for(directory))]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "mekong-switch"]
    assert (job["scheme"], job["metrics_path"]) == ("https", "/metrics")
    pki = pki_dir()
    job["tls_config"] = {
        "ca_file": str(pki / OPS_CLIENT_CA),
        "cert_file": str(pki / "ops" / "clients" / "monitor.crt"),
        "key_file": str(pki / "ops" / "clients" / "monitor.key"),
    }
    job["static_configs"] = [{"targets": [f"127.0.0.1:{ops_port}"], "labels": {"env": "test"}}]
    config["scrape_configs"] = [job]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@asynccontextmanager
async def prometheus_server(directory: Path, ops_port: int) -> AsyncIterator[Prometheus]:
    executable = binary("prometheus")
    port = free_port()
    log = directory / "prometheus.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            executable, f"--config.file={_config(directory, ops_port)}", f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
            stdout=out, stderr=out,
        )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            server = Prometheus(f"http://127.0.0.1:{port}", http, log)
            await _until(lambda: _ready(server, process), what=f"Prometheus ready (log: {log})", timeout_s=30)
            yield server
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def _ready(server: Prometheus, process: asyncio.subprocess.Process) -> bool:
    assert process.returncode is None, f"prometheus exited {process.returncode}: {server.log.read_text()[-2000:]}"
    try:
        async with server.http.get(f"{server.url}/-/ready") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def _until(check: Callable[[], Awaitable[Any]], *, what: str, timeout_s: float = wait_s_max) -> Any:
    try:
        async with asyncio.timeout(timeout_s):
            while not (found := await check()):
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s:g} s: {what}") from None
    return found


# ---------------------------------------------------------------- driving the switch


async def _outbound(run: Running, tag: str) -> None:
    """Payments to PromptPay: plain ones, one to a mobile number (a proxy look-up first), one for
    a corridor that does not exist (rejected AG01); each reaches its final status."""
    docs = [instruction(f"P{tag}-{i}", creditor=ACCOUNT) for i in range(4)]
    docs.append(instruction(f"P{tag}-proxy", creditor={"name": "Somchai Jaidee", "proxy": {"type": "MOBILE", "value": KNOWN_PROXY}}))
    docs.append(instruction(f"P{tag}-bad", corridor="KH-XX"))
    await publish(run, [(d["instruction_id"], json.dumps(d).encode()) for d in docs])
    ids = {d["instruction_id"] for d in docs}
    finals = finals_by_id(await collect(run, run.config.kafka.status_topic, until=lambda rs: ids <= set(finals_by_id(rs))))
    assert {i: finals[i][0]["state"] for i in ids} == {**{i: "COMPLETED" for i in ids}, f"P{tag}-bad": "REJECTED"}


async def _inbound(run: Running) -> None:
    """PromptPay pays a Bakong customer; the participant accepts on the replies topic."""
    spec = InboundSpec(amount="40000", currency="KHR", creditor_name="Sok Dara", creditor_account="sok_dara@aclb")
    async with partner_session("promptpay") as http:
        (uetr,) = await run.sim.inbound.send(http, [spec])
    await collect(run, run.config.kafka.inbound_topic, until=lambda rs: any(json.loads(r.value)["uetr"] == uetr for r in rs))
    await reply(run, [{"version": 1, "uetr": uetr, "participant": "ACLBKHPPXXX", "decision": "ACCEPT"}])

    async def answered() -> bool:
        return uetr in run.sim.inbound.summary()["answers"]

    await _until(answered, what="the inbound payment answered")
    assert run.sim.inbound.summary()["answers"][uetr]["status"] == "ACSC"


# ---------------------------------------------------------------- the test


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # what is observed does not depend on the database
async def test_a_real_prometheus_sees_every_dashboard_query_and_the_alerts_fire_and_clear(
    broker: TansuBroker, store: Store, tmp_path: Path
) -> None:
    binary("prometheus")
    tag = uuid.uuid4().hex[:6]
    async with running_switch(broker, store, timing=TIMING, settlement_every_s=CYCLE_S) as run, \
            prometheus_server(tmp_path, run.switch.ops_port or 0) as prom:
        # Prometheus scrapes the operations port over TLS as the monitor
        await _until(lambda: prom.query('up{job="mekong-switch"} == 1'), what="the switch scraped (up == 1)")

        await _outbound(run, tag)
        await _inbound(run)

        # a settlement cycle with these payments reconciled clean: the reconciliation gauges are set
        await _until(lambda: prom.query('switch_reconciliation_last_clean_cycle_timestamp_seconds{partner="promptpay"}'),
                     what="a clean settlement cycle seen by Prometheus")

        # the partner goes silent: it takes a payment and never answers; past the SLA it is stuck
        run.sim.behaviour = SimBehaviour(timeout_rate=1.0)
        stuck = instruction(f"P{tag}-stuck", creditor=ACCOUNT)
        await publish(run, [(stuck["instruction_id"], json.dumps(stuck).encode())])
        late = await _until(lambda: prom.alerts("MekongPaymentsStuck", "firing"), what="MekongPaymentsStuck firing")
        assert [(a["labels"]["partner"], a["value"]) for a in late] == [("promptpay", "1e+00")]
        assert late[0]["annotations"]["runbook_url"].endswith("/docs/runbooks/payments-stuck.md")

        # then it stops altogether: the switch's resends of the stuck payment find nobody
        before = run.sim
        await before.stop()
        down = await _until(lambda: prom.alerts("MekongPartnerDown", "firing"), what="MekongPartnerDown firing")
        assert [a["labels"]["partner"] for a in down] == ["promptpay"]
        assert down[0]["annotations"]["runbook_url"].endswith("/docs/runbooks/partner-down.md")

        # it is restarted (its state lost, answering again): the switch resends and enquires, the
        # payment completes, and both alerts clear
        fresh = SIMULATORS["promptpay"](before.profile, before.schemas, callback_url=before.callback_url, tls=before.tls,
                                        signing=before.signing, calendar=before.settlement.calendar if before.settlement else None)
        await fresh.start(port=run.sim_port)
        run.sim = fresh
        try:
            records = await collect(run, run.config.kafka.status_topic,
                                    until=lambda rs: "COMPLETED" in [e["state"] for e in finals_by_id(rs).get(stuck["instruction_id"], [])])
            assert "COMPLETED" in [e["state"] for e in finals_by_id(records)[stuck["instruction_id"]]]

            async def cleared() -> bool:
                return not await prom.alerts("MekongPartnerDown") and not await prom.alerts("MekongPaymentsStuck")

            await _until(cleared, what="MekongPartnerDown and MekongPaymentsStuck cleared")
            await _dashboard_and_counters(prom)
        finally:
            await fresh.stop()


async def _dashboard_and_counters(prom: Prometheus) -> None:
    # the last of what happened reaches Prometheus (scraped every second)
    await _until(lambda: prom.query('switch_partner_resends_total{partner="promptpay"} > 0'), what="the resend scraped")

    # every query of every panel returns data (the quotes part's metrics excepted until merged)
    empty: list[Query] = []
    for path in DASHBOARDS:
        for query in dashboard_queries(path):
            if not has_data(await prom.query(query.expr)):
                empty.append(query)
    not_yet = [q for q in empty if _families(q.expr) and _families(q.expr) <= NOT_YET]
    unexpected = [f"{q.dashboard} {q.panel!r}: {q.expr}" for q in empty if q not in not_yet]
    assert unexpected == [], "queries without data:\n" + "\n".join(unexpected)
    assert {f for q in not_yet for f in _families(q.expr)} <= NOT_YET
    for path in DASHBOARDS:  # the variables' drop-downs have values
        for metric, label in variable_queries(path):
            assert await prom.api(f"label/{label}/values", **{"match[]": metric}), (path.name, metric, label)

    # what the driving produced is what Prometheus shows, counted from 0 (increase() sees the first)
    assert has_data(await prom.query('increase(switch_partner_resends_total{partner="promptpay"}[5m]) > 0'))
    assert has_data(await prom.query('sum(increase(switch_proxy_lookups_total{partner="promptpay",result="verified"}[5m])) > 0'))
    assert has_data(await prom.query('switch_payments_total{corridor="TH-KH",outcome="completed"} > 0'))
    assert has_data(await prom.query('sum(switch_enquiries_total{partner="promptpay",direction="outbound",outcome="sent"}) > 0'))
    assert has_data(await prom.query('switch_payments_total{corridor="KH-LA",outcome="completed"} == 0'))  # known, never used
    assert has_data(await prom.query('process_resident_memory_bytes{job="mekong-switch"} > 0'))
    assert has_data(await prom.query('python_info{job="mekong-switch"}'))
