"""What /metrics exports besides the switch's own series: process and Python metrics (each switch
has its own registry, so they are not there unless added), and every labelled counter whose
label values are known at start already at 0, so increase() sees the first event."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from switch.domain.recon import BreakKind
from switch.metrics import (
    DELIVERY_FAILURES,
    ENQUIRY_OUTCOMES,
    INSTRUCTION_RESULTS,
    PAYMENT_OUTCOMES,
    PROXY_LOOKUP_RESULTS,
    RECALL_OUTCOMES,
    RETURN_OUTCOMES,
    STAGES,
    Metrics,
)

CORRIDORS = ("KH-TH", "KH-LA", "TH-KH")
PARTNERS = ("promptpay", "lapnet")


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _initialised() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    metrics = Metrics()
    metrics.initialise_known_labels(corridors=CORRIDORS, partners=PARTNERS, settling=("promptpay",), proxy=("promptpay",))
    return _samples(metrics)


def _at_zero(samples: dict, name: str, **labels: str) -> bool:
    return samples.get((name, tuple(sorted(labels.items())))) == 0.0


def test_process_metrics_are_exported() -> None:
    names = {name for name, _ in _samples(Metrics())}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"} <= names


def test_python_runtime_metrics_are_exported() -> None:
    names = {name for name, _ in _samples(Metrics())}
    assert {"python_info", "python_gc_objects_collected_total", "python_gc_collections_total"} <= names


def test_two_switches_in_one_process_each_export_process_metrics() -> None:
    # the registry is per instance: a second one must not collide with the first one's collectors
    first, second = Metrics(), Metrics()
    assert any(name == "process_cpu_seconds_total" for name, _ in _samples(first))
    assert any(name == "process_cpu_seconds_total" for name, _ in _samples(second))


def test_payment_outcomes_start_at_zero_for_every_corridor() -> None:
    samples = _initialised()
    for corridor in CORRIDORS:
        for outcome in PAYMENT_OUTCOMES:
            assert _at_zero(samples, "switch_payments_total", corridor=corridor, outcome=outcome), (corridor, outcome)


def test_instruction_results_start_at_zero() -> None:
    samples = _initialised()
    for result in INSTRUCTION_RESULTS:
        assert _at_zero(samples, "switch_instructions_total", result=result), result


def test_partner_counters_start_at_zero_for_every_partner() -> None:
    samples = _initialised()
    for partner in PARTNERS:
        assert _at_zero(samples, "switch_late_status_total", partner=partner)
        assert _at_zero(samples, "switch_partner_resends_total", partner=partner)
        for direction, outcomes in ENQUIRY_OUTCOMES.items():
            for outcome in outcomes:
                assert _at_zero(samples, "switch_enquiries_total", partner=partner, direction=direction, outcome=outcome)
        for direction in ("outbound", "inbound"):
            for outcome in RECALL_OUTCOMES:
                assert _at_zero(samples, "switch_recalls_total", partner=partner, direction=direction, outcome=outcome)
            for outcome in RETURN_OUTCOMES:
                assert _at_zero(samples, "switch_returns_total", partner=partner, direction=direction, outcome=outcome)


def test_proxy_lookups_start_at_zero_only_for_partners_that_resolve_proxies() -> None:
    samples = _initialised()
    for result in PROXY_LOOKUP_RESULTS:
        assert _at_zero(samples, "switch_proxy_lookups_total", partner="promptpay", result=result)
    assert not any(name == "switch_proxy_lookups_total" and ("partner", "lapnet") in labels for name, labels in samples)


def test_settlement_counters_start_at_zero_for_settling_partners() -> None:
    samples = _initialised()
    for kind in BreakKind:
        assert _at_zero(samples, "switch_reconciliation_breaks_total", partner="promptpay", kind=kind.value)
    for result in ("closed", "clean", "breaks"):
        assert _at_zero(samples, "switch_settlement_cycles_total", partner="promptpay", result=result)
    assert not any(name == "switch_reconciliation_breaks_total" and ("partner", "lapnet") in labels for name, labels in samples)


def test_delivery_failures_and_the_alerted_reject_start_at_zero() -> None:
    samples = _initialised()
    for kind, outcomes in DELIVERY_FAILURES.items():
        for outcome in outcomes:
            assert _at_zero(samples, "switch_outbox_delivery_failures_total", kind=kind, outcome=outcome)
    assert _at_zero(samples, "switch_rejects_total", stage="inbound", reason_code="AB05")


def test_a_partner_up_gauge_is_not_invented_before_the_first_request() -> None:
    # 0 would say "down": the gauge stays absent until the relay has asked the partner once
    samples = _initialised()
    assert not any(name == "switch_partner_up" for name, _ in samples)


def test_stage_and_partner_latency_histograms_start_at_zero() -> None:
    # a histogram child is born with its first observation too: a quantile of rate() over it
    # stays empty (NaN) until a second one, so the dashboard's latency panels need them at 0
    samples = _initialised()
    for stage in STAGES:
        assert _at_zero(samples, "switch_stage_duration_seconds_count", stage=stage), stage
        assert _at_zero(samples, "switch_stage_duration_seconds_bucket", stage=stage, le="+Inf"), stage
    for partner in PARTNERS:
        assert _at_zero(samples, "switch_partner_request_duration_seconds_count", partner=partner, outcome="ok")
    assert _at_zero(samples, "switch_partner_request_duration_seconds_count", partner="promptpay", outcome="proxy_lookup")
    for generation in ("0", "1", "2"):
        assert _at_zero(samples, "switch_gc_pause_seconds_count", generation=generation)
