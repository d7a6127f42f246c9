"""The simulated power loss: a stopped node's partition logs lose part of what their active
segments hold past the recovery point, and recovery then finds a shorter, valid log."""

from __future__ import annotations

from pathlib import Path

from raftka.broker.log.partition_log import PartitionLog
from raftka.common.data_dir import PARTITION_LOGS_DIR
from raftka.ops.power_loss import cut_unflushed_tails
from tests.unit.broker.support import T0, batch, open_partition


def written(data_dir: Path, flushed: int, unflushed: int) -> PartitionLog:
    plog = open_partition(data_dir / PARTITION_LOGS_DIR, hw_follows_log_end=False)
    plog.start_leader_epoch(0)
    for i in range(flushed):
        plog.append_as_leader(batch(tag=i), leader_epoch=0, now_ms=T0)
    plog.flush(checkpoint=True)  # the recovery-point file says 0..flushed-1 are durable
    for i in range(unflushed):
        plog.append_as_leader(batch(tag=flushed + i), leader_epoch=0, now_ms=T0)
    return plog


def test_half_of_what_lies_past_the_recovery_point_is_cut(tmp_path: Path) -> None:
    written(tmp_path, flushed=3, unflushed=4)  # left open, as a kill -9 leaves it
    # A kill -9: the process is gone without closing (no clean-shutdown marker).
    (cut,) = cut_unflushed_tails(tmp_path)
    assert cut.recovery_point == 3
    assert cut.new_size == cut.flushed_bytes + (cut.old_size - cut.flushed_bytes) // 2
    assert 0 < cut.lost_bytes < cut.old_size
    reopened = open_partition(tmp_path / PARTITION_LOGS_DIR, hw_follows_log_end=False)
    assert 3 <= reopened.log_end_offset < 7, "recovery keeps the flushed batches, cuts the torn one"
    reopened.close()


def test_nothing_to_cut_when_everything_was_flushed(tmp_path: Path) -> None:
    plog = written(tmp_path, flushed=3, unflushed=0)
    assert cut_unflushed_tails(tmp_path) == []
    plog.close()
    assert cut_unflushed_tails(tmp_path / "no-such-node") == []
