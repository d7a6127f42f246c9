"""Broker figures: produce/fetch throughput next to a raw gRPC ceiling, and resident memory.

    .venv/bin/python scripts/bench_broker.py throughput --runs 3 --seconds 10 --in-flight 8
    .venv/bin/python scripts/bench_broker.py memory --partitions 1000 --megabytes 1000

throughput: one broker, RF 1, 1 KiB records in batches of 64 (about 66 KB), acks=1. Each run
            measures, one after the other with the same client, payloads and concurrency:
            echo    - the raw gRPC ceiling: a separate process serving a generic unary method
                      that takes the bytes of one produce request and answers a 2-byte ack;
            parse   - the same echo, but the server parses the bytes as a ProduceRequest;
            produce - Produce to the broker (one partition per request, round robin);
            fetch   - reads back everything produced from offset 0, 1 MiB per request, with
                      the same number of requests in flight (each on its own offset range).
            Requests are serialized once up front, so client cost is the same for all three.
memory:     1,000 single-partition topics on one broker; its RSS idle, sampled every 0.5 s
            while ~1 GB is produced round robin over all partitions, and idle again.
Numbers are printed, not asserted. Everything runs on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from raftka.client.controller_client import ControllerClient
from raftka.client.local_cluster import LocalCluster, free_port
from raftka.common.records import read_base_offset, read_batch_size
from raftka.common.records.builder import build_batch
from raftka.controller.quorum.transport import GRPC_OPTIONS
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import controller_pb2 as cpb

RECORD_BYTES = 1024
BATCH_RECORDS = 64
ECHO_RAW = "/bench.Echo/Raw"
ECHO_PARSE = "/bench.Echo/Parse"
PRODUCE = "/raftka.v1.BrokerService/Produce"
FETCH = "/raftka.v1.BrokerService/Fetch"
LIST_OFFSETS = "/raftka.v1.BrokerService/ListOffsets"
LAST_OFFSET_DELTA = struct.Struct(">i")
Call = Callable[[bytes], Awaitable[bytes]]


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    uvloop.install()
    return True


# ---- the echo server (a child process: `bench_broker.py echo-server --port N`) ----


async def echo_server(port: int) -> None:
    async def raw(_request: bytes, _context: Any) -> bytes:
        return b"ok"

    async def parse(request: bytes, _context: Any) -> bytes:
        req = bpb.ProduceRequest.FromString(request)
        p = req.topics[0].partitions[0]
        result = bpb.PartitionProduceResult(topic=req.topics[0].topic, partition=p.partition)
        return bpb.ProduceResponse(results=[result]).SerializeToString()

    handlers = {
        "Raw": grpc.unary_unary_rpc_method_handler(raw),
        "Parse": grpc.unary_unary_rpc_method_handler(parse),
    }
    server = grpc.aio.server(options=GRPC_OPTIONS)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


# ---- measuring ----


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile and VmHWM of a process, in MB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


@dataclass
class Figure:
    calls: int
    records: int
    nbytes: int
    elapsed: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float

    def line(self, name: str, unit: str) -> str:
        q = statistics.quantiles(self.latencies, n=100) if len(self.latencies) > 1 else [0.0] * 99
        rate = f"{self.records / self.elapsed:9.0f} records/s" if self.records else " " * 19
        return (
            f"{name:8s} {self.calls / self.elapsed:7.0f} {unit}/s {rate} "
            f"{self.nbytes / self.elapsed / 1e6:7.1f} MB/s  p50 {q[49] * 1e3:6.2f} ms "
            f"p99 {q[98] * 1e3:6.2f} ms  cpu server {self.server_cpu:4.0%} "
            f"client {self.client_cpu:4.0%}"
        )


async def measure(
    server_pid: int, in_flight: int, work: Callable[[int, list[float]], Awaitable[None]]
) -> tuple[float, list[float], float, float]:
    """Run ``work(worker, latencies)`` in ``in_flight`` workers; elapsed time, latencies and
    the CPU share used by the server process and this process meanwhile."""
    latencies: list[float] = []
    server0, client0, start = proc_cpu_s(server_pid), time.process_time(), time.monotonic()
    await asyncio.gather(*(work(w, latencies) for w in range(in_flight)))
    elapsed = time.monotonic() - start
    server_cpu = (proc_cpu_s(server_pid) - server0) / elapsed
    return elapsed, latencies, server_cpu, (time.process_time() - client0) / elapsed


async def drive(
    call: Call, payloads: Sequence[bytes], in_flight: int, seconds: float, server_pid: int
) -> Figure:
    """Send ``payloads`` round robin for ``seconds`` with ``in_flight`` calls outstanding."""
    deadline = time.monotonic() + seconds
    sent = [0]

    async def work(w: int, latencies: list[float]) -> None:
        i = w
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            await call(payloads[i % len(payloads)])
            latencies.append(time.perf_counter() - t0)
            sent[0] += len(payloads[i % len(payloads)])
            i += in_flight

    elapsed, latencies, server_cpu, client_cpu = await measure(server_pid, in_flight, work)
    return Figure(len(latencies), 0, sent[0], elapsed, latencies, server_cpu, client_cpu)


def produce_request(topic: str, partition: int, batch: bytes) -> bytes:
    data = bpb.PartitionProduceData(partition=partition, batches=batch)
    topics = [bpb.TopicProduceData(topic=topic, partitions=[data])]
    return bpb.ProduceRequest(acks=1, timeout_ms=30_000, topics=topics).SerializeToString()


def checked_produce(channel: Any) -> Call:
    raw = channel.unary_unary(PRODUCE)

    async def call(request: bytes) -> bytes:
        reply: bytes = await raw(request, timeout=30)
        for r in bpb.ProduceResponse.FromString(reply).results:
            if r.error_code != 0:
                raise RuntimeError(f"produce {r.topic}-{r.partition}: {r.error_message}")
        return reply

    return call


async def fetch_all(
    channel: Any,
    topic: str,
    ends: dict[int, int],
    in_flight: int,
    max_bytes: int,
    batch_bytes: int,
    server_pid: int,
) -> Figure:
    """Read every partition from offset 0 to its end: the offsets are cut into ranges of about
    ``max_bytes`` (all batches hold BATCH_RECORDS records) served by ``in_flight`` workers."""
    call = channel.unary_unary(FETCH, response_deserializer=bpb.FetchResponse.FromString)
    step = max(1, max_bytes // batch_bytes) * BATCH_RECORDS
    ranges = [(p, o, min(o + step, end)) for p, end in ends.items() for o in range(0, end, step)]
    got = {"records": 0, "bytes": 0}

    async def work(_w: int, latencies: list[float]) -> None:
        while ranges:
            partition, offset, end = ranges.pop()
            while offset < end:
                part = bpb.FetchPartition(
                    partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes
                )
                request = bpb.FetchRequest(
                    replica_id=-1,
                    max_bytes=max_bytes,
                    topics=[bpb.FetchTopic(topic=topic, partitions=[part])],
                )
                t0 = time.perf_counter()
                (result,) = (await call(request, timeout=30)).results
                latencies.append(time.perf_counter() - t0)
                data, pos, start = result.batches, 0, offset
                if result.error_code != 0 or not data:
                    raise RuntimeError(f"fetch {topic}-{partition}@{offset}: {result!r:.200}")
                while pos < len(data) and (base := read_base_offset(data, pos)) < end:
                    size = read_batch_size(data, pos)
                    if base >= start:  # a batch starting before the range is the previous one's
                        offset = base + LAST_OFFSET_DELTA.unpack_from(data, pos + 23)[0] + 1
                        got["records"] += offset - base
                        got["bytes"] += size
                    pos += size

    elapsed, latencies, server_cpu, client_cpu = await measure(server_pid, in_flight, work)
    return Figure(
        len(latencies), got["records"], got["bytes"], elapsed, latencies, server_cpu, client_cpu
    )


# ---- cluster helpers ----


async def wait_unfenced(client: ControllerClient, brokers: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with_errors_ignored = await client.describe_cluster()
        live = [b for b in with_errors_ignored.brokers if not b.fenced]
        if len(live) >= brokers:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{brokers} broker(s) not unfenced within {timeout_s}s")


async def create_and_wait(
    client: ControllerClient, channel: Any, topics: dict[str, int], timeout_s: float = 120
) -> None:
    """Create ``topics`` (name -> partitions, RF 1) in groups of 100 and wait until the broker
    answers ListOffsets for every partition (it then hosts them)."""
    names = list(topics)
    for i in range(0, len(names), 100):
        new = [cpb.NewTopic(name=n, num_partitions=topics[n], replication_factor=1) for n in names]
        for r in await client.create_topics(new[i : i + 100]):
            if r.error_code != 0:
                raise RuntimeError(f"create {r.name}: {r.error_message}")
    call = channel.unary_unary(
        LIST_OFFSETS, response_deserializer=bpb.ListOffsetsResponse.FromString
    )
    wanted = [
        bpb.ListOffsetsTopic(
            topic=n, partitions=[bpb.ListOffsetsPartition(partition=p, timestamp=-1) for p in range(c)]
        )
        for n, c in topics.items()
    ]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = await call(bpb.ListOffsetsRequest(topics=wanted), timeout=30)
        missing = sum(1 for r in response.results if r.error_code != 0)
        if not missing:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{missing} partitions not hosted within {timeout_s}s")


def one_batch() -> bytes:
    value = os.urandom(RECORD_BYTES)
    now = int(time.time() * 1000)
    return bytes(build_batch([(now, b"k%05d" % i, value, ()) for i in range(BATCH_RECORDS)]))


# ---- subcommands ----


async def throughput(cluster: LocalCluster, args: argparse.Namespace, echo_pid: int) -> None:
    broker = next(iter(cluster.brokers.values()))
    assert broker.process is not None
    batch = one_batch()
    median: dict[str, list[Figure]] = {"echo": [], "parse": [], "produce": [], "fetch": []}
    async with ControllerClient(cluster.bootstrap) as client:
        await wait_unfenced(client, 1)
        echo = grpc.aio.insecure_channel(f"127.0.0.1:{args.echo_port}", options=GRPC_OPTIONS)
        channel = grpc.aio.insecure_channel(broker.address, options=GRPC_OPTIONS)
        try:
            await asyncio.wait_for(echo.channel_ready(), 30)
            for run in range(1, args.runs + 1):
                topic = f"bench-{run}"
                await create_and_wait(client, channel, {topic: args.partitions})
                payloads = [produce_request(topic, p, batch) for p in range(args.partitions)]
                for name, path in (("echo", ECHO_RAW), ("parse", ECHO_PARSE)):
                    fig = await drive(
                        echo.unary_unary(path), payloads, args.in_flight, args.seconds, echo_pid
                    )
                    median[name].append(fig)
                    print(f"run {run} {fig.line(name, 'calls')}", flush=True)
                fig = await drive(
                    checked_produce(channel),
                    payloads,
                    args.in_flight,
                    args.seconds,
                    broker.process.pid,
                )
                fig.records = fig.calls * BATCH_RECORDS
                median["produce"].append(fig)
                print(f"run {run} {fig.line('produce', 'calls')}", flush=True)
                ends = await latest_offsets(channel, topic, args.partitions)
                fig = await fetch_all(
                    channel, topic, ends, args.in_flight, args.fetch_bytes, len(batch), broker.process.pid
                )
                median["fetch"].append(fig)
                print(f"run {run} {fig.line('fetch', 'calls')}", flush=True)
                if fig.records != sum(ends.values()):
                    print(f"  !! fetched {fig.records} records of {sum(ends.values())} produced")
                await client.delete_topics([topic])
        finally:
            await echo.close()
            await channel.close()
    print(f"\nmedians of {args.runs} runs:")
    for name, figs in median.items():
        mid = sorted(figs, key=lambda f: f.nbytes / f.elapsed)[len(figs) // 2]
        print(f"  {mid.line(name, 'calls')}")
    mbps = {n: statistics.median(f.nbytes / f.elapsed for f in figs) for n, figs in median.items()}
    print(
        f"produce / echo ceiling: {mbps['produce'] / mbps['echo']:.2f}   "
        f"produce / parse-echo: {mbps['produce'] / mbps['parse']:.2f}   "
        f"fetch / echo ceiling: {mbps['fetch'] / mbps['echo']:.2f}"
    )


async def latest_offsets(channel: Any, topic: str, partitions: int) -> dict[int, int]:
    call = channel.unary_unary(
        LIST_OFFSETS, response_deserializer=bpb.ListOffsetsResponse.FromString
    )
    parts = [bpb.ListOffsetsPartition(partition=p, timestamp=-1) for p in range(partitions)]
    request = bpb.ListOffsetsRequest(topics=[bpb.ListOffsetsTopic(topic=topic, partitions=parts)])
    return {r.partition: r.offset for r in (await call(request, timeout=30)).results}
