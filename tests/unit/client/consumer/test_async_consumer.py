"""AsyncConsumer against an in-process fake of the brokers: positions, seeks, reset policies,
prefetching, leader changes and errors (the same code that runs over gRPC)."""

from __future__ import annotations

import asyncio

import pytest

from raftka.client.consumer.errors import (
    CorruptDataError,
    GroupRequiredError,
    IllegalStateError,
    LogTruncationError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
)
from raftka.client.consumer.offsets import OffsetAndTimestamp
from raftka.client.types import TopicPartition
from raftka.common.errors import RequestTimedOutError, UnknownTopicOrPartitionError
from raftka.common.records.errors import CorruptRecordError
from tests.conditions import until
from tests.unit.client.fake_cluster import FakeCluster
from tests.unit.client.support import make_consumer, offsets_by_partition, poll_n

T0, T1, T2 = (TopicPartition("t", p) for p in range(3))


def values(prefix: str, n: int) -> list[bytes]:
    return [f"{prefix}{i}".encode() for i in range(n)]


def test_reads_every_partition_from_the_beginning_in_order() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 3)
        for p in range(3):
            cluster.append("t", p, values(f"a{p}-", 4))
            cluster.append("t", p, values(f"b{p}-", 3))
        async with make_consumer(cluster, auto_offset_reset="earliest") as consumer:
            consumer.assign([T0, T1, T2])
            assert consumer.assignment() == {T0, T1, T2}
            records = await poll_n(consumer, 21)
            assert offsets_by_partition(records) == {p: list(range(7)) for p in range(3)}
            assert [r.value for r in records if r.partition == 1] == values("a1-", 4) + values(
                "b1-", 3
            )
            for tp in (T0, T1, T2):
                assert await consumer.position(tp) == 7
            assert await consumer.poll(timeout_ms=0) == []

    asyncio.run(main())


def test_latest_by_default_then_only_new_records() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1)
        cluster.append("t", 0, values("old", 5))
        async with make_consumer(cluster) as consumer:
            consumer.assign([T0])
            assert await consumer.position(T0) == 5  # resolves the reset policy
            assert await consumer.poll(timeout_ms=0) == []
            cluster.append("t", 0, values("new", 2))
            assert [r.value for r in await poll_n(consumer, 2)] == values("new", 2)

    asyncio.run(main())


def test_seek_into_a_batch_skips_the_records_before_it() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1)
        cluster.append("t", 0, values("v", 10))
        async with make_consumer(cluster) as consumer:
            consumer.assign([T0])
            consumer.seek(T0, 4)
            assert await consumer.position(T0) == 4
            records = await poll_n(consumer, 6)
            assert [r.offset for r in records] == list(range(4, 10))
            assert records[0].value == b"v4"
            assert cluster.fetched_offsets("t", 0)[0] == 4  # the broker returned from offset 0

    asyncio.run(main())


def test_seek_to_beginning_end_and_by_time() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 2)
        cluster.append("t", 0, values("a", 5), timestamp=1000)  # timestamps 1000..1004
        cluster.append("t", 0, values("b", 5), timestamp=2000)  # 2000..2004
        cluster.truncate_start("t", 0, 2)
        async with make_consumer(cluster) as consumer:
            consumer.assign([T0, T1])
            assert await consumer.beginning_offsets([T0, T1]) == {T0: 2, T1: 0}
            assert await consumer.end_offsets([T0, T1]) == {T0: 10, T1: 0}
            consumer.seek_to_beginning(T0)
            assert [r.offset for r in await poll_n(consumer, 8)] == list(range(2, 10))
            consumer.seek_to_beginning()
            assert await consumer.position(T0) == 2 and await consumer.position(T1) == 0
            consumer.seek_to_end(T0)
            assert await consumer.position(T0) == 10
            found = await consumer.offsets_for_times({T0: 1500, T1: 0})
            assert found == {T0: OffsetAndTimestamp(5, 2004, 0), T1: None}
            consumer.seek(T0, found[T0].offset)  # type: ignore[union-attr]
            assert [r.value for r in await poll_n(consumer, 5)] == values("b", 5)
            with pytest.raises(IllegalStateError, match="timestamp -5"):
                await consumer.offsets_for_times({T0: -5})
            with pytest.raises(IllegalStateError, match="t-9 is not assigned"):
                consumer.seek_to_end(TopicPartition("t", 9))

    asyncio.run(main())


