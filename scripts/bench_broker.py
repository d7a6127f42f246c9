"""Broker figures: produce/fetch throughput next to a raw gRPC ceiling, and resident memory.

    .venv/bin/python scripts/bench_broker.py throughput --runs 3 --seconds 10 --in-flight 8
    .venv/bin/python scripts/bench_broker.py memory --partitions 1000 --megabytes 1000

Numbers are printed, not asserted. Everything runs on 127.0.0.1 and is stopped at the end;
--profile DIR samples the servers during the first run with py-spy (pip install py-spy) or
--profiler "perf record -F 499 -g -o {out}.perf -p {pid}".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from raftka.common.records import read_base_offset, read_batch_size
from raftka.common.records.builder import build_batch
from raftka.common.rpc.channels import new_server, open_channel
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.rpc.fetch_wire import fetch_call
from raftka.ops.local_cluster import LocalCluster, free_port
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import controller_pb2 as cpb
from raftka.v1.broker_pb2_grpc import BrokerServiceStub

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for scripts.bench_support
from scripts.bench_support import PY_SPY, Call, Figure, drive, measure, proc_rss_mb, profiled

ABOUT = {
    "throughput": """one broker, RF 1, 1 KiB records in batches of 64 (66 KB), acks=1,
  N requests in flight from this process, the same payloads for every phase (serialized once,
  so the client's work is the same). Per run, one phase after the other:
  echo    the raw gRPC ceiling: a separate Python process (uvloop, same gRPC options) with a
          generic unary method that takes the bytes of one produce request and answers b"ok";
  parse   the same, but it also parses the bytes as a ProduceRequest;
  hop     parse, plus one asyncio.to_thread call of a no-op (the broker appends in a thread);
  stream  the echo over N bidi streams instead of unary calls (one message in flight on each):
          the ceiling of a streaming Produce;
  produce Produce to the broker, one partition per request, round robin over the partitions;
  fetch   read back all of it from offset 0, 1 MiB per request, N requests in flight, each on
          its own offset range.
  cpu: share of one core used by the server / this client meanwhile; us/call: server CPU time
  per call, and this client's (the fetch phase reads answers as the consumer does: through
  common/rpc/fetch_wire.py). Other processes on the machine add noise: see the load
  averages.""",
    "memory": """the broker's resident memory with --partitions (1,000) single-partition
  topics: idle, sampled every 0.5 s while --megabytes (1,000 MB) are produced round robin over
  all partitions in 64 KiB batches, and idle again (anon = heap, file = mapped files).""",
}
RECORD_BYTES = 1024
BATCH_RECORDS = 64
LAST_OFFSET_DELTA = struct.Struct(">i")  # at byte 23 of a v2 batch header


async def echo_server(port: int) -> None:
    """The ceiling (a child process: ``bench_broker.py echo-server --port N``)."""

    async def raw(_request: bytes, _context: Any) -> bytes:
        return b"ok"

    async def parse(request: bytes, _context: Any) -> bytes:
        req = bpb.ProduceRequest.FromString(request)
        result = bpb.PartitionProduceResult(topic=req.topics[0].topic)
        return bpb.ProduceResponse(results=[result]).SerializeToString()

    async def hop(request: bytes, context: Any) -> bytes:
        reply = await parse(request, context)
        await asyncio.to_thread(len, request)
        return reply

    async def stream(requests: Any, _context: Any) -> Any:
        async for _request in requests:
            yield b"ok"

    handlers = {
        "Stream": grpc.stream_stream_rpc_method_handler(stream),
        "Raw": grpc.unary_unary_rpc_method_handler(raw),
        "Parse": grpc.unary_unary_rpc_method_handler(parse),
        "Hop": grpc.unary_unary_rpc_method_handler(hop),
    }
    server = new_server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def produce_request(topic: str, partition: int, batch: bytes) -> bytes:
    data = bpb.PartitionProduceData(partition=partition, batches=batch)
    topics = [bpb.TopicProduceData(topic=topic, partitions=[data])]
    return bpb.ProduceRequest(acks=1, timeout_ms=30_000, topics=topics).SerializeToString()


def checked_produce(channel: Any) -> Call:
    """Produce with an already serialized request; raises on any partition error."""
    raw = channel.unary_unary("/raftka.v1.BrokerService/Produce")

    async def call(request: bytes) -> bytes:
        reply: bytes = await raw(request, timeout=30)
        for r in bpb.ProduceResponse.FromString(reply).results:
            if r.error_code != 0:
                raise RuntimeError(f"produce {r.topic}-{r.partition}: {r.error_message}")
        return reply

    return call


def stream_echo(channel: Any, streams: int) -> Call:
    """Echo calls over ``streams`` bidi streams (opened on first use), one message in flight
    on each: the drive's workers never outnumber them."""
    free: list[Any] = []

    async def call(request: bytes) -> bytes:
        stream = free.pop() if free else channel.stream_stream("/bench.Echo/Stream")()
        await stream.write(request)
        reply: bytes = await stream.read()
        free.append(stream)
        return reply

    return call


