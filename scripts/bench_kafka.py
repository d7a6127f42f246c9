"""confluent-kafka over the Kafka listener vs Raftka's own client over gRPC, same cluster.

    .venv/bin/python scripts/bench_kafka.py --records 50000 --runs 3

Starts 3 controllers + 3 brokers with Kafka listeners on 127.0.0.1; per run and client, one
topic (3 partitions, replication factor 3, min.insync.replicas 2) and ``--records`` records of
1 KiB produced idempotently with acks=all as fast as the client goes, then consumed from the
start: Raftka's with ``raftka perf produce`` / ``raftka perf consume`` (as scripts/bench_client.py),
confluent-kafka (librdkafka, default settings but idempotence, acks=all and the murmur2
partitioner) in this process. Prints records/s and the send-to-acknowledgement p50 / p99 of
each run, and medians. Runs are interleaved so that machine noise spreads over both clients.

    .venv/bin/python scripts/bench_kafka.py --compare-fetch --records 100000 --runs 5

compares the Kafka listener's two Fetch paths instead: two clusters (1 controller, 1 broker,
replication factor 1) run side by side, one sending records from the segment files with
``sendfile`` (``kafka_fetch_sendfile = true``, the default), one reading them into memory
first (``false``). The same records are produced into each with confluent-kafka, then consumed
with confluent-kafka from each in turn, ``--runs`` times (interleaved, so that noise from the
shared machine falls on both). Prints records/s, MB/s and the broker process's CPU seconds
per GB served (user + system, from /proc, over the consume), with medians and their ratios;
then the same for ``--raw-answers`` Fetch answers read by a bare socket client that does not
parse them (4 requests pipelined, every partition from offset 0, up to 4 MiB each), which
shows what the broker serves when the client is not the bottleneck.
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
            # consume() waits its whole timeout for fewer than it asks: never ask past the end.
            for message in consumer.consume(min(10_000, records - got), 1.0):
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch_frame(topic: str, correlation_id: int, partition_max_bytes: int) -> bytes:
    """A size-prefixed Fetch v12 for every partition of ``topic`` from offset 0."""
    import datetime
    import io
    import struct

    from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
    from kio.schema.request_header.v2.header import RequestHeader
    from kio.schema.types import BrokerId, TopicName
    from kio.serial import entity_writer
    from kio.static.primitive import i8, i16, i32, i32Timedelta, i64

    request = FetchRequest(
        cluster_id=None,
        replica_id=BrokerId(-1),
        max_wait=i32Timedelta.parse(datetime.timedelta(milliseconds=500)),
        min_bytes=i32(1),
        max_bytes=i32(64 << 20),
        isolation_level=i8(0),
        session_id=i32(0),
        session_epoch=i32(-1),
        topics=(
            FetchTopic(
                topic=TopicName(topic),
                partitions=tuple(
                    FetchPartition(
                        partition=i32(p),
                        current_leader_epoch=i32(-1),
                        fetch_offset=i64(0),
                        last_fetched_epoch=i32(-1),
                        log_start_offset=i64(-1),
                        partition_max_bytes=i32(partition_max_bytes),
                    )
                    for p in range(PARTITIONS)
                ),
            ),
        ),
        forgotten_topics_data=(),
        rack_id="",
    )
    buffer = io.BytesIO()
    header = RequestHeader(
        request_api_key=i16(1),
        request_api_version=i16(12),
        correlation_id=i32(correlation_id),
        client_id="bench",
    )
    entity_writer(RequestHeader)(buffer, header)
    entity_writer(FetchRequest)(buffer, request)
    body = buffer.getvalue()
    return struct.pack(">i", len(body)) + body


def raw_fetch(server: str, topic: str, answers: int, in_flight: int = 4) -> tuple[float, int]:
    """Seconds and bytes for ``answers`` Fetch answers (every partition from offset 0, up to
    4 MiB each), ``in_flight`` requests pipelined, their bytes read and not parsed: what the
    broker serves, with as little client work as possible."""
    import socket

    host, _, port = server.rpartition(":")
    frame = fetch_frame(topic, 7, 4 << 20)
    total = 0
    with socket.create_connection((host, int(port))) as sock:
        stream = sock.makefile("rb", buffering=1 << 20)
        started = time.monotonic()
        for _ in range(min(in_flight, answers)):
            sock.sendall(frame)
        for done in range(answers):
            size = int.from_bytes(stream.read(4), "big")
            body = stream.read(size)
            if len(body) != size:
                raise RuntimeError(f"the answer was cut at {len(body)} of {size} bytes")
            total += 4 + size
            if done + in_flight < answers:
                sock.sendall(frame)
        return time.monotonic() - started, total


def compare_fetch(args: argparse.Namespace) -> None:
    paths = {"sendfile": True, "buffered": False}
    with tempfile.TemporaryDirectory() as tmp:
        clusters = {
            name: LocalCluster(
                Path(tmp) / name,
                controllers=1,
                brokers=1,
                log_level="warning",
                kafka=True,
                broker_settings={"kafka_fetch_sendfile": on},
            )
            for name, on in paths.items()
        }
        try:
            for cluster in clusters.values():
                cluster.prepare()
                cluster.start()
            print(f"command: {' '.join(sys.argv)}")
            for name, cluster in clusters.items():
                servers = ",".join(cluster.kafka_bootstrap_servers)
                asyncio.run(_create(cluster, [("fetch", 1, {})]))
                made = confluent_produce(servers, "fetch", args.records, args.record_size)
                print(f"produced into the {name} cluster: {_line(made)}", flush=True)
            results: dict[str, list[dict[str, float]]] = {}
            for run in range(args.runs):
                for name, cluster in clusters.items():
                    (broker_id,) = cluster.brokers
                    pid = cluster.node(broker_id).process.pid  # type: ignore[union-attr]
                    servers = ",".join(cluster.kafka_bootstrap_servers)
                    cpu = cpu_seconds(pid)
                    found = confluent_consume(servers, "fetch", args.records + 1)
                    served_gb = (args.records + 1) * args.record_size / 1e9
                    found["broker CPU s/GB"] = (cpu_seconds(pid) - cpu) / served_gb
                    results.setdefault(name, []).append(found)
                    print(f"run {run + 1} {name:>9}: {_line(found)}", flush=True)
                    cpu = cpu_seconds(pid)
                    seconds, nbytes = raw_fetch(
                        cluster.kafka_bootstrap_servers[0], "fetch", args.raw_answers
                    )
                    raw = {
                        "MB/s": nbytes / seconds / 1e6,
                        "broker CPU s/GB": (cpu_seconds(pid) - cpu) / (nbytes / 1e9),
                    }
                    results.setdefault(f"{name} raw", []).append(raw)
                    print(f"run {run + 1} {name + ' raw':>13}: {_line(raw)}", flush=True)
            print(
                f"\nmedians of {args.runs} runs, {args.records} records of {args.record_size} B, "
                "consumed by confluent-kafka from 1 broker (RF 1):"
            )
            medians = {
                name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                for name, runs in results.items()
            }
            for name, med in medians.items():
                print(f"  {name:>13}: {_line(med)}")
            for suffix in ("", " raw"):
                on, off = medians["sendfile" + suffix], medians["buffered" + suffix]
                ratios = "  ".join(f"{k} {on[k] / off[k]:.2f}x" for k in on)
                print(f"  sendfile / buffered{suffix}: {ratios}")
        finally:
            for cluster in clusters.values():
                cluster.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--raw-answers",
        type=int,
        default=300,
        help="--compare-fetch: Fetch answers read raw (no client decoding) per run",
    )
    parser.add_argument(
        "--compare-fetch",
        action="store_true",
        help="compare the Kafka Fetch paths (sendfile vs buffered) instead of the clients",
    )
    args = parser.parse_args()
    stop_clusters_on_sigterm()
    if args.compare_fetch:
        compare_fetch(args)
        return
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
    await _create(
        cluster,
        [
            (f"{prefix}-{run}", 3, {"min.insync.replicas": "2"})
            for run in range(runs)
            for prefix in ("grpc", "kafka")
        ],
    )


async def _create(cluster: LocalCluster, topics: list[tuple[str, int, dict[str, str]]]) -> None:
    """Once every broker is registered and unfenced: the (name, replication factor,
    configs) topics, of PARTITIONS partitions each."""
    async with AsyncAdmin(cluster.bootstrap, timeout_s=60) as admin:
        for _ in range(600):  # every broker registered and unfenced, within a minute
            brokers = (await admin.describe_cluster()).brokers
            if len([b for b in brokers if not b.fenced]) == len(cluster.brokers):
                break
            await asyncio.sleep(0.1)
        for name, replication, configs in topics:
            await admin.create_topic(name, PARTITIONS, replication, configs=configs)


if __name__ == "__main__":
    main()
