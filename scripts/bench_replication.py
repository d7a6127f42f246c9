"""Replication figures: failover time under acks=all, and the cost of replication.

    .venv/bin/python scripts/bench_replication.py failover --trials 20
    .venv/bin/python scripts/bench_replication.py throughput --seconds 8

failover:   3 controllers + 3 brokers with default settings (broker session 3 s, heartbeats
            500 ms); a topic with 1 partition, RF 3, min.insync.replicas 2. Each trial kills -9
            the partition leader and times until an acks=all produce succeeds on the new leader
            (a client retrying every 10 ms, refreshing the leader from the controller); the
            killed broker is restarted and back in the ISR before the next trial.
throughput: in one run, produce 64 KiB batches of 1 KiB records with 8 requests in flight to
            (a) RF 1 with acks=1 and (b) RF 3 with acks=all, min.insync.replicas 2.
Numbers are printed, not asserted; everything runs on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftka.common.errors import RaftkaError
from raftka.common.rpc.channels import open_channel
from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.local_cluster import LocalCluster, stop_clusters_on_sigterm
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import controller_pb2 as cpb
from raftka.v1.broker_pb2_grpc import BrokerServiceStub
from scripts.bench_broker import checked_produce, one_batch, produce_request
from scripts.bench_support import drive


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


async def failover(cluster: LocalCluster, trials: int) -> None:
    async with ControllerClient(cluster.bootstrap, timeout_s=30) as client:
        await wait_brokers(client, 3)
        await create(client, cluster, "failover", rf=3, min_isr=2)
        times: list[float] = []
        for trial in range(trials):
            p = await partition(client, "failover")
            address = cluster.brokers[p.leader].address
            await until(
                lambda address=address: acks_all_once(address, "failover"),
                "a first write",
            )
            cluster.kill(p.leader)
            started = time.monotonic()
            while True:
                try:
                    q = await partition(client, "failover")
                    if q.leader not in (-1, p.leader) and await acks_all_once(
                        cluster.brokers[q.leader].address, "failover"
                    ):
                        break
                except (RaftkaError, grpc.aio.AioRpcError):
                    pass
                await asyncio.sleep(0.01)
            elapsed = time.monotonic() - started
            times.append(elapsed)
            print(
                f"trial {trial + 1:2d}: killed broker {p.leader}; acks=all accepted by broker {q.leader} after {elapsed * 1000:7.1f} ms",
                flush=True,
            )
            cluster.start(p.leader)

            async def full_isr() -> bool:
                return len((await partition(client, "failover")).isr) == 3

            await until(full_isr, "the killed broker back in the ISR")
        times.sort()
        print(
            f"\nkill -9 partition leader -> first acks=all produce accepted, {len(times)} trials: "
            f"median {statistics.median(times) * 1000:.0f} ms, min {times[0] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("failover")
    f.add_argument("--trials", type=int, default=20)
    t = sub.add_parser("throughput")
    t.add_argument("--seconds", type=float, default=8)
    t.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--log-level", default="warning", help="the nodes' log level")
    args = parser.parse_args()
    stop_clusters_on_sigterm()
    print(f"command: {' '.join(sys.argv)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="raftka-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), controllers=3, brokers=3, log_level=args.log_level)
        cluster.prepare()
        cluster.start()
        try:
            if args.what == "failover":
                asyncio.run(failover(cluster, args.trials))
            else:
                asyncio.run(throughput(cluster, args.seconds, args.in_flight))
        finally:
            cluster.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
