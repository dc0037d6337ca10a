"""Every bound the switch keeps, in one module, named with its unit and `_max` last (STYLE §5).

Relations between bounds are checked at import, so a change that breaks one fails at once.
"""

from __future__ import annotations

from typing import Final

# Kafka edge
batch_records_max: Final = 500  # records taken from one getmany() call
record_budget_s_max: Final = 0.2  # worst case time to admit one record (DB included)
kafka_poll_interval_ms_max: Final = 300_000  # max_poll_interval_ms handed to aiokafka
kafka_poll_timeout_ms: Final = 200  # getmany() wait when nothing is buffered
# How long the broker may hold a fetch waiting for data. Tansu answers a fetch only when this
# runs out (no early return on new data), so it bounds the admission latency directly.
kafka_fetch_wait_ms_max: Final = 20
kafka_message_bytes_max: Final = 1_000_000  # an instruction larger than this is dead-lettered
producer_linger_ms: Final = 2
shutdown_drain_s_max: Final = 10.0  # SIGTERM: time to finish in-flight work before leaving
# SIGTERM: the whole shutdown (stop consuming, drain, close) ends within the grace
# ([switch] shutdown_grace_s, MEKONG_SHUTDOWN_GRACE_S); Kubernetes' default terminationGracePeriodSeconds
# is 30 s, so the default leaves room before the SIGKILL
shutdown_grace_s_default: Final = 20.0
shutdown_grace_s_max: Final = 600.0
# of the grace, what is kept for closing the clients (Kafka, HTTP, database) after the drain
shutdown_close_s_min: Final = 3.0
shutdown_broker_gone_close_s: Final = 1.0  # closing a Kafka client when the broker does not answer: it cannot flush
# Start-up: how long the broker and the database may take to answer before `mekong run` says which
# did not and exits ([kafka] connect_timeout_s, MEKONG_KAFKA_CONNECT_TIMEOUT_S)
kafka_connect_timeout_s_default: Final = 10.0
database_connect_timeout_s: Final = 10.0
# Readiness (/readyz): a cheap broker probe (a metadata request) runs this often, bounded; /readyz
# reads its cached result, never a broker round trip per call
kafka_probe_interval_s: Final = 2.0
kafka_probe_timeout_s: Final = 3.0
database_probe_timeout_s: Final = 3.0
# Logs: a partner problem (outage, timeout, reject, give-up) is logged at most once per partner and
# kind in this window; the lines held back are counted and reported with the next one
partner_problem_log_window_s: Final = 10.0

if shutdown_close_s_min >= shutdown_grace_s_default:
    raise RuntimeError("the default grace must leave time to drain before closing")
if kafka_probe_timeout_s > kafka_probe_interval_s * 2:
    raise RuntimeError("a hung probe would leave /readyz stale for longer than two probe intervals")

if batch_records_max * record_budget_s_max * 1000 >= kafka_poll_interval_ms_max:
    raise RuntimeError("a full batch could outlive max_poll_interval_ms and trigger a rebalance")

# Who published a record (switch/kafka_auth.py): Ed25519 verification, about 200 µs of CPU per record
# on the development machine (tests/bench/bench_kafka_signatures.py), runs in worker threads off
# the event loop, this many records per thread task; a full batch is 5 tasks, which run on several
# cores at once (cryptography releases the GIL while it verifies)
signature_verify_chunk_records_max: Final = 100

if signature_verify_chunk_records_max > batch_records_max:
    raise RuntimeError("a signature chunk larger than a batch would never split the work")

# Partner transport
partner_inflight_max: Final = 64  # concurrent HTTP requests to one partner
partner_timeout_s: Final = 10.0  # one HTTP request to a partner
partner_backoff_s_min: Final = 0.05

# Outbox relay (switch/service/relay.py): the one thing that delivers after a commit
outbox_batch_max: Final = 256  # due rows claimed in one transaction
outbox_queue_max: Final = 20_000  # rows waiting in memory per destination (partner, Kafka)
outbox_poll_s: Final = 1.0  # the relay claims due rows at least this often
outbox_lease_s: Final = 45.0  # a row held by a replica that died is taken over after this
relay_attempts_in_memory_max: Final = 3  # quick attempts before a retry is scheduled in the database
relay_backoff_s_max: Final = 30.0  # the longest wait between two delivery attempts of one row

if partner_inflight_max > outbox_queue_max:
    raise RuntimeError("the outbox queue must hold at least one full set of in-flight sends")
if outbox_lease_s <= relay_attempts_in_memory_max * (partner_timeout_s + partner_backoff_s_min * 2**relay_attempts_in_memory_max):
    raise RuntimeError("a lease must outlast the quick attempts of one row, or two replicas would deliver it at once")

# Follow-up timers (switch/service/follow_up.py): payments without a final outcome
follow_up_poll_s: Final = 1.0  # how often due follow-ups are claimed
follow_up_batch_max: Final = 500  # payments claimed in one transaction
follow_up_interval_s_max: Final = 300.0  # an unresolved payment is looked at at least this often

