"""The idempotent-producer state machine (sans-I/O): duplicates, sequence gaps and wrap-around,
fencing, new epochs, unknown producers, and what replicas record."""

from __future__ import annotations

import pytest

from raftka.broker.producers.state import (
    INT32_MAX,
    NUM_BATCHES_TO_RETAIN,
    BatchMetadata,
    DuplicateAppend,
    ProducerStateTable,
    last_sequence,
    next_sequence,
)
from raftka.common.errors import (
    DuplicateSequenceError,
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
)
from raftka.common.records import BatchHeader
from raftka.common.records.batch import MAGIC

PID = 1000
T = 1_700_000_000_000


def header(
    base_sequence: int,
    records: int = 1,
    *,
    producer_id: int = PID,
    epoch: int = 0,
    base_offset: int = 0,
    max_timestamp: int = T,
) -> BatchHeader:
    """A batch header as the leader sees it (only the fields producer state reads matter)."""
    return BatchHeader(
        base_offset=base_offset,
        batch_length=0,
        partition_leader_epoch=-1,
        magic=MAGIC,
        crc=0,
        attributes=0,
        last_offset_delta=records - 1,
        base_timestamp=max_timestamp,
        max_timestamp=max_timestamp,
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=base_sequence,
        records_count=records,
    )


class Leader:
    """A leader's log as far as producer state goes: check, then append at the log end."""

    def __init__(self) -> None:
        self.table = ProducerStateTable()
        self.log_end = 0

    def produce(self, *headers: BatchHeader) -> int:
        """Returns the base offset the request gets (original offset for a duplicate)."""
        duplicate = self.table.check_append(headers)
        if duplicate is not None:
            return duplicate.first_offset
        base = self.log_end
        self.table.record_appended(headers, base, None)
        self.log_end += sum(h.last_offset_delta + 1 for h in headers)
        return base


def test_sequence_helpers_wrap_at_int32_max() -> None:
    assert next_sequence(0) == 1
    assert next_sequence(INT32_MAX - 1) == INT32_MAX
    assert next_sequence(INT32_MAX) == 0
    assert last_sequence(10, 4) == 14
    assert last_sequence(INT32_MAX, 0) == INT32_MAX
    assert last_sequence(INT32_MAX - 1, 2) == 0
    assert last_sequence(INT32_MAX - 2, 9) == 6


def test_a_new_producer_starts_at_sequence_zero_and_batches_follow_on() -> None:
    leader = Leader()
    assert leader.produce(header(0, 3)) == 0  # sequences 0..2
    assert leader.produce(header(3, 2)) == 3  # 3..4
    assert leader.produce(header(5)) == 5
    entry = leader.table.entry(PID)
    assert entry is not None and entry.epoch == 0 and entry.last_seq == 5
    assert list(entry.batches) == [
        BatchMetadata(0, 2, 0, 2, T),
        BatchMetadata(3, 4, 3, 4, T),
        BatchMetadata(5, 5, 5, 5, T),
    ]


@pytest.mark.parametrize("age", range(NUM_BATCHES_TO_RETAIN))
def test_each_of_the_last_five_batches_is_a_duplicate(age: int) -> None:
    leader = Leader()
    offsets = [leader.produce(header(2 * i, 2)) for i in range(NUM_BATCHES_TO_RETAIN + 2)]
    retried = NUM_BATCHES_TO_RETAIN + 1 - age  # 0 = the newest
    before = leader.log_end
    duplicate = leader.table.check_append([header(2 * retried, 2)])
    assert duplicate == DuplicateAppend(offsets[retried], offsets[retried] + 1, T)
    assert leader.produce(header(2 * retried, 2)) == offsets[retried]
    assert leader.log_end == before  # nothing appended
    entry = leader.table.entry(PID)
    assert entry is not None and entry.last_seq == 2 * (NUM_BATCHES_TO_RETAIN + 2) - 1


def test_the_sixth_oldest_batch_is_not_recognised() -> None:
    leader = Leader()
    for i in range(NUM_BATCHES_TO_RETAIN + 1):
        leader.produce(header(i))
    with pytest.raises(OutOfOrderSequenceError, match="next sequence on this partition is 6"):
        leader.produce(header(0))  # evicted: a stale sequence, not a duplicate
    assert leader.log_end == NUM_BATCHES_TO_RETAIN + 1


def test_a_duplicate_must_match_both_ends_of_a_cached_batch() -> None:
    leader = Leader()
    leader.produce(header(0, 3))  # 0..2
    with pytest.raises(OutOfOrderSequenceError):
        leader.produce(header(0, 2))  # 0..1: overlaps, but is not the same batch


def test_a_sequence_gap_is_refused_and_changes_nothing() -> None:
    leader = Leader()
    leader.produce(header(0, 2))
    with pytest.raises(
        OutOfOrderSequenceError, match=r"sent sequence 3\.\.3.*next sequence .* is 2"
    ):
        leader.produce(header(3))
    assert leader.log_end == 2
    entry = leader.table.entry(PID)
    assert entry is not None and entry.last_seq == 1
    assert leader.produce(header(2)) == 2  # the missing batch is still welcome


def test_sequences_wrap_around_to_zero() -> None:
    leader = Leader()
    leader.table.record(PID, 0, INT32_MAX - 2, 0, 0, T)  # a producer that has sent a lot
    leader.log_end = 1
    assert leader.produce(header(INT32_MAX - 1, 3)) == 1  # INT32_MAX-1, INT32_MAX, 0
    entry = leader.table.entry(PID)
    assert entry is not None and entry.last_seq == 0
    assert leader.produce(header(1)) == 4
    # the wrapped batch is recognised as a duplicate by its (first, last) sequences
    assert leader.produce(header(INT32_MAX - 1, 3)) == 1
    with pytest.raises(OutOfOrderSequenceError):
        leader.produce(header(INT32_MAX, 1))  # not next after 1


