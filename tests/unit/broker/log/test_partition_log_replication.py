"""PartitionLog storage for replication: the leader-epoch cache kept in step with the log,
follower appends, the divergence check and follower truncation, and the high-watermark
checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from raftka.broker.log.divergence import check_divergence
from raftka.broker.log.high_watermark import HIGH_WATERMARK_CHECKPOINT_FILE, read_high_watermark
from raftka.broker.log.leader_epoch_cache import (
    LEADER_EPOCH_CHECKPOINT_FILE,
    EpochEndOffset,
    TruncationTarget,
    follower_truncation_target,
    read_leader_epoch_checkpoint,
)
from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.log.retention import apply_retention
from raftka.broker.log.types import (
    DivergentAppendError,
    StaleLeaderEpochError,
    TruncationBelowHighWatermarkError,
)
from raftka.common.errors import InvalidRequestError
from raftka.common.records import (
    CorruptRecordError,
    InvalidRecordError,
    set_partition_leader_epoch,
    split_batches,
)
from raftka.common.storage import LogOffsetOutOfRangeError, UnexpectedAppendOffsetError
from tests.unit.broker.support import T0, batch, open_partition

NOW = T0 + 5_000


def replica(root: Path, name: str, *, overrides: Mapping[str, str] | None = None) -> PartitionLog:
    """A replica of events-0 under ``root/name`` whose high watermark replication drives."""
    return open_partition(root / name, hw_follows_log_end=False, overrides=overrides)


def write(plog: PartitionLog, epoch: int, *sizes: int) -> None:
    """Appends one batch per size, as leader in ``epoch``."""
    for i, size in enumerate(sizes):
        plog.append_as_leader(batch(size, tag=epoch * 10 + i), leader_epoch=epoch, now_ms=NOW)


def everything(plog: PartitionLog, from_offset: int = 0) -> bytes:
    """The stored bytes from ``from_offset`` to the log end (not bounded by the HW)."""
    if from_offset >= plog.log_end_offset:
        return b""
    return plog.read(from_offset, 1 << 24, max_offset=plog.log_end_offset).records


def divergence_check(
    leader: PartitionLog, fetch_offset: int, last_fetched_epoch: int
) -> EpochEndOffset | None:
    """The leader's check of a follower's fetch position, as the broker makes it."""
    return check_divergence(
        leader.leader_epoch_cache,
        leader.topic_partition,
        leader.log_start_offset,
        leader.log_end_offset,
        fetch_offset,
        last_fetched_epoch,
    )


def truncation_target(follower: PartitionLog, diverging: EpochEndOffset) -> TruncationTarget:
    """Where the follower truncates on the leader's DivergingEpoch, as its fetcher decides."""
    return follower_truncation_target(
        follower.leader_epoch_cache,
        diverging,
        log_end_offset=follower.log_end_offset,
        high_watermark=follower.high_watermark,
    )


def pairs(plog: PartitionLog) -> list[tuple[int, int]]:
    return [(e.epoch, e.start_offset) for e in plog.leader_epoch_cache.entries]


def replicate(leader: PartitionLog, follower: PartitionLog) -> None:
    """One follower fetch: the divergence check must pass; then append what is missing."""
    assert divergence_check(leader, follower.log_end_offset, follower.last_fetched_epoch) is None
    data = everything(leader, follower.log_end_offset)
    if data:
        follower.append_as_follower(data)


# ====================================================================== leader appends


