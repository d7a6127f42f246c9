"""PartitionLog with transactions: markers, the last stable offset, the aborted-transaction
index, read_committed reads, and the transaction state across restarts, crashes, damaged
indexes, truncation and follower appends."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from raftka.broker.log.cleaner import LogCleaner
from raftka.broker.log.partition_log import PartitionLog
from raftka.common.errors import InvalidProducerEpochError
from raftka.common.records import InvalidRecordError, build_batch, decode_batch, split_batches
from raftka.common.storage.files import txn_index_path
from raftka.common.storage.txn_index import AbortedTxn
from raftka.common.txn_errors import InvalidTxnStateError, TransactionCoordinatorFencedError
from tests.unit.broker.support import T0, open_partition

A, B, C = 4000, 5000, 6000
NOW = T0 + 5_000
ROLL_EVERY_BATCH = {"segment.bytes": "14"}


class Producer:
    """A transactional producer's batches for one partition: sequences and epoch."""

    def __init__(self, plog: PartitionLog, producer_id: int) -> None:
        self.plog = plog
        self.producer_id = producer_id
        self.epoch = 0
        self.sequence = 0

    def send(self, records: int = 1, *, transactional: bool = True) -> int:
        data = build_batch(
            [
                (T0, None, f"{self.producer_id}-{self.sequence + i}".encode(), ())
                for i in range(records)
            ],
            producer_id=self.producer_id,
            producer_epoch=self.epoch,
            base_sequence=self.sequence,
            transactional=transactional,
        )
        result = self.plog.append_as_leader(bytes(data), leader_epoch=1, now_ms=NOW)
        self.sequence += records
        return result.base_offset

    def end(self, committed: bool, coordinator_epoch: int = 0) -> int:
        """The coordinator's marker (TV2: the next epoch)."""
        self.epoch += 1
        self.sequence = 0
        return self.plog.append_marker(
            self.producer_id,
            self.epoch,
            committed,
            coordinator_epoch,
            leader_epoch=1,
            now_ms=NOW,
        ).base_offset


def unstable(plog: PartitionLog) -> int | None:
    """The first unstable offset (read through a call: no type narrowing between reads)."""
    return plog.first_unstable_offset


def reopen(path: Path, overrides: Mapping[str, str] | None = None) -> PartitionLog:
    return open_partition(path, overrides=overrides)


def state(plog: PartitionLog) -> tuple[dict[int, int], int, list[AbortedTxn]]:
    """Open transactions, LSO, and every aborted transaction of the log."""
    return (
        plog.producer_state.open_transactions,
        plog.last_stable_offset,
        plog.aborted_transactions(plog.log_start_offset, plog.log_end_offset),
    )


def build_history(plog: PartitionLog) -> None:
    """A committed, an aborted, and an open transaction, interleaved with others."""
    a, b, c = Producer(plog, A), Producer(plog, B), Producer(plog, C)
    a.send(2)  # 0-1
    b.send()  # 2
    a.end(committed=False)  # 3: aborts A (0..3); B still open at 2
    c.send()  # 4
    b.send()  # 5
    b.end(committed=True)  # 6: commits B (2..6)
    c.end(committed=False)  # 7: aborts C (4..7)
    a.send()  # 8: A's next transaction, open


EXPECTED_ABORTED = [AbortedTxn(A, 0, 3, 2), AbortedTxn(C, 4, 7, 8)]


# ====================================================================== markers and the LSO


