"""Replication figures: failover time under acks=all, and the cost of replication.

    .venv/bin/python scripts/bench_replication.py failover --trials 20
    .venv/bin/python scripts/bench_replication.py throughput --seconds 8

failover:   3 controllers + 3 brokers with default settings (broker session 3 s, heartbeats
            500 ms); a topic with 1 partition, RF 3, min.insync.replicas 2. Three cases, each
            --trials times: kill-leader (kill -9 the partition leader) and pause-leader (SIGSTOP
            it) time until an acks=all produce succeeds on the new leader (a client retrying
            every 10 ms, refreshing the leader from the controller); pause-follower SIGSTOPs an
            in-sync follower while one writer sends acks=all writes back to back, and reports
            the longest gap between acknowledgements; kill-two kills -9 the partition leader
            and another ISR member at once (topic failover-two: RF 3, min.insync.replicas 1, so
            the one survivor can take writes) and times until the survivor acknowledges an
            acks=all write. The stopped broker is restarted (or
            resumed) and back in the ISR before the next trial. Each case also counts the
            controllers' fences (after a failed probe, by session expiry) and the probes that
            were answered (a reported broker found alive, not fenced).
throughput: in one run, produce 64 KiB batches of 1 KiB records with 8 requests in flight to
            (a) RF 1 with acks=1 and (b) RF 3 with acks=all, min.insync.replicas 2.
low-rate:   a fixed rate (default 2,000 records/s) of 1 KiB records, one record per Produce
            (the case of a producer that does not wait out a linger), acks=all, to a topic of 3
            partitions RF 3, min.insync.replicas 2, sent open loop (on schedule, whatever the
            answers); prints the produce latency p50/p99 and the CPU of each broker and
            controller process over the run (utime + stime from /proc).
Numbers are printed, not asserted; everything runs on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftka.common.errors import RaftkaError
from raftka.common.records.builder import build_batch
from raftka.common.rpc.channels import open_channel
from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.local_cluster import LocalCluster, stop_clusters_on_sigterm
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import controller_pb2 as cpb
from raftka.v1.broker_pb2_grpc import BrokerServiceStub
from scripts.bench_broker import checked_produce, one_batch, produce_request
from scripts.bench_support import drive, proc_cpu_s


async def partition(client: ControllerClient, topic: str) -> cpb.PartitionDescription:
    (t,) = await client.describe_topics([topic])
    return t.partitions[0]


async def until(probe: object, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if await probe():  # type: ignore[operator]
                return
        except (RaftkaError, grpc.aio.AioRpcError):
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{what} did not happen within {timeout_s}s")


async def create(
    client: ControllerClient, cluster: LocalCluster, name: str, rf: int, min_isr: int
) -> None:
    configs = {"min.insync.replicas": str(min_isr)}
    (r,) = await client.create_topics(
        [cpb.NewTopic(name=name, num_partitions=1, replication_factor=rf, configs=configs)]
    )
    if r.error_code:
        raise RuntimeError(r.error_message)

    async def served() -> bool:
        p = await partition(client, name)
        if len(p.isr) != rf or p.leader < 0:
            return False
        async with open_channel(cluster.brokers[p.leader].address) as ch:
            req = bpb.ListOffsetsRequest(
                topics=[
                    bpb.ListOffsetsTopic(
                        topic=name, partitions=[bpb.ListOffsetsPartition(partition=0, timestamp=-1)]
                    )
                ]
            )
            answer = await BrokerServiceStub(ch).ListOffsets(req, timeout=5)
            return bool(answer.results[0].error_code == 0)

    await until(served, f"{name} served")


async def acks_all_once(address: str, topic: str) -> bool:
    async with open_channel(address) as ch:
        data = bpb.PartitionProduceData(partition=0, records=[bpb.Record(value=b"x")])
        req = bpb.ProduceRequest(
            acks=-1, timeout_ms=2000, topics=[bpb.TopicProduceData(topic=topic, partitions=[data])]
        )
        answer = await BrokerServiceStub(ch).Produce(req, timeout=3)
        return bool(answer.results[0].error_code == 0)


async def wait_brokers(client: ControllerClient, count: int) -> None:
    async def ready() -> bool:
        return sum(not b.fenced for b in (await client.describe_cluster()).brokers) >= count

    await until(ready, f"{count} unfenced brokers")


FAILOVER_CASES = ("kill-leader", "pause-leader", "pause-follower", "kill-two")
TWO_TOPIC = "failover-two"

FENCE_EVENTS = (
    "broker_fenced_unreachable",
    "broker_fenced_session_expired",
    "broker_probe_answered",
    "broker_probe_failed_not_fenced",
)


def controller_events(cluster: LocalCluster) -> dict[str, int]:
    """How often each of FENCE_EVENTS appears in the controllers' logs so far."""
    counts = dict.fromkeys(FENCE_EVENTS, 0)
    for node_id, node in cluster.nodes.items():
        if node_id in cluster.brokers or not node.log_path.exists():
            continue
        for line in node.log_path.read_text(errors="replace").splitlines():
            for event in FENCE_EVENTS:
                if f'"{event}"' in line:
                    counts[event] += 1
    return counts


