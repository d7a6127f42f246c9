"""Split listeners with real processes: a TLS cluster whose client listeners ask for no
certificate (bearer tokens) while every internal listener requires the nodes' certificates.

A client holding only a token produces and consumes through the brokers' client listeners;
the same client cannot even complete a handshake with an internal listener; replication
(min.insync.replicas = 3, acks=all) runs over the internal listeners, where the followers
are authenticated nodes; a caller with neither a certificate nor a token is User:ANONYMOUS on
a client listener and denied by the ACLs, or refused outright with require_authentication."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from raftka.broker.groups.placement import partition_for
from raftka.client.admin import AsyncAdmin
from raftka.client.consumer.consumer import AsyncConsumer
from raftka.client.producer.producer import AsyncProducer
from raftka.client.types import TopicPartition
from raftka.common.rpc.channels import open_channel
from raftka.common.security.model import (
    ALLOW,
    LITERAL,
    OP_READ,
    OP_WRITE,
    PREFIXED,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
    Acl,
)
from raftka.common.security.tls import ChannelSecurity, bearer_token
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2, controller_pb2
from raftka.v1.broker_pb2_grpc import BrokerServiceStub
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.controller_pb2_grpc import ControllerServiceStub
from tests.conditions import eventually
from tests.integration.support.brokers import start_broker_cluster, stop_broker_cluster

pytestmark = pytest.mark.integration

TOPIC = "orders"
USER, PASSWORD = "alice", "correct horse"
RECORDS = 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One controller and three brokers, TLS everywhere, split listeners, authorizer on."""
    c = start_broker_cluster(
        tmp_path_factory.mktemp("listeners"),
        controllers=1,
        brokers=3,
        tls=True,
        split_listeners=True,
        broker_settings={"transaction_state_num_partitions": 3},
    )
    try:
        asyncio.run(grant_alice(c))
        yield c
    finally:
        stop_broker_cluster(c)


async def grant_alice(cluster: LocalCluster) -> None:
    """The admin (certificate CN=admin, a super user) works over the controller's internal
    listener: on its client listener no certificate is asked for."""
    async with AsyncAdmin(cluster.bootstrap, security=cluster.client_security()) as admin:
        await admin.set_user_password(USER, PASSWORD)
        await admin.create_acls(
            [
                *(
                    Acl(RESOURCE_TOPIC, TOPIC, LITERAL, f"User:{USER}", "*", op, ALLOW)
                    for op in (OP_WRITE, OP_READ)
                ),
                Acl(
                    RESOURCE_TRANSACTIONAL_ID, "tx-", PREFIXED, f"User:{USER}", "*", OP_WRITE, ALLOW
                ),
            ]
        )
        result = await admin.create_topic(TOPIC, 1, 3, {"min.insync.replicas": "3"})
        assert result.error_code == 0, result.error_message


def token_only(cluster: LocalCluster) -> ChannelSecurity:
    return cluster.client_security(certificate=False, token=bearer_token(USER, PASSWORD))


def token_settings(cluster: LocalCluster) -> dict[str, Any]:
    return {
        "security_protocol": "SASL_SSL",
        "ssl_ca_location": str(cluster.tls_dir / "ca.crt"),
        "sasl_username": USER,
        "sasl_password": PASSWORD,
    }


async def metadata(address: str, security: ChannelSecurity) -> broker_pb2.MetadataResponse:
    async with open_channel(address, security=security) as channel:
        response: broker_pb2.MetadataResponse = await BrokerServiceStub(channel).Metadata(
            broker_pb2.MetadataRequest(topics=[TOPIC]), timeout=5.0
        )
        return response


async def wait_token_accepted(cluster: LocalCluster) -> None:
    """Brokers learn the credential and ACLs from the metadata log: wait until every broker
    lets alice describe the topic and knows its three in-sync replicas."""
    security = token_only(cluster)

    async def ready() -> bool | None:
        for address in cluster.bootstrap_servers:
            try:
                response = await metadata(address, security)
            except grpc.aio.AioRpcError:
                return None
            (topic,) = response.topics
            if topic.error_code != ErrorCode.NONE or len(topic.partitions[0].isr) != 3:
                return None
        return True

    await eventually(ready, what="alice's token accepted by every broker")


def test_a_token_only_client_produces_and_consumes_on_client_listeners(
    cluster: LocalCluster,
) -> None:
    settings = token_settings(cluster)

    async def main() -> None:
        await wait_token_accepted(cluster)
        async with AsyncProducer(
            bootstrap_servers=cluster.bootstrap_servers,
            acks="all",
            delivery_timeout_ms=40_000,
            **settings,
        ) as producer:
            futures = [await producer.send(TOPIC, b"v%d" % i) for i in range(RECORDS)]
            # min.insync.replicas = 3: each acknowledgement means both followers fetched the
            # batch, which they can only do as authenticated nodes on the internal listeners
            # (on a client listener they would be User:ANONYMOUS, denied CLUSTER_ACTION).
            await asyncio.gather(*futures)
        async with AsyncConsumer(bootstrap_servers=cluster.bootstrap_servers, **settings) as c:
            tp = TopicPartition(TOPIC, 0)
            c.assign([tp])
            c.seek(tp, 0)
            got: list[bytes] = []

            async def all_read() -> bool | None:
                got.extend(r.value or b"" for r in await c.poll(timeout_ms=200))
                return True if len(got) >= RECORDS else None

            await eventually(all_read, what="the records consumed with a token")
        assert got == [b"v%d" % i for i in range(RECORDS)]
        async with AsyncAdmin(cluster.bootstrap, security=cluster.client_security()) as admin:
            (described,) = await admin.describe_topics(TOPIC)
        assert sorted(described.partitions[0].isr) == sorted(cluster.brokers)

    asyncio.run(main())


