"""Partition, driven in-process with a real log: transaction markers written by the leader
(acks=all), read_committed reads below the last stable offset with the aborted transactions,
ListOffsets by isolation level, and a late write of a finished transaction refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from raftka.broker.isolation import READ_COMMITTED, READ_UNCOMMITTED
from raftka.broker.log.types import FetchData
from raftka.broker.partition import NotLeaderOrFollowerError, Partition
from raftka.common.errors import InvalidProducerEpochError, NotEnoughReplicasError
from raftka.common.records import build_batch, iter_records
from raftka.common.records.visibility import visible_records
from raftka.common.txn_errors import TransactionCoordinatorFencedError
from tests.unit.broker.support import T0, batch
from tests.unit.broker.test_partition import LEADER, follower_fetch, leader_partition, run

PID = 900
LATEST = -1


def txn_batch(
    values: list[bytes], *, producer_id: int = PID, epoch: int = 0, sequence: int = 0
) -> bytes:
    return bytes(
        build_batch(
            [(T0 + i, None, v, ()) for i, v in enumerate(values)],
            producer_id=producer_id,
            producer_epoch=epoch,
            base_sequence=sequence,
            transactional=True,
        )
    )


async def consume(partition: Partition, offset: int, isolation_level: int) -> FetchData:
    data = await partition.read_for_consumer(
        offset,
        1 << 20,
        current_leader_epoch=None,
        last_fetched_epoch=None,
        min_one_batch=True,
        isolation_level=isolation_level,
    )
    assert isinstance(data, FetchData)
    return data


def offsets(data: FetchData) -> list[int]:
    return [r.offset for r in iter_records(data.records)]


def single_replica(tmp_path: Path) -> Partition:
    """A partition whose ISR is its leader alone: the high watermark follows every append."""
    partition, _ = leader_partition(tmp_path, replicas=(LEADER,))
    return partition


def test_read_committed_stops_at_the_first_open_transaction(tmp_path: Path) -> None:
    partition = single_replica(tmp_path)

    async def main() -> None:
        await partition.append(batch(2), acks=-1, timeout_s=1)  # 0-1
        await partition.append(txn_batch([b"t0", b"t1"]), acks=-1, timeout_s=1)  # 2-3, open
        await partition.append(batch(1), acks=-1, timeout_s=1)  # 4
        assert partition.high_watermark == 5
        assert partition.log.last_stable_offset == 2
        committed = await consume(partition, 0, READ_COMMITTED)
        assert offsets(committed) == [0, 1]
        assert committed.last_stable_offset == 2 and committed.high_watermark == 5
        assert committed.aborted == ()
        assert (await consume(partition, 2, READ_COMMITTED)).records == b""
        uncommitted = await consume(partition, 0, READ_UNCOMMITTED)
        assert offsets(uncommitted) == [0, 1, 2, 3, 4]
        assert uncommitted.last_stable_offset == 2
        assert await partition.list_offset(LATEST, isolation_level=READ_COMMITTED) == (2, -1)
        assert await partition.list_offset(LATEST, isolation_level=READ_UNCOMMITTED) == (5, -1)
        # A timestamp lookup under read_committed finds nothing at or past the LSO.
        assert await partition.list_offset(T0, isolation_level=READ_COMMITTED) == (0, T0)
        assert await partition.list_offset(T0 + 1, isolation_level=READ_COMMITTED) is None

    run(main())
    partition.log.close()


def test_a_commit_marker_makes_the_transaction_readable(tmp_path: Path) -> None:
    partition = single_replica(tmp_path)

    async def main() -> None:
        await partition.append(txn_batch([b"a", b"b"]), acks=-1, timeout_s=1)  # 0-1
        woken = partition.data_arrived
        await partition.write_txn_marker(PID, 1, True, 3, timeout_s=1)  # 2
        assert woken.is_set()  # waiting read_committed fetches look again
        assert partition.log.last_stable_offset == partition.high_watermark == 3
        data = await consume(partition, 0, READ_COMMITTED)
        assert offsets(data) == [0, 1, 2] and data.aborted == ()
        assert [r.value for r in visible_records(data.records)] == [b"a", b"b"]
        assert await partition.list_offset(LATEST, isolation_level=READ_COMMITTED) == (3, -1)

    run(main())
    partition.log.close()


def test_an_abort_marker_names_the_aborted_transaction_to_read_committed_readers(
    tmp_path: Path,
) -> None:
    partition = single_replica(tmp_path)

    async def main() -> None:
        await partition.append(batch(1), acks=-1, timeout_s=1)  # 0
        await partition.append(txn_batch([b"x", b"y"]), acks=-1, timeout_s=1)  # 1-2
        await partition.write_txn_marker(PID, 1, False, 3, timeout_s=1)  # 3
        await partition.append(batch(1, tag=9), acks=-1, timeout_s=1)  # 4
        data = await consume(partition, 0, READ_COMMITTED)
        assert offsets(data) == [0, 1, 2, 3, 4]
        assert [(a.producer_id, a.first_offset, a.last_offset) for a in data.aborted] == [
            (PID, 1, 3)
        ]
        aborted = [(a.producer_id, a.first_offset) for a in data.aborted]
        assert [r.offset for r in visible_records(data.records, aborted)] == [0, 4]
        # A read starting after the marker has no aborted transaction in its range.
        assert (await consume(partition, 4, READ_COMMITTED)).aborted == ()
        # read_uncommitted never gets them.
        assert (await consume(partition, 0, READ_UNCOMMITTED)).aborted == ()

    run(main())
    partition.log.close()


def test_a_late_write_of_a_finished_transaction_is_refused(tmp_path: Path) -> None:
    partition = single_replica(tmp_path)

    async def main() -> None:
        await partition.append(txn_batch([b"a"]), acks=-1, timeout_s=1)
        await partition.write_txn_marker(PID, 1, True, 3, timeout_s=1)  # epoch bumped to 1
        end = partition.log.log_end_offset
        with pytest.raises(InvalidProducerEpochError):
            await partition.append(txn_batch([b"late"], sequence=1), acks=-1, timeout_s=1)
        assert partition.log.log_end_offset == end
        assert partition.log.last_stable_offset == end  # no hanging transaction
        # A marker from an older coordinator, or an older producer epoch, is refused too.
        with pytest.raises(TransactionCoordinatorFencedError):
            await partition.write_txn_marker(PID, 2, True, 2, timeout_s=1)
        with pytest.raises(InvalidProducerEpochError):
            await partition.write_txn_marker(PID, 0, True, 3, timeout_s=1)
        assert partition.log.log_end_offset == end
        # The next transaction of the producer, with the bumped epoch, is accepted.
        await partition.append(txn_batch([b"next"], epoch=1), acks=-1, timeout_s=1)
        assert partition.log.last_stable_offset == end

    run(main())
    partition.log.close()


def test_a_marker_waits_for_the_high_watermark(tmp_path: Path) -> None:
    partition, _ = leader_partition(tmp_path, min_insync=2)

    async def main() -> None:
        in_log = partition.data_arrived
        appending = asyncio.ensure_future(partition.append(txn_batch([b"a"]), acks=-1, timeout_s=5))
        await in_log.wait()
        await follower_fetch(partition, 0)
        await follower_fetch(partition, 1)
        await appending
        appended = partition.data_arrived
        writing = asyncio.ensure_future(partition.write_txn_marker(PID, 1, True, 0, timeout_s=5))
        await appended.wait()  # the marker is in the log (offset 1) ...
        assert partition.log.log_end_offset == 2
        assert not writing.done()  # ... but not yet replicated
        # Until the marker is committed, read_committed readers still stop at the transaction.
        assert partition.log.last_stable_offset == 0
        await follower_fetch(partition, 2)
        await writing
        assert partition.log.last_stable_offset == partition.high_watermark == 2

    run(main())
    partition.log.close()


def test_marker_refusals_before_writing(tmp_path: Path) -> None:
    partition, _ = leader_partition(tmp_path, isr=(LEADER,), min_insync=2)

    async def main() -> None:
        with pytest.raises(NotEnoughReplicasError, match="nothing was written"):
            await partition.write_txn_marker(PID, 1, True, 0, timeout_s=1)
        partition.leader_state = None
        with pytest.raises(NotLeaderOrFollowerError, match="does not lead"):
            await partition.write_txn_marker(PID, 1, True, 0, timeout_s=1)
        assert partition.log.log_end_offset == 0

    run(main())
    partition.log.close()
