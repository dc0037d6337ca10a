"""Prometheus metrics (base units, bounded labels, never a payment id). One registry per switch
instance, so several switches (tests) can live in one process. Names are documented in the
README and used by deploy/prometheus and the Grafana dashboard."""

from __future__ import annotations

import gc
import time
from enum import StrEnum
from typing import Any, Final

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, Histogram, PlatformCollector, ProcessCollector

from iso20022.reason_codes import REASON_CODES
from switch.domain.recon import BreakKind
from switch.domain.corridor_rules import RefusalReason

# The switch's own codes: REASON_CODES plus AM10 (pain.001 control sums, iso20022/pain001.py) and
# SL15 (over a rate limit, switch/service/rate_limits.py), RR01-RR03 (party data a corridor's
# compliance profile requires, switch/domain/compliance.py, issue 12)
REASON_CODE_LABELS: Final = frozenset(REASON_CODES) | {"AM10", "SL15", "RR01", "RR02", "RR03"}
reason_code_other: Final = "other"  # the label for any other code


class DlqReason(StrEnum):
    """The label of switch_dlq_total{reason}: a fixed set, never taken from a record's content
    (reason texts hold sizes and field names: one series each, without bound)."""

    TOO_LARGE = "too_large"  # over the size bound of its format
    TOO_DEEP = "too_deep"  # JSON nested deeper than the bound
    MALFORMED_JSON = "malformed_json"  # not JSON (invalid UTF-8 included)
    MALFORMED_XML = "malformed_xml"  # not well-formed XML, or DTD / entities
    INVALID_CONTRACT = "invalid_contract"  # JSON that breaks instruction v1 / inbound reply v1
    UNSUPPORTED_MESSAGE = "unsupported_message"  # XML other than a bare pain.001.001.09 (another version, an envelope)
    PAIN001_REFUSED = "pain001_refused"  # a pain.001.001.09 invalid against the XSD or its control totals
    UNREADABLE = "unreadable"  # reading the record raised an unexpected exception
    RATE_LIMITED = "rate_limited"  # its participant was over its rate (issue 8 item 6); answered REJECTED SL15
    # security: who published the record is not proven (switch/kafka_auth.py), also counted in
    # switch_security_refusals_total{edge="kafka"}
    UNSIGNED = "unsigned"  # no mekong.key_id / mekong.sig headers
    UNKNOWN_KEY = "unknown_key"  # a key id no participant has configured
    KEY_EXPIRED = "key_expired"  # a configured key past its not_after
    BAD_SIGNATURE = "bad_signature"  # the signature does not verify over the value (or is malformed)
    PARTICIPANT_MISMATCH = "participant_mismatch"  # signed by one participant, names another

    @property
    def security(self) -> bool:
        """A refusal of who sent the record, not of what it says."""
        return self in SECURITY_REASONS


SECURITY_REASONS: Final = frozenset(
    {DlqReason.UNSIGNED, DlqReason.UNKNOWN_KEY, DlqReason.KEY_EXPIRED, DlqReason.BAD_SIGNATURE, DlqReason.PARTICIPANT_MISMATCH}
)


_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# screening (issue 12): the embedded clear path takes tens of microseconds, a remote API milliseconds
_SCREENING_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCREENING_PROVIDERS: Final = ("embedded", "yente")
SCREENING_OUTCOMES: Final = ("clear", "hit", "unavailable")


def reason_code_label(code: str | None) -> str:
    """A reason code as a label value from a fixed set: codes partners and participants send
    (a pacs.002 StsRsnInf/Rsn/Cd is any 1-4 characters) would otherwise make a series each."""
    return code if code in REASON_CODE_LABELS else reason_code_other


# switch_operator_actions_total{action} (issue 11): enquire, resend and mark resolve a payment;
# dlq_replay republishes dead letters
OPERATOR_ACTIONS: Final = ("enquire", "resend", "mark", "dlq_replay")
# switch_dlq_replayed_total{outcome}: replayed (the broker took it again), already_replayed (a
# second replay of the same dead letter, refused), truncated (only a prefix was kept: refused),
# not_found (no dead letter at that offset), failed (the broker did not take it: may be tried again)
DLQ_REPLAY_OUTCOMES: Final = ("replayed", "already_replayed", "truncated", "not_found", "failed")


