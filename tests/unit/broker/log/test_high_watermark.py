"""The high watermark of a partition replica and its checkpoint file (HighWatermark), alone
and as PartitionLog restores, moves and checkpoints it."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from raftka.broker.log.high_watermark import (
    HIGH_WATERMARK_CHECKPOINT_FILE,
    HighWatermark,
    read_high_watermark,
    write_high_watermark,
)
from raftka.broker.log.partition_log import PartitionLog
from tests.unit.broker.support import T0, batch, open_partition

NOW = T0 + 5_000


def replica(root: Path, name: str) -> PartitionLog:
    """A replica of events-0 under ``root/name`` whose high watermark replication drives."""
    return open_partition(root / name, hw_follows_log_end=False)


def write(plog: PartitionLog, epoch: int, *sizes: int) -> None:
    for i, size in enumerate(sizes):
        plog.append_as_leader(batch(size, tag=epoch * 10 + i), leader_epoch=epoch, now_ms=NOW)


# ====================================================================== HighWatermark alone


def test_following_the_log_end_ignores_the_checkpoint(tmp_path: Path) -> None:
    write_high_watermark(tmp_path, 3)
    hw = HighWatermark.open(tmp_path, log_start=0, log_end=10, follows_log_end=True)
    assert hw.value == 10 and hw.follows_log_end
    hw.on_log_end(12)
    assert hw.value == 12
    hw.on_close()
    assert read_high_watermark(tmp_path) == 3  # never written in this mode


def test_restored_within_the_log_and_moved_only_forward(tmp_path: Path) -> None:
    assert HighWatermark.open(tmp_path, log_start=5, log_end=9, follows_log_end=False).value == 5
    write_high_watermark(tmp_path, 2)
    assert HighWatermark.open(tmp_path, log_start=5, log_end=9, follows_log_end=False).value == 5
    write_high_watermark(tmp_path, 7)
    hw = HighWatermark.open(tmp_path, log_start=5, log_end=9, follows_log_end=False)
    assert hw.value == 7
    hw.on_log_end(9)  # appends do not move it when replication drives it
    assert hw.value == 7
    assert hw.advance(6) == 7
    assert hw.advance(8) == 8
    hw.on_close()
    assert read_high_watermark(tmp_path) == 8


def test_lowering_and_restarting_checkpoint_at_once(tmp_path: Path) -> None:
    hw = HighWatermark(tmp_path, 8, follows_log_end=False, checkpointed=None)
    assert not hw.lower_to(9)
    assert read_high_watermark(tmp_path) is None
    assert hw.lower_to(4)
    assert (hw.value, read_high_watermark(tmp_path)) == (4, 4)
    hw.restart_at(50)
    assert (hw.value, read_high_watermark(tmp_path)) == (50, 50)


def test_checkpoint_skips_an_unchanged_value(tmp_path: Path) -> None:
    hw = HighWatermark(tmp_path, 3, follows_log_end=False, checkpointed=3)
    assert hw.checkpoint() == 3
    assert not (tmp_path / HIGH_WATERMARK_CHECKPOINT_FILE).exists()
    hw.advance(4)
    assert hw.checkpoint() == 4
    assert read_high_watermark(tmp_path) == 4


def test_frozen_holds_off_other_threads(tmp_path: Path) -> None:
    hw = HighWatermark(tmp_path, 0, follows_log_end=False, checkpointed=None)
    moved = threading.Event()

    def advance() -> None:
        hw.advance(5)
        moved.set()

    with hw.frozen() as held:
        thread = threading.Thread(target=advance)
        thread.start()
        assert not moved.wait(0.05)
        assert held.lower_to(0) is False and held.value == 0  # reentrant for its holder
    thread.join()
    assert moved.is_set() and hw.value == 5


def test_unreadable_checkpoints_mean_unknown(tmp_path: Path) -> None:
    path = tmp_path / HIGH_WATERMARK_CHECKPOINT_FILE
    for text in ("junk", "0\n-1\n", "1\n5\n", "0\n5"):
        path.write_text(text)
        assert read_high_watermark(tmp_path) is None, text
    path.write_text("0\n5\n")
    assert read_high_watermark(tmp_path) == 5


# ====================================================================== through PartitionLog


def test_high_watermark_checkpoint_round_trip(tmp_path: Path) -> None:
    plog = replica(tmp_path, "a")
    write(plog, 1, 4, 4)
    assert plog.high_watermark == 0
    plog.set_high_watermark(4)
    assert plog.checkpoint_high_watermark() == 4
    assert read_high_watermark(plog.directory) == 4
    plog.set_high_watermark(6)
    # A crash now (a copy of the directory, reopened): the last explicit checkpoint counts.
    shutil.copytree(plog.directory, tmp_path / "crash" / plog.directory.name)
    crashed = replica(tmp_path, "crash")
    assert (crashed.log_end_offset, crashed.high_watermark) == (8, 4)
    crashed.close()
    plog.close()  # a clean close writes the current high watermark
    assert read_high_watermark(plog.directory) == 6
    again = replica(tmp_path, "a")
    assert again.high_watermark == 6
    assert again.read(0, 1 << 20).high_watermark == 6
    again.close()


def test_restored_high_watermark_is_capped_and_optional(tmp_path: Path) -> None:
    plog = replica(tmp_path, "a")
    write(plog, 1, 3)
    plog.close()
    directory = plog.directory
    assert read_high_watermark(directory) == 0
    write_high_watermark(directory, 99)
    capped = replica(tmp_path, "a")
    assert capped.high_watermark == 3
    capped.close()
    (directory / HIGH_WATERMARK_CHECKPOINT_FILE).write_text("junk")
    unknown = replica(tmp_path, "a")
    assert unknown.high_watermark == 0  # the log start offset
    unknown.close()
    # With the high watermark following the log end, the checkpoint is not used.
    write_high_watermark(directory, 1)
    following = open_partition(tmp_path / "a")
    assert following.high_watermark == 3
    following.close()


def test_a_listener_sees_every_change_in_order(tmp_path: Path) -> None:
    hw = HighWatermark.open(tmp_path, log_start=0, log_end=10, follows_log_end=False)
    seen: list[int] = []
    hw.listen(seen.append)
    hw.advance(4)
    hw.advance(3)  # backwards: no change, no call
    hw.advance(4)
    hw.on_log_end(9)  # replication drives it: appends do not move it
    assert hw.lower_to(2)
    hw.restart_at(20)
    assert seen == [4, 2, 20]