def test_leader_appends_record_each_new_epoch_and_persist_it(tmp_path: Path) -> None:
    plog = replica(tmp_path, "a")
    assert (
        pairs(plog) == []
        and plog.leader_epoch_cache.latest_epoch == -1
        and plog.last_fetched_epoch == -1
    )
    write(plog, 1, 2, 3)  # offsets 0..4
    write(plog, 4, 1)  # offset 5
    write(plog, 4, 2)  # 6..7: same epoch, no new entry
    write(plog, 6, 1)  # 8
    assert pairs(plog) == [(1, 0), (4, 5), (6, 8)]
    assert (plog.leader_epoch_cache.latest_epoch, plog.last_fetched_epoch) == (6, 6)
    path = plog.directory / LEADER_EPOCH_CHECKPOINT_FILE
    assert read_leader_epoch_checkpoint(path) == [(1, 0), (4, 5), (6, 8)]
    plog.close()
    again = replica(tmp_path, "a")
    assert pairs(again) == [(1, 0), (4, 5), (6, 8)]
    assert again.leader_epoch_cache.end_offset_for(4, again.log_end_offset) == EpochEndOffset(4, 8)
    assert again.leader_epoch_cache.end_offset_for(6, again.log_end_offset) == EpochEndOffset(6, 9)
    again.close()


def test_leader_append_in_an_older_epoch_is_fenced_and_writes_nothing(tmp_path: Path) -> None:
    plog = replica(tmp_path, "a")
    write(plog, 5, 2)
    with pytest.raises(StaleLeaderEpochError, match=r"epoch 4 is older than .* 5") as info:
        write(plog, 4, 1)
    assert info.value.code_name == "FENCED_LEADER_EPOCH"
    assert plog.log_end_offset == 2
    assert pairs(plog) == [(5, 0)]
    plog.close()


def test_assign_leader_epoch_before_writing(tmp_path: Path) -> None:
    plog = replica(tmp_path, "a")
    write(plog, 1, 3)
    assert plog.start_leader_epoch(2) == 3  # the epoch start offset is the log end
    assert plog.start_leader_epoch(2) == 3  # idempotent
    assert (plog.leader_epoch_cache.latest_epoch, plog.last_fetched_epoch) == (2, 1)
    write(plog, 2, 2)
    assert pairs(plog) == [(1, 0), (2, 3)]
    assert plog.last_fetched_epoch == 2
    with pytest.raises(StaleLeaderEpochError):
        plog.start_leader_epoch(1)
    plog.close()


def test_default_mode_is_unchanged_but_tracks_epochs(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)  # hw_follows_log_end=True
    write(plog, 3, 2, 2)
    assert plog.high_watermark == 4
    assert pairs(plog) == [(3, 0)]
    plog.close()
    assert not (plog.directory / HIGH_WATERMARK_CHECKPOINT_FILE).exists()
    again = open_partition(tmp_path)
    assert again.high_watermark == 4
    again.close()


# ====================================================================== rebuilding the cache


def test_missing_checkpoint_is_rebuilt_from_batch_headers(tmp_path: Path) -> None:
    plog = replica(tmp_path, "a", overrides={"segment.bytes": "300"})
    write(plog, 1, 2, 2)
    write(plog, 3, 1, 1)
    write(plog, 8, 3)
    expected = [(1, 0), (3, 4), (8, 6)]
    assert pairs(plog) == expected
    assert plog.segment_count > 1
    plog.close()
    (plog.directory / LEADER_EPOCH_CHECKPOINT_FILE).unlink()
    again = replica(tmp_path, "a", overrides={"segment.bytes": "300"})
    assert pairs(again) == expected
    assert read_leader_epoch_checkpoint(again.directory / LEADER_EPOCH_CHECKPOINT_FILE) == expected
    again.close()


def test_stale_or_corrupt_checkpoint_is_rebuilt(tmp_path: Path) -> None:
    plog = replica(tmp_path, "a")
    write(plog, 1, 2)
    path = plog.directory / LEADER_EPOCH_CHECKPOINT_FILE
    old = path.read_bytes()
    write(plog, 2, 2)
    plog.close()
    # A crash after the log append but before the checkpoint write: the file lacks epoch 2.
    path.write_bytes(old)
    again = replica(tmp_path, "a")
    assert pairs(again) == [(1, 0), (2, 2)]
    again.close()
    path.write_text("garbage\n")
    third = replica(tmp_path, "a")
    assert pairs(third) == [(1, 0), (2, 2)]
    third.close()


