"""Starting an experiment's cluster (on 127.0.0.1, or each node in its own network namespace),
creating its topic, and waiting for it to be ready and, after healing, recovered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc

from raftka.common.errors import RaftkaError
from raftka.common.rpc.channels import open_channel
from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.experiments.netns import NetnsNetwork
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import controller_pb2 as pb
from raftka.v1.broker_pb2_grpc import BrokerServiceStub
from raftka.v1.common_pb2 import ErrorCode

EXPERIMENT_CONTROLLER: dict[str, object] = {
    "tick_ms": 20,
    "election_timeout_ms": 300,
    "heartbeat_interval_ms": 60,
    "broker_session_timeout_ms": 2500,
}
"""Fast failure detection, as in the integration tests (overridable per setting)."""
EXPERIMENT_BROKER: dict[str, object] = {
    "heartbeat_interval_ms": 200,
    "replica_lag_time_max_ms": 5000,
}


class ExperimentSetupError(RaftkaError):
    """The cluster did not come up (or did not recover) in time."""


def make_cluster(
    base_dir: Path,
    *,
    controllers: int,
    brokers: int,
    controller_settings: Mapping[str, object],
    broker_settings: Mapping[str, object],
    netns: NetnsNetwork | None,
    planted_bugs: Sequence[str] = (),
) -> LocalCluster:
    return LocalCluster(
        base_dir,
        controllers=controllers,
        brokers=brokers,
        controller_settings={**EXPERIMENT_CONTROLLER, **controller_settings},
        broker_settings={**EXPERIMENT_BROKER, **broker_settings},
        faults=True,
        planted_bugs=planted_bugs,
        addresses=netns.node_addresses() if netns is not None else None,
        launch_prefix=netns.launch_prefix if netns is not None else None,
    )


async def until(probe: object, what: str, timeout_s: float) -> None:
    """Await ``probe()`` until it is true; errors count as "not yet"."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            if await probe():  # type: ignore[operator]
                return
        except (RaftkaError, grpc.aio.AioRpcError) as e:
            last = e.message if isinstance(e, RaftkaError) else str(e.code())
        await asyncio.sleep(0.1)
    raise ExperimentSetupError(
        f"{what} did not happen within {timeout_s:g}s" + (f" (last error: {last})" if last else "")
    )


async def create_topic(
    admin: ControllerClient,
    topic: str,
    *,
    partitions: int,
    replication_factor: int,
    min_insync_replicas: int,
    unclean_election: bool,
) -> None:
    configs = {
        "min.insync.replicas": str(min_insync_replicas),
        "unclean.leader.election.enable": "true" if unclean_election else "false",
    }
    (result,) = await admin.create_topics(
        [
            pb.NewTopic(
                name=topic,
                num_partitions=partitions,
                replication_factor=replication_factor,
                configs=configs,
            )
        ]
    )
    if result.error_code == ErrorCode.TOPIC_ALREADY_EXISTS:
        # The controller client retries a create whose answer timed out (a busy machine); the
        # retry then finds the topic its first attempt made. The cluster is new: nothing else
        # made it, but check it is the topic asked for.
        (existing,) = await admin.describe_topics([topic])
        sizes = {len(p.replicas) for p in existing.partitions}
        if len(existing.partitions) == partitions and sizes == {replication_factor}:
            return
    if result.error_code != ErrorCode.NONE:
        raise ExperimentSetupError(
            f"creating topic {topic}: {ErrorCode.Name(result.error_code)} {result.error_message}"
        )


async def brokers_unfenced(admin: ControllerClient, brokers: int) -> bool:
    described = await admin.describe_cluster()
    return sum(1 for b in described.brokers if not b.fenced) >= brokers


async def partitions_healthy(
    admin: ControllerClient, cluster: LocalCluster, topic: str, *, full_isr: bool
) -> bool:
    """Every partition has a leader that serves it (and, with ``full_isr``, every replica in
    its ISR)."""
    (described,) = await admin.describe_topics([topic])
    if described.error_code != ErrorCode.NONE or not described.partitions:
        return False
    for p in described.partitions:
        if p.leader < 0 or (full_isr and set(p.isr) != set(p.replicas)):
            return False
        if not await _serves(cluster.brokers[p.leader].address, topic, p.partition):
            return False
    return True


async def _serves(address: str, topic: str, partition: int) -> bool:
    request = bpb.ListOffsetsRequest(
        topics=[
            bpb.ListOffsetsTopic(
                topic=topic,
                partitions=[bpb.ListOffsetsPartition(partition=partition, timestamp=-1)],
            )
        ]
    )
    async with open_channel(address) as channel:
        answer = await BrokerServiceStub(channel).ListOffsets(request, timeout=2)
    return bool(answer.results[0].error_code == ErrorCode.NONE)


def heal_processes(cluster: LocalCluster) -> None:
    """Every node running and not stopped: SIGCONT to all, start any that is down."""
    for node_id in [*cluster.nodes, *cluster.brokers]:
        cluster.resume(node_id)
    cluster.start()