# issue 12: switch_screening_holds_total{direction,outcome}, switch_screening_decisions_total{decision}
SCREENING_DIRECTIONS: Final = ("outbound", "inbound")
SCREENING_HOLD_OUTCOMES: Final = ("hit", "unavailable")
SCREENING_DECISIONS: Final = ("released", "rejected", "expired")


class _RejectsCounter:
    """switch_rejects_total whose reason_code label is always reason_code_label(code)."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter

    def labels(self, stage: str, reason_code: str | None) -> Counter:
        return self._counter.labels(stage, reason_code_label(reason_code))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        add_runtime_collectors(r)
        self.instructions = Counter(
            "switch_instructions_total", "Instructions taken from Kafka, by admission result", ["result"], registry=r
        )
        self.payments = Counter(
            "switch_payments_total", "Payments that reached an outcome", ["corridor", "outcome"], registry=r
        )
        self.rejects = _RejectsCounter(
            Counter("switch_rejects_total", "Rejects by stage and ISO reason code", ["stage", "reason_code"], registry=r)
        )
        self.stage_duration = Histogram(
            "switch_stage_duration_seconds",
            "Time spent per pipeline stage",
            ["stage"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.partner_request = Histogram(
            "switch_partner_request_duration_seconds",
            "HTTP requests to partner networks",
            ["partner", "outcome"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.in_flight = Gauge(
            "switch_payments_in_flight", "Submitted payments without a final partner status", ["partner"], registry=r
        )
        self.stuck = Gauge(
            "switch_payments_stuck", "Payments past the partner SLA (timed out, investigating)", ["partner"], registry=r
        )
        # exception cases not yet closed (issue 9), by kind (enquiry, return, recall) and state (OPEN,
        # SENT, AWAITING_RETURN, UNANSWERED): read from the database like the two gauges above
        self.cases_open = Gauge(
            "switch_cases_open", "Exception cases (enquiries, returns, recalls) not yet closed", ["kind", "state"], registry=r
        )
        # settlement reconciliation (issue 10), partner = a settling partner profile, kind = a
        # switch/domain/recon.py BreakKind value, result in closed / clean / breaks: fixed sets
        self.recon_breaks = Counter(
            "switch_reconciliation_breaks_total", "Reconciliation breaks found, by partner and kind", ["partner", "kind"], registry=r
        )
        self.recon_breaks_open = Gauge(
            "switch_reconciliation_breaks_open", "Reconciliation breaks not yet resolved or written off", ["partner", "kind"], registry=r
        )
        self.settlement_cycles = Counter(
            "switch_settlement_cycles_total", "Settlement cycles closed (books fixed) and reconciled (clean or with breaks)",
            ["partner", "result"], registry=r,
        )
        self.net_position = Gauge(
            "switch_settlement_net_position_minor",
            "Net position of the last reconciled cycle, minor units; > 0: the hub owes the partner", ["partner", "currency"], registry=r,
        )
        self.last_clean_cycle = Gauge(
            "switch_reconciliation_last_clean_cycle_timestamp_seconds",
            "Cut-off of the partner's last cycle reconciled without an open break (Unix time)", ["partner"], registry=r,
        )
        self.report_pages = Counter(
            "switch_settlement_report_pages_total", "Settlement report pages received, stored or duplicate", ["partner", "result"], registry=r,
        )
        self.reports_late = Gauge(
            "switch_settlement_reports_late", "Closed cycles whose report is past its due time", ["partner"], registry=r
        )
        # edge partner_port: reason partner_mismatch, unknown_identity, no_certificate (TLS) or a label
        # of iso20022/apphdr.py REFUSALS (signed messages); edge proxy_lookup: the same signed-message
        # labels; edge kafka: one of SECURITY_REASONS. A fixed set.
        self.security_refusals = Counter(
            "switch_security_refusals_total", "Requests refused by an authentication check", ["edge", "reason"], registry=r
        )
        for reason in sorted(SECURITY_REASONS):  # every Kafka series exists from the start, at 0
            self.security_refusals.labels("kafka", reason.value)
        self.api_refusals = Counter(  # switch/entrypoints/api_auth.py Refusal: a fixed set
            "switch_api_refusals_total", "HTTP API requests refused: no or unknown token, role, another's payment",
            ["reason"], registry=r,
        )
        # edge: partner_port (answered 429) or kafka (REJECTED SL15); party: the configured partner
        # or participant (a fixed set: rate limits exist only for configured parties)
        self.rate_limited = Counter(
            "switch_rate_limited_total", "Messages refused for being over their party's rate limit", ["edge", "party"], registry=r
        )
        self.late_status = Counter(
            "switch_late_status_total", "Partner statuses recorded but not applied (late or duplicate)", ["partner"], registry=r
        )
        self.proxy_lookups = Counter(
            "switch_proxy_lookups_total", "Proxy look-ups (acmt.023/024) by partner and result", ["partner", "result"], registry=r
        )
        self.resends = Counter(
            "switch_partner_resends_total", "pacs.008 messages resent because no final status came", ["partner"], registry=r
        )
        self.delivery_failures = Counter(
            "switch_outbox_delivery_failures_total",
            "Failed delivery attempts of outbox rows, by destination kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.uow_retries = Counter(
            "switch_uow_retries_total", "Transactions run again after losing a race (version check, deadlock)", ["handler"], registry=r
        )
        self.dlq = Counter(
            "switch_dlq_total", "Records sent to the dead-letter topic, by DlqReason", ["reason"], registry=r
        )
        for reason in DlqReason:  # every series exists from the start, at 0
            self.dlq.labels(reason.value)
        self.outbox_pending = Gauge("switch_outbox_pending", "Outbox messages not yet sent", ["kind"], registry=r)
        self.partner_up = Gauge("switch_partner_up", "1 when the last request to the partner got an answer", ["partner"], registry=r)
        self.gc_pause = Histogram(
            "switch_gc_pause_seconds",
            "Cyclic garbage collector pauses (they stop the event loop)",
            ["generation"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "switch_kafka_consumer_lag", "Records behind the end of the partition", ["topic", "partition"], registry=r
        )
        # recalls (issue 9 item 3, switch/service/recalls.py): direction outbound (a participant
        # recalls its payment) or inbound (a partner recalls one it sent); outcome cancelled_locally,
        # sent, accepted, refused, unanswered, chased, rejected
        self.recalls = Counter(
            "switch_recalls_total", "Recalls (camt.056) by partner, direction and outcome", ["partner", "direction", "outcome"],
            registry=r,
        )
        self._returns_block = ReturnsMetrics(r)  # returns (issue 9 item 2): see returns_metrics()
        # status enquiries (issue 9): pacs.028 -> pacs.002, both directions. direction "outbound":
        # the switch asks about its payments, outcome sent (a pacs.028 went out), answered (the
        # payment became final while enquired), not_found_resent (the partner answered AG09: the
        # pacs.008 went again), closed (final without an enquiry sent); "inbound": a partner asks
        # about its payments, outcome answered_final, answered_pending, answered_not_found
        self.enquiries = Counter(
            "switch_enquiries_total", "Status enquiries (pacs.028) by partner, direction and outcome",
            ["partner", "direction", "outcome"], registry=r,
        )

        self.fx = FxMetrics(r)  # FX quotes and rate providers (issue 11): see FxMetrics

        # ---- corridor controls (issue 11, switch/service/corridors.py): corridor = a configured
        # corridor id, partner = a configured partner, reason = corridor_rules.RefusalReason,
        # outcome = applied | failed (a reload whose configuration did not validate): fixed sets
        self.corridor_enabled = Gauge(
            "switch_corridor_enabled", "1 when the corridor takes new instructions (configured on, not disabled by an operator)",
            ["corridor"], registry=r,
        )
        self.partner_paused = Gauge(
            "switch_partner_paused", "1 while an operator has paused the partner (new instructions refused, messages held)",
            ["partner"], registry=r,
        )
        self.corridor_refusals = Counter(
            "switch_corridor_refusals_total", "Instructions refused by a corridor rule: disabled, paused, closed, holiday, "
            "tx_limit, daily_limit", ["corridor", "reason"], registry=r,
        )
        self.config_reloads = Counter(
            "switch_config_reloads_total", "Configuration reloads (SIGHUP, POST /v1/config/reload) by outcome", ["outcome"], registry=r,
        )
        for outcome in ("applied", "failed"):
            self.config_reloads.labels(outcome)

        # the operator's toolbox (issue 11): each operator action taken (action: a fixed set,
        # OPERATOR_ACTIONS) and each dead-letter replay asked for, by outcome (DLQ_REPLAY_OUTCOMES);
        # every label value starts at zero so that increase() sees the first one
        self.operator_actions = Counter(
            "switch_operator_actions_total", "Operator actions taken through the operations API", ["action"], registry=r,
        )
        for action in OPERATOR_ACTIONS:
            self.operator_actions.labels(action)
        self.dlq_replayed = Counter(
            "switch_dlq_replayed_total", "Dead-letter replays asked for, by outcome", ["outcome"], registry=r,
        )
        for outcome in DLQ_REPLAY_OUTCOMES:
            self.dlq_replayed.labels(outcome)

        # screening holds (issue 12): payments held (direction, outcome: hit | unavailable), the
        # operators' decisions (released | rejected | expired), how long a hold waited for its
        # decision, and the holds still waiting (set from the store with the other gauges)
        self.screening_holds = Counter(
            "switch_screening_holds_total", "Payments held by the sanctions screening", ["direction", "outcome"], registry=r,
        )
        for direction in SCREENING_DIRECTIONS:
            for outcome in SCREENING_HOLD_OUTCOMES:
                self.screening_holds.labels(direction, outcome)
        self.screening_decisions = Counter(
            "switch_screening_decisions_total", "Decisions on screening holds", ["decision"], registry=r,
        )
        for decision in SCREENING_DECISIONS:
            self.screening_decisions.labels(decision)
        self.screening_decision_seconds = Histogram(
            "switch_screening_decision_seconds", "Time from a screening hold to its decision",
            buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400), registry=r,
        )
        self.screening_held = Gauge("switch_screening_held", "Screening holds waiting for a decision", registry=r)
        self.screening_held_overdue = Gauge(
            "switch_screening_held_overdue", "Screening holds waiting for a decision past half their deadline", registry=r,
        )
        # sanctions screening (issue 12): time per screened payment by provider and outcome
        # (SCREENING_PROVIDERS x SCREENING_OUTCOMES, every series from the start), the list's size
        self.screening_seconds = Histogram(
            "switch_screening_seconds", "Screening time per payment, by provider and outcome", ["provider", "outcome"],
            buckets=_SCREENING_BUCKETS_S, registry=r,
        )
        for provider in SCREENING_PROVIDERS:
            for outcome in SCREENING_OUTCOMES:
                self.screening_seconds.labels(provider, outcome)
        self.screening_list_entries = Gauge(
            "switch_screening_list_entries", "Entries (people and organisations) of the embedded screening list", registry=r,
        )
        self.screening_name_data_loaded = Gauge(
            "switch_screening_name_data_loaded",
            "1 once the embedded screening has loaded its name data (seconds of CPU in the background after a start: "
            "until then the first possible match waits for it)", registry=r,
        )

    def init_corridors(self, corridors: Any, partners: Any) -> None:
        """Every corridor's and partner's series at 0 from the start (so increase() sees the first
        refusal); called at start and after each reload with the configured ids."""
        corridors = list(corridors)
        self.fx.init_corridors(corridors)  # the FX quote series too
        for corridor in corridors:
            self.corridor_enabled.labels(corridor)
            for reason in RefusalReason:
                self.corridor_refusals.labels(corridor, reason.value)
        for partner in partners:
            self.partner_paused.labels(partner)

    def initialise_known_labels(
        self, *, corridors: Iterable[str], partners: Iterable[str], settling: Iterable[str] = (), proxy: Iterable[str] = ()
    ) -> None:
        """Create every labelled counter series whose label values are known at start, at 0.
        A series that first appears with value 1 is invisible to increase() and rate() (they need
        two samples), so the first reject, first resend or first outage would not show on the
        dashboard nor fire an alert. `corridors`: outbound corridor and inbound route ids;
        `partners`: the partner networks this switch talks to; `settling`: those with a settlement
        calendar; `proxy`: those that resolve proxies (acmt.023)."""
        initialise_known_labels(self, corridors=corridors, partners=partners, settling=settling, proxy=proxy)

    def watch_gc(self) -> None:
        """Observe every cyclic-GC pause into switch_gc_pause_seconds (until unwatch_gc)."""
        started: list[float] = [0.0]

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                self.gc_pause.labels(str(info["generation"])).observe(time.perf_counter() - started[0])

        self._gc_callback = on_gc
        gc.callbacks.append(on_gc)

    def unwatch_gc(self) -> None:
        if getattr(self, "_gc_callback", None) in gc.callbacks:
            gc.callbacks.remove(self._gc_callback)


# ---------------------------------------------------------------- FX quotes and rates (issue 11)


class FxMetrics:
    """FX quotes and rate providers (docs/operations/fx-quotes.md). Labels are fixed sets: a
    configured corridor ("other" for a request naming none), a quote outcome, a currency pair
    of the book (BASE_QUOTE, both ISO 4217 codes the switch knows), a provider kind."""

    QUOTE_OUTCOMES: Final = ("issued", "honoured", "expired", "used", "mismatched", "refused")
    PROVIDERS: Final = ("static", "http", "kafka")
    # applied: the book took it; older: a newer rate of the pair was there already; invalid: the
    # record or the feed's entry was refused; failed: the feed could not be read (HTTP, JSON)
    UPDATE_OUTCOMES: Final = ("applied", "older", "invalid", "failed")

    def __init__(self, registry: CollectorRegistry) -> None:
        self.quotes = Counter(
            "switch_fx_quotes_total", "FX quotes by corridor and outcome (issued, honoured, expired, used, mismatched, refused)",
            ["corridor", "outcome"], registry=registry,
        )
        self.rate_age = Gauge(
            "switch_fx_rate_age_seconds", "Age of the newest rate of each pair in the book", ["pair"], registry=registry
        )
        self.rate_updates = Counter(
            "switch_fx_rate_updates_total", "Rates offered to the book, by provider and outcome", ["provider", "outcome"],
            registry=registry,
        )
        for provider in self.PROVIDERS:
            for outcome in self.UPDATE_OUTCOMES:
                self.rate_updates.labels(provider, outcome)

    def init_corridors(self, corridors: Iterable[str]) -> None:
        """Every corridor's quote series at 0 from the start (so increase() sees the first)."""
        for corridor in [*corridors, "other"]:
            for outcome in self.QUOTE_OUTCOMES:
                self.quotes.labels(corridor, outcome)


