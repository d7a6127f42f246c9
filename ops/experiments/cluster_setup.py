"""Starting an experiment's cluster (on 127.0.0.1, or each node in its own network namespace),
creating its topic, and waiting for it to be ready and, after healing, recovered."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import grpc

from raftka.common.errors import RaftkaError
from raftka.common.rpc.channels import default_security, open_channel, set_default_security
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
    tls: bool = False,
) -> LocalCluster:
    """With ``netns`` the nodes listen on the namespaces' addresses, which a node refuses to
    do in plaintext unless told the network is trusted: without ``tls`` the experiment says
    so (``allow_plaintext``; the namespaces are a private network it made), with ``tls`` every
    node has a certificate for its address (``LocalCluster(tls=True)``) and TLS is on."""
    plaintext_off_loopback = netns is not None and not tls
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
        tls=tls,
        security_settings={"allow_plaintext": True} if plaintext_off_loopback else None,
    )


@contextlib.contextmanager
def clients_secured(cluster: LocalCluster) -> Iterator[None]:
    """Meanwhile, every channel this process opens without a security of its own (the
    controller clients of the setup and the observer, the producers and readers of every
    workload, the fault clients) uses the cluster's: TLS with the ``admin`` client
    certificate when the cluster has TLS. It is the process default a node sets for its own
    channels (``set_default_security``), so no workload component needs a security parameter
    threaded through it; the previous default is restored after."""
    if not cluster.tls:
        yield
        return
    previous = default_security()
    set_default_security(cluster.client_security())
    try:
        yield
    finally:
        set_default_security(previous)


def consumer_properties(cluster: LocalCluster) -> list[str]:
    """The ``NAME=VALUE`` consumer settings (Kafka names) that reach the cluster, for client
    processes the experiment starts (group members)."""
    if not cluster.tls:
        return []
    security = cluster.client_security()
    return [
        "security.protocol=SSL",
        f"ssl.ca.location={security.ca_file}",
        f"ssl.certificate.location={security.cert_file}",
        f"ssl.key.location={security.key_file}",
    ]


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
