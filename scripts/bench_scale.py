"""Scale figures: one large topic on a default cluster, and a cluster holding many partitions.

    .venv/bin/python scripts/bench_scale.py create --partitions 10000
    .venv/bin/python scripts/bench_scale.py hold --partitions 100000 --trials 3

Both start 3 controllers + 3 brokers with default settings on 127.0.0.1 (as ``raftka up``).

create: one CreateTopics of N partitions, RF 3. Reports the time until the request is answered
        (created), until the metadata shows every partition with a leader and its whole
        replica set in the ISR (in sync), and until an acks=all write to every partition (or
        ``--probe`` sampled ones) succeeded (replicated: each follower fetched it), then
        watches ``--settle`` seconds more. Over the whole run: controller elections (Raft term
        changes), broker fencings (sessions expired, from the controllers' logs), the most open
        file descriptors of each process (/proc/<pid>/fd), and the worst event-loop lag each
        process logged (``event_loop_lagged``, raftka.common.loop_lag: only lags over 200 ms
        are logged, so "<200" means none was).
hold:   creates topics of 10,000 partitions (RF 3) up to N partitions, then ``--trials`` times
        kills -9 the active controller and times until a new one accepts a CreateTopics, and
        kills -9 a broker and times from its restart until the controllers unfence it.

Numbers are printed, not asserted. Everything runs on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from raftka.common.errors import RaftkaError
from raftka.common.records.builder import build_batch
from raftka.common.rpc.channels import open_channel
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.rpc.retry import RetryPolicy
from raftka.ops.local_cluster import LocalCluster, stop_clusters_on_sigterm
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from scripts.bench_support import proc_cpu_s

TOPIC_CHUNK = 10_000


def _cpu(pid: int) -> float:
    try:
        return proc_cpu_s(pid)
    except OSError:
        return 0.0


PROBE_PARTITIONS_PER_REQUEST = 500


class FdSampler:
    """The most open file descriptors of each process, sampled every 0.5 s on a thread, and
    the CPU seconds each used meanwhile (comparable on a busy machine, unlike wall time)."""

    def __init__(self, pids: dict[int, int]) -> None:
        self.pids = pids
        self.max: dict[int, int] = dict.fromkeys(pids, 0)
        self._cpu0 = {n: _cpu(pid) for n, pid in pids.items()}
        self.cpu: dict[int, float] = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for node, pid in self.pids.items():
                with contextlib.suppress(OSError):
                    self.max[node] = max(self.max[node], len(os.listdir(f"/proc/{pid}/fd")))
                    self.cpu[node] = _cpu(pid) - self._cpu0[node]
            self._stop.wait(0.5)

    def __enter__(self) -> FdSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


class LogMarks:
    """What the nodes logged since a mark: elections, fencings, event-loop lag."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.offsets = {
            n: (node.log_path.stat().st_size if node.log_path.exists() else 0)
            for n, node in cluster._all().items()
        }

    def events(self, node_id: int) -> list[dict[str, Any]]:
        path = self.cluster.node(node_id).log_path
        with open(path, "rb") as f:
            f.seek(self.offsets.get(node_id, 0))
            data = f.read()
        out = []
        for line in data.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def summary(self) -> dict[str, Any]:
        fenced = 0
        lag: dict[int, int] = {}
        terms: set[int] = set()
        for node_id in self.cluster._all():
            for e in self.events(node_id):
                name = e.get("event")
                if name == "broker_fenced_session_expired":
                    fenced += 1
                elif name == "event_loop_lagged":
                    lag[node_id] = max(lag.get(node_id, 0), int(e.get("lag_ms", 0)))
                elif name == "raft_state_changed" and e.get("role") == "leader":
                    terms.add(int(e.get("term", 0)))
        return {"fencings": fenced, "new_leader_terms": sorted(terms), "max_lag_ms": lag}


