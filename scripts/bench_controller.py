"""Controller quorum figures: failover time and committed metadata writes per second.

    .venv/bin/python scripts/bench_controller.py failover --trials 20
    .venv/bin/python scripts/bench_controller.py writes --seconds 10 --in-flight 1,8,32

failover: with default timeouts, kill -9 the controller leader and time until a new leader
          accepts a CreateTopics (measured by a client that retries every 10 ms against all
          controllers); the killed node is restarted and caught up before the next trial.
writes:   CreateTopics of 1-partition topics from N concurrent callers against 3 voters, each
          answered only after its records commit; the in-flight=1 run is the baseline.
Numbers are printed, not asserted. Everything runs on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from raftka.broker.lifecycle import BrokerLifecycle
from raftka.common.errors import RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.rpc.retry import RetryPolicy
from raftka.ops.local_cluster import LocalCluster, stop_clusters_on_sigterm
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb


async def leader(
    client: ControllerClient, exclude: int | None = None, timeout_s: float = 60
) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            c = await client.describe_cluster()
            if c.controller_id >= 0 and c.controller_id != exclude:
                return int(c.controller_id)
        except RaftkaError:
            pass
        await asyncio.sleep(0.01)
    raise RuntimeError("no leader")


async def caught_up(client: ControllerClient, node: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            q = await client.describe_quorum()
            if any(
                v.node_id == node and v.lag == 0 and 0 <= v.last_contact_ms < 1000 for v in q.voters
            ):
                return
        except RaftkaError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"node {node} did not catch up")


async def with_broker(cluster: LocalCluster) -> BrokerLifecycle:
    broker = BrokerLifecycle(
        cluster.bootstrap,
        broker_id=1,
        cluster_id=cluster.cluster_id,
        listeners=[cpb.Endpoint(name="CLIENT", host="127.0.0.1", port=1)],
    )
    await broker.start()
    await asyncio.wait_for(broker.wait_unfenced(), 60)
    return broker


async def failover(cluster: LocalCluster, trials: int) -> None:
    fast_retry = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.01)
    broker = await with_broker(cluster)
    times: list[float] = []
    try:
        async with ControllerClient(cluster.bootstrap, timeout_s=60, retry=fast_retry) as client:
            for trial in range(trials):
                old = await leader(client)
                for node in cluster.nodes:
                    if node != old:
                        await caught_up(client, node)
                cluster.kill(old)
                started = time.monotonic()
                request = [
                    pb.NewTopic(name=f"failover-{trial}", num_partitions=1, replication_factor=1)
                ]
                while True:
                    (result,) = await client.create_topics(request)
                    if result.error_code == cpb.NONE:
                        break
                    await asyncio.sleep(0.01)  # e.g. broker momentarily fenced
                elapsed = time.monotonic() - started
                times.append(elapsed)
                print(
                    f"trial {trial + 1:2d}: killed node {old}; CreateTopics accepted after {elapsed * 1000:7.1f} ms",
                    flush=True,
                )
                cluster.start(old)
    finally:
        await broker.close()
    times.sort()
    print(
        f"\nfailover (kill -9 leader -> CreateTopics accepted), {len(times)} trials: "
        f"median {statistics.median(times) * 1000:.0f} ms, min {times[0] * 1000:.0f} ms, "
        f"p90 {times[int(0.9 * (len(times) - 1))] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms"
    )


async def writes(cluster: LocalCluster, seconds: float, in_flight: list[int]) -> None:
    broker = await with_broker(cluster)
    try:
        async with ControllerClient(cluster.bootstrap, timeout_s=30) as client:
            await leader(client)
            for n in in_flight:
                counter = 0
                deadline = time.monotonic() + seconds

                async def worker(w: int, n: int = n, deadline: float = deadline) -> None:
                    nonlocal counter
                    i = 0
                    while time.monotonic() < deadline:
                        name = f"w{n}-{w}-{i}"
                        (r,) = await client.create_topics(
                            [pb.NewTopic(name=name, num_partitions=1, replication_factor=1)]
                        )
                        if r.error_code != cpb.NONE:
                            raise RuntimeError(
                                f"{name}: {cpb.ErrorCode.Name(r.error_code)} {r.error_message}"
                            )
                        counter += 1
                        i += 1

                started = time.monotonic()
                await asyncio.gather(*(worker(w) for w in range(n)))
                elapsed = time.monotonic() - started
                print(
                    f"in flight {n:3d}: {counter / elapsed:8.0f} committed CreateTopics/s ({counter} in {elapsed:.1f}s)",
                    flush=True,
                )
    finally:
        await broker.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("failover")
    f.add_argument("--trials", type=int, default=20)
    w = sub.add_parser("writes")
    w.add_argument("--seconds", type=float, default=10)
    w.add_argument("--in-flight", default="1,8,32")
    args = parser.parse_args()
    stop_clusters_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="raftka-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), controllers=3, log_level="warning")
        cluster.prepare()
        cluster.start()
        try:
            if args.what == "failover":
                asyncio.run(failover(cluster, args.trials))
            else:
                asyncio.run(
                    writes(cluster, args.seconds, [int(x) for x in args.in_flight.split(",")])
                )
        finally:
            cluster.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
