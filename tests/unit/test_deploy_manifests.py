"""The deployment files say what a deployment needs (issue 11 item 6): every Kubernetes manifest
validates (strict: no unknown field) against a pinned Kubernetes version's own schemas; the switch
binds to every interface; Kafka (KRaft) and PostgreSQL run as StatefulSets behind their Services;
the topics the switch uses are created; the ConfigMap is the rendering of config/; the compose
file's services, ports, environment, dependencies and health checks fit together (and, where the
`docker compose` plugin is installed, `docker compose config` accepts it)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from switch.config import DEFAULT_CONFIG_DIR, KafkaConfig

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose.yaml"
KUBERNETES_VERSION = "1.34.0"  # pinned: the manifests must keep validating against this release
PARTNERS = ("promptpay", "lapnet", "napas", "unionpay")
SWITCH_TOPICS = sorted(v for k, v in KafkaConfig().model_dump().items() if k.endswith("_topic"))
PINNED_IMAGE = re.compile(r"^[\w./-]+:(?!latest$)[\w.-]+$")


def _manifests() -> dict[str, list[dict[str, Any]]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d] for p in sorted(K8S.glob("*.yaml"))}


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for docs in _manifests().values() for d in docs if d["kind"] == kind}


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "<from>") for e in container.get("env", [])}


# ----------------------------------------------------------------------------- Kubernetes
@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.yaml")))
def test_every_manifest_validates_strictly_against_the_pinned_kubernetes(name: str) -> None:
    docs = _manifests()[name]
    assert docs, f"{name} holds no resource"
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_the_validator_refuses_an_unknown_field() -> None:
    service = _by_kind("Service")["mekong-switch"]
    broken = {**service, "spec": {**service["spec"], "portz": [{"port": 8080}]}}
    with pytest.raises(kubernetes_validate.ValidationError, match="portz"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_only_other_file_in_k8s_is_the_prometheus_scrape_job() -> None:
    others = sorted(p.name for p in K8S.iterdir() if p.suffix != ".yaml" and p.name != "render_configmap.py")
    assert others == ["prometheus-scrape-job.yml"]
    jobs = yaml.safe_load((K8S / "prometheus-scrape-job.yml").read_text(encoding="utf-8"))
    assert [j["job_name"] for j in jobs] == ["mekong-switch"]


def test_every_resource_is_in_the_mekong_namespace_and_every_image_pinned() -> None:
    for name, docs in _manifests().items():
        for doc in docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == "mekong", f"{name} {doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
                for c in _containers(doc):
                    assert PINNED_IMAGE.match(c["image"]), f"{name}: {c['name']} image {c['image']} has no pinned tag"


def test_the_switch_listens_on_every_interface_in_kubernetes() -> None:
    (switch,) = [c for c in _containers(_by_kind("Deployment")["mekong-switch"]) if c["name"] == "switch"]
    env = _env(switch)
    assert env["MEKONG_HTTP_HOST"] == "0.0.0.0" and env["MEKONG_OPS_HOST"] == "0.0.0.0"
    assert {p["containerPort"] for p in switch["ports"]} == {int(env["MEKONG_HTTP_PORT"]), int(env["MEKONG_OPS_PORT"])}


def test_kafka_runs_in_kraft_mode_as_a_statefulset_with_its_services() -> None:
    kafka = _by_kind("StatefulSet")["kafka"]
    services = _by_kind("Service")
    assert services[kafka["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"
    assert kafka["spec"]["podManagementPolicy"] == "Parallel"  # the quorum forms only when all start
    (container,) = _containers(kafka)
    assert container["image"].startswith("apache/kafka:")
    env = _env(container)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in env)
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == kafka["spec"]["replicas"]
    assert all(v.startswith(f"{i}@kafka-{i}.{kafka['spec']['serviceName']}.") for i, v in enumerate(voters))
    (switch,) = [c for c in _containers(_by_kind("Deployment")["mekong-switch"]) if c["name"] == "switch"]
    bootstrap_service = _env(switch)["MEKONG_KAFKA_BOOTSTRAP"].split(".")[0]
    assert services[bootstrap_service]["spec"]["selector"] == kafka["spec"]["selector"]["matchLabels"]


def test_the_topic_job_creates_every_topic_the_switch_uses_replicated() -> None:
    job = _by_kind("Job")["mekong-kafka-topics"]
    script = " ".join(" ".join(c.get("command", [])) for c in _containers(job))
    listed = re.search(r"for topic in ([\w. ]+); do", script)
    assert listed is not None
    assert sorted(listed.group(1).split()) == SWITCH_TOPICS
    assert "--replication-factor 3" in script


def test_postgresql_runs_as_a_statefulset_the_database_url_points_at() -> None:
    postgres = _by_kind("StatefulSet")["postgres"]
    services = _by_kind("Service")
    assert services[postgres["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"
    (container,) = _containers(postgres)
    assert container["image"].startswith("postgres:") and PINNED_IMAGE.match(container["image"])
    assert "readinessProbe" in container and postgres["spec"]["volumeClaimTemplates"]
    url = _by_kind("Secret")["mekong-db"]["stringData"]["database-url"]
    host = re.search(r"@([\w.-]+):5432/", url)
    assert host is not None and services[host.group(1).split(".")[0]]["spec"]["selector"] == postgres["spec"]["selector"]["matchLabels"]


def test_the_migration_job_runs_db_upgrade_with_the_switch_image() -> None:
    job = _by_kind("Job")["mekong-db-upgrade"]
    (migrate,) = [c for c in _containers(job) if c["name"] == "migrate"]
    (switch,) = [c for c in _containers(_by_kind("Deployment")["mekong-switch"]) if c["name"] == "switch"]
    assert migrate["args"] == ["db", "upgrade"] and migrate["image"] == switch["image"]


def test_the_configmap_is_the_rendering_of_the_config_directory() -> None:
    spec = importlib.util.spec_from_file_location("render_configmap", K8S / "render_configmap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (K8S / "configmap.yaml").read_text(encoding="utf-8") == module.render(DEFAULT_CONFIG_DIR), (
        "deploy/k8s/configmap.yaml is stale: python3 deploy/k8s/render_configmap.py"
    )


# ----------------------------------------------------------------------------- compose
def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # merge keys (<<) resolved by PyYAML


def test_compose_runs_kafka_in_kraft_mode_and_a_pinned_postgresql() -> None:
    services = _compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:") and PINNED_IMAGE.match(kafka["image"])
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "healthcheck" in kafka and not any("zookeeper" in name for name in services)
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:") and PINNED_IMAGE.match(postgres["image"])
    assert "healthcheck" in postgres


def test_compose_images_are_pinned() -> None:
    for name, service in _compose()["services"].items():
        assert PINNED_IMAGE.match(service["image"]), f"{name}: {service['image']}"


def test_compose_switches_listen_on_every_interface_and_publish_their_ports() -> None:
    services = _compose()["services"]
    switches = [n for n in services if re.fullmatch(r"switch-\d", n)]
    assert len(switches) == 3
    for name in switches:
        env = services[name]["environment"]
        assert env["MEKONG_HTTP_HOST"] == "0.0.0.0" and env["MEKONG_OPS_HOST"] == "0.0.0.0", name
        inner = {int(p.rsplit(":", 1)[1]) for p in services[name]["ports"]}
        assert inner == {int(env["MEKONG_HTTP_PORT"]), int(env["MEKONG_OPS_PORT"])}, name
        assert "8090/readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert env["MEKONG_DATABASE_URL"].startswith("postgresql+asyncpg://") and "@postgres:5432/" in env["MEKONG_DATABASE_URL"]
        assert env["MEKONG_KAFKA_BOOTSTRAP"] == "kafka:9092"
        for partner in PARTNERS:
            assert env[f"MEKONG_PARTNER_URL_{partner.upper()}"].startswith(f"https://{partner}-sim:"), (name, partner)


def test_compose_simulators_read_the_config_directory_the_switches_read() -> None:
    services = _compose()["services"]
    switch_config = services["switch-1"]["environment"]["MEKONG_CONFIG_DIR"]
    for partner in PARTNERS:
        sim = services[f"{partner}-sim"]
        assert sim["environment"]["MEKONG_CONFIG_DIR"] == switch_config, partner
        assert any(v.endswith(f":{switch_config}:ro") for v in sim["volumes"]), partner
        command = sim["command"]
        assert command[:2] == ["sim", partner] and command[command.index("--host") + 1] == "0.0.0.0"
        port = command[command.index("--port") + 1]
        assert services["switch-1"]["environment"][f"MEKONG_PARTNER_URL_{partner.upper()}"].endswith(f":{port}")


def test_compose_dependencies_exist_and_wait_on_health_or_completion() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        for dependency, rule in (depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)):
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = rule.get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health, which has none"
            if condition == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", f"{dependency} is a one-shot: restart must be no"
    for name in ("switch-1", "switch-2", "switch-3"):
        assert {"kafka-init", "migrate", "pki-init"} <= set(services[name]["depends_on"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_creates_every_topic_the_switch_uses() -> None:
    script = " ".join(_compose()["services"]["kafka-init"]["command"])
    listed = re.search(r"for topic in ([\w. ]+); do", script)
    assert listed is not None and sorted(listed.group(1).split()) == SWITCH_TOPICS


def test_docker_compose_config_accepts_the_file() -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker client: the compose file was checked by parsing it (tests above)")
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    if plugin.returncode != 0:
        pytest.skip(f"no `docker compose` plugin ({(plugin.stderr.strip().splitlines() or [''])[0]}): the compose file was checked by parsing it")
    done = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True,
                          timeout=60, cwd=COMPOSE.parent)
    assert done.returncode == 0, done.stderr
