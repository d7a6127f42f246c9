"""PartitionLog with idempotent producers: duplicates written once, errors writing nothing,
follower appends, and the producer state across clean and unclean restarts, segment rolls,
truncation and retention (snapshot files in the partition directory)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.log.retention import apply_retention
from raftka.broker.producers.snapshots import snapshot_offsets, snapshot_path
from raftka.common.errors import InvalidProducerEpochError, OutOfOrderSequenceError
from raftka.common.records import build_batch, iter_records
from tests.unit.broker.support import T0, FakeClock, open_partition

PID = 4000
NOW = T0 + 5_000
ROLL_EVERY_BATCH = {"segment.bytes": "14"}


def pbatch(
    sequence: int, records: int = 1, *, epoch: int = 0, producer_id: int = PID, tag: str = ""
) -> bytes:
    """An idempotent producer's batch of ``records`` records from ``sequence`` on."""
    return bytes(
        build_batch(
            [(T0 + i, None, f"{tag}{sequence + i}".encode(), ()) for i in range(records)],
            producer_id=producer_id,
            producer_epoch=epoch,
            base_sequence=sequence,
        )
    )


def values(plog: PartitionLog) -> list[bytes]:
    """Every record value in the log, in offset order (not bounded by the high watermark)."""
    found: list[bytes] = []
    offset = plog.log_start_offset
    while offset < plog.log_end_offset:  # a read returns batches of one segment
        data = plog.read(offset, 1 << 24, max_offset=plog.log_end_offset).records
        records = list(iter_records(data))
        found += [r.value or b"" for r in records]
        offset = records[-1].offset + 1
    return found


def last_batches(plog: PartitionLog, producer_id: int = PID) -> list[tuple[int, int, int, int]]:
    """(first seq, last seq, first offset, last offset) of the producer's remembered batches."""
    entry = plog.producer_state.entry(producer_id)
    assert entry is not None, f"producer {producer_id} is unknown"
    return [(b.first_seq, b.last_seq, b.first_offset, b.last_offset) for b in entry.batches]


def produce(plog: PartitionLog, *batches: bytes, epoch: int = 1) -> int:
    return plog.append_as_leader(b"".join(batches), leader_epoch=epoch, now_ms=NOW).base_offset


def loaded(events: Sequence[Mapping[str, object]]) -> Mapping[str, object]:
    (event,) = [e for e in events if e["event"] == "producer_state_loaded"]
    return event


def reopen(
    path: Path, overrides: Mapping[str, str] | None = None
) -> tuple[PartitionLog, Mapping[str, object]]:
    with capture_logs() as events:
        plog = open_partition(path, overrides=overrides)
    return plog, loaded(events)


# ====================================================================== leader appends


