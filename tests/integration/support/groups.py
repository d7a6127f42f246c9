"""Consumer groups over real processes: a background producer that keeps a history, the final
content of a topic, and what the recording members own (from their event files)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from raftka.client import AsyncConsumer, AsyncProducer, TopicPartition
from raftka.ops.experiments.group_history import GroupEvent, GroupEventKind
from raftka.ops.local_cluster import LocalCluster


class HistoryProducer:
    """Sends ``v<n>`` values round-robin over a topic's partitions until stopped, and keeps
    every acknowledged (partition, offset) -> value."""

    def __init__(self, cluster: LocalCluster, topic: str, partitions: int, rate: float) -> None:
        self._producer = AsyncProducer(
            bootstrap_servers=cluster.bootstrap_servers, acks="all", linger_ms=0
        )
        self._topic = topic
        self._partitions = partitions
        self._interval = 1.0 / rate
        self.acked: dict[TopicPartition, dict[int, str]] = {}
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        n = 0
        while True:
            value = f"v{n}"
            partition = n % self._partitions
            n += 1
            with contextlib.suppress(Exception):
                meta = await self._producer.send_and_wait(
                    self._topic, value.encode(), partition=partition
                )
                tp = TopicPartition(self._topic, partition)
                self.acked.setdefault(tp, {})[meta.offset] = value
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._producer.close()

    def total(self) -> int:
        return sum(len(v) for v in self.acked.values())


async def read_topic(
    cluster: LocalCluster, topic: str, partitions: int
) -> dict[TopicPartition, dict[int, str]]:
    """Every record of every partition, offset -> value, read from the start to the end."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    async with AsyncConsumer(
        bootstrap_servers=cluster.bootstrap_servers, auto_offset_reset="earliest"
    ) as consumer:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        out: dict[TopicPartition, dict[int, str]] = {tp: {} for tp in tps}
        for tp in tps:
            consumer.seek(tp, 0)

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            for r in await consumer.poll(timeout_ms=500):
                out[r.topic_partition][r.offset] = (r.value or b"").decode()
    return out


def owners(events: Iterable[GroupEvent], alive: set[str]) -> dict[TopicPartition, set[str]]:
    """Partition -> the live members (labels in ``alive``) that own it by their own events."""
    owned: dict[str, set[TopicPartition]] = {}
    for e in events:
        mine = owned.setdefault(e.member, set())
        if e.kind is GroupEventKind.ASSIGNED:
            mine.update(e.partitions)
        elif e.kind is GroupEventKind.REVOKED:
            mine.difference_update(e.partitions)
    by_partition: dict[TopicPartition, set[str]] = {}
    for member, tps in owned.items():
        if member in alive:
            for tp in tps:
                by_partition.setdefault(tp, set()).add(member)
    return by_partition


def consumed_offsets(events: Iterable[GroupEvent]) -> dict[TopicPartition, set[int]]:
    out: dict[TopicPartition, set[int]] = {}
    for e in events:
        if e.kind is GroupEventKind.CONSUMED and e.partitions:
            out.setdefault(e.partitions[0], set()).update(o for o, _ in e.records)
    return out