def test_markers_close_transactions_and_the_lso_follows(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    assert unstable(plog) is None and plog.last_stable_offset == 0
    a, b = Producer(plog, A), Producer(plog, B)
    assert a.send(2) == 0
    assert unstable(plog) == 0 and plog.last_stable_offset == 0
    assert b.send() == 2
    assert a.end(committed=True) == 3
    assert unstable(plog) == 2 and plog.last_stable_offset == 2
    assert plog.high_watermark == 4
    assert b.end(committed=False) == 4
    assert unstable(plog) is None and plog.last_stable_offset == 5
    assert plog.aborted_transactions(0, 5) == [AbortedTxn(B, 2, 4, 5)]
    plog.close()


def test_the_lso_never_passes_the_high_watermark(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, hw_follows_log_end=False)
    Producer(plog, A).send(3)
    assert plog.last_stable_offset == 0  # the high watermark, below the open transaction
    plog.set_high_watermark(2)
    assert plog.last_stable_offset == 0
    Producer(plog, B).send()
    plog.set_high_watermark(4)
    assert plog.last_stable_offset == 0  # A still open at 0
    plog.close()


def test_interleaved_history_state(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    build_history(plog)
    assert state(plog) == ({A: 8}, 8, EXPECTED_ABORTED)
    plog.close()


def test_leader_checks_write_nothing(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    a = Producer(plog, A)
    a.send()
    end = plog.log_end_offset
    with pytest.raises(InvalidTxnStateError):
        a.send(transactional=False)
    with pytest.raises(InvalidRecordError, match="producer id"):
        plog.append_as_leader(
            bytes(build_batch([(T0, None, b"v", ())], transactional=True)),
            leader_epoch=1,
            now_ms=NOW,
        )
    a.end(committed=True, coordinator_epoch=5)  # A is in epoch 1 now
    end = plog.log_end_offset
    with pytest.raises(TransactionCoordinatorFencedError):
        plog.append_marker(A, 1, False, 4, leader_epoch=1, now_ms=NOW)
    with pytest.raises(InvalidProducerEpochError):
        plog.append_marker(A, 0, False, 5, leader_epoch=1, now_ms=NOW)
    a.epoch, a.sequence = 0, 1  # a late write of the finished transaction
    with pytest.raises(InvalidProducerEpochError):
        a.send()
    assert plog.log_end_offset == end
    # a retried marker for the same epoch is appended (harmless: nothing is open)
    plog.append_marker(A, 1, True, 5, leader_epoch=1, now_ms=NOW)
    assert plog.log_end_offset == end + 1 and unstable(plog) is None
    plog.close()


# ====================================================================== reads


def test_aborted_transactions_by_range(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=ROLL_EVERY_BATCH)  # a segment per batch
    build_history(plog)
    assert plog.segment_count == 8  # a segment per batch
    assert plog.aborted_transactions(0, 1) == [EXPECTED_ABORTED[0]]
    assert plog.aborted_transactions(3, 4) == [EXPECTED_ABORTED[0]]  # the marker itself
    assert plog.aborted_transactions(4, 5) == [EXPECTED_ABORTED[1]]
    assert plog.aborted_transactions(5, 7) == [EXPECTED_ABORTED[1]]  # C's data spans it
    assert plog.aborted_transactions(8, 9) == []
    assert plog.aborted_transactions(0, 9) == EXPECTED_ABORTED
    # each entry sits in the txnindex of its marker's segment
    assert txn_index_path(plog.directory, 3).stat().st_size == 34
    assert txn_index_path(plog.directory, 7).stat().st_size == 34
    assert txn_index_path(plog.directory, 0).stat().st_size == 0
    plog.close()


def test_read_committed_stops_at_the_lso_and_lists_aborted_transactions(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    build_history(plog)
    data = plog.read(0, 1 << 20)
    assert data.last_stable_offset == 8 and data.aborted == ()
    assert split_batches(data.records)[-1].header.base_offset == 8  # read_uncommitted: all
    committed = plog.read(0, 1 << 20, read_committed=True)
    assert split_batches(committed.records)[-1].header.last_offset == 7
    assert committed.aborted == tuple(EXPECTED_ABORTED)
    assert plog.read(8, 1 << 20, read_committed=True).records == b""
    plog.close()


# ====================================================================== restarts, recovery


def test_a_clean_restart_keeps_open_transactions_and_the_txnindex(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=ROLL_EVERY_BATCH)
    build_history(plog)
    before = state(plog)
    plog.close()
    again = reopen(tmp_path, ROLL_EVERY_BATCH)
    assert state(again) == before
    entry = again.producer_state.entry(B)
    assert entry is not None and (entry.epoch, entry.txn_first_offset) == (1, None)
    again.close()


@pytest.mark.parametrize("roll", [False, True])
def test_a_crash_rebuilds_open_transactions_and_the_txnindex(tmp_path: Path, roll: bool) -> None:
    overrides = ROLL_EVERY_BATCH if roll else None
    plog = open_partition(tmp_path, overrides=overrides)
    build_history(plog)
    before = state(plog)
    plog.flush()
    (plog.directory / "recovery-point").unlink(missing_ok=True)  # every segment is recovered
    again = reopen(tmp_path, overrides)  # the first one was never closed: a crash
    assert state(again) == before
    again.close()
    plog.close()


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_a_missing_or_damaged_txnindex_is_rebuilt_on_open(tmp_path: Path, damage: str) -> None:
    plog = open_partition(tmp_path, overrides=ROLL_EVERY_BATCH)
    build_history(plog)
    before = state(plog)
    plog.close()
    path = txn_index_path(tmp_path / "events-0", 7)
    if damage == "delete":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:-5])
    with capture_logs() as events:
        again = reopen(tmp_path, ROLL_EVERY_BATCH)
    rebuilt = [e["base_offset"] for e in events if e["event"] == "txn_index_rebuilt"]
    assert rebuilt == [7]
    assert state(again) == before
    assert path.stat().st_size == 34
    again.close()


def test_a_torn_tail_rebuilds_the_txnindex_without_the_lost_marker(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    build_history(plog)  # one segment; C's ABORT marker is at 7, A's open batch at 8
    plog.flush()
    log_file = plog.directory / f"{0:020d}.log"
    size = log_file.stat().st_size
    plog.close()
    # crash simulation: drop the clean-shutdown marker and tear the last batch (8) and marker 7
    (plog.directory / "clean-shutdown").unlink(missing_ok=True)
    (plog.directory / "recovery-point").unlink(missing_ok=True)
    last_two = sum(s.size for s in split_batches(log_file.read_bytes())[-2:])
    os.truncate(log_file, size - last_two + 10)
    again = reopen(tmp_path)
    assert again.log_end_offset == 7
    # C's transaction is open again (its marker was lost); A's new one never happened
    assert state(again) == ({C: 4}, 4, [EXPECTED_ABORTED[0]])
    again.close()


def test_snapshots_do_not_lose_open_transactions(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=ROLL_EVERY_BATCH)
    a, b = Producer(plog, A), Producer(plog, B)
    a.send()  # 0
    b.send()  # 1
    for _ in range(3):
        b.send()
    plog.flush()
    # crash after the rolls' snapshots: the state comes from a snapshot + replay
    again = reopen(tmp_path, ROLL_EVERY_BATCH)
    assert again.producer_state.open_transactions == {A: 0, B: 1}
    again.close()
    plog.close()


# ====================================================================== truncation, followers


def test_truncation_below_an_open_transactions_first_offset_forgets_it(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=ROLL_EVERY_BATCH, hw_follows_log_end=False)
    build_history(plog)
    plog.truncate_to(8)  # A's open transaction goes
    assert state(plog) == ({}, 0, EXPECTED_ABORTED)  # (the high watermark is 0)
    plog.truncate_to(5)  # B's commit and C's abort go: both open again
    assert plog.producer_state.open_transactions == {B: 2, C: 4}
    assert plog.aborted_transactions(0, 5) == [EXPECTED_ABORTED[0]]
    assert not txn_index_path(plog.directory, 7).exists()
    plog.set_high_watermark(5)
    assert plog.last_stable_offset == 2
    plog.close()


def test_a_follower_gets_the_same_transaction_state(tmp_path: Path) -> None:
    leader = open_partition(tmp_path / "leader", overrides=ROLL_EVERY_BATCH)
    follower = open_partition(tmp_path / "follower", overrides=ROLL_EVERY_BATCH)
    build_history(leader)
    offset = 0
    while offset < leader.log_end_offset:
        data = leader.read(offset, 1 << 20, max_offset=leader.log_end_offset).records
        follower.append_as_follower(data)
        offset = follower.log_end_offset
    assert state(follower) == state(leader)
    leader_files = sorted(p.name for p in leader.directory.glob("*.txnindex"))
    assert leader_files == sorted(p.name for p in follower.directory.glob("*.txnindex"))
    for name in leader_files:
        assert (leader.directory / name).read_bytes() == (follower.directory / name).read_bytes()
    leader.close()
    follower.close()


# ====================================================================== compaction


def test_the_cleaner_never_cleans_at_or_past_the_lso(tmp_path: Path) -> None:
    overrides = {
        "cleanup.policy": "compact",
        "segment.bytes": "14",
        "min.cleanable.dirty.ratio": "0.01",
    }
    plog = open_partition(tmp_path, overrides=overrides)
    a = Producer(plog, A)
    for i in range(4):  # plain keyed records, 0..3
        plog.append_as_leader(
            bytes(build_batch([(T0, b"k", f"v{i}".encode(), ())])), leader_epoch=1, now_ms=NOW
        )
    a.send()  # 4: an open transaction
    for i in range(4):  # 5..8
        plog.append_as_leader(
            bytes(build_batch([(T0, b"k", f"w{i}".encode(), ())])), leader_epoch=1, now_ms=NOW
        )
    assert plog.last_stable_offset == 4
    ((_plog, dirty),) = LogCleaner().candidates([plog], NOW)
    assert dirty.first_uncleanable == 4
    cleaned = LogCleaner().clean_once([plog])
    assert cleaned is not None and cleaned.result.map_end <= 4
    plog.close()


def test_cleaning_drops_aborted_records_and_keeps_markers(tmp_path: Path) -> None:
    overrides = {
        "cleanup.policy": "compact",
        "segment.bytes": "14",
        "min.cleanable.dirty.ratio": "0.01",
    }
    plog = open_partition(tmp_path, overrides=overrides)

    def plain(key: bytes, value: bytes) -> None:
        data = build_batch([(T0, key, value, ())])
        plog.append_as_leader(bytes(data), leader_epoch=1, now_ms=NOW)

    def txn(producer: Producer, key: bytes, value: bytes) -> None:
        data = build_batch(
            [(T0, key, value, ())],
            producer_id=producer.producer_id,
            producer_epoch=producer.epoch,
            base_sequence=producer.sequence,
            transactional=True,
        )
        plog.append_as_leader(bytes(data), leader_epoch=1, now_ms=NOW)
        producer.sequence += 1

    a, b = Producer(plog, A), Producer(plog, B)
    plain(b"k", b"committed-plain")  # 0
    txn(a, b"k", b"aborted")  # 1: would shadow offset 0 if it were mapped
    a.end(committed=False)  # 2
    txn(b, b"j", b"committed-txn")  # 3
    b.end(committed=True)  # 4
    for i in range(3):
        plain(b"other", f"o{i}".encode())  # 5..7
    assert plog.last_stable_offset == 8
    cleaned = LogCleaner().clean_once([plog])
    assert cleaned is not None and cleaned.result.completed
    data = plog.read(0, 1 << 24, max_offset=plog.log_end_offset)
    offset, kept, markers = 0, [], []
    while offset < plog.log_end_offset:
        records = plog.read(offset, 1 << 24).records
        for span in split_batches(records):
            if span.header.is_control:
                markers.append(span.header.base_offset)
            else:
                kept += [r.value for r in decode_batch(records, span.position).records]
            offset = span.header.next_offset
    assert data.records  # (the log is readable from 0)
    assert kept == [b"committed-plain", b"committed-txn", b"o1", b"o2"]  # 7 is active
    assert markers == [2, 4]
    assert plog.aborted_transactions(0, 8) == [AbortedTxn(A, 1, 2, 3)]
    plog.close()
