"""``raftka up --combined``: three processes, each a controller voter and a broker, serve a
replicated topic, and keep serving it with acks=all after one of them is killed (kill -9
takes a controller and a broker at once)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from raftka.client.admin import AsyncAdmin
from raftka.client.consumer import AsyncConsumer
from raftka.client.producer import AsyncProducer
from raftka.client.types import TopicPartition
from raftka.ops.cluster_file import read_cluster_file
from tests.conditions import wait_until
from tests.integration.support.up import running_up

pytestmark = pytest.mark.integration

TOPIC = "combined"


async def produce(servers: list[str], first: int, count: int) -> None:
    async with AsyncProducer(bootstrap_servers=servers, acks="all") as producer:
        deliveries = [await producer.send(TOPIC, b"r%03d" % i) for i in range(first, first + count)]
        await asyncio.gather(*deliveries)


async def read_values(servers: list[str], expected: int) -> set[bytes]:
    seen: set[bytes] = set()
    async with AsyncConsumer(bootstrap_servers=servers, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition(TOPIC, p) for p in range(3)])
        for _ in range(60):
            seen |= {r.value or b"" for r in await consumer.poll(timeout_ms=500)}
            if len(seen) >= expected:
                break
    return seen


def test_combined_nodes_serve_a_replicated_topic_through_a_node_kill(tmp_path: Path) -> None:
    with running_up(tmp_path, ["--controllers", "3", "--combined"]) as up:
        nodes = up.nodes()
        assert sorted(nodes) == [1, 2, 3]
        assert all(n["roles"] == ["controller", "broker"] for n in nodes.values())
        assert "3 controllers" in up.text and "3 brokers (combined nodes)" in up.text
        info = read_cluster_file(up.directory)
        servers = str(info["bootstrap_servers"]).split(",")
        controllers = str(info["bootstrap_controller"]).split(",")
        assert {n["addresses"]["broker"] for n in nodes.values()} == set(servers)
        assert not set(servers) & set(controllers), "each role listens on its own port"

        async def create() -> None:
            async with AsyncAdmin(controllers, timeout_s=30) as admin:
                await admin.create_topic(TOPIC, 3, 3, configs={"min.insync.replicas": "2"})

        asyncio.run(create())
        asyncio.run(produce(servers, 0, 50))
        assert up.node("kill", "2").returncode == 0
        wait_until(lambda: up.nodes()[2]["state"] != "running", "node 2 is gone")
        survivors = [s for s in servers if s != nodes[2]["addresses"]["broker"]]
        asyncio.run(produce(survivors, 50, 50))
        assert asyncio.run(read_values(survivors, 100)) == {b"r%03d" % i for i in range(100)}
