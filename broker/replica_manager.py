"""The partitions this broker hosts, kept in line with the metadata image.

After every metadata change the broker reconciles: a partition that lists this broker as a
replica gets a log (created if new); one that no longer does, or whose topic was deleted, is
closed and its log removed. Each hosted partition knows whether this broker leads it and in
which leader epoch, serializes its appends, and wakes long-polling fetches when data arrives.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from raftka.broker.log_manager import LogManager
from raftka.broker.metadata_follower import MetadataFollower
from raftka.broker.partition_log import PartitionLog
from raftka.common.errors import RaftkaError, UnknownTopicOrPartitionError
from raftka.common.metadata.model import PartitionState
from raftka.v1.common_pb2 import ErrorCode

log = structlog.get_logger(__name__)


class NotLeaderOrFollowerError(RaftkaError):
    """This broker does not lead the partition; ``leader_id``/``leader_epoch`` name who does."""

    code = ErrorCode.NOT_LEADER_OR_FOLLOWER
    retriable = True

    def __init__(self, message: str, leader_id: int = -1, leader_epoch: int = -1) -> None:
        super().__init__(message)
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch


@dataclass
class HostedPartition:
    topic: str
    partition: int
    topic_id: str
    log: PartitionLog
    leader_epoch: int
    is_leader: bool
    configs: dict[str, str]
    append_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    data_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def notify_data(self) -> None:
        """Wake every fetch waiting on this partition (they re-read and re-wait)."""
        event, self.data_arrived = self.data_arrived, asyncio.Event()
        event.set()


class ReplicaManager:
    def __init__(self, broker_id: int, logs: LogManager, follower: MetadataFollower) -> None:
        self.broker_id = broker_id
        self._logs = logs
        self._follower = follower
        self._hosted: dict[tuple[str, int], HostedPartition] = {}
        self._reconcile_lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        follower.add_listener(self._dirty.set)

    def lookup(self, topic: str, partition: int) -> tuple[PartitionState, HostedPartition | None]:
        """The partition's metadata and its local replica (None if not hosted here yet)."""
        image = self._follower.image
        t = image.topic(topic)
        if t is None or partition not in t.partitions:
            raise UnknownTopicOrPartitionError(
                f"{topic}-{partition} does not exist (as of metadata index {self._follower.index})"
            )
        return t.partitions[partition], self._hosted.get((topic, partition))

    def leader_partition(self, topic: str, partition: int) -> HostedPartition:
        """The hosted partition if this broker leads it, else the error a client should see."""
        state, hosted = self.lookup(topic, partition)
        if state.leader != self.broker_id or hosted is None or not hosted.is_leader:
            raise NotLeaderOrFollowerError(
                f"broker {self.broker_id} does not lead {topic}-{partition}; broker {state.leader} does",
                leader_id=state.leader,
                leader_epoch=state.leader_epoch,
            )
        return hosted

    def hosted(self) -> list[HostedPartition]:
        return list(self._hosted.values())

    async def run(self) -> None:
        """Reconcile after every metadata change, forever."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self.reconcile()

    async def reconcile(self) -> None:
        async with self._reconcile_lock:
            image = self._follower.image
            wanted: dict[tuple[str, int], tuple[str, PartitionState]] = {}
            for name, topic in image.topics.items():
                for pid, state in topic.partitions.items():
                    if self.broker_id in state.replicas:
                        wanted[(name, pid)] = (topic.topic_id, state)
            for key in [
                k for k, h in self._hosted.items() if wanted.get(k, ("",))[0] != h.topic_id
            ]:
                await self._remove(self._hosted.pop(key))
            for (name, pid), (topic_id, state) in wanted.items():
                configs = dict(image.topic_configs(name))
                existing = self._hosted.get((name, pid))
                if existing is None:
                    await self._add(name, pid, topic_id, state, configs)
                else:
                    await self._update(existing, state, configs)

    async def _add(
        self, name: str, pid: int, topic_id: str, state: PartitionState, configs: dict[str, str]
    ) -> None:
        plog = await asyncio.to_thread(self._logs.get_or_create, name, pid, topic_id, configs)
        is_leader = state.leader == self.broker_id
        self._hosted[(name, pid)] = HostedPartition(
            name, pid, topic_id, plog, state.leader_epoch, is_leader, configs
        )
        log.info(
            "partition_hosted",
            topic=name,
            partition=pid,
            leader=is_leader,
            epoch=state.leader_epoch,
        )

    async def _remove(self, hosted: HostedPartition) -> None:
        hosted.notify_data()
        await asyncio.to_thread(self._logs.delete, hosted.topic, hosted.partition)
        log.info("partition_removed", topic=hosted.topic, partition=hosted.partition)

    async def _update(
        self, hosted: HostedPartition, state: PartitionState, configs: dict[str, str]
    ) -> None:
        if configs != hosted.configs:
            hosted.configs = configs
            await asyncio.to_thread(hosted.log.update_configs, configs)
        is_leader = state.leader == self.broker_id
        if hosted.is_leader != is_leader or hosted.leader_epoch != state.leader_epoch:
            hosted.is_leader, hosted.leader_epoch = is_leader, state.leader_epoch
            hosted.notify_data()
            log.info(
                "partition_role_changed",
                topic=hosted.topic,
                partition=hosted.partition,
                leader=is_leader,
                epoch=state.leader_epoch,
            )
