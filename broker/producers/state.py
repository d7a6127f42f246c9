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

Transactions (KIP-98, :mod:`raftka.common.records.control`): a producer's first
transactional batch opens a transaction on the partition at its base offset; a batch without
the transactional bit from a producer with an open transaction is refused
(InvalidTxnStateError). An end-transaction marker closes it (:meth:`ProducerStateTable.
record_marker`): its epoch becomes the producer's (a new epoch: sequences restart at 0) and
its coordinator epoch the producer's latest; a marker from an older producer epoch or an
older coordinator epoch is refused (:meth:`ProducerStateTable.check_marker`). The first
unstable offset is the first offset of the oldest open transaction.

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
from raftka.common.records import BatchHeader, Buffer
from raftka.common.records.batch import NO_PRODUCER_ID
from raftka.common.records.control import is_end_txn_marker, parse_end_txn_marker
from raftka.common.storage.txn_index import AbortedTxn
from raftka.common.txn_errors import InvalidTxnStateError, TransactionCoordinatorFencedError

NUM_BATCHES_TO_RETAIN = 5
"""Batches remembered per producer (Kafka's ``ProducerStateEntry.NUM_BATCHES_TO_RETAIN``):
as many as an idempotent producer may have in flight to one partition."""
INT32_MAX = 2**31 - 1
NO_COORDINATOR_EPOCH = -1


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
    """One producer id's state: its epoch, its last batches (oldest first; none after a
    marker started a new epoch), its open transaction's first offset on this partition
    (None when none is open) and the coordinator epoch of its latest marker."""

    producer_id: int
    epoch: int
    batches: deque[BatchMetadata] = field(
        default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN)
    )
    txn_first_offset: int | None = None
    coordinator_epoch: int = NO_COORDINATOR_EPOCH

    @property
    def last_seq(self) -> int | None:
        """The last sequence written in the current epoch (None: the next one is 0)."""
        return self.batches[-1].last_seq if self.batches else None

    @property
    def last_offset(self) -> int | None:
        return self.batches[-1].last_offset if self.batches else None

    def find_duplicate(self, first_seq: int, last_seq: int) -> BatchMetadata | None:
        for cached in self.batches:
            if cached.first_seq == first_seq and cached.last_seq == last_seq:
                return cached
        return None


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    """A transaction a marker closed on this partition."""

    producer_id: int
    first_offset: int
    last_offset: int
    """The marker's offset."""
    committed: bool
    last_stable_offset: int
    """The partition's first unstable offset once it completed (the marker offset + 1 when
    no other transaction is open), not bounded by the high watermark."""

    def aborted(self) -> AbortedTxn:
        return AbortedTxn(
            self.producer_id, self.first_offset, self.last_offset, self.last_stable_offset
        )


@dataclass(frozen=True, slots=True)
class DuplicateAppend:
    """A produce request whose batches were all written before: its original offsets."""

    first_offset: int
    last_offset: int
    timestamp: int
    """The stored timestamp of the last of those batches."""