# HTTP edge
http_body_bytes_max: Final = 1_000_000  # any request body, partner XML included
xml_body_bytes_max: Final = http_body_bytes_max
# partner certificates whose identity (which partner, or none) is remembered; a handful are in use
tls_identity_cache_max: Final = 1_024

# Status events
status_publish_batch_max: Final = 500
publish_batches_inflight_max: Final = 4  # status batches awaiting the broker's acknowledgement

# Units of work
uow_attempts_max: Final = 5  # a transaction that lost a race (version check, deadlock) is run again

# Storage
sqlite_checkpoint_interval_s: Final = 1.0  # WAL checkpoints, off the event loop

# Process
# gen0 allocations, then gen1 and gen2 collection ratios. Measured at 500 payments/s: Python's
# defaults (700, 10, 10) gave switch-internal p99 140 ms, this 75 ms; a full collection pauses
# the loop for 250+ ms on the development machine, so it must stay rare.
gc_thresholds: Final = (5_000, 10, 1_000)

# Identity
instruction_id_chars_max: Final = 35  # ISO Max35Text: it becomes the pacs.008 InstrId
qr_payload_chars_max: Final = 512  # an EMVCo QR holds at most 512 characters

# Partner text (adapters/text.py)
transliterations_cached_max: Final = 65_536  # distinct (text, rule) Latin forms kept in memory

# Proxy resolution (acmt.023 / acmt.024) before outbound proxy payments
proxy_lookup_batch_max: Final = 100  # proxies per acmt.023
proxy_cache_ttl_s: Final = 60.0  # a resolved proxy is reused this long (a moved proxy is seen within a minute)
proxy_cache_entries_max: Final = 100_000
proxy_lookup_timeout_s: Final = 3.0
# after a failed look-up, that partner's look-ups fail at once (AB07) for this long, so a partner
# that is down or hung does not hold every consumer batch for proxy_lookup_timeout_s
proxy_lookup_backoff_s: Final = 5.0

# HTTP edge: bodies are read in chunks of at most this size and refused at http_body_bytes_max,
# so an over-limit body is never buffered whole
http_body_chunk_bytes_max: Final = 65_536

if http_body_chunk_bytes_max > http_body_bytes_max:
    raise RuntimeError("one body chunk must not be larger than the whole body limit")

# Kafka edge: no record can stop the consumer (issue 7)
# An instruction v1 is at most ~2 KB (every field has a maximum length: ids 35, names 140, QR 512)
# and ~12 KB with every character \u-escaped; 64 KiB leaves room for new versions and bounds the
# work one JSON record costs before it is refused.
json_bytes_max: Final = 65_536
# Instruction v1 nests 3 levels (instruction > creditor > proxy). Checked on the raw bytes before
# any parser runs, so no parser ever sees deep nesting (Python's json recurses once per level and
# a record 100,000 levels deep raised RecursionError in the consumer).
json_depth_max: Final = 16
kafka_request_bytes_max: Final = kafka_message_bytes_max + 64_000  # the producer's max_request_size
dlq_value_bytes_max: Final = kafka_message_bytes_max  # a record up to this goes to the dead-letter topic whole
# Of a larger record only this prefix goes (headers give its size and sha256): enough to see what
# it was, and it always fits the producer's request, which the whole record may not.
dlq_prefix_bytes_max: Final = 65_536
dlq_key_bytes_max: Final = 1_024  # a longer key is cut (participants key by instruction id)
dlq_reason_bytes_max: Final = 1_000  # the `mekong.reason` header
dlq_framing_bytes_max: Final = 4_096  # the other headers (topic name <= 249, numbers, a sha256) and the record framing
# the original record's headers (its signature: issue 11 replays it as it was), kept in its dead
# letter as mekong.original.<name> when they fit in this; else the dead letter says they were cut
dlq_original_headers_bytes_max: Final = 4_096
# A dead letter the broker cannot take right now (it is briefly away) is sent again with jittered
# backoff; after this long the consumer stops (the broker is down, not briefly away) and a restart
# reads the batch again. Below max_poll_interval_ms, so waiting costs no rebalance.
dlq_publish_s_max: Final = 60.0
dlq_publish_attempts_max: Final = 12
dlq_backoff_s_min: Final = 0.1
dlq_backoff_s_max: Final = 5.0

if dlq_value_bytes_max + dlq_key_bytes_max + dlq_reason_bytes_max + dlq_framing_bytes_max + dlq_original_headers_bytes_max > kafka_request_bytes_max:
    raise RuntimeError("a dead letter could exceed the producer's max_request_size and never be published")
if dlq_prefix_bytes_max > dlq_value_bytes_max:
    raise RuntimeError("the prefix of a record too large for the dead-letter topic must be smaller than a whole one")
if dlq_publish_s_max * 1000 >= kafka_poll_interval_ms_max:
    raise RuntimeError("retrying a dead letter could outlive max_poll_interval_ms and trigger a rebalance")