# ---------------------------------------------------------------- returns (issue 9 item 2)


class ReturnsMetrics:
    """Returns (pacs.004) by partner, direction (outbound: a partner returns one of our payments;
    inbound: a participant returns one it was paid) and outcome: booked (all back), partial,
    duplicate, refused_<ISO code> (a fixed set: switch/service/returns.py). Partner "-": a
    participant's request for a payment it does not have."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.returns = Counter(
            "switch_returns_total", "Returns (pacs.004) by partner, direction and outcome", ["partner", "direction", "outcome"],
            registry=registry,
        )
        self.amount = Counter(
            "switch_returned_amount_minor_total", "Amounts returned, in minor units of the partner's settlement currency",
            ["partner", "direction", "currency"], registry=registry,
        )


def returns_metrics(metrics: Metrics) -> ReturnsMetrics:
    """The returns block of `metrics` (registered with the others, so its series exist from the start)."""
    return metrics._returns_block


# ---------------------------------------------------------------- observability (issue 11 item 5)
# The label values each labelled counter can take, where the code fixes them (the handlers that
# count are named in the comment); initialise_known_labels() creates these series at 0.
# switch_stage_duration_seconds{stage}: kafka_consumer.py (admit), relay.py (submit,
# status_publish), handlers.apply_partner_statuses (end_to_end, partner_roundtrip), inbound.py
STAGES: Final = ("admit", "submit", "partner_roundtrip", "status_publish", "end_to_end", "inbound_end_to_end")
GC_GENERATIONS: Final = ("0", "1", "2")  # switch_gc_pause_seconds{generation}: CPython's three
INSTRUCTION_RESULTS: Final = ("admitted", "rejected", "replayed", "conflict", "redelivered", "dead_lettered")  # handlers.py, kafka_consumer.py
PAYMENT_OUTCOMES: Final = ("completed", "rejected", "timed_out")  # handlers._count_outcome
PROXY_LOOKUP_RESULTS: Final = ("verified", "unknown", "unanswered", "failed", "cached", "failing_fast")  # resolver.py
ENQUIRY_OUTCOMES: Final = {  # enquiries.py
    "outbound": ("sent", "answered", "not_found_resent", "closed"),
    "inbound": ("answered_final", "answered_pending", "answered_not_found"),
}
RECALL_OUTCOMES: Final = ("cancelled_locally", "sent", "accepted", "refused", "unanswered", "chased", "rejected")  # recalls.py
RETURN_OUTCOMES: Final = ("booked", "partial", "duplicate")  # returns.py (refused_<code>: per ISO code, made when it happens)
DIRECTIONS: Final = ("outbound", "inbound")
SETTLEMENT_CYCLE_RESULTS: Final = ("closed", "clean", "breaks")  # settlement.py
REPORT_PAGE_RESULTS: Final = ("stored", "duplicate")  # settlement.py
# relay.py: a partner row fails with a transport outcome (adapters/transport.py SendOutcome other
# than ok) or queue_full; a status row with broker_error or queue_full
DELIVERY_FAILURES: Final = {
    "partner": ("connection_error", "timeout", "disconnected", "unavailable", "server_error", "http_error", "queue_full"),
    "status": ("broker_error", "queue_full"),
}
# (stage, reason code) pairs an alert rule counts with increase(): deploy/prometheus/alerts.yml
ALERTED_REJECTS: Final = (("inbound", "AB05"),)


def add_runtime_collectors(registry: CollectorRegistry) -> None:
    """Process (CPU, memory, open files: process_*) and Python (version, GC: python_*) metrics in
    the switch's own registry. The registry is per switch instance, so the default registry's
    collectors, which prometheus_client adds to its global REGISTRY only, are not exported
    without this."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


