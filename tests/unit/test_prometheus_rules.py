"""The Prometheus files in deploy/ are checked by Prometheus' own tool: the alert rules and both
scrape configurations (compose, and the Kubernetes job operators paste into theirs) load, the
alerts fire on the series they are written for (tests/prometheus/alerts_test.yml), and every
alert links a runbook that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.prom import binary

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "tests" / "prometheus" / "alerts_test.yml"
RUNBOOK_URL = re.compile(r"^https://github\.com/mekong-switch/mekong-switch/blob/main/(docs/runbooks/[a-z0-9-]+\.md)$")


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def _alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def _with_tls_files_in(config: str, directory: Path) -> str:
    """`config` with its TLS file paths moved to empty files in `directory`: promtool checks that
    they exist, and they are the Prometheus server's own (mounted in compose and Kubernetes)."""
    def local(match: re.Match[str]) -> str:
        path = directory / Path(match.group(2)).name
        path.touch()
        return f"{match.group(1)}{path}"

    return re.sub(r"((?:ca|cert|key)_file:\s*)(\S+)", local, config)


def test_the_alert_rules_pass_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_the_compose_prometheus_config_passes_promtool_check_config(tmp_path: Path) -> None:
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    (tmp_path / "prometheus.yml").write_text(_with_tls_files_in(config, tmp_path), encoding="utf-8")
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text(encoding="utf-8"), encoding="utf-8")  # rule_files: alerts.yml
    result = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_the_kubernetes_scrape_job_passes_promtool_check_config(tmp_path: Path) -> None:
    # The file is the job operators add under scrape_configs: of their own Prometheus. Debian
    # builds Prometheus without Kubernetes service discovery, so its promtool rejects
    # kubernetes_sd_configs as an unknown field: that block is checked below against the pods'
    # annotations, and promtool checks the rest (scheme, TLS, relabelling) with it set aside.
    (job,) = yaml.safe_load((DEPLOY / "k8s" / "prometheus-scrape-job.yml").read_text(encoding="utf-8"))
    assert job["job_name"] == "mekong-switch"  # the name alerts.yml's up{job="mekong-switch"} expects
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod", "namespaces": {"names": ["mekong"]}}]
    job["static_configs"] = [{"targets": ["10.0.0.1:8090"]}]
    config = yaml.safe_dump({"rule_files": [str(ALERTS)], "scrape_configs": [job]}, sort_keys=False)
    (tmp_path / "prometheus.yml").write_text(_with_tls_files_in(config, tmp_path), encoding="utf-8")
    result = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_the_kubernetes_scrape_job_keeps_the_pods_the_deployment_annotates() -> None:
    (job,) = yaml.safe_load((DEPLOY / "k8s" / "prometheus-scrape-job.yml").read_text(encoding="utf-8"))
    deployment = next(
        d for d in yaml.safe_load_all((DEPLOY / "k8s" / "deployment.yaml").read_text(encoding="utf-8")) if d and d["kind"] == "Deployment"
    )
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert deployment["metadata"]["namespace"] in job["kubernetes_sd_configs"][0]["namespaces"]["names"]
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    assert keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
    assert re.fullmatch(keep["regex"], annotations["prometheus.io/scrape"])
    address = next(r for r in job["relabel_configs"] if r.get("target_label") == "__address__")
    pod = f"10.0.0.1:9999;{annotations['prometheus.io/port']}"  # __address__;port annotation
    assert re.sub(address["regex"], address["replacement"].replace("$", "\\"), pod) == "10.0.0.1:8090"
    assert job["scheme"] == annotations["prometheus.io/scheme"] == "https"


def test_the_alerts_fire_on_their_series_in_promtool_test_rules() -> None:
    result = _promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_rule_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    firing = {a["alertname"] for t in tests for a in t["alert_rule_test"] if a["exp_alerts"]}
    assert {a["alert"] for a in _alerts()} - firing == set()


def test_every_alert_links_a_runbook_that_exists() -> None:
    for alert in _alerts():
        url = alert["annotations"].get("runbook_url", "")
        match = RUNBOOK_URL.match(url)
        assert match, f"{alert['alert']}: runbook_url {url!r} is not a docs/runbooks/ page"
        page = ROOT / match.group(1)
        assert page.is_file(), f"{alert['alert']}: {page.relative_to(ROOT)} does not exist"
        assert alert["alert"] in page.read_text(encoding="utf-8"), f"{page.name} does not name {alert['alert']}"


def test_alerts_marked_to_tune_per_partner_say_so_in_their_runbook() -> None:
    marked = [a for a in _alerts() if a.get("labels", {}).get("tune") is not None]
    assert {a["alert"] for a in marked} >= {"MekongPartnerDown", "MekongPaymentsStuck", "MekongNoCleanCycle"}
    for alert in marked:
        assert alert["labels"]["tune"] == "per partner", alert["alert"]
        page = ROOT / RUNBOOK_URL.match(alert["annotations"]["runbook_url"]).group(1)  # type: ignore[union-attr]
        assert "## Tuning" in page.read_text(encoding="utf-8"), f"{page.name} has no Tuning section"
