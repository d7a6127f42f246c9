"""The Python Admin client (asyncio and blocking) against real controllers and brokers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from raftka.client.admin import Admin, AsyncAdmin
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from tests.integration.support.broker_rpc import broker_stub

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


def test_a_client_that_knows_only_brokers_finds_the_controllers(
    broker_cluster: LocalCluster,
) -> None:
    """Brokers say where the controllers are (Metadata.controller_addresses) and which one is
    active: admin calls and the CLI need nothing but a broker's address."""
    servers = [broker_cluster.brokers[b].address for b in sorted(broker_cluster.brokers)][:1]

    async def main() -> None:
        async with broker_stub(servers[0]) as stub:
            meta = await stub.Metadata(bpb.MetadataRequest(brokers_only=True), timeout=5)
        assert sorted(meta.controller_addresses) == sorted(broker_cluster.bootstrap)
        assert meta.controller_id in broker_cluster.nodes and not meta.topics
        async with AsyncAdmin(bootstrap_servers=servers) as admin:
            await admin.create_topic("via-broker", partitions=1, replication_factor=1)
            assert "via-broker" in await admin.list_topics()
            assert (await admin.describe_cluster()).controller_id == meta.controller_id

    asyncio.run(main())
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAFTKA_BOOTSTRAP")} | {
        "RAFTKA_CLUSTER_DIR": "/nonexistent"
    }
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "raftka.client.cli",
            "topics",
            "list",
            "--bootstrap-server",
            servers[0],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert listed.returncode == 0, listed.stderr
    assert "via-broker" in listed.stdout