def initialise_known_labels(
    metrics: Metrics, *, corridors: Iterable[str], partners: Iterable[str], settling: Iterable[str] = (), proxy: Iterable[str] = ()
) -> None:
    """See Metrics.initialise_known_labels. Gauges are left alone: a gauge at 0 says something
    (switch_partner_up 0 is "down"), and those read from the database are set on every scrape."""
    partners = sorted(set(partners))
    for result in INSTRUCTION_RESULTS:
        metrics.instructions.labels(result)
    for corridor in sorted(set(corridors)):
        for outcome in PAYMENT_OUTCOMES:
            metrics.payments.labels(corridor, outcome)
    for stage, code in ALERTED_REJECTS:
        metrics.rejects.labels(stage, code)
    for stage in STAGES:  # histograms too: a quantile over a series born with its first observation stays empty
        metrics.stage_duration.labels(stage)
    for generation in GC_GENERATIONS:
        metrics.gc_pause.labels(generation)
    for kind, outcomes in DELIVERY_FAILURES.items():
        for outcome in outcomes:
            metrics.delivery_failures.labels(kind, outcome)
    returns = returns_metrics(metrics)
    for partner in partners:
        metrics.partner_request.labels(partner, "ok")
        metrics.late_status.labels(partner)
        metrics.resends.labels(partner)
        for direction, outcomes in ENQUIRY_OUTCOMES.items():
            for outcome in outcomes:
                metrics.enquiries.labels(partner, direction, outcome)
        for direction in DIRECTIONS:
            for outcome in RECALL_OUTCOMES:
                metrics.recalls.labels(partner, direction, outcome)
            for outcome in RETURN_OUTCOMES:
                returns.returns.labels(partner, direction, outcome)
    for partner in sorted(set(proxy)):
        metrics.partner_request.labels(partner, "proxy_lookup")
        for result in PROXY_LOOKUP_RESULTS:
            metrics.proxy_lookups.labels(partner, result)
    for partner in sorted(set(settling)):
        for result in SETTLEMENT_CYCLE_RESULTS:
            metrics.settlement_cycles.labels(partner, result)
        for result in REPORT_PAGE_RESULTS:
            metrics.report_pages.labels(partner, result)
        for kind in BreakKind:
            metrics.recon_breaks.labels(partner, kind.value)
