"""Event-loop lag of the active controller while it fences a broker that holds many replicas.

    .venv/bin/python scripts/bench_fence_lag.py --partitions 20000 --rounds 3

In one process: a single-voter controller (real Raft storage in a temporary directory, the
real QuorumRuntime and ActiveController) holding 3 brokers and N partitions at RF 3; then
broker 1 is fenced through ``ActiveController.write`` while a lag probe
(raftka.common.loop_lag, 5 ms timer) watches the loop. Two modes, alternated in each round:

  one-block: the whole fencing planned, proposed and applied as one entry (round 1 of issue 14);
  slices:    as the controller does now (1,000 records per entry, at most 128 KiB of committed
             entries applied per Ready, the loop running in between).

Prints, per mode, the median over rounds of the worst loop lag and of the time until the
fencing committed. The election timeout is 500 ms by default.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftka.common.ids import Index, NodeId
from raftka.common.loop_lag import LoopLagProbe
from raftka.common.metadata.image import MetadataImage
from raftka.controller.active import ActiveController
from raftka.controller.control.cluster import ClusterManager, fence_broker_records, fence_slice
from raftka.controller.control.result import ControllerResult
from raftka.controller.control.sessions import BrokerSessions
from raftka.controller.control.topics import TopicManager
from raftka.controller.metadata_log import MetadataStateMachine
from raftka.controller.quorum.raft_storage import RaftStorage
from raftka.controller.quorum.runtime import QuorumRuntime
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.messages import Message
from raftka.v1 import controller_pb2 as pb
from raftka.v1.common_pb2 import Endpoint
from raftka.v1.metadata_pb2 import MetadataBatch, MetadataRecord

CLUSTER_ID = "AAAAAAAAAAAAAAAAAAAAAA"
TOPIC_PARTITIONS = 10_000
LOAD_CHUNK = 2_000


class NoPeers:
    """The transport of a single voter: nothing to send."""

    def start(self) -> None:
        pass

    def send(self, messages: list[Message]) -> None:
        pass

    async def close(self) -> None:
        pass


def cluster_records(partitions: int) -> list[MetadataRecord]:
    """Records of 3 unfenced brokers and ``partitions`` partitions at RF 3."""
    image = MetadataImage()
    cluster = ClusterManager(CLUSTER_ID, BrokerSessions(60_000, started_ms=0))
    for broker in (1, 2, 3):
        request = pb.RegisterBrokerRequest(
            broker_id=broker,
            cluster_id=CLUSTER_ID,
            incarnation_id=f"inc-{broker}",
            listeners=[Endpoint(name="CLIENT", host="127.0.0.1", port=9000 + broker)],
            previous_broker_epoch=-1,
        )
        index = image.last_applied_index + 1
        result = cluster.register_broker(image, request, next_index=index, now_ms=0)
        image.apply_batch(result.batch(), index)
        beat = pb.BrokerHeartbeatRequest(
            broker_id=broker, broker_epoch=index, current_metadata_index=index
        )
        index = image.last_applied_index + 1
        image.apply_batch(cluster.heartbeat(image, beat, next_index=index, now_ms=0).batch(), index)
    topics = TopicManager(random.Random(1))
    for start in range(0, partitions, TOPIC_PARTITIONS):
        count = min(TOPIC_PARTITIONS, partitions - start)
        topic = pb.NewTopic(name=f"t{start}", num_partitions=count, replication_factor=3)
        created = topics.create_topics(image, pb.CreateTopicsRequest(topics=[topic]))
        image.apply_batch(MetadataBatch(records=created.records), image.last_applied_index + 1)
    return image.to_snapshot_records()


def load_plan(
    chunk: tuple[MetadataRecord, ...], _image: MetadataImage, _index: Index
) -> ControllerResult[None]:
    return ControllerResult(chunk, None)


def fence_one_block(image: MetadataImage, _index: Index) -> ControllerResult[int]:
    return ControllerResult(tuple(fence_broker_records(image, 1)), 1)


def fence_in_slices(image: MetadataImage, _index: Index) -> ControllerResult[int]:
    records, more = fence_slice(image, 1)
    return ControllerResult(tuple(records), 1, more=more)


async def one_run(records: list[MetadataRecord], sliced: bool) -> tuple[float, float]:
    """(worst loop lag, seconds until the fencing committed)."""
    with tempfile.TemporaryDirectory(prefix="fence-lag-") as tmp:
        config = RaftConfig(election_timeout_ticks=10, heartbeat_ticks=1)
        if not sliced:
            config = RaftConfig(
                election_timeout_ticks=10, heartbeat_ticks=1, max_committed_bytes_per_ready=1 << 40
            )
        state = MetadataStateMachine()
        runtime = QuorumRuntime(
            node_id=NodeId(1),
            voters=[NodeId(1)],
            raft_config=config,
            storage=RaftStorage(Path(tmp)),
            transport=NoPeers(),
            state_machine=state,
            tick_s=0.05,
            snapshot_after_bytes=1 << 40,
            rng=random.Random(1),
        )
        active = ActiveController(runtime, state, {NodeId(1): "127.0.0.1:1"}, 60.0)
        became_active = asyncio.Event()
        active.on_became_active(became_active.set)
        await runtime.start()
        try:
            await asyncio.wait_for(became_active.wait(), 10.0)
            for i in range(0, len(records), LOAD_CHUNK):
                await active.write(functools.partial(load_plan, tuple(records[i : i + LOAD_CHUNK])))
            await asyncio.sleep(0.2)
            probe = LoopLagProbe(interval_s=0.005, report_s=10.0)
            probe.start()
            await asyncio.sleep(0.05)
            started = time.perf_counter()
            await active.write(fence_in_slices if sliced else fence_one_block)
            elapsed = time.perf_counter() - started
            await asyncio.sleep(0.05)
            await probe.stop()
            reg = state.image.broker(1)
            assert reg is not None and reg.fenced, "broker 1 was not fenced"
            return probe.max_lag_s, elapsed
        finally:
            await runtime.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    records = cluster_records(args.partitions)
    results: dict[str, list[tuple[float, float]]] = {"one-block": [], "slices": []}
    for _ in range(args.rounds):
        for mode in ("one-block", "slices"):
            results[mode].append(asyncio.run(one_run(records, mode == "slices")))
    print(f"fencing broker 1 with {args.partitions} replicas (median of {args.rounds} rounds)")
    for mode, runs in results.items():
        lag = statistics.median(r[0] for r in runs) * 1000
        took = statistics.median(r[1] for r in runs) * 1000
        lags = " ".join(f"{r[0] * 1000:.0f}" for r in runs)
        print(f"  {mode:10s} worst loop lag {lag:6.0f} ms ({lags})  committed in {took:6.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
