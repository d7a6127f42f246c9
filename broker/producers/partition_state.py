"""The producer state of one partition replica, kept in step with its log and made durable
by snapshot files (:mod:`raftka.broker.producers.snapshots`), as Kafka does:

- **open**: snapshots past the log end are deleted (their batches did not survive a crash);
  the newest readable snapshot at or below the log end is loaded and the batches after it
  are replayed (headers only), or every batch from the log start when there is none. It must
  know the completed transactions whose marker is at or above the recovered high watermark
  (they stay unstable: :mod:`raftka.broker.producers.unreplicated`): one written when the
  high watermark was above the recovered one (a checkpoint older than the snapshot) does
  not, and an older one is used;
- **segment roll**: the state as of the new segment's base offset is written before the
  batches that open the segment are recorded, so a crash replays at most one segment;
- **clean shutdown**: the state at the log end is written, so the next open replays nothing;
- **truncation**: snapshots past the new end go first, then the state is rebuilt from the
  newest snapshot at or below it (as on open); a full truncation (a follower restarting at
  the leader's log start) forgets everything;
- **transactions**: markers close transactions like any stored batch; an ABORT marker adds
  its transaction to the ``.txnindex`` of the segment holding it (leader and follower
  appends alike), and the replay on open rebuilds the indexes the log could not trust
  (:mod:`raftka.broker.producers.txn_rebuild`);
- **retention**: once segments are deleted, snapshots below the new log start offset go
  (after writing one at the log end if none would be left at or above the log start:
  producer entries outlive the segments that hold their batches, as in Kafka since
  KIP-360).

A snapshot that cannot be written is logged and skipped (the next open replays more); one
that cannot be read is logged, deleted, and an older one (or a full replay) used instead.
Not thread-safe: :class:`~raftka.broker.log.partition_log.PartitionLog` calls it under its write
lock, and from its I/O threads only (every method may touch the disk).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import structlog

from raftka.broker.producers.snapshots import (
    delete_snapshots,
    load_latest_snapshot,
    snapshot_offsets,
    write_snapshot,
)
from raftka.broker.producers.state import CompletedTxn, DuplicateAppend, ProducerStateTable
from raftka.broker.producers.txn_rebuild import TxnIndexRebuild
from raftka.common.records import BatchHeader, CheckedBatches, is_end_txn_marker
from raftka.common.storage import SegmentedLog
from raftka.common.storage.results import AppendInfo

log = structlog.get_logger(__name__)


class PartitionProducerState:
    """One replica's :class:`ProducerStateTable` and its snapshot files."""

    def __init__(self, directory: Path, table: ProducerStateTable) -> None:
        """Use :meth:`load`."""
        self._dir = directory
        self._table = table
        self._saved_at: int | None = None  # a snapshot on disk holds the state at this log end

    @classmethod
    def load(
        cls, directory: Path, segmented_log: SegmentedLog, high_watermark: int
    ) -> PartitionProducerState:
        """The state of the (just opened and recovered) log in ``directory`` whose high
        watermark is ``high_watermark``."""
        end = segmented_log.log_end_offset
        stray = delete_snapshots(directory, lambda offset: offset > end)
        if stray:
            log.info(
                "producer_snapshots_past_log_end_deleted", directory=str(directory), count=stray
            )
        state = cls(directory, ProducerStateTable())
        state._rebuild(segmented_log, high_watermark, reason="open")
        return state

    @property
    def table(self) -> ProducerStateTable:
        return self._table

    # ================================================================== appends

    def check_leader_append(self, headers: Sequence[BatchHeader]) -> DuplicateAppend | None:
        """See :meth:`ProducerStateTable.check_append`."""
        return self._table.check_append(headers)

    def on_leader_append(
        self,
        info: AppendInfo,
        segmented_log: SegmentedLog,
        headers: Sequence[BatchHeader],
        append_time: int | None,
    ) -> None:
        """After a leader append: ``headers`` are its batches (empty when none carries a
        producer id), ``append_time`` the LogAppendTime stamped into them, if any."""
        self._snapshot_at_roll(info, segmented_log)
        if headers:
            self._table.record_appended(headers, info.base_offset, append_time)

    def on_follower_append(
        self, info: AppendInfo, segmented_log: SegmentedLog, checked: CheckedBatches
    ) -> None:
        """After a follower appended the leader's batches (recorded as they are: no check),
        markers included."""
        self._snapshot_at_roll(info, segmented_log)
        table = self._table
        for span in checked.spans:
            done = table.record_stored(span.header, checked.data, span.position)
            if done is not None:
                _index_if_aborted(done, segmented_log)

    def check_marker(self, producer_id: int, producer_epoch: int, coordinator_epoch: int) -> None:
        """See :meth:`ProducerStateTable.check_marker`."""
        self._table.check_marker(producer_id, producer_epoch, coordinator_epoch)

    def on_marker_append(
        self,
        info: AppendInfo,
        segmented_log: SegmentedLog,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        coordinator_epoch: int,
    ) -> CompletedTxn | None:
        """After a leader appended an end-transaction marker (at ``info.base_offset``)."""
        self._snapshot_at_roll(info, segmented_log)
        done = self._table.record_marker(
            producer_id, producer_epoch, committed, coordinator_epoch, info.base_offset
        )
        if done is not None:
            _index_if_aborted(done, segmented_log)
        return done

    def _snapshot_at_roll(self, info: AppendInfo, segmented_log: SegmentedLog) -> None:
        """An append that opens a segment: snapshot the state as of its base offset (the
        state before the append). Nothing to remember at an empty log's start."""
        if info.position != 0:
            return
        if info.base_offset == segmented_log.log_start_offset and not len(self._table):
            return
        self.take_snapshot(info.base_offset, segmented_log)

    # ================================================================== snapshots

    def take_snapshot(self, offset: int, segmented_log: SegmentedLog) -> bool:
        """Writes the current state (which must be the state at ``offset``) as the snapshot
        at ``offset``, and deletes the snapshots between the active segment's base offset
        and ``offset`` (superseded: one per segment base, plus the newest, is kept). A
        failure is logged; returns whether the snapshot was written."""
        try:
            write_snapshot(self._dir, offset, self._table)
            self._saved_at = offset
            base = segmented_log.segment_base_offsets[-1]
            delete_snapshots(self._dir, lambda o: base < o < offset)
        except OSError as exc:
            log.warning(
                "producer_snapshot_write_failed",
                directory=str(self._dir),
                offset=offset,
                error=str(exc),
            )
            return False
        return True

    def on_close(self, segmented_log: SegmentedLog) -> None:
        """A clean shutdown: the state at the log end, so that the next open replays nothing
        (skipped when the snapshot on disk already holds it: nothing was written since)."""
        end = segmented_log.log_end_offset
        if self._saved_at != end:
            self.take_snapshot(end, segmented_log)

    # ================================================================== truncation, retention

    def before_truncation(self, new_end: int) -> None:
        """Before the log is cut to end at ``new_end``: its snapshots past ``new_end`` describe
        batches about to go, and must not outlive them if the truncation is interrupted."""
        delete_snapshots(self._dir, lambda offset: offset > new_end)
        self._saved_at = None

    def after_truncation(self, segmented_log: SegmentedLog, high_watermark: int) -> None:
        """The log was truncated: rebuild from the newest snapshot at or below its end and
        ``high_watermark`` (the high watermark it will have)."""
        self._rebuild(segmented_log, high_watermark, reason="truncation")

    def reset(self, high_watermark: int) -> None:
        """The log was emptied (restarted at another offset, where the high watermark now
        is): forget every producer."""
        delete_snapshots(self._dir, lambda _offset: True)
        self._table = ProducerStateTable()
        self._table.on_high_watermark(high_watermark)
        self._saved_at = None

    def on_log_start_advanced(self, segmented_log: SegmentedLog) -> None:
        """Retention deleted segments: delete the snapshots below the new log start offset,
        keeping one at or above it (written now, at the log end, if there is none)."""
        start = segmented_log.log_start_offset
        none_left = all(offset < start for offset in snapshot_offsets(self._dir))
        if none_left and not self.take_snapshot(segmented_log.log_end_offset, segmented_log):
            return  # keep the old ones: a replay from the log start would forget more
        delete_snapshots(self._dir, lambda offset: offset < start)

    # ================================================================== rebuilding

    def _rebuild(self, segmented_log: SegmentedLog, high_watermark: int, *, reason: str) -> None:
        start, end = segmented_log.log_start_offset, segmented_log.log_end_offset
        txn_indexes = TxnIndexRebuild(segmented_log)
        stale_from = txn_indexes.replay_from
        at_most = end if stale_from is None else min(end, stale_from)
        found = load_latest_snapshot(
            self._dir,
            at_most=at_most,
            high_watermark=high_watermark,
            markers_between=lambda lo, hi: _has_marker(segmented_log, lo, hi),
        )
        snapshot_offset, table = found if found is not None else (None, ProducerStateTable())
        table.on_high_watermark(high_watermark)  # markers below it complete for good
        replay_from = start if snapshot_offset is None else max(snapshot_offset, start)
        replayed = 0
        if replay_from < end:
            for base_offset, _last, view in segmented_log.iter_batches(replay_from):
                if base_offset >= replay_from:
                    done = table.record_stored(BatchHeader.parse(view), view)
                    if done is not None:
                        txn_indexes.completed(done)
                    replayed += 1
        txn_indexes.finish()
        self._table = table
        self._saved_at = end if snapshot_offset == end else None
        # An empty log (a new partition; a broker creates thousands at once) is not news.
        quiet = replayed == 0 and snapshot_offset is None and not len(table)
        (log.debug if quiet else log.info)(
            "producer_state_loaded",
            directory=str(self._dir),
            reason=reason,
            snapshot_offset=-1 if snapshot_offset is None else snapshot_offset,
            replayed_batches=replayed,
            producers=len(table),
            open_transactions=len(table.open_transactions),
            unreplicated_transactions=len(table.unreplicated_transactions),
            high_watermark=high_watermark,
        )