async def new_leader_serves(
    client: ControllerClient, cluster: LocalCluster, old: int, topic: str = "failover"
) -> int:
    """Retry every 10 ms until a leader other than ``old`` acknowledges an acks=all write."""
    while True:
        try:
            q = await partition(client, topic)
            if q.leader not in (-1, old) and await acks_all_once(
                cluster.brokers[q.leader].address, topic
            ):
                return int(q.leader)
        except (RaftkaError, grpc.aio.AioRpcError):
            pass
        await asyncio.sleep(0.01)


async def leader_failover(
    client: ControllerClient, cluster: LocalCluster, case: str, trial: int
) -> float:
    """Kill -9 or pause the partition leader; seconds until a new leader acknowledges."""
    p = await partition(client, "failover")
    address = cluster.brokers[p.leader].address
    await until(lambda address=address: acks_all_once(address, "failover"), "a first write")
    if case == "kill-leader":
        cluster.kill(p.leader)
    else:
        cluster.pause(p.leader)
    started = time.monotonic()
    leader = await new_leader_serves(client, cluster, p.leader)
    elapsed = time.monotonic() - started
    print(
        f"{case} trial {trial + 1:2d}: broker {p.leader} -> acks=all accepted by broker "
        f"{leader} after {elapsed * 1000:7.1f} ms",
        flush=True,
    )
    if case == "kill-leader":
        cluster.start(p.leader)
    else:
        cluster.resume(p.leader)
    return elapsed


async def two_killed(client: ControllerClient, cluster: LocalCluster, trial: int) -> float:
    """Kill -9 the leader of failover-two and another ISR member at once; seconds until the
    survivor acknowledges an acks=all write (min.insync.replicas 1)."""
    p = await partition(client, TWO_TOPIC)
    address = cluster.brokers[p.leader].address
    await until(lambda address=address: acks_all_once(address, TWO_TOPIC), "a first write")
    other = next(b for b in p.isr if b != p.leader)
    cluster.kill(p.leader)
    cluster.kill(other)
    started = time.monotonic()
    leader = await new_leader_serves(client, cluster, p.leader, TWO_TOPIC)
    elapsed = time.monotonic() - started
    print(
        f"kill-two trial {trial + 1:2d}: brokers {p.leader} (leader) and {other} -> acks=all "
        f"accepted by broker {leader} after {elapsed * 1000:7.1f} ms",
        flush=True,
    )
    cluster.start(p.leader)
    cluster.start(other)
    return elapsed


async def follower_stall(
    client: ControllerClient, cluster: LocalCluster, trial: int, settle_s: float = 0.5
) -> float:
    """Pause an in-sync follower while one writer sends acks=all writes one after another to
    the leader; the stall is the longest gap between acknowledgements around the pause."""
    p = await partition(client, "failover")
    follower = next(b for b in p.isr if b != p.leader)
    acks: list[float] = []
    stop = asyncio.Event()
    recovered = asyncio.Event()
    paused = float("inf")

    async def writer() -> None:
        async with open_channel(cluster.brokers[p.leader].address) as ch:
            stub = BrokerServiceStub(ch)
            data = bpb.PartitionProduceData(partition=0, records=[bpb.Record(value=b"x")])
            req = bpb.ProduceRequest(
                acks=-1,
                timeout_ms=20_000,
                topics=[bpb.TopicProduceData(topic="failover", partitions=[data])],
            )
            while not stop.is_set():
                try:
                    answer = await stub.Produce(req, timeout=25)
                    if answer.results[0].error_code == 0:
                        acks.append(time.monotonic())
                        if sum(a > paused + 0.05 for a in acks[-50:]) >= 50:
                            recovered.set()
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.01)

    task = asyncio.create_task(writer())
    await until(lambda: asyncio.sleep(0, len(acks) > 10), "acknowledged writes")
    await asyncio.sleep(settle_s)
    cluster.pause(follower)
    paused = time.monotonic()
    deadline = paused + 15
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(recovered.wait(), deadline - paused)
    stop.set()
    await task
    around = [a for a in acks if a >= paused - 1.0]
    gaps = [b - a for a, b in itertools.pairwise(around)] or [deadline - paused]
    stall = max(gaps)
    print(
        f"pause-follower trial {trial + 1:2d}: paused broker {follower} (leader {p.leader}); "
        f"longest gap between acks=all acknowledgements {stall * 1000:7.1f} ms",
        flush=True,
    )
    cluster.resume(follower)
    return stall


