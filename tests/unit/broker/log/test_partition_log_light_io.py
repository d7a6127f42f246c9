"""PartitionLog's light-I/O predicates: which appends and tail reads the broker may run on its
event loop instead of an I/O thread (small, page-cache only, never an fsync or a blocked
write lock)."""

from __future__ import annotations

from pathlib import Path

from raftka.broker.log.flush_policy import LIGHT_BYTES
from raftka.broker.log.partition_log import PartitionLog
from tests.unit.broker.support import T0, batch, open_partition


def leader_append(plog: PartitionLog, records: int = 1, value_size: int = 20) -> int:
    """Appends one batch as leader; returns its size in bytes."""
    b = batch(records, value_size=value_size)
    plog.append_as_leader(b, leader_epoch=0, now_ms=T0)
    return len(b)


def test_small_append_is_light_unless_fsynced_per_write(tmp_path: Path) -> None:
    plain = open_partition(tmp_path / "plain")
    assert plain.append_is_light(1024)
    assert not plain.append_is_light(LIGHT_BYTES + 1)
    synced = open_partition(tmp_path / "synced", fsync_every_batch=True)
    assert not synced.append_is_light(1024)
    flush_each = open_partition(tmp_path / "flush1", overrides={"flush.messages": "1"})
    assert not flush_each.append_is_light(1024)


def test_append_is_not_light_when_a_flush_may_fall_due(tmp_path: Path) -> None:
    plog = open_partition(tmp_path / "p", overrides={"flush.messages": "100"})
    assert plog.append_is_light(50)  # at most 50 records: 0 + 50 < 100
    leader_append(plog, records=60)
    assert not plog.append_is_light(50)  # 60 unflushed + up to 50 may reach 100


def test_append_is_not_light_while_the_write_lock_is_held(tmp_path: Path) -> None:
    plog = open_partition(tmp_path / "p")
    with plog._write_lock:
        assert not plog.append_is_light(100)
    assert plog.append_is_light(100)


def test_tail_is_small_at_the_end_and_one_small_append_behind(tmp_path: Path) -> None:
    plog = open_partition(tmp_path / "p")
    assert plog.tail_is_small(0)  # empty: at the log end
    leader_append(plog, records=3)
    assert plog.tail_is_small(0)  # exactly the last (small) append
    assert plog.tail_is_small(3)
    assert not plog.tail_is_small(1)  # mid-append: size unknown without the disk
    leader_append(plog)
    assert not plog.tail_is_small(0)  # two appends behind
    assert plog.tail_is_small(3)


def test_tail_is_not_small_after_a_large_append_or_a_truncation(tmp_path: Path) -> None:
    plog = open_partition(tmp_path / "p", hw_follows_log_end=False)
    leader_append(plog, value_size=LIGHT_BYTES)
    assert not plog.tail_is_small(0)
    follower = open_partition(tmp_path / "f", hw_follows_log_end=False)
    follower.append_as_follower(plog.read(0, 1 << 24, max_offset=plog.log_end_offset).records)
    assert not follower.tail_is_small(0)
    small = open_partition(tmp_path / "s", hw_follows_log_end=False)
    leader_append(small)
    leader_append(small)
    assert small.tail_is_small(1)
    small.truncate_to(1)
    assert not small.tail_is_small(0)  # the remembered append is gone from the end
    assert small.tail_is_small(1)