def _has_marker(segmented_log: SegmentedLog, lo: int, hi: int) -> bool:
    """Whether an end-transaction marker starts in [``lo``, ``hi``) (a header scan: a
    snapshot taken when the high watermark was ahead of the recovered one forgot the markers
    below its high watermark; it is still right unless one of them lies in that gap, as after
    a kill -9 before the high-watermark checkpoint caught up, usually with none)."""
    if lo >= hi or lo >= segmented_log.log_end_offset:
        return False
    for base_offset, _last, view in segmented_log.iter_batches(
        max(lo, segmented_log.log_start_offset)
    ):
        if base_offset >= hi:
            return False
        if base_offset >= lo and is_end_txn_marker(BatchHeader.parse(view)):
            return True
    return False


def _index_if_aborted(txn: CompletedTxn, segmented_log: SegmentedLog) -> None:
    """An ABORT marker just appended: its transaction goes into the ``.txnindex`` of the
    segment that holds the marker (the active one, under the partition's write lock)."""
    if txn.committed:
        return
    base, index = segmented_log.txn_indexes()[-1]
    if base > txn.last_offset:  # cannot happen under the write lock: the append rolled first
        raise AssertionError(f"marker at {txn.last_offset} is below the active segment {base}")
    index.append(txn.aborted())