async def failover(cluster: LocalCluster, trials: int, cases: list[str]) -> None:
    async with ControllerClient(cluster.bootstrap, timeout_s=30) as client:
        await wait_brokers(client, 3)
        await create(client, cluster, "failover", rf=3, min_isr=2)
        if "kill-two" in cases:
            await create(client, cluster, TWO_TOPIC, rf=3, min_isr=1)
        results: dict[str, list[float]] = {}
        fences: dict[str, dict[str, int]] = {}
        for case in cases:
            before = controller_events(cluster)
            for trial in range(trials):
                if case == "pause-follower":
                    elapsed = await follower_stall(client, cluster, trial)
                elif case == "kill-two":
                    elapsed = await two_killed(client, cluster, trial)
                else:
                    elapsed = await leader_failover(client, cluster, case, trial)
                results.setdefault(case, []).append(elapsed)

                topics = ["failover", TWO_TOPIC] if case == "kill-two" else ["failover"]

                async def full_isr(topics: list[str] = topics) -> bool:
                    for b, node in cluster.brokers.items():
                        if not node.running:  # a restart that gave up (no controller in 5 s)
                            cluster.start(b)
                    isrs = [len((await partition(client, t)).isr) for t in topics]
                    return all(n == 3 for n in isrs)

                await until(full_isr, "the stopped broker back in the ISR")
            after = controller_events(cluster)
            fences[case] = {k: after[k] - before[k] for k in FENCE_EVENTS}
        print()
        what = {
            "kill-leader": "kill -9 partition leader -> first acks=all write on the new leader",
            "pause-leader": "SIGSTOP partition leader -> first acks=all write on the new leader",
            "pause-follower": "SIGSTOP in-sync follower -> longest acks=all stall",
            "kill-two": "kill -9 leader + one follower -> first acks=all write on the survivor",
        }
        for case, times in results.items():
            times.sort()
            f = fences[case]
            print(
                f"{what[case]}, {len(times)} trials: median {statistics.median(times) * 1000:.0f}"
                f" ms, min {times[0] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms; "
                f"fences: {f['broker_fenced_unreachable']} after a failed probe, "
                f"{f['broker_fenced_session_expired']} by session expiry; "
                f"{f['broker_probe_answered']} probes answered and "
                f"{f['broker_probe_failed_not_fenced']} unanswered but the broker heartbeating "
                "(no fence)",
                flush=True,
            )


async def throughput(cluster: LocalCluster, seconds: float, in_flight: int) -> None:
    batch = one_batch()
    async with ControllerClient(cluster.bootstrap, timeout_s=30) as client:
        await wait_brokers(client, 3)
        for name, rf, acks in (("rf1-acks1", 1, 1), ("rf3-acksall", 3, -1)):
            await create(client, cluster, name, rf=rf, min_isr=min(2, rf))
            p = await partition(client, name)
            broker = cluster.brokers[p.leader]
            request = bpb.ProduceRequest.FromString(produce_request(name, 0, batch))
            request.acks = acks
            async with open_channel(broker.address) as channel:
                assert broker.process is not None
                fig = await drive(
                    checked_produce(channel),
                    [request.SerializeToString()],
                    in_flight,
                    seconds,
                    broker.process.pid,
                )
            fig.records = len(fig.latencies) * 64
            print(fig.line(name), flush=True)


