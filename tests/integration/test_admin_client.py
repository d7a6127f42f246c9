"""The Python Admin client (asyncio and blocking) against real controllers and brokers."""

from __future__ import annotations

import asyncio

import pytest

from raftka.client.admin import Admin, AsyncAdmin
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError
from raftka.ops.local_cluster import LocalCluster

pytestmark = pytest.mark.integration


def test_topic_lifecycle_and_configs(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        async with AsyncAdmin(broker_cluster.bootstrap) as admin:
            created = await admin.create_topic(
                "admin-a", partitions=2, replication_factor=3, configs={"min.insync.replicas": "2"}
            )
            assert (created.num_partitions, created.replication_factor) == (2, 3)
            with pytest.raises(RaftkaError, match="TOPIC_ALREADY_EXISTS"):
                await admin.create_topic("admin-a")
            assert "admin-a" in await admin.list_topics()
            (topic,) = await admin.describe_topics("admin-a")
            assert [len(p.replicas) for p in topic.partitions] == [3, 3]
            await admin.add_partitions("admin-a", 4)
            (topic,) = await admin.describe_topics("admin-a")
            assert len(topic.partitions) == 4
            configs = await admin.describe_configs("admin-a")
            assert configs["min.insync.replicas"].value == "2"
            await admin.alter_configs(
                "admin-a", set={"retention.ms": "60000"}, delete=["min.insync.replicas"]
            )
            configs = await admin.describe_configs("admin-a")
            assert configs["retention.ms"].value == "60000"
            assert configs["min.insync.replicas"].value == "1"
            with pytest.raises(RaftkaError, match="INVALID_CONFIG"):
                await admin.alter_configs("admin-a", set={"retention.ms": "soon"})
            assert await admin.elect_leaders("preferred", [TopicPartition("admin-a", 0)]) == {}
            cluster = await admin.describe_cluster()
            assert {b.broker_id for b in cluster.brokers} == set(broker_cluster.brokers)
            quorum = await admin.describe_quorum()
            assert {v.node_id for v in quorum.voters} == set(broker_cluster.nodes)
            await admin.delete_topics("admin-a")
            assert "admin-a" not in await admin.list_topics()
            with pytest.raises(RaftkaError, match="UNKNOWN_TOPIC_OR_PARTITION"):
                await admin.delete_topics("admin-a")

    asyncio.run(main())


def test_blocking_admin_is_the_same_api(broker_cluster: LocalCluster) -> None:
    with Admin(broker_cluster.bootstrap) as admin:
        admin.create_topic("admin-sync", partitions=1, replication_factor=1)
        assert "admin-sync" in admin.list_topics()
        (topic,) = admin.describe_topics("admin-sync")
        assert topic.name == "admin-sync" and len(topic.partitions) == 1
        with pytest.raises(AttributeError):
            admin._client  # noqa: B018 (private names are not forwarded)
        admin.delete_topics("admin-sync")
