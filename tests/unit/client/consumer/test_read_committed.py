"""read_committed: batches of aborted transactions are dropped from their first offset up to
their ABORT marker, control batches are never records (under either isolation level), and the
position moves past everything dropped, so nothing is fetched again."""

from __future__ import annotations

import asyncio
import struct

from raftka.client.consumer.records import CompletedFetch, batch_spans
from raftka.client.producer import AsyncProducer
from raftka.client.types import TopicPartition
from raftka.common.records.builder import build_batch
from tests.unit.client.fake_txn import FakeTxnCluster
from tests.unit.client.support import make_consumer, poll_n

TP = TopicPartition("t", 0)


def data(base: int, count: int, pid: int = -1, *, transactional: bool = False) -> bytes:
    return bytes(
        build_batch(
            [(0, None, b"%d" % (base + i), ()) for i in range(count)],
            base_offset=base,
            producer_id=pid,
            producer_epoch=0 if pid >= 0 else -1,
            base_sequence=0 if pid >= 0 else -1,
            transactional=transactional,
        )
    )


def marker(offset: int, pid: int, *, committed: bool) -> bytes:
    """A control batch: attributes 0x30, key int16 version 0 + int16 type, value int16
    version 0 + int32 coordinator epoch (contract decision 4)."""
    batch = build_batch(
        [(0, struct.pack(">hh", 0, 1 if committed else 0), struct.pack(">hi", 0, 3), ())],
        base_offset=offset,
        producer_id=pid,
        producer_epoch=1,
        transactional=True,
        control=True,
    )
    assert batch[21:23] == b"\x00\x30"
    return bytes(batch)


def values(fetch: CompletedFetch) -> list[int]:
    return [int(r.value or b"") for r in fetch.take(1000)]


def test_aborted_batches_are_dropped_up_to_their_abort_marker_and_committed_ones_kept() -> None:
    # pid 7 aborts [0..2], pid 8 commits [3..4] interleaved, plain records, then pid 7 again
    # in a later transaction (committed): only its aborted range is dropped.
    log = (
        data(0, 2, 7, transactional=True)
        + data(2, 2, 8, transactional=True)
        + data(4, 1, 7, transactional=True)
        + marker(5, 7, committed=False)
        + data(6, 2)
        + marker(8, 8, committed=True)
        + data(9, 2, 7, transactional=True)
        + marker(11, 7, committed=True)
    )
    fetch = CompletedFetch(TP, log, 0, batch_spans(log, verify=True), [(7, 0)])
    assert values(fetch) == [2, 3, 6, 7, 9, 10]
    assert fetch.next_offset == 12 == fetch.end_offset, "past the trailing marker"


def test_read_uncommitted_keeps_aborted_data_but_never_returns_control_records() -> None:
    log = data(0, 2, 7, transactional=True) + marker(2, 7, committed=False) + data(3, 1)
    fetch = CompletedFetch(TP, log, 0, batch_spans(log, verify=True))
    assert values(fetch) == [0, 1, 3]
    assert fetch.next_offset == 4


def test_an_aborted_transaction_starting_later_in_the_fetch_only_drops_from_its_first_offset() -> (
    None
):
    log = (
        data(0, 2, 7, transactional=True)
        + marker(2, 7, committed=True)
        + data(3, 2, 7, transactional=True)
        + marker(5, 7, committed=False)
    )
    fetch = CompletedFetch(TP, log, 0, batch_spans(log, verify=True), [(7, 3)])
    assert values(fetch) == [0, 1]
    assert fetch.exhausted and fetch.next_offset == 6


def test_a_fetch_of_only_dropped_batches_still_moves_the_position() -> None:
    log = data(10, 3, 9, transactional=True) + marker(13, 9, committed=False)
    fetch = CompletedFetch(TP, log, 10, batch_spans(log, verify=True), [(9, 10)])
    assert fetch.take(100) == []
    assert fetch.exhausted and fetch.next_offset == 14


def test_a_consumer_reads_committed_transactions_of_a_real_producer_and_not_aborted_ones() -> None:
    cluster = FakeTxnCluster()
    cluster.create("t", 1)

    async def main() -> None:
        async with AsyncProducer(
            bootstrap_servers=cluster.bootstrap,
            connections=cluster,
            transactional_id="tx",
            linger_ms=0,
            retry_backoff_ms=1,
        ) as producer:
            await producer.init_transactions()
            for round_, commit in enumerate([True, False, True]):
                producer.begin_transaction()
                for i in range(3):
                    await (await producer.send("t", b"%d" % (round_ * 10 + i), partition=0))
                if commit:
                    await producer.commit_transaction()
                else:
                    await producer.abort_transaction()
        committed = make_consumer(cluster, isolation_level="read_committed")
        uncommitted = make_consumer(cluster)
        for consumer in (committed, uncommitted):
            consumer.assign([TP])
            consumer.seek(TP, 0)
        try:
            got = await poll_n(committed, 6)
            assert [r.value for r in got] == [b"0", b"1", b"2", b"20", b"21", b"22"]
            assert await committed.position(TP) == 12, "past the last COMMIT marker"
            everything = await poll_n(uncommitted, 9)
            assert [r.value for r in everything][3:6] == [b"10", b"11", b"12"]
            assert [r.offset for r in everything] == [0, 1, 2, 4, 5, 6, 8, 9, 10]
        finally:
            await committed.close()
            await uncommitted.close()

    asyncio.run(main())


def test_committed_offsets_are_read_stable_at_either_isolation_level() -> None:
    """As Kafka's consumer since KIP-447: an offset a transaction is still committing is
    waited for, never answered with the one before it (a read_uncommitted consumer that
    resumed there would still process those records twice)."""
    cluster = FakeTxnCluster()
    cluster.create("t", 1)
    cluster.committed_offsets[("g", TP)] = 4
    cluster.unstable_fetches = 1

    async def main() -> None:
        stable = make_consumer(cluster, group_id="g", isolation_level="read_committed")
        plain = make_consumer(cluster, group_id="g")
        try:
            found = await stable.committed(TP)
            assert found is not None and found.offset == 4
            found = await plain.committed(TP)
            assert found is not None and found.offset == 4
        finally:
            await stable.close()
            await plain.close()

    asyncio.run(main())
    fetches = [d.require_stable for k, d in cluster.events if k == "offset_fetch"]
    assert fetches == [True, True, True], "retried after UNSTABLE_OFFSET_COMMIT"


def test_the_position_takes_the_epoch_of_a_trailing_marker_not_of_the_last_record() -> None:
    """A marker written by a new leader (epoch 2) after records of epoch 1: the position moves
    past it with epoch 2, so the next fetch's divergence check (last_fetched_epoch) does not
    see a log that "ended" epoch 1 before the position and rewind (Kafka keeps the epoch of
    the last batch, whatever its kind)."""
    records = bytearray(data(0, 2, 7, transactional=True))
    records[12:16] = (1).to_bytes(4, "big")  # partition leader epoch: outside the CRC
    control = bytearray(marker(2, 7, committed=True))
    control[12:16] = (2).to_bytes(4, "big")
    log = bytes(records + control)
    fetch = CompletedFetch(TP, log, 0, batch_spans(log, verify=True))
    assert values(fetch) == [0, 1]
    assert fetch.next_offset == 3 and fetch.position_epoch == 2
    only_marker = CompletedFetch(TP, bytes(control), 2, batch_spans(bytes(control), verify=True))
    assert only_marker.take(10) == [] and only_marker.position_epoch == 2
