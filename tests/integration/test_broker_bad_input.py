"""Bad input to a real broker process: every bad produce or fetch gets a clear error for its
partition (or, when the whole request is malformed, a status), the log is left unchanged, and
the broker goes on serving good requests.

One controller and one broker (id 2) serve the whole module; the broker leads every partition.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Collection, Iterator

import grpc
import pytest

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


CORRUPT_OR_INVALID = {cpb.CORRUPT_MESSAGE, cpb.INVALID_RECORD}


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
        await expect_rejected(single, noise, CORRUPT_OR_INVALID)
        await expect_rejected(single, b"\x00" * 100, CORRUPT_OR_INVALID)
        # a header whose length runs past the bytes sent, or is impossible
        await expect_rejected(single, bytes(huge_length), {cpb.CORRUPT_MESSAGE})
        await expect_rejected(single, bytes(negative_length), {cpb.CORRUPT_MESSAGE})
        # a batch cut short, and a good batch followed by stray bytes: nothing is written,
        # not even the good batch in front
        await expect_rejected(single, batch[:-1], {cpb.CORRUPT_MESSAGE}, "truncated")
        await expect_rejected(single, batch + b"\x00" * 7, {cpb.CORRUPT_MESSAGE})
        await expect_rejected(single, batch + noise, CORRUPT_OR_INVALID)

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
        await expect_rejected(single, bytes(batch), CORRUPT_OR_INVALID, "magic")

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
        txn = build_batch(
            [(1_700_000_000_000, None, b"t", ())],
            transactional=True,
            producer_id=7,
            producer_epoch=0,
            base_sequence=0,
        )
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
        assert neither.error_code in CORRUPT_OR_INVALID | {cpb.INVALID_REQUEST}, name(
            neither.error_code
        )
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


def test_negative_fetch_offset_is_an_invalid_request(single: LocalCluster) -> None:
    """A negative fetch offset makes the whole request malformed: INVALID_ARGUMENT."""

    async def main() -> None:
        address = single.brokers[BROKER].address
        for offset in (-1, -2, -(2**63)):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await fetch(address, "bad", 0, offset)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            details = error.value.details() or ""
            assert "fetch_offset" in details and "bad-0" in details, details
            metadata = dict(error.value.trailing_metadata() or ())
            assert metadata.get("raftka-error") == "INVALID_REQUEST"
        end = await latest_offset(single, BROKER, "bad", 0)
        await expect_serving(single, "bad", end)

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
            assert results[0].error_code in {
                cpb.UNSUPPORTED_COMPRESSION_TYPE,
                cpb.INVALID_RECORD,
                cpb.INVALID_REQUEST,
            }, name(results[0].error_code)
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
        assert results[0].error_code in {
            cpb.INVALID_TIMESTAMP,
            cpb.INVALID_RECORD,
            cpb.INVALID_REQUEST,
        }, name(results[0].error_code)
        assert results[1].error_code == cpb.NONE
        assert await latest_offset(single, BROKER, "bad", 0) == before[0]
        assert await latest_offset(single, BROKER, "bad", 1) == before[1] + 1

    asyncio.run(main())
