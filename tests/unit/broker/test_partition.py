"""Partition, driven in-process (no gRPC): a leader's appends with acks, consumer and follower
reads, the follower checks, the divergence answer, ISR expansion proposals, ListOffsets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from raftka.broker.log.leader_epoch_cache import EpochEndOffset
from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.log.types import FetchData, StaleLeaderEpochError
from raftka.broker.partition import (
    FencedLeaderEpochError,
    NotLeaderOrFollowerError,
    Partition,
    check_current_leader_epoch,
)
from raftka.broker.replication.leader_state import IsrProposal, LeaderReplicaState
from raftka.common.errors import (
    InvalidRequestError,
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    RequestTimedOutError,
    UnknownLeaderEpochError,
)
from raftka.common.storage.errors import LogOffsetOutOfRangeError
from tests.unit.broker.support import T0, batch, open_partition

_T = TypeVar("_T")
LEADER, FOLLOWER, OUTSIDER = 1, 2, 3
LEADER_EPOCH = 4
BROKER_EPOCHS = {LEADER: 10, FOLLOWER: 20, OUTSIDER: 30}


class FakeCluster:
    """The ClusterView a partition talks to: fixed broker epochs, proposals recorded."""

    def __init__(self) -> None:
        self.proposals: list[IsrProposal] = []
        self.damaged: list[Partition] = []
        self.active = {LEADER, FOLLOWER, OUTSIDER}

    def broker_epoch_of(self, broker_id: int) -> int:
        return BROKER_EPOCHS.get(broker_id, -1)

    def is_active(self, broker_id: int) -> bool:
        return broker_id in self.active

    def propose_isr(self, partition: Partition, proposal: IsrProposal) -> None:
        self.proposals.append(proposal)

    def report_damage(self, partition: Partition) -> None:
        self.damaged.append(partition)


async def inline_io(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    return fn(*args, **kwargs)


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(asyncio.wait_for(coro, 10))


def leader_partition(
    tmp_path: Path,
    *,
    replicas: tuple[int, ...] = (LEADER, FOLLOWER),
    isr: tuple[int, ...] | None = None,
    min_insync: int = 1,
) -> tuple[Partition, FakeCluster]:
    """A partition this broker (LEADER) leads in LEADER_EPOCH, as the replica manager sets it up."""
    plog: PartitionLog = open_partition(tmp_path, hw_follows_log_end=False)
    cluster = FakeCluster()
    configs = {"min.insync.replicas": str(min_insync)}
    partition = Partition(
        "events", 0, "topic-id", plog, configs, broker_id=LEADER, io=inline_io, cluster=cluster
    )
    start = plog.start_leader_epoch(LEADER_EPOCH)
    partition.is_leader, partition.leader_epoch = True, LEADER_EPOCH
    partition.leader_state = LeaderReplicaState(
        leader_id=LEADER,
        replicas=replicas,
        isr=replicas if isr is None else isr,
        leader_epoch=LEADER_EPOCH,
        partition_epoch=0,
        epoch_start_offset=start,
        high_watermark=plog.high_watermark,
        leader_log_end_offset=plog.log_end_offset,
        lag_time_max_ms=30_000,
        min_insync_replicas=min_insync,
        became_leader_ms=0,
    )
    return partition, cluster


async def follower_fetch(
    partition: Partition,
    fetch_offset: int,
    *,
    replica: int = FOLLOWER,
    leader_epoch: int = LEADER_EPOCH,
    last_fetched_epoch: int = LEADER_EPOCH,
) -> FetchData | EpochEndOffset:
    return await partition.read_for_follower(
        replica,
        BROKER_EPOCHS[replica],
        leader_epoch,
        fetch_offset,
        last_fetched_epoch if fetch_offset else -1,
        1 << 20,
        min_one_batch=True,
    )


def test_acks_1_appends_and_wakes_fetches_but_commits_only_with_the_isr(tmp_path: Path) -> None:
    partition, _ = leader_partition(tmp_path)

    async def main() -> None:
        waiting = partition.data_arrived
        appended = await partition.append(batch(3), acks=1, timeout_s=1)
        assert (appended.base_offset, appended.last_offset) == (0, 2)
        assert waiting.is_set()
        # The follower has not fetched: nothing is committed, so consumers see nothing yet.
        assert partition.high_watermark == 0
        assert (await partition.read(0, 1 << 20, min_one_batch=True)).records == b""
        data = await follower_fetch(partition, 0)
        assert isinstance(data, FetchData) and data.records  # followers read to the log end
        await follower_fetch(partition, 3)  # the follower now holds 0..2
        assert partition.high_watermark == 3
        assert (await partition.read(0, 1 << 20, min_one_batch=True)).records

    run(main())
    partition.log.close()


def test_acks_all_waits_for_the_follower(tmp_path: Path) -> None:
    partition, _ = leader_partition(tmp_path, min_insync=2)

    async def main() -> None:
        appended_event = partition.data_arrived  # set once the batch is in the log
        produce = asyncio.ensure_future(partition.append(batch(2), acks=-1, timeout_s=5))
        await appended_event.wait()
        assert not produce.done()
        await follower_fetch(partition, 2)
        appended = await produce
        assert appended.last_offset == 1 and partition.high_watermark == 2

    run(main())
    partition.log.close()


def test_acks_all_refusals(tmp_path: Path) -> None:
    partition, _ = leader_partition(tmp_path, isr=(LEADER,), min_insync=2)

    async def main() -> None:
        with pytest.raises(NotEnoughReplicasError, match="nothing was written"):
            await partition.append(batch(1), acks=-1, timeout_s=1)
        assert partition.log.log_end_offset == 0
        state = partition.leader_state
        assert state is not None
        state.isr = (LEADER, FOLLOWER)
        with pytest.raises(RequestTimedOutError):
            await partition.append(batch(1), acks=-1, timeout_s=0)
        state.isr = (LEADER,)  # the ISR shrank while the write waited
        with pytest.raises(NotEnoughReplicasAfterAppendError):
            await partition.wait_for_high_watermark(1, 1)
        partition.leader_state = None  # leadership moved
        with pytest.raises(NotLeaderOrFollowerError, match="stopped leading"):
            await partition.wait_for_high_watermark(1, 1)

    run(main())
    partition.log.close()


def test_follower_fetches_are_checked(tmp_path: Path) -> None:
    partition, _ = leader_partition(tmp_path)
    check = partition.check_follower
    with pytest.raises(NotLeaderOrFollowerError, match="not a follower"):
        check(OUTSIDER, BROKER_EPOCHS[OUTSIDER], LEADER_EPOCH)
    with pytest.raises(NotLeaderOrFollowerError, match="not a follower"):
        check(LEADER, BROKER_EPOCHS[LEADER], LEADER_EPOCH)
    with pytest.raises(NotLeaderOrFollowerError, match="broker epoch 19"):
        check(FOLLOWER, 19, LEADER_EPOCH)
    with pytest.raises(StaleLeaderEpochError) as stale:
        check(FOLLOWER, BROKER_EPOCHS[FOLLOWER], LEADER_EPOCH - 1)
    assert stale.value.code_name == "FENCED_LEADER_EPOCH"
    with pytest.raises(UnknownLeaderEpochError):
        check(FOLLOWER, BROKER_EPOCHS[FOLLOWER], LEADER_EPOCH + 1)
    check(FOLLOWER, BROKER_EPOCHS[FOLLOWER], -1)  # no epoch given: not checked
    partition.log.close()


def test_a_diverging_follower_gets_the_epoch_end_and_no_progress(tmp_path: Path) -> None:
    partition, _ = leader_partition(tmp_path)

    async def main() -> None:
        await partition.append(batch(3), acks=1, timeout_s=1)  # 0..2 in epoch 4
        # The follower holds 0..4 of an epoch 3 this leader never wrote in.
        outcome = await follower_fetch(partition, 5, last_fetched_epoch=3)
        assert outcome == EpochEndOffset(3, 0)
        assert partition.high_watermark == 0  # its fetch offset was not recorded

    run(main())
    partition.log.close()


def test_a_caught_up_replica_outside_the_isr_is_proposed(tmp_path: Path) -> None:
    partition, cluster = leader_partition(
        tmp_path, replicas=(LEADER, FOLLOWER, OUTSIDER), isr=(LEADER, FOLLOWER)
    )

    async def main() -> None:
        await partition.append(batch(2), acks=1, timeout_s=1)
        cluster.active.discard(OUTSIDER)  # fenced replicas may not join
        await follower_fetch(partition, 2, replica=OUTSIDER)
        assert cluster.proposals == []
        cluster.active.add(OUTSIDER)
        await follower_fetch(partition, 2, replica=OUTSIDER)
        assert [p.new_isr for p in cluster.proposals] == [(LEADER, FOLLOWER, OUTSIDER)]

    run(main())
    partition.log.close()


def test_list_offset(tmp_path: Path) -> None:
    partition, _ = leader_partition(tmp_path, replicas=(LEADER,))

    async def main() -> None:
        for i in range(3):
            await partition.append(batch(1, timestamp=T0 + 1000 * i), acks=1, timeout_s=1)
        assert await partition.list_offset(-2) == (0, -1)
        assert await partition.list_offset(-1) == (3, -1)
        assert await partition.list_offset(T0 + 500) == (1, T0 + 1000)
        assert await partition.list_offset(T0 + 5000) is None
        with pytest.raises(InvalidRequestError):
            await partition.list_offset(-3)

    run(main())
    partition.log.close()


def test_reads_naming_another_leader_epoch_are_refused(tmp_path: Path) -> None:
    """KIP-320 on every read path: older is FENCED_LEADER_EPOCH (naming the current leader),
    newer UNKNOWN_LEADER_EPOCH, None or -1 unchecked. Epoch 0 is an epoch like any other (the
    proto3 default is no longer taken for "not set")."""
    partition, _ = leader_partition(tmp_path, replicas=(LEADER,))

    async def main() -> None:
        await partition.append(batch(2), acks=1, timeout_s=1)

        async def consumer_fetch(epoch: int | None) -> object:
            return await partition.read_for_consumer(
                0, 1 << 20, current_leader_epoch=epoch, last_fetched_epoch=None, min_one_batch=True
            )

        for read in (consumer_fetch, lambda e: partition.list_offset(-1, current_leader_epoch=e)):
            for older in (0, LEADER_EPOCH - 1):
                with pytest.raises(FencedLeaderEpochError) as fenced:
                    await read(older)
                assert fenced.value.code_name == "FENCED_LEADER_EPOCH"
                assert (fenced.value.leader_id, fenced.value.leader_epoch) == (LEADER, LEADER_EPOCH)
                assert f"older than the current leader epoch {LEADER_EPOCH}" in fenced.value.message
            with pytest.raises(UnknownLeaderEpochError, match="newer"):
                await read(LEADER_EPOCH + 1)
            for unchecked in (None, -1, LEADER_EPOCH):
                assert await read(unchecked)

    run(main())
    partition.log.close()


def test_leader_epoch_check_outside_a_partition() -> None:
    """The service's check for a broker that does not lead the partition (Kafka checks the
    epoch before leadership)."""
    with pytest.raises(FencedLeaderEpochError):
        check_current_leader_epoch(2, 3, "events-0", leader_id=7)
    with pytest.raises(UnknownLeaderEpochError):
        check_current_leader_epoch(4, 3, "events-0", leader_id=7)
    check_current_leader_epoch(3, 3, "events-0", leader_id=7)
    check_current_leader_epoch(None, 3, "events-0", leader_id=7)


def test_a_consumer_that_read_truncated_records_gets_the_diverging_epoch(tmp_path: Path) -> None:
    """After an unclean election: the leader holds 0..2 of epoch 1 and then epoch 4 from
    offset 3; a consumer read 3..4 in epoch 2 from the deposed leader. Its fetch at 5 with
    last_fetched_epoch=2 gets epoch 1's end (3), not records and not OFFSET_OUT_OF_RANGE."""
    plog = open_partition(tmp_path, hw_follows_log_end=False)
    plog.start_leader_epoch(1)
    plog.append_as_leader(batch(3), leader_epoch=1, now_ms=T0)
    plog.close()
    partition, _ = leader_partition(tmp_path, replicas=(LEADER,))

    async def main() -> None:
        await partition.append(batch(3), acks=1, timeout_s=1)  # 3..5 in epoch 4

        async def fetch(offset: int, last: int | None) -> FetchData | EpochEndOffset:
            return await partition.read_for_consumer(
                offset,
                1 << 20,
                current_leader_epoch=None,
                last_fetched_epoch=last,
                min_one_batch=True,
            )

        assert await fetch(5, 2) == EpochEndOffset(1, 3)
        # past the log end with an epoch it never had: still the divergence point
        assert await fetch(8, 2) == EpochEndOffset(1, 3)
        # a consistent position reads on
        consistent = await fetch(3, 1)
        assert isinstance(consistent, FetchData) and consistent.records
        for unchecked in (None, -1):  # no epoch: the old behaviour (records, or out of range)
            assert isinstance(await fetch(5, unchecked), FetchData)
            with pytest.raises(LogOffsetOutOfRangeError):
                await fetch(8, unchecked)

    run(main())
    partition.log.close()


