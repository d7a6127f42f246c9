"""Offset commits per second to one group coordinator, on a local cluster.

    .venv/bin/python scripts/bench_group_commits.py --committers 8 --seconds 5 --runs 3

Starts 3 controllers + 3 brokers on 127.0.0.1, creates a topic "bench" (3 partitions),
lets FindCoordinator create __consumer_offsets (50 partitions, RF 3, min.insync.replicas 2),
then picks ``--groups`` group ids that all land on the same coordinator. ``--committers``
concurrent committers (spread over the groups; simple groups, member_epoch -1) each commit
``--partitions`` partitions of "bench" in a loop for ``--seconds`` (each commit is answered
only once replicated with acks=all). Prints each run's commits/s and latencies, then the median
of ``--runs`` runs. Everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from raftka.client.admin import AsyncAdmin
from raftka.ops.local_cluster import LocalCluster, stop_clusters_on_sigterm
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub

TOPIC = "bench"


async def _setup(cluster: LocalCluster, groups: int) -> tuple[str, list[str]]:
    """Creates the topic and __consumer_offsets; returns the coordinator's address and
    ``groups`` group ids it coordinates."""
    async with AsyncAdmin(cluster.bootstrap, timeout_s=60) as admin:
        for _ in range(600):
            brokers = (await admin.describe_cluster()).brokers
            if len([b for b in brokers if not b.fenced]) == len(cluster.brokers):
                break
            await asyncio.sleep(0.1)
        await admin.create_topic(TOPIC, 3, 3, configs={"min.insync.replicas": "2"})
    candidates = [f"bench-group-{i}" for i in range(2000)]
    address = cluster.bootstrap_servers[0]
    async with grpc.aio.insecure_channel(address) as channel:
        stub = GroupServiceStub(channel)
        for _ in range(600):
            found = await stub.FindCoordinator(gpb.FindCoordinatorRequest(keys=candidates))
            if all(c.error_code == ErrorCode.NONE for c in found.coordinators):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("__consumer_offsets did not get leaders within a minute")
    target = found.coordinators[0].node_id
    mine = [c for c in found.coordinators if c.node_id == target][:groups]
    where = f"{mine[0].host}:{mine[0].port}"
    async with grpc.aio.insecure_channel(where) as channel:  # every shard loaded
        stub = GroupServiceStub(channel)
        for c in mine:
            for _ in range(600):
                try:
                    await stub.OffsetFetch(gpb.OffsetFetchRequest(group_id=c.key), timeout=5)
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.1)
    return where, [c.key for c in mine]


async def _run(address: str, groups: list[str], committers: int, partitions: int, seconds: float) -> tuple[float, list[float]]:  # fmt: skip
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = GroupServiceStub(channel)
        deadline = time.monotonic() + seconds

        async def commit_loop(worker: int) -> None:
            group = groups[worker % len(groups)]
            offset = 0
            while time.monotonic() < deadline:
                offset += 1
                request = gpb.OffsetCommitRequest(
                    group_id=group,
                    member_epoch=-1,
                    topics=[
                        gpb.OffsetCommitTopic(
                            name=TOPIC,
                            partitions=[
                                gpb.OffsetCommitPartition(partition=p, offset=offset)
                                for p in range(partitions)
                            ],
                        )
                    ],
                )
                started = time.perf_counter()
                response = await stub.OffsetCommit(request, timeout=10)
                latencies.append((time.perf_counter() - started) * 1000)
                codes = {p.error_code for t in response.topics for p in t.partitions}
                if codes != {ErrorCode.NONE}:
                    raise RuntimeError(f"commit refused: {response}")

        started = time.monotonic()
        await asyncio.gather(*(commit_loop(w) for w in range(committers)))
        elapsed = time.monotonic() - started
    return len(latencies) / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--committers", type=int, default=8)
    parser.add_argument("--groups", type=int, default=0, help="default: one per committer")
    parser.add_argument("--partitions", type=int, default=3, help="partitions per commit")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    groups = args.groups or args.committers
    stop_clusters_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(Path(tmp), controllers=3, brokers=3, log_level="warning")
        cluster.prepare()
        cluster.start()
        try:
            address, group_ids = asyncio.run(_setup(cluster, groups))
            print(f"command: {' '.join(sys.argv)}")
            print(f"coordinator {address}, {len(group_ids)} groups, {args.committers} committers")
            rates = []
            for run in range(args.runs):
                rate, lat = asyncio.run(
                    _run(address, group_ids, args.committers, args.partitions, args.seconds)
                )
                rates.append(rate)
                q = statistics.quantiles(lat, n=100)
                print(
                    f"run {run + 1}: {rate:,.0f} commits/s  p50 {q[49]:.1f} ms  "
                    f"p99 {q[98]:.1f} ms  ({len(lat)} commits)",
                    flush=True,
                )
            print(f"median of {args.runs} runs: {statistics.median(rates):,.0f} commits/s")
        finally:
            cluster.stop_all()


if __name__ == "__main__":
    main()