# Abuse limits (issue 8 item 6): token buckets per partner (partner port, messages) and per
# participant (Kafka, instructions), switch/service/rate_limits.py. The defaults apply where a
# partner profile's [limits] or participants.toml's [limits] says nothing. [U] Set well above what
# the demo (400 instructions/s offered, 100 inbound/s) and the benchmark (about 2,700 payments/s
# flat out, 20,000 published as fast as the load generator can, three participants) send, so
# neither ever meets them; a deployment sets each party's from its agreed volumes.
partner_messages_per_s_default: Final = 2_000  # a partner's POSTs to /iso20022/{partner}, per second
partner_burst_default: Final = 4_000
participant_instructions_per_s_default: Final = 5_000  # a participant's instructions (a pain.001: each transaction)
participant_burst_default: Final = 20_000
rate_per_s_max: Final = 100_000  # a configured rate above this is refused at load (a typo, not a limit)
rate_burst_max: Final = 1_000_000
# A refusal after this long without one starts a new spell: the first refusal of each spell is
# audited (one entry per flood, not one per message; every refusal is counted)
rate_limit_episode_gap_s: Final = 60
# Retry-After is whole seconds (RFC 9110): a wait under one second is announced as one
retry_after_s_min: Final = 1

if partner_messages_per_s_default > rate_per_s_max or participant_instructions_per_s_default > rate_per_s_max:
    raise RuntimeError("a default rate must be one the configuration would accept")
if partner_burst_default > rate_burst_max or participant_burst_default > rate_burst_max:
    raise RuntimeError("a default burst must be one the configuration would accept")

# The audit log (switch/service/audit.py): the bounds of one entry. Actor, action and subject are
# short names; what a refusal names from the outside (a partner path segment, a peer address) is
# cut to these before it is written, so a hostile request cannot make an entry large.
audit_actor_chars_max: Final = 128
audit_action_chars_max: Final = 64
audit_subject_chars_max: Final = 255
audit_text_chars_max: Final = 200  # any one string inside an entry's detail
audit_read_batch_max: Final = 1_000  # entries `mekong audit verify` reads per query

# Signed business application headers (iso20022/apphdr.py, issue 8 item 2)
# A partner's AppHdr CreDt may be this far from the switch's clock, either way (its profile's
# [signing] credt_window_s, validated against this): transit plus clock skew. Every delivery attempt
# is signed anew, so a resend after hours still carries a fresh CreDt.
apphdr_credt_window_s_default: Final = 300.0
apphdr_credt_window_s_max: Final = 3_600.0
# A signature check costs about 1 ms (signxml copies the envelope a few times); a partner's
# signing certificate is read once at start, and its SPKI compared, never re-parsed per message.
apphdr_certificates_per_partner_max: Final = 4  # a current key and the next ones during a rotation

if apphdr_credt_window_s_default > apphdr_credt_window_s_max:
    raise RuntimeError("the default CreDt window must fit the largest one a profile may set")

# settlement reconciliation (issue 10)
recon_breaks_listed_max: Final = 1_000  # breaks one /v1/recon call lists
settlement_cycles_due_max: Final = 20  # cycles one settlement round closes or reconciles
report_reader_processes: Final = 2  # worker processes reading imported report files (CPU-bound XML + XSD)

# corridor controls (issue 11): how often each replica reads the operators' corridor and partner
# switches for its relay (held rows) and gauges; admission reads them in its own transaction
controls_refresh_s: Final = 1.0
control_reason_chars_max: Final = 500  # an operator's reason for a disable / pause
# the operator's toolbox (issue 11)
payments_page_default: Final = 50  # payments one /v1/payments page lists unless asked
payments_page_max: Final = 500  # the largest page asked for: a keyset page, newest first
payment_messages_max: Final = 200  # messages `mekong payments show` lists for one payment
# a partner message is stored in the transaction that applies it (the same clock reading as the
# history row); a signed envelope is noted just before: looked for this far before each move
payment_message_window_s: Final = 5.0
dlq_listed_max: Final = 500  # dead letters one list reads (from the end of each partition)
dlq_replay_batch_max: Final = 100  # offsets one replay call takes
dlq_read_timeout_s: Final = 10.0  # reading dead letters: the broker answers within this or the call fails
# a replay being published holds its claim this long at most: an older claim was left by a crash
# before the broker answered and may be taken again (the record may then reach its topic twice,
# which admission's idempotency absorbs)
dlq_replay_claim_s_max: Final = 60.0

if payments_page_default > payments_page_max:
    raise RuntimeError("the default page must fit the largest one")
if dlq_replay_claim_s_max < dlq_read_timeout_s:
    raise RuntimeError("a replay's claim must outlive the broker's answer to it")

# `mekong load` (issue 11, deployment): a participant's instructions published into a running stack
load_connect_s_max: Final = 30.0  # the broker answers the producer's first metadata request within this
load_ack_s_max: Final = 60.0  # one batch of records is acknowledged (acks=all) within this
load_batch_records_max: Final = 1_000  # records handed to the producer before waiting for their acknowledgement
load_wait_s_max: Final = 3_600.0  # `mekong load --wait-s`: the longest it waits for the final statuses
