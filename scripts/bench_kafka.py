"""confluent-kafka over the Kafka listener vs Raftka's own client over gRPC, same cluster.

    .venv/bin/python scripts/bench_kafka.py --records 50000 --runs 3

Starts 3 controllers + 3 brokers with Kafka listeners on 127.0.0.1; per run and client, one
topic (3 partitions, replication factor 3, min.insync.replicas 2) and ``--records`` records of
1 KiB produced idempotently with acks=all as fast as the client goes, then consumed from the
start: Raftka's with ``raftka perf produce`` / ``raftka perf consume`` (as scripts/bench_client.py),
confluent-kafka (librdkafka, default settings but idempotence, acks=all and the murmur2
partitioner) in this process. Prints records/s and the send-to-acknowledgement p50 / p99 of
each run, and medians. Runs are interleaved so that machine noise spreads over both clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftka.client.admin import AsyncAdmin
from raftka.ops.local_cluster import LocalCluster, stop_clusters_on_sigterm
from scripts.bench_client import perf

PARTITIONS = 3


def confluent_produce(
    servers: str, topic: str, records: int, size: int, settings: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """``settings``: more librdkafka properties (security: scripts/bench_kafka_security.py)."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": servers,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            **(settings or {}),
        }
    )
    payload = os.urandom(size)
    latencies: list[float] = []
    failures = 0
    now = time.monotonic

    def delivered_at(sent: float) -> Callable[[Any, Any], None]:
        def done(error: Any, _message: Any) -> None:
            nonlocal failures
            if error is None:
                latencies.append(now() - sent)
            else:
                failures += 1

        return done

    producer.produce(topic, b"warm-up")
    producer.flush(30)
    started = now()
    for i in range(records):
        while True:
            try:
                producer.produce(
                    topic, payload, key=str(i).encode(), on_delivery=delivered_at(now())
                )
                break
            except BufferError:
                producer.poll(0.005)
        if i % 1000 == 999:
            producer.poll(0)
    if producer.flush(120) != 0 or failures:
        raise RuntimeError(f"confluent-kafka: {failures} failed deliveries")
    wall = now() - started
    latencies.sort()
    return {
        "records/s": records / wall,
        "MB/s": records * size / wall / 1e6,
        "p50 ms": latencies[len(latencies) // 2] * 1000,
        "p99 ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def confluent_consume(
    servers: str, topic: str, records: int, settings: Mapping[str, Any] | None = None
) -> dict[str, float]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": "bench",
            "enable.auto.commit": False,
            **(settings or {}),
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got = 0
    size = 0
    started = time.monotonic()
    first = 0.0  # timed from the first record, as `raftka perf consume` is
    try:
        while got < records:
            for message in consumer.consume(10_000, 1.0):
                if message.error() is None:
                    if not first:
                        first = time.monotonic()
                    got += 1
                    size += len(message.value() or b"")
            if time.monotonic() - started > 120:
                raise RuntimeError(f"confluent-kafka consumed {got} of {records} in 120 s")
    finally:
        consumer.close()
    wall = time.monotonic() - first
    return {"records/s": got / wall, "MB/s": size / wall / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    stop_clusters_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(Path(tmp), controllers=3, brokers=3, log_level="warning", kafka=True)
        cluster.prepare()
        cluster.start()
        try:
            asyncio.run(_topics(cluster, args.runs))
            grpc_servers = ",".join(cluster.bootstrap_servers)
            kafka_servers = ",".join(cluster.kafka_bootstrap_servers)
            print(f"command: {' '.join(sys.argv)}")
            results: dict[str, list[dict[str, float]]] = {}
            for run in range(args.runs):
                figures = {
                    "raftka grpc produce": perf(
                        "produce",
                        "--topic",
                        f"grpc-{run}",
                        "--num-records",
                        str(args.records),
                        "--record-size",
                        str(args.record_size),
                        "--acks",
                        "all",
                        servers=grpc_servers,
                    ),
                    "raftka grpc consume": perf(
                        "consume",
                        "--topic",
                        f"grpc-{run}",
                        "--messages",
                        str(args.records),
                        servers=grpc_servers,
                    ),
                    "confluent kafka produce": confluent_produce(
                        kafka_servers, f"kafka-{run}", args.records, args.record_size
                    ),
                    "confluent kafka consume": confluent_consume(
                        kafka_servers, f"kafka-{run}", args.records
                    ),
                }
                for case, found in figures.items():
                    results.setdefault(case, []).append(found)
                    print(f"run {run + 1} {case:>24}: {_line(found)}", flush=True)
            print(
                f"\nmedians of {args.runs} runs, {args.records} records of {args.record_size} B, "
                "idempotent, acks=all, 3 brokers, RF 3, min.insync.replicas 2:"
            )
            for case, runs in results.items():
                med = {k: statistics.median(r[k] for r in runs if k in r) for k in runs[0]}
                print(f"  {case:>24}: {_line(med)}")
        finally:
            cluster.stop_all()


def _line(figures: dict[str, float]) -> str:
    return "  ".join(
        f"{name} {value:,.1f}" if name != "records/s" else f"{value:,.0f} records/s"
        for name, value in figures.items()
    )


async def _topics(cluster: LocalCluster, runs: int) -> None:
    async with AsyncAdmin(cluster.bootstrap, timeout_s=60) as admin:
        for _ in range(600):  # every broker registered and unfenced, within a minute
            brokers = (await admin.describe_cluster()).brokers
            if len([b for b in brokers if not b.fenced]) == len(cluster.brokers):
                break
            await asyncio.sleep(0.1)
        for run in range(runs):
            for prefix in ("grpc", "kafka"):
                await admin.create_topic(
                    f"{prefix}-{run}", PARTITIONS, 3, configs={"min.insync.replicas": "2"}
                )


if __name__ == "__main__":
    main()