def test_an_older_epoch_is_fenced() -> None:
    leader = Leader()
    leader.produce(header(0, epoch=3))
    with pytest.raises(InvalidProducerEpochError, match="epoch 2, older than its epoch 3"):
        leader.produce(header(1, epoch=2))
    with pytest.raises(InvalidProducerEpochError):
        leader.produce(header(0, epoch=2))  # not even a duplicate of an older epoch's batch
    assert leader.log_end == 1


def test_a_new_epoch_starts_at_zero_and_forgets_the_old_batches() -> None:
    leader = Leader()
    leader.produce(header(0, 2, epoch=0))
    leader.produce(header(2, 2, epoch=0))
    with pytest.raises(OutOfOrderSequenceError, match="new epoch 1 at sequence 4"):
        leader.produce(header(4, epoch=1))
    assert leader.produce(header(0, epoch=1)) == 4
    entry = leader.table.entry(PID)
    assert entry is not None and entry.epoch == 1
    assert list(entry.batches) == [BatchMetadata(0, 0, 4, 4, T)]
    # the old epoch is fenced now, its batches included
    with pytest.raises(InvalidProducerEpochError):
        leader.produce(header(2, 2, epoch=0))


def test_an_unknown_producer_must_start_at_zero() -> None:
    leader = Leader()
    with pytest.raises(OutOfOrderSequenceError, match=r"unknown to this partition.*sequence 7"):
        leader.produce(header(7))
    assert leader.table.entry(PID) is None and leader.log_end == 0
    assert leader.produce(header(0)) == 0


def test_producers_are_independent() -> None:
    leader = Leader()
    leader.produce(header(0, producer_id=1))
    leader.produce(header(0, 3, producer_id=2))
    assert leader.produce(header(1, producer_id=1)) == 4
    assert leader.produce(header(0, 3, producer_id=2)) == 1  # 2's retry
    with pytest.raises(OutOfOrderSequenceError):
        leader.produce(header(5, producer_id=2))
    assert len(leader.table) == 2


def test_batches_without_a_producer_id_are_not_checked() -> None:
    leader = Leader()
    plain = header(-1, 4, producer_id=-1, epoch=-1)
    assert leader.table.check_append([plain, plain]) is None
    assert leader.produce(plain) == 0
    assert leader.produce(plain) == 4
    assert len(leader.table) == 0


def test_several_batches_of_one_request_chain_their_sequences() -> None:
    leader = Leader()
    assert leader.produce(header(0, 2), header(2, 3), header(5)) == 0
    entry = leader.table.entry(PID)
    assert entry is not None and [b.first_offset for b in entry.batches] == [0, 2, 5]
    with pytest.raises(OutOfOrderSequenceError, match="batch 1"):
        leader.produce(header(6), header(8))  # a gap inside the request
    with pytest.raises(OutOfOrderSequenceError, match="batch 1"):
        leader.produce(header(6), header(6))  # the same batch twice in one request
    assert leader.log_end == 6


def test_a_retried_request_of_several_batches_gets_its_original_offsets() -> None:
    leader = Leader()
    leader.produce(header(0))
    assert leader.produce(header(1, 2), header(3, 2)) == 1
    duplicate = leader.table.check_append([header(1, 2), header(3, 2)])
    assert duplicate == DuplicateAppend(1, 4, T)


def test_retries_mixed_with_new_batches_are_refused() -> None:
    leader = Leader()
    leader.produce(header(0))
    with pytest.raises(DuplicateSequenceError, match="1 of the request's 2 batches"):
        leader.produce(header(0), header(1))
    with pytest.raises(DuplicateSequenceError):
        leader.produce(header(0), header(-1, producer_id=-1, epoch=-1))
    assert leader.log_end == 1


def test_followers_record_what_the_leader_wrote_without_checking() -> None:
    follower = ProducerStateTable()
    follower.record_stored(header(5, 2, base_offset=10, max_timestamp=T + 1))  # unknown, seq 5
    follower.record_stored(header(9, base_offset=12))  # a gap: recorded all the same
    follower.record_stored(header(0, base_offset=13, epoch=1))
    follower.record_stored(header(0, base_offset=14, producer_id=-1, epoch=-1))
    entry = follower.entry(PID)
    assert entry is not None and entry.epoch == 1
    assert list(entry.batches) == [BatchMetadata(0, 0, 13, 13, T)]
    assert len(follower) == 1
    # as a new leader it recognises the retry of the last batch
    assert follower.check_append([header(0, base_offset=99, epoch=1)]) == DuplicateAppend(13, 13, T)


def test_leader_records_use_the_log_append_time_when_given() -> None:
    table = ProducerStateTable()
    table.record_appended([header(0, 2), header(-1, producer_id=-1), header(2)], 40, T + 5)
    entry = table.entry(PID)
    assert entry is not None
    assert list(entry.batches) == [
        BatchMetadata(0, 1, 40, 41, T + 5),
        BatchMetadata(2, 2, 43, 43, T + 5),
    ]


def test_copy_is_independent() -> None:
    table = ProducerStateTable()
    table.record(PID, 0, 0, 0, 0, T)
    copy = table.copy()
    table.record(PID, 0, 1, 0, 1, T)
    entry = copy.entry(PID)
    assert entry is not None and entry.last_seq == 0
