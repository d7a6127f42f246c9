"""The secured cluster of the attack tests (tests/integration/test_security_attacks.py): one
cluster with TLS, mTLS and the authorizer on, its callers (each with a certificate from the
cluster's CA) and ACLs, and ways to read its state to check an attack changed nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from raftka.client.admin import AsyncAdmin
from raftka.client.consumer.consumer import AsyncConsumer
from raftka.client.types import TopicPartition
from raftka.common.rpc.channels import open_channel
from raftka.common.security.model import (
    ALLOW,
    CLUSTER_RESOURCE_NAME,
    LITERAL,
    OP_DESCRIBE,
    OP_IDEMPOTENT_WRITE,
    OP_READ,
    OP_WRITE,
    RESOURCE_CLUSTER,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
    Acl,
)
from raftka.common.security.tls import ChannelSecurity
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import broker_pb2_grpc as bpb_grpc
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from raftka.v1 import controller_pb2_grpc as pb_grpc
from tests.conditions import eventually
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
)
from tests.integration.support.identities import assert_refused, client_settings, identity

ALLOWED, OTHER, REPLICATED = "allowed", "other", "replicated"
"""Topics: the one the clients may write, one nobody but the admin may, one for replication."""
GROUP_DENIED, GROUP_OK = "carol-denied", "carol-ok"
"""Carol may describe the first group but not read (join) it; she may read the second."""
MALLORY_TXN = "mallory-txn"
"""A transactional id mallory may use (WRITE)."""
RPC_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Secured:
    """The cluster and its callers."""

    cluster: LocalCluster
    admin: ChannelSecurity
    """``User:admin``, a super user."""
    callers: dict[str, ChannelSecurity]
    """By name: mallory, fake-broker, node-99, alice, carol."""

    def __getitem__(self, name: str) -> ChannelSecurity:
        return self.callers[name]


@contextlib.contextmanager
def secured_cluster(base_dir: Path) -> Iterator[Secured]:
    """Start the cluster, give the callers their ACLs and topics; stop it on exit."""
    cluster = start_broker_cluster(base_dir, controllers=3, brokers=3, tls=True)
    try:
        names = ("mallory", "fake-broker", "node-99", "alice", "carol")
        s = Secured(cluster, cluster.client_security(), {n: identity(cluster, n) for n in names})
        asyncio.run(prepare(s))
        yield s
    finally:
        stop_broker_cluster(cluster)


def acl(resource_type: int, name: str, who: str, operation: int) -> Acl:
    return Acl(resource_type, name, LITERAL, f"User:{who}", "*", operation, ALLOW)


async def prepare(s: Secured) -> None:
    """Topics and ACLs, then wait until every broker enforces those ACLs (brokers authorize
    from the metadata image they follow, which may lag the controllers a little)."""
    async with admin_of(s) as a:
        for topic in (ALLOWED, OTHER, REPLICATED):
            result = await a.create_topic(topic, 1, 3)
            assert result.error_code == cpb.NONE, result.error_message
        await a.create_acls(
            [
                acl(RESOURCE_TOPIC, ALLOWED, "alice", OP_WRITE),
                acl(RESOURCE_TOPIC, ALLOWED, "alice", OP_DESCRIBE),
                acl(RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME, "alice", OP_IDEMPOTENT_WRITE),
                acl(RESOURCE_TOPIC, ALLOWED, "mallory", OP_WRITE),
                acl(RESOURCE_TRANSACTIONAL_ID, MALLORY_TXN, "mallory", OP_WRITE),
                acl(RESOURCE_TOPIC, ALLOWED, "carol", OP_READ),
                acl(RESOURCE_GROUP, GROUP_DENIED, "carol", OP_DESCRIBE),
                acl(RESOURCE_GROUP, GROUP_OK, "carol", OP_READ),
            ]
        )
        committed = (await a.describe_quorum()).commit_index

    async def enforced() -> bool | None:
        for broker_id in s.cluster.brokers:
            async with broker_stub(s, broker_id, s.admin) as stub:
                meta = await stub.Metadata(
                    bpb.MetadataRequest(topics=[ALLOWED, OTHER, REPLICATED]), timeout=2
                )
            if meta.metadata_index < committed:
                return None
            if any(p.leader_id < 0 for t in meta.topics for p in t.partitions):
                return None
        return True

    await eventually(enforced, what="every broker applied the ACLs and knows the leaders")


# ---- plumbing -------------------------------------------------------------------------


def admin_of(s: Secured, security: ChannelSecurity | None = None) -> AsyncAdmin:
    return AsyncAdmin(s.cluster.bootstrap, security=security or s.admin, timeout_s=RPC_TIMEOUT_S)


@contextlib.asynccontextmanager
async def broker_stub(
    s: Secured, broker_id: int, security: ChannelSecurity
) -> AsyncIterator[bpb_grpc.BrokerServiceStub]:
    async with open_channel(s.cluster.brokers[broker_id].address, security=security) as channel:
        yield bpb_grpc.BrokerServiceStub(channel)


@contextlib.asynccontextmanager
async def controller_channel(
    s: Secured, node_id: int, security: ChannelSecurity
) -> AsyncIterator[grpc.aio.Channel]:
    async with open_channel(s.cluster.nodes[node_id].address, security=security) as channel:
        yield channel


async def refused(call: Awaitable[Any], code_name: str = "CLUSTER_AUTHORIZATION_FAILED") -> None:
    """``call`` fails with an authorization refusal."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert_refused(raised.value, code_name)


