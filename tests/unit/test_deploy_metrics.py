"""The dashboard and the alert rules query metrics the switch exports (a misspelt name is a panel
that stays empty and an alert that never fires)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from switch.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# named by the deploy files ahead of the code: the FX quotes panels (issue 11 item 1, the quotes
# part defines these in switch/metrics.py); remove once merged. Shared with the real-Prometheus test.
NOT_YET: frozenset[str] = frozenset({"switch_fx_quotes", "switch_fx_rate_age_seconds", "switch_fx_rate_updates"})


def _exported() -> set[str]:
    metrics = Metrics()
    return {m.name for m in metrics.registry.collect()}


def _named(text: str) -> set[str]:
    names = set(re.findall(r"\b(switch_[a-z_]+)", text))
    # a query names a counter as _total and a histogram by its series; the registry by its family
    return {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in names}


def test_every_metric_the_dashboard_and_the_alerts_query_is_exported() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "mekong-switch.json").read_text(encoding="utf-8"))
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", ()))
    alerts = (DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    named = _named(exprs) | _named(alerts)
    assert {"switch_cases_open", "switch_recalls", "switch_returns"} <= named  # issue 9's panels and alerts
    missing = named - _exported() - NOT_YET
    assert missing == set(), f"queried but not exported: {sorted(missing)}"
