"""Decoding fetched batches: records below the fetch offset, control batches, chunked takes."""

from __future__ import annotations

import pytest

from raftka.client.consumer.errors import CorruptDataError, InvalidBatchError
from raftka.client.consumer.fetch_buffer import FetchBuffer
from raftka.client.consumer.records import CompletedFetch, ConsumerRecord, batch_spans
from raftka.client.consumer.subscription import SubscriptionState
from raftka.client.types import TopicPartition
from raftka.common.records.batch import Compression, set_partition_leader_epoch, write_crc
from raftka.common.records.builder import build_batch
from raftka.common.records.errors import CorruptRecordError

TP = TopicPartition("t", 3)


def batch(
    base: int,
    count: int,
    *,
    control: bool = False,
    compression: Compression = Compression.NONE,
    epoch: int = -1,
) -> bytes:
    data = build_batch(
        [
            (100 + base + i, f"k{base + i}".encode(), f"v{base + i}".encode(), (("h", b"x"),))
            for i in range(count)
        ],
        base_offset=base,
        control=control,
        compression=compression,
    )
    set_partition_leader_epoch(data, epoch)
    return bytes(data)


def completed(data: bytes, fetch_offset: int) -> CompletedFetch:
    return CompletedFetch(TP, data, fetch_offset, batch_spans(data, verify=True))


def done(fetch: CompletedFetch) -> bool:
    return fetch.exhausted  # a call: mypy would keep a narrowed property across take()


def test_records_below_the_fetch_offset_in_the_first_batch_are_skipped() -> None:
    fetch = completed(batch(10, 5) + batch(15, 3), 13)
    records = fetch.take(100)
    assert [r.offset for r in records] == [13, 14, 15, 16, 17]
    assert fetch.exhausted and fetch.next_offset == 18 == fetch.end_offset
    r = records[0]
    assert r == ConsumerRecord("t", 3, 13, 113, b"k13", b"v13", (("h", b"x"),), None)
    assert r.topic_partition == TP


def test_take_in_chunks_moves_next_offset_record_by_record() -> None:
    fetch = completed(batch(0, 4, compression=Compression.GZIP, epoch=7) + batch(4, 4), 1)
    assert fetch.end_offset == 8
    first = fetch.take(2)
    assert [r.offset for r in first] == [1, 2] and fetch.next_offset == 3
    assert {r.leader_epoch for r in first} == {7}
    second = fetch.take(2)
    assert [r.offset for r in second] == [3, 4] and fetch.next_offset == 5
    assert second[1].leader_epoch is None
    assert not done(fetch)
    assert [r.offset for r in fetch.take(10)] == [5, 6, 7]
    assert done(fetch)
    assert fetch.take(10) == []


def test_last_record_of_a_batch_moves_past_the_whole_batch() -> None:
    # offsets 0..2 then a control batch at 3..4: taking record 2 leaves next_offset at 3,
    # the control batch moves it to 5 without returning anything
    fetch = completed(batch(0, 3) + batch(3, 2, control=True), 0)
    assert [r.offset for r in fetch.take(3)] == [0, 1, 2]
    assert fetch.next_offset == 3
    assert not done(fetch)
    assert fetch.take(3) == []
    assert done(fetch)
    assert fetch.next_offset == 5


def test_a_fetch_of_batches_wholly_below_the_offset_returns_nothing() -> None:
    fetch = completed(batch(0, 3), 3)  # e.g. a batch the broker returned from its index start
    assert fetch.take(10) == [] and fetch.next_offset == 3 and fetch.exhausted


def test_remaining_bytes_count_undecoded_batches() -> None:
    a, b = batch(0, 2), batch(2, 2)
    fetch = completed(a + b, 0)
    assert fetch.nbytes == fetch.remaining_bytes == len(a) + len(b)
    fetch.take(1)
    assert fetch.remaining_bytes == len(b)
    fetch.take(10)
    assert fetch.remaining_bytes == 0


def test_batch_spans_checks_crcs_and_ignores_a_partial_tail() -> None:
    good = batch(0, 2) + batch(2, 1)
    assert [s.header.base_offset for s in batch_spans(good + batch(3, 2)[:30], verify=True)] == [
        0,
        2,
    ]
    assert [s.header.base_offset for s in batch_spans(good + batch(3, 2)[:-1], verify=True)] == [
        0,
        2,
    ]
    corrupt = bytearray(good)
    corrupt[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError):
        batch_spans(bytes(corrupt), verify=True)
    assert len(batch_spans(bytes(corrupt), verify=False)) == 2  # check_crcs=False


def lying_batch(base: int, count: int) -> bytes:
    """``count`` records whose header claims one more, with a valid CRC (as an older broker
    stored it without reading the records)."""
    data = build_batch([(1, None, b"x", ())] * count, base_offset=base)
    data[57:61] = (count + 1).to_bytes(4, "big")  # the header's records count
    write_crc(data)
    return bytes(data)


def test_an_unreadable_batch_stops_the_fetch_before_it() -> None:
    fetch = completed(batch(0, 3) + lying_batch(3, 2) + batch(5, 2), 1)
    assert [r.offset for r in fetch.take(100)] == [1, 2]
    error = fetch.error
    assert isinstance(error, InvalidBatchError)
    assert (error.topic, error.partition, error.offset, error.next_offset) == ("t", 3, 3, 5)
    assert "t-3 at offset 3" in error.message and "offset 5" in error.message
    assert isinstance(error, CorruptDataError) and not error.retriable
    assert fetch.next_offset == 3  # the position stays before the batch
    assert done(fetch) and fetch.take(10) == []


def test_an_unreadable_batch_is_named_at_the_position_inside_it() -> None:
    fetch = completed(lying_batch(3, 4), 5)
    assert fetch.take(10) == []
    assert fetch.error is not None and (fetch.error.offset, fetch.error.next_offset) == (5, 7)


def test_poll_returns_the_records_before_a_bad_batch_then_its_error_until_a_seek() -> None:
    sub = SubscriptionState("earliest")
    sub.assign([TP])
    sub.seek(TP, 0)
    buf = FetchBuffer(partition_limit=1 << 20, total_limit=1 << 30)
    buf.add(completed(batch(0, 2) + lying_batch(2, 3), 0))
    assert [r.offset for r in buf.drain(100, sub)] == [0, 1]
    error = sub.first_error()
    assert isinstance(error, InvalidBatchError) and error.next_offset == 5
    assert sub.state(TP).position == 2 and not buf.has_data()
    sub.seek(TP, error.next_offset)  # skipping it
    assert sub.first_error() is None and sub.state(TP).position == 5


def test_records_are_immutable_values() -> None:
    (r,) = completed(batch(0, 1), 0).take(1)
    with pytest.raises(AttributeError):
        r.offset = 5  # type: ignore[misc]
    assert r._replace(offset=5).offset == 5 and r.offset == 0
    assert r == ConsumerRecord("t", 3, 0, 100, b"k0", b"v0", (("h", b"x"),))
    assert hash(r) == hash(ConsumerRecord("t", 3, 0, 100, b"k0", b"v0", (("h", b"x"),)))
