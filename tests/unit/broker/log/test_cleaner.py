"""The broker's log cleaner: selection, checkpoint, producer state, replication."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from raftka.broker.log.cleaner import (
    CleanerStoppedError,
    LogCleaner,
    Throttle,
    dirty_range,
    run_cleaner_passes,
)
from raftka.broker.log.compaction import CLEANER_CHECKPOINT_FILE
from raftka.broker.log.config import PartitionLogConfig
from raftka.broker.log.partition_log import PartitionLog
from raftka.common.records import build_batch, decode_batch
from raftka.common.records.batch import split_batches
from raftka.common.records.decoder import Record
from raftka.common.storage import SegmentInfo
from tests.unit.broker.support import T0, FakeClock, open_partition

COMPACT = {"cleanup.policy": "compact", "segment.bytes": "400"}


def kv(key: str, value: str | None, *, pid: int = -1, seq: int = -1) -> bytearray:
    return build_batch(
        [(T0, key.encode(), None if value is None else value.encode(), ())],
        producer_id=pid,
        producer_epoch=0 if pid >= 0 else -1,
        base_sequence=seq,
    )


def fill(plog: PartitionLog, rounds: int = 8, keys: int = 4, first: int = 0) -> dict[bytes, bytes]:
    expected: dict[bytes, bytes] = {}
    for r in range(rounds):
        for k in range(first, first + keys):
            value = f"v{r}-{k}" * 4
            plog.append_as_leader(kv(f"k{k}", value), leader_epoch=1, now_ms=T0)
            expected[f"k{k}".encode()] = value.encode()
    return expected


def read_all(plog: PartitionLog, offset: int = 0) -> list[Record]:
    records: list[Record] = []
    while offset < plog.log_end_offset:
        data = plog.read(offset, 1 << 20, max_offset=plog.log_end_offset).records
        for span in split_batches(data):
            decoded = decode_batch(data, span.position)
            records.extend(r for r in decoded.records if r.offset >= offset)
            offset = decoded.header.next_offset
    return records


def cleaner(now: int = T0 + 1000) -> LogCleaner:
    return LogCleaner(clock=FakeClock(now))


def test_dirty_range_stops_at_the_active_segment_the_high_watermark_and_the_lag() -> None:
    segments = [SegmentInfo(b, 100, T0 + b) for b in (0, 10, 20, 30, 40)]  # 40 is active
    config = PartitionLogConfig(compact_enabled=True)
    whole = dirty_range(segments, config, first_dirty=0, high_watermark=45, now_ms=T0 + 100)
    assert (whole.first_uncleanable, whole.cleanable_bytes, whole.clean_bytes) == (40, 400, 0)
    assert whole.ratio == 1.0 and whole.eligible(config)
    half = dirty_range(segments, config, first_dirty=20, high_watermark=45, now_ms=T0 + 100)
    assert (half.clean_bytes, half.cleanable_bytes, half.ratio) == (200, 200, 0.5)
    assert not half.eligible(config)  # the ratio must exceed min.cleanable.dirty.ratio
    assert half.eligible(PartitionLogConfig(min_cleanable_dirty_ratio=0.4))
    below_hw = dirty_range(segments, config, first_dirty=0, high_watermark=25, now_ms=T0 + 100)
    assert below_hw.first_uncleanable == 20
    lagged = PartitionLogConfig(min_compaction_lag_ms=85)
    young = dirty_range(segments, lagged, first_dirty=0, high_watermark=45, now_ms=T0 + 100)
    assert young.first_uncleanable == 20  # segment 20's newest record is 80 ms old
    overdue = PartitionLogConfig(min_cleanable_dirty_ratio=0.9, max_compaction_lag_ms=95)
    late = dirty_range(segments, overdue, first_dirty=20, high_watermark=45, now_ms=T0 + 120)
    assert late.overdue and late.eligible(overdue)  # segment 20 is 100 ms old
    assert not dirty_range(
        segments, overdue, first_dirty=20, high_watermark=45, now_ms=T0 + 110
    ).eligible(overdue)


def test_cleaning_keeps_the_latest_per_key_and_moves_the_checkpoint(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=COMPACT)
    expected = fill(plog)
    end, size = plog.log_end_offset, plog.size_bytes
    done = cleaner().clean_once([plog])
    assert done is not None and done.result.completed
    active = plog.segment_base_offsets[-1]
    assert done.range.first_uncleanable == active
    assert plog.compactor.first_dirty_offset == active
    assert (tmp_path / "events-0" / CLEANER_CHECKPOINT_FILE).read_text() == f"0\n{active}\n"
    records = read_all(plog)
    assert {r.key: r.value for r in records} == expected
    assert len([r for r in records if r.offset < active]) <= 4
    assert plog.log_end_offset == end and plog.size_bytes < size
    # Nothing dirty is left below the active segment: the next call has nothing to do.
    assert cleaner().clean_once([plog]) is None
    plog.close()


def test_only_compacted_topics_are_cleaned(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={"segment.bytes": "400"})
    fill(plog)
    assert cleaner().clean_once([plog]) is None
    lagged = open_partition(
        tmp_path, partition=1, overrides={**COMPACT, "min.compaction.lag.ms": "60000"}
    )
    fill(lagged)
    assert cleaner(T0 + 1000).clean_once([lagged]) is None
    assert cleaner(T0 + 60_001).clean_once([lagged]) is not None
    plog.close()
    lagged.close()


def test_tombstones_expire_after_delete_retention(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={**COMPACT, "delete.retention.ms": "5000"})
    fill(plog, rounds=2)
    plog.append_as_leader(kv("k0", None), leader_epoch=1, now_ms=T0)
    tomb = plog.log_end_offset - 1
    fill(plog, rounds=4, keys=3, first=1)  # k1..k3 (not k0) go on; the tombstone becomes cleanable
    assert cleaner(T0 + 1000).clean_once([plog]) is not None
    assert (tomb, None) in [(r.offset, r.value) for r in read_all(plog) if r.key == b"k0"]
    # A later pass (more dirty data) before the horizon keeps it; one after drops it.
    fill(plog, rounds=4, keys=3, first=1)
    assert cleaner(T0 + 5999).clean_once([plog]) is not None
    assert any(r.key == b"k0" for r in read_all(plog))
    fill(plog, rounds=4, keys=3, first=1)
    assert cleaner(T0 + 6000).clean_once([plog]) is not None
    assert not any(r.key == b"k0" for r in read_all(plog))
    plog.close()


def test_a_restart_after_cleaning_keeps_the_producer_state(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=COMPACT)
    for seq in range(3):
        plog.append_as_leader(kv("p", f"from-7-{seq}", pid=7, seq=seq), leader_epoch=1, now_ms=T0)
    fill(plog)  # no key "p" again, but pushes the producer's batches into cleanable segments
    plog.append_as_leader(kv("p", "overwrites"), leader_epoch=1, now_ms=T0)
    fill(plog, rounds=4)
    before = plog.producer_state.entry(7)
    assert before is not None
    assert cleaner().clean_once([plog]) is not None
    assert [r.value for r in read_all(plog) if r.key == b"p"] == [b"overwrites"]
    plog.close()
    # Without snapshots the state comes from replaying the cleaned log: the producer's last
    # batch survives as an empty header with its epoch and sequence.
    for snapshot in (tmp_path / "events-0").glob("*.snapshot"):
        snapshot.unlink()
    reopened = open_partition(tmp_path, overrides=COMPACT)
    after = reopened.producer_state.entry(7)
    assert after is not None
    assert (after.epoch, after.last_seq, after.last_offset) == (
        before.epoch,
        before.last_seq,
        before.last_offset,
    )
    # A resend of the producer's last batch is still recognised as a duplicate.
    again = reopened.append_as_leader(kv("p", "from-7-2", pid=7, seq=2), leader_epoch=1, now_ms=T0)
    assert again.base_offset == before.last_offset
    reopened.close()


def test_a_follower_replicates_from_a_compacted_leader(tmp_path: Path) -> None:
    leader = open_partition(tmp_path / "leader", overrides=COMPACT)
    expected = fill(leader)
    assert cleaner().clean_once([leader]) is not None
    follower = open_partition(tmp_path / "follower", overrides=COMPACT, hw_follows_log_end=False)
    while follower.log_end_offset < leader.log_end_offset:
        fetched = leader.read(follower.log_end_offset, 300)
        follower.append_as_follower(fetched.records)
    assert read_all(follower) == read_all(leader)
    assert {r.key: r.value for r in read_all(follower)} == expected
    assert follower.leader_epoch_cache.latest_epoch == 1
    leader.close()
    follower.close()


def test_a_truncation_below_the_checkpoint_brings_it_down(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=COMPACT, hw_follows_log_end=False)
    fill(plog)
    plog.set_high_watermark(plog.log_end_offset)
    assert cleaner().clean_once([plog]) is not None
    checkpoint = plog.compactor.first_dirty_offset
    assert checkpoint > 5
    plog.truncate_to(5, allow_below_high_watermark=True)
    assert plog.compactor.first_dirty_offset <= plog.log_end_offset <= 5
    plog.close()


def test_a_stopped_cleaner_stops_its_pass_and_leaves_the_log_whole(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=COMPACT)
    fill(plog)
    before = read_all(plog)
    stopping = LogCleaner(clock=FakeClock(T0 + 1000))
    stopping.stop()
    assert run_cleaner_passes(stopping, [plog]) == 0
    assert read_all(plog) == before
    assert not list((tmp_path / "events-0").glob("*.cleaned"))
    stopped = threading.Event()
    stopped.set()
    with pytest.raises(CleanerStoppedError):
        Throttle(0, stopped)(100)
    plog.close()


def test_passes_go_on_until_no_log_is_eligible_filthiest_first(tmp_path: Path) -> None:
    dirtier = open_partition(tmp_path, partition=0, overrides=COMPACT)
    fill(dirtier, rounds=12)
    cleaner_ = cleaner()
    dirtier_range = cleaner_.candidates([dirtier], T0)[0][1]
    less = open_partition(tmp_path, partition=1, overrides=COMPACT)
    fill(less, rounds=8)
    assert cleaner().clean_once([less]) is not None
    fill(less, rounds=4)  # a second, smaller dirty part after a clean part
    ranked = cleaner_.candidates([less, dirtier], T0)
    assert [plog.partition for plog, _ in ranked] == [0, 1]
    assert ranked[0][1] == dirtier_range and ranked[0][1].ratio > ranked[1][1].ratio
    assert run_cleaner_passes(cleaner_, [less, dirtier]) == 2
    assert cleaner_.candidates([less, dirtier], T0) == []
    dirtier.close()
    less.close()
