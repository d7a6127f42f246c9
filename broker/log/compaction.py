"""One partition's side of log compaction: its cleaner checkpoint and a cleaning pass.

The **cleaner checkpoint** is a file per partition, ``cleaner-offset-checkpoint`` in the
partition directory (Kafka keeps one per log directory; one per partition goes with the
partition when it is deleted or moved). It holds the first dirty offset: every offset below
it has been cleaned. Missing, below the log start or past the log end, it reads as the log
start. A truncation below it brings it down to the new log end (re-appended offsets are dirty).

A pass (:meth:`PartitionCompactor.clean`) runs
:func:`~raftka.common.storage.cleaner.clean_log` on the cleaner's thread: the old segments are
read and the cleaned ones written without any lock; only each swap takes the partition's write
lock (so no append, truncation or producer-state rebuild runs during it). A batch that loses
every record stays as a header-only batch when it is the last batch of a producer id in the
producer state as the pass began (Kafka's RETAIN_EMPTY): a restart's replay then still finds
the producer's epoch and sequence. The batches of aborted transactions (from the
``.txnindex`` files) go, their markers stay; the cleaner never cleans at or past the last
stable offset (:mod:`raftka.broker.log.cleaner`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import structlog

from raftka.broker.producers.partition_state import PartitionProducerState
from raftka.common.files import atomic_write
from raftka.common.ids import TopicPartition
from raftka.common.records import BatchHeader
from raftka.common.storage import SegmentedLog
from raftka.common.storage.cleaned_segment import Progress
from raftka.common.storage.cleaner import DEFAULT_MAX_KEYS, CleanResult, clean_log
from raftka.common.storage.compaction import CleaningRules, aborted_batches
from raftka.common.storage.segment import LogSegment

log = structlog.get_logger(__name__)

CLEANER_CHECKPOINT_FILE = "cleaner-offset-checkpoint"
_VERSION = 0


class PartitionCompactor:
    """The cleaner checkpoint and cleaning passes of one partition log."""

    def __init__(
        self,
        topic_partition: TopicPartition,
        segmented_log: SegmentedLog,
        write_lock: threading.Lock,
        producers: PartitionProducerState,
    ) -> None:
        self._tp = topic_partition
        self._log = segmented_log
        self._write_lock = write_lock
        self._producers = producers
        self._path = segmented_log.directory / CLEANER_CHECKPOINT_FILE

    # ------------------------------------------------------------------ checkpoint

    def _read_checkpoint(self) -> int | None:
        try:
            lines = self._path.read_text().split()
        except FileNotFoundError:
            return None
        if len(lines) != 2 or lines[0] != str(_VERSION) or not lines[1].isdigit():
            log.warning("cleaner_checkpoint_unreadable", path=str(self._path), content=lines[:3])
            return None
        return int(lines[1])

    def _write_checkpoint(self, offset: int) -> None:
        atomic_write(self._path, f"{_VERSION}\n{offset}\n".encode())

    @property
    def first_dirty_offset(self) -> int:
        """Where the uncleaned part of the log begins (see the module doc)."""
        start, end = self._log.log_start_offset, self._log.log_end_offset
        stored = self._read_checkpoint()
        if stored is None or stored < start or stored > end:
            return start
        return stored

    def after_truncation(self) -> None:
        """Brings the checkpoint down to the log end after a truncation below it. Called
        under the partition's write lock."""
        stored = self._read_checkpoint()
        end = self._log.log_end_offset
        if stored is not None and stored > end:
            self._write_checkpoint(end)

    # ------------------------------------------------------------------ cleaning

    def clean(
        self,
        first_dirty: int,
        end_offset: int,
        *,
        now_ms: int,
        delete_retention_ms: int,
        progress: Progress,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> CleanResult | None:
        """One pass over [first_dirty, end_offset) (see the module doc); the checkpoint
        moves to where the pass's map ended when it completed."""
        with self._write_lock:
            retained = frozenset((e.producer_id, e.last_offset) for e in self._producers.table)
            aborted = aborted_batches(
                e for _base, index in self._log.txn_indexes() for e in index.entries
            )

        def retain_empty(header: BatchHeader) -> bool:
            return (header.producer_id, header.last_offset) in retained

        def swap(cleaned: LogSegment, old: Sequence[LogSegment], generation: int) -> int | None:
            with self._write_lock:
                return self._log.replace_segments(cleaned, old, generation)

        result = clean_log(
            self._log,
            first_dirty=first_dirty,
            end_offset=end_offset,
            rules=CleaningRules(now_ms, delete_retention_ms, retain_empty, aborted),
            max_keys=max_keys,
            progress=progress,
            swap=swap,
        )
        if result is not None and result.completed:
            with self._write_lock:
                if result.map_end <= self._log.log_end_offset:
                    self._write_checkpoint(result.map_end)
        return result