async def fetch_all(
    channel: Any, topic: str, ends: dict[int, int], args: argparse.Namespace, pid: int
) -> Figure:
    """Read every partition from offset 0 to its end; the offsets are cut into ranges of about
    ``--fetch-bytes`` (every batch holds BATCH_RECORDS records) that the workers take in turn."""
    call = fetch_call(channel)
    max_bytes = args.fetch_bytes
    step = max(1, max_bytes // len(one_batch())) * BATCH_RECORDS
    ranges = [(p, o, min(o + step, end)) for p, end in ends.items() for o in range(0, end, step)]

    async def work(_w: int, fig: Figure) -> None:
        while ranges:
            partition, offset, end = ranges.pop()
            while offset < end:
                request = bpb.FetchRequest(replica_id=-1, max_bytes=max_bytes)
                request.topics.add(topic=topic).partitions.add(
                    partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes
                )
                t0 = time.perf_counter()
                (result,) = (await call(request, timeout=30)).results
                fig.latencies.append(time.perf_counter() - t0)
                data, pos, start = result.batches, 0, offset
                if result.error_code != 0 or not data:
                    raise RuntimeError(f"fetch {topic}-{partition}@{offset}: {result!r:.200}")
                while pos < len(data) and (base := read_base_offset(data, pos)) < end:
                    size = read_batch_size(data, pos)
                    if base >= start:  # a batch that starts before the range is not ours
                        offset = base + LAST_OFFSET_DELTA.unpack_from(data, pos + 23)[0] + 1
                        fig.records += offset - base
                        fig.nbytes += size
                    pos += size

    return await measure(pid, args.in_flight, work)


# ---- cluster helpers ----


async def wait_unfenced(client: ControllerClient, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        brokers = (await client.describe_cluster()).brokers
        if brokers and not any(b.fenced for b in brokers):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the broker was not unfenced within {timeout_s}s")


async def latest_offsets(channel: Any, topics: dict[str, int]) -> dict[tuple[str, int], int]:
    """ListOffsets(latest) of every partition of ``topics`` (name -> partitions); -1 where the
    broker answered with an error (e.g. it does not host the partition yet)."""
    request = bpb.ListOffsetsRequest()
    for name, count in topics.items():
        t = request.topics.add(topic=name)
        t.partitions.extend(
            bpb.ListOffsetsPartition(partition=p, timestamp=-1) for p in range(count)
        )
    response = await BrokerServiceStub(channel).ListOffsets(request, timeout=30)
    offsets = {(n, p): -1 for n, count in topics.items() for p in range(count)}
    offsets.update({(r.topic, r.partition): r.offset for r in response.results if not r.error_code})
    return offsets


async def create_and_wait(
    client: ControllerClient, channel: Any, topics: dict[str, int], timeout_s: float = 120
) -> None:
    """Create ``topics`` (RF 1) 100 at a time; wait until the broker hosts every partition."""
    new = [cpb.NewTopic(name=n, num_partitions=c, replication_factor=1) for n, c in topics.items()]
    for i in range(0, len(new), 100):
        for r in await client.create_topics(new[i : i + 100]):
            if r.error_code != 0:
                raise RuntimeError(f"create {r.name}: {r.error_message}")
    deadline = time.monotonic() + timeout_s
    while -1 in (await latest_offsets(channel, topics)).values():
        if time.monotonic() > deadline:
            raise RuntimeError(f"partitions not hosted within {timeout_s}s")
        await asyncio.sleep(0.2)


def one_batch() -> bytes:
    value = os.urandom(RECORD_BYTES)
    now = int(time.time() * 1000)
    return bytes(build_batch([(now, b"k%05d" % i, value, ()) for i in range(BATCH_RECORDS)]))


# ---- subcommands ----


async def throughput(cluster: LocalCluster, args: argparse.Namespace, echo_pid: int) -> None:
    broker = next(iter(cluster.brokers.values()))
    assert broker.process is not None
    pid, batch = broker.process.pid, one_batch()
    phases = ("echo", "parse", "hop", "stream", "produce", "fetch")
    figures: dict[str, list[Figure]] = {n: [] for n in phases}

    def profile(run: int, name: str, target: int) -> contextlib.AbstractContextManager[None]:
        out = args.profile / name if args.profile and run == 1 else None
        return profiled(args.profiler, target, out)

    def report(run: int, name: str, fig: Figure) -> None:
        figures[name].append(fig)
        print(f"run {run} {line(name, fig)}", flush=True)

    async with ControllerClient(cluster.bootstrap) as client:
        await wait_unfenced(client)
        echo = open_channel(f"127.0.0.1:{args.echo_port}")
        channel = open_channel(broker.address)
        try:
            await asyncio.wait_for(echo.channel_ready(), 30)
            for run in range(1, args.runs + 1):
                topic = f"bench-{run}"
                await create_and_wait(client, channel, {topic: args.partitions})
                payloads = [produce_request(topic, p, batch) for p in range(args.partitions)]
                for name, call in (
                    ("echo", echo.unary_unary("/bench.Echo/Raw")),
                    ("parse", echo.unary_unary("/bench.Echo/Parse")),
                    ("hop", echo.unary_unary("/bench.Echo/Hop")),
                    ("stream", stream_echo(echo, args.in_flight)),
                    ("produce", checked_produce(channel)),
                ):
                    server = pid if name == "produce" else echo_pid
                    with profile(run, name, server):
                        fig = await drive(call, payloads, args.in_flight, args.seconds, server)
                    if name == "produce":
                        fig.records = len(fig.latencies) * BATCH_RECORDS
                    report(run, name, fig)
                ends = await latest_offsets(channel, {topic: args.partitions})
                with profile(run, "fetch", pid):
                    fig = await fetch_all(
                        channel, topic, {p: o for (_, p), o in ends.items()}, args, pid
                    )
                report(run, "fetch", fig)
                if fig.records != sum(ends.values()):
                    print(f"  !! fetched {fig.records} records of {sum(ends.values())} produced")
                await client.delete_topics([topic])
        finally:
            await echo.close()
            await channel.close()
    print(f"\nmedians of {args.runs} run(s) (the run with the median MB/s of each phase):")
    mbps = {}
    for name, figs in figures.items():
        figs.sort(key=lambda f: f.nbytes / f.elapsed)
        mid = figs[len(figs) // 2]
        mbps[name] = mid.nbytes / mid.elapsed
        print(f"      {line(name, mid)}")
    print(
        f"produce / echo ceiling {mbps['produce'] / mbps['echo']:.2f}; "
        f"produce / parse-echo {mbps['produce'] / mbps['parse']:.2f}; "
        f"fetch (1 MiB replies) / echo {mbps['fetch'] / mbps['echo']:.2f}; "
        f"load average at the end {os.getloadavg()[0]:.2f}"
    )


def line(name: str, fig: Figure) -> str:
    """A phase's figures, with this client's CPU per call."""
    client_us = fig.client_cpu * fig.elapsed / max(1, len(fig.latencies)) * 1e6
    return f"{fig.line(name)} {client_us:4.0f} us/call"


async def memory(cluster: LocalCluster, args: argparse.Namespace) -> None:
    broker = next(iter(cluster.brokers.values()))
    assert broker.process is not None
    pid = broker.process.pid
    topics = {f"mem-{i:04d}": 1 for i in range(args.partitions)}
    samples: list[tuple[float, float, dict[str, float]]] = []
    fig = Figure()

    async def sample() -> None:
        t0 = time.monotonic()
        while True:
            samples.append((time.monotonic() - t0, fig.nbytes / 1e6, proc_rss_mb(pid)))
            await asyncio.sleep(0.5)

    async with ControllerClient(cluster.bootstrap, timeout_s=60) as client:
        await wait_unfenced(client)
        channel = open_channel(broker.address)
        try:
            started = time.monotonic()
            await create_and_wait(client, channel, topics)
            print(
                f"{len(topics)} partitions created and hosted in {time.monotonic() - started:.1f}s"
            )
            await asyncio.sleep(args.idle)
            before = proc_rss_mb(pid)
            batch = one_batch()
            payloads = [produce_request(t, 0, batch) for t in topics]
            limit = int(args.megabytes * 1e6 / len(payloads[0])) + 1
            sampler = asyncio.create_task(sample())
            await drive(checked_produce(channel), payloads, args.in_flight, 600, pid, limit, fig)
            sampler.cancel()
            samples.append((fig.elapsed, fig.nbytes / 1e6, proc_rss_mb(pid)))
            await asyncio.sleep(args.idle)
            after = proc_rss_mb(pid)
        finally:
            await channel.close()

    def rss(r: dict[str, float]) -> str:
        return f"VmRSS {r['VmRSS']:6.1f} MB (anon {r['RssAnon']:6.1f}, file {r['RssFile']:5.1f})"

    fig.records = len(fig.latencies) * BATCH_RECORDS
    print(f"idle before load : {rss(before)}")
    print(f"under load       : {fig.line('produce')}")
    stride = max(1, len(samples) // 20)
    for t, mb, r in samples[::stride] + ([samples[-1]] if (len(samples) - 1) % stride else []):
        print(f"  t {t:5.1f}s  produced {mb:7.1f} MB  {rss(r)}")
    print(f"max under load   : {rss(max((s[2] for s in samples), key=lambda r: r['VmRSS']))}")
    print(f"idle after load  : {rss(after)}; VmHWM {after['VmHWM']:.1f} MB")
    files = [f for f in broker.data_dir.rglob("*") if f.is_file()]
    size, disk = sum(f.stat().st_size for f in files), sum(f.stat().st_blocks for f in files)
    print(f"stored           : {size / 1e6:.1f} MB in {len(files)} files", end=", ")
    print(f"{disk * 512 / 1e6:.1f} MB on disk")


def main() -> int:
    argv = sys.argv[1:]
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["throughput", *argv]  # the default subcommand
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--controllers", type=int, default=1, choices=(1, 3))
    common.add_argument("--in-flight", type=int, default=8)
    common.add_argument("--timeout", type=float, default=900, help="bound on the whole run, s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput", parents=[common])
    t.add_argument("--runs", type=int, default=3)
    t.add_argument("--seconds", type=float, default=10)
    t.add_argument("--partitions", type=int, default=4)
    t.add_argument("--fetch-bytes", type=int, default=1 << 20)
    t.add_argument("--profile", type=Path, help="profile the servers in run 1 into this dir")
    t.add_argument("--profiler", default=PY_SPY, help="command; {pid} and {out} filled in")
    m = sub.add_parser("memory", parents=[common])
    m.add_argument("--partitions", type=int, default=1000)
    m.add_argument("--megabytes", type=float, default=1000)
    m.add_argument("--idle", type=float, default=5, help="seconds idle before each reading")
    sub.add_parser("echo-server").add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    use_uvloop = False
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
        use_uvloop = True
    if args.what == "echo-server":
        asyncio.run(echo_server(args.port))
        return 0
    echo: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="raftka-bench-") as tmp:
        cluster = LocalCluster(
            Path(tmp), controllers=args.controllers, brokers=1, log_level="warning"
        )
        try:
            cluster.prepare()
            cluster.start()
            broker = next(iter(cluster.brokers.values()))
            assert broker.process is not None
            print(f"== {args.what}: {ABOUT[args.what]}")
            print(f"command: {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
            load = os.getloadavg()[0]
            print(
                f"setup: {args.controllers} controller(s) + 1 broker (pid {broker.process.pid}) "
                f"on 127.0.0.1; {os.cpu_count()} CPUs, load average {load:.2f} at start; "
                f"client uvloop {'yes' if use_uvloop else 'no'}; {RECORD_BYTES} B records, "
                f"{BATCH_RECORDS} per batch; {args.in_flight} requests in flight"
            )
            if args.what == "throughput":
                if args.profile:
                    args.profile.mkdir(parents=True, exist_ok=True)
                args.echo_port = free_port()
                echo = subprocess.Popen(
                    [sys.executable, __file__, "echo-server", "--port", str(args.echo_port)],
                    start_new_session=True,
                )
                work = throughput(cluster, args, echo.pid)
            else:
                work = memory(cluster, args)
            asyncio.run(asyncio.wait_for(work, args.timeout))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            if echo is not None:
                echo.terminate()
                echo.wait()
            cluster.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