async def low_rate(cluster: LocalCluster, rate: float, seconds: float, record_bytes: int) -> None:
    name, partitions = "low-rate", 3
    async with ControllerClient(cluster.bootstrap, timeout_s=30) as client:
        await wait_brokers(client, 3)
        (r,) = await client.create_topics(
            [
                cpb.NewTopic(
                    name=name,
                    num_partitions=partitions,
                    replication_factor=3,
                    configs={"min.insync.replicas": "2"},
                )
            ]
        )
        if r.error_code:
            raise RuntimeError(r.error_message)
        (t,) = await client.describe_topics([name])
        leaders = {p.partition: p.leader for p in t.partitions}
    value = os.urandom(record_bytes)
    channels = {b: open_channel(n.address) for b, n in cluster.brokers.items()}
    try:
        calls = {b: checked_produce(ch) for b, ch in channels.items()}

        def request(partition: int) -> bytes:
            batch = bytes(build_batch([(int(time.time() * 1000), None, value, ())]))
            req = bpb.ProduceRequest.FromString(produce_request(name, partition, batch))
            req.acks = -1
            return bytes(req.SerializeToString())

        async def writable(p: int) -> bool:
            try:
                await calls[leaders[p]](request(p))
                return True
            except RuntimeError:
                return False

        for p in range(partitions):  # every leader serves acks=all before the clock starts
            await until(lambda p=p: writable(p), f"{name}-{p} writable")
        await asyncio.sleep(1.0)  # the ISR settles
        pids = {
            f"{kind}{n}": node.process.pid
            for kind, nodes in (("broker", cluster.brokers), ("controller", cluster.nodes))
            for n, node in nodes.items()
            if node.process is not None
        }
        latencies: list[float] = []
        failures: dict[str, int] = {}
        pending: set[asyncio.Task[None]] = set()

        async def one(partition: int) -> None:
            payload = request(partition)
            t0 = time.perf_counter()
            try:
                await calls[leaders[partition]](payload)
            except (RuntimeError, grpc.aio.AioRpcError) as e:
                why = (
                    e.code().name
                    if isinstance(e, grpc.aio.AioRpcError)
                    else "".join(c for c in str(e) if not c.isdigit())[:60]
                )
                failures[why] = failures.get(why, 0) + 1
                return
            latencies.append(time.perf_counter() - t0)

        cpu0 = {k: proc_cpu_s(pid) for k, pid in pids.items()}
        client0 = time.process_time()
        start = time.monotonic()
        total = int(rate * seconds)
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i % partitions))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        elapsed = time.monotonic() - start
        cpu = {k: (proc_cpu_s(pid) - cpu0[k]) / elapsed for k, pid in pids.items()}
        client_cpu = (time.process_time() - client0) / elapsed
    finally:
        for ch in channels.values():
            await ch.close()
    q = statistics.quantiles(latencies, n=100)
    brokers = sum(v for k, v in cpu.items() if k.startswith("broker"))
    print(
        f"low-rate {len(latencies) / elapsed:.0f} records/s of {record_bytes} B, acks=all RF 3, "
        f"one record per Produce, {elapsed:.1f} s: latency p50 {q[49] * 1e3:.2f} ms "
        f"p99 {q[98] * 1e3:.2f} ms max {max(latencies) * 1e3:.1f} ms"
        + (f"; failed: {failures}" if failures else ""),
        flush=True,
    )
    print(
        f"cpu (cores): brokers {brokers:.2f} = "
        + " + ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items()) if k.startswith("broker"))
        + "; controllers "
        + " + ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items()) if k.startswith("contr"))
        + f"; load client {client_cpu:.2f}; brokers' CPU per acknowledged record "
        + f"{brokers * elapsed / max(1, len(latencies)) * 1e6:.0f} us",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("failover")
    f.add_argument("--trials", type=int, default=7, help="trials of each case")
    f.add_argument(
        "--cases", default=",".join(FAILOVER_CASES), help=f"of {', '.join(FAILOVER_CASES)}"
    )
    t = sub.add_parser("throughput")
    t.add_argument("--seconds", type=float, default=8)
    t.add_argument("--in-flight", type=int, default=8)
    lr = sub.add_parser("low-rate", aliases=["idle-cpu"])
    lr.add_argument("--rate", type=float, default=2000, help="records per second")
    lr.add_argument("--seconds", type=float, default=15)
    lr.add_argument("--record-bytes", type=int, default=1024)
    parser.add_argument("--keep", action="store_true", help="keep the nodes' directories and logs")
    parser.add_argument(
        "--log-level",
        default=None,
        help="the nodes' log level (default: info for failover, whose fences are counted from "
        "the controllers' logs; else warning)",
    )
    args = parser.parse_args()
    stop_clusters_on_sigterm()
    print(f"command: {' '.join(sys.argv)}", flush=True)
    with contextlib.ExitStack() as stack:
        tmp = (
            tempfile.mkdtemp(prefix="raftka-bench-")
            if args.keep
            else stack.enter_context(tempfile.TemporaryDirectory(prefix="raftka-bench-"))
        )
        if args.keep:
            print(f"nodes' directories and logs kept in {tmp}", flush=True)
        cluster = LocalCluster(
            Path(tmp),
            controllers=3,
            brokers=3,
            log_level=args.log_level or ("info" if args.what == "failover" else "warning"),
        )
        cluster.prepare()
        cluster.start()
        try:
            if args.what == "failover":
                asyncio.run(failover(cluster, args.trials, args.cases.split(",")))
            elif args.what in ("low-rate", "idle-cpu"):
                asyncio.run(low_rate(cluster, args.rate, args.seconds, args.record_bytes))
            else:
                asyncio.run(throughput(cluster, args.seconds, args.in_flight))
        finally:
            cluster.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
