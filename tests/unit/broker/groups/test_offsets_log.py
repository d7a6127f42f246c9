"""ReplicatedOffsetsLog over a real Partition (one follower, driven by hand): appends one batch
with acks=all, reads back every keyed record once the leader's log is committed, and refuses a
stale leader epoch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

import pytest

from raftka.broker.groups import offsets_log
from raftka.broker.groups.api import StoredMarker, StoredRecord
from raftka.broker.groups.offsets_log import ReplicatedOffsetsLog
from raftka.broker.groups.placement import OFFSETS_TOPIC
from raftka.broker.partition import NotLeaderOrFollowerError, Partition
from raftka.broker.replication.leader_state import LeaderReplicaState
from raftka.common.errors import InvalidProducerEpochError
from raftka.common.records.builder import build_batch
from raftka.common.txn_errors import TransactionCoordinatorFencedError
from tests.unit.broker.support import open_partition
from tests.unit.broker.test_partition import (
    BROKER_EPOCHS,
    FOLLOWER,
    LEADER,
    LEADER_EPOCH,
    FakeCluster,
    inline_io,
)


class FakeReplicas:
    broker_id = LEADER

    def __init__(self, partition: Partition) -> None:
        self.partition = partition

    def hosted(self) -> list[Partition]:
        return [self.partition]

    def leader_partition(self, topic: str, partition: int) -> Partition:
        assert (topic, partition) == (OFFSETS_TOPIC, 0)
        if self.partition.leader_state is None:
            raise NotLeaderOrFollowerError("not the leader")
        return self.partition


def _offsets_partition(tmp_path: Path) -> Partition:
    plog = open_partition(tmp_path, topic=OFFSETS_TOPIC, hw_follows_log_end=False)
    partition = Partition(
        OFFSETS_TOPIC,
        0,
        "topic-id",
        plog,
        {"min.insync.replicas": "2"},
        broker_id=LEADER,
        io=inline_io,
        cluster=FakeCluster(),
    )
    start = plog.start_leader_epoch(LEADER_EPOCH)
    partition.is_leader, partition.leader_epoch = True, LEADER_EPOCH
    partition.leader_state = LeaderReplicaState(
        leader_id=LEADER,
        replicas=(LEADER, FOLLOWER),
        isr=(LEADER, FOLLOWER),
        leader_epoch=LEADER_EPOCH,
        partition_epoch=0,
        epoch_start_offset=start,
        high_watermark=0,
        leader_log_end_offset=0,
        lag_time_max_ms=30_000,
        min_insync_replicas=2,
        became_leader_ms=0,
    )
    return partition


async def _follower_caught_up(partition: Partition) -> None:
    """The follower fetches from the leader's log end: the high watermark reaches it."""
    await partition.read_for_follower(
        FOLLOWER,
        BROKER_EPOCHS[FOLLOWER],
        LEADER_EPOCH,
        partition.log.log_end_offset,
        LEADER_EPOCH,
        1 << 20,
        min_one_batch=True,
    )


async def _yield() -> None:
    """Let the other tasks run as far as they can without time passing."""
    for _ in range(20):
        await asyncio.sleep(0)


def _log(partition: Partition) -> ReplicatedOffsetsLog:
    return ReplicatedOffsetsLog(FakeReplicas(partition))  # type: ignore[arg-type]


RECORDS = [
    StoredRecord(b"k1", b"v1"),
    StoredRecord(b"k2", b"v2"),
    StoredRecord(b"k1", None),  # a tombstone
]


def test_append_is_one_batch_answered_once_committed_and_read_all_replays_it(
    tmp_path: Path,
) -> None:
    partition = _offsets_partition(tmp_path)
    offsets = _log(partition)
    assert offsets.led_partitions() == {0: LEADER_EPOCH}

    async def main() -> None:
        write = asyncio.create_task(offsets.append(0, LEADER_EPOCH, RECORDS))
        await _yield()  # let the write reach the log
        assert partition.log.log_end_offset == 3 and not write.done()  # not committed yet
        await _follower_caught_up(partition)
        await asyncio.wait_for(write, 5)
        # A keyless record is not a group record: skipped.
        await partition.append(build_batch([(0, None, b"x", ())]), acks=1, timeout_s=1)
        await partition.append(build_batch([(0, b"k3", b"v3", ())]), acks=1, timeout_s=1)
        reading = asyncio.create_task(offsets.read_all(0, LEADER_EPOCH))
        await _yield()
        assert not reading.done()  # waits until the leader's whole log is committed
        await _follower_caught_up(partition)
        assert await asyncio.wait_for(reading, 5) == [*RECORDS, StoredRecord(b"k3", b"v3")]

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_stale_leader_epoch_is_refused(tmp_path: Path) -> None:
    partition = _offsets_partition(tmp_path)
    offsets = _log(partition)

    async def main() -> None:
        with pytest.raises(NotLeaderOrFollowerError, match="leader epoch"):
            await offsets.append(0, LEADER_EPOCH - 1, RECORDS)
        with pytest.raises(NotLeaderOrFollowerError):
            await offsets.read_all(0, LEADER_EPOCH - 1)
        assert partition.log.log_end_offset == 0
        partition.leader_state = None  # leadership gone
        assert offsets.led_partitions() == {}

    asyncio.run(asyncio.wait_for(main(), 10))


