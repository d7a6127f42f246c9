"""``raftka copy`` between two clusters (one controller and one broker each, as real processes):
the topic is copied exactly once, the copy's progress (the source positions) is committed at
the TARGET cluster's group coordinator in the same transactions as the copied records (the
source cluster never hears of the group), and a rerun copies only what arrived since. Those
offsets name the source topic, so the target needs a topic of that name: a copy to another
name on a target without it is refused at once, saying so."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftka.client import AsyncConsumer, AsyncProducer, TopicPartition
from raftka.ops.local_cluster import LocalCluster
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
)
from tests.integration.support.quorum import client_for, create_topic

pytestmark = pytest.mark.integration

PARTITIONS = 2
SOURCE = TARGET = "orders"
"""Copied to a topic of the same name, as a mirror does."""
GROUP = "orders-copier"
READ: dict[str, Any] = {"fetch_max_wait_ms": 100, "retry_backoff_ms": 20}


@pytest.fixture(scope="module")
def clusters(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalCluster, LocalCluster]]:
    """(source, target): the internal topics get replication factor 1 (capped at the brokers)."""
    started: list[LocalCluster] = []
    try:
        for name, topics in (("source", (SOURCE, "events")), ("target", (TARGET, "events-copy"))):
            c = start_broker_cluster(
                tmp_path_factory.mktemp(name),
                controllers=1,
                brokers=1,
                broker_settings={
                    "transaction_state_num_partitions": 3,
                    "offsets_topic_num_partitions": 3,
                },
            )
            started.append(c)
            asyncio.run(_create(c, topics))
        yield started[0], started[1]
    finally:
        for c in started:
            stop_broker_cluster(c)


async def _create(cluster: LocalCluster, topics: tuple[str, ...]) -> None:
    async with client_for(cluster, timeout_s=10.0) as client:
        for topic in topics:
            await create_topic(client, topic, partitions=PARTITIONS, rf=1)
    for topic in topics:
        await wait_partition_leaders(cluster, topic, PARTITIONS)


def copy(
    source: LocalCluster,
    target: LocalCluster,
    cwd: Path,
    topics: tuple[str, str] = (SOURCE, TARGET),
) -> subprocess.CompletedProcess[str]:
    """Runs ``raftka copy`` as its own process."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "raftka.client.cli",
            "copy",
            "--from-bootstrap",
            ",".join(source.bootstrap_servers),
            "--to-bootstrap",
            ",".join(target.bootstrap_servers),
            "--source-topic",
            topics[0],
            "--target-topic",
            topics[1],
            "--group",
            GROUP,
            "--transactional-id",
            "orders-copier-1",
            "--idle-timeout-s",
            "1.5",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def copied(source: LocalCluster, target: LocalCluster, cwd: Path) -> str:
    """Runs a copy that must succeed; returns what it printed on stderr."""
    result = copy(source, target, cwd)
    assert result.returncode == 0, result.stderr
    return result.stderr


async def fill(cluster: LocalCluster, tag: str, n: int) -> None:
    async with AsyncProducer(bootstrap_servers=cluster.bootstrap_servers, linger_ms=0) as p:
        futures = [
            await p.send(SOURCE, b"%s-%d" % (tag.encode(), i), partition=i % PARTITIONS)
            for i in range(n)
        ]
        await asyncio.gather(*futures)


async def read_target(target: LocalCluster, expected: int) -> list[bytes]:
    tps = [TopicPartition(TARGET, p) for p in range(PARTITIONS)]
    values: list[bytes] = []
    async with AsyncConsumer(
        bootstrap_servers=target.bootstrap_servers, isolation_level="read_committed", **READ
    ) as consumer:
        consumer.assign(tps)
        consumer.seek_to_beginning()
        async with asyncio.timeout(30):
            while len(values) < expected:
                values += [r.value or b"" for r in await consumer.poll(timeout_ms=500)]
            values += [r.value or b"" for r in await consumer.poll(timeout_ms=300)]
    return sorted(values)


async def committed(cluster: LocalCluster) -> dict[int, int | None]:
    """The copier group's committed offset of each source partition, at ``cluster``."""
    async with AsyncConsumer(
        bootstrap_servers=cluster.bootstrap_servers, group_id=GROUP, **READ
    ) as consumer:
        found = {p: await consumer.committed(TopicPartition(SOURCE, p)) for p in range(PARTITIONS)}
    return {p: None if o is None else o.offset for p, o in found.items()}


def test_copy_to_another_cluster_is_exactly_once_and_a_rerun_continues(
    clusters: tuple[LocalCluster, LocalCluster], tmp_path: Path
) -> None:
    source, target = clusters
    asyncio.run(fill(source, "first", 10))
    assert "copied 10 records" in copied(source, target, tmp_path)
    first = sorted(b"first-%d" % i for i in range(10))
    assert asyncio.run(read_target(target, 10)) == first
    assert asyncio.run(committed(target)) == {0: 5, 1: 5}
    assert asyncio.run(committed(source)) == {0: None, 1: None}

    asyncio.run(fill(source, "second", 4))
    assert "copied 4 records" in copied(source, target, tmp_path)
    second = sorted(b"second-%d" % i for i in range(4))
    assert asyncio.run(read_target(target, 14)) == sorted(first + second)
    assert asyncio.run(committed(target)) == {0: 7, 1: 7}


def test_a_copy_is_refused_when_the_target_lacks_the_source_topic(
    clusters: tuple[LocalCluster, LocalCluster], tmp_path: Path
) -> None:
    source, target = clusters
    result = copy(source, target, tmp_path, ("events", "events-copy"))
    assert result.returncode != 0
    assert "the target cluster has no topic 'events'" in result.stderr, result.stderr
    assert "--target-topic events" in result.stderr