def test_checkpoint_entries_past_the_log_end_are_dropped_on_open(tmp_path: Path) -> None:
    plog = replica(tmp_path, "a")
    write(plog, 1, 2)
    assert plog.start_leader_epoch(5) == 2  # no record written in epoch 5
    plog.close()
    assert read_leader_epoch_checkpoint(plog.directory / LEADER_EPOCH_CHECKPOINT_FILE) == [
        (1, 0),
        (5, 2),
    ]
    again = replica(tmp_path, "a")
    assert pairs(again) == [(1, 0)]
    again.close()


def test_retention_collapses_entries_below_the_new_log_start(tmp_path: Path) -> None:
    overrides = {"segment.bytes": "200", "retention.ms": "-1"}
    plog = open_partition(tmp_path, overrides=overrides)
    for epoch in (1, 2, 3, 4):  # one batch, hence one segment, per epoch
        plog.append_as_leader(batch(1, value_size=100), leader_epoch=epoch, now_ms=NOW)
    assert plog.segment_count == 4
    assert pairs(plog) == [(1, 0), (2, 1), (3, 2), (4, 3)]
    plog.update_configs({**overrides, "retention.bytes": "1"})
    assert apply_retention([plog], NOW) == 3
    assert plog.log_start_offset == 3
    assert pairs(plog) == [(4, 3)]
    plog.close()


# ====================================================================== follower appends


def test_follower_append_keeps_the_leaders_bytes_and_tracks_epochs(tmp_path: Path) -> None:
    leader = replica(tmp_path, "leader")
    follower = replica(tmp_path, "follower")
    write(leader, 1, 2, 3)
    write(leader, 2, 1)
    write(leader, 5, 4)
    data = everything(leader)
    result = follower.append_as_follower(data)
    assert (result.base_offset, result.last_offset, result.log_start_offset) == (0, 9, 0)
    assert everything(follower) == data
    assert pairs(follower) == pairs(leader) == [(1, 0), (2, 5), (5, 6)]
    assert follower.last_fetched_epoch == 5
    assert follower.high_watermark == 0  # the follower's high watermark is the caller's
    assert follower.set_high_watermark(7) == 7
    # Batch by batch gives the same result.
    other = replica(tmp_path, "other")
    for span in split_batches(data):
        other.append_as_follower(data[span.position : span.position + span.size])
    assert everything(other) == data
    assert pairs(other) == pairs(leader)
    follower.close()
    again = replica(tmp_path, "follower")
    assert pairs(again) == [(1, 0), (2, 5), (5, 6)]
    assert again.high_watermark == 7
    for plog in (leader, other, again):
        plog.close()


def test_follower_append_must_continue_the_log_end(tmp_path: Path) -> None:
    leader = replica(tmp_path, "leader")
    follower = replica(tmp_path, "follower")
    write(leader, 1, 2, 2)
    data = everything(leader)
    second = everything(leader, 2)
    with pytest.raises(UnexpectedAppendOffsetError, match="base offset 2 but the log ends at 0"):
        follower.append_as_follower(second)
    follower.append_as_follower(data)
    with pytest.raises(UnexpectedAppendOffsetError, match="base offset 0 but the log ends at 4"):
        follower.append_as_follower(data)
    assert follower.log_end_offset == 4
    assert everything(follower) == data
    for plog in (leader, follower):
        plog.close()