def _commit_isr(partition: Partition, isr: tuple[int, ...], partition_epoch: int) -> None:
    """What the replica manager does when the controller commits an ISR: the high watermark
    may move, and waiting acks=all writes re-check min.insync.replicas."""
    state = partition.leader_state
    assert state is not None
    if state.on_isr_committed(isr, partition_epoch):
        partition.publish_high_watermark()
    partition.notify_hw()


def test_a_write_kept_after_the_isr_shrank_below_min_insync_waits_for_its_commit(
    tmp_path: Path,
) -> None:
    """The partition answers the write NOT_ENOUGH_REPLICAS_AFTER_APPEND, but the batch is in
    the leader's log and is committed once the follower is back in the ISR: the coordinator
    must not tell its caller it failed (a join retried without its member id would leave the
    first one in the group, holding partitions until its session times out)."""
    partition = _offsets_partition(tmp_path)
    offsets = _log(partition)

    async def main() -> None:
        write = asyncio.create_task(offsets.append(0, LEADER_EPOCH, RECORDS))
        await _yield()
        assert partition.log.log_end_offset == 3 and not write.done()
        _commit_isr(partition, (LEADER,), 1)  # the follower was slow
        await _yield()
        assert not write.done()  # not failed: its outcome is not known yet
        await _follower_caught_up(partition)
        _commit_isr(partition, (LEADER, FOLLOWER), 2)  # back in sync
        await asyncio.wait_for(write, 5)
        assert partition.high_watermark == 3
        assert await offsets.read_all(0, LEADER_EPOCH) == RECORDS

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_write_past_its_timeout_waits_for_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offsets_log, "APPEND_TIMEOUT_S", 0.0)  # the partition gives up at once
    partition = _offsets_partition(tmp_path)
    offsets = _log(partition)

    async def main() -> None:
        write = asyncio.create_task(offsets.append(0, LEADER_EPOCH, RECORDS))
        await _yield()
        assert partition.log.log_end_offset == 3 and not write.done()  # still waiting
        await _follower_caught_up(partition)
        await asyncio.wait_for(write, 5)
        assert partition.high_watermark == 3

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_write_waiting_for_its_commit_ends_when_leadership_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offsets_log, "APPEND_TIMEOUT_S", 0.0)
    partition = _offsets_partition(tmp_path)
    offsets = _log(partition)

    async def main() -> None:
        write = asyncio.create_task(offsets.append(0, LEADER_EPOCH, RECORDS))
        await _yield()
        assert not write.done()
        partition.leader_state = None  # leadership gone: the outcome is the new leader's
        partition.notify_hw()
        with pytest.raises(NotLeaderOrFollowerError):
            await asyncio.wait_for(write, 5)

    asyncio.run(asyncio.wait_for(main(), 10))


async def _replicated(partition: Partition, write: Awaitable[None]) -> None:
    """Runs an acks=all write while the follower keeps up."""
    task = asyncio.ensure_future(write)
    await _yield()
    await _follower_caught_up(partition)
    await asyncio.wait_for(task, 5)


def test_transactional_batches_and_markers_are_written_and_read_back_in_log_order(
    tmp_path: Path,
) -> None:
    """A producer's batches get the sequences the partition expects (continuing in an epoch,
    0 in the epoch a marker started); read_all gives their records with the producer, and
    the markers, in log order; an older epoch and an older coordinator epoch are refused."""
    partition = _offsets_partition(tmp_path)
    offsets = _log(partition)

    def txn(key: bytes, epoch: int) -> StoredRecord:
        return StoredRecord(key, b"v", 42, epoch)

    async def main() -> None:
        plain = StoredRecord(b"p", b"v")
        await _replicated(
            partition,
            offsets.append(0, LEADER_EPOCH, [txn(b"a", 0), txn(b"b", 0)], producer=(42, 0)),
        )
        await _replicated(partition, offsets.append(0, LEADER_EPOCH, [plain]))
        await _replicated(
            partition, offsets.append(0, LEADER_EPOCH, [txn(b"c", 0)], producer=(42, 0))
        )
        await _replicated(partition, offsets.write_marker(0, LEADER_EPOCH, 42, 1, True, 3))
        await _replicated(
            partition, offsets.append(0, LEADER_EPOCH, [txn(b"d", 1)], producer=(42, 1))
        )
        with pytest.raises(InvalidProducerEpochError):
            await offsets.append(0, LEADER_EPOCH, [txn(b"x", 0)], producer=(42, 0))
        with pytest.raises(TransactionCoordinatorFencedError):
            await offsets.write_marker(0, LEADER_EPOCH, 42, 2, False, 2)
        await _replicated(partition, offsets.write_marker(0, LEADER_EPOCH, 42, 2, False, 3))
        assert await offsets.read_all(0, LEADER_EPOCH) == [
            txn(b"a", 0),
            txn(b"b", 0),
            plain,
            txn(b"c", 0),
            StoredMarker(42, 1, True),
            txn(b"d", 1),
            StoredMarker(42, 2, False),
        ]

    asyncio.run(asyncio.wait_for(main(), 10))
