"""Bad input to a real broker process: every bad produce or fetch gets a clear error for its
partition (or, when the whole request is malformed, a status), the log is left unchanged, and
the broker goes on serving good requests.

One controller and one broker (id 2) serve the whole module; the broker leads every partition.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Collection, Iterator
from typing import Any

import grpc
import pytest

from raftka.common.limits import MAX_ITEMS_PER_REQUEST
from raftka.common.records.batch import (
    ATTRIBUTES_POS,
    BATCH_LENGTH_POS,
    CRC_POS,
    MAGIC_POS,
    RECORDS_COUNT_POS,
    write_crc,
)
from raftka.common.records.builder import build_batch
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from tests.integration.support.broker_rpc import broker_stub, fetch, latest_offset, produce
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
)
from tests.integration.support.quorum import client_for, create_topic

pytestmark = pytest.mark.integration

BROKER = 2
SMALL_MAX_MESSAGE_BYTES = 1024


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = start_broker_cluster(tmp_path_factory.mktemp("bad-input"), controllers=1, brokers=1)
    try:

        async def topics() -> None:
            async with client_for(cluster) as client:
                await create_topic(client, "bad", partitions=2, rf=1)
                (small,) = await client.create_topics(
                    [
                        pb.NewTopic(
                            name="small",
                            num_partitions=1,
                            replication_factor=1,
                            configs={"max.message.bytes": str(SMALL_MAX_MESSAGE_BYTES)},
                        )
                    ]
                )
                assert small.error_code == cpb.NONE, small.error_message
            await wait_partition_leaders(cluster, "bad", 2)
            await wait_partition_leaders(cluster, "small", 1)

        asyncio.run(topics())
        yield cluster
    finally:
        stop_broker_cluster(cluster)


def name(error_code: int) -> str:
    return cpb.ErrorCode.Name(error_code)  # type: ignore[arg-type]


def good_batch(n: int = 3, value: bytes = b"value") -> bytearray:
    return build_batch([(1_700_000_000_000 + i, f"k{i}".encode(), value, ()) for i in range(n)])


async def expect_rejected(
    cluster: LocalCluster,
    payload: bytes,
    codes: Collection[int],
    *words: str,
    topic: str = "bad",
) -> bpb.PartitionProduceResult:
    """Produce ``payload`` as batches; assert one of ``codes`` with a message naming ``words``,
    that nothing was written, and that a good batch is accepted right after."""
    address = cluster.brokers[BROKER].address
    before = await latest_offset(cluster, BROKER, topic, 0)
    result = await produce(address, topic, 0, batches=payload)
    assert result.error_code in codes, (
        f"got {name(result.error_code)} ({result.error_message!r}), "
        f"wanted one of {sorted(name(c) for c in codes)}"
    )
    assert result.error_message, "an error without a message"
    for word in words:
        assert word.lower() in result.error_message.lower(), result.error_message
    assert result.base_offset == -1
    assert await latest_offset(cluster, BROKER, topic, 0) == before, "the log changed"
    await expect_serving(cluster, topic, before)
    return result


async def expect_serving(cluster: LocalCluster, topic: str, end: int) -> None:
    """The broker still appends at ``end`` and reads back what it appended."""
    assert cluster.brokers[BROKER].running
    address = cluster.brokers[BROKER].address
    ok = await produce(address, topic, 0, batches=bytes(good_batch(1, b"after")))
    assert ok.error_code == cpb.NONE, ok.error_message
    assert ok.base_offset == end
    back = await fetch(address, topic, 0, end, decode_records=True)
    assert [(r.offset, r.value) for r in back.records] == [(end, b"after")]


# The contract: a batch whose bytes do not frame or check (length, CRC) is CORRUPT_MESSAGE;
# one that frames but breaks a rule (magic other than 2, records count, control batches) is
# INVALID_RECORD. The magic byte is read before the CRC, so random bytes are INVALID_RECORD.


def test_garbage_bytes(single: LocalCluster) -> None:
    rng = random.Random(3)
    noise = bytes(rng.randrange(256) for _ in range(300))
    batch = bytes(good_batch())
    huge_length = bytearray(batch)
    huge_length[BATCH_LENGTH_POS : BATCH_LENGTH_POS + 4] = (10_000).to_bytes(4, "big")
    negative_length = bytearray(batch)
    negative_length[BATCH_LENGTH_POS : BATCH_LENGTH_POS + 4] = (-5).to_bytes(4, "big", signed=True)

    async def main() -> None:
        await expect_rejected(single, b"hello", {cpb.CORRUPT_MESSAGE}, "truncated")
        await expect_rejected(single, noise, {cpb.INVALID_RECORD}, "magic")
        await expect_rejected(single, b"\x00" * 100, {cpb.INVALID_RECORD}, "magic is 0")
        # a header whose length runs past the bytes sent, or is impossible
        await expect_rejected(single, bytes(huge_length), {cpb.CORRUPT_MESSAGE})
        await expect_rejected(single, bytes(negative_length), {cpb.CORRUPT_MESSAGE})
        # a batch cut short, and a good batch followed by stray bytes: nothing is written,
        # not even the good batch in front
        await expect_rejected(single, batch[:-1], {cpb.CORRUPT_MESSAGE}, "truncated")
        await expect_rejected(single, batch + b"\x00" * 7, {cpb.CORRUPT_MESSAGE})
        await expect_rejected(single, batch + noise, {cpb.INVALID_RECORD}, f"byte {len(batch)}")

    asyncio.run(main())


def test_wrong_crc(single: LocalCluster) -> None:
    async def main() -> None:
        crc_flipped = bytearray(good_batch())
        crc_flipped[CRC_POS + 2] ^= 0x01
        await expect_rejected(single, bytes(crc_flipped), {cpb.CORRUPT_MESSAGE}, "crc")
        payload_flipped = bytearray(good_batch())
        payload_flipped[-1] ^= 0x40  # inside the last record's value
        await expect_rejected(single, bytes(payload_flipped), {cpb.CORRUPT_MESSAGE}, "crc")
        # the second of two batches is the bad one: neither is written
        two = bytes(good_batch()) + bytes(crc_flipped)
        result = await expect_rejected(single, two, {cpb.CORRUPT_MESSAGE}, "crc")
        assert f"byte {len(good_batch())}" in result.error_message  # it names which batch

    asyncio.run(main())


@pytest.mark.parametrize("magic", [0, 1, 3])
def test_wrong_magic(single: LocalCluster, magic: int) -> None:
    async def main() -> None:
        batch = good_batch()
        batch[MAGIC_POS] = magic
        await expect_rejected(single, bytes(batch), {cpb.INVALID_RECORD}, f"magic is {magic}")

    asyncio.run(main())


def test_oversize_batch(single: LocalCluster) -> None:
    async def main() -> None:
        address = single.brokers[BROKER].address
        big = bytes(good_batch(1, b"x" * 1100))
        await expect_rejected(
            single,
            big,
            {cpb.MESSAGE_TOO_LARGE},
            "max.message.bytes",
            str(SMALL_MAX_MESSAGE_BYTES),
            topic="small",
        )
        before = await latest_offset(single, BROKER, "small", 0)
        # the convenience form is held to the same limit
        records = [bpb.Record(value=b"y" * 2000)]
        result = await produce(address, "small", 0, records=records)
        assert result.error_code == cpb.MESSAGE_TOO_LARGE, name(result.error_code)
        assert await latest_offset(single, BROKER, "small", 0) == before
        # just under the limit is fine (the limit counts the whole batch, log overhead included)
        fits = build_batch([(1_700_000_000_000, None, b"z" * 900, ())])
        assert len(fits) <= SMALL_MAX_MESSAGE_BYTES
        ok = await produce(address, "small", 0, batches=bytes(fits))
        assert ok.error_code == cpb.NONE, ok.error_message
        # the default limit (Kafka's 1 MiB + 12) applies to other topics
        default = await produce(address, "bad", 0, batches=big)
        assert default.error_code == cpb.NONE, default.error_message

    asyncio.run(main())


def test_snappy_is_accepted_and_unknown_codecs_are_not(single: LocalCluster) -> None:
    async def main() -> None:
        address = single.brokers[BROKER].address
        before = await latest_offset(single, BROKER, "bad", 0)
        records = [bpb.Record(value=b"snap")]
        result = await produce(
            address, "bad", 0, records=records, compression=bpb.COMPRESSION_SNAPPY
        )
        assert result.error_code == cpb.NONE, result.error_message
        assert await latest_offset(single, BROKER, "bad", 0) == before + 1
        # a batch that claims a codec id that does not exist, with a valid CRC
        for codec_id in (5, 7):
            batch = good_batch()
            batch[ATTRIBUTES_POS + 1] = (batch[ATTRIBUTES_POS + 1] & ~0x07) | codec_id
            write_crc(batch)
            await expect_rejected(single, bytes(batch), {cpb.UNSUPPORTED_COMPRESSION_TYPE}, "codec")

    asyncio.run(main())


def test_invalid_batch_contents(single: LocalCluster) -> None:
    async def main() -> None:
        miscounted = good_batch(3)
        miscounted[RECORDS_COUNT_POS : RECORDS_COUNT_POS + 4] = (5).to_bytes(4, "big")
        write_crc(miscounted)
        await expect_rejected(single, bytes(miscounted), {cpb.INVALID_RECORD}, "count")
        control = build_batch([(1_700_000_000_000, b"\x00\x00\x00\x00", b"", ())], control=True)
        await expect_rejected(single, bytes(control), {cpb.INVALID_RECORD}, "control")
        # A transactional batch must name its producer (it belongs to that producer's
        # transaction until the producer's marker).
        txn = build_batch([(1_700_000_000_000, None, b"t", ())], transactional=True)
        await expect_rejected(single, bytes(txn), {cpb.INVALID_RECORD}, "transactional")

    asyncio.run(main())


def test_batches_and_records_both_or_neither(single: LocalCluster) -> None:
    async def main() -> None:
        address = single.brokers[BROKER].address
        before = await latest_offset(single, BROKER, "bad", 0)
        both = await produce(
            address, "bad", 0, batches=bytes(good_batch()), records=[bpb.Record(value=b"r")]
        )
        assert both.error_code == cpb.INVALID_REQUEST, name(both.error_code)
        assert "batches" in both.error_message and "records" in both.error_message
        neither = await produce(address, "bad", 0)
        assert neither.error_code == cpb.INVALID_RECORD, name(neither.error_code)
        assert neither.error_message
        assert await latest_offset(single, BROKER, "bad", 0) == before
        await expect_serving(single, "bad", before)

    asyncio.run(main())


def test_one_bad_partition_does_not_fail_the_others(single: LocalCluster) -> None:
    async def main() -> None:
        before = [await latest_offset(single, BROKER, "bad", p) for p in (0, 1)]
        request = bpb.ProduceRequest(
            acks=1,
            topics=[
                bpb.TopicProduceData(
                    topic="bad",
                    partitions=[
                        bpb.PartitionProduceData(partition=0, batches=b"garbage"),
                        bpb.PartitionProduceData(partition=1, batches=bytes(good_batch(2))),
                    ],
                ),
                bpb.TopicProduceData(
                    topic="nope", partitions=[bpb.PartitionProduceData(partition=0, batches=b"x")]
                ),
            ],
        )
        async with broker_stub(single.brokers[BROKER].address) as stub:
            response = await stub.Produce(request, timeout=10)
        results = {(r.topic, r.partition): r for r in response.results}
        assert results[("bad", 0)].error_code == cpb.CORRUPT_MESSAGE
        assert results[("bad", 1)].error_code == cpb.NONE
        assert results[("bad", 1)].base_offset == before[1]
        assert results[("nope", 0)].error_code == cpb.UNKNOWN_TOPIC_OR_PARTITION
        assert await latest_offset(single, BROKER, "bad", 0) == before[0]
        assert await latest_offset(single, BROKER, "bad", 1) == before[1] + 2

    asyncio.run(main())


def test_negative_fetch_offset_is_out_of_range_for_that_partition_only(
    single: LocalCluster,
) -> None:
    """A negative fetch offset is a problem of one item: OFFSET_OUT_OF_RANGE in its result,
    with the readable range; the other partitions of the request are served."""

    async def main() -> None:
        address = single.brokers[BROKER].address
        end = await latest_offset(single, BROKER, "bad", 1)
        for offset in (-1, -2, -(2**63)):
            request = bpb.FetchRequest(
                topics=[
                    bpb.FetchTopic(
                        topic="bad",
                        partitions=[
                            bpb.FetchPartition(partition=0, fetch_offset=offset),
                            bpb.FetchPartition(partition=1, fetch_offset=0),
                        ],
                    )
                ]
            )
            async with broker_stub(address) as stub:
                response = await stub.Fetch(request, timeout=10)
            results = {r.partition: r for r in response.results}
            assert results[0].error_code == cpb.OFFSET_OUT_OF_RANGE, name(results[0].error_code)
            assert str(offset) in results[0].error_message
            assert results[0].log_start_offset == 0 and results[0].batches == b""
            assert results[1].error_code == cpb.NONE
            assert (results[1].batches != b"") == (end > 0)

    asyncio.run(main())


async def expect_invalid_request(call: Awaitable[object], *words: str) -> None:
    """The whole request is refused: INVALID_ARGUMENT with raftka-error INVALID_REQUEST."""
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value
    details = error.value.details() or ""
    for word in words:
        assert word in details, details
    assert dict(error.value.trailing_metadata() or ()).get("raftka-error") == "INVALID_REQUEST"


def fetch_request(*partitions: bpb.FetchPartition, **fields: Any) -> bpb.FetchRequest:
    return bpb.FetchRequest(topics=[bpb.FetchTopic(topic="bad", partitions=partitions)], **fields)


def list_offsets_request(
    *partitions: bpb.ListOffsetsPartition, **fields: Any
) -> bpb.ListOffsetsRequest:
    return bpb.ListOffsetsRequest(
        topics=[bpb.ListOffsetsTopic(topic="bad", partitions=partitions)], **fields
    )


def test_a_partition_named_twice_is_refused(single: LocalCluster) -> None:
    """One partition 500 times in a 9.5 KB Fetch once built a 500 MiB answer: a partition named
    twice in Fetch, ListOffsets or Produce refuses the whole request, and nothing is written."""

    async def main() -> None:
        before = await latest_offset(single, BROKER, "bad", 0)
        async with broker_stub(single.brokers[BROKER].address) as stub:
            twice = [bpb.FetchPartition(partition=0, fetch_offset=0)] * 500
            await expect_invalid_request(
                stub.Fetch(fetch_request(*twice), timeout=10), "bad-0", "more than once"
            )
            await expect_invalid_request(
                stub.ListOffsets(
                    list_offsets_request(*[bpb.ListOffsetsPartition(partition=0)] * 2),
                    timeout=10,
                ),
                "bad-0",
            )
            data = bpb.PartitionProduceData(partition=0, batches=bytes(good_batch(1)))
            produce_twice = bpb.ProduceRequest(
                acks=1, topics=[bpb.TopicProduceData(topic="bad", partitions=[data, data])]
            )
            await expect_invalid_request(stub.Produce(produce_twice, timeout=10), "bad-0")
        assert await latest_offset(single, BROKER, "bad", 0) == before

    asyncio.run(main())


def test_item_counts_are_bounded(single: LocalCluster) -> None:
    async def main() -> None:
        many = MAX_ITEMS_PER_REQUEST + 1
        async with broker_stub(single.brokers[BROKER].address) as stub:
            await expect_invalid_request(
                stub.Metadata(bpb.MetadataRequest(topics=[f"t{i}" for i in range(many)])),
                str(MAX_ITEMS_PER_REQUEST),
            )
            fetches = [bpb.FetchPartition(partition=i) for i in range(many)]
            await expect_invalid_request(
                stub.Fetch(fetch_request(*fetches), timeout=10), str(MAX_ITEMS_PER_REQUEST)
            )
            lookups = [bpb.ListOffsetsPartition(partition=i) for i in range(many)]
            await expect_invalid_request(
                stub.ListOffsets(list_offsets_request(*lookups), timeout=10),
                str(MAX_ITEMS_PER_REQUEST),
            )
            writes = [bpb.PartitionProduceData(partition=i) for i in range(many)]
            await expect_invalid_request(
                stub.Produce(
                    bpb.ProduceRequest(
                        acks=1, topics=[bpb.TopicProduceData(topic="bad", partitions=writes)]
                    ),
                    timeout=10,
                ),
                str(MAX_ITEMS_PER_REQUEST),
            )
            # a name given twice is answered once
            twice = await stub.Metadata(bpb.MetadataRequest(topics=["bad", "bad"]), timeout=10)
            assert [t.name for t in twice.topics] == ["bad"]

    asyncio.run(main())


def test_unknown_isolation_levels_are_refused(single: LocalCluster) -> None:
    async def main() -> None:
        async with broker_stub(single.brokers[BROKER].address) as stub:
            for level in (2, -1, 7):
                await expect_invalid_request(
                    stub.Fetch(
                        fetch_request(bpb.FetchPartition(partition=0), isolation_level=level),
                        timeout=10,
                    ),
                    "isolation_level",
                    str(level),
                )
                await expect_invalid_request(
                    stub.ListOffsets(
                        list_offsets_request(
                            bpb.ListOffsetsPartition(partition=0, timestamp=-1),
                            isolation_level=level,
                        ),
                        timeout=10,
                    ),
                    "isolation_level",
                )
            for level in (0, 1):  # read_uncommitted, read_committed
                response = await stub.Fetch(
                    fetch_request(bpb.FetchPartition(partition=0), isolation_level=level),
                    timeout=10,
                )
                assert response.results[0].error_code == cpb.NONE

    asyncio.run(main())


def test_reads_check_the_leader_epoch(single: LocalCluster) -> None:
    """KIP-320 over the wire: a newer epoch than the leader's is UNKNOWN_LEADER_EPOCH on Fetch
    and ListOffsets; the leader's own epoch (0 included: explicitly set, not the proto3
    default) and no epoch are served. (An older epoch, FENCED_LEADER_EPOCH, is in the unit
    tests of Partition: this partition's epoch has never moved.)"""

    async def main() -> None:
        address = single.brokers[BROKER].address
        end = await latest_offset(single, BROKER, "bad", 0)
        async with broker_stub(address) as stub:
            listed = await stub.ListOffsets(
                list_offsets_request(bpb.ListOffsetsPartition(partition=0, timestamp=-1)),
                timeout=10,
            )
            current = listed.results[0].leader_epoch
            assert current >= 0
            for epoch, code in (
                (current + 1, cpb.UNKNOWN_LEADER_EPOCH),
                (current, cpb.NONE),
                (-1, cpb.NONE),
                (None, cpb.NONE),
            ):
                fetched = await stub.Fetch(
                    fetch_request(bpb.FetchPartition(partition=0, current_leader_epoch=epoch)),
                    timeout=10,
                )
                (f,) = fetched.results
                assert f.error_code == code, (epoch, name(f.error_code), f.error_message)
                assert (f.batches != b"") == (code == cpb.NONE and end > 0)
                looked_up = await stub.ListOffsets(
                    list_offsets_request(
                        bpb.ListOffsetsPartition(
                            partition=0, timestamp=-1, current_leader_epoch=epoch
                        )
                    ),
                    timeout=10,
                )
                (lo,) = looked_up.results
                assert lo.error_code == code, (epoch, name(lo.error_code), lo.error_message)
                if code != cpb.NONE:
                    assert "newer" in lo.error_message and "retry" in lo.error_message
                    assert (lo.offset, lo.leader_epoch) == (-1, -1)

    asyncio.run(main())


def test_refused_acks_answer_base_offset_minus_one(single: LocalCluster) -> None:
    async def main() -> None:
        address = single.brokers[BROKER].address
        before = await latest_offset(single, BROKER, "bad", 0)
        for acks in (2, -2):
            result = await produce(address, "bad", 0, batches=bytes(good_batch(1)), acks=acks)
            assert result.error_code == cpb.INVALID_REQUIRED_ACKS, name(result.error_code)
            assert (result.base_offset, result.log_append_time_ms) == (-1, -1)
        assert await latest_offset(single, BROKER, "bad", 0) == before

    asyncio.run(main())


def test_fetch_offset_beyond_log_end(single: LocalCluster) -> None:
    async def main() -> None:
        address = single.brokers[BROKER].address
        end = await latest_offset(single, BROKER, "bad", 1)
        for offset in (end + 1, end + 1000, 2**62):
            result = await fetch(address, "bad", 1, offset)
            assert result.error_code == cpb.OFFSET_OUT_OF_RANGE, name(result.error_code)
            assert result.batches == b""
            # the result carries the readable range, and the message names it
            assert (result.log_start_offset, result.high_watermark) == (0, end)
            assert f"[0, {end})" in result.error_message, result.error_message
        # at the log end is not out of range: an empty answer
        at_end = await fetch(address, "bad", 1, end)
        assert at_end.error_code == cpb.NONE and at_end.batches == b""
        assert (at_end.log_start_offset, at_end.high_watermark) == (0, end)

    asyncio.run(main())


async def produce_two(
    cluster: LocalCluster, bad: bpb.PartitionProduceData
) -> dict[int, bpb.PartitionProduceResult]:
    """Produce ``bad`` to bad-0 and a good record to bad-1 in one request; return by partition."""
    good = bpb.PartitionProduceData(partition=1, records=[bpb.Record(value=b"fine")])
    request = bpb.ProduceRequest(
        acks=1, topics=[bpb.TopicProduceData(topic="bad", partitions=[bad, good])]
    )
    async with broker_stub(cluster.brokers[BROKER].address) as stub:
        response = await stub.Produce(request, timeout=10)
    return {r.partition: r for r in response.results}


def test_unknown_compression_id_in_records(single: LocalCluster) -> None:
    async def main() -> None:
        before = [await latest_offset(single, BROKER, "bad", p) for p in (0, 1)]
        for codec_id in (5, 9, -1):
            bad = bpb.PartitionProduceData(
                partition=0,
                records=[bpb.Record(value=b"x")],
                compression=codec_id,  # type: ignore[arg-type]
            )
            results = await produce_two(single, bad)
            assert results[0].error_code == cpb.UNSUPPORTED_COMPRESSION_TYPE, name(
                results[0].error_code
            )
            assert str(codec_id) in results[0].error_message
            assert results[1].error_code == cpb.NONE
        assert await latest_offset(single, BROKER, "bad", 0) == before[0]
        assert await latest_offset(single, BROKER, "bad", 1) == before[1] + 3

    asyncio.run(main())


def test_record_timestamps_too_far_apart(single: LocalCluster) -> None:
    async def main() -> None:
        before = [await latest_offset(single, BROKER, "bad", p) for p in (0, 1)]
        bad = bpb.PartitionProduceData(
            partition=0,
            records=[
                bpb.Record(value=b"a", timestamp_ms=-(2**63)),
                bpb.Record(value=b"b", timestamp_ms=1),
            ],
        )
        results = await produce_two(single, bad)
        assert results[0].error_code == cpb.INVALID_TIMESTAMP, name(results[0].error_code)
        assert "negative" in results[0].error_message
        assert results[1].error_code == cpb.NONE
        assert await latest_offset(single, BROKER, "bad", 0) == before[0]
        assert await latest_offset(single, BROKER, "bad", 1) == before[1] + 1

    asyncio.run(main())


def test_negative_and_far_future_timestamps_are_refused(single: LocalCluster) -> None:
    """CreateTime topics refuse batches stamped more than message.timestamp.after.max.ms (one
    hour by default) after the broker's clock, and negative timestamps other than -1."""

    async def main() -> None:
        now = int(time.time() * 1000)
        for timestamp, words in (
            (now + 2 * 3_600_000, ("bad-0", "message.timestamp.after.max.ms=3600000")),
            (-2, ("bad-0", "negative")),
        ):
            payload = build_batch([(timestamp, b"k", b"v", ())])
            await expect_rejected(single, bytes(payload), {cpb.INVALID_TIMESTAMP}, *words)
        end = await latest_offset(single, BROKER, "bad", 0)
        no_timestamp = await produce(
            single.brokers[BROKER].address,
            "bad",
            0,
            batches=bytes(build_batch([(-1, b"k", b"v", ())])),
        )
        assert no_timestamp.error_code == cpb.NONE and no_timestamp.base_offset == end

    asyncio.run(main())