def test_a_negative_consumer_fetch_offset_is_out_of_range(tmp_path: Path) -> None:
    partition, _ = leader_partition(tmp_path, replicas=(LEADER,))

    async def main() -> None:
        await partition.append(batch(2), acks=1, timeout_s=1)
        for last in (None, LEADER_EPOCH):
            with pytest.raises(LogOffsetOutOfRangeError) as error:
                await partition.read_for_consumer(
                    -1,
                    1 << 20,
                    current_leader_epoch=None,
                    last_fetched_epoch=last,
                    min_one_batch=True,
                )
            assert error.value.log_start_offset == 0

    run(main())
    partition.log.close()


def test_an_isr_member_fetching_below_the_high_watermark_is_proposed_out(
    tmp_path: Path,
) -> None:
    """A follower that truncated below what it acknowledged (a damaged log cut for repair)
    fetches from below the high watermark: the leader proposes it out of the ISR on that
    fetch (not a lag time later), and back in once it has caught up."""
    partition, cluster = leader_partition(tmp_path, replicas=(LEADER, FOLLOWER, OUTSIDER))

    async def main() -> None:
        await partition.append(batch(4), acks=1, timeout_s=1)
        await follower_fetch(partition, 4, replica=FOLLOWER)
        await follower_fetch(partition, 4, replica=OUTSIDER)
        assert partition.high_watermark == 4 and cluster.proposals == []
        await follower_fetch(partition, 1, replica=OUTSIDER)
        assert [p.new_isr for p in cluster.proposals] == [(LEADER, FOLLOWER)]
        state = partition.leader_state
        assert state is not None
        state.on_isr_committed((LEADER, FOLLOWER), partition_epoch=1)
        await follower_fetch(partition, 4, replica=OUTSIDER)
        assert [p.new_isr for p in cluster.proposals][1:] == [(LEADER, FOLLOWER, OUTSIDER)]

    run(main())
    partition.log.close()