@pytest.mark.parametrize("policy", ["earliest", "latest", "none"])
def test_out_of_range_position_follows_the_reset_policy(policy: str) -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1)
        cluster.append("t", 0, values("v", 6))
        async with make_consumer(cluster, auto_offset_reset=policy) as consumer:
            consumer.assign([T0])
            consumer.seek(T0, 1000)
            if policy == "earliest":
                assert [r.offset for r in await poll_n(consumer, 6)] == list(range(6))
            elif policy == "latest":
                assert await consumer.poll(timeout_ms=300) == []
                await until(lambda: consumer._subscription.state(T0).position == 6)
                cluster.append("t", 0, [b"after"])
                assert [r.offset for r in await poll_n(consumer, 1)] == [6]
            else:
                for _ in range(2):  # raised by every poll until the application seeks
                    with pytest.raises(OffsetOutOfRangeError) as err:
                        await consumer.poll(timeout_ms=2000)
                    assert err.value.offsets == {T0: 1000}
                    assert "t-0 at offset 1000" in err.value.message
                    assert "seek()" in err.value.message
                consumer.seek(T0, 3)
                assert [r.offset for r in await poll_n(consumer, 3)] == [3, 4, 5]

    asyncio.run(main())


def test_no_position_and_policy_none_raises_until_seek() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 2)
        cluster.append("t", 0, values("v", 2))
        async with make_consumer(cluster, auto_offset_reset="none") as consumer:
            consumer.assign([T0, T1])
            with pytest.raises(NoOffsetForPartitionError, match="no position for t-0, t-1"):
                await consumer.poll(timeout_ms=0)
            with pytest.raises(NoOffsetForPartitionError):
                await consumer.position(T1)
            consumer.seek(T0, 0)
            consumer.seek_to_end(T1)
            assert [r.offset for r in await poll_n(consumer, 2)] == [0, 1]

    asyncio.run(main())


def test_follows_leader_changes_without_gaps_or_duplicates() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1, leaders=[1])
        cluster.append("t", 0, values("a", 5))
        async with make_consumer(cluster, auto_offset_reset="earliest") as consumer:
            consumer.assign([T0])
            first = await poll_n(consumer, 5)
            cluster.move_leader("t", 0, 2)  # NOT_LEADER_OR_FOLLOWER at broker 1
            cluster.append("t", 0, values("b", 5))
            second = await poll_n(consumer, 5)
            cluster.down.add(2)  # the leader dies: its requests fail
            cluster.move_leader("t", 0, 3)
            cluster.append("t", 0, values("c", 5))
            third = await poll_n(consumer, 5)
            offsets = [r.offset for r in first + second + third]
            assert offsets == list(range(15))
            assert {r.leader_epoch for r in third} == {2}
            addresses = [a for a, _ in cluster.fetches]
            assert cluster.addresses[3] in addresses
            # every fetch names the leader epoch the metadata gave
            epochs = {
                fp.current_leader_epoch
                for _, r in cluster.fetches
                for t in r.topics
                for fp in t.partitions
            }
            assert epochs <= {0, 1, 2} and 2 in epochs

    asyncio.run(main())


def test_prefetch_asks_for_more_while_records_are_still_buffered() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1)
        cluster.append("t", 0, values("v", 10))
        async with make_consumer(
            cluster, auto_offset_reset="earliest", max_poll_records=2
        ) as consumer:
            consumer.assign([T0])
            assert [r.offset for r in await consumer.poll(timeout_ms=2000)] == [0, 1]
            await until(
                lambda: 10 in cluster.fetched_offsets("t", 0), what="a fetch from offset 10"
            )
            assert await consumer.position(T0) == 2, "prefetching does not move the position"
            cluster.append("t", 0, values("w", 1))
            records = await poll_n(consumer, 9, timeout_s=5)
            assert [r.offset for r in records] == list(range(2, 11))

    asyncio.run(main())


