"""The broker hop alone: how long a record takes from a producer to a consumer through the
embedded Tansu broker, with the switch's own client settings, at a fixed rate and no switch in
between. `mekong bench` reports `switch_latency_ms` (instruction published -> status record
handed to Kafka); that number contains one such hop, which this benchmark measures by itself.

    .venv/bin/python tests/bench/bench_broker_hop.py --rate 500 --count 15000 --json bench-out/bench-broker-hop.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from switch import limits  # noqa: E402
from switch.broker import TansuBroker  # noqa: E402
from switch.entrypoints.main import ensure_topics  # noqa: E402
from switch.tools.loadgen import percentiles  # noqa: E402

topic = "bench.hop"
partitions = 4


async def measure(bootstrap: str, count: int, rate: float) -> dict[str, object]:
    await ensure_topics(bootstrap, [topic], partitions)
    # the load generator's producer settings, the switch consumer's fetch settings
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=limits.kafka_fetch_wait_ms_max,
        max_poll_records=limits.batch_records_max,
    )
    await producer.start()
    await consumer.start()
    parts = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for tp in parts:
        await consumer.position(tp)
    hops_ms: list[float] = []
    done = asyncio.Event()

    async def read() -> None:
        while len(hops_ms) < count:
            for records in (await consumer.getmany(timeout_ms=limits.kafka_poll_timeout_ms)).values():
                now_ms = time.time() * 1000
                hops_ms.extend(now_ms - r.timestamp for r in records)
        done.set()

    reader = asyncio.create_task(read())
    started = time.perf_counter()
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await producer.send(topic, value=b"x" * 600, key=str(i).encode())
    await asyncio.wait_for(done.wait(), timeout=120)
    await reader
    await producer.stop()
    await consumer.stop()
    return {"records": len(hops_ms), "rate_per_s": rate, "hop_ms": percentiles(hops_ms),
            "fetch_max_wait_ms": limits.kafka_fetch_wait_ms_max, "producer_linger_ms": 5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--count", type=int, default=15_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = TansuBroker(log_path=Path(tmp) / "tansu.log")
        broker.start()
        try:
            result = asyncio.run(measure(broker.bootstrap_servers, args.count, args.rate))
        finally:
            broker.stop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