def test_follower_append_rejects_bad_batches_before_writing(tmp_path: Path) -> None:
    leader = replica(tmp_path, "leader")
    follower = replica(tmp_path, "follower")
    write(leader, 3, 2)
    write(leader, 4, 2)
    data = bytearray(everything(leader))
    follower.append_as_follower(bytes(data[: split_batches(data)[1].position]))
    second = bytearray(everything(leader, 2))
    # Epoch going backwards below the log's last batch: divergence not resolved.
    backwards = bytearray(second)
    set_partition_leader_epoch(backwards, 2)
    with pytest.raises(DivergentAppendError, match="leader epoch 2, older than epoch 3"):
        follower.append_as_follower(bytes(backwards))
    # A batch without a leader epoch.
    unstamped = bytearray(second)
    set_partition_leader_epoch(unstamped, -1)
    with pytest.raises(InvalidRecordError, match="no partition leader epoch"):
        follower.append_as_follower(bytes(unstamped))
    # A corrupt batch.
    corrupt = bytearray(second)
    corrupt[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError):
        follower.append_as_follower(bytes(corrupt))
    with pytest.raises(InvalidRecordError, match="0 bytes"):
        follower.append_as_follower(b"")
    assert follower.log_end_offset == 2
    assert pairs(follower) == [(3, 0)]
    follower.append_as_follower(bytes(second))
    assert pairs(follower) == [(3, 0), (4, 2)]
    for plog in (leader, follower):
        plog.close()


def test_follower_append_drops_an_epoch_it_assigned_without_records(tmp_path: Path) -> None:
    leader = replica(tmp_path, "leader")
    follower = replica(tmp_path, "follower")
    write(leader, 1, 2)
    replicate(leader, follower)
    # The follower briefly led in epoch 2 (wrote nothing); then the leader of epoch 3 sends
    # more epoch-1 records followed by its own.
    assert follower.start_leader_epoch(2) == 2
    write(leader, 1, 1)
    leader.start_leader_epoch(3)
    write(leader, 3, 1)
    assert pairs(leader) == [(1, 0), (3, 3)]
    replicate(leader, follower)
    assert pairs(follower) == [(1, 0), (3, 3)]
    assert everything(follower) == everything(leader)
    for plog in (leader, follower):
        plog.close()


def test_a_lost_follower_checkpoint_write_is_rebuilt_on_open(tmp_path: Path) -> None:
    """A follower's append writes the checkpoint without fsync: a crash may keep the older
    file, whose latest entry the batches then contradict, so the cache is rebuilt."""
    leader = replica(tmp_path, "leader")
    follower = replica(tmp_path, "follower")
    write(leader, 1, 2)
    replicate(leader, follower)
    assert follower.start_leader_epoch(2) == 2  # led briefly in epoch 2, wrote nothing
    path = follower.directory / LEADER_EPOCH_CHECKPOINT_FILE
    before = path.read_bytes()
    write(leader, 1, 1)
    replicate(leader, follower)  # an epoch-1 batch at offset 2 replaces the (2, 2) entry
    assert pairs(follower) == [(1, 0)]
    follower.close()
    path.write_bytes(before)  # the follower's checkpoint write was lost in a crash
    again = replica(tmp_path, "follower")
    assert pairs(again) == [(1, 0)]
    assert read_leader_epoch_checkpoint(path) == [(1, 0)]
    for plog in (leader, again):
        plog.close()


# ====================================================================== divergence


def test_consistent_follower_passes_the_divergence_check(tmp_path: Path) -> None:
    leader = replica(tmp_path, "leader")
    write(leader, 1, 2, 2)  # 0..3
    write(leader, 3, 3)  # 4..6
    # Fetch positions of followers holding a prefix of the leader's log.
    for fetch_offset, epoch in [(0, -1), (2, 1), (4, 1), (5, 3), (7, 3)]:
        assert divergence_check(leader, fetch_offset, epoch) is None, (fetch_offset, epoch)
    # A follower that is a real prefix, step by step.
    follower = replica(tmp_path, "follower")
    replicate(leader, follower)
    assert follower.log_end_offset == 7
    assert divergence_check(leader, follower.log_end_offset, follower.last_fetched_epoch) is None
    for plog in (leader, follower):
        plog.close()