def test_buffer_stays_bounded_while_the_application_does_not_poll() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1)
        for i in range(40):
            cluster.append("t", 0, values(f"b{i}-", 5))
        batch_bytes = len(cluster.partitions[("t", 0)].batches[0].data)
        limit = 2 * batch_bytes
        async with make_consumer(
            cluster,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=limit,
            max_poll_records=1,
        ) as consumer:
            consumer.assign([T0])
            assert [r.offset for r in await consumer.poll(timeout_ms=2000)] == [0]
            fetcher, buffer = consumer._fetcher, consumer._buffer
            await until(lambda: fetcher.idle, what="the fetcher stops")
            fetches = len(cluster.fetches)
            assert buffer.undecoded_bytes(T0) >= limit, "it stopped because the buffer is full"
            assert buffer.held_bytes <= 2 * limit + batch_bytes
            assert fetches <= 4
            records = await poll_n(consumer, 199, timeout_s=10)
            assert [r.offset for r in records] == list(range(1, 200))
            assert len(cluster.fetches) > fetches

    asyncio.run(main())


def test_corrupt_batch_is_reported_until_seek() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1)
        cluster.append("t", 0, values("v", 3))
        stored = cluster.partitions[("t", 0)].batches[0]
        stored.data = stored.data[:-1] + bytes([stored.data[-1] ^ 0xFF])
        async with make_consumer(cluster, auto_offset_reset="earliest") as consumer:
            consumer.assign([T0])
            with pytest.raises(CorruptRecordError, match="t-0 at offset 0: damaged data"):
                await consumer.poll(timeout_ms=2000)
            consumer.seek(T0, 3)
            cluster.append("t", 0, [b"ok"])
            assert [r.value for r in await poll_n(consumer, 1)] == [b"ok"]

    asyncio.run(main())


def test_a_broker_with_a_damaged_copy_gets_an_error_naming_the_offset() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1)
        cluster.append("t", 0, values("v", 3))
        cluster.append("t", 0, values("w", 2))
        cluster.partitions[("t", 0)].damaged_from = 3
        async with make_consumer(cluster, auto_offset_reset="earliest") as consumer:
            consumer.assign([T0])
            got: list[int] = []
            with pytest.raises(CorruptDataError, match="t-0 at offset 3: damaged data") as caught:
                for _ in range(50):
                    got += [r.offset for r in await consumer.poll(timeout_ms=2000)]
            assert got == [0, 1, 2]
            assert (caught.value.topic_partition, caught.value.offset) == (T0, 3)
            cluster.partitions[("t", 0)].damaged_from = None  # a healthy replica leads now
            consumer.seek(T0, 3)
            assert [r.offset for r in await poll_n(consumer, 2)] == [3, 4]

    asyncio.run(main())


def test_commit_and_committed_need_a_consumer_group() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1)
        async with make_consumer(cluster) as consumer:
            consumer.assign([T0])
            for call in (consumer.commit(), consumer.committed(T0)):
                with pytest.raises(GroupRequiredError, match="needs a consumer group"):
                    await call
            with pytest.raises(GroupRequiredError, match="subscribe\\(\\) needs a consumer group"):
                consumer.subscribe(["t"])

    asyncio.run(main())


def test_misuse_gets_clear_errors() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1)
        consumer = make_consumer(cluster)
        with pytest.raises(IllegalStateError, match=r"call assign\(\) or subscribe\(\) first"):
            await consumer.poll(timeout_ms=0)
        consumer.assign([TopicPartition("t", 5)])
        with pytest.raises(
            UnknownTopicOrPartitionError, match=r"t-5 does not exist: topic 't' has 1 partition$"
        ):
            await consumer.position(TopicPartition("t", 5), timeout_ms=200)
        with pytest.raises(UnknownTopicOrPartitionError, match="raftka topics create nope"):
            await consumer.partitions_for("nope")
        assert await consumer.partitions_for("t") == [T0]
        await consumer.close()
        await consumer.close()
        with pytest.raises(IllegalStateError, match="closed"):
            consumer.assign([T0])

    asyncio.run(main())


def test_unreachable_cluster_fails_with_a_clear_error() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1)
        cluster.down |= set(cluster.addresses)
        async with make_consumer(cluster, request_timeout_ms=300) as consumer:
            consumer.assign([T0])
            consumer.seek(T0, 0)
            with pytest.raises(
                RequestTimedOutError, match="cannot reach any bootstrap server"
            ) as err:
                for _ in range(100):
                    await consumer.poll(timeout_ms=100)
            assert "raftka up" in err.value.message
            with pytest.raises(RequestTimedOutError, match="cannot reach any bootstrap server"):
                await consumer.end_offsets([T0])
            cluster.down.clear()  # the brokers come back: it carries on
            await until(
                lambda: consumer._fetcher.refresher.reachable, what="a metadata refresh succeeds"
            )
            cluster.append("t", 0, [b"x"])
            assert [r.value for r in await poll_n(consumer, 1)] == [b"x"]

    asyncio.run(main())