def test_transactions_reach_remote_coordinators_and_leaders_over_internal_listeners(
    cluster: LocalCluster,
) -> None:
    """A transaction whose coordinator is not the partition's leader: the leader's check of
    the first write (AddPartitionsToTxn verify_only) and the coordinator's WriteTxnMarkers
    cross between brokers, as CLUSTER_ACTION calls that only authenticated nodes may make."""
    settings = token_settings(cluster)

    async def transaction(tid: str, values: list[bytes]) -> None:
        async with AsyncProducer(
            bootstrap_servers=cluster.bootstrap_servers,
            transactional_id=tid,
            delivery_timeout_ms=40_000,
            **settings,
        ) as producer:
            await producer.init_transactions()
            producer.begin_transaction()
            futures = [await producer.send(TOPIC, v) for v in values]
            await producer.commit_transaction()
            await asyncio.gather(*futures)

    async def leaders(admin: AsyncAdmin, topic: str) -> dict[int, int]:
        (described,) = await admin.describe_topics(topic)
        return {p.partition: p.leader for p in described.partitions}

    async def main() -> None:
        await wait_token_accepted(cluster)
        await transaction("tx-first", [b"t0"])  # creates __transaction_state
        async with AsyncAdmin(cluster.bootstrap, security=cluster.client_security()) as admin:
            leader = (await leaders(admin, TOPIC))[0]
            coordinators = await leaders(admin, "__transaction_state")
        remote = next(
            tid
            for tid in (f"tx-{i}" for i in range(100))
            if coordinators[partition_for(tid, len(coordinators))] not in (leader, -1)
        )
        await transaction(remote, [b"t1", b"t2"])
        async with AsyncConsumer(
            bootstrap_servers=cluster.bootstrap_servers,
            isolation_level="read_committed",
            **settings,
        ) as c:
            tp = TopicPartition(TOPIC, 0)
            c.assign([tp])
            c.seek(tp, 0)
            got: list[bytes] = []

            async def committed_read() -> bool | None:
                got.extend(r.value or b"" for r in await c.poll(timeout_ms=200))
                return True if b"t2" in got else None

            await eventually(committed_read, what="the remote transaction's records committed")
        assert [v for v in got if v.startswith(b"t")] == [b"t0", b"t1", b"t2"]

    asyncio.run(main())


def test_a_token_only_client_cannot_use_internal_listeners(cluster: LocalCluster) -> None:
    security = token_only(cluster)

    async def describe_cluster(address: str) -> grpc.StatusCode:
        async with open_channel(address, security=security) as channel:
            try:
                await ControllerServiceStub(channel).DescribeCluster(
                    controller_pb2.DescribeClusterRequest(), timeout=3.0
                )
            except grpc.aio.AioRpcError as e:
                return e.code()
            return grpc.StatusCode.OK

    async def main() -> None:
        await wait_token_accepted(cluster)
        for broker in cluster.brokers.values():
            assert broker.internal_address != broker.client_address
            # The handshake asks for a certificate alice does not have: nothing is called.
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await metadata(broker.internal_address, security)
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
            served = await metadata(broker.client_address, security)
            assert served.topics[0].error_code == ErrorCode.NONE
        (controller,) = cluster.nodes.values()
        assert await describe_cluster(controller.internal_address) is grpc.StatusCode.UNAVAILABLE
        # On its client listener the call reaches the handler, which finds alice may not
        # describe the cluster.
        assert (
            await describe_cluster(controller.client_address) is grpc.StatusCode.PERMISSION_DENIED
        )

    asyncio.run(main())


def test_an_anonymous_client_is_denied_by_the_acls(cluster: LocalCluster) -> None:
    anonymous = cluster.client_security(certificate=False)

    async def main() -> None:
        await wait_token_accepted(cluster)
        for address in cluster.bootstrap_servers:
            response = await metadata(address, anonymous)
            assert response.topics[0].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
        # A certificate is not even asked for on a client listener: the admin's is not seen.
        admin_there = await metadata(cluster.bootstrap_servers[0], cluster.client_security())
        assert admin_there.topics[0].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED

    asyncio.run(main())


def test_an_anonymous_client_is_refused_where_authentication_is_required(
    tmp_path: Path,
) -> None:
    c = start_broker_cluster(
        tmp_path,
        controllers=1,
        brokers=1,
        tls=True,
        split_listeners=True,
        security_settings={"require_authentication": True},
    )
    try:

        async def main() -> None:
            (broker,) = c.brokers.values()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await metadata(broker.client_address, c.client_security(certificate=False))
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED

        asyncio.run(main())
    finally:
        stop_broker_cluster(c)