async def until(
    probe: Callable[[], Awaitable[bool]], what: str, timeout_s: float, poll_s: float = 0.25
) -> float:
    """Seconds until ``probe()`` is true (errors count as not yet)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if await probe():
                return time.monotonic() - started
        except (RaftkaError, grpc.aio.AioRpcError):
            pass
        await asyncio.sleep(poll_s)
    raise RuntimeError(f"{what} did not happen within {timeout_s:g}s")


async def term(client: ControllerClient) -> int:
    return int((await client.describe_quorum()).term)


async def all_unfenced(client: ControllerClient, count: int) -> bool:
    brokers = (await client.describe_cluster()).brokers
    return len(brokers) == count and not any(b.fenced for b in brokers)


async def lagging(client: ControllerClient, topic: str, rf: int) -> tuple[int, int]:
    """(partitions without a leader or with ISR smaller than RF, partitions) of ``topic``."""
    (t,) = await client.describe_topics([topic])
    bad = sum(1 for p in t.partitions if p.leader < 0 or len(p.isr) < rf)
    return bad, len(t.partitions)


async def probe_writes(
    client: ControllerClient,
    cluster: LocalCluster,
    topic: str,
    sample: int,
    done: set[int],
    verbose: bool = True,
) -> int:
    """One acks=all write to each partition of ``sample`` (all when 0) not in ``done`` (those
    that took one already, added to it); returns how many failed (retried by the caller)."""
    (t,) = await client.describe_topics([topic])
    parts = list(t.partitions)
    if sample:
        parts = random.Random(1).sample(parts, min(sample, len(parts)))
    parts = [p for p in parts if p.partition not in done]
    batch = bytes(build_batch([(int(time.time() * 1000), b"k", b"scale-probe", ())]))
    by_leader: dict[int, list[int]] = {}
    for p in parts:
        by_leader.setdefault(p.leader, []).append(p.partition)
    failed = 0
    errors: dict[int, str] = {}

    async def send(leader: int, partitions: list[int]) -> None:
        nonlocal failed
        if leader < 0:
            failed += len(partitions)
            return
        async with open_channel(cluster.brokers[leader].address) as ch:
            raw = ch.unary_unary("/raftka.v1.BrokerService/Produce")
            for i in range(0, len(partitions), PROBE_PARTITIONS_PER_REQUEST):
                chunk = partitions[i : i + PROBE_PARTITIONS_PER_REQUEST]
                data = [bpb.PartitionProduceData(partition=p, batches=batch) for p in chunk]
                request = bpb.ProduceRequest(
                    acks=-1,
                    timeout_ms=10_000,
                    topics=[bpb.TopicProduceData(topic=topic, partitions=data)],
                )
                try:
                    reply = await raw(request.SerializeToString(), timeout=30)
                except grpc.aio.AioRpcError:
                    failed += len(chunk)
                    continue
                for r in bpb.ProduceResponse.FromString(reply).results:
                    if r.error_code != cpb.NONE:
                        failed += 1
                        errors[r.error_code] = r.error_message
                    else:
                        done.add(r.partition)

    await asyncio.gather(*(send(leader, ps) for leader, ps in by_leader.items()))
    if errors and verbose:
        print(f"  probe at {time.strftime('%X')}: {failed} failed, e.g. {errors}", flush=True)
    return failed


def pids(cluster: LocalCluster) -> dict[int, int]:
    return {n: node.process.pid for n, node in cluster._all().items() if node.process}


def print_run(marks: LogMarks, fds: FdSampler, first_term: int, last_term: int) -> None:
    s = marks.summary()
    print(f"  controller elections: {last_term - first_term} (term {first_term} -> {last_term})")
    print(f"  broker fencings (session expired): {s['fencings']}")
    print("  max open fds: " + ", ".join(f"node {n} {v}" for n, v in sorted(fds.max.items())))
    print("  cpu seconds: " + ", ".join(f"node {n} {v:.1f}" for n, v in sorted(fds.cpu.items())))
    print(f"  machine load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    lags = s["max_lag_ms"]
    print(
        "  worst event-loop lag: "
        + ", ".join(f"node {n} {lags.get(n, '<200')} ms" for n in sorted(fds.max))
    )


async def create_one(
    client: ControllerClient,
    cluster: LocalCluster,
    name: str,
    partitions: int,
    rf: int,
    timeout_s: float,
    probe: int | None,
) -> dict[str, float]:
    """Create ``name`` and time created / in sync / replicated (probe None: not probed)."""
    started = time.monotonic()
    (r,) = await client.create_topics(
        [pb.NewTopic(name=name, num_partitions=partitions, replication_factor=rf)]
    )
    if r.error_code == cpb.TOPIC_ALREADY_EXISTS:
        # The client retried a create that had committed (a slow or changing controller).
        print(f"    {name}: the create was retried and found the topic already created")
    elif r.error_code != cpb.NONE:
        raise RuntimeError(f"create {name}: {r.error_message}")
    out = {"created": time.monotonic() - started}
    last = [-1]

    async def in_sync() -> bool:
        bad, total = await lagging(client, name, rf)
        last[0] = bad
        return total == partitions and bad == 0

    try:
        await until(in_sync, "in sync", timeout_s, poll_s=0.5)
    except RuntimeError:
        print(f"  {name}: {last[0]} partitions still under-replicated after {timeout_s:g}s")
        raise
    out["in_sync"] = time.monotonic() - started
    if probe is not None:
        written: set[int] = set()

        async def replicated() -> bool:
            return await probe_writes(client, cluster, name, probe, written) == 0

        try:
            await until(replicated, "replicated", timeout_s, poll_s=0.5)
            out["replicated"] = time.monotonic() - started
        except RuntimeError:
            out["replicated"] = float("nan")  # reported as not within the timeout
            print(f"  {name}: not every write was replicated within {timeout_s:g}s", flush=True)
    return out


async def create(cluster: LocalCluster, args: argparse.Namespace) -> None:
    async with ControllerClient(cluster.bootstrap, timeout_s=60) as client:
        await until(lambda: all_unfenced(client, 3), "brokers unfenced", 60)
        first = await term(client)
        marks = LogMarks(cluster)
        with FdSampler(pids(cluster)) as fds:
            probe = None if args.probe < 0 else args.probe
            times = await create_one(
                client, cluster, "scale", args.partitions, args.rf, args.timeout, probe
            )
            await asyncio.sleep(args.settle)
            bad, _ = await lagging(client, "scale", args.rf)
            last = await term(client)
        print(f"create {args.partitions} partitions, RF {args.rf}:")
        replicated = (
            f", replicated (an acks=all write to {args.probe or 'every'} partition"
            f"{'s' if args.probe != 1 else ''} succeeded) {times['replicated']:.1f}s"
            if probe is not None
            else ""
        )
        print(f"  created {times['created']:.1f}s, in sync {times['in_sync']:.1f}s{replicated}")
        print(f"  under-replicated after {args.settle:g}s more: {bad}")
        print_run(marks, fds, first, last)


async def new_leader(client: ControllerClient, trial: int) -> None:
    request = [pb.NewTopic(name=f"failover-{trial}", num_partitions=1, replication_factor=1)]
    while True:
        try:
            (result,) = await client.create_topics(request)
            if result.error_code == cpb.NONE:
                return
        except RaftkaError:
            pass
        await asyncio.sleep(0.01)


async def hold(cluster: LocalCluster, args: argparse.Namespace) -> None:
    fast = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.01)
    async with ControllerClient(cluster.bootstrap, timeout_s=60, retry=fast) as client:
        await until(lambda: all_unfenced(client, 3), "brokers unfenced", 60)
        first = await term(client)
        marks = LogMarks(cluster)
        with FdSampler(pids(cluster)) as fds:
            total = 0
            while total < args.partitions:
                count = min(TOPIC_CHUNK, args.partitions - total)
                t = await create_one(
                    client, cluster, f"hold-{total // TOPIC_CHUNK}", count, 3, args.timeout, None
                )
                total += count
                print(
                    f"  {total:7d} partitions: topic created {t['created']:.1f}s, "
                    f"in sync {t['in_sync']:.1f}s",
                    flush=True,
                )
            last = await term(client)
        print(f"holding {total} partitions (RF 3):")
        print_run(marks, fds, first, last)
        for trial in range(args.trials):
            old = int((await client.describe_cluster()).controller_id)
            cluster.kill(old)
            started = time.monotonic()
            await asyncio.wait_for(new_leader(client, trial), 120)
            failover = time.monotonic() - started
            cluster.start(old)
            broker = list(cluster.brokers)[trial % len(cluster.brokers)]
            cluster.kill(broker)
            await until(functools.partial(fenced, client, broker), "broker fenced", 60, 0.05)
            started = time.monotonic()
            cluster.start(broker)
            await until(lambda: all_unfenced(client, 3), "broker unfenced", 300, poll_s=0.05)
            restart = time.monotonic() - started
            print(
                f"trial {trial + 1}: kill -9 controller {old} -> new controller accepts a "
                f"CreateTopics after {failover * 1000:.0f} ms; kill -9 broker {broker} -> "
                f"unfenced {restart:.1f}s after its restart",
                flush=True,
            )


async def fenced(client: ControllerClient, broker: int) -> bool:
    brokers = (await client.describe_cluster()).brokers
    return any(b.broker_id == broker and b.fenced for b in brokers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("create")
    c.add_argument("--partitions", type=int, default=10_000)
    c.add_argument("--rf", type=int, default=3)
    c.add_argument("--probe", type=int, default=0, help="partitions to write to (0: all, -1: none)")
    c.add_argument("--settle", type=float, default=5.0)
    c.add_argument("--timeout", type=float, default=300.0)
    h = sub.add_parser("hold")
    h.add_argument("--partitions", type=int, default=100_000)
    h.add_argument("--trials", type=int, default=3)
    h.add_argument("--timeout", type=float, default=600.0)
    for p in (c, h):
        p.add_argument("--keep", type=Path, help="run in this directory and keep it")
        p.add_argument("--log-level", default="info")
    args = parser.parse_args()
    stop_clusters_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="raftka-scale-") as tmp:
        base = args.keep or Path(tmp)
        cluster = LocalCluster(base, controllers=3, brokers=3, log_level=args.log_level)
        cluster.prepare()
        cluster.start()
        print(f"cluster in {base}; pids {pids(cluster)}", flush=True)
        try:
            asyncio.run(create(cluster, args) if args.what == "create" else hold(cluster, args))
        finally:
            cluster.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