def test_follower_with_a_longer_tail_of_an_old_epoch_truncates_to_the_epoch_end(
    tmp_path: Path,
) -> None:
    # Epoch 1: the old leader writes 0..14; the new leader replicated only 0..9.
    old = replica(tmp_path, "old")
    new = replica(tmp_path, "new")
    write(old, 1, 5, 5)  # 0..9
    replicate(old, new)
    write(old, 1, 3, 2)  # 10..14: never replicated, never committed
    old.set_high_watermark(10)
    new.set_high_watermark(10)
    # Epoch 2: the new leader writes 10..12.
    assert new.start_leader_epoch(2) == 10
    write(new, 2, 3)
    assert pairs(new) == [(1, 0), (2, 10)]

    # The old leader, now a follower, fetches from its log end with its last epoch.
    assert (old.log_end_offset, old.last_fetched_epoch) == (15, 1)
    diverging = divergence_check(new, old.log_end_offset, old.last_fetched_epoch)
    assert diverging == EpochEndOffset(1, 10)
    target = truncation_target(old, diverging)
    assert target == TruncationTarget(10, True)
    assert old.truncate_to(target.offset) == 10
    assert (old.log_end_offset, old.last_fetched_epoch, pairs(old)) == (10, 1, [(1, 0)])

    # Consistent now: it fetches the new leader's records and ends up byte-identical.
    replicate(new, old)
    assert everything(old) == everything(new)
    assert pairs(old) == [(1, 0), (2, 10)]
    for plog in (old, new):
        plog.close()


def test_divergence_over_an_epoch_the_follower_never_saw_takes_two_rounds(
    tmp_path: Path,
) -> None:
    leader = replica(tmp_path, "leader")
    follower = replica(tmp_path, "follower")
    write(leader, 1, 4, 4)  # 0..7
    replicate(leader, follower)
    write(follower, 1, 2)  # 8..9: the follower's own uncommitted epoch-1 tail
    write(follower, 3, 5, 5)  # 10..19 in epoch 3
    write(leader, 2, 4)  # 8..11 in epoch 2
    write(leader, 4, 4)  # 12..15 in epoch 4
    assert pairs(leader) == [(1, 0), (2, 8), (4, 12)]
    assert pairs(follower) == [(1, 0), (3, 10)]

    rounds = []
    while (
        diverging := divergence_check(leader, follower.log_end_offset, follower.last_fetched_epoch)
    ) is not None:
        target = truncation_target(follower, diverging)
        rounds.append((diverging, target))
        follower.truncate_to(target.offset)
        assert len(rounds) < 5
    assert rounds == [
        # Epoch 3 is unknown to the leader: its largest smaller epoch 2 ends at 12. The
        # follower does not know epoch 2: it goes to the end of its epoch 1 and asks again.
        (EpochEndOffset(2, 12), TruncationTarget(10, False)),
        (EpochEndOffset(1, 8), TruncationTarget(8, True)),
    ]
    assert (follower.log_end_offset, pairs(follower)) == (8, [(1, 0)])
    replicate(leader, follower)
    assert everything(follower) == everything(leader)
    assert pairs(follower) == pairs(leader)
    for plog in (leader, follower):
        plog.close()


