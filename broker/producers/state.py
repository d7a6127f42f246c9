"""Idempotent-producer state of one partition (Kafka's ``ProducerStateManager`` and
``ProducerAppendInfo``, KIP-98's idempotence rules). Sans-I/O: no files, no clock, no locks.

For each producer id the table keeps its epoch and the metadata of its last
:data:`NUM_BATCHES_TO_RETAIN` batches (first and last sequence, first and last offset,
timestamp). A partition leader checks a produce request's batches against it before writing
(:meth:`ProducerStateTable.check_append`):

- an epoch older than the known one: InvalidProducerEpochError (the producer was fenced);
- a batch equal, in epoch and first and last sequence, to one of the cached batches: a retry
  of a batch already written: not written again, and its original offsets are returned;
- otherwise, in the known epoch, the first sequence must follow the last one (int32, wrapping
  from 2^31 - 1 to 0); a newer epoch, and a producer id the partition does not know, must
  start at sequence 0: OutOfOrderSequenceError otherwise.

Every replica then records the batches it stored (:meth:`ProducerStateTable.record`): the
leader after writing, followers as they append the leader's batches (unchecked: the log is
the truth), and a replica rebuilding its state by replaying its log. Only batch headers are
read; the work is O(1) per batch, never per record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from raftka.common.errors import (
    DuplicateSequenceError,
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
)
from raftka.common.records import BatchHeader
from raftka.common.records.batch import NO_PRODUCER_ID

NUM_BATCHES_TO_RETAIN = 5
"""Batches remembered per producer (Kafka's ``ProducerStateEntry.NUM_BATCHES_TO_RETAIN``):
as many as an idempotent producer may have in flight to one partition."""
INT32_MAX = 2**31 - 1


def next_sequence(sequence: int) -> int:
    """The sequence number after ``sequence`` (int32 wrapping to 0)."""
    return 0 if sequence == INT32_MAX else sequence + 1


def last_sequence(base_sequence: int, last_offset_delta: int) -> int:
    """A batch's last sequence: its base sequence plus its last offset delta, wrapping past
    2^31 - 1 to 0 (Kafka's ``DefaultRecordBatch.incrementSequence``)."""
    last = base_sequence + last_offset_delta
    return last - INT32_MAX - 1 if last > INT32_MAX else last


class BatchMetadata(NamedTuple):
    """What is remembered of one appended batch."""

    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int
    """The batch's max timestamp as stored (the append time on LogAppendTime topics)."""


@dataclass(slots=True)
class ProducerEntry:
    """One producer id's state: its epoch and its last batches, oldest first."""

    producer_id: int
    epoch: int
    batches: deque[BatchMetadata] = field(
        default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN)
    )

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset

    def find_duplicate(self, first_seq: int, last_seq: int) -> BatchMetadata | None:
        for cached in self.batches:
            if cached.first_seq == first_seq and cached.last_seq == last_seq:
                return cached
        return None


@dataclass(frozen=True, slots=True)
class DuplicateAppend:
    """A produce request whose batches were all written before: its original offsets."""

    first_offset: int
    last_offset: int
    timestamp: int
    """The stored timestamp of the last of those batches."""


class ProducerStateTable:
    """The producer entries of one partition replica, by producer id."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[ProducerEntry] = ()) -> None:
        self._entries: dict[int, ProducerEntry] = {}
        for entry in entries:
            if entry.producer_id in self._entries:
                raise ValueError(f"producer id {entry.producer_id} is listed twice")
            if not entry.batches:
                raise ValueError(f"producer id {entry.producer_id} has no batch")
            self._entries[entry.producer_id] = entry

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[ProducerEntry]:
        """The entries, by producer id."""
        return iter([self._entries[pid] for pid in sorted(self._entries)])

    def entry(self, producer_id: int) -> ProducerEntry | None:
        return self._entries.get(producer_id)

    def copy(self) -> ProducerStateTable:
        return ProducerStateTable(
            ProducerEntry(e.producer_id, e.epoch, deque(e.batches, maxlen=NUM_BATCHES_TO_RETAIN))
            for e in self._entries.values()
        )

    # ================================================================== the leader's check

    def check_append(self, headers: Sequence[BatchHeader]) -> DuplicateAppend | None:
        """Checks a produce request's batches (in order, as they would be appended) and
        changes nothing. Returns None when they may be written, or the original offsets when
        every batch is a retry of one already written (nothing is to be written then).

        Raises InvalidProducerEpochError, OutOfOrderSequenceError (see the module
        docstring), or DuplicateSequenceError when retries and new batches are mixed in one
        request. Batches without a producer id are not checked.
        """
        # producer id -> (epoch, last sequence) after the request's earlier batches
        pending: dict[int, tuple[int, int]] = {}
        duplicates: list[BatchMetadata] = []
        for index, header in enumerate(headers):
            producer_id = header.producer_id
            if producer_id == NO_PRODUCER_ID:
                continue
            epoch, first = header.producer_epoch, header.base_sequence
            last = last_sequence(first, header.last_offset_delta)
            entry = self._entries.get(producer_id)
            known = pending.get(producer_id)
            if known is None and entry is not None:
                known = (entry.epoch, entry.last_seq)
            if known is None:
                if first != 0:
                    raise OutOfOrderSequenceError(
                        f"batch {index}: producer id {producer_id} is unknown to this partition "
                        f"and its first batch starts at sequence {first}, not 0 (its earlier "
                        "batches are not in the log: removed by retention or truncation); "
                        "nothing was written. Get a new producer id (InitProducerId)"
                    )
            else:
                known_epoch, known_last = known
                if epoch < known_epoch:
                    raise InvalidProducerEpochError(
                        f"batch {index}: producer id {producer_id} has epoch {epoch}, older "
                        f"than its epoch {known_epoch} on this partition: a newer producer with "
                        "this id fenced it; nothing was written"
                    )
                if epoch > known_epoch:
                    if first != 0:
                        raise OutOfOrderSequenceError(
                            f"batch {index}: producer id {producer_id} starts its new epoch "
                            f"{epoch} at sequence {first}; a new epoch starts at 0; nothing "
                            "was written"
                        )
                else:
                    if producer_id not in pending and entry is not None:
                        duplicate = entry.find_duplicate(first, last)
                        if duplicate is not None:
                            duplicates.append(duplicate)
                            continue
                    expected = next_sequence(known_last)
                    if first != expected:
                        raise OutOfOrderSequenceError(
                            f"batch {index}: producer id {producer_id} (epoch {epoch}) sent "
                            f"sequence {first}..{last}, but the next sequence on this "
                            f"partition is {expected}; nothing was written"
                        )
            pending[producer_id] = (epoch, last)
        if not duplicates:
            return None
        if len(duplicates) != len(headers):
            raise DuplicateSequenceError(
                f"{len(duplicates)} of the request's {len(headers)} batches were already "
                "written and the others are new: retry a request as it was first sent; "
                "nothing was written"
            )
        return DuplicateAppend(
            duplicates[0].first_offset, duplicates[-1].last_offset, duplicates[-1].timestamp
        )

    # ================================================================== recording

    def record(
        self,
        producer_id: int,
        epoch: int,
        base_sequence: int,
        last_offset_delta: int,
        base_offset: int,
        timestamp: int,
    ) -> None:
        """Remembers one stored batch of ``producer_id``. A different epoch (newer, or on a
        follower whatever the leader wrote) replaces the entry's batches."""
        entry = self._entries.get(producer_id)
        if entry is None:
            entry = self._entries[producer_id] = ProducerEntry(producer_id, epoch)
        elif entry.epoch != epoch:
            entry.epoch = epoch
            entry.batches.clear()
        entry.batches.append(
            BatchMetadata(
                base_sequence,
                last_sequence(base_sequence, last_offset_delta),
                base_offset,
                base_offset + last_offset_delta,
                timestamp,
            )
        )

    def record_appended(
        self, headers: Sequence[BatchHeader], base_offset: int, timestamp: int | None
    ) -> None:
        """A leader's append of ``headers`` (batches as produced) at consecutive offsets
        from ``base_offset``; ``timestamp`` is the append time on LogAppendTime topics (None:
        each batch's own max timestamp)."""
        offset = base_offset
        for h in headers:
            if h.producer_id != NO_PRODUCER_ID:
                stamp = h.max_timestamp if timestamp is None else timestamp
                self.record(
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence,
                    h.last_offset_delta,
                    offset,
                    stamp,
                )
            offset += h.last_offset_delta + 1

    def record_stored(self, header: BatchHeader) -> None:
        """One batch as stored in a log (a follower's append, or replay on load)."""
        if header.producer_id != NO_PRODUCER_ID:
            self.record(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.last_offset_delta,
                header.base_offset,
                header.max_timestamp,
            )

    def __repr__(self) -> str:
        return f"ProducerStateTable(producers={len(self._entries)})"