def test_a_retried_batch_gets_its_original_offset_and_is_stored_once(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    first = pbatch(0, 3)
    assert produce(plog, first) == 0
    assert produce(plog, pbatch(3, 2)) == 3
    result = plog.append_as_leader(first, leader_epoch=1, now_ms=NOW)
    assert (result.base_offset, result.last_offset, result.log_append_time_ms) == (0, 2, -1)
    assert plog.log_end_offset == 5
    assert values(plog) == [b"0", b"1", b"2", b"3", b"4"]
    assert produce(plog, pbatch(5)) == 5
    plog.close()


def test_a_duplicate_on_a_log_append_time_topic_returns_the_original_time(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={"message.timestamp.type": "LogAppendTime"})
    plog.append_as_leader(pbatch(0), leader_epoch=1, now_ms=NOW)
    again = plog.append_as_leader(pbatch(0), leader_epoch=1, now_ms=NOW + 999)
    assert (again.base_offset, again.log_append_time_ms) == (0, NOW)
    plog.close()


def test_refused_batches_write_nothing(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    produce(plog, pbatch(0, epoch=2))
    with pytest.raises(OutOfOrderSequenceError):
        produce(plog, pbatch(2, epoch=2))
    with pytest.raises(InvalidProducerEpochError):
        produce(plog, pbatch(1, epoch=1))
    with pytest.raises(OutOfOrderSequenceError):
        produce(plog, pbatch(3, producer_id=PID + 1))
    assert plog.log_end_offset == 1 and values(plog) == [b"0"]
    assert produce(plog, pbatch(1, epoch=2)) == 1
    plog.close()


def test_batches_without_a_producer_id_are_unaffected(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    plain = bytes(build_batch([(T0, None, b"x", ())]))
    assert [produce(plog, plain) for _ in range(3)] == [0, 1, 2]
    assert len(plog.producer_state) == 0
    plog.close()


# ====================================================================== followers


def test_followers_record_the_leaders_batches_and_deduplicate_as_leader(tmp_path: Path) -> None:
    leader = open_partition(tmp_path / "leader", hw_follows_log_end=False)
    follower = open_partition(tmp_path / "follower", hw_follows_log_end=False)
    for i in range(3):
        produce(leader, pbatch(2 * i, 2))
    follower.append_as_follower(leader.read(0, 1 << 20, max_offset=leader.log_end_offset).records)
    assert (
        last_batches(follower) == last_batches(leader) == [(0, 1, 0, 1), (2, 3, 2, 3), (4, 5, 4, 5)]
    )
    # the follower becomes leader in epoch 2: the producer's retry is recognised
    assert produce(follower, pbatch(4, 2), epoch=2) == 4
    assert produce(follower, pbatch(6), epoch=2) == 6
    assert follower.log_end_offset == 7
    leader.close()
    follower.close()


def test_a_full_truncation_forgets_the_producers(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=ROLL_EVERY_BATCH, hw_follows_log_end=False)
    for i in range(3):
        produce(plog, pbatch(i))
    assert snapshot_offsets(plog.directory) == [1, 2]
    plog.truncate_fully_and_start_at(10)
    assert len(plog.producer_state) == 0 and snapshot_offsets(plog.directory) == []
    plog.close()
    again, event = reopen(tmp_path)
    assert len(again.producer_state) == 0 and event["snapshot_offset"] == 10
    again.close()


# ====================================================================== restarts


def test_a_clean_shutdown_snapshots_the_state_and_the_next_open_replays_nothing(
    tmp_path: Path,
) -> None:
    plog = open_partition(tmp_path)
    for i in range(7):
        produce(plog, pbatch(i))
    before = last_batches(plog)
    plog.close()
    assert snapshot_offsets(plog.directory) == [7]
    again, event = reopen(tmp_path)
    assert (event["snapshot_offset"], event["replayed_batches"], event["producers"]) == (7, 0, 1)
    assert last_batches(again) == before
    assert produce(again, pbatch(3)) == 3  # the oldest remembered batch, retried
    with pytest.raises(OutOfOrderSequenceError):
        produce(again, pbatch(1))  # the sixth oldest: forgotten
    again.close()
    assert snapshot_offsets(plog.directory) == [7]  # nothing written since: no new snapshot
    third, event = reopen(tmp_path)
    assert event["replayed_batches"] == 0 and last_batches(third) == before
    third.close()


def test_after_a_crash_without_snapshots_the_whole_log_is_replayed(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    produce(plog, pbatch(0, 2, producer_id=1))
    for i in range(6):
        produce(plog, pbatch(i, producer_id=2))
    produce(plog, bytes(build_batch([(T0, None, b"plain", ())])))
    produce(plog, pbatch(2, producer_id=1))
    plog.flush(checkpoint=True)
    assert snapshot_offsets(plog.directory) == []
    again, event = reopen(tmp_path)  # the first one was never closed: a crash
    assert (event["snapshot_offset"], event["replayed_batches"], event["producers"]) == (-1, 9, 2)
    assert last_batches(again, 1) == last_batches(plog, 1)
    assert last_batches(again, 2) == last_batches(plog, 2)
    assert produce(again, pbatch(0, 2, producer_id=1)) == 0  # still one of producer 1's last five
    assert produce(again, pbatch(3, producer_id=1)) == 10
    again.close()
    plog.close()


def test_segment_rolls_snapshot_so_a_crash_replays_only_the_active_segment(
    tmp_path: Path,
) -> None:
    plog = open_partition(tmp_path, overrides=ROLL_EVERY_BATCH)
    for i in range(4):
        produce(plog, pbatch(2 * i, 2))
    # one segment per batch; a snapshot as of each new segment's base offset
    assert plog.segment_count == 4
    assert snapshot_offsets(plog.directory) == [2, 4, 6]
    plog.flush(checkpoint=True)
    again, event = reopen(tmp_path, ROLL_EVERY_BATCH)
    assert (event["snapshot_offset"], event["replayed_batches"]) == (6, 1)
    assert last_batches(again) == last_batches(plog)
    assert produce(again, pbatch(0, 2)) == 0
    again.close()
    plog.close()


def test_a_corrupt_snapshot_falls_back_to_an_older_one(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=ROLL_EVERY_BATCH)
    for i in range(4):
        produce(plog, pbatch(i))
    plog.flush(checkpoint=True)
    newest = snapshot_path(plog.directory, 3)
    newest.write_bytes(newest.read_bytes()[:-1])
    with capture_logs() as events:
        again = open_partition(tmp_path, overrides=ROLL_EVERY_BATCH)
    assert [e["path"] for e in events if e["event"] == "producer_snapshot_unreadable"] == [
        str(newest)
    ]
    event = loaded(events)
    assert (event["snapshot_offset"], event["replayed_batches"]) == (2, 2)
    assert last_batches(again) == last_batches(plog)
    assert snapshot_offsets(again.directory) == [1, 2]
    again.close()
    plog.close()


def test_snapshots_past_the_recovered_log_end_are_deleted(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=ROLL_EVERY_BATCH)
    for i in range(4):
        produce(plog, pbatch(i))
    plog.flush(checkpoint=True)
    # a crash lost the last two segments (never fsynced), but their snapshots were written
    for base in (2, 3):
        for suffix in (".log", ".index", ".timeindex"):
            (plog.directory / f"{base:020d}{suffix}").unlink(missing_ok=True)
    (plog.directory / "recovery-point").unlink()
    again, event = reopen(tmp_path, ROLL_EVERY_BATCH)
    assert again.log_end_offset == 2
    assert snapshot_offsets(again.directory) == [1, 2]  # 3 described a lost batch
    assert (event["snapshot_offset"], event["replayed_batches"]) == (2, 0)
    assert last_batches(again) == [(0, 0, 0, 0), (1, 1, 1, 1)]
    assert produce(again, pbatch(2, tag="again")) == 2  # sequence 2 was lost: accepted anew
    again.close()
    plog.close()


# ====================================================================== truncation


def test_truncation_rebuilds_the_state_from_a_snapshot_below_the_new_end(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=ROLL_EVERY_BATCH, hw_follows_log_end=False)
    for i in range(5):
        produce(plog, pbatch(2 * i, 2))  # offsets 2i..2i+1, sequences the same
    assert snapshot_offsets(plog.directory) == [2, 4, 6, 8]
    with capture_logs() as events:
        assert plog.truncate_to(5) == 4  # the batch holding offset 5 goes whole
    event = loaded(events)
    assert (event["reason"], event["snapshot_offset"], event["replayed_batches"]) == (
        "truncation",
        4,
        0,
    )
    assert snapshot_offsets(plog.directory) == [2, 4]
    assert last_batches(plog) == [(0, 1, 0, 1), (2, 3, 2, 3)]
    # the producer's batches past the new end are gone: their retry is written again
    assert produce(plog, pbatch(4, 2), epoch=2) == 4
    assert produce(plog, pbatch(4, 2), epoch=2) == 4  # and then deduplicated
    assert values(plog) == [b"0", b"1", b"2", b"3", b"4", b"5"]
    plog.close()


def test_truncation_inside_the_active_segment_replays_it(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, hw_follows_log_end=False)
    for i in range(4):
        produce(plog, pbatch(i))
    with capture_logs() as events:
        plog.truncate_to(2)
    event = loaded(events)
    assert (event["snapshot_offset"], event["replayed_batches"]) == (-1, 2)
    assert last_batches(plog) == [(0, 0, 0, 0), (1, 1, 1, 1)]
    with pytest.raises(OutOfOrderSequenceError):
        produce(plog, pbatch(3))
    plog.close()


# ====================================================================== retention


def test_retention_deletes_snapshots_below_the_log_start_but_keeps_the_producers(
    tmp_path: Path,
) -> None:
    clock = FakeClock(NOW)
    overrides = {**ROLL_EVERY_BATCH, "retention.ms": "1000"}
    plog = open_partition(tmp_path, overrides=overrides, clock=clock)
    produce(plog, pbatch(0, producer_id=1))  # an idle producer: its only batch will expire
    for i in range(3):
        produce(plog, pbatch(i, producer_id=2))
    assert snapshot_offsets(plog.directory) == [1, 2, 3]
    clock.advance(10_000)
    assert apply_retention([plog], clock.now_ms) == 3
    assert plog.log_start_offset == 3
    assert snapshot_offsets(plog.directory) == [3]
    assert last_batches(plog, 1) == [(0, 0, 0, 0)]
    plog.flush(checkpoint=True)
    again, event = reopen(tmp_path, overrides)  # a crash: state from the snapshot at 3
    assert (event["snapshot_offset"], event["replayed_batches"]) == (3, 1)
    assert produce(again, pbatch(1, producer_id=1)) == 4  # producer 1 is still known
    again.close()
    plog.close()


def test_retention_writes_a_snapshot_when_none_would_be_left(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    overrides = {**ROLL_EVERY_BATCH, "retention.ms": "1000"}
    plog = open_partition(tmp_path, overrides=overrides, clock=clock)
    for i in range(3):
        produce(plog, pbatch(i))
    for offset in snapshot_offsets(plog.directory):  # e.g. written by a version without them
        snapshot_path(plog.directory, offset).unlink()
    clock.advance(10_000)
    assert apply_retention([plog], clock.now_ms) == 2
    assert snapshot_offsets(plog.directory) == [3]  # the state at the log end
    plog.flush(checkpoint=True)
    again, event = reopen(tmp_path, overrides)
    assert (event["snapshot_offset"], event["replayed_batches"]) == (3, 0)
    assert last_batches(again) == [(0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2)]
    again.close()
    plog.close()
