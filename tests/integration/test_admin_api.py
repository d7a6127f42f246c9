"""Admin RPCs end to end against three real controllers, bad input included."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from raftka.common.data_dir import format_data_dir
from raftka.common.errors import InvalidRequestError
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from raftka.v1.controller_pb2_grpc import ControllerServiceStub
from tests.integration.support.quorum import (
    client_for,
    create_topic,
    leader_of,
    start_brokers,
    stop_brokers,
    topic_names,
)

pytestmark = pytest.mark.integration


def code(name: str) -> int:
    return cpb.ErrorCode.Value(name)


def test_admin_rpcs_and_bad_input(cluster: LocalCluster) -> None:
    async def main() -> None:
        leader = await leader_of(cluster)
        brokers = await start_brokers(cluster)
        try:
            async with client_for(cluster) as client:
                created = await create_topic(client, "orders", partitions=6, rf=3)
                assert len(created.topic_id) == 22
                (desc,) = await client.describe_topics(["orders"])
                assert len(desc.partitions) == 6
                for p in desc.partitions:
                    assert (
                        len(set(p.replicas)) == 3
                        and p.leader == p.replicas[0]
                        and set(p.isr) == set(p.replicas)
                    )
                # rack-aware striping spreads preferred leaders over all three brokers
                assert {p.leader for p in desc.partitions} == {1, 2, 3}

                before = await topic_names(client)
                bad = [
                    pb.NewTopic(name="", num_partitions=1, replication_factor=1),
                    pb.NewTopic(name="..", num_partitions=1, replication_factor=1),
                    pb.NewTopic(name="a/b", num_partitions=1, replication_factor=1),
                    pb.NewTopic(name="x" * 250, num_partitions=1, replication_factor=1),
                    pb.NewTopic(name="orders", num_partitions=1, replication_factor=1),
                    pb.NewTopic(name="neg", num_partitions=-3, replication_factor=1),
                    pb.NewTopic(name="rf", num_partitions=1, replication_factor=4),
                    pb.NewTopic(
                        name="cfg", num_partitions=1, replication_factor=1, configs={"no.such": "1"}
                    ),
                    pb.NewTopic(
                        name="cfgval",
                        num_partitions=1,
                        replication_factor=1,
                        configs={"retention.ms": "soon"},
                    ),
                    pb.NewTopic(name="dup", num_partitions=1, replication_factor=1),
                    pb.NewTopic(name="dup", num_partitions=1, replication_factor=1),
                ]
                results = await client.create_topics(bad)
                got = [(r.name[:10], cpb.ErrorCode.Name(r.error_code)) for r in results]
                expected = [
                    ("", "INVALID_TOPIC_EXCEPTION"),
                    ("..", "INVALID_TOPIC_EXCEPTION"),
                    ("a/b", "INVALID_TOPIC_EXCEPTION"),
                    ("x" * 10, "INVALID_TOPIC_EXCEPTION"),
                    ("orders", "TOPIC_ALREADY_EXISTS"),
                    ("neg", "INVALID_PARTITIONS"),
                    ("rf", "INVALID_REPLICATION_FACTOR"),
                    ("cfg", "INVALID_CONFIG"),
                    ("cfgval", "INVALID_CONFIG"),
                    ("dup", "INVALID_REQUEST"),
                    ("dup", "INVALID_REQUEST"),
                ]
                assert got == expected
                assert all(r.error_message for r in results)
                assert await topic_names(client) == before, "rejected topics must not be created"

                # validate-only creates nothing
                (ok,) = await client.create_topics(
                    [pb.NewTopic(name="dry", num_partitions=2, replication_factor=2)],
                    validate_only=True,
                )
                assert ok.error_code == cpb.NONE and "dry" not in await topic_names(client)

                # configs: describe defaults, alter with validation, delete
                (cfg,) = await client.describe_configs(
                    [pb.ConfigResource(type=cpb.RESOURCE_TYPE_TOPIC, name="orders")]
                )
                entries = {e.name: e for e in cfg.entries}
                assert entries["retention.ms"].value == "604800000"
                assert entries["retention.ms"].source == cpb.CONFIG_SOURCE_DEFAULT
                set_op = pb.AlterConfigOp(
                    name="retention.ms", op=pb.AlterConfigOp.SET, value="1000"
                )
                (altered,) = await client.alter_configs(
                    [
                        pb.AlterConfigResource(
                            type=cpb.RESOURCE_TYPE_TOPIC, name="orders", ops=[set_op]
                        )
                    ]
                )
                assert altered.error_code == cpb.NONE
                bad_op = pb.AlterConfigOp(
                    name="min.insync.replicas", op=pb.AlterConfigOp.SET, value="0"
                )
                (refused,) = await client.alter_configs(
                    [
                        pb.AlterConfigResource(
                            type=cpb.RESOURCE_TYPE_TOPIC, name="orders", ops=[bad_op]
                        )
                    ]
                )
                assert (
                    refused.error_code == cpb.INVALID_CONFIG
                    and "min.insync.replicas" in refused.error_message
                )
                (cfg,) = await client.describe_configs(
                    [pb.ConfigResource(type=cpb.RESOURCE_TYPE_TOPIC, name="orders")]
                )
                entries = {e.name: e for e in cfg.entries}
                assert (
                    entries["retention.ms"].value == "1000"
                    and entries["retention.ms"].source == cpb.CONFIG_SOURCE_TOPIC
                )
                assert entries["min.insync.replicas"].value == "1"

                # partitions only grow
                (grow,) = await client.create_partitions({"orders": 8})
                assert grow.error_code == cpb.NONE
                (shrink,) = await client.create_partitions({"orders": 2})
                assert shrink.error_code == cpb.INVALID_PARTITIONS
                (desc,) = await client.describe_topics(["orders"])
                assert len(desc.partitions) == 8

                # delete, and delete again
                (deleted,) = await client.delete_topics(["orders"])
                assert deleted.error_code == cpb.NONE
                (again,) = await client.delete_topics(["orders"])
                assert again.error_code == cpb.UNKNOWN_TOPIC_OR_PARTITION

                cluster_desc = await client.describe_cluster()
                assert (
                    cluster_desc.controller_id == leader
                    or cluster_desc.controller_id in cluster.nodes
                )
                assert {b.broker_id for b in cluster_desc.brokers} == {1, 2, 3}
                assert all(not b.fenced for b in cluster_desc.brokers)
                quorum = await client.describe_quorum()
                assert {v.node_id for v in quorum.voters} == set(cluster.nodes)

            # an oversize request is refused by the transport with a clear status
            async with grpc.aio.insecure_channel(cluster.bootstrap[0]) as channel:
                stub = ControllerServiceStub(channel)
                huge = pb.CreateTopicsRequest(
                    topics=[pb.NewTopic(name="h", configs={"k": "v" * (70 * 1024 * 1024)})]
                )
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await stub.CreateTopics(huge, timeout=10)
                assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                empty = pb.CreateTopicsRequest()
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await ControllerServiceStub(channel).CreateTopics(empty, timeout=10)
                # the request's shape is checked first, on any controller, leader or not
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "topics is empty" in (e.value.details() or "")
        finally:
            await stop_brokers(brokers)

    asyncio.run(main())


def test_requests_naming_too_many_items_are_refused_and_the_quorum_keeps_its_leader(
    cluster: LocalCluster,
) -> None:
    """One request naming a million topics once blocked the active controller for seconds and
    cost a failover: every list in a request is capped (10,000 items)."""

    async def main() -> None:
        leader = await leader_of(cluster)
        async with client_for(cluster) as client:
            at_cap = await client.describe_topics([f"t{i}" for i in range(10_000)])
            assert len(at_cap) == 10_000
            assert all(t.error_code == cpb.UNKNOWN_TOPIC_OR_PARTITION for t in at_cap)
            with pytest.raises(InvalidRequestError, match="10001 items; at most 10000"):
                await client.describe_topics([f"t{i}" for i in range(10_001)])
            with pytest.raises(InvalidRequestError, match="at most 10000"):
                await client.list_partition_reassignments([f"t{i}" for i in range(10_001)])
        assert await leader_of(cluster) == leader

    asyncio.run(main())


def test_follower_redirects_to_leader(cluster: LocalCluster) -> None:
    async def main() -> None:
        leader = await leader_of(cluster)
        follower = next(n for n in cluster.nodes if n != leader)
        async with client_for(cluster, follower, timeout_s=2.0) as pinned:
            # the pinned client cannot follow the hint (it only knows one address)... but it
            # learns the leader's address from the NOT_CONTROLLER answer and retries there.
            described = await pinned.describe_cluster()
            assert described.controller_id == leader

    asyncio.run(main())


def _server(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftka.client.cli", "server", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _config(tmp_path: Path, data_dir: Path, node_id: int = 1) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(
        f'node_id = {node_id}\ndata_dir = "{data_dir}"\n[controller]\nvoters = "1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3"\n'
    )
    return path


def test_missing_data_directory_gives_clear_error(tmp_path: Path) -> None:
    result = _server(_config(tmp_path, tmp_path / "nowhere"))
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "raftka format" in result.stderr


def test_foreign_data_directory_gives_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    format_data_dir(data, "AAAAAAAAAAAAAAAAAAAAAA", node_id=2)
    result = _server(_config(tmp_path, data, node_id=1))
    assert result.returncode == 1
    assert "belongs to node 2" in result.stderr


def test_bad_config_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        'node_id = 1\ndata_dir = "x"\n[controller]\nvoters = "1@127.0.0.1:1"\nelection_timeout_ms = "soon"\n'
    )
    result = _server(path)
    assert result.returncode == 1
    assert "controller.election_timeout_ms: expected an integer" in result.stderr


def test_damaged_meta_properties_gives_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    format_data_dir(data, "AAAAAAAAAAAAAAAAAAAAAA", node_id=1)
    (data / "meta.properties").write_bytes(bytes(range(256)))
    result = _server(_config(tmp_path, data, node_id=1))
    assert result.returncode == 1
    assert "meta.properties is damaged" in result.stderr
    assert "Traceback" not in result.stderr
