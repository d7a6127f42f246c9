"""ReplicaManager applying metadata to a hosted partition: a topic config change reaches the
leader at once (no leader change needed), and min.insync.replicas is never capped at the
replica count."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from raftka.broker.io_threads import IoThreads
from raftka.broker.log.manager import LogManager
from raftka.broker.metadata_follower import MetadataFollower
from raftka.broker.partition import Partition
from raftka.broker.replica_manager import ReplicaManager
from raftka.common.errors import NotEnoughReplicasError
from raftka.common.ids import BrokerId, LeaderEpoch, PartitionEpoch
from raftka.common.metadata.model import PartitionState
from raftka.common.rpc.controller_client import ControllerClient
from tests.unit.broker.support import batch, open_partition

_T = TypeVar("_T")
LEADER, FOLLOWER = BrokerId(1), BrokerId(2)


class InlineIo:
    async def run(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return fn(*args, **kwargs)


class NoMetadata:
    """The follower a ReplicaManager listens to; _update never reads it."""

    def add_listener(self, listener: Callable[[], None]) -> None:
        pass


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(asyncio.wait_for(coro, 10))


def manager_and_partition(
    tmp_path: Path, configs: dict[str, str]
) -> tuple[ReplicaManager, Partition]:
    io = InlineIo()
    manager = ReplicaManager(
        LEADER,
        cast(LogManager, None),
        cast(MetadataFollower, NoMetadata()),
        io=cast(IoThreads, io),
        controller=cast(ControllerClient, None),
        broker_epoch=lambda: 10,
        lag_time_max_ms=30_000,
    )
    plog = open_partition(tmp_path, hw_follows_log_end=False)
    partition = Partition(
        "events", 0, "topic-id", plog, configs, broker_id=LEADER, io=io.run, cluster=manager
    )
    return manager, partition


def leading(replicas: tuple[BrokerId, ...], isr: tuple[BrokerId, ...]) -> PartitionState:
    return PartitionState(
        replicas=replicas,
        isr=isr,
        leader=LEADER,
        leader_epoch=LeaderEpoch(3),
        partition_epoch=PartitionEpoch(5),
    )


def test_min_insync_replicas_change_applies_to_the_next_produce(tmp_path: Path) -> None:
    manager, partition = manager_and_partition(tmp_path, {"min.insync.replicas": "1"})
    state = leading((LEADER, FOLLOWER), (LEADER,))

    async def main() -> None:
        await manager._update(partition, state, {"min.insync.replicas": "1"})
        await partition.append(batch(1), acks=-1, timeout_s=1)  # ISR of 1 meets 1
        # AlterConfigs raised it; same leader, same epoch: the next acks=all write is refused.
        await manager._update(partition, state, {"min.insync.replicas": "2"})
        with pytest.raises(NotEnoughReplicasError, match=r"min\.insync\.replicas=2"):
            await partition.append(batch(1), acks=-1, timeout_s=1)
        await manager._update(partition, state, {"min.insync.replicas": "1"})
        await partition.append(batch(1), acks=-1, timeout_s=1)

    run(main())
    assert partition.log.log_end_offset == 2
    partition.log.close()


def test_min_insync_replicas_above_the_replica_count_refuses_acks_all(tmp_path: Path) -> None:
    # A topic made before the controller checked this, or shrunk by a reassignment.
    manager, partition = manager_and_partition(tmp_path, {"min.insync.replicas": "2"})

    async def main() -> None:
        await manager._update(partition, leading((LEADER,), (LEADER,)), partition.configs)
        with pytest.raises(NotEnoughReplicasError, match="nothing was written"):
            await partition.append(batch(1), acks=-1, timeout_s=1)
        await partition.append(batch(1), acks=1, timeout_s=1)  # acks=1 is not refused

    run(main())
    assert partition.log.log_end_offset == 1
    partition.log.close()