def test_a_response_in_flight_during_a_seek_is_dropped() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1)
        cluster.append("t", 0, values("a", 5))
        async with make_consumer(cluster, fetch_max_wait_ms=5000) as consumer:
            consumer.assign([T0])
            assert await consumer.position(T0) == 5
            assert await consumer.poll(timeout_ms=0) == []
            await until(lambda: 5 in cluster.fetched_offsets("t", 0), what="a long poll at 5")
            consumer.seek(T0, 2)  # while the long poll at 5 waits
            cluster.append("t", 0, values("b", 2))  # answers it with offsets 5, 6
            records = await poll_n(consumer, 5)
            assert [r.offset for r in records] == [2, 3, 4, 5, 6]
            assert cluster.fetched_offsets("t", 0)[-1] in (2, 7)

    asyncio.run(main())


def test_fetches_name_the_leader_epoch_and_retry_when_fenced() -> None:
    """KIP-320: each fetch names the leader epoch from metadata; while the metadata lags the
    leader (FENCED_LEADER_EPOCH) the consumer refreshes and retries, then goes on without a
    gap or a repeat."""

    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1)
        cluster.append("t", 0, values("a", 3))
        async with make_consumer(cluster, auto_offset_reset="earliest") as consumer:
            consumer.assign([T0])
            assert [r.offset for r in await poll_n(consumer, 3)] == [0, 1, 2]
            first = cluster.fetches[0][1].topics[0].partitions[0]
            assert first.HasField("current_leader_epoch") and first.current_leader_epoch == 0
            cluster.metadata_epochs[("t", 0)] = 0
            cluster.move_leader("t", 0, cluster.partitions[("t", 0)].leader)  # epoch 1
            cluster.append("t", 0, values("b", 2))
            seen = len(cluster.fetches)
            # fenced, refreshed, again
            await until(lambda: len(cluster.fetches) >= seen + 2, timeout_s=30)
            assert await consumer.poll(timeout_ms=0) == []
            del cluster.metadata_epochs[("t", 0)]
            records = await poll_n(consumer, 2)
            assert [(r.offset, r.value) for r in records] == [(3, b"b0"), (4, b"b1")]
            assert records[0].leader_epoch == 1
            epochs = [
                fp.current_leader_epoch
                for _a, req in cluster.fetches[seen:]
                for t in req.topics
                for fp in t.partitions
            ]
            assert epochs[0] == 0 and epochs[-1] == 1

    asyncio.run(main())


@pytest.mark.parametrize("policy", ["earliest", "none"])
def test_records_truncated_by_an_unclean_election_are_detected(policy: str) -> None:
    """The consumer read 0..5 in epoch 0; a replica that held only 0..2 becomes leader in
    epoch 1 and writes 3..4. The consumer's fetch at 6 names epoch 0 as its last, so the
    leader answers a diverging epoch (0 ends at 3): the consumer continues at 3 (and does not
    apply auto_offset_reset), or, with "none", poll() raises LogTruncationError."""

    async def main() -> None:
        cluster = FakeCluster()
        cluster.create("t", 1, leaders=[1])
        cluster.append("t", 0, values("a", 3))
        cluster.append("t", 0, values("lost", 3))
        async with make_consumer(cluster, auto_offset_reset=policy) as consumer:
            consumer.assign([T0])
            consumer.seek(T0, 0)
            assert [r.offset for r in await poll_n(consumer, 6)] == list(range(6))
            cluster.unclean_election("t", 0, leader=2, keep=3)
            cluster.append("t", 0, values("new", 2))
            if policy == "none":
                with pytest.raises(LogTruncationError) as error:
                    await consumer.poll(timeout_ms=5000)
                assert error.value.divergent_offsets == {T0: 3}
                assert "t-0 (position 6, leader's log ends at 3)" in error.value.message
                consumer.seek(T0, 3)
            records = await poll_n(consumer, 2)
            assert [(r.offset, r.value) for r in records] == [(3, b"new0"), (4, b"new1")]
            sent = [
                fp.last_fetched_epoch
                for _a, req in cluster.fetches
                for t in req.topics
                for fp in t.partitions
                if fp.fetch_offset == 6 and fp.HasField("last_fetched_epoch")
            ]
            assert sent and set(sent) == {0}

    asyncio.run(main())