class ProducerStateTable:
    """The producer entries of one partition replica, by producer id."""

    __slots__ = ("_entries", "_first_unstable", "_ongoing")

    def __init__(self, entries: Iterable[ProducerEntry] = ()) -> None:
        self._entries: dict[int, ProducerEntry] = {}
        self._ongoing: dict[int, int] = {}  # producer id -> first offset of its open txn
        for entry in entries:
            if entry.producer_id in self._entries:
                raise ValueError(f"producer id {entry.producer_id} is listed twice")
            if not entry.batches and entry.coordinator_epoch == NO_COORDINATOR_EPOCH:
                raise ValueError(f"producer id {entry.producer_id} has no batch and no marker")
            self._entries[entry.producer_id] = entry
            if entry.txn_first_offset is not None:
                self._ongoing[entry.producer_id] = entry.txn_first_offset
        self._first_unstable = min(self._ongoing.values(), default=None)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[ProducerEntry]:
        """The entries, by producer id."""
        return iter([self._entries[pid] for pid in sorted(self._entries)])

    def entry(self, producer_id: int) -> ProducerEntry | None:
        return self._entries.get(producer_id)

    def copy(self) -> ProducerStateTable:
        return ProducerStateTable(
            ProducerEntry(
                e.producer_id,
                e.epoch,
                deque(e.batches, maxlen=NUM_BATCHES_TO_RETAIN),
                e.txn_first_offset,
                e.coordinator_epoch,
            )
            for e in self._entries.values()
        )

    @property
    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction, or None when none is open. Kept
        as one value so that readers on other threads need no lock to read it."""
        return self._first_unstable

    @property
    def open_transactions(self) -> dict[int, int]:
        """Producer id -> first offset of each open transaction."""
        return dict(self._ongoing)

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
        pending: dict[int, tuple[int, int | None]] = {}
        in_txn: set[int] = set()  # producer ids whose transaction the request opens
        duplicates: list[BatchMetadata] = []
        for index, header in enumerate(headers):
            producer_id = header.producer_id
            if producer_id == NO_PRODUCER_ID:
                continue
            epoch, first = header.producer_epoch, header.base_sequence
            last = last_sequence(first, header.last_offset_delta)
            entry = self._entries.get(producer_id)
            if header.is_transactional:
                in_txn.add(producer_id)
            elif producer_id in in_txn or producer_id in self._ongoing:
                raise InvalidTxnStateError(
                    f"batch {index}: producer id {producer_id} has a transaction open on this "
                    "partition and sent a non-transactional batch; end the transaction first "
                    "(commit or abort); nothing was written"
                )
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
                if epoch > known_epoch or known_last is None:
                    if first != 0:
                        raise OutOfOrderSequenceError(
                            f"batch {index}: producer id {producer_id} starts its "
                            f"{'new ' if epoch > known_epoch else ''}epoch {epoch} at sequence "
                            f"{first}; a new epoch starts at 0; nothing "
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

    # ================================================================== markers

    def check_marker(self, producer_id: int, producer_epoch: int, coordinator_epoch: int) -> None:
        """Checks an end-transaction marker before a leader writes it: InvalidProducerEpochError
        when ``producer_epoch`` is older than the producer's, TransactionCoordinatorFencedError
        when ``coordinator_epoch`` is older than the one of its latest marker. A marker for a
        producer with no open transaction passes (a retrying coordinator's)."""
        entry = self._entries.get(producer_id)
        if entry is None:
            return
        if producer_epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"marker for producer id {producer_id} has epoch {producer_epoch}, older than "
                f"its epoch {entry.epoch} on this partition; nothing was written"
            )
        if coordinator_epoch < entry.coordinator_epoch:
            raise TransactionCoordinatorFencedError(
                f"marker for producer id {producer_id} comes from coordinator epoch "
                f"{coordinator_epoch}, older than epoch {entry.coordinator_epoch} of a marker "
                "this partition already took: a newer coordinator owns the transaction; "
                "nothing was written"
            )

    def record_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        coordinator_epoch: int,
        offset: int,
    ) -> CompletedTxn | None:
        """A stored marker at ``offset``: the producer takes its epoch (a new epoch starts
        its sequences at 0) and coordinator epoch; its open transaction, if any, completes."""
        entry = self._entries.get(producer_id)
        if entry is None:
            entry = self._entries[producer_id] = ProducerEntry(producer_id, producer_epoch)
        elif entry.epoch != producer_epoch:
            entry.epoch = producer_epoch
            entry.batches.clear()
        entry.coordinator_epoch = coordinator_epoch
        first = entry.txn_first_offset
        if first is None:
            return None
        entry.txn_first_offset = None
        del self._ongoing[producer_id]
        self._first_unstable = min(self._ongoing.values(), default=None)
        lso = offset + 1 if self._first_unstable is None else min(self._first_unstable, offset + 1)
        return CompletedTxn(producer_id, first, offset, committed, lso)

    # ================================================================== recording

    def record(
        self,
        producer_id: int,
        epoch: int,
        base_sequence: int,
        last_offset_delta: int,
        base_offset: int,
        timestamp: int,
        *,
        transactional: bool = False,
    ) -> None:
        """Remembers one stored batch of ``producer_id``. A different epoch (newer, or on a
        follower whatever the leader wrote) replaces the entry's batches. A transactional
        batch opens the producer's transaction at ``base_offset`` unless one is open."""
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
        if transactional and entry.txn_first_offset is None:
            entry.txn_first_offset = base_offset
            self._ongoing[producer_id] = base_offset
            if self._first_unstable is None or base_offset < self._first_unstable:
                self._first_unstable = base_offset

    def record_appended(
        self, headers: Sequence[BatchHeader], base_offset: int, timestamp: int | None
    ) -> None:
        """A leader's append of ``headers`` (batches as produced, never markers) at
        consecutive offsets from ``base_offset``; ``timestamp`` is the append time on
        LogAppendTime topics (None: each batch's own max timestamp)."""
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
                    transactional=h.is_transactional,
                )
            offset += h.last_offset_delta + 1

    def record_stored(
        self, header: BatchHeader, batch: Buffer | None = None, position: int = 0
    ) -> CompletedTxn | None:
        """One batch as stored in a log at ``position`` of ``batch`` (a follower's append,
        or replay on load), markers included (their record is read from ``batch``, required
        then); returns the transaction a marker completed."""
        if header.producer_id == NO_PRODUCER_ID:
            return None
        if is_end_txn_marker(header):
            if batch is None:
                raise ValueError(f"the marker at offset {header.base_offset} needs its bytes")
            marker = parse_end_txn_marker(batch, position)
            return self.record_marker(
                header.producer_id,
                header.producer_epoch,
                marker.committed,
                marker.coordinator_epoch,
                header.base_offset,
            )
        if header.is_control:
            return None  # another control type: no producer state
        self.record(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            header.last_offset_delta,
            header.base_offset,
            header.max_timestamp,
            transactional=header.is_transactional,
        )
        return None

    def __repr__(self) -> str:
        return (
            f"ProducerStateTable(producers={len(self._entries)}, "
            f"open_transactions={len(self._ongoing)})"
        )