async def on_every_controller(
    s: Secured, security: ChannelSecurity, method: str, request: Any
) -> None:
    """Send ``request`` to ``ControllerService.<method>`` on every controller (whichever is
    active): each refuses it."""
    for node_id in s.cluster.nodes:
        async with controller_channel(s, node_id, security) as channel:
            call = getattr(pb_grpc.ControllerServiceStub(channel), method)
            await refused(call(request, timeout=RPC_TIMEOUT_S))


@dataclass(frozen=True)
class QuorumState:
    leader: int
    term: int


async def quorum_state(s: Secured) -> QuorumState:
    async with admin_of(s) as a:
        quorum = await a.describe_quorum()
    assert quorum.leader_id > 0
    return QuorumState(quorum.leader_id, quorum.term)


async def brokers(s: Secured) -> dict[int, pb.BrokerDescription]:
    async with admin_of(s) as a:
        described = await a.describe_cluster()
    return {b.broker_id: b for b in described.brokers}


async def topic_names(s: Secured) -> list[str]:
    async with admin_of(s) as a:
        return sorted(await a.list_topics())


async def partition_state(s: Secured, topic: str) -> tuple[str, pb.PartitionDescription]:
    """(topic id, partition 0) as the active controller describes it."""
    async with admin_of(s) as a:
        (described,) = await a.describe_topics(topic)
    return described.topic_id, described.partitions[0]


async def latest_offset(s: Secured, broker_id: int, topic: str) -> bpb.ListOffsetsResult:
    """ListOffsets LATEST (read_uncommitted: the high watermark) of ``topic``-0 on a broker."""
    request = bpb.ListOffsetsRequest(
        topics=[
            bpb.ListOffsetsTopic(
                topic=topic, partitions=[bpb.ListOffsetsPartition(partition=0, timestamp=-1)]
            )
        ]
    )
    async with broker_stub(s, broker_id, s.admin) as stub:
        response = await stub.ListOffsets(request, timeout=RPC_TIMEOUT_S)
    (result,) = response.results
    return result  # type: ignore[no-any-return]


async def high_watermark(s: Secured, leader: int, topic: str) -> int:
    result = await latest_offset(s, leader, topic)
    assert result.error_code == cpb.NONE, result.error_message
    return int(result.offset)


def fetch_request(
    topic: str, offset: int, *, replica: int = -1, epoch: int = 0
) -> bpb.FetchRequest:
    request = bpb.FetchRequest(
        replica_epoch=epoch,
        topics=[
            bpb.FetchTopic(
                topic=topic,
                partitions=[
                    bpb.FetchPartition(partition=0, fetch_offset=offset, current_leader_epoch=-1)
                ],
            )
        ],
    )
    if replica >= 0:
        request.replica_id = replica
    return request


async def read_all(s: Secured, topic: str, end: int) -> list[bytes]:
    """The values of ``topic``-0 from offset 0 up to offset ``end``, as the admin (control
    records take offsets but are not returned: read up to a position, not a count)."""
    async with AsyncConsumer(
        bootstrap_servers=s.cluster.bootstrap_servers, **client_settings(s.admin)
    ) as consumer:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got: list[bytes] = []

        async def through() -> bool | None:
            got.extend(r.value or b"" for r in await consumer.poll(timeout_ms=200))
            return True if await consumer.position(tp) >= end else None

        await eventually(through, what=f"{topic} read up to offset {end}")
    return got


# ---- no ACL: refused, nothing changed ---------------------------------------------------