def test_divergence_check_edges(tmp_path: Path) -> None:
    leader = replica(tmp_path, "leader")
    # No epochs at all (empty log): valid up to the log end, else diverging at the log end.
    assert divergence_check(leader, 0, 3) is None
    assert divergence_check(leader, 4, 3) == EpochEndOffset(-1, 0)
    write(leader, 2, 3)  # 0..2
    write(leader, 5, 3)  # 3..5
    # Past the end in the latest epoch: diverging at the log end.
    assert divergence_check(leader, 9, 5) == EpochEndOffset(5, 6)
    # An epoch newer than the leader knows: (latest epoch, log end).
    assert divergence_check(leader, 6, 7) == EpochEndOffset(5, 6)
    # An epoch between known ones ends where the next known one starts.
    assert divergence_check(leader, 3, 4) == EpochEndOffset(2, 3)
    # Below every known epoch: fine up to the first epoch's start.
    assert divergence_check(leader, 0, 1) is None
    assert divergence_check(leader, 2, 1) == EpochEndOffset(1, 0)
    # No epoch: offsets inside [log start, log end] only.
    assert divergence_check(leader, 6, -1) is None
    with pytest.raises(LogOffsetOutOfRangeError, match="past the log end offset 6"):
        divergence_check(leader, 7, -1)
    with pytest.raises(InvalidRequestError):
        divergence_check(leader, -1, 2)
    with pytest.raises(InvalidRequestError):
        divergence_check(leader, 0, -2)
    # A fetch below the log start is out of range, whatever its epoch.
    leader.set_high_watermark(6)
    leader.truncate_fully_and_start_at(50)
    write(leader, 6, 2)  # 50..51
    with pytest.raises(LogOffsetOutOfRangeError, match="below the log start offset 50") as info:
        divergence_check(leader, 6, 5)
    assert (info.value.log_start_offset, info.value.log_end_offset) == (50, 52)
    assert divergence_check(leader, 50, -1) is None
    assert divergence_check(leader, 50, 5) is None  # older than every epoch, ends at 50
    leader.close()


# ====================================================================== truncation


def test_truncation_below_the_high_watermark_is_refused(tmp_path: Path) -> None:
    plog = replica(tmp_path, "a")
    write(plog, 1, 5)  # 0..4
    write(plog, 2, 5)  # 5..9
    assert plog.set_high_watermark(5) == 5
    with pytest.raises(TruncationBelowHighWatermarkError, match=r"offset 3.*high watermark 5"):
        plog.truncate_to(3)
    assert (plog.log_end_offset, pairs(plog)) == (10, [(1, 0), (2, 5)])
    assert plog.truncate_to(5) == 5  # exactly at the high watermark is fine
    assert (plog.log_end_offset, pairs(plog), plog.high_watermark) == (5, [(1, 0)], 5)
    assert plog.truncate_to(7) == 5  # at or past the log end: nothing to do
    plog.close()


def test_truncation_of_a_batch_straddling_the_high_watermark_is_refused(tmp_path: Path) -> None:
    plog = replica(tmp_path, "a")
    write(plog, 1, 5, 5)  # batches 0..4 and 5..9
    plog.set_high_watermark(7)
    # Offset 8 is above the high watermark, but its batch starts at 5, below it.
    with pytest.raises(TruncationBelowHighWatermarkError) as info:
        plog.truncate_to(8)
    assert (info.value.offset, info.value.high_watermark, info.value.new_end) == (8, 7, 5)
    assert plog.log_end_offset == 10
    plog.close()


def test_truncation_below_the_high_watermark_when_allowed_lowers_it(tmp_path: Path) -> None:
    plog = replica(tmp_path, "a")
    write(plog, 1, 3)
    write(plog, 2, 3)
    plog.set_high_watermark(6)
    plog.checkpoint_high_watermark()
    assert plog.truncate_to(3, allow_below_high_watermark=True) == 3
    assert (plog.high_watermark, pairs(plog)) == (3, [(1, 0)])
    assert read_high_watermark(plog.directory) == 3
    plog.close()


def test_truncate_fully_and_start_at(tmp_path: Path) -> None:
    plog = replica(tmp_path, "a")
    write(plog, 1, 4)
    plog.set_high_watermark(2)
    with pytest.raises(TruncationBelowHighWatermarkError):
        plog.truncate_fully_and_start_at(1)
    plog.truncate_fully_and_start_at(100)
    assert (plog.log_start_offset, plog.log_end_offset, plog.high_watermark) == (100, 100, 100)
    assert pairs(plog) == [] and plog.last_fetched_epoch == -1
    write(plog, 3, 1)
    assert pairs(plog) == [(3, 100)]
    plog.close()
    again = replica(tmp_path, "a")
    assert (again.log_start_offset, again.log_end_offset, again.high_watermark) == (100, 101, 100)
    assert pairs(again) == [(3, 100)]
    again.close()
